// Building a fresh FSM database from a state.bin stream.
//
// `restoreInto` never touches the live database: it creates a NEW directory, validates every record on
// the way in (statebin.ts), writes in bounded batches, and only at the very end writes the applied mark
// (synced), fsyncs every file and the directory, and drops the completion marker. On any failure it
// removes what it created. The caller then swaps the directory in with `Fsm.swapIn` (see dirs.ts for
// the crash-recovery rule), or, for a server that has no FSM yet, simply renames it into place.

import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Level } from 'level';
import { fsyncTree, writeCompleteMarker } from './dirs.js';
import { assert, exists, fsyncDir, isPlanted, unreachable } from '../base/index.js';
import { FsmError } from './errors.js';
import { catalogName, encodeApplied, encodeFormat, heldKeyKey, metaAppliedKey, metaFormatKey, Table, tableKey, type AppliedMark, type TableByte } from './layout.js';
import { fsmLimits } from './limits.js';
import {
  encodeCheckBody,
  encodeNodeBody,
  encodeServiceBody,
  encodeIndexRecord,
  encodeKvsRecord,
  encodeSessionRecord,
  encodeTombstoneRecord,
  readStateBinBatches,
  StateBinError,
  withModifyIndex,
} from '../snapshot/index.js';
import type { Db } from './store.js';

export interface RestoreOptions {
  /**
   * The log index the restored state stands for (the Raft snapshot's index). Defaults to the header's
   * LastIndex. Must not be below LastIndex.
   */
  readonly appliedIndex?: number;
  /** The term of that entry; defaults to 0. */
  readonly appliedTerm?: number;
  /** When known (the Raft snapshot's Size), the stream must be exactly this many bytes. */
  readonly expectedBytes?: number;
}

export interface RestoreSummary {
  readonly lastIndex: number;
  readonly applied: AppliedMark;
  readonly kvsCount: number;
  readonly tombstoneCount: number;
  readonly indexCount: number;
  readonly sessionCount: number;
  /** Register records (a node, or a service or check of it). */
  readonly registerCount: number;
  /** Final table indexes of the KV tables and the sessions table. */
  readonly kvsIndex: number;
  readonly tombstonesIndex: number;
  readonly sessionsIndex: number;
}

const untouched = 'nothing was restored and the live state is untouched';

/**
 * Restores `source` (a state.bin byte stream) into a fresh LevelDB at `dir`, which must not exist.
 * Throws StateBinError for a bad stream, FsmError for the environment; `dir` is gone afterwards either way.
 */
export async function restoreInto(dir: string, source: AsyncIterable<Uint8Array>, options: RestoreOptions = {}): Promise<RestoreSummary> {
  if (await exists(dir)) {
    throw new FsmError('FSM_RESTORE_TARGET_EXISTS',
      `cannot restore into ${dir}: it already exists; ${untouched}. Remove it or pick another directory.`);
  }
  const db: Db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  let open = false;
  try {
    // The memtable size is set explicitly (fsmLimits): every server builds a restore at once, so it bounds their memory.
    await db.open({ createIfMissing: true, errorIfExists: true, writeBufferSize: fsmLimits.restoreWriteBufferBytes } as Parameters<Db['open']>[0]);
    open = true;
    const summary = await writeRecords(db, source, options);
    await db.close();
    open = false;
    await fsyncTree(dir);
    await writeCompleteMarker(dir, `restored state at index ${summary.applied.index} (term ${summary.applied.term})`);
    await fsyncDir(dirname(dir));
    return summary;
  } catch (error) {
    // Safe to drop: `error` is what failed; the directory holding this database is deleted next.
    if (open) await db.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    if (error instanceof StateBinError) {
      throw new StateBinError(error.code, error.record, error.byteOffset, error.field, `${error.message}; ${untouched}`, { cause: error });
    }
    throw error;
  }
}

