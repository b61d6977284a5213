// What servers say to each other inside proto/server.proto's envelopes: one typed message per
// forwarded operation, as msgpack, and a validating decoder for each, used where the bytes arrive
// (the leader for requests, the follower for answers). A malformed message is refused with a
// ProtocolError naming the field; nothing past a decoder casts.
//
//   Apply     an FSM command (src/fsm's codec validates it)   -> ApplyResult
//   Read      ForwardedRead: a ReadQuery and its options        -> ReadReply of that query's op
//             or ReadIndexCall (a follower's read round)       -> ReadIndexReply
//   Operator  OperatorCall: hello | join | remove | transfer    -> Hello for hello, `true` otherwise
//   SnapshotSave     SnapshotCall  -> SaveHeader, then the archive's bytes
//   SnapshotRestore  SnapshotCall, then the archive's bytes -> `true`
//
// A read's answer has one shape from the leader's function to the follower's caller: the ReadReply
// the ServerApi method returns ({ meta, entry } for a get, ...), never rewrapped on the way.

import { decode as msgpackDecode, encode as msgpackEncode } from '@msgpack/msgpack';
import type { ApplyResult, CatalogQuery, DirEntry, KvReadOp, Session, TxnError, TxnResult, Uint64 } from '../fsm/index.js';
import { toUint64 } from '../fsm/index.js';
import type { AgentMember, Consistency, RaftConfigurationReply, ReadMeta, ReadTxnReply } from './api.js';

// ---------------------------------------------------------------------------------------------
// Messages.
// ---------------------------------------------------------------------------------------------

/** A read a follower forwards to the leader. */
export type ReadQuery =
  | { readonly op: 'kv-get'; readonly key: string }
  | { readonly op: 'kv-list'; readonly prefix: string }
  | { readonly op: 'kv-keys'; readonly prefix: string; readonly separator: string }
  | { readonly op: 'kv-txn'; readonly ops: readonly KvReadOp[] }
  /** One session (none or one in the answer). */
  | { readonly op: 'session-info'; readonly id: string }
  /** Every session, or those of `node` when it is not ''. */
  | { readonly op: 'session-list'; readonly node: string }
  | { readonly op: 'raft-configuration' }
  /** A catalog or health read. */
  | { readonly op: 'catalog'; readonly query: CatalogQuery };

export type ReadOp = ReadQuery['op'];

/** What each read answers besides its meta. */
export interface ReadAnswers {
  readonly 'kv-get': { readonly entry: DirEntry | undefined };
  readonly 'kv-list': { readonly entries: readonly DirEntry[] };
  readonly 'kv-keys': { readonly keys: readonly string[] };
  readonly 'kv-txn': { readonly reply: ReadTxnReply };
  readonly 'session-info': { readonly sessions: readonly Session[] };
  readonly 'session-list': { readonly sessions: readonly Session[] };
  readonly 'raft-configuration': { readonly reply: RaftConfigurationReply };
  /** Consul's JSON answer (null, a list or a map). */
  readonly catalog: { readonly json: unknown };
}

export type ReadReply<Op extends ReadOp> = { readonly meta: ReadMeta } & ReadAnswers[Op];

/** A read's options as they travel: the caller's signal stays behind. */
export interface WireReadOptions {
  readonly consistency: Consistency;
  /** 0: not a blocking query. */
  readonly minIndex: number;
  readonly waitMs: number;
}

export interface ForwardedRead {
  readonly query: ReadQuery;
  readonly options: WireReadOptions;
}

/** What a server says about itself to a server looking for peers. */
export interface Hello {
  readonly id: string;
  readonly address: string;
  readonly datacenter: string;
  /** True while it has never been part of a cluster. */
  readonly fresh: boolean;
}

/** Operator calls: not reads, and not Raft commands either. */
export type OperatorCall =
  | { readonly op: 'hello' }
  | { readonly op: 'join'; readonly id: string; readonly address: string }
  | { readonly op: 'remove'; readonly id: string }
  | { readonly op: 'transfer'; readonly id: string }
  /** A write for this server's datacenter from a server of another (?dc): run as if it came over HTTP. */
  | { readonly op: 'dc-apply'; readonly command: Uint8Array }
  /** A read for this server's datacenter from another (?dc): an encoded ForwardedRead, run as if over HTTP. */
  | { readonly op: 'dc-read'; readonly read: Uint8Array }
  /** PUT /v1/session/renew on a follower: the leader restarts the session's TTL timer. */
  | { readonly op: 'session-renew'; readonly id: string }
  /** GET /v1/agent/members on a follower: the leader's view of which servers are alive. */
  | { readonly op: 'members' };

