// A follower serves default and ?consistent reads itself, after one leader round trip shared by every
// read waiting at that moment (src/server/read-rounds.ts), and only once it has applied what the
// leader says. Three in-process servers wired as an agent wires them, with the leader's own handlers
// counted to see which path a read took.
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { decode } from '@msgpack/msgpack';
import { RaftNode } from '../../src/node/index.js';
import { Server } from '../../src/server/index.js';
import { ServerRpcClient, ServerRpcServer } from '../../src/transport/index.js';
import { fastTiming, LossyTransport, tempDir, waitFor } from '../support/node-cluster.js';

interface InProcessServer {
  readonly id: string;
  readonly node: RaftNode;
  readonly server: Server;
  readonly transport: LossyTransport;
  /** Calls this server's RPC handlers answered: 'read' (a forwarded read), 'read-index' (a read round), or an operator call's op. */
  readonly served: Map<string, number>;
}

async function threeServers(t: ExecutionContext): Promise<{ leader: InProcessServer; followers: InProcessServer[] }> {
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const servers: InProcessServer[] = [];
  const addresses: string[] = [];
  for (const id of ['a', 'b', 'c']) {
    const dataDir = await tempDir(t);
    const grpcServer = new grpc.Server();
    const transport = new LossyTransport({ id, logger });
    transport.addTo(grpcServer);
    const rpcServer = new ServerRpcServer({ logger });
    rpcServer.addTo(grpcServer);
    const port = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    const address = `127.0.0.1:${port}`;
    addresses.push(address);
    const rpc = new ServerRpcClient({ id, logger });
    const node = await RaftNode.open({
      id, address, dataDir, logger, transport, ...fastTiming, electionTimeoutTicks: 50, // 1-2 s: no election during the test
      maxMessageBytes: 1 << 20, maxInflightMessages: 32, snapshotThresholdEntries: 1000, trailingEntries: 10, snapshotsRetained: 2,
    });
    const server = new Server({ node, rpc, nodeName: id, datacenter: 'dc1', version: 'test', address, logger, leaderWaitMs: 5000 });
    const served = new Map<string, number>();
    const count = (kind: string): void => void served.set(kind, (served.get(kind) ?? 0) + 1);
    const handlers = server.rpcHandlers();
    const { read, operator } = handlers;
    if (read === undefined || operator === undefined) throw new Error('the server has read and operator handlers');
    rpcServer.setHandlers({
      ...handlers,
      // A read round's call travels as a read ({op: 'read-index'}); a forwarded read is {query, options}.
      read: (bytes, ctx) => {
        count((decode(bytes) as { op?: string }).op === 'read-index' ? 'read-index' : 'read');
        return read(bytes, ctx);
      },
      operator: (bytes, ctx) => {
        count(String((decode(bytes) as { op: string }).op));
        return operator(bytes, ctx);
      },
    });
    t.teardown(async () => {
      await node.close().catch(() => undefined);
      await rpcServer.close();
      await transport.close();
      rpc.close();
      grpcServer.forceShutdown();
    });
    servers.push({ id, node, server, transport, served });
  }
  const configuration = { servers: servers.map((s, i) => ({ id: s.id, suffrage: 'voter' as const, address: addresses[i] as string })) };
  await Promise.all(servers.map((s) => s.node.bootstrap(configuration)));
  const leader = await waitFor('a leader', () => servers.find((s) => s.node.status().role === 'leader'));
  const followers = servers.filter((s) => s !== leader);
  for (const f of followers) await waitFor(`${f.id} knows the leader`, () => f.node.status().leaderAddress !== '');
  await leader.server.apply({ type: 'kvs', op: { verb: 'set', key: 'warm', value: new Uint8Array([1]), flags: 0 } });
  return { leader, followers };
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));

