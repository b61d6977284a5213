// One chaos run: a 3-node cluster of agent processes on loopback, a client workload recording every
// operation (history.ts), a nemesis drawn from a seed, then the checks: the history is linearizable
// (checker.ts) and every server ends with the same state (its decoded stale save, indexes included).
//
// Workload: `workers` workers, each one operation in flight, against random servers:
//   write      PUT /v1/kv/<key> with a value unique in the run (so no value is ever written twice);
//   cas        a ?consistent read for the ModifyIndex, then PUT ?cas=<index>; a true answer is the model's
//              cas(from = the value read, to); a false one changed nothing and is recorded as failed
//              (a restore can rewrite a key to an old value with a new index, so "false" does not
//              prove the value differed);
//   read       GET, default or ?consistent at random;
//   acquire / release  PUT ?acquire= / ?release= with the worker's session (NodeChecks [] and no TTL:
//              nothing but a restore ends it; a restore that drops it makes the next lock call fail,
//              and the worker creates a new one).
// Outcomes: 2xx is ok; what certainly did not take effect (connection refused, 4xx, the server's "not
// applied" answers, a read's error) is failed; anything else (a timeout, an unknown outcome) is
// indeterminate: it may or may not have taken effect, at any time after its call.
//
// Nemesis (seeded): every `faultEveryMs` one fault among SIGKILL and restart of a random server, SIGKILL
// of the leader, SIGSTOP/SIGCONT of a random server, and a `PUT /v1/snapshot` restore of an archive
// saved earlier in the run, through a random server (the leader or a follower). A restore is an
// operation of the history: a write of every key's snapshot value and lock holder at once.
// Not yet: network partitions and clock jumps (issue 11 names them; they need network namespaces).
//
// Everything ends: the run has a deadline, every request a timeout, every wait a bound; the checker its
// limits ("unknown" is reported, never taken for "ok").

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeArchive } from '../support/snapshots.js';
import { ProcessCluster, sleep, waitFor } from '../support/process-cluster.js';
import { prng } from '../support/prng.js';
import { checkHistory, type CheckResult } from './checker.js';
import { HistoryRecorder, type SnapshotState } from './history.js';

export type FaultKind = 'kill' | 'kill-leader' | 'pause' | 'restore';
export const faultKinds: readonly FaultKind[] = ['kill', 'kill-leader', 'pause', 'restore'];

export interface ChaosOptions {
  readonly seed: number;
  readonly seconds: number;
  readonly workers?: number;
  readonly faultEveryMs?: number;
  /** A server defect planted through the agents' environment (CONCLAVE_TEST_PLANTED_BUG). */
  readonly plantedBug?: 'stale-default-read';
  /** Where a failing history's timeline goes. */
  readonly reportDir: string;
  readonly log?: (line: string) => void;
}

export interface ChaosResult {
  readonly seed: number;
  readonly verdict: 'ok' | 'violation' | 'unknown' | 'diverged';
  readonly ops: number;
  readonly okOps: number;
  readonly indeterminate: number;
  readonly faults: Readonly<Record<FaultKind, number>>;
  readonly restores: number;
  readonly check: CheckResult;
  /** Why the run failed, in a line; '' when it passed. */
  readonly why: string;
}

const registerKeys = ['r0', 'r1', 'r2', 'r3', 'r4', 'r5'];
const lockKeys = ['l0', 'l1'];
const requestTimeoutMs = 4_000;
const prefix = 'chaos/';

/** A command that repeats a run's fault schedule (the workload's timing is not deterministic). */
export function repeatCommand(o: Pick<ChaosOptions, 'seed' | 'seconds' | 'plantedBug'>): string {
  return `npm run chaos -- --runs 1 --seed ${o.seed} --seconds ${o.seconds}${o.plantedBug === undefined ? '' : ` --bug ${o.plantedBug}`}`;
}

