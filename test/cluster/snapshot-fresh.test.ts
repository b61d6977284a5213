// Saves from a live 3-node cluster under a write load, restored into clusters that never saw that
// data: a fresh 3-node cluster, a fresh 5-node cluster (both on other ports) and a single -dev agent.
// Real agent processes on loopback; every state is read back through the product (each node's own
// ?stale save, decoded) and compared with the archive's. Every wait is on a condition with a generous
// bound (up to eight processes share two cores, so the Raft timeouts are generous too).
//
// The first test takes the archive the later ones restore; they fail at once without it.

import test, { type ExecutionContext } from 'ava';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startDev } from '../support/dev-agent.js';
import { ProcessCluster, sleep, waitFor } from '../support/process-cluster.js';
import {
  checkPrefixCut,
  describeAnswer,
  diffSummary,
  raftServers,
  restore,
  save,
  serverAddresses,
  waitConverged,
  WriteLoad,
  type KvState,
} from '../support/snapshot-load.js';
import { decodeArchive, kvData, type DecodedState } from '../support/snapshots.js';

const raft = { tickMs: 50, electionTimeoutTicks: 20 };

// The source cluster lives for the whole file, so no fresh cluster can be given its ports.
const fileTeardowns: Array<() => Promise<void>> = [];
test.after.always(async () => {
  for (const f of fileTeardowns.reverse()) await f();
});

let source: ProcessCluster | undefined;
let archive: { bytes: Buffer; decoded: DecodedState; kv: KvState } | undefined;

function needArchive(t: ExecutionContext): { bytes: Buffer; decoded: DecodedState; kv: KvState } {
  if (archive === undefined || source === undefined) throw new Error('the first test did not produce an archive');
  return archive;
}

test.serial('a save taken under a write load is a point-in-time cut: acknowledged writes in, each writer a prefix', async (t) => {
  const c = await ProcessCluster.create({ teardown: (f) => fileTeardowns.push(f) }, { size: 3, ...raft });
  source = c;
  c.startAll();
  const leader = await c.leader();
  const follower = [0, 1, 2].find((i) => i !== leader) as number;
  // Base data, some of it deleted again (so the archive's history has tombstones the restore drops).
  for (let i = 0; i < 30; i++) t.true(await c.put(i % 2 === 0 ? leader : follower, `base/k${i}`, `b${i}`));
  for (const i of [3, 7, 11, 20]) t.is((await c.http(follower, `/v1/kv/base/k${i}`, { method: 'DELETE' })).status, 200);
  t.is((await c.http(leader, '/v1/kv/base/k2?flags=42', { method: 'PUT', body: 'with flags' })).status, 200);

  const load = new WriteLoad(c, 'load', 6);
  load.start();
  try {
    await load.waitAcksAfter(0, 15, 60_000);
    // A consistent save through the leader, then one through a follower, both while the writers run.
    const saves = [];
    for (const via of [leader, follower]) {
      const sentAt = performance.now();
      const s = await save(c, via);
      const answeredAt = performance.now();
      t.is(s.status, 200, s.body.toString().slice(0, 200));
      saves.push({ via, s, sentAt, answeredAt });
      await load.waitAcksAfter(answeredAt, 5, 60_000); // the load goes on after each save
    }
    await load.stop();
    t.log(load.summary());
    t.is(load.all().filter((r) => r.outcome !== 'ack').length, 0, `no write fails on a healthy cluster: ${load.summary()}`);

    for (const { via, s, sentAt, answeredAt } of saves) {
      const decoded = await decodeArchive(s.body);
      const kv = kvData(decoded);
      const problems = checkPrefixCut(load, kv, sentAt, answeredAt);
      t.deepEqual(problems, [], `save through ${c.node(via).name} is a prefix cut`);
      const loadKeys = Object.keys(kv).filter((k) => k.startsWith('load/')).length;
      t.true(loadKeys > 6 * 15, `the save through ${c.node(via).name} holds the writes acknowledged before it (${loadKeys})`);
      t.true(loadKeys < load.all().length, 'and not the writes made after it');
      // The base data as written: deleted keys gone, flags kept.
      t.is(kv['base/k3'], undefined);
      t.is(kv['base/k2'], '42:with flags');
      t.is(kv['base/k29'], '0:b29');
      t.is(Number(s.headers.get('x-consul-index')), decoded.meta.Index);
      t.log(`save through ${c.node(via).name}: index ${decoded.meta.Index}, ${loadKeys} load keys of ${load.all().length} written, took ${(answeredAt - sentAt).toFixed(0)} ms`);
    }
    const first = saves[0]?.s as { body: Buffer };
    const decoded = await decodeArchive(first.body);
    archive = { bytes: first.body, decoded, kv: kvData(decoded) };
  } finally {
    await load.stop();
  }
});

/** Restores the archive into a fresh cluster through `via`, and checks every node ends with it. */
async function restoreAndCheck(t: ExecutionContext, c: ProcessCluster, via: number, what: string): Promise<void> {
  const a = needArchive(t);
  const r = await restore(c, via, a.bytes);
  t.is(describeAnswer(r), '200 ""', `restore through the ${what} (${c.node(via).name})`);
  // Once the restore answered, the leader serves the archive's state.
  const leader = await c.leader();
  t.is(await c.getRaw(leader, 'base/k2'), 'with flags');
  t.is(await c.getRaw(leader, 'base/k3'), undefined);
  await waitConverged(c, 60_000, a.kv);
  t.deepEqual(c.nodes.filter((n) => n.proc === undefined).map((n) => n.name), [], 'every node is still up');
  t.pass(`every node holds the archive's ${Object.keys(a.kv).length} keys after the restore through the ${what}`);
}

