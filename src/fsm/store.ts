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
import { encodeApplied, heldKeyKey, metaAppliedKey, nameOf, parseCatalogName, prefixRange, Table, tableKey, type AppliedMark } from './layout.js';
import {
  encodeCheckBody,
  encodeNodeBody,
  encodeServiceBody,
  parseCheckBody,
  parseNodeBody,
  parseServiceBody,
  encodeIndexRecord,
  encodeKvsRecord,
  encodeSessionRecord,
  encodeTombstoneRecord,
  parseIndexRecord,
  parseKvsRecord,
  parseSessionRecord,
  parseTombstoneRecord,
} from '../snapshot/index.js';
import type { CatalogNode, DirEntry, HealthCheck, KvTableName, NodeService, Session, Tombstone } from './types.js';

/** One row of the catalog table (layout.ts): a node, or a service or check of one. */
export type CatalogRow =
  | { readonly kind: 'node'; readonly node: CatalogNode }
  | { readonly kind: 'service'; readonly node: string; readonly service: NodeService }
  | { readonly kind: 'check'; readonly node: string; readonly check: HealthCheck };

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
  getSession(id: string): Promise<Session | undefined>;
  /** Every session, in byte order of their IDs. */
  listSessions(): Promise<Session[]>;
  /** The keys whose lock `sessionId` holds, in byte order. */
  listHeldKeys(sessionId: string): Promise<string[]>;
  /** Catalog rows whose key name (layout.ts's catalogName) starts with `prefix`, in byte order. */
  catalogRows(prefix: string): Promise<Array<[string, CatalogRow]>>;
}

export function decodeStoredCatalogRow(dbKey: Uint8Array, value: Uint8Array): [string, CatalogRow] {
  const name = nameOf(dbKey);
  const at = parseCatalogName(name);
  if (at === undefined) throw corrupt(`catalog key ${JSON.stringify(name)}`);
  let body: unknown;
  try {
    body = decode(value, decodeOptions);
  } catch (cause) {
    throw corrupt(`catalog row ${JSON.stringify(name)}`, cause);
  }
  switch (at.kind) {
    case 'node': {
      const parsed = parseNodeBody(body);
      if (!parsed.ok || parsed.value.Node !== at.node) throw corrupt(`catalog node ${JSON.stringify(at.node)}`);
      return [name, { kind: 'node', node: parsed.value }];
    }
    case 'service': {
      const parsed = parseServiceBody(body);
      if (!parsed.ok || parsed.value.ID !== at.id) throw corrupt(`service ${JSON.stringify(at.id)} of node ${JSON.stringify(at.node)}`);
      return [name, { kind: 'service', node: at.node, service: parsed.value }];
    }
    case 'check': {
      const parsed = parseCheckBody(body);
      if (!parsed.ok || parsed.value.CheckID !== at.id || parsed.value.Node !== at.node) {
        throw corrupt(`check ${JSON.stringify(at.id)} of node ${JSON.stringify(at.node)}`);
      }
      return [name, { kind: 'check', node: at.node, check: parsed.value }];
    }
  }
}

function encodeCatalogRow(row: CatalogRow): Uint8Array {
  switch (row.kind) {
    case 'node':
      return encodeNodeBody(row.node);
    case 'service':
      return encodeServiceBody(row.service);
    case 'check':
      return encodeCheckBody(row.check);
  }
}

const decodeOptions = { rawStrings: true, useBigInt64: true } as const;
const emptyValue = new Uint8Array(0);

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

export function decodeStoredSession(dbKey: Uint8Array, value: Uint8Array): Session {
  let body: unknown;
  try {
    body = decode(value, decodeOptions);
  } catch (cause) {
    throw corrupt(`session ${JSON.stringify(nameOf(dbKey))}`, cause);
  }
  const parsed = parseSessionRecord(body);
  if (!parsed.ok) throw corrupt(`session ${JSON.stringify(nameOf(dbKey))} (${parsed.message})`);
  assert(parsed.value.ID === nameOf(dbKey), 'a stored session names the ID it is stored under');
  return parsed.value;
}