/**
 * A follower's round of reads asks the leader how far it must have applied before it serves them from
 * its own state: the leader's ReadIndex (a quorum round). It travels as a read on the follower's
 * Forward stream (a unary call costs several times more).
 */
export interface ReadIndexCall {
  readonly op: 'read-index';
  /**
   * The asking server and its Raft term when it sent the call: with them a leader of a 3-server
   * cluster answers without a heartbeat round (RaftCore.readIndexConfirmedBy). Absent (an older
   * server): the leader runs the round.
   */
  readonly from?: string;
  readonly term?: number;
}

/** The leader's answer to read-index. */
export interface ReadIndexReply {
  readonly index: number;
  /** The leader's term and the term of its entry at `index`, for RaftCore.learnCommit (0: unknown). */
  readonly term?: number;
  readonly indexTerm?: number;
}

/**
 * A snapshot save or restore on its way to the server that runs it (the leader, or a server of
 * another datacenter). The receiver handles it as if it had arrived over HTTP: it checks the token
 * against its own ACL configuration and forwards it on if it does not lead.
 */
export interface SnapshotCall {
  readonly stale: boolean;
  /** The caller's ACL token ('' for none). Never logged. */
  readonly token: string;
  /** The datacenter asked for. */
  readonly dc: string;
  /** Servers this call has already passed through; a call is refused past a few (a forwarding loop). */
  readonly hops: number;
}

/** What a save's stream opens with: the query meta Consul sends as X-Consul-* headers. */
export interface SaveHeader {
  /** The snapshot's Raft index (X-Consul-Index), >= 1. */
  readonly index: number;
  readonly knownLeader: boolean;
  readonly lastContactMs: number;
}

/** A message that does not decode: where and what. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
  }
}

export type Decoded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: ProtocolError };

// ---------------------------------------------------------------------------------------------
// Encoding.
// ---------------------------------------------------------------------------------------------

/**
 * Absent fields stay absent: msgpack has no `undefined`, and by default an undefined property travels
 * as nil and comes back as null, which reads as present (a forwarded GET of a missing key once
 * answered 500 instead of 404 that way).
 * useBigInt64: a DirEntry's Flags from 2^53 is a bigint and travels as uint64. (Such an encoder writes a
 * number from 2^32 as a float64, which decodes to the same number; `uint` takes either form.)
 */
const encode = (value: unknown): Uint8Array => msgpackEncode(value, { ignoreUndefined: true, useBigInt64: true });

export const encodeForwardedRead = (r: ForwardedRead): Uint8Array => encode(r);
export const encodeReadReply = <Op extends ReadOp>(reply: ReadReply<Op>): Uint8Array => encode(reply);
export const encodeOperatorCall = (c: OperatorCall): Uint8Array => encode(c);
export const encodeHello = (h: Hello): Uint8Array => encode(h);
export const encodeDone = (): Uint8Array => encode(true);
export const encodeReadIndexCall = (c: ReadIndexCall): Uint8Array => encode(c);
export const encodeReadIndexReply = (r: ReadIndexReply): Uint8Array => encode(r);
export const encodeApplyResult = (r: ApplyResult): Uint8Array => encode(r);
export const encodeSnapshotCall = (c: SnapshotCall): Uint8Array => encode(c);
export const encodeSaveHeader = (h: SaveHeader): Uint8Array => encode(h);

// ---------------------------------------------------------------------------------------------
// Decoding.
// ---------------------------------------------------------------------------------------------

type Rec = Readonly<Record<string, unknown>>;

function describe(v: unknown): string {
  if (v === null) return 'nil';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return `${v.byteLength} bytes`;
  if (typeof v === 'string') return v.length > 40 ? `a string of ${v.length} characters` : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return `${typeof v} ${String(v)}`;
  return typeof v;
}

function rec(v: unknown, path: string): Rec {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
    throw new ProtocolError(path, v === undefined ? 'missing' : `expected a map, got ${describe(v)}`);
  }
  return v as Rec;
}

