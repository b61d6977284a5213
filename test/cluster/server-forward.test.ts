// Three in-process servers wired as an agent wires them (RaftNode, PeerTransport and ServerRpc on one
// gRPC server, the Server on top), to see inside the leader while a follower forwards to it.
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { RaftNode } from '../../src/node/index.js';
import { Server, ServerError } from '../../src/server/index.js';
import { PeerTransport, ServerRpcClient, ServerRpcServer, TransportError } from '../../src/transport/index.js';
import { fastTiming, tempDir, waitFor } from '../support/node-cluster.js';

interface InProcessServer {
  readonly id: string;
  readonly address: string;
  readonly node: RaftNode;
  readonly server: Server;
  readonly rpcServer: ServerRpcServer;
}

async function startServers(t: ExecutionContext, ids: readonly string[], forwardInflightCount?: number): Promise<InProcessServer[]> {
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const out: InProcessServer[] = [];
  for (const id of ids) {
    const dataDir = await tempDir(t);
    const grpcServer = new grpc.Server();
    const transport = new PeerTransport({ id, logger });
    transport.addTo(grpcServer);
    const rpcServer = new ServerRpcServer({ logger, ...(forwardInflightCount ? { forwardInflightCount } : {}) });
    rpcServer.addTo(grpcServer);
    const port = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    const address = `127.0.0.1:${port}`;
    const rpc = new ServerRpcClient({ id, logger });
    const node = await RaftNode.open({
      id, address, dataDir, logger, transport, ...fastTiming, electionTimeoutTicks: 50, // 1-2 s: no election while the test looks at the leader
      maxMessageBytes: 1 << 20, maxInflightMessages: 32, snapshotThresholdEntries: 1000, trailingEntries: 10, snapshotsRetained: 2,
    });
    const server = new Server({ node, rpc, nodeName: id, datacenter: 'dc1', version: 'test', address, logger, leaderWaitMs: 5000 });
    rpcServer.setHandlers(server.rpcHandlers());
    t.teardown(async () => {
      await node.close().catch(() => undefined); // a test that failed may leave it stopped on an error
      await rpcServer.close();
      await transport.close();
      rpc.close();
      grpcServer.forceShutdown();
    });
    out.push({ id, address, node, server, rpcServer });
  }
  return out;
}

/** Three bootstrapped servers, once one leads and a follower knows it. */
async function threeServers(t: ExecutionContext, forwardInflightCount?: number): Promise<{ leader: InProcessServer; follower: InProcessServer }> {
  const servers = await startServers(t, ['a', 'b', 'c'], forwardInflightCount);
  const configuration = { servers: servers.map((s) => ({ id: s.id, suffrage: 'voter' as const, address: s.address })) };
  await Promise.all(servers.map((s) => s.node.bootstrap(configuration)));
  const leader = await waitFor('a leader', () => servers.find((s) => s.node.status().role === 'leader'));
  const follower = servers.find((s) => s !== leader) as InProcessServer;
  await waitFor('the follower knows the leader', () => follower.node.status().leaderAddress !== '');
  return { leader, follower };
}

test('a forwarded blocking query whose client goes away stops waiting on the leader too', async (t) => {
  const { leader, follower } = await threeServers(t);
  await follower.server.apply({ type: 'kvs', op: { verb: 'set', key: 'watched', value: new TextEncoder().encode('v1'), flags: 0 } });
  const first = await follower.server.kvGet('watched', { consistency: 'default' });
  const leaderWatchers = (): number => (leader.node.fsm['watchers'] as { size: number }).size;
  t.is(leaderWatchers(), 0);

  const client = new AbortController();
  const blocked = follower.server.kvGet('watched', { consistency: 'default', minIndex: first.meta.index, waitMs: 60_000, signal: client.signal });
  await waitFor('the leader holds the blocking query', () => leaderWatchers() === 1);
  client.abort();
  const err = await t.throwsAsync(blocked);
  t.true(err instanceof TransportError && err.code === 'CANCELLED', String(err));
  await waitFor('the leader drops it', () => leaderWatchers() === 0, 5_000);

  // A blocking query that is not abandoned still wakes on the change, through the same stream.
  const again = follower.server.kvGet('watched', { consistency: 'default', minIndex: first.meta.index, waitMs: 60_000 });
  await waitFor('the leader holds the second query', () => leaderWatchers() === 1);
  await follower.server.apply({ type: 'kvs', op: { verb: 'set', key: 'watched', value: new TextEncoder().encode('v2'), flags: 0 } });
  const changed = await again;
  t.is(new TextDecoder().decode(changed.entry?.Value), 'v2');
  t.is(leader.rpcServer.stats().forwardStreams, 1);
});

test('a leader with no room for another forwarded call refuses a write clearly, and nothing is written', async (t) => {
  const { leader, follower } = await threeServers(t, 1);
  const first = await follower.server.kvGet('watched', { consistency: 'default' });
  // One blocking query fills the leader's only slot for this follower.
  const client = new AbortController();
  const blocked = follower.server.kvGet('watched', { consistency: 'default', minIndex: first.meta.index, waitMs: 60_000, signal: client.signal });
  blocked.catch(() => undefined); // the test aborts it at the end; only the refused apply is checked
  await waitFor('the leader holds the blocking query', () => (leader.node.fsm['watchers'] as { size: number }).size === 1);
  const err = await t.throwsAsync(follower.server.apply({ type: 'kvs', op: { verb: 'set', key: 'refused', value: new TextEncoder().encode('x'), flags: 0 } }));
  t.true(err instanceof ServerError && err.code === 'unavailable', String(err));
  t.regex(err!.message, /the leader refused the request: .*already runs 1 forwarded calls.*; nothing was done, retry later/);
  t.is((await leader.server.kvGet('refused', { consistency: 'default' })).entry, undefined);
  client.abort();
});

test('a forwarded write refused because the leader is not wired yet (NO_HANDLER) is retried', async (t) => {
  const { leader, follower } = await threeServers(t);
  // As between binding the gRPC port and wiring the Server at start: the leader has no handlers.
  leader.rpcServer.setHandlers({});
  const before = leader.rpcServer.stats().forwardedCalls;
  const write = follower.server.apply({ type: 'kvs', op: { verb: 'set', key: 'k', value: new TextEncoder().encode('v'), flags: 0 } });
  await waitFor('the leader refuses the first attempt', () => leader.rpcServer.stats().forwardedCalls > before);
  leader.rpcServer.setHandlers(leader.server.rpcHandlers());
  t.deepEqual(await write, { kind: 'kvs', ok: true });
  t.is(new TextDecoder().decode((await leader.server.kvGet('k', { consistency: 'default' })).entry?.Value), 'v');
});
