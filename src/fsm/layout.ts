// The LevelDB key layout of the FSM database.
//
//   0x00 'format'        msgpack uint: layout version (1)
//   0x00 'applied'       msgpack {Index, Term}: the last applied log entry
//   0x01 <node> 0x00               the node's row: its node-only Register body (catalog-records.ts)
//   0x01 <node> 0x00 0x01 <svc ID> a service of the node: its NodeService body
//   0x01 <node> 0x00 0x02 <chk ID> a check of the node: its HealthCheck body
//                        (node names hold no NUL, so a node's rows are contiguous and come right after
//                        its own row: the order in which Consul's snapshot writes them)
//   0x02 <key UTF-8>     KVS record body (records.ts) of that key
//   0x03 <session ID>    Session record body of that session
//   0x05 <key UTF-8>     Tombstone record body of that key (or delete-tree prefix)
//   0x10 <table UTF-8>   Index record body {Key: table, Value: index}
//   0x40 <session ID><key UTF-8>   empty: the session holds the lock on that key (derived from the KVS
//                        rows' Session, as Consul's memdb index "session" on the kvs table; never in a
//                        snapshot, rebuilt by a restore). Session IDs are UUIDs, 36 bytes, so no separator.
//
// The table byte is Consul's record type number (but for the catalog: Register is type 0, the meta
// table's byte, so the catalog takes 0x01, which is no record type of a snapshot), so one iterator over
// the whole database meets the meta keys first (the state.bin header needs the applied index) and then
// the Register, KVS, Session, Tombstone and Index records; tables from 0x40 on are derived and end the snapshot. (Consul writes sessions before the
// KV entries; the order matters to no reader, Consul's included: neither restore checks a lock's session.) Keys sort bytewise, as Go's memdb sorts them. UTF-8 never
// contains the byte 0xFF, so `table, prefix, 0xFF` is an exclusive upper bound for a prefix scan.

import { decode, encode } from '@msgpack/msgpack';
import { concatBytes, utf8, utf8DecodeStrict } from '../base/index.js';
import { isPlainMap, RecordType, toUint } from '../snapshot/index.js';
import { FsmError } from './errors.js';

export const layoutVersion = 1;

export const Table = {
  meta: 0x00,
  /** Catalog nodes, services and checks, written into snapshots as Register (0) records. */
  catalog: 0x01,
  kvs: RecordType.KVS,
  sessions: RecordType.Session,
  tombstones: RecordType.Tombstone,
  index: RecordType.Index,
  /** Derived: which keys each session holds. */
  sessionKeys: 0x40,
} as const;

/** Tables from this byte on are derived from the others: not in snapshots, rebuilt on restore. */
export const firstDerivedTable = 0x40;

/** The derived row saying `sessionId` holds the lock on `key`. */
export function heldKeyKey(sessionId: string, key: string): Uint8Array {
  return tableKey(Table.sessionKeys, sessionId + key);
}
export type TableByte = (typeof Table)[keyof typeof Table];

/**
 * The name part of a catalog row's key (its database key is tableKey(Table.catalog, name)): the node, a
 * NUL, then nothing (the node's own row), 0x01 and a service ID, or 0x02 and a check ID.
 */
export const catalogName = {
  node: (node: string): string => `${node}\u0000`,
  service: (node: string, id: string): string => `${node}\u0000\u0001${id}`,
  check: (node: string, id: string): string => `${node}\u0000\u0002${id}`,
} as const;

/** Which row a catalog key name is: 'node', 'service' or 'check', with the node and the ID. */
export function parseCatalogName(name: string): { kind: 'node' | 'service' | 'check'; node: string; id: string } | undefined {
  const nul = name.indexOf('\u0000');
  if (nul <= 0) return undefined;
  const node = name.slice(0, nul);
  if (nul === name.length - 1) return { kind: 'node', node, id: '' };
  const marker = name.charCodeAt(nul + 1);
  const id = name.slice(nul + 2);
  if (id === '') return undefined;
  if (marker === 1) return { kind: 'service', node, id };
  if (marker === 2) return { kind: 'check', node, id };
  return undefined;
}

export const metaFormatKey = concatBytes([Uint8Array.of(Table.meta), utf8('format')]);
export const metaAppliedKey = concatBytes([Uint8Array.of(Table.meta), utf8('applied')]);

export function tableKey(table: TableByte, name: string): Uint8Array {
  const body = utf8(name);
  const out = new Uint8Array(1 + body.length);
  out[0] = table;
  out.set(body, 1);
  return out;
}

/** Range options selecting every key of `table` that starts with `prefix` ('' selects the table). */
export function prefixRange(table: TableByte, prefix: string): { gte: Uint8Array; lt: Uint8Array } {
  const gte = tableKey(table, prefix);
  const lt = new Uint8Array(gte.length + 1);
  lt.set(gte, 0);
  lt[gte.length] = 0xff;
  return { gte, lt };
}

/** The name part of a database key, checked to be UTF-8 (anything else means a corrupt database). */
export function nameOf(dbKey: Uint8Array): string {
  const name = utf8DecodeStrict(dbKey.subarray(1));
  if (name === undefined) throw new FsmError('FSM_CORRUPT', `database key in table 0x${(dbKey[0] ?? 0).toString(16)} is not UTF-8`);
  return name;
}

export interface AppliedMark {
  readonly index: number;
  readonly term: number;
}

export function encodeApplied(mark: AppliedMark): Uint8Array {
  return encode({ Index: mark.index, Term: mark.term });
}

export function decodeApplied(bytes: Uint8Array): AppliedMark {
  const body: unknown = decode(bytes, { useBigInt64: true });
  const index = isPlainMap(body) ? toUint(body['Index']) : undefined;
  const term = isPlainMap(body) ? toUint(body['Term']) : undefined;
  if (index === undefined || term === undefined) {
    throw new FsmError('FSM_CORRUPT', 'the applied-index record of the FSM database is unreadable');
  }
  return { index, term };
}

export function encodeFormat(): Uint8Array {
  return encode(layoutVersion);
}

export function decodeFormat(bytes: Uint8Array): number | undefined {
  try {
    return toUint(decode(bytes, { useBigInt64: true }));
  } catch {
    return undefined;
  }
}
