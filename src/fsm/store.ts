// Reading the KV tables from LevelDB, and the write overlay one apply (or one read-only txn) works in.
//
// `DbReader` reads the database, optionally through an explicit LevelDB snapshot so that several reads
// see one state. `KvTxn` layers the pending writes of one apply over a reader, so every operation of a
// txn sees the effects of the operations before it (as a Consul memdb write transaction does), and at
// the end turns them into the operations of ONE LevelDB batch.

import { decode } from '@msgpack/msgpack';
import type { BatchOperation, Level } from 'level';
import { compareBytes, utf8 } from '../base/index.js';
import { assert } from '../base/index.js';
import { FsmError } from './errors.js';
import { encodeApplied, metaAppliedKey, nameOf, prefixRange, Table, tableKey, type AppliedMark } from './layout.js';
import {
  encodeIndexRecord,
  encodeKvsRecord,
  encodeTombstoneRecord,
  parseIndexRecord,
  parseKvsRecord,
  parseTombstoneRecord,
} from '../snapshot/index.js';
import type { DirEntry, KvTableName, Tombstone } from './types.js';

export type Db = Level<Uint8Array, Uint8Array>;
/** An explicit LevelDB snapshot (classic-level supports them: `db.supports.explicitSnapshots`). */
export type DbSnapshot = ReturnType<Db['snapshot']>;

export type BatchOp = BatchOperation<Db, Uint8Array, Uint8Array>;

/** The reads the KV logic needs. Implementations answer from one consistent state. */
export interface KvReader {
  getEntry(key: string): Promise<DirEntry | undefined>;
  /** Entries whose key starts with `prefix`, in byte order of their keys. */
  listEntries(prefix: string): Promise<DirEntry[]>;
  /** Just the keys of those entries (no values loaded), in the same order. */
  listKeys(prefix: string): Promise<string[]>;
  /** Tombstones whose key starts with `prefix`, in byte order of their keys. */
  listTombstones(prefix: string): Promise<Tombstone[]>;
  /** The index recorded for `table`, 0 when none was ever recorded. */
  tableIndex(table: string): Promise<number>;
}

const decodeOptions = { rawStrings: true, useBigInt64: true } as const;

function corrupt(what: string, cause?: unknown): FsmError {
  return new FsmError('FSM_CORRUPT', `FSM database holds an unreadable ${what}; restore this server from a snapshot`, { cause });
}

export function decodeStoredEntry(dbKey: Uint8Array, value: Uint8Array): DirEntry {
  let body: unknown;
  try {
    body = decode(value, decodeOptions);
  } catch (cause) {
    throw corrupt(`KV entry ${JSON.stringify(nameOf(dbKey))}`, cause);
  }
  const parsed = parseKvsRecord(body);
  if (!parsed.ok) throw corrupt(`KV entry ${JSON.stringify(nameOf(dbKey))} (${parsed.message})`);
  assert(parsed.value.Key === nameOf(dbKey), 'a stored KV entry names the key it is stored under');
  // An own copy of the value: callers may keep or mutate it without touching LevelDB's buffer.
  return { ...parsed.value, Value: new Uint8Array(parsed.value.Value) };
}

export function decodeStoredTombstone(dbKey: Uint8Array, value: Uint8Array): Tombstone {
  let body: unknown;
  try {
    body = decode(value, decodeOptions);
  } catch (cause) {
    throw corrupt(`tombstone ${JSON.stringify(nameOf(dbKey))}`, cause);
  }
  const parsed = parseTombstoneRecord(body);
  if (!parsed.ok) throw corrupt(`tombstone ${JSON.stringify(nameOf(dbKey))} (${parsed.message})`);
  assert(parsed.value.Key === nameOf(dbKey), 'a stored tombstone names the key it is stored under');
  return parsed.value;
}

export function decodeStoredIndex(dbKey: Uint8Array, value: Uint8Array): number {
  let body: unknown;
  try {
    body = decode(value, decodeOptions);
  } catch (cause) {
    throw corrupt(`table index ${JSON.stringify(nameOf(dbKey))}`, cause);
  }
  const parsed = parseIndexRecord(body);
  if (!parsed.ok) throw corrupt(`table index ${JSON.stringify(nameOf(dbKey))} (${parsed.message})`);
  assert(parsed.value.Key === nameOf(dbKey), 'a stored table index names the table it is stored under');
  return parsed.value.Value;
}

