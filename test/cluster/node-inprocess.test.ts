// The runtime with everything real but the process boundary: RaftNodes over LevelDB and gRPC on
// loopback. Each test waits on conditions, never on sleeps.
import test from 'ava';
import {
  configurationOf,
  leaderOf,
  set,
  startServer,
  stopServer,
  tempDir,
  valueOn,
  waitFor,
  type TestServer,
} from '../support/node-cluster.js';

test('a single server bootstraps, commits, and keeps its data across a restart', async (t) => {
  const dir = await tempDir(t);
  let s = await startServer('a', dir);
  t.true(s.node.isFresh());
  await s.node.bootstrap(configurationOf([s]));
  await leaderOf([s]);
  const r = await s.node.propose(set('k', 'v1'));
  t.deepEqual(r, { kind: 'kvs', ok: true });
  t.is(await valueOn(s, 'k'), 'v1');
  const port = s.port;
  await stopServer(s);
  s = await startServer('a', dir, port);
  t.false(s.node.isFresh());
  await leaderOf([s]);
  t.is(await valueOn(s, 'k'), 'v1');
  await s.node.propose(set('k', 'v2'));
  t.is(await valueOn(s, 'k'), 'v2');
  await stopServer(s);
});

test('three servers: replicate, lose the leader, elect another, and bring the old one back', async (t) => {
  const dirs = await Promise.all([tempDir(t), tempDir(t), tempDir(t)]);
  const servers: TestServer[] = [];
  for (const [i, id] of ['a', 'b', 'c'].entries()) servers.push(await startServer(id, dirs[i] as string));
  // Teardown: a server the test already stopped, or one that died, must not keep the others running.
  t.teardown(() => Promise.all(servers.map((s) => stopServer(s).catch(() => undefined))));
  const config = configurationOf(servers);
  await Promise.all(servers.map((s) => s.node.bootstrap(config)));
  const leader = await leaderOf(servers);
  for (let i = 0; i < 20; i++) await leader.node.propose(set(`k${i}`, `v${i}`));
  for (const s of servers) await waitFor(`${s.id} applies k19`, () => s.node.status().appliedIndex >= leader.node.status().commitIndex);
  for (const s of servers) t.is(await valueOn(s, 'k19'), 'v19');

  const oldLeader = leader;
  const port = oldLeader.port;
  await stopServer(oldLeader);
  const rest = servers.filter((s) => s !== oldLeader);
  const next = await leaderOf(rest);
  t.not(next.id, oldLeader.id);
  await next.node.propose(set('after', 'yes'));

  const back = await startServer(oldLeader.id, oldLeader.dataDir, port);
  servers[servers.indexOf(oldLeader)] = back;
  await waitFor('the old leader catches up', () => back.node.status().appliedIndex >= next.node.status().commitIndex);
  t.is(await valueOn(back, 'after'), 'yes');
  t.is(await valueOn(back, 'k0'), 'v0');
});

test('a server that missed a compaction catches up through InstallSnapshot', async (t) => {
  const dirs = await Promise.all([tempDir(t), tempDir(t), tempDir(t)]);
  const servers: TestServer[] = [];
  const small = { snapshotThresholdEntries: 20, trailingEntries: 2 };
  for (const [i, id] of ['a', 'b', 'c'].entries()) servers.push(await startServer(id, dirs[i] as string, 0, small));
  // Teardown: a server the test already stopped, or one that died, must not keep the others running.
  t.teardown(() => Promise.all(servers.map((s) => stopServer(s).catch(() => undefined))));
  await Promise.all(servers.map((s) => s.node.bootstrap(configurationOf(servers))));
  const leader = await leaderOf(servers);
  const lagging = servers.find((s) => s !== leader) as TestServer;
  const port = lagging.port;
  await stopServer(lagging);
  for (let i = 0; i < 120; i++) await leader.node.propose(set(`key/${i}`, `value ${i}`));
  await waitFor('the leader compacts its log', () => leader.node.status().commitIndex > 100 && leader.node['core'].firstIndex() > 10);
  const events: string[] = [];
  const back = await startServer(lagging.id, lagging.dataDir, port, small, events);
  servers[servers.indexOf(lagging)] = back;
  await waitFor('the lagging server catches up', () => back.node.status().appliedIndex >= leader.node.status().commitIndex, 20_000);
  t.true(events.includes('snapshot-installed'), 'it was sent the leader\'s snapshot, not the log');
  t.is(await valueOn(back, 'key/0'), 'value 0');
  t.is(await valueOn(back, 'key/119'), 'value 119');
  const leaderList = await leader.node.fsm.list('key/');
  const backList = await back.node.fsm.list('key/');
  t.is(backList.entries.length, 120);
  t.deepEqual(backList.entries.map((e) => e.ModifyIndex), leaderList.entries.map((e) => e.ModifyIndex));
});