function str(o: Rec, key: string, path: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw new ProtocolError(`${path}.${key}`, v === undefined ? 'missing' : `expected a string, got ${describe(v)}`);
  return v;
}

function uint(o: Rec, key: string, path: string): number {
  const raw = o[key];
  // A uint64 from a sender that writes safe integers as such arrives as a bigint.
  const v = typeof raw === 'bigint' && raw >= 0n && raw <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(raw) : raw;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new ProtocolError(`${path}.${key}`, v === undefined ? 'missing' : `expected an integer in 0..2^53-1, got ${describe(v)}`);
  }
  return v;
}

function uint64(o: Rec, key: string, path: string): Uint64 {
  const v = toUint64(o[key]);
  if (v === undefined) throw new ProtocolError(`${path}.${key}`, o[key] === undefined ? 'missing' : `expected an integer in 0..2^64-1, got ${describe(o[key])}`);
  return v;
}

function nonNegative(o: Rec, key: string, path: string): number {
  const raw = o[key];
  const v = typeof raw === 'bigint' && raw >= 0n && raw <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(raw) : raw;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new ProtocolError(`${path}.${key}`, v === undefined ? 'missing' : `expected a number >= 0, got ${describe(v)}`);
  }
  return v;
}

function bool(o: Rec, key: string, path: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean') throw new ProtocolError(`${path}.${key}`, v === undefined ? 'missing' : `expected a boolean, got ${describe(v)}`);
  return v;
}

function bin(o: Rec, key: string, path: string): Uint8Array {
  const v = o[key];
  if (!(v instanceof Uint8Array)) throw new ProtocolError(`${path}.${key}`, v === undefined ? 'missing' : `expected bytes, got ${describe(v)}`);
  return v;
}

function list<T>(o: Rec, key: string, path: string, item: (v: unknown, path: string) => T): T[] {
  const v = o[key];
  if (!Array.isArray(v)) throw new ProtocolError(`${path}.${key}`, v === undefined ? 'missing' : `expected an array, got ${describe(v)}`);
  return v.map((x, i) => item(x, `${path}.${key}[${i}]`));
}

function oneOf<T extends string>(o: Rec, key: string, path: string, values: readonly T[]): T {
  const v = o[key];
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
    throw new ProtocolError(`${path}.${key}`, v === undefined ? 'missing' : `unknown value ${describe(v)}; expected one of ${values.join(', ')}`);
  }
  return v as T;
}

/** Decodes one msgpack value (nothing may follow it) and runs `read` on it. */
function decodeWith<T>(bytes: Uint8Array, root: string, read: (v: unknown, path: string) => T): Decoded<T> {
  let raw: unknown;
  try {
    raw = msgpackDecode(bytes, { useBigInt64: true });
  } catch (e) {
    return { ok: false, error: new ProtocolError(root, `not a msgpack value: ${e instanceof Error ? e.message : String(e)}`) };
  }
  try {
    return { ok: true, value: read(raw, root) };
  } catch (e) {
    if (e instanceof ProtocolError) return { ok: false, error: e };
    throw e;
  }
}

const consistencies: readonly Consistency[] = ['default', 'consistent', 'stale'];
const readOps: readonly ReadOp[] = ['kv-get', 'kv-list', 'kv-keys', 'kv-txn', 'session-info', 'session-list', 'raft-configuration', 'catalog'];
const catalogWhats: readonly CatalogQuery['what'][] = [
  'nodes', 'services', 'service', 'node', 'node-services', 'health-node', 'health-checks', 'health-service', 'health-state',
];
const checkStates = ['any', 'passing', 'warning', 'critical'] as const;

function catalogQuery(v: unknown, path: string): CatalogQuery {
  const o = rec(v, path);
  const what = oneOf(o, 'what', path, catalogWhats);
  const tags = (): string[] => list(o, 'tags', path, (t, p) => str({ t }, 't', p));
  switch (what) {
    case 'nodes':
    case 'services':
      return { what };
    case 'service':
      return { what, name: str(o, 'name', path), tags: tags() };
    case 'node':
    case 'node-services':
    case 'health-node':
      return { what, node: str(o, 'node', path) };
    case 'health-checks':
      return { what, service: str(o, 'service', path) };
    case 'health-service':
      return { what, service: str(o, 'service', path), tags: tags(), passing: bool(o, 'passing', path) };
    case 'health-state':
      return { what, state: oneOf(o, 'state', path, checkStates) };
  }
}
const kvReadVerbs: readonly KvReadOp['verb'][] = ['get', 'get-or-empty', 'get-tree', 'check-index', 'check-not-exists', 'check-session'];

