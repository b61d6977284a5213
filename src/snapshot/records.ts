// The bodies of Consul's state.bin records for the KV tables, and their validation.
//
// These exact bytes are also what the FSM stores as LevelDB values (see layout.ts), so a snapshot copies
// stored values straight into the stream, and every value is checked by the same parser whether it comes
// from our own database or from a restore.
//
// Shapes (Consul's Go field names, in Go's field order, embedded structs such as RaftIndex flattened
// into the map, as Consul's msgpack handle encodes structs.DirEntry and structs.IndexEntry):
//   KVS (2):        {LockIndex, Key, Flags, Value, Session, CreateIndex, ModifyIndex}
//   Tombstone (5):  the same DirEntry shape holding only Key and ModifyIndex (Consul keeps pre-0.6 format)
//   Index (16):     {Key: <table name>, Value: <max index>}
//   Session (3):    {ID, Name, Node, LockDelay, Behavior, TTL, NodeChecks, ServiceChecks, CreateIndex, ModifyIndex}
//
// Encoding notes: we write msgpack's current spec (str8, bin); Consul writes the old spec (byte slices as
// str "raw"). On reading we accept both for byte fields. An empty value is written as nil, as Go writes a
// nil []byte.

import { Encoder } from '@msgpack/msgpack';
import { utf8DecodeStrict } from '../base/index.js';
import { describeValue, isPlainMap, toUint, toUint64, wireUint, type Uint64 } from './values.js';
import type { DirEntry, ServiceCheck, Session, Tombstone } from './types.js';

export const RecordType = {
  Register: 0,
  KVS: 2,
  Session: 3,
  Tombstone: 5,
  Index: 16,
} as const;

export interface IndexRecord {
  readonly Key: string;
  readonly Value: number;
}

export interface ParseFailure {
  readonly ok: false;
  /** The offending field, undefined when the body itself is wrong. */
  readonly field: string | undefined;
  /** True when the field is absent (as opposed to present with a wrong value). */
  readonly missing: boolean;
  readonly message: string;
}

export type Parsed<T> = { readonly ok: true; readonly value: T } | ParseFailure;

// One encoder, reused: encoding is synchronous, so no two calls interleave.
const encoder = new Encoder({ ignoreUndefined: false, sortKeys: false });
// For Flags from 2^53 (a bigint): every integer goes through wireUint, so the bytes are the ones the
// encoder above writes for the same numbers, and Flags is a uint64 as Consul writes it.
const bigEncoder = new Encoder({ ignoreUndefined: false, sortKeys: false, useBigInt64: true });
const emptyBytes = new Uint8Array(0);

export function encodeKvsRecord(entry: DirEntry): Uint8Array {
  if (typeof entry.Flags === 'bigint') {
    return bigEncoder.encode({
      LockIndex: wireUint(entry.LockIndex),
      Key: entry.Key,
      Flags: entry.Flags,
      Value: entry.Value.length === 0 ? null : entry.Value,
      Session: entry.Session,
      CreateIndex: wireUint(entry.CreateIndex),
      ModifyIndex: wireUint(entry.ModifyIndex),
    });
  }
  return encoder.encode({
    LockIndex: entry.LockIndex,
    Key: entry.Key,
    Flags: entry.Flags,
    Value: entry.Value.length === 0 ? null : entry.Value,
    Session: entry.Session,
    CreateIndex: entry.CreateIndex,
    ModifyIndex: entry.ModifyIndex,
  });
}

export function encodeTombstoneRecord(stone: Tombstone): Uint8Array {
  return encoder.encode({
    LockIndex: 0,
    Key: stone.Key,
    Flags: 0,
    Value: null,
    Session: '',
    CreateIndex: 0,
    ModifyIndex: stone.Index,
  });
}

export function encodeIndexRecord(record: IndexRecord): Uint8Array {
  return encoder.encode({ Key: record.Key, Value: record.Value });
}

/**
 * A session with Consul's structs.Session field names, in Go's field order, empty lists as nil (Go's nil
 * slice), RaftIndex flattened: the shape both its msgpack record and Consul's JSON answers have. (Consul
 * CE also writes the deprecated `Checks`, always empty since 1.7; we leave it out.)
 */
