// ServerRpcClient: calls another server's proto/server.proto endpoint. One connection for unary
// calls and one for streams per address, created on first use. Typed refusals resolve; transport
// failures reject with a TransportError.

import { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { NodeId } from '../raft/index.js';
import { SourceError, WriteGate, forEachChunk, limitReadAhead, type ByteSource } from './chunks.js';
import { TransportError } from './errors.js';
import { channelOptions, silentLogger } from './grpc-util.js';
import { checkLimit, transportDefaults, transportLimits } from './limits.js';
import { conclaveServerService, type Method } from './proto.js';
import { decodeOutcome, decodeRpcErrorFields, errorText, mapCallError, type RpcResult, type SnapshotSaveResult } from './rpc-codec.js';
import { TrailerBuilder, TrailerVerifier } from './trailer.js';
import { bytes, decodeWith, oneofMember, rec } from './wire.js';

// ---------------------------------------------------------------------------------------------
// Client.
// ---------------------------------------------------------------------------------------------

export interface ServerRpcClientOptions {
  /** This server's node id, sent as `conclave-from` for the remote side's logs. */
  readonly id?: NodeId;
  readonly logger?: Logger;
  readonly channelCredentials?: grpc.ChannelCredentials;
  /** Deadline of apply and read; default 30 s. */
  readonly timeoutMs?: number;
  /** Deadline of a snapshot save or restore stream; default 1 hour. */
  readonly streamTimeoutMs?: number;
  /** Size of the data chunks of a restore stream; default 512 KiB, at most 1 MiB. */
  readonly chunkBytes?: number;
  readonly chunksInFlightCount?: number;
  readonly reconnectBackoffMinMs?: number;
  readonly reconnectBackoffMaxMs?: number;
}

export interface CallOptions {
  /** Overrides the client's default deadline for this call. */
  readonly timeoutMs?: number;
}

interface Clients {
  readonly unary: grpc.Client;
  readonly stream: grpc.Client;
}

export class ServerRpcClient {
  private readonly clients = new Map<string, Clients>();
  private readonly metadata = new grpc.Metadata();
  private readonly creds: grpc.ChannelCredentials;
  private readonly logger: Logger;
  private readonly timeoutMs: number;
  private readonly streamTimeoutMs: number;
  private readonly chunkBytes: number;
  private readonly chunksInFlight: number;
  private readonly backoff: { minMs: number; maxMs: number };
  private closed = false;

  constructor(options: ServerRpcClientOptions = {}) {
    if (options.id !== undefined) this.metadata.set('conclave-from', options.id);
    this.creds = options.channelCredentials ?? grpc.credentials.createInsecure();
    this.logger = (options.logger ?? silentLogger()).child({ component: 'server-rpc-client' });
    this.timeoutMs = options.timeoutMs ?? transportDefaults.rpcTimeoutMs;
    this.streamTimeoutMs = options.streamTimeoutMs ?? 3_600_000;
    this.chunkBytes = options.chunkBytes ?? transportDefaults.snapshotChunkBytes;
    this.chunksInFlight = options.chunksInFlightCount ?? transportDefaults.snapshotChunksInFlightCount;
    this.backoff = {
      minMs: options.reconnectBackoffMinMs ?? transportDefaults.reconnectBackoffMinMs,
      maxMs: options.reconnectBackoffMaxMs ?? transportDefaults.reconnectBackoffMaxMs,
    };
    checkLimit('timeoutMs', this.timeoutMs, 1, Number.MAX_SAFE_INTEGER);
    checkLimit('streamTimeoutMs', this.streamTimeoutMs, 1, Number.MAX_SAFE_INTEGER);
    checkLimit('chunkBytes', this.chunkBytes, 1, transportLimits.maxChunkBytes);
    checkLimit('chunksInFlightCount', this.chunksInFlight, 1, 1024);
    checkLimit('reconnectBackoffMaxMs', this.backoff.maxMs, this.backoff.minMs, Number.MAX_SAFE_INTEGER);
  }

  /** Forwards an FSM command to `address` (host:port). Rejects with a TransportError on failure. */
  async apply(address: string, command: Uint8Array, options: CallOptions = {}): Promise<RpcResult> {
    return this.unary(address, conclaveServerService().apply, { command }, 'forwarded apply', options);
  }

  /** Forwards a read to `address`. */
  async read(address: string, request: Uint8Array, options: CallOptions = {}): Promise<RpcResult> {
    return this.unary(address, conclaveServerService().read, { request }, 'forwarded read', options);
  }

  /** Asks `address` for a snapshot; resolves at the header (or typed error), with the body to read. */
  async snapshotSave(address: string, request: Uint8Array, options: CallOptions = {}): Promise<SnapshotSaveResult> {
    const m = conclaveServerService().snapshotSave;
    const deadline = Date.now() + (options.timeoutMs ?? this.streamTimeoutMs);
    const call = this.clientsFor(address).stream.makeServerStreamRequest(
      m.path,
      m.requestSerialize,
      m.responseDeserialize,
      { request },
      this.metadata,
      { deadline },
    );
    call.on('error', () => {});
    limitReadAhead(call, 1);
    const it = call[Symbol.asyncIterator]();
    let first: IteratorResult<unknown>;
    try {
      first = await it.next();
    } catch (err) {
      throw this.callError(err, 'snapshot save', address);
    }
    const head = decodeWith(first.done === true ? undefined : first.value, 'part[0]', (v, path) => {
      const o = rec(v, path);
      const which = oneofMember(o, 'part', path, ['header', 'error']);
      return which === 'header'
        ? ({ ok: true, header: bytes(o, 'header', path) } as const)
        : ({ ok: false, error: decodeRpcErrorFields(rec(o['error'], `${path}.error`), `${path}.error`) } as const);
    });
    if (!head.ok) {
      call.cancel();
      throw new TransportError('BAD_RESPONSE', `snapshot save from ${address} began with a bad part: ${head.error.message}`, {
        peer: address,
      });
    }
    if (!head.value.ok) {
      call.cancel();
      return head.value;
    }
    const verifier = new TrailerVerifier(it, {
      parts: ['header', 'data', 'trailer', 'error'],
      maxChunkBytes: transportLimits.maxChunkBytes,
      what: `snapshot save from ${address}`,
      describeBreak: (err) => this.callError(err, 'snapshot save', address).message,
    });
    const body = Readable.from(verifier.bytes(), { objectMode: false, highWaterMark: 64 * 1024 });
    // Errors stay observable to whoever reads (the stream remains errored); this only keeps an
    // unobserved one from becoming an uncaught exception.
    body.on('error', () => {});
    body.on('close', () => {
      if (!verifier.complete) call.cancel();
    });
    return { ok: true, header: head.value.header, body };
  }

  /** Streams a restore to `address`: header, body in chunks, then a size + SHA-256 trailer. */
  async snapshotRestore(address: string, header: Uint8Array, body: ByteSource, options: CallOptions = {}): Promise<RpcResult> {
    const m = conclaveServerService().snapshotRestore;
    let ended = false;
    let settle!: { resolve: (v: unknown) => void; reject: (e: Error) => void };
    const reply = new Promise<unknown>((resolve, reject) => (settle = { resolve, reject }));
    reply.catch(() => {});
    const callEnded = reply.then(
      () => undefined,
      () => undefined,
    );
    const call = this.clientsFor(address).stream.makeClientStreamRequest(
      m.path,
      m.requestSerialize,
      m.responseDeserialize,
      this.metadata,
      { deadline: Date.now() + (options.timeoutMs ?? this.streamTimeoutMs) },
      (err: grpc.ServiceError | null, res?: unknown) => {
        ended = true;
        gate.abort();
        if (err) settle.reject(mapCallError(err, 'snapshot restore', address));
        else settle.resolve(res);
      },
    );
    call.on('error', () => {});
    const gate = new WriteGate(call, this.chunksInFlight);
    const trailer = new TrailerBuilder();
    try {
      await gate.write({ header });
      await forEachChunk(body, this.chunkBytes, callEnded, async (chunk) => {
        trailer.add(chunk);
        await gate.write({ data: chunk });
      });
    } catch (err) {
      call.cancel();
      const why = err instanceof SourceError ? err.message : `reading it failed: ${errorText(err)}`;
      throw new TransportError('SNAPSHOT_SOURCE_FAILED', `the restore body for ${address} failed: ${why}; the restore was cancelled`, {
        peer: address,
        cause: err,
      });
    }
    if (!ended) {
      await gate.write({ trailer: trailer.trailer() });
      call.end();
    }
    return this.outcome(await reply, 'snapshot restore', address);
  }

  /** Closes the connections to one address (e.g. a server that left). */
  forget(address: string): void {
    const c = this.clients.get(address);
    if (c === undefined) return;
    this.clients.delete(address);
    c.unary.close();
    c.stream.close();
  }

  close(): void {
    this.closed = true;
    for (const address of [...this.clients.keys()]) this.forget(address);
  }

  private clientsFor(address: string): Clients {
    if (this.closed) throw new TransportError('TRANSPORT_CLOSED', 'the server RPC client is closed', { peer: address });
    let c = this.clients.get(address);
    if (c === undefined) {
      c = {
        unary: new grpc.Client(address, this.creds, channelOptions('rpc', this.backoff)),
        stream: new grpc.Client(address, this.creds, channelOptions('rpc-stream', this.backoff)),
      };
      this.clients.set(address, c);
    }
    return c;
  }

  private unary(address: string, m: Method, request: object, what: string, options: CallOptions): Promise<RpcResult> {
    const client = this.clientsFor(address).unary;
    return new Promise<RpcResult>((resolve, reject) => {
      client.makeUnaryRequest(
        m.path,
        m.requestSerialize,
        m.responseDeserialize,
        request,
        this.metadata,
        { deadline: Date.now() + (options.timeoutMs ?? this.timeoutMs) },
        (err: grpc.ServiceError | null, res?: unknown) => {
          if (err) return reject(mapCallError(err, what, address));
          try {
            resolve(this.outcome(res, what, address));
          } catch (e) {
            reject(e);
          }
        },
      );
    });
  }

  private outcome(raw: unknown, what: string, address: string): RpcResult {
    const d = decodeOutcome(raw);
    if (d.ok) return d.value;
    this.logger.warn({ address, problem: d.error.message }, `${what}: undecodable answer`);
    throw new TransportError('BAD_RESPONSE', `${what} to ${address} returned an undecodable answer: ${d.error.message}`, { peer: address });
  }

  private callError(err: unknown, what: string, address: string): TransportError {
    if (err instanceof TransportError) return err;
    if (typeof err === 'object' && err !== null && 'code' in err && 'details' in err) {
      return mapCallError(err as grpc.ServiceError, what, address);
    }
    return new TransportError('UNAVAILABLE', `${what} to ${address} failed: ${errorText(err)}`, { peer: address, cause: err });
  }
}