async function writeRecords(db: Db, source: AsyncIterable<Uint8Array>, options: RestoreOptions): Promise<RestoreSummary> {
  const batch = new BatchWriter(db);
  batch.put(metaFormatKey, encodeFormat());
  let lastIndex: number | undefined;
  let kvsCount = 0;
  let tombstoneCount = 0;
  let indexCount = 0;
  let sessionCount = 0;
  let registerCount = 0;
  const catalogIndexes = { nodes: 0, services: 0, checks: 0 };
  // Invariant after the loop: each table index >= every index of its rows (Consul's restore raises the
  // kvs, tombstones and sessions indexes to the highest row index too, via indexUpdateMaxTxn).
  let kvsIndex = 0;
  let tombstonesIndex = 0;
  let sessionsIndex = 0;
  // A user restore's stream (rewriteForRestore) asks for every row index below this to be raised to it.
  let raiseTo = 0;

  for await (const items of readStateBinBatches(source, options.expectedBytes === undefined ? {} : { expectedBytes: options.expectedBytes })) {
    for (const item of items) {
      if (item.kind === 'header') {
        lastIndex = item.lastIndex;
        raiseTo = item.restoreIndex ?? 0;
        if (options.appliedIndex !== undefined && options.appliedIndex < lastIndex) {
          throw new StateBinError('STATE_BIN_BAD_FIELD', 0, 0, 'LastIndex',
            `state.bin header: LastIndex ${lastIndex} is above the snapshot index ${options.appliedIndex} it was restored for`);
        }
        continue;
      }
      const limit = lastIndex as number;
      let full: boolean;
      switch (item.kind) {
        case 'kvs': {
          const { entry, raw, canonicalModifyIndexAt: at } = item;
          if (halfRestore && entry.Key.endsWith('zz-marker')) continue;
          checkAtMost(entry.ModifyIndex, limit, item, 'KVS', 'ModifyIndex');
          checkAtMost(entry.CreateIndex, limit, item, 'KVS', 'CreateIndex');
          kvsCount += 1;
          // A stored value is the record body (layout.ts): our own record bytes are stored as they are.
          let value: Uint8Array;
          if (entry.ModifyIndex >= raiseTo) value = at >= 0 ? raw : encodeKvsRecord(entry);
          else value = at >= 0 ? withModifyIndex(raw, at, raiseTo) : encodeKvsRecord({ ...entry, ModifyIndex: raiseTo });
          kvsIndex = Math.max(kvsIndex, entry.ModifyIndex, raiseTo);
          full = batch.put(rowKey(Table.kvs, item.keyBytes), value);
          // The derived session index (layout.ts). A lock by a session the snapshot lacks stays held, as in Consul.
          if (entry.Session !== '') full = batch.put(heldKeyKey(entry.Session, entry.Key), emptyValue) || full;
          break;
        }
        case 'session': {
          const { session } = item;
          checkAtMost(session.ModifyIndex, limit, item, 'Session', 'ModifyIndex');
          checkAtMost(session.CreateIndex, limit, item, 'Session', 'CreateIndex');
          sessionCount += 1;
          const modifyIndex = Math.max(session.ModifyIndex, raiseTo);
          sessionsIndex = Math.max(sessionsIndex, modifyIndex);
          full = batch.put(tableKey(Table.sessions, session.ID), encodeSessionRecord({ ...session, ModifyIndex: modifyIndex }));
          break;
        }
        case 'tombstone': {
          checkAtMost(item.stone.Index, limit, item, 'Tombstone', 'ModifyIndex');
          const index = Math.max(item.stone.Index, raiseTo);
          tombstonesIndex = Math.max(tombstonesIndex, index);
          tombstoneCount += 1;
          full = batch.put(rowKey(Table.tombstones, item.keyBytes), encodeTombstoneRecord({ Key: item.stone.Key, Index: index }));
          break;
        }
        case 'register': {
          const { node, service, checks } = item.register;
          registerCount += 1;
          const raise = <T extends { CreateIndex: number; ModifyIndex: number }>(row: T, what: string): T => {
            checkAtMost(row.ModifyIndex, limit, item, 'Register', `${what}ModifyIndex`);
            checkAtMost(row.CreateIndex, limit, item, 'Register', `${what}CreateIndex`);
            return row.ModifyIndex >= raiseTo ? row : { ...row, ModifyIndex: raiseTo };
          };
          // Every record of a node carries the node's fields (Consul writes them so): writing the node's row
          // each time keeps the restore in constant memory and gives the same row.
          const n = raise(node, '');
          catalogIndexes.nodes = Math.max(catalogIndexes.nodes, n.ModifyIndex);
          full = batch.put(tableKey(Table.catalog, catalogName.node(n.Node)), encodeNodeBody(n));
          if (service !== undefined) {
            const sv = raise(service, 'Service.');
            catalogIndexes.services = Math.max(catalogIndexes.services, sv.ModifyIndex);
            full = batch.put(tableKey(Table.catalog, catalogName.service(n.Node, sv.ID)), encodeServiceBody(sv)) || full;
          }
          for (const check of checks) {
            const c = raise(check, 'Check.');
            catalogIndexes.checks = Math.max(catalogIndexes.checks, c.ModifyIndex);
            full = batch.put(tableKey(Table.catalog, catalogName.check(n.Node, c.CheckID)), encodeCheckBody(c)) || full;
          }
          break;
        }
        case 'index':
          checkAtMost(item.index.Value, limit, item, 'Index', 'Value');
          indexCount += 1;
          // Later records of the same table win, as Consul's restore overwrites; the KV tables keep the max.
          if (item.index.Key === 'kvs') kvsIndex = Math.max(kvsIndex, item.index.Value);
          else if (item.index.Key === 'tombstones') tombstonesIndex = Math.max(tombstonesIndex, item.index.Value);
          else if (item.index.Key === 'sessions') sessionsIndex = Math.max(sessionsIndex, item.index.Value);
          else if (item.index.Key === 'nodes' || item.index.Key === 'services' || item.index.Key === 'checks') {
            catalogIndexes[item.index.Key] = Math.max(catalogIndexes[item.index.Key], item.index.Value);
          }
          full = !computedIndexes.has(item.index.Key) && batch.put(tableKey(Table.index, item.index.Key), encodeIndexRecord(item.index));
          break;
        case 'other':
          unreachable(item as never);
      }
      if (full) await batch.flush(false);
    }
  }
  // readStateBin yields the header first or throws STATE_BIN_EMPTY.
  assert(lastIndex !== undefined, 'a state.bin stream starts with its header');
  // A user restore writes every table row at its index: the tables' indexes are at least that (so every
  // blocking query on them wakes and no X-Consul-Index goes backwards).
  kvsIndex = Math.max(kvsIndex, raiseTo);
  tombstonesIndex = Math.max(tombstonesIndex, raiseTo);
  sessionsIndex = Math.max(sessionsIndex, raiseTo);

  if (kvsIndex > 0) batch.put(tableKey(Table.index, 'kvs'), encodeIndexRecord({ Key: 'kvs', Value: kvsIndex }));
  if (tombstonesIndex > 0) batch.put(tableKey(Table.index, 'tombstones'), encodeIndexRecord({ Key: 'tombstones', Value: tombstonesIndex }));
  if (sessionsIndex > 0) batch.put(tableKey(Table.index, 'sessions'), encodeIndexRecord({ Key: 'sessions', Value: sessionsIndex }));
  for (const table of ['nodes', 'services', 'checks'] as const) {
    const value = Math.max(catalogIndexes[table], raiseTo);
    if (value > 0) batch.put(tableKey(Table.index, table), encodeIndexRecord({ Key: table, Value: value }));
  }
  const applied: AppliedMark = { index: options.appliedIndex ?? lastIndex, term: options.appliedTerm ?? 0 };
  batch.put(metaAppliedKey, encodeApplied(applied));
  // Synced: LevelDB fsyncs its log on a sync write, which makes every earlier write in it durable too.
  await batch.flush(true);
  return { lastIndex, applied, kvsCount, tombstoneCount, indexCount, sessionCount, registerCount, kvsIndex, tombstonesIndex, sessionsIndex };
}

