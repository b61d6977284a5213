// PeerTransport between real gRPC servers on 127.0.0.1: exact delivery of every message type, order
// on the append lane, bounded queues, drops instead of exceptions, reconnection, runtime address
// changes and hostile input arriving over the wire.

import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { isDeepStrictEqual } from 'node:util';
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import type { AppendMessage, Message, SnapshotMessage } from '../../src/raft/index.js';
import { PeerTransport, raftPeerService } from '../../src/transport/index.js';
import { deadPort, pseudoRandomBytes, pseudoRandomSha256, sampleMessages, startPair, waitFor } from '../../src/transport/testing.js';

/** A pino logger that keeps every line, parsed, for assertions. */
function capture(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

/** Peer 'b' comes up on the port `dead` held: the holder lets go and b listens there; what b receives lands in `got`. */
async function peerComesUp(t: { teardown: (f: () => Promise<void>) => void }, dead: Awaited<ReturnType<typeof deadPort>>): Promise<{ b: PeerTransport; got: Message[] }> {
  const b = new PeerTransport({ id: 'b' });
  t.teardown(() => b.close());
  const got: Message[] = [];
  b.onMessage((m) => got.push(m));
  await dead.release();
  await b.listen('127.0.0.1', dead.port);
  return { b, got };
}

function appendN(i: number, from = 'a', to = 'b'): AppendMessage {
  const data = new Uint8Array(4);
  new DataView(data.buffer).setUint32(0, i);
  return { type: 'append', from, to, term: 1, prevIndex: i, prevTerm: 1, commit: 0, entries: [{ index: i + 1, term: 1, kind: 'normal', data }] };
}

const appendLane = (m: Message): boolean => m.type === 'append' || m.type === 'appendResponse';
const heartbeatLane = (m: Message): boolean => m.type === 'heartbeat' || m.type === 'heartbeatResponse';

test('every message type arrives exactly as sent, in both directions', async (t) => {
  const p = await startPair();
  t.teardown(() => p.close());
  const atB: Message[] = [];
  const atA: Message[] = [];
  p.b.onMessage((m) => atB.push(m));
  p.a.onMessage((m) => atA.push(m));
  const data = new Uint8Array([0, 1, 2, 254, 255]);
  for (const [from, to, inbox] of [[p.a, p.b, atB], [p.b, p.a, atA]] as const) {
    const sent = sampleMessages(from.id, to.id);
    for (const m of sent) {
      if (m.type === 'snapshot') {
        const sha256 = createHash('sha256').update(data).digest('hex');
        to.onSnapshot(async (_h, stream) => {
          for await (const _ of stream) void _;
        });
        await from.sendSnapshot({ message: m, sizeBytes: data.length, sha256 }, Readable.from([data]));
      } else {
        from.send(m);
      }
    }
    await waitFor(() => inbox.length === sent.length, `${sent.length} messages at ${to.id}`);
    // Ordered lanes keep send order; unary calls (vote, voteResponse, timeoutNow) may overtake.
    t.deepEqual(inbox.filter(appendLane), sent.filter(appendLane));
    t.deepEqual(inbox.filter(heartbeatLane), sent.filter(heartbeatLane));
    for (const m of sent) t.true(inbox.some((r) => isDeepStrictEqual(r, m)), `${m.type} arrived intact at ${to.id}`);
    t.is(new Set(inbox.map((m) => m.type)).size, 8);
  }
  t.is(p.a.stats().rejected + p.b.stats().rejected, 0);
});

test('a burst of 1,000 appends arrives complete and in order', async (t) => {
  const p = await startPair();
  t.teardown(() => p.close());
  const got: number[] = [];
  p.b.onMessage((m) => {
    if (m.type === 'append') got.push(m.prevIndex);
  });
  for (let i = 0; i < 1000; i++) p.a.send(appendN(i));
  await waitFor(() => got.length === 1000, '1,000 appends');
  t.deepEqual(got, Array.from({ length: 1000 }, (_, i) => i));
  await waitFor(() => p.a.stats().peers['b']!.delivered === 1000, 'all acknowledged');
  t.deepEqual(p.a.stats().peers['b']!.dropped, {});
});

test('a full queue drops the newest messages with a logged reason and keeps order', async (t) => {
  const { logger, lines } = capture();
  const p = await startPair({ appendQueueCount: 50, appendWindowCount: 4 }, logger);
  t.teardown(() => p.close());
  const got: number[] = [];
  p.b.onMessage((m) => {
    if (m.type === 'append') got.push(m.prevIndex);
  });
  // Sent synchronously: the stream is still connecting, so everything beyond 50 must be dropped.
  t.notThrows(() => {
    for (let i = 0; i < 1000; i++) p.a.send(appendN(i));
  });
  t.is(p.a.stats().peers['b']!.dropped['queue-full'], 950);
  await waitFor(() => got.length === 50, '50 appends');
  t.deepEqual(got, Array.from({ length: 50 }, (_, i) => i));
  const logged = lines.filter((l) => l['reason'] === 'queue-full');
  t.is(logged.length, 1, 'one log line for the whole burst (rate-limited)');
  t.regex(String(logged[0]!['msg']), /queue holds 50 messages/);
});

test('a down peer makes send() drop without throwing, and traffic recovers once it comes up', async (t) => {
  const { logger, lines } = capture();
  const dead = await deadPort();
  const port = dead.port;
  const a = new PeerTransport({ id: 'a', logger, reconnectBackoffMinMs: 20, reconnectBackoffMaxMs: 200, connectTimeoutMs: 500 });
  t.teardown(() => a.close());
  await a.listen('127.0.0.1', 0);
  a.setPeer('b', `127.0.0.1:${port}`);
  const hb = (seq: number): Message => ({ type: 'heartbeat', from: 'a', to: 'b', term: 1, commit: 0, readSeq: seq });
  let seq = 0;
  for (let i = 0; i < 20; i++) {
    t.notThrows(() => a.send(hb(seq++)));
    t.notThrows(() => a.send(appendN(i)));
    t.notThrows(() => a.send({ type: 'vote', from: 'a', to: 'b', term: 2, preVote: true, transfer: false, lastIndex: 0, lastTerm: 0 }));
    await new Promise((r) => setTimeout(r, 15));
  }
  await waitFor(() => (a.stats().peers['b']!.dropped['unary-failed'] ?? 0) > 0, 'failed votes counted');
  const dropped = a.stats().peers['b']!.dropped;
  t.true((dropped['stream-failed'] ?? 0) + (dropped['unreachable'] ?? 0) > 0, JSON.stringify(dropped));
  t.true(lines.some((l) => l['reason'] === 'unreachable' || l['reason'] === 'stream-failed'), 'drops are logged with a reason');

  const { got } = await peerComesUp(t, dead);
  const pump = setInterval(() => {
    a.send(hb(seq++));
    a.send(appendN(seq));
  }, 20);
  t.teardown(() => clearInterval(pump));
  await waitFor(() => got.some((m) => m.type === 'heartbeat') && got.some((m) => m.type === 'append'), 'traffic after the peer came up');
  clearInterval(pump);
  t.is(a.stats().peers['b']!.heartbeat.state, 'ready');
  t.true(lines.some((l) => /is up again/.test(String(l['msg']))), 'recovery is logged');
});

test('a peer that comes back and makes itself known is reached at once, whatever back-off had built up', async (t) => {
  const { logger, lines } = capture();
  const dead = await deadPort();
  const port = dead.port;
  // A long maximum, so the back-off towards the dead peer grows well past a second.
  const a = new PeerTransport({ id: 'a', logger, reconnectBackoffMinMs: 50, reconnectBackoffMaxMs: 60_000 });
  t.teardown(() => a.close());
  const aPort = await a.listen('127.0.0.1', 0);
  a.setPeer('b', `127.0.0.1:${port}`);
  let seq = 0;
  const hb = (): Message => ({ type: 'heartbeat', from: 'a', to: 'b', term: 1, commit: 0, readSeq: seq++ });
  const pump = setInterval(() => a.send(hb()), 20);
  t.teardown(() => clearInterval(pump));
  const waited = (l: Record<string, unknown>): boolean => l['lane'] === 'heartbeat' && typeof l['retryInMs'] === 'number' && l['retryInMs'] >= 1_500;
  await waitFor(() => lines.some(waited), 'the heartbeat lane to wait at least 1.5 s before its next attempt', 20_000, 10);

  const { b, got } = await peerComesUp(t, dead);
  const back = performance.now();
  // b knows a: it opens its lanes to a at once, and a, hearing from b, stops waiting.
  b.setPeer('a', `127.0.0.1:${aPort}`);
  await waitFor(() => got.some((m) => m.type === 'heartbeat'), 'a heartbeat at b', 10_000, 5);
  const ms = Math.round(performance.now() - back);
  t.true(ms < 1_000, `a reached b ${ms} ms after b came back`);
  t.is(a.stats().peers['b']!.heartbeat.state, 'ready');
});

test('a peer address can change at run time', async (t) => {
  const p = await startPair();
  t.teardown(() => p.close());
  const oldInbox: Message[] = [];
  p.b.onMessage((m) => oldInbox.push(m));
  p.a.send(appendN(0));
  await waitFor(() => oldInbox.length === 1, 'first append at the old address');

  const b2 = new PeerTransport({ id: 'b' });
  t.teardown(() => b2.close());
  const newInbox: Message[] = [];
  b2.onMessage((m) => newInbox.push(m));
  const port2 = await b2.listen('127.0.0.1', 0);
  p.a.setPeer('b', `127.0.0.1:${port2}`);
  t.is(p.a.stats().peers['b']!.address, `127.0.0.1:${port2}`);
  p.a.send(appendN(1));
  p.a.send({ type: 'heartbeat', from: 'a', to: 'b', term: 1, commit: 0, readSeq: 1 });
  await waitFor(() => newInbox.length === 2, 'messages at the new address');
  t.is(oldInbox.length, 1, 'nothing more reached the old address');

  p.a.removePeer('b');
  t.notThrows(() => p.a.send(appendN(2)));
  t.is(p.a.stats().peers['b'], undefined);
  t.is(p.a.stats().droppedUnrouted, 1);
});

test('send() never throws for unknown peers, snapshot messages or a closed transport', async (t) => {
  const { logger, lines } = capture();
  const a = new PeerTransport({ id: 'a', logger });
  const snapshot = sampleMessages('a', 'b').find((m) => m.type === 'snapshot')!;
  t.notThrows(() => a.send(appendN(0, 'a', 'nobody')));
  a.setPeer('b', '127.0.0.1:1');
  t.notThrows(() => a.send(snapshot));
  t.true(lines.some((l) => /use sendSnapshot/.test(String(l['msg']))));
  await a.close();
  t.notThrows(() => a.send(appendN(0)));
  t.is(a.stats().droppedUnrouted, 3);
});

test('hostile input over the wire is logged and dropped; the stream survives it', async (t) => {
  const { logger, lines } = capture();
  const b = new PeerTransport({ id: 'b', logger });
  t.teardown(() => b.close());
  const got: Message[] = [];
  b.onMessage((m) => got.push(m));
  const port = await b.listen('127.0.0.1', 0);
  const svc = raftPeerService();
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  t.teardown(() => client.close());

  // A bidirectional append stream carrying: an unsafe term, a message of the wrong lane, a message
  // for another node, then a good append.
  const call = client.makeBidiStreamRequest(
    svc.appendStream.path,
    svc.appendStream.requestSerialize,
    svc.appendStream.responseDeserialize,
    new grpc.Metadata(),
    {},
  );
  const acks: number[] = [];
  call.on('data', (a: { consumed: number }) => acks.push(a.consumed));
  call.on('error', () => {});
  call.write({ append: { from: 'x', to: 'b', term: '1152921504606846977' } });
  call.write({ vote: { from: 'x', to: 'b', term: 1 } });
  call.write({ append: { from: 'x', to: 'someone-else', term: 1 } });
  call.write({ append: { from: 'x', to: 'b', term: 3, prevIndex: 0, prevTerm: 0, commit: 0, entries: [] } });
  await waitFor(() => acks.includes(4), 'four messages consumed');
  t.deepEqual(got, [{ type: 'append', from: 'x', to: 'b', term: 3, prevIndex: 0, prevTerm: 0, commit: 0, entries: [] }]);
  t.is(b.stats().rejected, 3);
  t.true(lines.some((l) => /message\.append\.term: .* cannot be represented exactly/.test(String(l['msg']))));
  t.true(lines.some((l) => /addressed to someone-else, but this is b/.test(String(l['msg']))));
  call.end();

  // A unary Vote call with a malformed message gets INVALID_ARGUMENT and a stable code.
  const err = await new Promise<grpc.ServiceError | null>((resolve) =>
    client.makeUnaryRequest(
      svc.vote.path,
      svc.vote.requestSerialize,
      svc.vote.responseDeserialize,
      { vote: { from: '', to: 'b', term: 1 } },
      (e: grpc.ServiceError | null) => resolve(e),
    ),
  );
  t.is(err?.code, grpc.status.INVALID_ARGUMENT);
  t.is(err?.metadata.get('conclave-code')[0], 'INVALID_MESSAGE');
  t.regex(err?.details ?? '', /message\.vote\.from: must not be empty/);

  // A message type the call does not carry (a vote on TimeoutNow) is refused the same way.
  const wrong = await new Promise<grpc.ServiceError | null>((resolve) =>
    client.makeUnaryRequest(
      svc.timeoutNow.path,
      svc.timeoutNow.requestSerialize,
      svc.timeoutNow.responseDeserialize,
      { vote: { from: 'x', to: 'b', term: 1 } },
      (e: grpc.ServiceError | null) => resolve(e),
    ),
  );
  t.is(wrong?.code, grpc.status.INVALID_ARGUMENT);
  t.regex(wrong?.details ?? '', /vote is not accepted on this call; expected timeoutNow/);
  t.is(got.length, 1, 'nothing malformed reached the handler');

  // Bytes that are not protobuf at all fail that call only.
  const garbage = client.makeBidiStreamRequest(
    svc.heartbeatStream.path,
    (x: Buffer) => x,
    svc.heartbeatStream.responseDeserialize,
    new grpc.Metadata(),
    {},
  );
  const status = new Promise<grpc.StatusObject>((resolve) => garbage.on('status', resolve));
  garbage.on('error', () => {});
  garbage.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
  t.not((await status).code, grpc.status.OK);

  // And the server still serves well-formed traffic.
  const a = new PeerTransport({ id: 'x' });
  t.teardown(() => a.close());
  a.setPeer('b', `127.0.0.1:${port}`);
  a.send({ type: 'heartbeat', from: 'x', to: 'b', term: 3, commit: 0, readSeq: 9 });
  await waitFor(() => got.length === 2, 'a good heartbeat after the garbage');
  t.is(got[1]!.type, 'heartbeat');
});

test('removing a peer fails its snapshot transfer with a clear error', async (t) => {
  const p = await startPair();
  t.teardown(() => p.close());
  let started!: () => void;
  const startedP = new Promise<void>((r) => (started = r));
  let receiverError: unknown;
  p.b.onSnapshot(async (_h, stream) => {
    started();
    try {
      for await (const _ of stream) await new Promise((r) => setTimeout(r, 50));
    } catch (err) {
      receiverError = err;
      throw err;
    }
  });
  const size = 8 * 1024 * 1024;
  const sha256 = await pseudoRandomSha256(size, 3);
  const message = sampleMessages('a', 'b').find((m): m is SnapshotMessage => m.type === 'snapshot')!;
  const sending = p.a.sendSnapshot({ message, sizeBytes: size, sha256 }, pseudoRandomBytes(size, 3));
  await startedP;
  p.a.removePeer('b');
  const err = await t.throwsAsync(sending);
  t.is((err as { code?: string }).code, 'PEER_CHANGED');
  t.regex(err!.message, /b was removed/);
  // The receiving side does not hang on a cancelled stream: its handler's stream fails.
  await waitFor(() => receiverError !== undefined, "the receiver's handler to see the stream fail");
  t.regex(String((receiverError as Error).message), /the sender cancelled the transfer|the stream broke/);
});

/** A raw append stream into `b`'s server, recording every ack it gets back. */
function rawAppendStream(t: { teardown: (f: () => void) => void }, port: number): { call: grpc.ClientDuplexStream<object, unknown>; acks: number[] } {
  const svc = raftPeerService();
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = client.makeBidiStreamRequest(svc.appendStream.path, svc.appendStream.requestSerialize, svc.appendStream.responseDeserialize, new grpc.Metadata(), {});
  const acks: number[] = [];
  call.on('data', (a: { consumed: number }) => acks.push(a.consumed));
  call.on('error', () => {});
  t.teardown(() => {
    call.cancel();
    client.close();
  });
  return { call, acks };
}

const wireAppend = (i: number): object => ({ append: { from: 'x', to: 'b', term: 1, prevIndex: i, prevTerm: 1, commit: 0, entries: [] } });

test('acks are lazy: messages trickling in are acknowledged together after the ack delay', async (t) => {
  const b = new PeerTransport({ id: 'b', streamAckEveryCount: 8, streamAckDelayMs: 3_000, ackTimeoutMs: 10_000 });
  t.teardown(() => b.close());
  const got: number[] = [];
  b.onMessage((m) => {
    if (m.type === 'append') got.push(m.prevIndex);
  });
  const { call, acks } = rawAppendStream(t, await b.listen('127.0.0.1', 0));
  await waitFor(() => acks.length === 1, 'the ack that opens the stream');
  for (let i = 0; i < 3; i++) {
    call.write(wireAppend(i));
    await waitFor(() => got.length === i + 1, `append ${i} delivered`);
  }
  t.deepEqual(acks, [0], 'three messages, each handled at once, and no ack yet');
  await waitFor(() => acks.length === 2, 'the delayed ack');
  t.deepEqual(acks, [0, 3], 'one ack covers all three');
});

test('acks are lazy: a run of streamAckEveryCount messages is acknowledged at once', async (t) => {
  const b = new PeerTransport({ id: 'b', streamAckEveryCount: 4, streamAckDelayMs: 30_000, ackTimeoutMs: 60_000 });
  t.teardown(() => b.close());
  const { call, acks } = rawAppendStream(t, await b.listen('127.0.0.1', 0));
  await waitFor(() => acks.length === 1, 'the ack that opens the stream');
  for (let i = 0; i < 4; i++) call.write(wireAppend(i));
  // The 30 s delay cannot be what sends this ack: the count does.
  await waitFor(() => acks.includes(4), 'an ack for the fourth message');
  t.is(acks.at(-1), 4);
});

test('the ack delay must leave room under the sender\'s ack timeout', (t) => {
  const e = t.throws(() => new PeerTransport({ id: 'b', streamAckDelayMs: 3_000, ackTimeoutMs: 5_000 }));
  t.regex(e?.message ?? '', /streamAckDelayMs is 3000; it must be an integer in \[0, 2500\]/);
});
