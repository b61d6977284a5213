// `conclave agent -dev` as a real process: it elects itself, serves the KV API, and on SIGTERM exits 0
// and leaves no temporary data directory behind; with -data-dir it keeps that directory. TMPDIR points
// at a scratch directory per test, so "nothing left behind" is checked exactly, and every process is
// stopped by its own PID.

import test, { type ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDev, type DevAgent } from '../support/dev-agent.js';
import { freePorts, sleep, waitFor } from '../support/process-cluster.js';

async function scratch(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-dev-process-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The conclave-dev-* directories in `tmp` (tsx keeps its own cache there too). */
async function devDirs(tmp: string): Promise<string[]> {
  return (await readdir(tmp)).filter((n) => n.startsWith('conclave-dev-'));
}

async function http(d: DevAgent, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`http://127.0.0.1:${d.httpPort}${path}`, { ...init, signal: AbortSignal.timeout(10_000) });
}

/** Waits for a leader, writes and reads a key, then SIGTERMs the agent and returns its exit status. */
async function exercise(t: ExecutionContext, d: DevAgent): Promise<number | null> {
  const leader = await waitFor('the dev server to elect itself', async () => {
    const r = await http(d, '/v1/status/leader');
    const v = r.status === 200 ? String(await r.json()) : '';
    return v === '' ? undefined : v;
  }, 30_000, () => d.output.join('').split('\n').slice(-20).join('\n'));
  t.regex(leader, /^127\.0\.0\.1:\d+$/);
  const put = await http(d, '/v1/kv/dev/hello', { method: 'PUT', body: 'world' });
  t.is(put.status, 200, await put.clone().text());
  t.is(await put.json(), true);
  const get = await http(d, '/v1/kv/dev/hello?raw');
  t.is(get.status, 200);
  t.is(await get.text(), 'world');
  d.proc.kill('SIGTERM');
  return Promise.race([d.exited, sleep(20_000).then(() => 'timeout' as const)]).then((c) => {
    if (c === 'timeout') throw new Error(`no exit within 20 s of SIGTERM:\n${d.output.join('')}`);
    return c;
  });
}

/** The first JSON log line's configuration (stdout is a pipe, so logs are JSON). */
function loggedConfig(d: DevAgent): { dataDir: string; dev: boolean; dataDirIsTemporary: boolean } {
  for (const line of d.output.join('').split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { msg?: string; config?: { dataDir: string; dev: boolean; dataDirIsTemporary: boolean } };
    if (entry.msg === 'starting Conclave agent' && entry.config !== undefined) return entry.config;
  }
  throw new Error(`no configuration line in:\n${d.output.join('')}`);
}

test('conclave agent -dev: elects itself, serves KV, exits 0 on SIGTERM and removes its temporary data dir', async (t) => {
  const tmp = await scratch(t);
  const d = await startDev(t, tmp);
  t.is(await exercise(t, d), 0, d.output.join(''));
  const config = loggedConfig(d);
  t.true(config.dev && config.dataDirIsTemporary);
  t.true(config.dataDir.startsWith(join(tmp, 'conclave-dev-')), config.dataDir);
  t.false(existsSync(config.dataDir), 'the temporary data directory is gone');
  t.deepEqual(await devDirs(tmp), [], 'no conclave-dev-* left in TMPDIR');
});

test('conclave agent -dev -data-dir X: X is used and kept', async (t) => {
  const tmp = await scratch(t);
  const kept = join(await scratch(t), 'kept');
  const d = await startDev(t, tmp, ['-data-dir', kept]);
  t.is(await exercise(t, d), 0, d.output.join(''));
  t.like(loggedConfig(d), { dev: true, dataDir: kept, dataDirIsTemporary: false });
  t.true(existsSync(join(kept, 'node-name')), 'the data directory and what the server wrote there are kept');
  t.deepEqual(await devDirs(tmp), [], 'no temporary directory was made');
});

test('conclave agent -dev that fails to start (its HTTP port taken) exits 1 and removes its temporary data dir', async (t) => {
  const tmp = await scratch(t);
  const { createServer } = await import('node:net');
  const blocker = createServer();
  const [port] = (await freePorts(1)) as [number];
  await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const d = await startDev(t, tmp, ['-http-port', String(port)]);
  const code = await Promise.race([d.exited, sleep(30_000).then(() => 'timeout' as const)]);
  t.is(code, 1, d.output.join(''));
  t.regex(d.output.join(''), /"msg":"Error starting agent"/, 'it got as far as starting');
  t.regex(d.output.join(''), /"msg":"removed the temporary data directory of dev mode"/);
  t.deepEqual(await devDirs(tmp), [], 'the temporary data directory is gone');
});
