// `conclave lock` through runCli against a real HTTP server over a real FSM (the HTTP harness), with real
// child processes: usage errors, the lock held while the child runs and cleaned up after, the child's
// exit status with and without -child-exit-code, a conflicting key, -timeout while another session holds
// the lock, and a lost lock killing the child.

import test, { type ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lockFlagValue } from '../../src/cli/lock.js';
import { runCliCaptured, type CliRun } from '../support/cli-run.js';
import { startHarness, type Harness } from '../support/http-harness.js';

function lock(h: Harness | undefined, argv: string[]): Promise<CliRun> {
  return runCliCaptured(['lock', ...argv], h === undefined ? {} : { CONSUL_HTTP_ADDR: `127.0.0.1:${h.http.address.port}` });
}

async function scratch(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-lock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A child that records what it saw of the lock key (through the agent) and exits with `code`. */
async function childScript(dir: string, h: Harness, code = 0, ms = 0): Promise<string> {
  const path = join(dir, 'child.mjs');
  await writeFile(path, `
import { writeFileSync } from 'node:fs';
// The handler goes in before seen.json is written: the test sends the signal as soon as it sees that file.
process.on('SIGTERM', () => { writeFileSync(${JSON.stringify(join(dir, 'terminated'))}, 'yes'); process.exit(0); });
const r = await fetch('http://127.0.0.1:${h.http.address.port}/v1/kv/jobs/nightly/.lock');
writeFileSync(${JSON.stringify(join(dir, 'seen.json'))}, await r.text());
setTimeout(() => process.exit(${code}), ${ms});
`);
  return path;
}

test('lock: usage errors and help', async (t) => {
  const none = await lock(undefined, []);
  t.is(none.code, 1);
  t.is(none.stderr, 'Key prefix and child command must be specified\n');
  t.is((await lock(undefined, ['only-prefix'])).stderr, 'Key prefix and child command must be specified\n');
  const zero = await lock(undefined, ['-n', '0', 'p', 'true']);
  t.is(zero.code, 1);
  t.is(zero.stderr, 'Lock holder limit must be positive\n');
  const help = await lock(undefined, ['-h']);
  t.is(help.code, 0);
  t.regex(help.stdout, /^Usage: conclave lock \[options\] prefix child\.\.\./);
  t.regex(help.stdout, /-child-exit-code/);
  const bad = await lock(undefined, ['-timeout', 'soon', 'p', 'true']);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /invalid value "soon" for flag -timeout/);
});

test('lock: the child runs holding <prefix>/.lock; afterwards the key and the session are gone', async (t) => {
  const h = await startHarness(t);
  const dir = await scratch(t);
  const child = await childScript(dir, h);
  const r = await lock(h, ['-shell=false', '-verbose', 'jobs/nightly', process.execPath, child]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /Setting up lock at path: jobs\/nightly\/\.lock\n/);
  t.regex(r.stdout, /Cleanup succeeded\n$/);
  const seen = JSON.parse(await readFile(join(dir, 'seen.json'), 'utf8')) as Array<{ Key: string; Flags: number; Session?: string; LockIndex: number }>;
  t.is(seen[0]?.Key, 'jobs/nightly/.lock');
  t.is(seen[0]?.LockIndex, 1);
  t.truthy(seen[0]?.Session, 'the child ran while a session held the key');
  t.is((await h.request('GET', '/v1/kv/jobs/nightly/.lock')).status, 404, 'the lock key was cleaned up');
  t.deepEqual((await h.request('GET', '/v1/session/list')).json(), [], 'the session was destroyed');
});

test('lock: a failing child is reported; -child-exit-code turns it into status 2', async (t) => {
  const h = await startHarness(t);
  const dir = await scratch(t);
  const child = await childScript(dir, h, 3);
  const plain = await lock(h, ['-shell=false', 'jobs/nightly', process.execPath, child]);
  t.is(plain.code, 0);
  t.is(plain.stderr, 'Error running handler: exit status 3\n');
  const strict = await lock(h, ['-shell=false', '-child-exit-code', 'jobs/nightly', process.execPath, child]);
  t.is(strict.code, 2);
  // Through the shell (the default), arguments are one command line.
  const shell = await lock(h, ['jobs/nightly', 'exit', '0']);
  t.is(shell.code, 0, shell.stderr);
});

