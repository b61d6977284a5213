// ServerRpcClient: calls another server's proto/server.proto endpoint. One connection for forwarded
// calls and one for snapshot streams per address, created on first use. Applies and reads travel on
// one long-lived Forward stream per address (a ForwardLane), many at a time, matched by id; a server
// that lacks Forward (an older Conclave) gets unary calls instead. Operator calls are always unary.
// Typed refusals resolve; transport failures reject with a TransportError, whose code NOT_SENT says
// the call certainly never left (no connection, or a Forward stream the server never accepted).

import { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { childWith } from '../base/index.js';
import type { NodeId } from '../raft/index.js';
import { SourceError, WriteGate, forEachChunk, limitReadAhead, type ByteSource } from './chunks.js';
import { TransportError, codeMetadataKey } from './errors.js';
import { channelOptions, silentLogger } from './grpc-util.js';
import { checkLimit, transportDefaults, transportLimits } from './limits.js';
import { conclaveServerService, type Method } from './proto.js';
import {
  decodeForwardAnswer,
  decodeOutcome,
  decodeRpcErrorFields,
  errorText,
  mapCallError,
  type ForwardAnswer,
  type RpcResult,
  type SnapshotSaveResult,
} from './rpc-codec.js';
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
  /**
   * Gives up on the call when aborted (e.g. the HTTP client of a blocking query went away): it rejects
   * with CANCELLED and the server's handler sees its own signal abort. For reads: a write that was
   * already sent may apply all the same.
   */
  readonly signal?: AbortSignal;
}

const forwardKeepaliveMs = 10_000;

interface Clients {
  readonly unary: grpc.Client;
  readonly stream: grpc.Client;
}