export async function runChaos(t: { teardown(f: () => Promise<void>): void }, o: ChaosOptions): Promise<ChaosResult> {
  const log = o.log ?? (() => undefined);
  // The nemesis draws from its own generator, so a seed repeats its fault schedule whatever the
  // workload's timing; the workers share another (their operations depend on timing anyway).
  const faultRandom = prng(o.seed);
  const random = prng((o.seed * 7919 + 17) >>> 0);
  const pick = <T>(items: readonly T[], from: () => number = random): T => items[from() % items.length] as T;
  const c = await ProcessCluster.create(t, {
    size: 3, tickMs: 50, electionTimeoutTicks: 20,
    ...(o.plantedBug === undefined ? {} : { env: { CONCLAVE_TEST_PLANTED_BUG: o.plantedBug } }),
  });
  c.startAll();
  await c.leader();
  await c.catalogSettled(0);
  const history = new HistoryRecorder();
  const deadline = performance.now() + o.seconds * 1000;
  const faults: Record<FaultKind, number> = { kill: 0, 'kill-leader': 0, pause: 0, restore: 0 };
  let restores = 0;
  let seq = 0;
  let archive: { bytes: Buffer; state: SnapshotState } | undefined;

  const http = async (i: number, path: string, init: RequestInit = {}): Promise<{ status: number; text: string }> => {
    const r = await fetch(`http://127.0.0.1:${c.node(i).httpPort}${path}`, { ...init, signal: AbortSignal.timeout(requestTimeoutMs) });
    return { status: r.status, text: await r.text() };
  };
  const anyNode = (from: () => number = random): number => from() % 3;
  /** Whether an error or answer proves the operation did not take effect. */
  const certainlyNot = (e: unknown): boolean => {
    const text = e instanceof Error ? `${e.message} ${String((e as { cause?: unknown }).cause ?? '')}` : String(e);
    return /ECONNREFUSED/.test(text);
  };
  const notApplied = (r: { status: number; text: string }): boolean =>
    (r.status >= 400 && r.status < 500) || /the write was not applied|No cluster leader|nothing was written/.test(r.text);

  const worker = async (w: number): Promise<void> => {
    const name = `w${w}`;
    let session = '';
    const newSession = async (): Promise<void> => {
      const r = await http(anyNode(), '/v1/session/create', { method: 'PUT', body: JSON.stringify({ Name: name, NodeChecks: [], LockDelay: '0s' }) });
      session = r.status === 200 ? (JSON.parse(r.text) as { ID: string }).ID : '';
    };
    while (performance.now() < deadline) {
      const roll = random() % 100;
      const node = anyNode();
      try {
        if (session === '' && roll >= 80) await newSession().catch(() => undefined);
        if (roll < 30) {
          const key = pick(registerKeys);
          const value = `${name}-${++seq}`;
          const op = history.invoke(name, { kind: 'write', key, input: value });
          try {
            const r = await http(node, `/v1/kv/${prefix}${key}`, { method: 'PUT', body: value });
            if (r.status === 200) op.ok(null);
            else if (notApplied(r)) op.fail();
            else op.info();
          } catch (e) {
            if (certainlyNot(e)) op.fail();
            else op.info();
          }
        } else if (roll < 45) {
          const key = pick(registerKeys);
          const read = await http(node, `/v1/kv/${prefix}${key}?consistent`).catch(() => undefined);
          if (read === undefined || (read.status !== 200 && read.status !== 404)) continue;
          const entry = read.status === 404 ? undefined : (JSON.parse(read.text) as Array<{ ModifyIndex: number; Value: string | null }>)[0];
          const from = entry?.Value === undefined || entry.Value === null ? null : Buffer.from(entry.Value, 'base64').toString('utf8');
          const to = `${name}-${++seq}`;
          const op = history.invoke(name, { kind: 'cas', key, input: { from, to } });
          try {
            const r = await http(node, `/v1/kv/${prefix}${key}?cas=${entry?.ModifyIndex ?? 0}`, { method: 'PUT', body: to });
            if (r.status === 200 && r.text === 'true') op.ok(true);
            else if (r.status === 200 || notApplied(r)) op.fail();
            else op.info();
          } catch (e) {
            if (certainlyNot(e)) op.fail();
            else op.info();
          }
        } else if (roll < 80) {
          const key = pick(registerKeys);
          const mode = random() % 2 === 0 ? '' : '?consistent';
          const op = history.invoke(name, { kind: 'read', key, input: null });
          try {
            const r = await http(node, `/v1/kv/${prefix}${key}${mode}`);
            if (r.status === 404) op.ok(null);
            else if (r.status === 200) {
              const e = (JSON.parse(r.text) as Array<{ Value: string | null }>)[0];
              op.ok(e?.Value === null || e?.Value === undefined ? '' : Buffer.from(e.Value, 'base64').toString('utf8'));
            } else op.fail();
          } catch {
            op.fail();
          }
        } else if (session !== '') {
          const key = pick(lockKeys);
          const kind = roll < 90 ? 'acquire' : 'release';
          const op = history.invoke(name, { kind, key, input: session });
          try {
            const r = await http(node, `/v1/kv/${prefix}${key}?${kind}=${session}`, { method: 'PUT', body: name });
            if (r.status === 200) op.ok(r.text === 'true');
            else {
              if (/invalid session|missing session/i.test(r.text)) session = '';
              if (notApplied(r)) op.fail();
              else op.info();
            }
          } catch (e) {
            if (certainlyNot(e)) op.fail();
            else op.info();
          }
        }
      } catch (error) {
        log(`worker ${name}: ${(error as Error).message}`);
      }
    }
  };

  const saveArchive = async (): Promise<void> => {
    const r = await fetch(`http://127.0.0.1:${c.node(anyNode(faultRandom)).httpPort}/v1/snapshot`, { signal: AbortSignal.timeout(20_000) }).catch(() => undefined);
    if (r === undefined || r.status !== 200) return;
    const bytes = Buffer.from(await r.arrayBuffer());
    const decoded = await decodeArchive(bytes);
    const kv: Record<string, string | null> = {};
    for (const key of registerKeys) kv[key] = decoded.kv.get(prefix + key)?.value ?? null;
    const locks: Record<string, string | null> = {};
    for (const key of lockKeys) locks[key] = decoded.locks.get(prefix + key) ?? null;
    archive = { bytes, state: { kv, locks } };
  };

  const nemesis = async (): Promise<void> => {
    const every = o.faultEveryMs ?? 4_000;
    await sleep(every / 2);
    await saveArchive();
    // Each kind once first, in a seeded order, so a short run has them all; then at random.
    const order = [...faultKinds].sort(() => (faultRandom() % 3) - 1);
    for (let n = 0; performance.now() < deadline - every; n++) {
      const kind = n < order.length ? order[n] as FaultKind : pick(faultKinds, faultRandom);
      faults[kind]++;
      try {
        if (kind === 'kill' || kind === 'kill-leader') {
          const victim = kind === 'kill' ? anyNode(faultRandom) : await c.leader(10_000);
          log(`nemesis: SIGKILL ${c.node(victim).name}${kind === 'kill-leader' ? ' (the leader)' : ''}`);
          await c.kill(victim);
          await sleep(every / 2);
          c.start(victim);
        } else if (kind === 'pause') {
          const victim = anyNode(faultRandom);
          log(`nemesis: SIGSTOP ${c.node(victim).name}`);
          c.pause(victim);
          await sleep(every / 2);
          c.resume(victim);
        } else {
          if (archive === undefined) await saveArchive();
          const a = archive;
          if (a !== undefined) {
            const via = anyNode(faultRandom);
            log(`nemesis: restore through ${c.node(via).name}`);
            const op = history.invoke('nemesis', { kind: 'restore', key: '', input: a.state });
            restores++;
            try {
              const r = await fetch(`http://127.0.0.1:${c.node(via).httpPort}/v1/snapshot`, { method: 'PUT', body: new Uint8Array(a.bytes), signal: AbortSignal.timeout(30_000) });
              const text = await r.text();
              if (r.status === 200) op.ok(null);
              else if (r.status === 400 || /not applied|nothing was restored|No cluster leader/.test(text)) op.fail();
              else op.info();
            } catch (e) {
              if (certainlyNot(e)) op.fail();
              else op.info();
            }
            await saveArchive();
          }
        }
      } catch (error) {
        log(`nemesis ${kind}: ${(error as Error).message}`);
      }
      await sleep(every / 2);
    }
  };

  await Promise.all([nemesis(), ...Array.from({ length: o.workers ?? 5 }, (_, w) => worker(w))]);

  // Heal: every server running and resumed; a leader; every server applied the same state.
  for (let i = 0; i < 3; i++) {
    const n = c.node(i);
    if (n.paused === true) c.resume(i);
    if (n.proc === undefined) c.start(i);
  }
  await c.leader(60_000);
  const ops = history.history();
  const reportFile = join(o.reportDir, `chaos-seed-${o.seed}.txt`);
  const check = checkHistory(ops, { reportFile });
  let diverged = '';
  await waitFor('every server to hold the same state', async () => {
    const states: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`http://127.0.0.1:${c.node(i).httpPort}/v1/snapshot?stale`, { signal: AbortSignal.timeout(20_000) }).catch(() => undefined);
      if (r === undefined || r.status !== 200) return undefined;
      const d = await decodeArchive(Buffer.from(await r.arrayBuffer()));
      // The whole state, indexes included: entries with their flags and indexes, tombstones, table
      // indexes and the applied index, locks, sessions, catalog.
      states.push(JSON.stringify([
        d.lastIndex, [...d.kv].map(([k, v]) => [k, v.value, String(v.flags), v.createIndex, v.modifyIndex]).sort(),
        [...d.tombstones].sort(), [...d.indexes].sort(), [...d.locks].sort(), d.sessions, d.catalog,
      ]));
    }
    return states.every((s) => s === states[0]) ? true : undefined;
  }, 60_000).catch((e: unknown) => {
    diverged = (e as Error).message;
  });
  const verdict = diverged !== '' ? 'diverged' : check.verdict;
  const why = verdict === 'ok' ? '' : verdict === 'diverged' ? diverged : `${check.summary} (${reportFile})`;
  if (verdict !== 'ok') await writeFile(join(o.reportDir, `chaos-seed-${o.seed}.summary.txt`), `${why}\nrepeat: ${repeatCommand(o)}\n`);
  return {
    seed: o.seed, verdict, ops: ops.length, okOps: ops.filter((op) => op.status === 'ok').length,
    indeterminate: ops.filter((op) => op.status === 'info').length, faults, restores, check, why,
  };
}