test('lock: a key there that is not a lock is Consul\'s conflict; a held lock times out with -timeout', async (t) => {
  const h = await startHarness(t);
  await h.request('PUT', '/v1/kv/other/.lock', { body: 'not a lock' });
  const conflict = await lock(h, ['other', 'true']);
  t.is(conflict.code, 1);
  t.is(conflict.stderr, 'Lock acquisition failed: Existing key does not match lock use\n');
  const id = (JSON.parse((await h.request('PUT', '/v1/session/create')).text) as { ID: string }).ID;
  t.is((await h.request('PUT', `/v1/kv/busy/.lock?acquire=${id}&flags=${lockFlagValue}`, { body: '' })).text, 'true');
  const timedOut = await lock(h, ['-timeout', '1s', 'busy', 'true']);
  t.is(timedOut.code, 1);
  t.is(timedOut.stderr, 'Shutdown triggered or timeout during lock acquisition\n');
  const held = ((await h.request('GET', '/v1/kv/busy/.lock')).json() as Array<{ Session: string }>)[0];
  t.is(held?.Session, id, 'the other holder still holds it');
});

test('lock: when its session is destroyed, the lock is lost and the child is terminated', async (t) => {
  const h = await startHarness(t);
  const dir = await scratch(t);
  const child = await childScript(dir, h, 0, 60_000);
  const running = lock(h, ['-shell=false', 'jobs/nightly', process.execPath, child]);
  const session = await (async () => {
    for (let i = 0; i < 500; i++) {
      const list = (await h.request('GET', '/v1/session/list')).json() as Array<{ ID: string }>;
      if (list.length > 0 && existsSync(join(dir, 'seen.json'))) return list[0]?.ID;
      await new Promise((r) => setTimeout(r, 20));
    }
    return undefined;
  })();
  t.truthy(session, 'the child started under a session');
  await h.request('PUT', `/v1/session/destroy/${session ?? ''}`);
  const r = await running;
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /Lock lost, killing child\n/);
  t.true(existsSync(join(dir, 'terminated')), 'the child got SIGTERM');
});

test('lock -n 2: Consul\'s semaphore lets two children run at once, never three, and cleans up', async (t) => {
  const h = await startHarness(t);
  const dir = await scratch(t);
  const child = join(dir, 'slot.mjs');
  await writeFile(child, `
import { appendFileSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
const [dir, name] = process.argv.slice(2);
writeFileSync(dir + '/held-' + name, '');
const holders = readdirSync(dir).filter((f) => f.startsWith('held-')).length;
appendFileSync(dir + '/log', (holders > 2 ? 'VIOLATION ' : 'holders ') + holders + '\\n');
setTimeout(() => { unlinkSync(dir + '/held-' + name); process.exit(0); }, 600);
`);
  const runs = await Promise.all(['a', 'b', 'c', 'd'].map((name) => lock(h, ['-n', '2', '-shell=false', 'jobs/pool', process.execPath, child, dir, name])));
  for (const r of runs) t.is(r.code, 0, r.stderr);
  const log = (await readFile(join(dir, 'log'), 'utf8')).trim().split('\n');
  t.is(log.length, 4, 'every run got a slot');
  t.false(log.some((l) => l.startsWith('VIOLATION')), log.join('\n'));
  t.true(log.includes('holders 2'), `two held slots at once: ${log.join(', ')}`);
  t.is((await h.request('GET', '/v1/kv/jobs/pool/?recurse')).status, 404, 'contender keys and .lock are gone');
  const lockRun = await lock(h, ['jobs/pool', 'true']);
  t.is(lockRun.code, 0, 'the prefix is free for a plain lock again');
});

test('lock: a semaphore and a lock on one prefix conflict, as in Consul', async (t) => {
  const h = await startHarness(t);
  const id = (JSON.parse((await h.request('PUT', '/v1/session/create')).text) as { ID: string }).ID;
  t.is((await h.request('PUT', `/v1/kv/mixed/.lock?acquire=${id}&flags=${lockFlagValue}`, { body: '' })).text, 'true');
  const r = await lock(h, ['-n', '2', 'mixed', 'true']);
  t.is(r.code, 1);
  t.is(r.stderr, 'Lock acquisition failed: Existing key does not match semaphore use\n');
  t.deepEqual(((await h.request('GET', '/v1/kv/mixed/?keys')).json() as string[]), ['mixed/.lock'], 'no contender key is left behind');
});
