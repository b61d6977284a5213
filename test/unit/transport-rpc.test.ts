// ServerRpc between a real gRPC server and client on 127.0.0.1: forwarded applies and reads carry
// results or typed errors with a leader hint; snapshot save and restore stream in chunks with a
// verified trailer; transport failures reject with TransportError.

import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { MiB } from '../../src/base/index.js';
import {
  ServerRpcClient,
  ServerRpcServer,
  StreamError,
  TransportError,
  conclaveServerService,
  type RpcContext,
  type RpcResult,
  type ServerRpcHandlers,
} from '../../src/transport/index.js';
import { deadPort, pseudoRandomBytes, pseudoRandomSha256 } from '../../src/transport/testing.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

async function start(handlers: Partial<ServerRpcHandlers>): Promise<{ server: ServerRpcServer; client: ServerRpcClient; address: string }> {
  const server = new ServerRpcServer({ handlers });
  const port = await server.listen('127.0.0.1', 0);
  const client = new ServerRpcClient({ id: 'follower-1' });
  return { server, client, address: `127.0.0.1:${port}` };
}

async function sha256Of(stream: AsyncIterable<Uint8Array>): Promise<{ sha256: string; bytes: number; pieces: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  let pieces = 0;
  for await (const c of stream) {
    h.update(c);
    bytes += c.byteLength;
    pieces++;
  }
  return { sha256: h.digest('hex'), bytes, pieces };
}

test('a forwarded apply returns the result bytes or a typed error with a leader hint', async (t) => {
  const seen: Array<{ command: string; caller: string }> = [];
  const { server, client, address } = await start({
    apply: async (command: Uint8Array, ctx: RpcContext) => {
      seen.push({ command: dec(command), caller: ctx.caller });
      if (dec(command) === 'on-follower') {
        return { ok: false, error: { code: 'not-leader', message: 'this server is a follower', leader: { id: 'n2', address: '10.0.0.2:8300' } } };
      }
      return { ok: true, result: new Uint8Array([0, 255, ...enc(`applied ${dec(command)}`)]) };
    },
  });
  t.teardown(async () => {
    client.close();
    await server.close();
  });
  const ok = await client.apply(address, enc('kv set a=1'));
  t.deepEqual(ok, { ok: true, result: new Uint8Array([0, 255, ...enc('applied kv set a=1')]) });
  const refused = await client.apply(address, enc('on-follower'));
  t.deepEqual(refused, {
    ok: false,
    error: { code: 'not-leader', message: 'this server is a follower', leader: { id: 'n2', address: '10.0.0.2:8300' } },
  });
  t.deepEqual(seen, [
    { command: 'kv set a=1', caller: 'follower-1' },
    { command: 'on-follower', caller: 'follower-1' },
  ]);
});

test('a forwarded read round-trips; errors without a hint carry none; handlers may be class instances', async (t) => {
  class Reads {
    private readonly prefix = 'value of ';
    async read(request: Uint8Array): Promise<RpcResult> {
      return dec(request) === 'missing'
        ? { ok: false, error: { code: 'no-leader', message: 'no cluster leader' } }
        : { ok: true, result: enc(`${this.prefix}${dec(request)}`) };
    }
  }
  const { server, client, address } = await start(new Reads());
  t.teardown(async () => {
    client.close();
    await server.close();
  });
  const r = await client.read(address, enc('key/a'));
  t.true(r.ok);
  if (r.ok) t.is(dec(r.result), 'value of key/a');
  t.deepEqual(await client.read(address, enc('missing')), { ok: false, error: { code: 'no-leader', message: 'no cluster leader' } });
});

test('handler failures, missing handlers and bad answers are transport errors, not answers', async (t) => {
  const { server, client, address } = await start({
    apply: async () => {
      throw new Error('leveldb write failed: disk full');
    },
    read: async () => ({ ok: false, error: { code: 'Not Leader!', message: 'x' } }),
  });
  t.teardown(async () => {
    client.close();
    await server.close();
  });
  const failed = await t.throwsAsync(client.apply(address, enc('x')));
  t.true(failed instanceof TransportError);
  t.is((failed as TransportError).code, 'REMOTE_FAILED');
  t.is((failed as TransportError).remoteCode, 'HANDLER_FAILED');
  t.regex(failed!.message, /forwarded apply to 127\.0\.0\.1:\d+ failed: apply failed on this server: leveldb write failed: disk full/);

  const badAnswer = await t.throwsAsync(client.read(address, enc('x')));
  t.is((badAnswer as TransportError).remoteCode, 'HANDLER_BAD_ANSWER');

  const missing = await t.throwsAsync(client.snapshotRestore(address, enc('h'), Readable.from([Buffer.from('x')])));
  t.is((missing as TransportError).remoteCode, 'NO_HANDLER');
});