export function sessionAsGo(s: Session): Record<string, unknown> {
  return {
    ID: s.ID,
    Name: s.Name,
    Node: s.Node,
    LockDelay: s.LockDelay,
    Behavior: s.Behavior,
    TTL: s.TTL,
    NodeChecks: s.NodeChecks.length === 0 ? null : s.NodeChecks,
    ServiceChecks: s.ServiceChecks.length === 0 ? null : s.ServiceChecks.map((c) => ({ ID: c.ID, Namespace: c.Namespace })),
    CreateIndex: s.CreateIndex,
    ModifyIndex: s.ModifyIndex,
  };
}

export function encodeSessionRecord(s: Session): Uint8Array {
  return encoder.encode(sessionAsGo(s));
}

/**
 * A body that encodeKvsRecord wrote, with its ModifyIndex (the last field, its value at `modifyIndexAt`)
 * replaced by `index`: the same bytes as encodeKvsRecord of the entry with that ModifyIndex.
 */
export function withModifyIndex(body: Uint8Array, modifyIndexAt: number, index: number): Uint8Array {
  // msgpack's smallest unsigned encoding, as the encoder writes it.
  const tail = index < 0x80 ? 1 : index < 0x100 ? 2 : index < 0x10000 ? 3 : index < 0x1_0000_0000 ? 5 : 9;
  // allocUnsafe takes small buffers from Node's pool: a restore patches every key's body.
  const out = Buffer.allocUnsafe(modifyIndexAt + tail);
  out.set(body.subarray(0, modifyIndexAt), 0);
  const at = modifyIndexAt;
  if (tail === 1) out[at] = index;
  else if (tail === 2) {
    out[at] = 0xcc;
    out[at + 1] = index;
  } else if (tail === 3) {
    out[at] = 0xcd;
    out.writeUInt16BE(index, at + 1);
  } else if (tail === 5) {
    out[at] = 0xce;
    out.writeUInt32BE(index, at + 1);
  } else {
    out[at] = 0xcf;
    out.writeUInt32BE(Math.floor(index / 0x1_0000_0000), at + 1);
    out.writeUInt32BE(index >>> 0, at + 5);
  }
  return out;
}

/** The first byte of every KVS/Tombstone body we write: a msgpack fixmap of 7 entries. */
export const dirEntryBodyHead = 0x87;
/** The first byte of every Index body we write: a msgpack fixmap of 2 entries. */
export const indexBodyHead = 0x82;
/** The first byte of every Session body we write: a msgpack fixmap of 10 entries. */
export const sessionBodyHead = 0x8a;

/**
 * Parses a decoded KVS body (decoded with rawStrings, so strings arrive as bytes).
 * Required: Key, Flags (0..2^64-1), LockIndex, CreateIndex, ModifyIndex (0..2^53-1). Optional: Value (nil or absent is empty) and
 * Session (absent is ''): newer Consul encoders honour `json:",omitempty"` on Session. Unknown fields
 * (e.g. Enterprise Namespace/Partition) are ignored, as Consul's decoder ignores them.
 */
export function parseKvsRecord(body: unknown): Parsed<DirEntry> {
  if (!isPlainMap(body)) return bad(undefined, false, `body must be a map, got ${describeValue(body)}`);
  const key = text(body, 'Key', true);
  if (!key.ok) return key;
  if (key.value === '') return bad('Key', false, 'field "Key" is empty');
  const flags = uint64(body, 'Flags');
  if (!flags.ok) return flags;
  const value = bytes(body, 'Value');
  if (!value.ok) return value;
  const session = text(body, 'Session', false);
  if (!session.ok) return session;
  if (session.value !== '' && !isSessionId(session.value)) {
    return bad('Session', false, `field "Session" must be '' or a session UUID, got ${JSON.stringify(session.value.slice(0, 64))}`);
  }
  const lockIndex = uint(body, 'LockIndex', true);
  if (!lockIndex.ok) return lockIndex;
  const indexes = raftIndex(body);
  if (!indexes.ok) return indexes;
  return {
    ok: true,
    value: {
      Key: key.value,
      Flags: flags.value,
      Value: value.value,
      Session: session.value,
      LockIndex: lockIndex.value,
      ...indexes.value,
    },
  };
}