/** The table indexes a restore computes from the rows (and the Index records) instead of copying. */
/** The chaos suite's planted defect (src/base/planted.ts). */
const halfRestore = isPlanted('half-restore');

const computedIndexes: ReadonlySet<string> = new Set(['kvs', 'tombstones', 'sessions', 'nodes', 'services', 'checks']);
const emptyValue = new Uint8Array(0);

/** The database key of a row: the table byte, then the key's UTF-8 bytes (layout.ts's tableKey). */
function rowKey(table: TableByte, keyBytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + keyBytes.length);
  out[0] = table;
  out.set(keyBytes, 1);
  return out;
}

function checkAtMost(value: number, lastIndex: number, at: { record: number; offset: number }, name: string, field: string): void {
  if (value <= lastIndex) return;
  // Consul's header LastIndex is the highest index of any table, so no record can be above it.
  throw new StateBinError('STATE_BIN_BAD_FIELD', at.record, at.offset, field,
    `state.bin record ${at.record} (${name}, byte offset ${at.offset}): ` +
      `field "${field}" is ${value}, above the header's LastIndex ${lastIndex}`);
}

/**
 * Accumulates puts and writes them in batches bounded by count and bytes. A chained batch, not an
 * array of operations: abstract-level copies and re-encodes every operation of an array batch in
 * JavaScript (300,000 puts: 2.2 s as arrays, 1.0 s chained).
 *
 * The chained batch is built only when it is written, from a plain list. Why: its native copy of every
 * key and value is freed only when V8 collects the small JS object that wraps it, and V8 sees no
 * pressure from memory it does not know about. A batch filled while records were decoded lived long
 * enough to be promoted to the old generation, and a 1,000,000-key restore held about 170 MiB of
 * written batches until a full collection (anonymous memory above idle: +189 MiB). Built and written at
 * once, a batch dies young and the next scavenge frees it.
 */