test('follower reads see every write acknowledged before them, and concurrent reads share leader round trips', async (t) => {
  const { leader, followers } = await threeServers(t);
  const [f] = followers as [InProcessServer];
  // One after another: each read starts after the write before it was acknowledged by the leader.
  for (let i = 0; i < 20; i++) {
    await leader.server.apply({ type: 'kvs', op: { verb: 'set', key: 'k', value: text(`v${i}`), flags: 0 } });
    const consistency = i % 2 === 0 ? 'default' : 'consistent';
    const { entry, meta } = await f.server.kvGet('k', { consistency });
    t.is(str(entry?.Value), `v${i}`, `${consistency} read ${i}`);
    t.true(meta.knownLeader);
    t.is(meta.lastContactMs, 0, 'the leader vouched for the read, as if it had answered it');
  }
  t.is(leader.served.get('read') ?? 0, 0, 'no read was forwarded whole');
  t.is(leader.served.get('read-index'), 20, 'each read asked the leader once');

  // 200 reads at once (default and consistent share rounds): the first starts a round, the rest wait for the next.
  leader.served.clear();
  const reads = await Promise.all(Array.from({ length: 200 }, (_, i) => f.server.kvGet('k', { consistency: i % 2 === 0 ? 'default' : 'consistent' })));
  t.true(reads.every((r) => str(r.entry?.Value) === 'v19'));
  const rounds = leader.served.get('read-index') ?? 0;
  t.true(rounds >= 2 && rounds <= 4, `200 reads took ${rounds} leader round trips`);
  t.is(leader.served.get('read') ?? 0, 0);
});

test('a follower that cannot reach the leader\'s read index in time forwards the read instead of answering from old state', async (t) => {
  const { leader, followers } = await threeServers(t);
  const [behind, other] = followers as [InProcessServer, InProcessServer];
  // The leader's appends never reach `behind` (heartbeats still do, so it does not campaign): it
  // learns nothing new, while the write commits with the other follower.
  leader.transport.loseIf = (m) => m.to === behind.id && m.type === 'append';
  await leader.server.apply({ type: 'kvs', op: { verb: 'set', key: 'fresh', value: text('yes'), flags: 0 } });
  t.is((await behind.node.fsm.get('fresh')).entry, undefined, 'the follower has not applied the write');
  for (const consistency of ['default', 'consistent'] as const) {
    const { entry } = await behind.server.kvGet('fresh', { consistency });
    t.is(str(entry?.Value), 'yes', `a ${consistency} read through the lagging follower sees the write`);
  }
  t.is(leader.served.get('read'), 2, 'both reads were forwarded whole after the read index was out of reach');
  // The other follower serves the same reads itself.
  t.is(str((await other.server.kvGet('fresh', { consistency: 'default' })).entry?.Value), 'yes');
  t.is(leader.served.get('read'), 2);
  leader.transport.loseIf = undefined;
});

test('in a 3-server cluster a follower\'s read round needs no heartbeat round: its own call and the leader are a quorum', async (t) => {
  const { leader, followers } = await threeServers(t);
  const [f] = followers as [InProcessServer];
  await leader.server.apply({ type: 'kvs', op: { verb: 'set', key: 'k', value: text('x'), flags: 0 } });
  leader.served.clear();
  // No heartbeat of the leader's arrives anywhere, so a ReadIndex round could never be confirmed: a
  // read that needed one would wait out the read-index timeout and then be forwarded whole.
  leader.transport.loseIf = (m) => m.type === 'heartbeat';
  try {
    for (let i = 0; i < 6; i++) {
      const consistency = i % 2 === 0 ? 'consistent' : 'default';
      const { entry } = await f.server.kvGet('k', { consistency });
      t.is(str(entry?.Value), 'x', `${consistency} read ${i}`);
    }
    t.is(leader.served.get('read-index'), 6, 'each read asked the leader once');
    t.is(leader.served.get('read') ?? 0, 0, 'and none was forwarded whole');
  } finally {
    leader.transport.loseIf = undefined;
  }
});
