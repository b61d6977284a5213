// The ways a user restore could break a cluster, each closed: a failure while its bytes are stored,
// a restore whose leader loses its quorum, and the bytes of a restore that was abandoned. RaftNodes
// over LevelDB and gRPC on loopback; waits on conditions only.
import test from 'ava';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { NodeError } from '../../src/node/index.js';
import { configurationOf, leaderOf, set, startServer, stopServer, tempDir, valueOn, waitFor, type TestServer } from '../support/node-cluster.js';


async function backup(t: Parameters<typeof tempDir>[0], keys: number): Promise<{ stateBin: () => AsyncIterable<Uint8Array>; close: () => Promise<void> }> {
  const { Fsm } = await import('../../src/fsm/index.js');
  const source = await Fsm.open(await tempDir(t));
  for (let i = 1; i <= keys; i++) await source.apply(i, 1, set(`restored/${i}`, `r${i}`));
  async function* stateBin(): AsyncGenerator<Uint8Array> {
    yield* await source.snapshot();
  }
  return { stateBin, close: () => source.close() };
}

async function snapshotIds(s: TestServer): Promise<string[]> {
  return (await readdir(join(s.dataDir, 'snapshots'))).filter((n) => /^\d+-\d+-\d+$/.test(n));
}

test('a restore whose bytes fail to store leaves the leader serving and writable, and nothing in its store', async (t) => {
  const dir = await tempDir(t);
  const s = await startServer('a', dir);
  t.teardown(() => stopServer(s));
  await s.node.bootstrap(configurationOf([s]));
  await leaderOf([s]);
  await s.node.propose(set('before', 'yes'));
  const before = await snapshotIds(s);
  async function* failing(): AsyncGenerator<Uint8Array> {
    yield new Uint8Array(1000);
    throw new Error('the disk under the upload failed');
  }
  await t.throwsAsync(s.node.userRestore(() => failing(), 10), { message: /the disk under the upload failed/ });
  t.is(s.node['core'].pendingRestore(), undefined, 'the core never took the restore');
  t.deepEqual(await snapshotIds(s), before, 'the half-written restore is gone');
  t.deepEqual(await s.node.propose(set('after', 'yes')), { kind: 'kvs', ok: true }, 'the leader still takes writes');
  t.is(await valueOn(s, 'before'), 'yes');
});

test('while a restore is prepared, writes are refused with a message naming the restore; once placed, they apply after it', async (t) => {
  const dir = await tempDir(t);
  const s = await startServer('a', dir);
  t.teardown(() => stopServer(s));
  await s.node.bootstrap(configurationOf([s]));
  await leaderOf([s]);
  const b = await backup(t, 20);
  t.teardown(() => b.close());
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  async function* slow(): AsyncGenerator<Uint8Array> {
    await gate;
    yield* b.stateBin();
  }
  const restored = s.node.userRestore(() => slow(), 20);
  const refused = await t.throwsAsync(s.node.propose(set('during', 'x')), { instanceOf: NodeError });
  t.is(refused?.code, 'aborted-by-restore');
  t.regex(refused?.message ?? '', /restore is in progress/);
  release();
  const meta = await restored;
  t.deepEqual(await s.node.propose(set('after', 'yes')), { kind: 'kvs', ok: true });
  t.is(await valueOn(s, 'restored/20'), 'r20');
  t.is(await valueOn(s, 'after'), 'yes');
  t.is(await valueOn(s, 'during'), undefined);
  t.is(s.node.status().appliedIndex > meta.index, true, 'the write after the restore applied after it');
});

test('a restore abandoned by its leader ends in a handled rejection, and its bytes are deleted', async (t) => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => void process.off('unhandledRejection', onUnhandled));
  const dirs = await Promise.all([tempDir(t), tempDir(t), tempDir(t)]);
  const servers: TestServer[] = [];
  for (const [i, id] of ['a', 'b', 'c'].entries()) servers.push(await startServer(id, dirs[i] as string));
  t.teardown(() => Promise.all(servers.map((s) => stopServer(s).catch(() => undefined))));
  await Promise.all(servers.map((s) => s.node.bootstrap(configurationOf(servers))));
  const leader = await leaderOf(servers);
  for (let i = 0; i < 5; i++) await leader.node.propose(set(`old/${i}`, 'kept'));
  const b = await backup(t, 20);
  t.teardown(() => b.close());
  // Alone, the leader can place the restore but never commit it; it steps down.
  const others = servers.filter((s) => s !== leader);
  const ports = others.map((s) => s.port);
  for (const s of others) await stopServer(s);
  const outcome = await leader.node.userRestore(() => b.stateBin(), 20).then(
    () => 'resolved',
    (e: NodeError) => e.code,
  );
  t.is(outcome, 'unknown-outcome');
  t.truthy(leader.node['core'].pendingRestore(), 'the restore is still pending on the old leader');
  // Its messages (votes included) now reach no one, so the others elect one of themselves and go on
  // without the restore; once it hears the new leader, the old leader must drop it.
  leader.transport.loseIf = () => true;
  for (const [i, s] of others.entries()) servers[servers.indexOf(s)] = await startServer(s.id, s.dataDir, ports[i]);
  const next = await leaderOf(servers.filter((s) => s !== leader));
  await next.node.propose(set('new/leader', 'yes'));
  leader.transport.loseIf = undefined;
  await waitFor('the old leader follows the new one', () => leader.node.status().appliedIndex >= next.node.status().commitIndex);
  t.is(leader.node['core'].pendingRestore(), undefined, 'the restore was abandoned');
  await waitFor('the abandoned restore\'s bytes to be deleted', async () => {
    const ids = await snapshotIds(leader);
    return ids.every((id) => Number(id.split('-')[1]) <= leader.node.status().commitIndex) ? true : undefined;
  });
  for (const s of servers) t.is(await valueOn(s, 'old/0'), 'kept');
  t.is(await valueOn(leader, 'restored/1'), undefined);
  t.deepEqual(unhandled, [], 'no unhandled rejection');
});
