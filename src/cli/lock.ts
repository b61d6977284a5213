// `conclave lock [options] prefix child...`: Consul's `consul lock` (command/lock/lock.go over the Go
// API's Lock, api/lock.go): run a command while holding a lock, so that one process in a cluster runs it
// at a time.
//
// 1. A session: Name (-name, default "Consul lock for '<child>' at '<prefix>'"), TTL 15s, renewed every
//    half TTL for as long as the command runs.
// 2. The lock is the key <prefix>/.lock, taken with ?acquire and the Go API's lock flag value; a key
//    there with other flags is Consul's "Existing key does not match lock use". While another session
//    holds it, a blocking query waits for it to change; a key left free under lock-delay is tried again
//    after 5 s (the Go API's DefaultLockRetryTime).
// 3. The child runs (through `sh -c` unless -shell=false) in its own process group; a blocking query
//    watches the key meanwhile. If the lock is lost (the session invalidated, or the key taken away) or
//    a SIGINT/SIGTERM arrives, the child's group gets SIGTERM, then SIGKILL after 5 s.
// 4. Release, then cleanup: the key is deleted (check-and-set) unless another session holds it now; the
//    session is destroyed.
//
// With -n above 1 it is Consul's semaphore instead (semaphore.ts): up to n holders at once, the
// contender keys and <prefix>/.lock holding {Limit, Holders}.
//
// Exit status: 0 (the child's failure does not propagate), 2 for a failed child with -child-exit-code
// (Consul's), 1 for any error of our own (flags, connection, lock conflict, timeout, release).

import { spawn, type ChildProcess } from 'node:child_process';
import { posix } from 'node:path';
import { parseGoDuration } from '../base/index.js';
import { lastFlag, type FlagSpec, type ParsedFlags } from '../config/index.js';
import { escapeKey, openCommand, parseKvEntries, type ApiClient, type WireEntry } from './api-client.js';
import { acquireSlot, cleanupSemaphore, releaseSlot, watchSlot } from './semaphore.js';
import { pause, watchHeld } from './watch-held.js';
import type { SignalSource, TextOutput } from './agent.js';
import { errorText, httpClientFlags, serverFlags, type Env } from './snapshot/http-client.js';

export interface LockDeps {
  readonly stdout: TextOutput;
  readonly stderr: TextOutput;
  readonly env?: Env;
  readonly signals: SignalSource;
}

/** The Go API's LockFlagValue: marks a key as a lock (api/lock.go). */
export const lockFlagValue = 0x2ddccbc058a50c18n;
const sessionTtl = '15s';
const renewEveryMs = 7_500;
const lockRetryMs = 5_000;
const blockingWait = '15s';
const requestMarginMs = 20_000;
const killGraceMs = 5_000;

export const lockFlags: readonly FlagSpec[] = [
  ...httpClientFlags,
  ...serverFlags,
  { name: 'n', kind: 'int', valueName: 'int', usage: 'Optional limit on the number of concurrent lock holders: above 1, a semaphore (Consul\'s recipe) at the prefix.', defaultText: '1' },
  { name: 'name', kind: 'string', valueName: 'string', usage: 'Optional name to associate with the lock session.', defaultText: "\"Consul lock for '<child>' at '<prefix>'\"" },
  { name: 'pass-stdin', kind: 'bool', usage: 'Pass stdin to the child process.', defaultText: 'false' },
  { name: 'shell', kind: 'bool', usage: 'Use a shell to run the command (sh -c).', defaultText: 'true' },
  { name: 'timeout', kind: 'string', valueName: 'duration', usage: 'Maximum amount of time to wait to acquire the lock, e.g. "30s"; 0 waits forever.', defaultText: '0' },
  { name: 'monitor-retry', kind: 'int', valueName: 'int', usage: 'Number of times to retry if the agent cannot be reached while watching the lock (a second apart).', defaultText: '3' },
  { name: 'child-exit-code', kind: 'bool', usage: 'Exit 2 if the child process exited with an error; otherwise an error of the child is not propagated.', defaultText: 'false' },
  { name: 'verbose', kind: 'bool', usage: 'Enable verbose (debugging) output.', defaultText: 'false' },
];

