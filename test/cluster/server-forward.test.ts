// Three in-process servers wired as an agent wires them (RaftNode, PeerTransport and ServerRpc on one
// gRPC server, the Server on top), to see inside the leader while a follower forwards to it.
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { RaftNode } from '../../src/node/index.js';
import { Server, ServerError } from '../../src/server/index.js';
import { encode } from '@msgpack/msgpack';
import { PeerTransport, ServerRpcClient, ServerRpcServer, TransportError, type RpcResult } from '../../src/transport/index.js';
import { fastTiming, tempDir, waitFor } from '../support/node-cluster.js';

interface InProcessServer {
  readonly id: string;
  readonly address: string;
  readonly node: RaftNode;
  readonly server: Server;
  readonly rpcServer: ServerRpcServer;
  readonly grpcServer: grpc.Server;
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
    out.push({ id, address, node, server, rpcServer, grpcServer });
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

test('a malformed forwarded read, operator call or write is refused with a clear error and changes nothing', async (t) => {
  const { leader, follower } = await threeServers(t);
  await follower.server.apply({ type: 'kvs', op: { verb: 'set', key: 'k', value: new TextEncoder().encode('v'), flags: 0 } });
  // The leader puts the servers in the catalog when it takes office: let that settle, so the commit
  // index below moves only if a refused call wrote something.
  let settled = false;
  const serfPassing = async (): Promise<void> => {
    const r = await leader.server.catalogRead({ what: 'health-state', state: 'passing' }, { consistency: 'stale' });
    settled = (r.json as Array<{ CheckID: string }>).filter((c) => c.CheckID === 'serfHealth').length === 3;
  };
  await waitFor('the servers in the catalog', () => {
    void serfPassing();
    return settled;
  });
  const before = { config: leader.node.status().configuration, commit: leader.node.status().commitIndex };
  const rpc = new ServerRpcClient({ id: 'test' });
  t.teardown(() => rpc.close());
  const refused = async (call: Promise<RpcResult>, message: RegExp): Promise<void> => {
    const r = await call;
    if (r.ok) return void t.fail('accepted');
    t.is(r.error.code, 'bad-request');
    t.regex(r.error.message, message);
  };
  // The shapes that rode the read call before typed messages: a remove of b is refused, and b stays.
  await refused(rpc.read(leader.address, encode({ t: 'remove', id: 'b' })), /^malformed forwarded read: read\.options: missing; nothing was done$/);
  await refused(rpc.operator(leader.address, encode({ t: 'remove', id: 'b' })), /^malformed operator call: operator\.op: missing; nothing was done$/);
  await refused(rpc.operator(leader.address, encode({ op: 'join', id: 'd' })), /operator\.address: missing/);
  await refused(rpc.operator(leader.address, encode({ op: 'remove', id: 2 })), /operator\.id: expected a string, got number 2/);
  await refused(rpc.read(leader.address, encode({ query: { op: 'kv-get', key: 1 }, options: { consistency: 'default', minIndex: 0, waitMs: 0 } })),
    /read\.query\.key: expected a string, got number 1/);
  await refused(rpc.read(leader.address, new Uint8Array([0xc1])), /read: not a msgpack value/);
  await refused(rpc.apply(leader.address, new Uint8Array([0xff, 0x00])), /unknown command type 255/);
  t.deepEqual(leader.node.status().configuration, before.config);
  t.is(leader.node.status().commitIndex, before.commit);
  t.is(new TextDecoder().decode((await leader.server.kvGet('k', { consistency: 'default' })).entry?.Value), 'v');
});

test('a write the transport never sent (NOT_SENT) is retried, not reported as an unknown outcome', async (t) => {
  const { leader, follower } = await threeServers(t);
  // The leader stops listening: the follower's calls to it are refused before they are sent, until
  // the leader, hearing no answers, steps down and another is elected (or the wait for one ends).
  leader.grpcServer.forceShutdown();
  const write = follower.server.apply({ type: 'kvs', op: { verb: 'set', key: 'retried', value: new TextEncoder().encode('x'), flags: 0 } });
  const outcome = await write.then(
    (r) => ({ ok: true as const, r }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  if (outcome.ok) {
    // Retried against the new leader, and applied there once.
    t.deepEqual(outcome.r, { kind: 'kvs', ok: true });
    const next = follower.node.status().leader;
    t.not(next, leader.id);
    t.is(new TextDecoder().decode((await follower.server.kvGet('retried', { consistency: 'default' })).entry?.Value), 'x');
  } else {
    // Still no reachable leader when the wait ended: "No cluster leader", and nothing was written.
    const err = outcome.e;
    t.true(err instanceof ServerError && err.code === 'no-leader', String(err));
    const cause = (err as Error).cause;
    t.true(cause instanceof TransportError && cause.code === 'NOT_SENT', String(cause));
    t.is((await leader.node.fsm.get('retried')).entry, undefined);
  }
});

test('a write the leader received before its connection broke is reported as an unknown outcome', async (t) => {
  const { leader, follower } = await threeServers(t);
  const arrived = new Promise<void>((resolve) =>
    leader.rpcServer.setHandlers({ apply: () => (resolve(), new Promise<RpcResult>(() => {})) }), // received, never answered
  );
  const write = follower.server.apply({ type: 'kvs', op: { verb: 'set', key: 'maybe', value: new TextEncoder().encode('x'), flags: 0 } });
  write.catch(() => undefined);
  await arrived;
  leader.grpcServer.forceShutdown();
  const err = await t.throwsAsync(write);
  t.true(err instanceof ServerError && err.code === 'unknown-outcome', String(err));
  t.regex(err!.message, /forwarding the write to the leader failed after it was sent/);
  t.true((err as Error).cause instanceof TransportError && ((err as Error).cause as TransportError).code === 'UNAVAILABLE');
});

test('operator calls through a follower reach the leader on their own RPC: transfer leadership', async (t) => {
  const { leader, follower } = await threeServers(t);
  const unaryBefore = leader.rpcServer.stats().unaryCalls;
  await follower.server.transferLeadership(follower.id);
  await waitFor('the follower to lead', () => follower.node.status().role === 'leader');
  t.is(leader.rpcServer.stats().unaryCalls, unaryBefore + 1);
  t.is(leader.rpcServer.stats().forwardedCalls, 0);
});
