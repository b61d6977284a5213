// ServerRpc's vocabulary (proto/server.proto): handler and result types, and the codec for the
// envelopes. Payloads are opaque bytes owned by the server layer; what is fixed here is the shape of
// answers: a result, or a typed RpcError with a leader hint (an answer, resolved), as opposed to a
// transport failure (a TransportError, rejected).

import type { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { NodeId } from '../raft/index.js';
import type { ByteSource } from './chunks.js';
import { TransportError, codeMetadataKey } from './errors.js';
import { Invalid, bytes, decodeWith, describe, oneofMember, optRec, rec, str, u64, type Decoded, type Rec } from './wire.js';

// ---------------------------------------------------------------------------------------------
// Types.
// ---------------------------------------------------------------------------------------------

/** Where the caller should retry. Either field may be '' when unknown. */
export interface LeaderHint {
  readonly id: NodeId;
  readonly address: string;
}

/** A refusal by the remote server: an answer, not a transport failure. */
export interface RpcError {
  /** Stable and machine-readable: lowercase words joined by '-' (e.g. 'not-leader'), ≤ 64 chars. */
  readonly code: string;
  readonly message: string;
  readonly leader?: LeaderHint;
}

export type RpcResult = { readonly ok: true; readonly result: Uint8Array } | { readonly ok: false; readonly error: RpcError };

export type SnapshotSaveAnswer =
  | { readonly ok: true; readonly header: Uint8Array; readonly body: ByteSource }
  | { readonly ok: false; readonly error: RpcError };

/** What a client gets from snapshotSave: `body` ends only once the trailer verified; it fails with a
 *  StreamError (integrity, broken call) otherwise. Read or destroy it: it holds the call open. */
export type SnapshotSaveResult =
  | { readonly ok: true; readonly header: Uint8Array; readonly body: Readable }
  | { readonly ok: false; readonly error: RpcError };

export interface RpcContext {
  /** The caller's node id (from its `conclave-from` header) or socket address. */
  readonly caller: string;
  /** Aborted when the caller cancels or its deadline passes. */
  readonly signal: AbortSignal;
}

/**
 * What the server layer plugs in. Resolve with a typed answer; throw only for unexpected failures
 * (the caller then gets a REMOTE_FAILED rejection). A missing handler answers UNIMPLEMENTED.
 */
export interface ServerRpcHandlers {
  apply(command: Uint8Array, ctx: RpcContext): Promise<RpcResult>;
  read(request: Uint8Array, ctx: RpcContext): Promise<RpcResult>;
  /** Hello, join, remove, transfer: unary calls of their own, never on the Forward stream. */
  operator(request: Uint8Array, ctx: RpcContext): Promise<RpcResult>;
  /** `body` is streamed to the caller in chunks, followed by a trailer; never buffer it whole. */
  snapshotSave(request: Uint8Array, ctx: RpcContext): Promise<SnapshotSaveAnswer>;
  /** `body` ends only after its size and SHA-256 verified against the sender's trailer. A success
   *  answer counts only if the whole body was read; an error answer may come at any time. */
  snapshotRestore(header: Uint8Array, body: Readable, ctx: RpcContext): Promise<RpcResult>;
}

const rpcErrorCode = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
const maxRpcErrorCodeLength = 64;

// ---------------------------------------------------------------------------------------------
// Codec.
// ---------------------------------------------------------------------------------------------

export function checkRpcError(e: RpcError): string | undefined {
  if (typeof e?.code !== 'string' || !rpcErrorCode.test(e.code) || e.code.length > maxRpcErrorCodeLength) {
    return `error code ${describe(e?.code)} is not lowercase words joined by '-' (at most ${maxRpcErrorCodeLength} characters)`;
  }
  if (typeof e.message !== 'string') return 'error message is not a string';
  if (e.leader !== undefined && (typeof e.leader.id !== 'string' || typeof e.leader.address !== 'string')) {
    return 'leader hint must have string id and address';
  }
  return undefined;
}

/** Why a handler's answer cannot be sent (a bug in the handler), or undefined when it is fine. */
export function checkResult(r: RpcResult): string | undefined {
  if (typeof r !== 'object' || r === null) return `the handler resolved with ${describe(r)}, not a result`;
  if (r.ok === true) return r.result instanceof Uint8Array ? undefined : 'ok result without a Uint8Array `result`';
  if (r.ok === false) return checkRpcError(r.error);
  return 'the result has no boolean `ok`';
}

export function encodeRpcError(e: RpcError): object {
  return { code: e.code, message: e.message, leader: e.leader === undefined ? null : { id: e.leader.id, address: e.leader.address } };
}

export function encodeOutcome(r: RpcResult): object {
  return r.ok ? { result: r.result } : { error: encodeRpcError(r.error) };
}

export function decodeRpcErrorFields(o: Rec, path: string): RpcError {
  const code = str(o, 'code', path, { nonEmpty: true, maxLength: maxRpcErrorCodeLength });
  if (!rpcErrorCode.test(code)) throw new Invalid(`${path}.code`, `${JSON.stringify(code)} is not lowercase words joined by '-'`);
  const message = str(o, 'message', path);
  const l = optRec(o, 'leader', path);
  if (l === undefined) return { code, message };
  return { code, message, leader: { id: str(l, 'id', `${path}.leader`), address: str(l, 'address', `${path}.leader`) } };
}

export function decodeOutcome(raw: unknown): Decoded<RpcResult> {
  return decodeWith(raw, 'outcome', (v, path): RpcResult => {
    const o = rec(v, path);
    const which = oneofMember(o, 'outcome', path, ['result', 'error']);
    if (which === 'result') return { ok: true, result: bytes(o, 'result', path) };
    return { ok: false, error: decodeRpcErrorFields(rec(o['error'], `${path}.error`), `${path}.error`) };
  });
}

/** One message from a follower on a Forward stream. */
export type ForwardCall =
  | { readonly id: number; readonly kind: 'apply' | 'read'; readonly payload: Uint8Array }
  | { readonly id: number; readonly kind: 'cancel' };

/** What ended one call on a Forward stream, when it was not an answer: a unary call's non-OK status. */
export interface CallFailure {
  readonly status: number;
  readonly code: string;
  readonly message: string;
}

export type ForwardAnswer =
  | { readonly id: number; readonly kind: 'outcome'; readonly outcome: RpcResult }
  | { readonly id: number; readonly kind: 'failure'; readonly failure: CallFailure };

const forwardId = (o: Rec, path: string): number => {
  const id = u64(o, 'id', path);
  if (id === 0) throw new Invalid(`${path}.id`, 'must be above 0');
  return id;
};

export function decodeForwardCall(raw: unknown): Decoded<ForwardCall> {
  return decodeWith(raw, 'forward', (v, path): ForwardCall => {
    const o = rec(v, path);
    const id = forwardId(o, path);
    const which = oneofMember(o, 'call', path, ['apply', 'read', 'cancel']);
    if (which === 'cancel') return { id, kind: 'cancel' };
    return { id, kind: which as 'apply' | 'read', payload: bytes(o, which, path) };
  });
}

export function encodeForwardAnswer(a: ForwardAnswer): object {
  return a.kind === 'outcome'
    ? { id: a.id, outcome: encodeOutcome(a.outcome) }
    : { id: a.id, failure: { status: a.failure.status, code: a.failure.code, message: a.failure.message } };
}

export function decodeForwardAnswer(raw: unknown): Decoded<ForwardAnswer> {
  return decodeWith(raw, 'reply', (v, path): ForwardAnswer => {
    const o = rec(v, path);
    const id = forwardId(o, path);
    const which = oneofMember(o, 'reply', path, ['outcome', 'failure']);
    if (which === 'failure') {
      const f = rec(o['failure'], `${path}.failure`);
      return { id, kind: 'failure', failure: { status: u64(f, 'status', `${path}.failure`), code: str(f, 'code', `${path}.failure`, { maxLength: 64 }), message: str(f, 'message', `${path}.failure`) } };
    }
    const d = decodeOutcome(o['outcome']);
    if (!d.ok) throw new Invalid(`${path}.${d.error.path}`, d.error.problem);
    return { id, kind: 'outcome', outcome: d.value };
  });
}

export function requestBytes(raw: unknown, field: string): Decoded<Uint8Array> {
  return decodeWith(raw, 'request', (v, path) => bytes(rec(v, path), field, path));
}

export function mapCallError(err: grpc.ServiceError, what: string, address: string): TransportError {
  const remoteCode = err.metadata?.get(codeMetadataKey)[0];
  const details = { peer: address, grpcCode: err.code, cause: err, ...(typeof remoteCode === 'string' ? { remoteCode } : {}) };
  const text = `${what} to ${address} failed: ${err.details || 'no details'} (gRPC status ${err.code})`;
  switch (err.code) {
    case grpc.status.DEADLINE_EXCEEDED:
      return new TransportError('DEADLINE_EXCEEDED', text, details);
    case grpc.status.UNAVAILABLE:
    case grpc.status.CANCELLED:
      return new TransportError('UNAVAILABLE', text, details);
    default:
      return new TransportError('REMOTE_FAILED', text, details);
  }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : describe(err);
}