function kvReadOp(v: unknown, path: string): KvReadOp {
  const o = rec(v, path);
  const verb = oneOf(o, 'verb', path, kvReadVerbs);
  switch (verb) {
    case 'get-tree':
      return { verb, prefix: str(o, 'prefix', path) };
    case 'check-index':
      return { verb, key: str(o, 'key', path), index: uint64(o, 'index', path) };
    case 'check-session':
      return { verb, key: str(o, 'key', path), session: str(o, 'session', path) };
    default:
      return { verb, key: str(o, 'key', path) };
  }
}

function readQuery(v: unknown, path: string): ReadQuery {
  const o = rec(v, path);
  const op = oneOf(o, 'op', path, readOps);
  switch (op) {
    case 'kv-get':
      return { op, key: str(o, 'key', path) };
    case 'kv-list':
      return { op, prefix: str(o, 'prefix', path) };
    case 'kv-keys':
      return { op, prefix: str(o, 'prefix', path), separator: str(o, 'separator', path) };
    case 'kv-txn':
      return { op, ops: list(o, 'ops', path, kvReadOp) };
    case 'session-info':
      return { op, id: str(o, 'id', path) };
    case 'session-list':
      return { op, node: str(o, 'node', path) };
    case 'raft-configuration':
      return { op };
    case 'catalog':
      return { op, query: catalogQuery(o['query'], `${path}.query`) };
  }
}

/** The leader's entry point for a forwarded read. */
export function decodeForwardedRead(bytes: Uint8Array): Decoded<ForwardedRead> {
  return decodeWith(bytes, 'read', forwardedRead);
}

/** A read-round call: with both `from` and `term`, or (an older server's) with neither. */
function readIndexCall(o: Rec, path: string): ReadIndexCall {
  if (o['from'] === undefined && o['term'] === undefined) return { op: 'read-index' };
  return { op: 'read-index', from: str(o, 'from', path), term: uint(o, 'term', path) };
}

/**
 * What arrives as a read on the leader: a follower's read-round call, or a ForwardedRead. Decoded
 * once (every forwarded read takes this path).
 */
export function decodeReadCall(bytes: Uint8Array): Decoded<ForwardedRead | ReadIndexCall> {
  return decodeWith(bytes, 'read', (v, path): ForwardedRead | ReadIndexCall =>
    rec(v, path)['op'] === 'read-index' ? readIndexCall(rec(v, path), path) : forwardedRead(v, path));
}

function forwardedRead(v: unknown, path: string): ForwardedRead {
  const o = rec(v, path);
  const opts = rec(o['options'], `${path}.options`);
  const p = `${path}.options`;
  return {
    query: readQuery(o['query'], `${path}.query`),
    options: { consistency: oneOf(opts, 'consistency', p, consistencies), minIndex: uint(opts, 'minIndex', p), waitMs: uint(opts, 'waitMs', p) },
  };
}

/** The entry point of an operator call, on whichever server it reaches. */
export function decodeOperatorCall(bytes: Uint8Array): Decoded<OperatorCall> {
  return decodeWith(bytes, 'operator', (v, path): OperatorCall => {
    const o = rec(v, path);
    const op = oneOf(o, 'op', path, ['hello', 'join', 'remove', 'transfer', 'dc-apply', 'dc-read', 'session-renew', 'members'] as const);
    switch (op) {
      case 'hello':
      case 'members':
        return { op };
      case 'join':
        return { op, id: str(o, 'id', path), address: str(o, 'address', path) };
      case 'remove':
      case 'transfer':
      case 'session-renew':
        return { op, id: str(o, 'id', path) };
      case 'dc-apply':
        return { op, command: bin(o, 'command', path) };
      case 'dc-read':
        return { op, read: bin(o, 'read', path) };
    }
  });
}