test('a server that is down makes calls reject with NOT_SENT: forwarded on the stream and unary alike', async (t) => {
  const client = new ServerRpcClient();
  t.teardown(() => client.close());
  const dead = await deadPort();
  t.teardown(() => dead.release());
  const err = await t.throwsAsync(client.apply(`127.0.0.1:${dead.port}`, enc('x'), { timeoutMs: 2_000 }));
  t.true(err instanceof TransportError);
  t.is((err as TransportError).code, 'NOT_SENT');
  t.regex(err!.message, /forwarded apply to 127\.0\.0\.1:\d+ was not sent: .*\(gRPC status 14\)/);
  const op = await t.throwsAsync(client.operator(`127.0.0.1:${dead.port}`, enc('hello'), { timeoutMs: 2_000 }));
  t.is((op as TransportError).code, 'NOT_SENT');
  t.regex(op!.message, /operator call to 127\.0\.0\.1:\d+ was not sent: no connection could be established/);
});

test('operator calls are unary calls of their own: never on the Forward stream, never to the read handler', async (t) => {
  const seen: string[] = [];
  const { server, client, address } = await start({
    read: async (request: Uint8Array) => {
      seen.push(`read ${dec(request)}`);
      return { ok: true, result: request };
    },
    operator: async (request: Uint8Array) => {
      seen.push(`operator ${dec(request)}`);
      return dec(request) === 'transfer'
        ? { ok: false, error: { code: 'not-leader', message: 'ask the leader', leader: { id: 'n1', address: '10.0.0.1:8300' } } }
        : { ok: true, result: enc(`done ${dec(request)}`) };
    },
  });
  t.teardown(async () => {
    client.close();
    await server.close();
  });
  t.deepEqual(await client.operator(address, enc('join')), { ok: true, result: enc('done join') });
  t.deepEqual(await client.operator(address, enc('transfer')), {
    ok: false,
    error: { code: 'not-leader', message: 'ask the leader', leader: { id: 'n1', address: '10.0.0.1:8300' } },
  });
  t.deepEqual(seen, ['operator join', 'operator transfer']);
  t.deepEqual(server.stats(), { forwardStreams: 0, forwardedCalls: 0, unaryCalls: 2 });
});

test('snapshot save streams header, chunks and a verified trailer; a refusal is a typed answer', async (t) => {
  const size = 3 * MiB + 12345;
  const sha256 = await pseudoRandomSha256(size, 21);
  const { server, client, address } = await start({
    snapshotSave: async (request: Uint8Array) =>
      dec(request) === 'stale=false&follower'
        ? { ok: false, error: { code: 'not-leader', message: 'ask the leader', leader: { id: 'n1', address: '10.0.0.1:8300' } } }
        : { ok: true, header: enc('{"Index":44}'), body: pseudoRandomBytes(size, 21, 100_000) },
  });
  t.teardown(async () => {
    client.close();
    await server.close();
  });
  const saved = await client.snapshotSave(address, enc('stale=false'));
  if (!saved.ok) return t.fail(saved.error.message);
  t.is(dec(saved.header), '{"Index":44}');
  const got = await sha256Of(saved.body);
  t.is(got.bytes, size);
  t.is(got.sha256, sha256);
  t.true(got.pieces >= 7, `${got.pieces} pieces`);

  const refused = await client.snapshotSave(address, enc('stale=false&follower'));
  t.deepEqual(refused, { ok: false, error: { code: 'not-leader', message: 'ask the leader', leader: { id: 'n1', address: '10.0.0.1:8300' } } });
});