/** Session IDs are UUIDs: 36 ASCII bytes (records.ts refuses anything else). */
const sessionIdBytes = 36;

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

  async getSession(id: string): Promise<Session | undefined> {
    const dbKey = tableKey(Table.sessions, id);
    const value = await this.point(dbKey);
    return value === undefined ? undefined : decodeStoredSession(dbKey, value);
  }

  async listSessions(): Promise<Session[]> {
    const out: Session[] = [];
    for await (const [k, v] of this.db.iterator({ ...prefixRange(Table.sessions, ''), ...this.options() })) out.push(decodeStoredSession(k, v));
    return out;
  }

  async listHeldKeys(sessionId: string): Promise<string[]> {
    const out: string[] = [];
    for await (const k of this.db.keys({ ...prefixRange(Table.sessionKeys, sessionId), ...this.options() })) {
      out.push(nameOf(k).slice(sessionIdBytes));
    }
    return out;
  }

  async catalogRows(prefix: string): Promise<Array<[string, CatalogRow]>> {
    const out: Array<[string, CatalogRow]> = [];
    for await (const [k, v] of this.db.iterator({ ...prefixRange(Table.catalog, prefix), ...this.options() })) {
      out.push(decodeStoredCatalogRow(k, v));
    }
    return out;
  }
}

/**
 * What one apply changed, for watchers: keys set or deleted, prefixes deleted by delete-tree, and
 * whether any session was created or destroyed.
 */
export interface ChangeSet {
  readonly keys: ReadonlySet<string>;
  readonly prefixes: readonly string[];
  readonly sessions: boolean;
  /** The catalog tables ('nodes', 'services', 'checks') whose index this apply moved. */
  readonly catalogTables: ReadonlySet<string>;
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
  /** Sessions created (a Session) or destroyed (null). */
  private readonly sessions = new Map<string, Session | null>();
  /** Derived rows: `<session ID><key>` -> held (true) or released (false). */
  private readonly held = new Map<string, boolean>();
  /** Keys whose lock an invalidated session gave up, with the session's lock-delay in ms. */
  private readonly delays: Array<{ readonly key: string; readonly ms: number }> = [];
  /** Catalog rows by key name (layout.ts's catalogName): written (a row) or deleted (null). */
  private readonly catalog = new Map<string, CatalogRow | null>();
  private readonly catalogTables = new Set<string>();

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

  async getSession(id: string): Promise<Session | undefined> {
    const pending = this.sessions.get(id);
    if (pending !== undefined) return pending ?? undefined;
    return this.base.getSession(id);
  }

  async listSessions(): Promise<Session[]> {
    const stored = await this.base.listSessions();
    if (this.sessions.size === 0) return stored;
    const merged = new Map<string, Session>();
    for (const s of stored) merged.set(s.ID, s);
    for (const [id, s] of this.sessions) {
      if (s === null) merged.delete(id);
      else merged.set(id, s);
    }
    return sortByBytes(merged.keys()).map((id) => merged.get(id) as Session);
  }

  async listHeldKeys(sessionId: string): Promise<string[]> {
    const stored = await this.base.listHeldKeys(sessionId);
    if (this.held.size === 0) return stored;
    const merged = new Set(stored);
    for (const [row, held] of this.held) {
      if (!row.startsWith(sessionId)) continue;
      const key = row.slice(sessionIdBytes);
      if (held) merged.add(key);
      else merged.delete(key);
    }
    return sortByBytes(merged);
  }

  async catalogRows(prefix: string): Promise<Array<[string, CatalogRow]>> {
    const stored = await this.base.catalogRows(prefix);
    if (this.catalog.size === 0) return stored;
    const merged = new Map<string, CatalogRow>(stored);
    for (const [name, row] of this.catalog) {
      if (!name.startsWith(prefix)) continue;
      if (row === null) merged.delete(name);
      else merged.set(name, row);
    }
    return sortByBytes(merged.keys()).map((name) => [name, merged.get(name) as CatalogRow]);
  }

  putCatalogRow(name: string, row: CatalogRow): void {
    this.catalog.set(name, row);
  }

  removeCatalogRow(name: string): void {
    this.catalog.set(name, null);
  }