/** Parses a Tombstone body: a DirEntry of which only Key and ModifyIndex matter. */
export function parseTombstoneRecord(body: unknown): Parsed<Tombstone> {
  if (!isPlainMap(body)) return bad(undefined, false, `body must be a map, got ${describeValue(body)}`);
  const key = text(body, 'Key', true);
  if (!key.ok) return key;
  if (key.value === '') return bad('Key', false, 'field "Key" is empty');
  const index = uint(body, 'ModifyIndex', true);
  if (!index.ok) return index;
  return { ok: true, value: { Key: key.value, Index: index.value } };
}

export function parseIndexRecord(body: unknown): Parsed<IndexRecord> {
  if (!isPlainMap(body)) return bad(undefined, false, `body must be a map, got ${describeValue(body)}`);
  const key = text(body, 'Key', true);
  if (!key.ok) return key;
  if (key.value === '') return bad('Key', false, 'field "Key" (the table name) is empty');
  const value = uint(body, 'Value', true);
  if (!value.ok) return value;
  return { ok: true, value: { Key: key.value, Value: value.value } };
}

/** A session ID: what Consul generates (a UUID) is all we accept, so IDs are safe in keys and paths. */
const sessionIdPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isSessionId(text: string): boolean {
  return sessionIdPattern.test(text);
}

/**
 * Parses a Session body. Required: ID (a UUID), Node (not empty), CreateIndex, ModifyIndex. Optional:
 * Name, TTL ('' when absent), LockDelay (0), Behavior ('' is Consul's default, release), NodeChecks and
 * ServiceChecks (nil or absent: none). A body from before Consul 1.7 has only `Checks`: they are the
 * node checks. Unknown fields are ignored, as Consul's decoder ignores them.
 */
export function parseSessionRecord(body: unknown): Parsed<Session> {
  if (!isPlainMap(body)) return bad(undefined, false, `body must be a map, got ${describeValue(body)}`);
  const id = text(body, 'ID', true);
  if (!id.ok) return id;
  if (!isSessionId(id.value)) return bad('ID', false, `field "ID" must be a session UUID, got ${JSON.stringify(id.value.slice(0, 64))}`);
  const name = text(body, 'Name', false);
  if (!name.ok) return name;
  const node = text(body, 'Node', true);
  if (!node.ok) return node;
  if (node.value === '') return bad('Node', false, 'field "Node" is empty');
  const lockDelay = uint(body, 'LockDelay', false);
  if (!lockDelay.ok) return lockDelay;
  const behavior = text(body, 'Behavior', false);
  if (!behavior.ok) return behavior;
  if (behavior.value !== '' && behavior.value !== 'release' && behavior.value !== 'delete') {
    return bad('Behavior', false, `field "Behavior" must be "release" or "delete", got ${JSON.stringify(behavior.value.slice(0, 64))}`);
  }
  const ttl = text(body, 'TTL', false);
  if (!ttl.ok) return ttl;
  const nodeChecks = has(body, 'NodeChecks') || !has(body, 'Checks') ? texts(body, 'NodeChecks') : texts(body, 'Checks');
  if (!nodeChecks.ok) return nodeChecks;
  const serviceChecks = serviceCheckList(body, 'ServiceChecks');
  if (!serviceChecks.ok) return serviceChecks;
  const indexes = raftIndex(body);
  if (!indexes.ok) return indexes;
  return {
    ok: true,
    value: {
      ID: id.value,
      Name: name.value,
      Node: node.value,
      LockDelay: lockDelay.value,
      Behavior: behavior.value === 'delete' ? 'delete' : 'release',
      TTL: ttl.value,
      NodeChecks: nodeChecks.value,
      ServiceChecks: serviceChecks.value,
      ...indexes.value,
    },
  };
}