async function freshClusterTest(t: ExecutionContext, size: number, order: Array<'leader' | 'follower'>): Promise<void> {
  const a = needArchive(t);
  const c = await ProcessCluster.create(t, { size, ...raft });
  const theirs = serverAddresses(source as ProcessCluster);
  const ours = serverAddresses(c);
  t.deepEqual(ours.filter((x) => theirs.includes(x)), [], 'the fresh cluster runs on other ports than the source');
  t.deepEqual(a.decoded.meta.Configuration.Servers.map((s) => s.Address).sort(), theirs, 'the archive records the source\'s configuration');
  c.startAll();
  let leader = await c.leader();
  t.true(await c.put(leader, 'fresh/own', 'before the restore'), 'the fresh cluster has its own data first');

  for (const [round, kind] of order.entries()) {
    leader = await c.leader();
    const via = kind === 'leader' ? leader : (c.running().find((i) => i !== leader) as number);
    await restoreAndCheck(t, c, via, kind);
    for (const i of c.running()) {
      t.deepEqual(await raftServers(c, i), ours, `${c.node(i).name} keeps its own Raft configuration, not the source's`);
    }
    // Writes work after, through a follower and the leader, and reach every node.
    leader = await c.leader();
    const follower = c.running().find((i) => i !== leader) as number;
    t.true(await c.put(follower, `after/${round}/f`, 'through a follower'));
    t.true(await c.put(leader, `after/${round}/l`, 'through the leader'));
    t.is(await c.getRaw(leader, `after/${round}/f`), 'through a follower');
    const expected = { ...a.kv, [`after/${round}/f`]: '0:through a follower', [`after/${round}/l`]: '0:through the leader' };
    await waitConverged(c, 60_000, expected);
  }
}

test.serial('restore into a fresh 3-node cluster, through a follower and then through the leader', async (t) => {
  const started = performance.now();
  await freshClusterTest(t, 3, ['follower', 'leader']);
  t.log(`took ${((performance.now() - started) / 1000).toFixed(1)} s`);
});

test.serial('restore into a fresh 5-node cluster, through the leader and then through a follower', async (t) => {
  const started = performance.now();
  await freshClusterTest(t, 5, ['leader', 'follower']);
  t.log(`took ${((performance.now() - started) / 1000).toFixed(1)} s`);
});

test.serial('restore into a single -dev agent, and save from it', async (t) => {
  const a = needArchive(t);
  const tmp = await mkdtemp(join(tmpdir(), 'conclave-snapdev-'));
  t.teardown(() => rm(tmp, { recursive: true, force: true }));
  const { proc, output, exited, httpPort, serverPort } = await startDev(t, tmp);
  const tail = (): string => output.join('').split('\n').slice(-20).join('\n');
  const http = (path: string, init: RequestInit = {}): Promise<Response> =>
    fetch(`http://127.0.0.1:${httpPort}${path}`, { ...init, signal: AbortSignal.timeout(60_000) });

  await waitFor('the dev agent to elect itself', async () => {
    const r = await http('/v1/status/leader');
    const v = r.status === 200 ? String(await r.json()) : '';
    return v === `127.0.0.1:${serverPort}` ? true : undefined;
  }, 60_000, tail);
  t.is((await http('/v1/kv/dev/own', { method: 'PUT', body: 'mine' })).status, 200);

  const r = await http('/v1/snapshot', { method: 'PUT', body: new Uint8Array(a.bytes) });
  t.is(r.status, 200, await r.clone().text());
  t.is(await r.text(), '');
  t.is((await http('/v1/kv/dev/own')).status, 404, 'the dev agent\'s own key is gone: the archive replaced its state');

  for (const query of ['', '?stale']) {
    const s = await http(`/v1/snapshot${query}`);
    t.is(s.status, 200);
    t.is(s.headers.get('x-consul-knownleader'), 'true');
    const decoded = await decodeArchive(Buffer.from(await s.arrayBuffer()));
    const kv = kvData(decoded);
    t.is(diffSummary(kv, a.kv), 'equal', `a save${query} from the dev agent is the archive's state`);
    t.true(decoded.meta.Index > 1, 'a save after a restore has the restore\'s index or later');
    t.is(Number(s.headers.get('x-consul-index')), decoded.meta.Index);
    t.deepEqual(decoded.meta.Configuration.Servers.map((x) => x.Address), [`127.0.0.1:${serverPort}`], 'its configuration is the dev agent\'s own');
  }
  t.is((await http('/v1/kv/dev/after', { method: 'PUT', body: 'yes' })).status, 200, 'writes work after the restore');
  t.is(await (await http('/v1/kv/dev/after?raw')).text(), 'yes');

  proc.kill('SIGTERM');
  const code = await Promise.race([exited, sleep(20_000).then(() => 'timeout' as const)]);
  t.is(code, 0, tail());
  t.deepEqual((await readdir(tmp)).filter((n) => n.startsWith('conclave-dev-')), [], 'the dev agent removed its data directory');
});