const lockUsage = `Usage: conclave lock [options] prefix child...

  Acquires a lock at the given prefix (the key <prefix>/.lock) and runs the
  child command while holding it, as consul lock does. If the lock is lost
  (its session is invalidated) or conclave lock is interrupted, the child is
  terminated. This is useful to run one instance of a task in a cluster.

  The child runs through "sh -c" unless -shell=false. Its output goes to
  this command's output.`;

type Entry = WireEntry;

/** Runs `conclave lock <args>`; resolves with the exit status. */
export async function runLockCommand(args: readonly string[], deps: LockDeps): Promise<number> {
  const opened = await openCommand(lockFlags, args, 'lock', lockUsage, deps);
  if (!opened.ok) return opened.code;
  const { flags, client, fail } = opened;
  try {
    return await runLock(flags, client, deps, fail);
  } finally {
    client.close();
  }
}

async function runLock(flags: ParsedFlags, client: ApiClient, deps: LockDeps, fail: (line: string) => number): Promise<number> {
  const [prefix, ...child] = flags.args;
  if (prefix === undefined || child.length === 0) return fail('Key prefix and child command must be specified');
  const limit = Number(lastFlag(flags, 'n') ?? 1);
  if (limit < 1) return fail('Lock holder limit must be positive');
  const timeoutText = lastFlag(flags, 'timeout');
  let timeoutMs = 0;
  if (typeof timeoutText === 'string') {
    const d = parseGoDuration(timeoutText);
    if (!d.ok || d.nanoseconds < 0n) return fail(`invalid value "${timeoutText}" for flag -timeout: ${d.ok ? 'must not be negative' : d.error}`);
    // Beyond a timer's range (about 24.8 days) it is as good as no timeout.
    timeoutMs = d.nanoseconds / 1_000_000n >= 2_147_483_647n ? 0 : Number(d.nanoseconds / 1_000_000n);
  }
  const verbose = lastFlag(flags, 'verbose') === true;
  const info = (line: string): void => void deps.stdout.write(`${line}\n`);
  const shell = lastFlag(flags, 'shell') !== false;
  const passStdin = lastFlag(flags, 'pass-stdin') === true;
  const childExitCode = lastFlag(flags, 'child-exit-code') === true;
  const monitorRetries = Number(lastFlag(flags, 'monitor-retry') ?? 3);
  const script = child.join(' ');
  const nameFlag = lastFlag(flags, 'name');
  const name = typeof nameFlag === 'string' && nameFlag !== '' ? nameFlag : `Consul lock for '${script}' at '${prefix}'`;
  const key = posix.join(prefix, '.lock').replace(/^\/+/, '');

  // A SIGINT/SIGTERM at any point: stop waiting, kill the child, release.
  const shutdown = new AbortController();
  const onSignal = (): void => shutdown.abort();
  deps.signals.on('SIGINT', onSignal);
  deps.signals.on('SIGTERM', onSignal);
  const lost = new AbortController();
  let session: string | undefined;
  let renewTimer: NodeJS.Timeout | undefined;
  try {
    if (verbose) info(limit === 1 ? `Setting up lock at path: ${key}` : `Setting up semaphore (limit ${limit}) at prefix: ${prefix}`);
    session = await createSession(client, name);
    const id = session;
    const renew = async (): Promise<void> => {
      try {
        await client.request({ method: 'PUT', path: `/v1/session/renew/${id}`, timeoutMs: requestMarginMs });
      } catch (err) {
        // Gone (404): the lock is lost. Anything else: the next renew tries again, well within the TTL.
        if ((err as { code?: number }).code === 404) lost.abort();
      }
      if (!lost.signal.aborted && !shutdown.signal.aborted) renewTimer = setTimeout(() => void renew(), renewEveryMs);
    };
    renewTimer = setTimeout(() => void renew(), renewEveryMs);

    if (verbose) info('Attempting lock acquisition');
    const semaphorePrefix = prefix.replace(/^\/+|\/+$/g, '');
    const acquireStop = timeoutMs > 0 ? AbortSignal.any([shutdown.signal, AbortSignal.timeout(timeoutMs)]) : shutdown.signal;
    const acquired = limit === 1 ? await acquire(client, key, id, timeoutMs, shutdown.signal) : await acquireSlot(client, semaphorePrefix, id, limit, acquireStop);
    if (acquired !== true) {
      if (acquired === 'stopped') return fail('Shutdown triggered or timeout during lock acquisition');
      return fail(`Lock acquisition failed: ${acquired}`);
    }
    if (verbose) info('Lock acquired, starting handler');

    const monitor = limit === 1
      ? watchLock(client, key, id, monitorRetries, lost, shutdown.signal)
      : watchSlot(client, semaphorePrefix, id, limit, monitorRetries, lost, shutdown.signal);
    const proc = spawn(shell ? '/bin/sh' : (child[0] as string), shell ? ['-c', script] : child.slice(1), {
      stdio: [passStdin ? 'inherit' : 'ignore', 'inherit', 'inherit'],
      detached: true,
    });
    const exited = new Promise<{ code: number | null; error?: string }>((resolve) => {
      proc.once('error', (err) => resolve({ code: null, error: errorText(err) }));
      proc.once('exit', (code, signal) => resolve({ code, ...(signal !== null ? { error: `signal: ${signal}` } : {}) }));
    });
    const stop = new Promise<'lost' | 'shutdown'>((resolve) => {
      lost.signal.addEventListener('abort', () => resolve('lost'), { once: true });
      shutdown.signal.addEventListener('abort', () => resolve('shutdown'), { once: true });
    });
    const first = await Promise.race([exited, stop]);
    let childFailed = false;
    if (first === 'lost' || first === 'shutdown') {
      info(first === 'lost' ? 'Lock lost, killing child' : 'Shutdown triggered, killing child');
      await killChild(proc, exited);
    } else if (first.error !== undefined || first.code !== 0) {
      childFailed = true;
      deps.stderr.write(`Error running handler: ${first.error ?? `exit status ${String(first.code)}`}\n`);
    }
    lost.abort(); // ends the monitor
    await monitor;
    clearTimeout(renewTimer);
    const released = limit === 1 ? await release(client, key, id) : await releaseSlot(client, semaphorePrefix, id, limit);
    if (released !== undefined) return fail(`Lock release failed: ${released}`);
    const cleaned = limit === 1 ? await cleanup(client, key) : await cleanupSemaphore(client, semaphorePrefix, limit);
    if (cleaned === 'in-use') {
      if (verbose) info('Cleanup aborted, lock in use');
    } else if (cleaned !== undefined) {
      return fail(`Lock cleanup failed: ${cleaned}`);
    } else if (verbose) info('Cleanup succeeded');
    return childFailed && childExitCode ? 2 : 0;
  } catch (err) {
    return fail(`Lock acquisition failed: ${errorText(err)}`);
  } finally {
    clearTimeout(renewTimer);
    deps.signals.off('SIGINT', onSignal);
    deps.signals.off('SIGTERM', onSignal);
    if (session !== undefined) {
      // Safe to drop: the session would expire by itself after 2 x TTL.
      await client.request({ method: 'PUT', path: `/v1/session/destroy/${session}`, timeoutMs: requestMarginMs }).catch(() => undefined);
    }
  }
}