test('after a restart, a server a little behind catches up from trailing entries kept on disk, not a snapshot', async (t) => {
  const dirs = await Promise.all([tempDir(t), tempDir(t), tempDir(t)]);
  let servers: TestServer[] = [];
  const small = { snapshotThresholdEntries: 20, trailingEntries: 40 };
  for (const [i, id] of ['a', 'b', 'c'].entries()) servers.push(await startServer(id, dirs[i] as string, 0, small));
  // Teardown: a server the test already stopped, or one that died, must not keep the others running.
  t.teardown(() => Promise.all(servers.map((s) => stopServer(s).catch(() => undefined))));
  await Promise.all(servers.map((s) => s.node.bootstrap(configurationOf(servers))));
  let leader = await leaderOf(servers);
  for (let i = 0; i < 50; i++) await leader.node.propose(set(`key/${i}`, `value ${i}`));
  const lagging = servers.find((s) => s !== leader) as TestServer;
  await waitFor('every server applies the first 50 writes', () => servers.every((s) => s.node.status().appliedIndex >= leader.node.status().commitIndex));
  const laggingApplied = lagging.node.status().appliedIndex;
  await stopServer(lagging);
  let rest = servers.filter((s) => s !== lagging);
  for (let i = 50; i < 80; i++) await leader.node.propose(set(`key/${i}`, `value ${i}`));
  // Both others snapshot past the lagging server's last entry and compact, keeping 40 trailing entries.
  const storeOf = (s: TestServer) => s.node['raftLog']['main'] as { base(): { index: number } | undefined; firstIndex(): number };
  await waitFor('the others compact past the lagging server', () =>
    rest.every((s) => (storeOf(s).base()?.index ?? 0) > laggingApplied + 1 && storeOf(s).firstIndex() <= laggingApplied + 1));

  // Restart the other two: what they keep below their snapshot now comes from disk.
  const ports = rest.map((s) => s.port);
  await Promise.all(rest.map((s) => stopServer(s)));
  rest = await Promise.all(rest.map((s, i) => startServer(s.id, s.dataDir, ports[i], small)));
  servers = [...rest];
  for (const s of rest) t.true(s.node['core'].firstIndex() <= laggingApplied + 1, `${s.id} holds the entries the lagging server lacks`);
  leader = await leaderOf(rest);
  await leader.node.propose(set('after', 'restart'));

  const events: string[] = [];
  const back = await startServer(lagging.id, lagging.dataDir, lagging.port, small, events);
  servers.push(back);
  await waitFor('the lagging server catches up', () => back.node.status().appliedIndex >= leader.node.status().commitIndex, 20_000);
  t.false(events.includes('snapshot-installed'), 'it caught up from the log, without a snapshot');
  t.is(await valueOn(back, 'key/79'), 'value 79');
  t.is(await valueOn(back, 'after'), 'restart');
  t.is((await back.node.fsm.list('key/')).entries.length, 80);
});

test('close() waits for a snapshot in progress to stop before it resolves', async (t) => {
  const dir = await tempDir(t);
  const events: string[] = [];
  const s = await startServer('a', dir, 0, { snapshotThresholdEntries: 30 }, events);
  await s.node.bootstrap(configurationOf([s]));
  await leaderOf([s]);
  // Hold the snapshot's state.bin stream after its first chunk, as a slow disk would.
  let paused!: () => void;
  const pausedP = new Promise<void>((r) => (paused = r));
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const fsm = s.node.fsm;
  const real = fsm.snapshot.bind(fsm);
  fsm.snapshot = async () => {
    const snap = await real();
    const inner = snap[Symbol.asyncIterator].bind(snap);
    Object.defineProperty(snap, Symbol.asyncIterator, {
      value: async function* () {
        let first = true;
        for await (const chunk of { [Symbol.asyncIterator]: inner }) {
          yield chunk;
          if (first) {
            first = false;
            paused();
            await gate;
          }
        }
      },
    });
    return snap;
  };
  for (let i = 0; i < 40; i++) await s.node.propose(set(`k/${i}`, `v${i}`));
  await pausedP;
  const closing = stopServer(s);
  // close() must not resolve while the snapshot task is held; let it go on a little later.
  setTimeout(release, 300);
  await closing;
  t.true(events.includes('snapshot-abandoned'), `close() resolved before the snapshot stopped: ${events.filter((e) => e.startsWith('snapshot')).join(',')}`);
  t.false(events.includes('snapshot-failed'));
  t.is((s.node['snapshotWork']['tasks'] as Set<unknown>).size, 0);
  // The data directory is whole: the server opens again with every key.
  const again = await startServer('a', dir);
  t.teardown(() => stopServer(again));
  await leaderOf([again]);
  t.is((await again.node.fsm.list('k/')).entries.length, 40);
});

