// InstallSnapshot over a gRPC client stream: the sending side (header, then chunks, with bounded
// memory and a size-scaled deadline) and the receiving side (verify size and SHA-256 while streaming
// into the handler; the handler's stream ends cleanly only when both match).

import { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { NodeId } from '../raft/index.js';
import { SourceError, WriteGate, forEachChunk, type ByteSource } from './chunks.js';
import { decodeSnapshotHeader, encodeSnapshotHeader, type SnapshotHeader } from './codec.js';
import { SnapshotStreamError, TransportError, codeMetadataKey, type SnapshotRejectCode } from './errors.js';
import { transportDefaults } from './limits.js';
import type { Method } from './proto.js';
import { HashedStreamVerifier } from './verifier.js';
import { bytes, describe, rec, oneofMember, Invalid } from './wire.js';

/**
 * Stores an incoming snapshot. `data` yields the snapshot's bytes in order; it ends only after the
 * transport has checked the total size and SHA-256 against `header`, and fails with a
 * SnapshotStreamError otherwise (then discard whatever was stored). It also fails when the sender
 * cancels or the deadline passes, even if the handler is not reading. Resolve to accept the snapshot
 * (once it is durable), reject to refuse it. Stream the bytes to storage; never collect them in memory.
 * The sender is answered as soon as verification fails, possibly while this handler is still cleaning
 * up, so a retried transfer may overlap it: write to a temporary name of your own per call.
 */
export type SnapshotHandler = (header: SnapshotHeader, data: Readable) => Promise<void>;

export function snapshotDeadlineMs(sizeBytes: number, baseMs: number, minBytesPerSec: number): number {
  return baseMs + Math.ceil((sizeBytes / minBytesPerSec) * 1000);
}

// ---------------------------------------------------------------------------------------------
// Sending.
// ---------------------------------------------------------------------------------------------

export interface SnapshotSendContext {
  readonly peer: NodeId;
  readonly client: grpc.Client;
  readonly method: Method;
  readonly metadata: grpc.Metadata;
  readonly chunkBytes: number;
  readonly chunksInFlight: number;
  readonly deadlineMs: number;
  /** Aborting cancels the call; the returned promise then rejects with `signal.reason`. */
  readonly signal: AbortSignal;
}

function describeSnapshot(h: SnapshotHeader): string {
  return `snapshot at index ${h.message.snapshot.index} (term ${h.message.snapshot.term}, ${h.sizeBytes} bytes)`;
}

function mapSendError(err: grpc.ServiceError, h: SnapshotHeader, ctx: SnapshotSendContext): TransportError {
  if (ctx.signal.aborted && ctx.signal.reason instanceof TransportError) return ctx.signal.reason;
  const what = describeSnapshot(h);
  const remote = err.metadata?.get(codeMetadataKey)[0];
  const common = { peer: ctx.peer, grpcCode: err.code, cause: err };
  if (typeof remote === 'string') {
    return new TransportError('SNAPSHOT_REJECTED', `${ctx.peer} rejected the ${what}: ${err.details} [${remote}]`, {
      ...common,
      remoteCode: remote,
    });
  }
  if (err.code === grpc.status.DEADLINE_EXCEEDED) {
    return new TransportError(
      'DEADLINE_EXCEEDED',
      `sending the ${what} to ${ctx.peer} did not finish within its deadline of ${ctx.deadlineMs} ms`,
      common,
    );
  }
  return new TransportError('UNAVAILABLE', `sending the ${what} to ${ctx.peer} failed: ${err.details} (gRPC status ${err.code})`, common);
}

/** Streams one snapshot; resolves once the peer has verified and accepted it. */
export async function sendSnapshotStream(ctx: SnapshotSendContext, header: SnapshotHeader, source: ByteSource): Promise<void> {
  const m = ctx.method;
  let ended: grpc.ServiceError | null | undefined;
  let settle!: { resolve: () => void; reject: (e: Error) => void };
  const result = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  // Every path below awaits `result` or abandons it on purpose; never leave it unhandled.
  result.catch(() => {});
  const callEnded = result.then(
    () => undefined,
    () => undefined,
  );
  const call = ctx.client.makeClientStreamRequest(
    m.path,
    m.requestSerialize,
    m.responseDeserialize,
    ctx.metadata,
    { deadline: Date.now() + ctx.deadlineMs },
    (err: grpc.ServiceError | null) => {
      ended = err;
      write.abort();
      if (err) settle.reject(mapSendError(err, header, ctx));
      else settle.resolve();
    },
  );
  call.on('error', () => {});
  const write = new WriteGate(call, ctx.chunksInFlight);
  const onAbort = (): void => call.cancel();
  ctx.signal.addEventListener('abort', onAbort);
  try {
    if (ctx.signal.aborted) call.cancel();
    await write.write(encodeSnapshotHeader(header));
    let sent = 0;
    try {
      await forEachChunk(source, ctx.chunkBytes, callEnded, async (chunk) => {
        if (sent + chunk.length > header.sizeBytes) {
          throw new TransportError(
            'SNAPSHOT_SOURCE_SIZE_MISMATCH',
            `the source of the ${describeSnapshot(header)} for ${ctx.peer} yielded more than the declared ` +
              `${header.sizeBytes} bytes; the transfer was cancelled and nothing was installed`,
            { peer: ctx.peer },
          );
        }
        sent += chunk.length;
        await write.write({ data: chunk });
      });
    } catch (err) {
      call.cancel();
      if (err instanceof TransportError) throw err;
      const reason = err instanceof SourceError ? err.message : `reading it failed: ${(err as Error)?.message ?? describe(err)}`;
      throw new TransportError(
        'SNAPSHOT_SOURCE_FAILED',
        `the source of the ${describeSnapshot(header)} for ${ctx.peer} failed: ${reason}; the transfer was cancelled`,
        { peer: ctx.peer, cause: err },
      );
    }
    if (ended === undefined) {
      if (sent !== header.sizeBytes) {
        call.cancel();
        throw new TransportError(
          'SNAPSHOT_SOURCE_SIZE_MISMATCH',
          `the source of the ${describeSnapshot(header)} for ${ctx.peer} ended after ${sent} bytes; ` +
            `the header declared ${header.sizeBytes}. The transfer was cancelled and nothing was installed`,
          { peer: ctx.peer },
        );
      }
      call.end();
    }
    await result;
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
  }
}

// ---------------------------------------------------------------------------------------------
// Receiving.
// ---------------------------------------------------------------------------------------------

export type SnapshotReceipt =
  | { readonly ok: true; readonly header: SnapshotHeader; readonly receivedBytes: number }
  | { readonly ok: false; readonly grpcCode: grpc.status; readonly code: SnapshotRejectCode; readonly message: string };

/** Pulls data chunks from the call, checking chunk type and size, total size and SHA-256. */
class Verifier extends HashedStreamVerifier<SnapshotRejectCode, SnapshotStreamError> {
  constructor(
    it: AsyncIterator<unknown>,
    private readonly header: SnapshotHeader,
    private readonly maxChunkBytes: number,
    /** grpc-js ends a cancelled call's stream like a finished one; this tells the two apart. */
    private readonly cancelled: () => boolean,
  ) {
    super(it);
  }

  protected error(code: SnapshotRejectCode, message: string): SnapshotStreamError {
    return new SnapshotStreamError(code, `${message}; the snapshot was not installed`);
  }

  private chunk(raw: unknown, n: number): Buffer {
    try {
      const o = rec(raw, `chunk[${n}]`);
      const part = oneofMember(o, 'part', `chunk[${n}]`, ['header', 'data']);
      if (part !== 'data') throw new Invalid(`chunk[${n}].part`, 'a second header; only data may follow the header');
      const data = bytes(o, 'data', `chunk[${n}]`);
      return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    } catch (err) {
      if (err instanceof Invalid) this.fail('SNAPSHOT_BAD_CHUNK', `malformed snapshot chunk: ${err.message}`);
      throw err;
    }
  }

  async *bytes(): AsyncGenerator<Buffer> {
    const size = this.header.sizeBytes;
    for (let n = 1; ; n++) {
      const r = await this.next((err) => ['SNAPSHOT_STREAM_BROKEN', `the stream broke after ${this.received} of ${size} bytes: ${(err as Error).message}`]);
      if (r.done === true) {
        if (this.cancelled()) {
          this.fail('SNAPSHOT_STREAM_BROKEN', `the sender cancelled the transfer (or its deadline passed) after ${this.received} of ${size} bytes`);
        }
        break;
      }
      const data = this.chunk(r.value, n);
      this.checkChunk(data, n, this.maxChunkBytes, 'SNAPSHOT_CHUNK_TOO_LARGE');
      if (this.received + data.length > size) {
        this.fail('SNAPSHOT_SIZE_MISMATCH', `received more than the ${size} bytes the header declared`);
      }
      this.count(data);
      yield data;
    }
    if (this.received !== size) {
      this.fail('SNAPSHOT_SIZE_MISMATCH', `the stream ended after ${this.received} bytes; the header declared ${size} (short stream)`);
    }
    const actual = this.sha256Hex();
    if (actual !== this.header.sha256) {
      this.fail('SNAPSHOT_CHECKSUM_MISMATCH', `the ${size} bytes received have SHA-256 ${actual}; the header declared ${this.header.sha256}`);
    }
    this.complete = true;
  }
}

function refuse(grpcCode: grpc.status, code: SnapshotRejectCode, message: string): SnapshotReceipt {
  return { ok: false, grpcCode, code, message };
}

export interface SnapshotReceiveContext {
  readonly localId: NodeId;
  readonly handler: SnapshotHandler | undefined;
  readonly maxChunkBytes: number;
}

/** Reads one InstallSnapshot call to the end (or to the first failure) and says what to answer. */
export async function receiveSnapshot(
  call: AsyncIterable<unknown> & { readonly cancelled?: boolean; once?(event: 'cancelled', listener: () => void): unknown },
  ctx: SnapshotReceiveContext,
): Promise<SnapshotReceipt> {
  const it = call[Symbol.asyncIterator]();
  let first: IteratorResult<unknown>;
  try {
    first = await it.next();
  } catch (err) {
    return refuse(grpc.status.CANCELLED, 'SNAPSHOT_STREAM_BROKEN', `the stream broke before its header: ${(err as Error).message}`);
  }
  if (first.done === true) return refuse(grpc.status.INVALID_ARGUMENT, 'SNAPSHOT_BAD_HEADER', 'the stream ended before its header');
  const headerRaw = (first.value as { part?: unknown; header?: unknown } | null)?.part === 'header' ? (first.value as { header: unknown }).header : undefined;
  if (headerRaw === undefined) {
    return refuse(grpc.status.INVALID_ARGUMENT, 'SNAPSHOT_BAD_HEADER', 'the first message of the stream is not a header');
  }
  const decoded = decodeSnapshotHeader(headerRaw);
  if (!decoded.ok) return refuse(grpc.status.INVALID_ARGUMENT, 'SNAPSHOT_BAD_HEADER', `malformed snapshot header: ${decoded.error.message}`);
  const header = decoded.value;
  if (header.message.to !== ctx.localId) {
    return refuse(
      grpc.status.INVALID_ARGUMENT,
      'SNAPSHOT_MISADDRESSED',
      `the snapshot is addressed to ${header.message.to} but this is ${ctx.localId}`,
    );
  }
  if (ctx.handler === undefined) {
    return refuse(grpc.status.UNAVAILABLE, 'SNAPSHOT_NO_HANDLER', `${ctx.localId} has no snapshot handler yet; retry later`);
  }
  const verifier = new Verifier(it, header, ctx.maxChunkBytes, () => call.cancelled === true);
  const data = Readable.from(verifier.bytes(), { objectMode: false, highWaterMark: transportDefaults.verifiedReadAheadBytes });
  // Errors stay observable to whoever reads (the stream remains errored); this only keeps an
  // unobserved one from becoming an uncaught exception.
  data.on('error', () => {});
  // A cancelled call (sender gone, deadline passed) fails the handler's stream at once, even when the
  // handler is not reading, so a stuck handler cannot keep the transfer open.
  call.once?.('cancelled', () => {
    const err = verifier.abort(
      'SNAPSHOT_STREAM_BROKEN',
      `the sender cancelled the transfer (or its deadline passed) after ${verifier.received} of ${header.sizeBytes} bytes`,
    );
    if (err !== undefined) data.destroy(err);
  });
  type Outcome = { kind: 'handled'; error?: unknown } | { kind: 'failed'; failure: SnapshotStreamError };
  const handled: Promise<Outcome> = (async () => {
    try {
      await ctx.handler!(header, data);
      return { kind: 'handled' } as const;
    } catch (error) {
      return { kind: 'handled', error } as const;
    }
  })();
  const outcome = await Promise.race([handled, verifier.failed.then((failure): Outcome => ({ kind: 'failed', failure }))]);
  data.destroy();
  const failure = verifier.failure ?? (outcome.kind === 'failed' ? outcome.failure : undefined);
  if (failure !== undefined) {
    const grpcCode = failure.code === 'SNAPSHOT_STREAM_BROKEN' ? grpc.status.CANCELLED : grpc.status.INVALID_ARGUMENT;
    return refuse(grpcCode, failure.code, failure.message);
  }
  if (outcome.kind === 'handled' && outcome.error !== undefined) {
    const e = outcome.error;
    return refuse(grpc.status.FAILED_PRECONDITION, 'SNAPSHOT_REFUSED', `the snapshot handler refused it: ${e instanceof Error ? e.message : describe(e)}`);
  }
  if (!verifier.complete) {
    return refuse(
      grpc.status.INTERNAL,
      'SNAPSHOT_NOT_CONSUMED',
      `the snapshot handler returned after reading ${verifier.received} of ${header.sizeBytes} bytes; nothing was installed`,
    );
  }
  return { ok: true, header, receivedBytes: verifier.received };
}