async function createSession(client: ApiClient, name: string): Promise<string> {
  const r = await client.json<{ ID: string }>({
    method: 'PUT', path: '/v1/session/create', body: JSON.stringify({ Name: name, TTL: sessionTtl }), timeoutMs: requestMarginMs,
  });
  return r.value.ID;
}

async function readKey(client: ApiClient, key: string, index: number, signal: AbortSignal): Promise<{ entry: Entry | undefined; index: number }> {
  const query = index > 0 ? `?index=${index}&wait=${blockingWait}` : '';
  const r = await client.request({ method: 'GET', path: `/v1/kv/${escapeKey(key)}${query}`, timeoutMs: 15_000 + requestMarginMs, accept: [404], signal });
  const answerIndex = Number(r.headers['x-consul-index'] ?? 0);
  if (r.status === 404) return { entry: undefined, index: answerIndex };
  // Flags is a uint64 (the lock flag is above 2^53): read as exact digits.
  return { entry: parseKvEntries(r.body)[0], index: answerIndex };
}

/** true once held; 'stopped' on shutdown or timeout; otherwise why it cannot be taken. */
async function acquire(client: ApiClient, key: string, session: string, timeoutMs: number, shutdown: AbortSignal): Promise<true | 'stopped' | string> {
  const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Number.POSITIVE_INFINITY;
  const stop = timeoutMs > 0 ? AbortSignal.any([shutdown, AbortSignal.timeout(timeoutMs)]) : shutdown;
  let index = 0;
  while (!stop.aborted && Date.now() < deadline) {
    let read;
    try {
      read = await readKey(client, key, index, stop);
    } catch (err) {
      if (stop.aborted) break;
      throw err;
    }
    const { entry } = read;
    if (entry !== undefined && BigInt(entry.Flags) !== lockFlagValue) return 'Existing key does not match lock use';
    if (entry?.Session !== undefined && entry.Session !== '' && entry.Session !== session) {
      index = read.index; // held: wait for it to change
      continue;
    }
    const put = await client.json<boolean>({
      method: 'PUT', path: `/v1/kv/${escapeKey(key)}?acquire=${session}&flags=${lockFlagValue}`, body: '', timeoutMs: requestMarginMs,
    });
    if (put.value === true) return true;
    // Not held, yet refused: lock-delay after an invalidation. Try again a little later.
    await pause(lockRetryMs, stop);
    index = 0;
  }
  return 'stopped';
}