test('large values trigger snapshots by bytes and limit trailing entries by bytes', async (t) => {
  const dir = await tempDir(t);
  const events: string[] = [];
  const s = await startServer('a', dir, 0, { snapshotThresholdEntries: 1000, trailingEntries: 1000, snapshotThresholdBytes: 200_000, trailingBytes: 50_000 }, events);
  t.teardown(() => stopServer(s));
  await s.node.bootstrap(configurationOf([s]));
  await leaderOf([s]);
  const value = 'v'.repeat(10_000);
  for (let i = 0; i < 30; i++) await s.node.propose(set(`big/${i}`, value));
  // About 200 KB of data in 20-odd entries: far below 1000 entries, a snapshot all the same.
  const core = s.node['core'] as { snapshotMeta(): { index: number }; firstIndex(): number };
  await waitFor('a snapshot by bytes', () => core.snapshotMeta().index > 0);
  const snapshotIndex = core.snapshotMeta().index;
  t.true(snapshotIndex < 40, `snapshot at ${snapshotIndex}`);
  // Trailing entries: at most 50 KB of ~10 KB entries, so 4, not 1000.
  const trailing = snapshotIndex - core.firstIndex() + 1;
  t.true(trailing >= 3 && trailing <= 5, `${trailing} trailing entries`);
  await waitFor('the snapshot to be logged (after the log store compacted)', () => events.includes('snapshot'));
});

test('a user restore replaces the state on every server, including one that was down, and survives a restart', async (t) => {
  const { Fsm } = await import('../../src/fsm/index.js');
  // The backup: another state machine's point-in-time state.bin.
  const sourceDir = await tempDir(t);
  const source = await Fsm.open(sourceDir);
  for (let i = 1; i <= 30; i++) await source.apply(i, 1, set(`restored/${i}`, `r${i}`));
  const stateBin = await source.snapshot();

  const dirs = await Promise.all([tempDir(t), tempDir(t), tempDir(t)]);
  const servers: TestServer[] = [];
  const eventsOf = new Map<string, string[]>();
  for (const [i, id] of ['a', 'b', 'c'].entries()) {
    eventsOf.set(id, []);
    servers.push(await startServer(id, dirs[i] as string, 0, {}, eventsOf.get(id)));
  }
  t.teardown(async () => {
    // A server the test already stopped, or one that died, must not keep the others running.
    await Promise.all(servers.map((s) => stopServer(s).catch(() => undefined)));
    await source.close();
  });
  await Promise.all(servers.map((s) => s.node.bootstrap(configurationOf(servers))));
  const leader = await leaderOf(servers);
  for (let i = 0; i < 10; i++) await leader.node.propose(set(`old/${i}`, 'gone after the restore'));
  const down = servers.find((s) => s !== leader) as TestServer;
  const downPort = down.port;
  await stopServer(down);

  const meta = await leader.node.userRestore(() => stateBin, 500);
  t.is(meta.index, 501, 'placed at max(last index, archive index 500) + 1');
  t.is(await valueOn(leader, 'restored/30'), 'r30');
  t.is(await valueOn(leader, 'old/0'), undefined, 'the old state is gone');

  const events: string[] = [];
  const back = await startServer(down.id, down.dataDir, downPort, {}, events);
  servers[servers.indexOf(down)] = back;
  await leader.node.propose(set('after', 'restore'));
  for (const s of servers) {
    await waitFor(`${s.id} catches up`, () => s.node.status().appliedIndex >= leader.node.status().commitIndex, 20_000);
    t.is(await valueOn(s, 'restored/1'), 'r1', `${s.id} holds the restored state`);
    t.is(await valueOn(s, 'old/9'), undefined);
    t.is(await valueOn(s, 'after'), 'restore');
  }
  t.true(events.includes('snapshot-installed'), 'the server that was down received the restore as a snapshot');
  const live = servers.find((s) => s !== leader && s !== back) as TestServer;
  const liveEvents = eventsOf.get(live.id) ?? [];
  t.true(liveEvents.includes('restore-staged'), 'the live follower held the restore as pending first');
  t.true(liveEvents.indexOf('restore-committed') > liveEvents.indexOf('restore-staged'), 'then applied it once committed');

  // A restart keeps the restored state (the log's base is now the restore).
  const other = servers.find((s) => s !== leader && s !== back) as TestServer;
  const port = other.port;
  await stopServer(other);
  const again = await startServer(other.id, other.dataDir, port);
  servers[servers.indexOf(other)] = again;
  t.is(await valueOn(again, 'restored/7'), 'r7');
  t.is(await valueOn(again, 'old/3'), undefined);
});