export class DbReader implements KvReader {
  constructor(
    private readonly db: Db,
    /** Read through this snapshot when given; otherwise each call reads the latest state. */
    private readonly snapshot?: DbSnapshot,
    /**
     * Point reads with getSync: no thread-pool round trip. For applies, which run one at a time on
     * the write path: a LevelDB point read from its caches takes microseconds, the trip to the pool
     * and back a tenth of a millisecond. Reads served to clients stay asynchronous.
     */
    private readonly syncPointReads = false,
  ) {}

  /** The reader applies use: the latest state, point reads without leaving the event loop. */
  static forApply(db: Db): DbReader {
    return new DbReader(db, undefined, true);
  }

  private async point(dbKey: Uint8Array): Promise<Uint8Array | undefined> {
    return this.syncPointReads ? this.db.getSync(dbKey, this.options()) : this.db.get(dbKey, this.options());
  }

  private options(): { snapshot?: DbSnapshot } {
    return this.snapshot === undefined ? {} : { snapshot: this.snapshot };
  }

  async getEntry(key: string): Promise<DirEntry | undefined> {
    const dbKey = tableKey(Table.kvs, key);
    const value = await this.point(dbKey);
    return value === undefined ? undefined : decodeStoredEntry(dbKey, value);
  }

  async listEntries(prefix: string): Promise<DirEntry[]> {
    const out: DirEntry[] = [];
    for await (const [k, v] of this.db.iterator({ ...prefixRange(Table.kvs, prefix), ...this.options() })) {
      out.push(decodeStoredEntry(k, v));
    }
    return out;
  }

  async listKeys(prefix: string): Promise<string[]> {
    const out: string[] = [];
    for await (const k of this.db.keys({ ...prefixRange(Table.kvs, prefix), ...this.options() })) out.push(nameOf(k));
    return out;
  }

  async listTombstones(prefix: string): Promise<Tombstone[]> {
    const out: Tombstone[] = [];
    for await (const [k, v] of this.db.iterator({ ...prefixRange(Table.tombstones, prefix), ...this.options() })) {
      out.push(decodeStoredTombstone(k, v));
    }
    return out;
  }

  async tableIndex(table: string): Promise<number> {
    const dbKey = tableKey(Table.index, table);
    const value = await this.point(dbKey);
    return value === undefined ? 0 : decodeStoredIndex(dbKey, value);
  }
}

/** What one apply changed, for watchers: keys set or deleted, and prefixes deleted by delete-tree. */
export interface ChangeSet {
  readonly keys: ReadonlySet<string>;
  readonly prefixes: readonly string[];
}

/** Sorts keys in UTF-8 byte order (LevelDB's and Go's), encoding each key once. */
function sortByBytes(keys: Iterable<string>): string[] {
  return [...keys]
    .map((key) => ({ key, bytes: utf8(key) }))
    .sort((a, b) => compareBytes(a.bytes, b.bytes))
    .map((k) => k.key);
}

/**
 * Pending writes over a reader. Invariant: a key present in `entries` maps to its new state (null:
 * deleted); keys absent read through to the base. The same holds for `stones` and `indexes`.
 */
export class KvTxn {
  private readonly entries = new Map<string, DirEntry | null>();
  private readonly stones = new Map<string, number | null>();
  private readonly indexes = new Map<string, number>();
  private readonly changedKeys = new Set<string>();
  private readonly deletedPrefixes: string[] = [];

  constructor(private readonly base: KvReader) {}

  async get(key: string): Promise<DirEntry | undefined> {
    const pending = this.entries.get(key);
    if (pending !== undefined) return pending ?? undefined;
    return this.base.getEntry(key);
  }

  async list(prefix: string): Promise<DirEntry[]> {
    const stored = await this.base.listEntries(prefix);
    if (this.entries.size === 0) return stored;
    const merged = new Map<string, DirEntry>();
    for (const e of stored) merged.set(e.Key, e);
    for (const [key, e] of this.entries) {
      if (!key.startsWith(prefix)) continue;
      if (e === null) merged.delete(key);
      else merged.set(key, e);
    }
    return sortByBytes(merged.keys()).map((k) => merged.get(k) as DirEntry);
  }