/** Watches the key; aborts `lost` when this session no longer holds it (after `retries` failed reads). */
function watchLock(client: ApiClient, key: string, session: string, retries: number, lost: AbortController, shutdown: AbortSignal): Promise<void> {
  return watchHeld(async (index, signal) => {
    const read = await readKey(client, key, index, signal);
    return { held: read.entry !== undefined && read.entry.Session === session, index: read.index };
  }, retries, lost, shutdown);
}

async function release(client: ApiClient, key: string, session: string): Promise<string | undefined> {
  try {
    await client.request({ method: 'PUT', path: `/v1/kv/${escapeKey(key)}?release=${session}&flags=${lockFlagValue}`, body: '', timeoutMs: requestMarginMs });
    return undefined;
  } catch (err) {
    return errorText(err);
  }
}

/** Deletes the lock key unless someone holds it (check-and-set on what was read). */
async function cleanup(client: ApiClient, key: string): Promise<'in-use' | string | undefined> {
  try {
    const { entry } = await readKey(client, key, 0, new AbortController().signal);
    if (entry === undefined) return undefined;
    if (entry.Session !== undefined && entry.Session !== '') return 'in-use';
    const r = await client.json<boolean>({ method: 'DELETE', path: `/v1/kv/${escapeKey(key)}?cas=${entry.ModifyIndex}`, timeoutMs: requestMarginMs });
    return r.value ? undefined : 'in-use';
  } catch (err) {
    return errorText(err);
  }
}

/** SIGTERM to the child's process group, SIGKILL after a grace period. */
async function killChild(proc: ChildProcess, exited: Promise<unknown>): Promise<void> {
  const group = (sig: NodeJS.Signals): void => {
    try {
      if (proc.pid !== undefined) process.kill(-proc.pid, sig);
    } catch {
      // Already gone.
    }
  };
  group('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      group('SIGKILL');
      resolve();
    }, killGraceMs);
  });
  await Promise.race([exited, grace]);
  clearTimeout(timer);
  await exited;
}