function session(v: unknown, path: string): Session {
  const o = rec(v, path);
  const behavior = oneOf(o, 'Behavior', path, ['release', 'delete'] as const);
  return {
    ID: str(o, 'ID', path),
    Name: str(o, 'Name', path),
    Node: str(o, 'Node', path),
    LockDelay: uint(o, 'LockDelay', path),
    Behavior: behavior,
    TTL: str(o, 'TTL', path),
    NodeChecks: list(o, 'NodeChecks', path, (c, p) => str({ c }, 'c', p)),
    ServiceChecks: list(o, 'ServiceChecks', path, (c, p) => {
      const m = rec(c, p);
      return { ID: str(m, 'ID', p), Namespace: str(m, 'Namespace', p) };
    }),
    CreateIndex: uint(o, 'CreateIndex', path),
    ModifyIndex: uint(o, 'ModifyIndex', path),
  };
}

/** The leader's member list. */
export function decodeMembers(bytes: Uint8Array): Decoded<readonly AgentMember[]> {
  return decodeWith(bytes, 'members', (v, path) => list(rec(v, path), 'members', path, (m, p) => {
    const o = rec(m, p);
    const tags = rec(o['Tags'], `${p}.Tags`);
    return {
      Name: str(o, 'Name', p),
      Addr: str(o, 'Addr', p),
      Port: uint(o, 'Port', p),
      Tags: Object.fromEntries(Object.keys(tags).map((k) => [k, str(tags, k, `${p}.Tags`)])),
      Status: uint(o, 'Status', p),
    };
  }));
}
export const encodeMembers = (members: readonly AgentMember[]): Uint8Array => encode({ members });

/** A renew's answer: the session, none when it is gone. */
export function decodeSessions(bytes: Uint8Array): Decoded<readonly Session[]> {
  return decodeWith(bytes, 'sessions', (v, path) => list(rec(v, path), 'sessions', path, session));
}
export const encodeSessions = (sessions: readonly Session[]): Uint8Array => encode({ sessions });

function dirEntry(v: unknown, path: string): DirEntry {
  const o = rec(v, path);
  return {
    Key: str(o, 'Key', path),
    Flags: uint64(o, 'Flags', path),
    Value: bin(o, 'Value', path),
    CreateIndex: uint(o, 'CreateIndex', path),
    ModifyIndex: uint(o, 'ModifyIndex', path),
    LockIndex: uint(o, 'LockIndex', path),
    Session: str(o, 'Session', path),
  };
}

const txnResult = (v: unknown, path: string): TxnResult => ({ KV: dirEntry(rec(v, path)['KV'], `${path}.KV`) });

function txnError(v: unknown, path: string): TxnError {
  const o = rec(v, path);
  return { OpIndex: uint(o, 'OpIndex', path), What: str(o, 'What', path) };
}

function readMeta(v: unknown, path: string): ReadMeta {
  const o = rec(v, path);
  const index = uint(o, 'index', path);
  if (index < 1) throw new ProtocolError(`${path}.index`, 'must be at least 1');
  return {
    index,
    knownLeader: bool(o, 'knownLeader', path),
    lastContactMs: nonNegative(o, 'lastContactMs', path),
    consistency: oneOf(o, 'consistency', path, consistencies),
  };
}

function raftConfiguration(v: unknown, path: string): RaftConfigurationReply {
  const o = rec(v, path);
  return {
    Servers: list(o, 'Servers', path, (s, p) => {
      const x = rec(s, p);
      return {
        ID: str(x, 'ID', p),
        Node: str(x, 'Node', p),
        Address: str(x, 'Address', p),
        Leader: bool(x, 'Leader', p),
        ProtocolVersion: str(x, 'ProtocolVersion', p),
        Voter: bool(x, 'Voter', p),
      };
    }),
    Index: uint(o, 'Index', path),
  };
}

