// The Forward stream between a real gRPC server and client on 127.0.0.1: forwarded applies and reads
// share one long-lived stream per address, finish in any order, keep their own deadlines, and fail
// the way unary calls did when the stream breaks; an older server without Forward gets unary calls.

import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import {
  ServerRpcClient,
  ServerRpcServer,
  TransportError,
  conclaveServerService,
  type RpcContext,
  type RpcResult,
  type ServerRpcHandlers,
} from '../../src/transport/index.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

async function start(
  handlers: Partial<ServerRpcHandlers>,
  options: { forwardInflightCount?: number; port?: number } = {},
): Promise<{ server: ServerRpcServer; address: string; port: number }> {
  const server = new ServerRpcServer({ handlers, ...(options.forwardInflightCount ? { forwardInflightCount: options.forwardInflightCount } : {}) });
  const port = await server.listen('127.0.0.1', options.port ?? 0);
  return { server, address: `127.0.0.1:${port}`, port };
}

/** A hand-written service on 127.0.0.1, to play an older or misbehaving server; shut down with the test. */
async function serveRaw(t: ExecutionContext, definition: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): Promise<string> {
  const grpcServer = new grpc.Server();
  grpcServer.addService(definition, impl);
  const port = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  t.teardown(() => grpcServer.forceShutdown());
  return `127.0.0.1:${port}`;
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

test('forwarded calls share one stream, run at once and finish in any order', async (t) => {
  const gates = new Map<string, (r: RpcResult) => void>();
  const running = deferred<void>();
  const { server, address } = await start({
    read: (request: Uint8Array) =>
      new Promise<RpcResult>((resolve) => {
        gates.set(dec(request), resolve);
        if (gates.size === 40) running.resolve();
      }),
    apply: async (command: Uint8Array) => ({ ok: true, result: enc(`applied ${dec(command)}`) }),
  });
  const client = new ServerRpcClient({ id: 'f1' });
  t.teardown(async () => {
    client.close();
    await server.close();
  });
  const reads = Array.from({ length: 40 }, (_, i) => client.read(address, enc(`r${i}`)));
  await running.promise; // all 40 are running on the server together
  // An apply passes the 40 waiting reads.
  t.deepEqual(await client.apply(address, enc('x')), { ok: true, result: enc('applied x') });
  for (let i = 39; i >= 0; i--) gates.get(`r${i}`)!({ ok: true, result: enc(`value ${i}`) });
  const answers = await Promise.all(reads);
  t.deepEqual(answers.map((a) => (a.ok ? dec(a.result) : a.error.code)), Array.from({ length: 40 }, (_, i) => `value ${i}`));
  t.deepEqual(server.stats(), { forwardStreams: 1, forwardedCalls: 41, unaryCalls: 0 });
});

test('a call past its deadline rejects, its handler sees the cancel, and the stream goes on', async (t) => {
  const cancelled = deferred<string>();
  const { server, address } = await start({
    read: (request: Uint8Array, ctx: RpcContext) =>
      new Promise<RpcResult>((resolve) => {
        if (dec(request) !== 'slow') return resolve({ ok: true, result: request });
        ctx.signal.addEventListener('abort', () => cancelled.resolve(String((ctx.signal.reason as Error).message)));
      }),
  });
  const client = new ServerRpcClient();
  t.teardown(async () => {
    client.close();
    await server.close();
  });
  // The stream is open and accepted first: a call that waited for it longer than its deadline would
  // be NOT_SENT instead (a loaded machine can take 200 ms to connect).
  t.deepEqual(await client.read(address, enc('warm-up')), { ok: true, result: enc('warm-up') });
  const err = await t.throwsAsync(client.read(address, enc('slow'), { timeoutMs: 200 }));
  t.true(err instanceof TransportError);
  t.is((err as TransportError).code, 'DEADLINE_EXCEEDED');
  t.regex(err!.message, /forwarded read to 127\.0\.0\.1:\d+ failed: no answer within 200 ms/);
  t.is(await cancelled.promise, 'the caller cancelled the call');
  t.deepEqual(await client.read(address, enc('fast')), { ok: true, result: enc('fast') });
  t.is(server.stats().forwardStreams, 1);
});

test('a server that goes away fails the calls in flight as possibly sent; the next call opens a new stream', async (t) => {
  const started = deferred<void>();
  const first = await start({
    apply: () => {
      started.resolve();
      return new Promise<RpcResult>(() => {}); // never answers: the server dies first
    },
  });
  const client = new ServerRpcClient({ reconnectBackoffMinMs: 50, reconnectBackoffMaxMs: 100 });
  t.teardown(() => client.close());
  const inFlight = client.apply(first.address, enc('lost?'));
  await started.promise;
  await first.server.close();
  const err = await t.throwsAsync(inFlight);
  t.true(err instanceof TransportError);
  // UNAVAILABLE, not NOT_SENT: the call reached the server, so its outcome is unknown.
  t.is((err as TransportError).code, 'UNAVAILABLE');

  const second = await start({ apply: async (c: Uint8Array) => ({ ok: true, result: c }) }, { port: first.port });
  t.teardown(() => second.server.close());
  let answer: RpcResult | undefined;
  // The channel reconnects with backoff; a call made while it is still down fails as never sent.
  for (let i = 0; i < 100 && answer === undefined; i++) {
    try {
      answer = await client.apply(second.address, enc('again'));
    } catch (e) {
      t.is((e as TransportError).code, 'NOT_SENT', String(e));
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  t.deepEqual(answer, { ok: true, result: enc('again') });
  t.is(second.server.stats().forwardStreams, 1);
});

test('a server without the Forward method (an older Conclave) gets unary calls', async (t) => {
  const svc = conclaveServerService();
  const { Forward: _forward, ...older } = svc.definition;
  const seen: string[] = [];
  const address = await serveRaw(t, older, {
    Apply: (call: grpc.ServerUnaryCall<{ command: Buffer }, object>, cb: grpc.sendUnaryData<object>) => {
      seen.push(`apply ${dec(call.request.command)}`);
      cb(null, { result: call.request.command });
    },
    Read: (call: grpc.ServerUnaryCall<{ request: Buffer }, object>, cb: grpc.sendUnaryData<object>) => {
      seen.push(`read ${dec(call.request.request)}`);
      cb(null, { result: call.request.request });
    },
  });
  const client = new ServerRpcClient();
  t.teardown(() => client.close());
  const first = await Promise.all([client.apply(address, enc('a')), client.read(address, enc('b'))]);
  t.deepEqual(first, [{ ok: true, result: enc('a') }, { ok: true, result: enc('b') }]);
  t.deepEqual(await client.apply(address, enc('c')), { ok: true, result: enc('c') });
  t.deepEqual(seen.sort(), ['apply a', 'apply c', 'read b']);
});

test('a handler failure ends only its own call; too many calls in flight are refused one by one', async (t) => {
  const hold = deferred<void>();
  const { server, address } = await start(
    {
      apply: async (command: Uint8Array) => {
        if (dec(command) === 'boom') throw new Error('disk full');
        await hold.promise;
        return { ok: true, result: command };
      },
    },
    { forwardInflightCount: 2 },
  );
  const client = new ServerRpcClient();
  t.teardown(async () => {
    client.close();
    await server.close();
  });
  const failed = await t.throwsAsync(client.apply(address, enc('boom')));
  t.is((failed as TransportError).code, 'REMOTE_FAILED');
  t.is((failed as TransportError).remoteCode, 'HANDLER_FAILED');
  t.regex(failed!.message, /forwarded apply to 127\.0\.0\.1:\d+ failed: apply failed on this server: disk full \(gRPC status 13\)/);
  const held = [client.apply(address, enc('1')), client.apply(address, enc('2'))];
  const busy = await t.throwsAsync(client.apply(address, enc('3')));
  t.is((busy as TransportError).remoteCode, 'FORWARD_BUSY');
  t.regex(busy!.message, /already runs 2 forwarded calls/);
  hold.resolve();
  t.deepEqual(await Promise.all(held), [{ ok: true, result: enc('1') }, { ok: true, result: enc('2') }]);
  t.is(server.stats().forwardStreams, 1);
});

test('a malformed or duplicate request ends the Forward stream with INVALID_ARGUMENT', async (t) => {
  const never = new Promise<RpcResult>(() => {});
  const { server, address } = await start({ read: () => never });
  const m = conclaveServerService().forward;
  const raw = new grpc.Client(address, grpc.credentials.createInsecure());
  t.teardown(async () => {
    raw.close();
    await server.close();
  });
  const statusOf = (messages: object[]): Promise<grpc.StatusObject> =>
    new Promise((resolve) => {
      const call = raw.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, new grpc.Metadata(), {});
      call.on('error', () => {});
      call.on('data', () => {});
      call.on('status', resolve);
      for (const msg of messages) call.write(msg);
    });
  const noMember = await statusOf([{ id: 1 }]);
  t.is(noMember.code, grpc.status.INVALID_ARGUMENT);
  t.regex(noMember.details, /forward\.call: missing/);
  const zeroId = await statusOf([{ id: 0, read: Buffer.from('x') }]);
  t.regex(zeroId.details, /forward\.id: must be above 0/);
  const dup = await statusOf([{ id: 7, read: Buffer.from('x') }, { id: 7, read: Buffer.from('y') }]);
  t.is(dup.code, grpc.status.INVALID_ARGUMENT);
  t.regex(dup.details, /call 7 is already in flight/);
});

test('an aborted signal cancels a call: it rejects with CANCELLED and the handler sees the abort', async (t) => {
  const aborted = deferred<void>();
  const started = deferred<void>();
  const { server, address } = await start({
    read: (request: Uint8Array, ctx: RpcContext) =>
      new Promise<RpcResult>((resolve) => {
        if (dec(request) !== 'watch') return resolve({ ok: true, result: request });
        ctx.signal.addEventListener('abort', () => aborted.resolve());
        started.resolve();
      }),
  });
  const client = new ServerRpcClient();
  t.teardown(async () => {
    client.close();
    await server.close();
  });
  const controller = new AbortController();
  const watching = client.read(address, enc('watch'), { timeoutMs: 60_000, signal: controller.signal });
  await started.promise;
  controller.abort();
  const err = await t.throwsAsync(watching);
  t.is((err as TransportError).code, 'CANCELLED');
  t.regex(err!.message, /forwarded read to 127\.0\.0\.1:\d+ was cancelled by its caller/);
  await aborted.promise; // the leader stopped waiting too
  // A signal that already fired sends nothing; the stream serves the next call.
  const before = server.stats().forwardedCalls;
  await t.throwsAsync(client.read(address, enc('x'), { signal: AbortSignal.abort() }), { message: /cancelled by its caller/ });
  t.deepEqual(await client.read(address, enc('next')), { ok: true, result: enc('next') });
  t.is(server.stats().forwardedCalls, before + 1);
});

test('an undecodable reply fails the calls in flight as BAD_RESPONSE; closing the client fails them with its reason', async (t) => {
  const svc = conclaveServerService();
  let hangs = 0;
  const address = await serveRaw(t, svc.definition, {
    Forward: (call: grpc.ServerDuplexStream<{ id: number }, object>) => {
      call.sendMetadata(new grpc.Metadata()); // accepts the stream, as the real server does
      call.on('data', (req: { id: number; read?: Buffer }) => {
        if (req.read !== undefined && req.read.toString() === 'hang') hangs++;
        // 'bad' gets a reply with id 0, which no caller can have chosen; 'hang' gets nothing.
        if (req.read !== undefined && req.read.toString() === 'bad') call.write({ id: 0, outcome: { result: Buffer.from('x') } });
      });
      call.on('error', () => {});
    },
  });
  const client = new ServerRpcClient();
  const waiting = client.read(address, enc('hang'));
  const bad = await t.throwsAsync(client.read(address, enc('bad')));
  t.is((bad as TransportError).code, 'BAD_RESPONSE');
  t.regex(bad!.message, /forwarded read to 127\.0\.0\.1:\d+ failed: an undecodable reply \(reply\.id: must be above 0\) while the call was in flight/);
  const alsoFailed = await t.throwsAsync(waiting);
  t.is((alsoFailed as TransportError).code, 'BAD_RESPONSE');

  const hanging = client.read(address, enc('hang'));
  while (hangs < 2) await new Promise((r) => setTimeout(r, 10)); // sent on the new stream
  client.close();
  const closed = await t.throwsAsync(hanging);
  t.is((closed as TransportError).code, 'UNAVAILABLE');
  t.regex(closed!.message, /the client closed the connection while the call was in flight/);
  // A call the new stream had not carried yet is known never to have been sent.
  const client2 = new ServerRpcClient();
  const unsent = client2.read(address, enc('hang'));
  client2.close();
  const notSent = await t.throwsAsync(unsent);
  t.is((notSent as TransportError).code, 'NOT_SENT');
  t.regex(notSent!.message, /was not sent: the client closed the connection before the server accepted the stream/);
});

test('calls on a Forward stream the server fails before accepting it are NOT_SENT and never reach it', async (t) => {
  const svc = conclaveServerService();
  let received = 0;
  const address = await serveRaw(t, svc.definition, {
    // Reads what arrives (nothing should), then fails the stream without ever sending its headers.
    Forward: (call: grpc.ServerDuplexStream<unknown, object>) => {
      call.on('data', () => received++);
      call.on('error', () => {});
      setTimeout(() => call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'not taking calls' }), 200);
    },
  });
  const client = new ServerRpcClient();
  t.teardown(() => client.close());
  const errors = await Promise.all([client.apply(address, enc('w')), client.read(address, enc('r'))].map((p) => t.throwsAsync(p)));
  for (const e of errors) {
    t.is((e as TransportError).code, 'NOT_SENT');
    t.is((e as TransportError).grpcCode, grpc.status.UNAVAILABLE);
  }
  t.regex(errors[0]!.message, /forwarded apply to 127\.0\.0\.1:\d+ was not sent: not taking calls \(gRPC status 14\)/);
  t.is(received, 0);
});