  async listKeys(prefix: string): Promise<string[]> {
    const stored = await this.base.listKeys(prefix);
    if (this.entries.size === 0) return stored;
    const merged = new Set(stored);
    for (const [key, e] of this.entries) {
      if (!key.startsWith(prefix)) continue;
      if (e === null) merged.delete(key);
      else merged.add(key);
    }
    return sortByBytes(merged);
  }

  async tombstones(prefix: string): Promise<Tombstone[]> {
    const stored = await this.base.listTombstones(prefix);
    if (this.stones.size === 0) return stored;
    const merged = new Map<string, number>();
    for (const s of stored) merged.set(s.Key, s.Index);
    for (const [key, index] of this.stones) {
      if (!key.startsWith(prefix)) continue;
      if (index === null) merged.delete(key);
      else merged.set(key, index);
    }
    return sortByBytes(merged.keys()).map((k) => ({ Key: k, Index: merged.get(k) as number }));
  }

  async tableIndex(table: KvTableName): Promise<number> {
    return this.indexes.get(table) ?? this.base.tableIndex(table);
  }

  /** Consul's kvsMaxIndex: the larger of the kvs and tombstones table indexes. */
  async kvsMaxIndex(): Promise<number> {
    return Math.max(await this.tableIndex('kvs'), await this.tableIndex('tombstones'));
  }

  put(entry: DirEntry): void {
    this.entries.set(entry.Key, entry);
    this.changedKeys.add(entry.Key);
  }

  remove(key: string): void {
    this.entries.set(key, null);
    this.changedKeys.add(key);
  }

  noteDeletedPrefix(prefix: string): void {
    this.deletedPrefixes.push(prefix);
  }

  putTombstone(stone: Tombstone): void {
    this.stones.set(stone.Key, stone.Index);
  }

  removeTombstone(key: string): void {
    this.stones.set(key, null);
  }

  setTableIndex(table: KvTableName, index: number): void {
    this.indexes.set(table, index);
  }

  changes(): ChangeSet {
    return { keys: this.changedKeys, prefixes: this.deletedPrefixes };
  }

  /** This txn as a reader, for a txn layered on top of it (one entry of a batch over the batch). */
  asReader(): KvReader {
    return {
      getEntry: (key) => this.get(key),
      listEntries: (prefix) => this.list(prefix),
      listKeys: (prefix) => this.listKeys(prefix),
      listTombstones: (prefix) => this.tombstones(prefix),
      tableIndex: (table) => this.tableIndex(table as KvTableName),
    };
  }

  /** Folds this txn's writes into `parent` (the txn it was layered on), later writes winning. */
  mergeInto(parent: KvTxn): void {
    for (const [key, e] of this.entries) parent.entries.set(key, e);
    for (const [key, index] of this.stones) parent.stones.set(key, index);
    for (const [table, index] of this.indexes) parent.indexes.set(table, index);
    for (const key of this.changedKeys) parent.changedKeys.add(key);
    parent.deletedPrefixes.push(...this.deletedPrefixes);
  }

  /** The batch that makes this txn durable, with the applied mark written in the same batch. */
  toBatch(applied: AppliedMark): BatchOp[] {
    const ops: BatchOp[] = [];
    for (const [key, e] of this.entries) {
      const dbKey = tableKey(Table.kvs, key);
      ops.push(e === null ? { type: 'del', key: dbKey } : { type: 'put', key: dbKey, value: encodeKvsRecord(e) });
    }
    for (const [key, index] of this.stones) {
      const dbKey = tableKey(Table.tombstones, key);
      if (index === null) ops.push({ type: 'del', key: dbKey });
      else ops.push({ type: 'put', key: dbKey, value: encodeTombstoneRecord({ Key: key, Index: index }) });
    }
    for (const [table, index] of this.indexes) {
      ops.push({ type: 'put', key: tableKey(Table.index, table), value: encodeIndexRecord({ Key: table, Value: index }) });
    }
    ops.push({ type: 'put', key: metaAppliedKey, value: encodeApplied(applied) });
    return ops;
  }
}
