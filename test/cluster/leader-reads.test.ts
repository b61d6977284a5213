// A new leader may hold an acknowledged write in its log without knowing it committed: followers
// learn commits from the leader's next message, and the old leader can die before sending it. A
// default-mode read on the new leader must wait until the no-op that opened its term is applied;
// served at once, it would miss the write. In-process servers with real stores and transports; the
// network faults are outgoing messages the test chooses to lose.
import test from 'ava';
import pino from 'pino';
import { Server } from '../../src/server/index.js';
import { ServerRpcClient } from '../../src/transport/index.js';
import {
  configurationOf,
  leaderOf,
  set,
  startServer,
  stopServer,
  tempDir,
  type TestServer,
} from '../support/node-cluster.js';

function serverFor(t: { teardown(f: () => void): void }, s: TestServer): Server {
  const rpc = new ServerRpcClient({ id: s.id });
  t.teardown(() => rpc.close());
  return new Server({
    node: s.node,
    rpc,
    nodeName: s.id,
    datacenter: 'dc1',
    version: 'test',
    address: s.address,
    logger: pino({ level: 'silent' }),
    leaderWaitMs: 10_000,
  });
}

test('a new leader answers a default read only once it has applied what the old leader acknowledged', async (t) => {
  const dirs = await Promise.all([tempDir(t), tempDir(t), tempDir(t)]);
  const servers: TestServer[] = [];
  // A long election timeout (1-2 s): while the old leader's heartbeats are lost, its followers must
  // not campaign before the write is acknowledged, however slow the machine.
  for (const [i, id] of ['a', 'b', 'c'].entries()) servers.push(await startServer(id, dirs[i] as string, 0, { electionTimeoutTicks: 50 }));
  // Teardown: a server the test already stopped, or one that died, must not keep the others running.
  t.teardown(() => Promise.all(servers.map((s) => stopServer(s).catch(() => undefined))));
  await Promise.all(servers.map((s) => s.node.bootstrap(configurationOf(servers))));
  const old = await leaderOf(servers);
  await old.node.propose(set('warm', 'up'));

  // The old leader's commit notices never leave: heartbeats and the empty appends that announce a
  // commit. The write is acknowledged once both followers hold it, but neither learns it committed.
  old.transport.loseIf = (m) => m.type === 'heartbeat' || (m.type === 'append' && m.entries.length === 0);
  const result = await old.node.propose(set('acknowledged', 'yes'));
  t.is(result.kind, 'kvs');
  const index = old.node.status().commitIndex;
  await stopServer(old);
  const rest = servers.filter((s) => s !== old);
  for (const s of rest) t.true(s.node.status().commitIndex < index, `${s.id} does not know the write committed`);

  // The survivors elect a leader whose no-op cannot commit yet: no append is acknowledged.
  for (const s of rest) s.transport.loseIf = (m) => m.type === 'appendResponse';
  const next = await leaderOf(rest);
  t.is((await next.node.fsm.get('acknowledged')).entry, undefined, 'the new leader has not applied the write');

  let answered = false;
  const read = serverFor(t, next)
    .kvGet('acknowledged', { consistency: 'default' })
    .finally(() => (answered = true));
  // The no-op cannot commit while responses are lost, so the read cannot be answered: give it
  // every chance to answer wrongly first.
  await new Promise((r) => setTimeout(r, 300));
  t.false(answered, 'the read waits for the new leader to catch up');
  t.is(next.node.status().role, 'leader');

  for (const s of rest) s.transport.loseIf = undefined;
  const { entry, meta } = await read;
  t.is(new TextDecoder().decode(entry?.Value), 'yes', 'and then sees the acknowledged write');
  t.true(meta.index >= index);
  // Stale reads are served from local state at once, by design.
  const stale = await serverFor(t, next).kvGet('acknowledged', { consistency: 'stale' });
  t.is(new TextDecoder().decode(stale.entry?.Value), 'yes');
});
