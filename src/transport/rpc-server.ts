// ServerRpcServer: serves proto/server.proto with pluggable handlers. Unary calls (apply, read,
// operator) answer a result or a typed error; snapshot save streams header, chunks and a size + SHA-256
// trailer; restore hands the handler a body stream that ends only once the sender's trailer verified.

import { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { childWith } from '../base/index.js';
import { WriteGate, forEachChunk, limitReadAhead } from './chunks.js';
import { StreamError, TransportError } from './errors.js';
import { bind, callerOf, serverOptions, silentLogger, statusError } from './grpc-util.js';
import { checkLimit, transportDefaults, transportLimits } from './limits.js';
import { conclaveServerService } from './proto.js';
import {
  checkResult,
  checkRpcError,
  decodeForwardCall,
  encodeForwardAnswer,
  encodeOutcome,
  encodeRpcError,
  errorText,
  requestBytes,
  type CallFailure,
  type ForwardAnswer,
  type RpcContext,
  type RpcResult,
  type ServerRpcHandlers,
  type SnapshotSaveAnswer,
} from './rpc-codec.js';
import { TrailerBuilder, TrailerVerifier } from './trailer.js';
import { Invalid, bytes, oneofMember, rec } from './wire.js';

// ---------------------------------------------------------------------------------------------
// Server.
// ---------------------------------------------------------------------------------------------

export interface ServerRpcServerOptions {
  readonly handlers?: Partial<ServerRpcHandlers>;
  readonly logger?: Logger;
  readonly serverCredentials?: grpc.ServerCredentials;
  /** Size of the data chunks of a snapshot save stream; default 512 KiB, at most 1 MiB. */
  readonly chunkBytes?: number;
  readonly chunksInFlightCount?: number;
  /** Calls one Forward stream may have in flight; past it a call fails with FORWARD_BUSY. */
  readonly forwardInflightCount?: number;
}

/** What ends a call that is not an answer: a unary call's status, a Forward call's CallFailure reply. */
const toStatus = (f: CallFailure): Partial<grpc.StatusObject> => statusError(f.status, f.code, f.message);
/** Counters since start, for tests and metrics. */
export interface ServerRpcStats {
  /** Forward streams opened by callers (normally one per follower and leader change). */
  readonly forwardStreams: number;
  /** Applies and reads run from Forward streams. */
  readonly forwardedCalls: number;
  /** Applies, reads and operator calls run as unary calls. */
  readonly unaryCalls: number;
}

type CallKind = 'apply' | 'read' | 'operator';

type CallEnd = { readonly ok: true; readonly outcome: RpcResult } | { readonly ok: false; readonly failure: CallFailure };

function contextOf(call: { metadata: grpc.Metadata; getPeer(): string; on(event: 'cancelled', listener: () => void): unknown }): RpcContext {
  const abort = new AbortController();
  call.on('cancelled', () => abort.abort(new Error('the caller cancelled the call')));
  return { caller: callerOf(call), signal: abort.signal };
}

export class ServerRpcServer {
  private handlers: Partial<ServerRpcHandlers>;
  private readonly logger: Logger;
  private readonly creds: grpc.ServerCredentials;
  private readonly chunkBytes: number;
  private readonly chunksInFlight: number;
  private readonly forwardInflight: number;
  private server: grpc.Server | undefined;
  private closed = false;
  private counts = { forwardStreams: 0, forwardedCalls: 0, unaryCalls: 0 };

  constructor(options: ServerRpcServerOptions = {}) {
    // Kept as given (not copied): handlers may be a class instance with methods on its prototype.
    this.handlers = options.handlers ?? {};
    this.logger = childWith(options.logger ?? silentLogger(), { component: 'server-rpc' });
    this.creds = options.serverCredentials ?? grpc.ServerCredentials.createInsecure();
    this.chunkBytes = options.chunkBytes ?? transportDefaults.snapshotChunkBytes;
    this.chunksInFlight = options.chunksInFlightCount ?? transportDefaults.snapshotChunksInFlightCount;
    checkLimit('chunkBytes', this.chunkBytes, 1, transportLimits.maxChunkBytes);
    checkLimit('chunksInFlightCount', this.chunksInFlight, 1, 1024);
    this.forwardInflight = options.forwardInflightCount ?? transportDefaults.forwardInflightCount;
    checkLimit('forwardInflightCount', this.forwardInflight, 1, 1_000_000);
  }

  stats(): ServerRpcStats {
    return { ...this.counts };
  }

  /** Replaces the handlers (all of them; missing ones answer UNIMPLEMENTED). */
  setHandlers(handlers: Partial<ServerRpcHandlers>): void {
    this.handlers = handlers;
  }

  async listen(host: string, port: number): Promise<number> {
    if (this.closed) throw new TransportError('TRANSPORT_CLOSED', 'the server RPC endpoint is closed');
    if (this.server !== undefined) throw new TransportError('LISTEN_FAILED', 'the server RPC endpoint is already listening');
    const server = new grpc.Server(serverOptions);
    this.addTo(server);
    this.server = server;
    try {
      return await bind(server, host, port, this.creds, 'server RPCs');
    } catch (err) {
      this.server = undefined;
      server.forceShutdown();
      throw err;
    }
  }

  /** Registers the service on a server owned by someone else (e.g. beside PeerTransport). */
  addTo(server: grpc.Server): void {
    const impl: grpc.UntypedServiceImplementation = {
      Apply: (call: grpc.ServerUnaryCall<unknown, object>, cb: grpc.sendUnaryData<object>) =>
        this.guard(this.serveUnary('apply', 'command', call, cb)),
      Read: (call: grpc.ServerUnaryCall<unknown, object>, cb: grpc.sendUnaryData<object>) =>
        this.guard(this.serveUnary('read', 'request', call, cb)),
      Operator: (call: grpc.ServerUnaryCall<unknown, object>, cb: grpc.sendUnaryData<object>) =>
        this.guard(this.serveUnary('operator', 'request', call, cb)),
      Forward: (call: grpc.ServerDuplexStream<unknown, object>) => this.serveForward(call),
      SnapshotSave: (call: grpc.ServerWritableStream<unknown, object>) => this.guard(this.serveSave(call)),
      SnapshotRestore: (call: grpc.ServerReadableStream<unknown, object>, cb: grpc.sendUnaryData<object>) =>
        this.guard(this.serveRestore(call, cb)),
    };
    server.addService(conclaveServerService().definition, impl);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const server = this.server;
    this.server = undefined;
    server?.forceShutdown();
  }

  /** Logs what escapes a call handler (a bug here), instead of an unhandled rejection. */
  private guard(p: Promise<void>): void {
    p.catch((err: unknown) => this.logger.error({ err }, 'a server RPC handler failed unexpectedly'));
  }

  private missing(kind: string): CallFailure {
    return { status: grpc.status.UNIMPLEMENTED, code: 'NO_HANDLER', message: `this server has no ${kind} handler yet; retry later` };
  }

  private failed(kind: string, caller: string, err: unknown): CallFailure {
    this.logger.error({ err, caller }, `the ${kind} handler failed`);
    return { status: grpc.status.INTERNAL, code: 'HANDLER_FAILED', message: `${kind} failed on this server: ${errorText(err)}` };
  }

  private badAnswer(kind: string, problem: string): CallFailure {
    this.logger.error({ problem }, `the ${kind} handler returned an invalid answer`);
    return { status: grpc.status.INTERNAL, code: 'HANDLER_BAD_ANSWER', message: `the ${kind} handler returned an invalid answer: ${problem}` };
  }

  /** Runs one apply, read or operator call, unary or on a Forward stream alike. */
  private async runCall(kind: CallKind, payload: Uint8Array, ctx: RpcContext): Promise<CallEnd> {
    const handler = this.handlers[kind];
    if (handler === undefined) return { ok: false, failure: this.missing(kind) };
    let r: RpcResult;
    try {
      r = await handler.call(this.handlers, payload, ctx);
    } catch (err) {
      return { ok: false, failure: this.failed(kind, ctx.caller, err) };
    }
    const problem = checkResult(r);
    if (problem !== undefined) return { ok: false, failure: this.badAnswer(kind, problem) };
    return { ok: true, outcome: r };
  }

  private async serveUnary(
    kind: CallKind,
    field: string,
    call: grpc.ServerUnaryCall<unknown, object>,
    cb: grpc.sendUnaryData<object>,
  ): Promise<void> {
    const req = requestBytes(call.request, field);
    if (!req.ok) return cb(statusError(grpc.status.INVALID_ARGUMENT, req.error.code, req.error.message), null);
    this.counts.unaryCalls++;
    const end = await this.runCall(kind, req.value, contextOf(call));
    if (end.ok) cb(null, encodeOutcome(end.outcome));
    else cb(toStatus(end.failure), null);
  }

  /**
   * A Forward stream: each request runs as its own call, answered by id as soon as it ends. A call's
   * failure is a reply; only a malformed or duplicate request ends the stream (INVALID_ARGUMENT), and
   * the caller's end, cancellation or a broken connection aborts every call still running.
   */
  private serveForward(call: grpc.ServerDuplexStream<unknown, object>): void {
    const caller = callerOf(call);
    this.counts.forwardStreams++;
    // Accepted: the caller writes no call before these headers (see proto/server.proto, Forward).
    call.sendMetadata(new grpc.Metadata());
    const running = new Map<number, AbortController>();
    let open = true;
    const finish = (why: string, status?: Partial<grpc.StatusObject>): void => {
      if (!open) return;
      open = false;
      for (const a of running.values()) a.abort(new Error(why));
      running.clear();
      if (status !== undefined) call.emit('error', status);
      else call.end();
    };
    const reply = (a: ForwardAnswer): void => {
      if (open && running.delete(a.id)) call.write(encodeForwardAnswer(a));
    };
    call.on('data', (raw: unknown) => {
      if (!open) return;
      const d = decodeForwardCall(raw);
      if (!d.ok) {
        this.logger.warn({ caller, problem: d.error.message }, 'a forward stream sent a malformed request; closing it');
        return finish('malformed request', statusError(grpc.status.INVALID_ARGUMENT, 'FORWARD_BAD_REQUEST', `forward stream from ${caller}: ${d.error.message}`));
      }
      const req = d.value;
      if (req.kind === 'cancel') {
        running.get(req.id)?.abort(new Error('the caller cancelled the call'));
        running.delete(req.id);
        return;
      }
      if (running.has(req.id)) {
        return finish('duplicate id', statusError(grpc.status.INVALID_ARGUMENT, 'FORWARD_BAD_REQUEST',
          `forward stream from ${caller}: call ${req.id} is already in flight`));
      }
      const abort = new AbortController();
      running.set(req.id, abort);
      if (running.size > this.forwardInflight) {
        const message = `this server already runs ${this.forwardInflight} forwarded calls from ${caller}; retry later`;
        return reply({ id: req.id, kind: 'failure', failure: { status: grpc.status.RESOURCE_EXHAUSTED, code: 'FORWARD_BUSY', message } });
      }
      this.counts.forwardedCalls++;
      const ctx: RpcContext = { caller, signal: abort.signal };
      this.guard(this.runCall(req.kind, req.payload, ctx).then((end) => {
        reply(end.ok ? { id: req.id, kind: 'outcome', outcome: end.outcome } : { id: req.id, kind: 'failure', failure: end.failure });
      }));
    });
    call.on('end', () => finish('the caller closed the stream'));
    call.on('cancelled', () => finish('the caller cancelled the stream'));
    call.on('error', () => finish('the stream broke'));
  }

  private async serveSave(call: grpc.ServerWritableStream<unknown, object>): Promise<void> {
    const fail = (s: Partial<grpc.StatusObject>): void => void call.emit('error', s);
    const handler = this.handlers.snapshotSave;
    if (handler === undefined) return fail(toStatus(this.missing('snapshot save')));
    const req = requestBytes(call.request, 'request');
    if (!req.ok) return fail(statusError(grpc.status.INVALID_ARGUMENT, req.error.code, req.error.message));
    const ctx = contextOf(call);
    let answer: SnapshotSaveAnswer;
    try {
      answer = await handler.call(this.handlers, req.value, ctx);
    } catch (err) {
      return fail(toStatus(this.failed('snapshot save', ctx.caller, err)));
    }
    if (typeof answer !== 'object' || answer === null || (answer.ok === true && !(answer.header instanceof Uint8Array))) {
      return fail(toStatus(this.badAnswer('snapshot save', 'expected {ok: true, header, body} or {ok: false, error}')));
    }
    if (!answer.ok) {
      const problem = checkRpcError(answer.error);
      if (problem !== undefined) return fail(toStatus(this.badAnswer('snapshot save', problem)));
      call.write({ error: encodeRpcError(answer.error) });
      call.end();
      return;
    }
    const gate = new WriteGate(call, this.chunksInFlight);
    const cancelled = new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
    ctx.signal.addEventListener('abort', () => gate.abort());
    const trailer = new TrailerBuilder();
    try {
      await gate.write({ header: answer.header });
      await forEachChunk(answer.body, this.chunkBytes, cancelled, async (chunk) => {
        trailer.add(chunk);
        await gate.write({ data: chunk });
      });
    } catch (err) {
      this.logger.error({ err, caller: ctx.caller, sentBytes: trailer.sizeBytes }, 'the snapshot save body failed mid-stream');
      return fail(
        statusError(
          grpc.status.INTERNAL,
          'SAVE_SOURCE_FAILED',
          `the snapshot failed after ${trailer.sizeBytes} bytes on this server: ${errorText(err)}; take the snapshot again`,
        ),
      );
    }
    if (ctx.signal.aborted) return;
    await gate.write({ trailer: trailer.trailer() });
    call.end();
  }

  private async serveRestore(call: grpc.ServerReadableStream<unknown, object>, cb: grpc.sendUnaryData<object>): Promise<void> {
    const handler = this.handlers.snapshotRestore;
    if (handler === undefined) return cb(toStatus(this.missing('snapshot restore')), null);
    const ctx = contextOf(call);
    limitReadAhead(call, 1);
    const it = call[Symbol.asyncIterator]();
    let header: Uint8Array;
    try {
      const first = await it.next();
      if (first.done === true) throw new Invalid('part[0]', 'the stream ended before its header');
      const o = rec(first.value, 'part[0]');
      if (oneofMember(o, 'part', 'part[0]', ['header', 'data', 'trailer']) !== 'header') {
        throw new Invalid('part[0].part', 'the first part must be the header');
      }
      header = bytes(o, 'header', 'part[0]');
    } catch (err) {
      const text = err instanceof Invalid ? err.message : `the stream broke before its header: ${errorText(err)}`;
      return cb(statusError(grpc.status.INVALID_ARGUMENT, 'STREAM_BAD_PART', `restore stream from ${ctx.caller}: ${text}`), null);
    }
    const verifier = new TrailerVerifier(it, {
      parts: ['header', 'data', 'trailer'],
      maxChunkBytes: transportLimits.maxChunkBytes,
      what: `restore stream from ${ctx.caller}`,
      cancelled: () => call.cancelled,
    });
    const body = Readable.from(verifier.bytes(), { objectMode: false, highWaterMark: transportDefaults.verifiedReadAheadBytes });
    // Errors stay observable to whoever reads (the stream remains errored); this only keeps an
    // unobserved one from becoming an uncaught exception.
    body.on('error', () => {});
    ctx.signal.addEventListener('abort', () => {
      const err = verifier.abort('STREAM_BROKEN', `the sender cancelled the stream (or its deadline passed) after ${verifier.received} bytes`);
      if (err !== undefined) body.destroy(err);
    });
    type Settled = { kind: 'answer'; result: RpcResult } | { kind: 'threw'; err: unknown } | { kind: 'broken'; err: StreamError };
    const handled = Promise.resolve()
      .then(() => handler.call(this.handlers, header, body, ctx))
      .then(
      (result): Settled => ({ kind: 'answer', result }),
      (err: unknown): Settled => ({ kind: 'threw', err }),
    );
    const settled = await Promise.race([handled, verifier.failed.then((err): Settled => ({ kind: 'broken', err }))]);
    body.destroy();
    const broken = verifier.failure;
    const streamFailure = (err: StreamError): Partial<grpc.StatusObject> => {
      this.logger.warn({ caller: ctx.caller, code: err.code }, err.message);
      const code = err.code === 'STREAM_BROKEN' ? grpc.status.CANCELLED : grpc.status.INVALID_ARGUMENT;
      return statusError(code, err.code, `${err.message}; nothing was restored`);
    };
    if (settled.kind === 'broken') return cb(streamFailure(settled.err), null);
    if (settled.kind === 'threw') {
      // A handler usually throws because its body stream failed; report the root cause then.
      return cb(broken !== undefined ? streamFailure(broken) : toStatus(this.failed('snapshot restore', ctx.caller, settled.err)), null);
    }
    const problem = checkResult(settled.result);
    if (problem !== undefined) return cb(toStatus(this.badAnswer('snapshot restore', problem)), null);
    // A refusal may come before the body is read (not the leader, restore already running...).
    if (!settled.result.ok) return cb(null, encodeOutcome(settled.result));
    if (broken !== undefined) return cb(streamFailure(broken), null);
    if (!verifier.complete) {
      return cb(
        statusError(
          grpc.status.INTERNAL,
          'STREAM_NOT_CONSUMED',
          `the restore handler answered success after reading ${verifier.received} bytes, before the stream's end; the answer was discarded`,
        ),
        null,
      );
    }
    cb(null, encodeOutcome(settled.result));
  }
}