test('a snapshot save that fails mid-stream fails the body instead of ending it', async (t) => {
  async function* failing(): AsyncGenerator<Uint8Array> {
    yield new Uint8Array(600_000);
    throw new Error('leveldb iterator closed');
  }
  const { server, client, address } = await start({
    snapshotSave: async () => ({ ok: true, header: enc('h'), body: failing() }),
  });
  t.teardown(async () => {
    client.close();
    await server.close();
  });
  const saved = await client.snapshotSave(address, enc(''));
  if (!saved.ok) return t.fail('refused');
  const err = await t.throwsAsync(sha256Of(saved.body));
  t.true(err instanceof StreamError);
  t.is((err as StreamError).code, 'STREAM_BROKEN');
  t.regex(err!.message, /leveldb iterator closed/);
});

test('restore streams header and chunks to the handler, which sees verified bytes only', async (t) => {
  const size = 5 * MiB + 3;
  const sha256 = await pseudoRandomSha256(size, 31);
  const received: Array<{ header: string; sha256: string; bytes: number }> = [];
  const { server, client, address } = await start({
    snapshotRestore: async (header: Uint8Array, body: Readable) => {
      if (dec(header) === 'refuse-early') return { ok: false, error: { code: 'restore-pending', message: 'a restore is already running' } };
      const got = await sha256Of(body);
      received.push({ header: dec(header), sha256: got.sha256, bytes: got.bytes });
      return { ok: true, result: enc(`restored ${got.bytes} bytes`) };
    },
  });
  t.teardown(async () => {
    client.close();
    await server.close();
  });
  const r = await client.snapshotRestore(address, enc('archive.tgz'), pseudoRandomBytes(size, 31, 70_000));
  t.deepEqual(r, { ok: true, result: enc(`restored ${size} bytes`) });
  t.deepEqual(received, [{ header: 'archive.tgz', sha256, bytes: size }]);

  const early = await client.snapshotRestore(address, enc('refuse-early'), pseudoRandomBytes(8 * MiB, 1));
  t.deepEqual(early, { ok: false, error: { code: 'restore-pending', message: 'a restore is already running' } });
});

test('a restore stream with a wrong trailer or none is refused and its handler never succeeds', async (t) => {
  let handlerErrors: string[] = [];
  const { server, address } = await start({
    snapshotRestore: async (_h: Uint8Array, body: Readable) => {
      try {
        await sha256Of(body);
      } catch (err) {
        handlerErrors.push((err as StreamError).code);
        throw err;
      }
      return { ok: true, result: enc('restored') };
    },
  });
  const raw = new grpc.Client(address, grpc.credentials.createInsecure());
  t.teardown(async () => {
    raw.close();
    await server.close();
  });
  const m = conclaveServerService().snapshotRestore;
  const send = (parts: object[]): Promise<grpc.ServiceError | null> =>
    new Promise((resolve) => {
      const call = raw.makeClientStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, (e: grpc.ServiceError | null) => resolve(e));
      for (const p of parts) call.write(p);
      call.end();
    });
  const data = Buffer.alloc(1000, 7);
  const rightSha = createHash('sha256').update(data).digest();

  const wrongSha = await send([{ header: enc('h') }, { data }, { trailer: { sizeBytes: 1000, sha256: Buffer.alloc(32) } }]);
  t.is(wrongSha?.code, grpc.status.INVALID_ARGUMENT);
  t.is(wrongSha?.metadata.get('conclave-code')[0], 'STREAM_CHECKSUM_MISMATCH');
  t.regex(wrongSha?.details ?? '', /restore stream from .*: the 1000 bytes received have SHA-256 [0-9a-f]{64}; the trailer says 0{64}; nothing was restored/);

  const wrongSize = await send([{ header: enc('h') }, { data }, { trailer: { sizeBytes: 999, sha256: rightSha } }]);
  t.is(wrongSize?.metadata.get('conclave-code')[0], 'STREAM_SIZE_MISMATCH');

  const noTrailer = await send([{ header: enc('h') }, { data }]);
  t.is(noTrailer?.metadata.get('conclave-code')[0], 'STREAM_TRUNCATED');

  const noHeader = await send([{ data }]);
  t.is(noHeader?.metadata.get('conclave-code')[0], 'STREAM_BAD_PART');

  const good = await send([{ header: enc('h') }, { data }, { trailer: { sizeBytes: 1000, sha256: rightSha } }]);
  t.is(good, null);
  t.deepEqual(handlerErrors, ['STREAM_CHECKSUM_MISMATCH', 'STREAM_SIZE_MISMATCH', 'STREAM_TRUNCATED']);
  handlerErrors = [];
});