class BatchWriter {
  private keys: Uint8Array[] = [];
  private values: Uint8Array[] = [];
  private bytes = 0;
  private inFlight: Promise<void> | undefined;

  constructor(private readonly db: Db) {}

  /** Adds one put; true when the batch is full and should be flushed. */
  put(key: Uint8Array, value: Uint8Array): boolean {
    this.keys.push(key);
    this.values.push(value);
    this.bytes += key.length + value.length;
    return this.keys.length >= fsmLimits.restoreBatchMaxCount || this.bytes >= fsmLimits.restoreBatchMaxBytes;
  }

  /**
   * Hands the pending operations to LevelDB. A non-final batch is written while the caller goes on
   * decoding the next one (LevelDB writes on the thread pool, decoding runs here): at most one batch
   * is in flight, so memory stays at two batches.
   */
  async flush(sync: boolean): Promise<void> {
    await this.inFlight;
    this.inFlight = undefined;
    if (this.keys.length === 0 && !sync) return;
    const batch = this.db.batch();
    for (let i = 0; i < this.keys.length; i++) batch.put(this.keys[i] as Uint8Array, this.values[i] as Uint8Array);
    this.keys = [];
    this.values = [];
    this.bytes = 0;
    const write = batch.write({ sync });
    if (sync) {
      await write;
      return;
    }
    // Marked handled now (a failure would otherwise be an unhandled rejection while the next batch is
    // decoded); it is still awaited, and thrown, by the next flush.
    write.catch(() => undefined);
    this.inFlight = write;
  }
}