const answers: { readonly [Op in ReadOp]: (o: Rec, path: string) => ReadAnswers[Op] } = {
  'kv-get': (o, path) => {
    // Absent, never nil: see `encode`.
    if (!('entry' in o)) return { entry: undefined };
    return { entry: dirEntry(o['entry'], `${path}.entry`) };
  },
  'kv-list': (o, path) => ({ entries: list(o, 'entries', path, dirEntry) }),
  'kv-keys': (o, path) => ({ keys: list(o, 'keys', path, (k, p) => str({ k }, 'k', p)) }),
  'kv-txn': (o, path) => {
    const r = rec(o['reply'], `${path}.reply`);
    return { reply: { results: list(r, 'results', `${path}.reply`, txnResult), errors: list(r, 'errors', `${path}.reply`, txnError) } };
  },
  'session-info': (o, path) => ({ sessions: list(o, 'sessions', path, session) }),
  'session-list': (o, path) => ({ sessions: list(o, 'sessions', path, session) }),
  'raft-configuration': (o, path) => ({ reply: raftConfiguration(o['reply'], `${path}.reply`) }),
  catalog: (o, path) => {
    const json = o['json'];
    if (json !== null && typeof json !== 'object') throw new ProtocolError(`${path}.json`, `expected null, a list or a map, got ${describe(json)}`);
    return { json };
  },
};

/** The follower's entry point for the leader's answer to a forwarded read of kind `op`. */
export function decodeReadReply<Op extends ReadOp>(op: Op, bytes: Uint8Array): Decoded<ReadReply<Op>> {
  return decodeWith(bytes, `${op} reply`, (v, path) => {
    const o = rec(v, path);
    const answer: ReadAnswers[Op] = answers[op](o, path);
    return { ...answer, meta: readMeta(o['meta'], `${path}.meta`) };
  });
}

export function decodeApplyResult(bytes: Uint8Array): Decoded<ApplyResult> {
  return decodeWith(bytes, 'apply result', (v, path): ApplyResult => {
    const o = rec(v, path);
    const kind = oneOf(o, 'kind', path, ['kvs', 'txn', 'session', 'catalog', 'tombstone-reap', 'noop'] as const);
    switch (kind) {
      case 'kvs':
        // `error` only when there is one (and never from a server older than sessions).
        return o['error'] === undefined ? { kind, ok: bool(o, 'ok', path) } : { kind, ok: bool(o, 'ok', path), error: str(o, 'error', path) };
      case 'session':
      case 'catalog':
        return { kind, error: str(o, 'error', path) };
      case 'txn':
        return { kind, results: list(o, 'results', path, txnResult), errors: list(o, 'errors', path, txnError) };
      default:
        return { kind };
    }
  });
}

export function decodeHello(bytes: Uint8Array): Decoded<Hello> {
  return decodeWith(bytes, 'hello', (v, path) => {
    const o = rec(v, path);
    return { id: str(o, 'id', path), address: str(o, 'address', path), datacenter: str(o, 'datacenter', path), fresh: bool(o, 'fresh', path) };
  });
}

export function decodeReadIndexReply(bytes: Uint8Array): Decoded<ReadIndexReply> {
  return decodeWith(bytes, 'read-index reply', (v, path) => {
    const o = rec(v, path);
    return {
      index: uint(o, 'index', path),
      ...(o['term'] !== undefined ? { term: uint(o, 'term', path) } : {}),
      ...(o['indexTerm'] !== undefined ? { indexTerm: uint(o, 'indexTerm', path) } : {}),
    };
  });
}

/** The answer to join, remove and transfer: `true`. */
export function decodeDone(bytes: Uint8Array): Decoded<true> {
  return decodeWith(bytes, 'operator reply', (v, path) => {
    if (v !== true) throw new ProtocolError(path, `expected true, got ${describe(v)}`);
    return true as const;
  });
}

/** The entry point of a forwarded snapshot save or restore. */
export function decodeSnapshotCall(bytes: Uint8Array): Decoded<SnapshotCall> {
  return decodeWith(bytes, 'snapshot call', (v, path) => {
    const o = rec(v, path);
    return { stale: bool(o, 'stale', path), token: str(o, 'token', path), dc: str(o, 'dc', path), hops: uint(o, 'hops', path) };
  });
}

export function decodeSaveHeader(bytes: Uint8Array): Decoded<SaveHeader> {
  return decodeWith(bytes, 'snapshot save header', (v, path) => {
    const o = rec(v, path);
    const index = uint(o, 'index', path);
    if (index < 1) throw new ProtocolError(`${path}.index`, 'must be at least 1');
    return { index, knownLeader: bool(o, 'knownLeader', path), lastContactMs: nonNegative(o, 'lastContactMs', path) };
  });
}