  /**
   * Stores `entry`; `previousSession` is the Session of the entry it replaces ('' for none), so the
   * derived session index follows.
   */
  put(entry: DirEntry, previousSession: string): void {
    this.entries.set(entry.Key, entry);
    this.changedKeys.add(entry.Key);
    this.moveHolder(entry.Key, previousSession, entry.Session);
  }

  /** Deletes `key`, whose entry was held by `session` ('' for none). */
  remove(key: string, session: string): void {
    this.entries.set(key, null);
    this.changedKeys.add(key);
    this.moveHolder(key, session, '');
  }

  /** Drops a derived row that names a key `sessionId` does not hold (see sessionDestroy). */
  dropHeldRow(sessionId: string, key: string): void {
    this.held.set(sessionId + key, false);
  }

  private moveHolder(key: string, from: string, to: string): void {
    if (from === to) return;
    if (from !== '') this.held.set(from + key, false);
    if (to !== '') this.held.set(to + key, true);
  }

  /** Records that `key` may not be locked again for `ms` after this txn is applied (Consul's lock-delay). */
  noteLockDelay(key: string, ms: number): void {
    this.delays.push({ key, ms });
  }

  lockDelays(): ReadonlyArray<{ readonly key: string; readonly ms: number }> {
    return this.delays;
  }

  putSession(session: Session): void {
    this.sessions.set(session.ID, session);
  }

  removeSession(id: string): void {
    this.sessions.set(id, null);
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
    if (table === 'nodes' || table === 'services' || table === 'checks') this.catalogTables.add(table);
  }

  changes(): ChangeSet {
    return { keys: this.changedKeys, prefixes: this.deletedPrefixes, sessions: this.sessions.size > 0, catalogTables: this.catalogTables };
  }

  /** This txn as a reader, for a txn layered on top of it (one entry of a batch over the batch). */
  asReader(): KvReader {
    return {
      getEntry: (key) => this.get(key),
      listEntries: (prefix) => this.list(prefix),
      listKeys: (prefix) => this.listKeys(prefix),
      listTombstones: (prefix) => this.tombstones(prefix),
      tableIndex: (table) => this.tableIndex(table as KvTableName),
      getSession: (id) => this.getSession(id),
      listSessions: () => this.listSessions(),
      listHeldKeys: (sessionId) => this.listHeldKeys(sessionId),
      catalogRows: (prefix) => this.catalogRows(prefix),
    };
  }

  /** Folds this txn's writes into `parent` (the txn it was layered on), later writes winning. */
  mergeInto(parent: KvTxn): void {
    for (const [key, e] of this.entries) parent.entries.set(key, e);
    for (const [key, index] of this.stones) parent.stones.set(key, index);
    for (const [table, index] of this.indexes) parent.indexes.set(table, index);
    for (const key of this.changedKeys) parent.changedKeys.add(key);
    parent.deletedPrefixes.push(...this.deletedPrefixes);
    for (const [id, session] of this.sessions) parent.sessions.set(id, session);
    for (const [row, held] of this.held) parent.held.set(row, held);
    parent.delays.push(...this.delays);
    for (const [name, row] of this.catalog) parent.catalog.set(name, row);
    for (const t of this.catalogTables) parent.catalogTables.add(t);
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
    for (const [id, session] of this.sessions) {
      const dbKey = tableKey(Table.sessions, id);
      ops.push(session === null ? { type: 'del', key: dbKey } : { type: 'put', key: dbKey, value: encodeSessionRecord(session) });
    }
    for (const [name, row] of this.catalog) {
      const dbKey = tableKey(Table.catalog, name);
      ops.push(row === null ? { type: 'del', key: dbKey } : { type: 'put', key: dbKey, value: encodeCatalogRow(row) });
    }
    for (const [row, held] of this.held) {
      const dbKey = tableKey(Table.sessionKeys, row);
      ops.push(held ? { type: 'put', key: dbKey, value: emptyValue } : { type: 'del', key: dbKey });
    }
    for (const [table, index] of this.indexes) {
      ops.push({ type: 'put', key: tableKey(Table.index, table), value: encodeIndexRecord({ Key: table, Value: index }) });
    }
    ops.push({ type: 'put', key: metaAppliedKey, value: encodeApplied(applied) });
    return ops;
  }
}