export class ServerRpcClient {
  private readonly clients = new Map<string, Clients>();
  private readonly lanes = new Map<string, ForwardLane>();
  /** Addresses whose server answered UNIMPLEMENTED to Forward: they get unary calls. */
  private readonly unaryOnly = new Set<string>();
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
    this.logger = childWith(options.logger ?? silentLogger(), { component: 'server-rpc-client' });
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
    return this.forward(address, 'apply', command, options);
  }

  /** Forwards a read to `address`. */
  async read(address: string, request: Uint8Array, options: CallOptions = {}): Promise<RpcResult> {
    return this.forward(address, 'read', request, options);
  }

  /** Sends an operator call (hello, join, remove, transfer) to `address`, as a unary call. */
  async operator(address: string, request: Uint8Array, options: CallOptions = {}): Promise<RpcResult> {
    return this.unary(address, conclaveServerService().operator, { request }, 'operator call', options);
  }

  private async forward(address: string, kind: 'apply' | 'read', payload: Uint8Array, options: CallOptions): Promise<RpcResult> {
    const what = `forwarded ${kind}`;
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const unary = (): Promise<RpcResult> => {
      const m = conclaveServerService()[kind];
      return this.unary(address, m, kind === 'apply' ? { command: payload } : { request: payload }, what, options);
    };
    if (this.unaryOnly.has(address)) return unary();
    try {
      return await this.laneFor(address).call(kind, payload, timeoutMs, options.signal);
    } catch (err) {
      // The stream itself was refused as unknown (no conclave-code: not a handler's answer), so this
      // call never ran there: an older server. Use unary calls from now on.
      if (err instanceof TransportError && err.grpcCode === grpc.status.UNIMPLEMENTED && err.remoteCode === undefined) {
        this.unaryOnly.add(address);
        this.logger.info({ address }, 'the server at this address has no Forward stream; forwarding with unary calls');
        return unary();
      }
      throw err;
    }
  }

  private laneFor(address: string): ForwardLane {
    let lane = this.lanes.get(address);
    if (lane === undefined || lane.ended) {
      const m = conclaveServerService().forward;
      const call = this.clientsFor(address).unary.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, this.metadata, {});
      lane = new ForwardLane(call, address, this.logger, () => {
        if (this.lanes.get(address) === lane) this.lanes.delete(address);
      });
      this.lanes.set(address, lane);
    }
    return lane;
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
    // The caller giving up (its HTTP client went away) cancels the call, before or during the body.
    const onAbort = (): void => call.cancel();
    if (options.signal?.aborted === true) call.cancel();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    call.on('close', () => options.signal?.removeEventListener('abort', onAbort));
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
    const body = Readable.from(verifier.bytes(), { objectMode: false, highWaterMark: transportDefaults.verifiedReadAheadBytes });
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
    reply.catch(() => {}); // only marks it handled: every path below awaits `reply` or abandons it on purpose
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
    const onAbort = (): void => call.cancel();
    if (options.signal?.aborted === true) call.cancel();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    void callEnded.then(() => options.signal?.removeEventListener('abort', onAbort));
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

  /**
   * Gives up on the applies forwarded to `address` that have not been answered (see
   * ForwardLane.abandonApplies); returns how many there were. For a leader that was replaced and does
   * not answer: without this, they wait for the Forward stream's keepalive to find it dead (about 20 s).
   */
  abandonApplies(address: string, why: string): number {
    return this.lanes.get(address)?.abandonApplies(why) ?? 0;
  }

  /** Closes the connections to one address (e.g. a server that left). */
  forget(address: string): void {
    this.lanes.get(address)?.close();
    this.lanes.delete(address);
    this.unaryOnly.delete(address);
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

  /**
   * The channels to `address`, created on first use. A channel in TRANSIENT_FAILURE (gRPC's reconnect
   * back-off, in which every call fails at once) is replaced by a new one: a caller that asks again
   * (the server layer retries at its own bounded pace) reaches a server that is back at once rather
   * than after the back-off. Calls already made keep their own channel.
   */
  private clientsFor(address: string): Clients {
    if (this.closed) throw new TransportError('TRANSPORT_CLOSED', 'the server RPC client is closed', { peer: address });
    const c = this.clients.get(address);
    const fresh = (old: grpc.Client | undefined, make: () => grpc.Client): grpc.Client => {
      if (old !== undefined && old.getChannel().getConnectivityState(false) !== grpc.connectivityState.TRANSIENT_FAILURE) return old;
      old?.close();
      return make();
    };
    const next: Clients = {
      // Keepalive pings find a silently dead connection (a partition rather than a killed process)
      // under the long-lived Forward stream, which has no deadline of its own.
      unary: fresh(c?.unary, () => new grpc.Client(address, this.creds, {
        ...channelOptions('rpc', this.backoff),
        'grpc.keepalive_time_ms': forwardKeepaliveMs,
        'grpc.keepalive_timeout_ms': forwardKeepaliveMs,
      })),
      stream: fresh(c?.stream, () => new grpc.Client(address, this.creds, channelOptions('rpc-stream', this.backoff))),
    };
    if (c === undefined || next.unary !== c.unary || next.stream !== c.stream) this.clients.set(address, next);
    return next;
  }

  private async unary(address: string, m: Method, request: object, what: string, options: CallOptions): Promise<RpcResult> {
    const client = this.clientsFor(address).unary;
    const signal = options.signal;
    const deadline = Date.now() + (options.timeoutMs ?? this.timeoutMs);
    const aborted = (): boolean => signal?.aborted === true;
    if (aborted()) throw cancelledError(what, address);
    await connected(client, what, address, deadline);
    if (aborted()) throw cancelledError(what, address);
    return new Promise<RpcResult>((resolve, reject) => {
      const onAbort = (): void => call.cancel();
      const call = client.makeUnaryRequest(
        m.path,
        m.requestSerialize,
        m.responseDeserialize,
        request,
        this.metadata,
        { deadline },
        (err: grpc.ServiceError | null, res?: unknown) => {
          signal?.removeEventListener('abort', onAbort);
          if (err) return reject(signal?.aborted === true ? cancelledError(what, address) : mapCallError(err, what, address));
          try {
            resolve(this.outcome(res, what, address));
          } catch (e) {
            reject(e);
          }
        },
      );
      signal?.addEventListener('abort', onAbort, { once: true });
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

// ---------------------------------------------------------------------------------------------
// ForwardLane: one Forward stream to one address.
// ---------------------------------------------------------------------------------------------

interface PendingCall {
  readonly kind: 'apply' | 'read';
  readonly what: string;
  /** The ForwardRequest, written once the server has accepted the stream. */
  readonly message: object;
  /** Whether `message` was written: until then the call certainly never reached the server. */
  sent: boolean;
  readonly resolve: (r: RpcResult) => void;
  readonly reject: (e: Error) => void;
  /** Clears the deadline timer and the abort listener. */
  readonly done: () => void;
}

function cancelledError(what: string, address: string): TransportError {
  return new TransportError('CANCELLED', `${what} to ${address} was cancelled by its caller`, { peer: address });
}

/**
 * Resolves once the channel is connected; rejects with NOT_SENT when it cannot be (the connection
 * attempt failed, or `deadline` came first). A unary call made after it can still fail in flight
 * (then UNAVAILABLE: it may have run), but a call that fails here was never made.
 */
function connected(client: grpc.Client, what: string, address: string, deadline: number): Promise<void> {
  const channel = client.getChannel();
  const { READY, TRANSIENT_FAILURE, SHUTDOWN } = grpc.connectivityState;
  return new Promise<void>((resolve, reject) => {
    const notSent = (why: string): void =>
      reject(new TransportError('NOT_SENT', `${what} to ${address} was not sent: ${why}`, { peer: address, grpcCode: grpc.status.UNAVAILABLE }));
    const check = (): void => {
      const state = channel.getConnectivityState(true);
      if (state === READY) return resolve();
      if (state === TRANSIENT_FAILURE) return notSent('no connection could be established');
      if (state === SHUTDOWN) return notSent('the client is closed');
      if (Date.now() >= deadline) return notSent('no connection before the call\'s deadline');
      channel.watchConnectivityState(state, deadline, (err?: Error) => (err ? notSent('no connection before the call\'s deadline') : check()));
    };
    check();
  });
}

/**
 * Calls in flight on one Forward stream. No call is written before the server accepts the stream (its
 * response headers): when the stream fails before that, every call on it rejects with NOT_SENT. Each
 * call has its own deadline: past it the call rejects with DEADLINE_EXCEEDED (NOT_SENT if it was never
 * written) and, if written, a cancel goes to the server. When an accepted stream ends or breaks, every
 * call still in flight rejects with the stream's status mapped as a unary call's would be (it may have
 * run), and the next call opens a new stream.
 */
class ForwardLane {
  ended = false;
  private accepted = false;
  private nextId = 1;
  private readonly pending = new Map<number, PendingCall>();

  constructor(
    private readonly stream: grpc.ClientDuplexStream<object, unknown>,
    private readonly address: string,
    private readonly logger: Logger,
    private readonly onEnd: () => void,
  ) {
    stream.on('metadata', () => this.accept());
    stream.on('data', (raw: unknown) => this.answer(raw));
    stream.on('error', (err: grpc.ServiceError) => this.end(err));
    stream.on('status', (st: grpc.StatusObject) => {
      if (st.code === grpc.status.OK) this.end(undefined);
    });
    stream.on('end', () => this.end(undefined));
  }

  call(kind: 'apply' | 'read', payload: Uint8Array, timeoutMs: number, signal?: AbortSignal): Promise<RpcResult> {
    const id = this.nextId++;
    const what = `forwarded ${kind}`;
    if (signal?.aborted === true) return Promise.reject(cancelledError(what, this.address));
    return new Promise<RpcResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        const sent = this.pending.get(id)?.sent === true;
        this.giveUp(id, sent
          ? new TransportError('DEADLINE_EXCEEDED',
            `${what} to ${this.address} failed: no answer within ${timeoutMs} ms (gRPC status ${grpc.status.DEADLINE_EXCEEDED})`,
            { peer: this.address, grpcCode: grpc.status.DEADLINE_EXCEEDED })
          : new TransportError('NOT_SENT',
            `${what} to ${this.address} was not sent: the server did not accept the forward stream within ${timeoutMs} ms`,
            { peer: this.address, grpcCode: grpc.status.DEADLINE_EXCEEDED }));
      }, timeoutMs);
      const onAbort = (): void => this.giveUp(id, cancelledError(what, this.address));
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const p: PendingCall = { kind, what, message: { id, [kind]: payload }, sent: false, resolve, reject, done };
      this.pending.set(id, p);
      if (this.accepted) this.send(p);
    });
  }

  /**
   * Gives up on every apply in flight, with `why`; reads go on. A written apply gets a cancel and
   * rejects with UNAVAILABLE (it may have run); one not yet written rejects with NOT_SENT. The stream
   * stays open.
   */
  abandonApplies(why: string): number {
    let n = 0;
    for (const [id, p] of this.pending) {
      if (p.kind !== 'apply') continue;
      n++;
      this.giveUp(id, p.sent
        ? new TransportError('UNAVAILABLE', `${p.what} to ${this.address} failed: ${why} while the call was in flight`, { peer: this.address })
        : new TransportError('NOT_SENT', `${p.what} to ${this.address} was not sent: ${why}`, { peer: this.address }));
    }
    return n;
  }

  /** Fails one call in flight with `e` (its deadline, its caller, a replaced leader); a written one gets a cancel. */
  private giveUp(id: number, e: TransportError): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    p.done();
    if (!this.ended && p.sent) this.stream.write({ id, cancel: true });
    p.reject(e);
  }

  close(): void {
    if (this.ended) return;
    // Fail the calls with our reason first: cancel() may report its own CANCELLED status at once.
    this.end(undefined, 'the client closed the connection');
    this.stream.cancel();
  }

  private send(p: PendingCall): void {
    p.sent = true;
    this.stream.write(p.message);
  }

  /** The server accepted the stream: write the calls that waited for it, in call order. */
  private accept(): void {
    if (this.accepted || this.ended) return;
    this.accepted = true;
    for (const p of this.pending.values()) this.send(p);
  }

  private answer(raw: unknown): void {
    const d = decodeForwardAnswer(raw);
    if (!d.ok) {
      this.logger.warn({ address: this.address, problem: d.error.message }, 'forward stream: undecodable reply; closing the stream');
      this.end(undefined, `an undecodable reply (${d.error.message})`, 'BAD_RESPONSE');
      this.stream.cancel();
      return;
    }
    const a: ForwardAnswer = d.value;
    const p = this.pending.get(a.id);
    if (p === undefined) return; // cancelled by its deadline; the server had not seen the cancel yet
    this.pending.delete(a.id);
    p.done();
    if (a.kind === 'outcome') return p.resolve(a.outcome);
    const f = a.failure;
    const text = `${p.what} to ${this.address} failed: ${f.message || 'no details'} (gRPC status ${f.status})`;
    p.reject(new TransportError('REMOTE_FAILED', text, {
      peer: this.address,
      grpcCode: f.status,
      ...(f.code !== '' ? { remoteCode: f.code } : {}),
    }));
  }

  /** Fails every call in flight; `err` is the stream's status, or undefined when it ended cleanly. */
  private end(err: grpc.ServiceError | undefined, why = 'the server closed the forward stream', code: 'UNAVAILABLE' | 'BAD_RESPONSE' = 'UNAVAILABLE'): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd();
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.done();
      if (!p.sent) {
        p.reject(notSentOn(err, why, p.what, this.address));
      } else if (err !== undefined) {
        p.reject(mapCallError(err, p.what, this.address));
      } else {
        p.reject(new TransportError(code, `${p.what} to ${this.address} failed: ${why} while the call was in flight`, { peer: this.address }));
      }
    }
  }
}

/** A call that waited for a stream which ended before the server accepted it: never sent. */
function notSentOn(err: grpc.ServiceError | undefined, why: string, what: string, address: string): TransportError {
  if (err === undefined) return new TransportError('NOT_SENT', `${what} to ${address} was not sent: ${why} before the server accepted the stream`, { peer: address });
  const remoteCode = err.metadata?.get(codeMetadataKey)[0];
  return new TransportError('NOT_SENT', `${what} to ${address} was not sent: ${err.details || 'no details'} (gRPC status ${err.code})`, {
    peer: address,
    grpcCode: err.code,
    cause: err,
    ...(typeof remoteCode === 'string' ? { remoteCode } : {}),
  });
}
