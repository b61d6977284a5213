// `conclave snapshot save | inspect | restore` as a user runs them: the real executable against real
// agent processes on loopback. Save through a follower (forwarded to the leader) and with -stale,
// inspect the file, change the state, restore the file, and find the saved state on every server.
// With ACLs on, a save without a token is Consul's 403 line and leaves no file; with the management
// token (flag or token file) it works.
//
// Needs the agent's /v1/snapshot endpoint (save and restore) and, for the second test, the acl block
// in the agent configuration.

import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProcessCluster, waitFor } from '../support/process-cluster.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function conclave(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    for (const k of ['CONSUL_HTTP_ADDR', 'CONSUL_HTTP_TOKEN', 'CONSUL_HTTP_TOKEN_FILE']) if (!(k in env)) delete childEnv[k];
    execFile(process.execPath, ['--import=tsx', 'src/cli/main.ts', ...args], { cwd: root, timeout: 120_000, env: childEnv }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
    });
  });
}

async function scratch(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-snapshot-e2e-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const addr = (c: ProcessCluster, i: number): string => `127.0.0.1:${c.node(i).httpPort}`;

test('save through a follower, inspect, change the state, restore: every server has the saved state', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3 });
  c.startAll();
  const leader = await c.leader();
  const follower = [0, 1, 2].find((i) => i !== leader)!;
  for (let i = 0; i < 20; i++) await c.put(leader, `app/config/k${i}`, `value-${i}`);
  await c.put(leader, 'other/x', 'keep me');
  const dir = await scratch(t);
  const file = join(dir, 'backup.snap');

  const saved = await conclave(['snapshot', 'save', '-http-addr', addr(c, follower), file]);
  t.is(saved.code, 0, saved.stderr);
  const m = /^Saved and verified snapshot to index (\d+)\n$/.exec(saved.stdout);
  t.truthy(m, saved.stdout);
  const index = Number(m?.[1]);
  t.true(index > 0);
  t.true(existsSync(file));
  t.false(existsSync(`${file}.unverified`));
  t.is(statSync(file).mode & 0o777, 0o600);
  t.regex(saved.stderr, /Saving snapshot: .* received in/, 'progress on stderr, off a terminal: the final line');

  const stale = await conclave(['snapshot', 'save', '-stale', join(dir, 'stale.snap')], { CONSUL_HTTP_ADDR: `http://${addr(c, follower)}` });
  t.is(stale.code, 0, stale.stderr);
  t.regex(stale.stdout, /^Saved and verified snapshot to index \d+\n$/);

  const inspected = await conclave(['snapshot', 'inspect', file]);
  t.is(inspected.code, 0, inspected.stderr);
  t.regex(inspected.stdout, new RegExp(`^ Index {8}${index}$`, 'm'));
  t.regex(inspected.stdout, /^ KVS +21 +\S+$/m);
  const json = await conclave(['snapshot', 'inspect', '-format', 'json', '-kvdetails', '-kvdepth', '1', file]);
  t.is(json.code, 0, json.stderr);
  const info = JSON.parse(json.stdout) as { Meta: { Index: number }; StatsKV: Array<{ Name: string; Count: number }>; Producer?: { Name: string } };
  t.is(info.Meta.Index, index);
  t.deepEqual(info.StatsKV.map((s) => [s.Name, s.Count]).sort(), [['app', 20], ['other', 1]]);
  t.is(info.Producer?.Name, 'conclave');
  const decoded = await conclave(['snapshot', 'decode', file]);
  t.is(decoded.code, 0, decoded.stderr);
  t.true(decoded.stdout.split('\n')[0]!.includes('"Type":"SnapshotHeader"'));
  t.true(decoded.stdout.includes(`"Key":"other/x"`));

  await c.put(leader, 'app/config/k0', 'changed');
  await c.put(leader, 'new/key', 'not in the snapshot');
  const del = await c.http(leader, '/v1/kv/other/x', { method: 'DELETE' });
  t.is(del.status, 200);

  const restored = await conclave(['snapshot', 'restore', '-http-addr', addr(c, follower), file]);
  t.is(restored.code, 0, restored.stderr);
  t.is(restored.stdout, 'Restored snapshot\n');

  for (const i of [0, 1, 2]) {
    await waitFor(`node ${i} to have the restored state`, async () => {
      const [k0, other, added] = await Promise.all([c.getRaw(i, 'app/config/k0', '&stale'), c.getRaw(i, 'other/x', '&stale'), c.getRaw(i, 'new/key', '&stale')]);
      return k0 === 'value-0' && other === 'keep me' && added === undefined ? true : undefined;
    }, 30_000, () => c.describe());
  }
  t.is(await c.getRaw(leader, 'app/config/k19'), 'value-19');
});

test('with ACLs: no token is Consul\'s 403 line and no file; the management token by flag or file works', async (t) => {
  const c = await ProcessCluster.create(t, { size: 1 });
  const secret = 'e2e-management-secret';
  const config = JSON.parse(await readFile(c.node(0).configFile, 'utf8')) as Record<string, unknown>;
  config['acl'] = { enabled: true, default_policy: 'deny', tokens: { initial_management: secret } };
  await writeFile(c.node(0).configFile, JSON.stringify(config, null, 2));
  c.startAll();
  await c.leader();
  await c.http(0, '/v1/kv/acl/k', { method: 'PUT', body: 'v', headers: { 'X-Consul-Token': secret } });
  const dir = await scratch(t);

  const denied = await conclave(['snapshot', 'save', '-http-addr', addr(c, 0), join(dir, 'denied.snap')]);
  t.is(denied.code, 1);
  t.regex(denied.stderr, /^Error saving snapshot: Unexpected response code: 403 \((Permission denied|ACL not found)[^\n]*\)\n$/);
  t.is(denied.stdout, '');
  t.false(existsSync(join(dir, 'denied.snap')));
  t.false(existsSync(join(dir, 'denied.snap.unverified')));

  const wrong = await conclave(['snapshot', 'save', '-http-addr', addr(c, 0), '-token', 'not-the-secret', join(dir, 'wrong.snap')]);
  t.is(wrong.code, 1);
  t.regex(wrong.stderr, /^Error saving snapshot: Unexpected response code: 403 /);
  t.false(wrong.stderr.includes('not-the-secret'), 'the token is never printed');

  const ok = await conclave(['snapshot', 'save', '-http-addr', addr(c, 0), '-token', secret, join(dir, 'ok.snap')]);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, /^Saved and verified snapshot to index \d+\n$/);
  t.false(ok.stdout.includes(secret) || ok.stderr.includes(secret));

  const deniedRestore = await conclave(['snapshot', 'restore', '-http-addr', addr(c, 0), join(dir, 'ok.snap')]);
  t.is(deniedRestore.code, 1);
  t.regex(deniedRestore.stderr, /^Error restoring snapshot: Unexpected response code: 403 /);

  await writeFile(join(dir, 'token'), `${secret}\n`);
  const restored = await conclave(['snapshot', 'restore', join(dir, 'ok.snap')], { CONSUL_HTTP_ADDR: addr(c, 0), CONSUL_HTTP_TOKEN_FILE: join(dir, 'token') });
  t.is(restored.code, 0, restored.stderr);
  t.is(restored.stdout, 'Restored snapshot\n');
});