/** Consul's RaftIndex, flattened into the record: CreateIndex and ModifyIndex, both required. */
function raftIndex(body: Record<string, unknown>): Parsed<{ CreateIndex: number; ModifyIndex: number }> {
  const createIndex = uint(body, 'CreateIndex', true);
  if (!createIndex.ok) return createIndex;
  const modifyIndex = uint(body, 'ModifyIndex', true);
  if (!modifyIndex.ok) return modifyIndex;
  return { ok: true, value: { CreateIndex: createIndex.value, ModifyIndex: modifyIndex.value } };
}

/** An optional list of strings: nil or absent is empty. */
export function texts(body: Record<string, unknown>, name: string): Parsed<string[]> {
  if (!has(body, name) || body[name] === null) return { ok: true, value: [] };
  const raw = body[name];
  if (!Array.isArray(raw)) return bad(name, false, `field "${name}" must be a list of strings, got ${describeValue(raw)}`);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    const item = text({ item: raw[i] }, 'item', true);
    if (!item.ok) return bad(name, false, `field "${name}" item ${i}: ${item.message.replace('field "item" ', '')}`);
    out.push(item.value);
  }
  return { ok: true, value: out };
}

function serviceCheckList(body: Record<string, unknown>, name: string): Parsed<ServiceCheck[]> {
  if (!has(body, name) || body[name] === null) return { ok: true, value: [] };
  const raw = body[name];
  if (!Array.isArray(raw)) return bad(name, false, `field "${name}" must be a list of {ID, Namespace}, got ${describeValue(raw)}`);
  const out: ServiceCheck[] = [];
  for (let i = 0; i < raw.length; i++) {
    const item: unknown = raw[i];
    if (!isPlainMap(item)) return bad(name, false, `field "${name}" item ${i} must be a map {ID, Namespace}, got ${describeValue(item)}`);
    const id = text(item, 'ID', true);
    if (!id.ok) return bad(name, id.missing, `field "${name}" item ${i}: ${id.message}`);
    const ns = text(item, 'Namespace', false);
    if (!ns.ok) return bad(name, false, `field "${name}" item ${i}: ${ns.message}`);
    out.push({ ID: id.value, Namespace: ns.value });
  }
  return { ok: true, value: out };
}

export function bad(field: string | undefined, missing: boolean, message: string): ParseFailure {
  return { ok: false, field, missing, message };
}

export function has(body: Record<string, unknown>, name: string): boolean {
  return Object.prototype.hasOwnProperty.call(body, name);
}

export function text(body: Record<string, unknown>, name: string, required: boolean): Parsed<string> {
  if (!has(body, name)) return required ? bad(name, true, `field "${name}" is missing`) : { ok: true, value: '' };
  const raw = body[name];
  if (typeof raw === 'string') return { ok: true, value: raw };
  if (!(raw instanceof Uint8Array)) return bad(name, false, `field "${name}" must be a string, got ${describeValue(raw)}`);
  const decoded = utf8DecodeStrict(raw);
  if (decoded === undefined) return bad(name, false, `field "${name}" is not valid UTF-8`);
  return { ok: true, value: decoded };
}

export function uint(body: Record<string, unknown>, name: string, required: boolean): Parsed<number> {
  if (!has(body, name)) return required ? bad(name, true, `field "${name}" is missing`) : { ok: true, value: 0 };
  const n = toUint(body[name]);
  if (n === undefined) return bad(name, false, `field "${name}" must be an integer in 0..2^53-1, got ${describeValue(body[name])}`);
  return { ok: true, value: n };
}

/** A required uint64 (Flags): 0..2^64-1, read exactly (see Uint64). */
function uint64(body: Record<string, unknown>, name: string): Parsed<Uint64> {
  if (!has(body, name)) return bad(name, true, `field "${name}" is missing`);
  const n = toUint64(body[name]);
  if (n === undefined) return bad(name, false, `field "${name}" must be an integer in 0..2^64-1, got ${describeValue(body[name])}`);
  return { ok: true, value: n };
}

function bytes(body: Record<string, unknown>, name: string): Parsed<Uint8Array> {
  if (!has(body, name)) return { ok: true, value: emptyBytes };
  const raw = body[name];
  if (raw === null) return { ok: true, value: emptyBytes };
  if (raw instanceof Uint8Array) return { ok: true, value: raw };
  return bad(name, false, `field "${name}" must be bytes, got ${describeValue(raw)}`);
}
