// A point-in-time state.bin stream of the FSM database.
//
// Point in time: the stream reads through ONE LevelDB iterator over the whole database. classic-level
// takes the iterator's implicit snapshot synchronously when `db.iterator()` is called (binding.cc:
// BaseIterator's constructor calls `NewSnapshot()` before `NewIterator()`; classic-level README,
// "Reading From Snapshots"), so applies that finish after that call are invisible to the stream, however
// long it takes to drain. Because the table bytes sort meta < catalog < KVS < Session < Tombstone <
// Index < derived tables (layout.ts), the same iterator yields the applied mark first (it becomes the
// header's LastIndex), then the records (the catalog's as Register records, in Consul's order: a node,
// its services, its checks), and the stream ends at the first derived row.
//
// Bounded memory: entries are pulled in small batches (the next while one is copied out) and coalesced
// into chunks of about fsmLimits.snapshotChunkBytes; nothing else is held.
//
// Keys are read as strings (the iterator's keyEncoding is 'utf8'), values as bytes. Every key below the
// derived tables is a table byte below 0x40 and UTF-8 text (layout.ts), so the string is exact; only the
// table byte and a catalog key's NUL are looked at, and what goes out is the stored value. classic-level
// makes a string per key faster than a buffer: draining 1,000,000 rows took 1.4-1.8 us a row with
// string keys against 2.3-2.9 with byte keys (tmp script on this machine, same database).

import type { Iterator as LevelIterator } from 'level';
import { assert } from '../base/index.js';
import { FsmError } from './errors.js';
import { decodeApplied, decodeFormat, firstDerivedTable, layoutVersion, metaAppliedKey, metaFormatKey, Table, type AppliedMark } from './layout.js';
import { fsmLimits } from './limits.js';
import {
  checkBodyHead,
  dirEntryBodyHead,
  encodeStateBinHeader,
  indexBodyHead,
  nodeBodyHead,
  RecordType,
  registerRecordWith,
  serviceBodyHead,
  sessionBodyHead,
} from '../snapshot/index.js';
import type { Db } from './store.js';

type DbIterator = LevelIterator<Db, string, Uint8Array>;
type DbEntry = [string, Uint8Array];

const pullBatchCount = 1000;

/** The iterator a snapshot reads from: over the whole database, created by `db.iterator()` with
 *  `snapshotIteratorOptions`. */
export type SnapshotIterator = DbIterator;

/** Options of the iterator a snapshot reads: string keys, and it ends before the derived tables. */
export const snapshotIteratorOptions = {
  keyEncoding: 'utf8',
  lt: String.fromCharCode(firstDerivedTable),
  highWaterMarkBytes: fsmLimits.snapshotReadAheadBytes,
} as const;

const decoder = new TextDecoder('utf-8', { fatal: true });
const metaAppliedName = decoder.decode(metaAppliedKey);
const metaFormatName = decoder.decode(metaFormatKey);

/**
 * Wraps `iterator`, which the caller created over the whole database at the snapshot point (creating it
 * takes the LevelDB snapshot). The applied mark for the header is read from that same iterator, so
 * header and records always describe one state, even if an apply was in flight.
 */
export async function openStateBinSnapshot(
  iterator: DbIterator,
  onClosed: (snapshot: StateBinSnapshot) => void,
): Promise<StateBinSnapshot> {
  try {
    const first = (await iterator.nextv(pullBatchCount)) as DbEntry[];
    let applied: AppliedMark = { index: 0, term: 0 };
    let metaCount = 0;
    for (const [key, value] of first) {
      if (key.charCodeAt(0) !== Table.meta) break;
      metaCount += 1;
      if (key === metaAppliedName) applied = decodeApplied(value);
      else if (key === metaFormatName) assert(decodeFormat(value) === layoutVersion, 'the database layout was checked at open');
      else throw new FsmError('FSM_CORRUPT', 'FSM database holds an unknown meta key');
    }
    // The meta table has two keys, far fewer than one pull, so a full pull of meta keys is impossible.
    assert(metaCount < pullBatchCount, 'the meta keys fit in the first pull');
    return new StateBinSnapshot(iterator, applied, first.slice(metaCount), onClosed);
  } catch (error) {
    await iterator.close();
    throw error;
  }
}

export class StateBinSnapshot implements AsyncIterable<Uint8Array> {
  private started = false;
  private abortError: FsmError | undefined;
  private closed = false;

  constructor(
    private readonly iterator: DbIterator,
    /** The last applied entry at the snapshot point: the Raft snapshot's index and term. */
    readonly applied: AppliedMark,
    /** Entries already pulled from `iterator` while reading the meta keys. */
    private pending: DbEntry[],
    private readonly onClosed: (snapshot: StateBinSnapshot) => void,
  ) {}

  get index(): number {
    return this.applied.index;
  }

  get term(): number {
    return this.applied.term;
  }

  /** Makes the stream fail with `error` (used when a restore or close replaces the database). */
  abort(error: FsmError): void {
    this.abortError ??= error;
  }

  /** Releases the iterator (and its LevelDB snapshot). Safe to call more than once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    this.onClosed(this);
    await this.iterator.close();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    assert(!this.started, 'a snapshot stream is consumed once');
    this.started = true;
    try {
      yield* this.stream();
    } catch (error) {
      if (this.abortError !== undefined) throw this.abortError;
      throw error;
    } finally {
      await this.close();
    }
  }

  private async *stream(): AsyncGenerator<Uint8Array> {
    if (this.closed) throw this.abortError ?? new FsmError('FSM_SNAPSHOT_ABORTED', 'snapshot stream was closed before it was read');
    // Records are copied into one chunk buffer (no per-record allocation); a chunk is handed out when
    // the next record would not fit, and a record larger than a chunk goes out in a chunk of its own.
    const chunkBytes = fsmLimits.snapshotChunkBytes;
    let chunk = Buffer.allocUnsafe(chunkBytes);
    let at = 0;
    const header = encodeStateBinHeader(this.applied.index);
    chunk.set(header, 0);
    at = header.length;
    let entries = this.pending;
    this.pending = [];
    let derived = false;
    /** The catalog node whose services and checks come next: its key (ending in NUL) and its row. */
    let node: { prefix: string; body: Uint8Array } | undefined;
    while (entries.length > 0 && !derived) {
      // The next pull runs on the thread pool while this one's records are copied out (about 15% off a
      // save). A stream stopped before it is awaited leaves it to close(), which waits for it.
      const ahead = this.iterator.nextv(pullBatchCount) as Promise<DbEntry[]>;
      ahead.catch(() => undefined);
      for (const [key, value] of entries) {
        const table = key.charCodeAt(0);
        if (table >= firstDerivedTable) {
          derived = true;
          break;
        }
        let type: number = table;
        let record = value;
        if (table === Table.catalog) {
          // A node's row, then its services and checks (layout.ts): each goes out as a Register record.
          type = RecordType.Register;
          const nul = key.indexOf('\u0000', 1);
          if (nul < 0) throw new FsmError('FSM_CORRUPT', 'FSM database holds a catalog key without its node separator');
          if (nul === key.length - 1) {
            assert(value[0] === nodeBodyHead, 'a stored node row is a node-only Register body');
            node = { prefix: key, body: value };
          } else {
            // The node's own row sorts first; a service or check without it would be a corrupt database.
            if (node === undefined || node.prefix.length !== nul + 1 || !key.startsWith(node.prefix)) {
              throw new FsmError('FSM_CORRUPT', 'FSM database holds a service or check of a node it does not hold');
            }
            const isService = key.charCodeAt(nul + 1) === 1;
            assert(value[0] === (isService ? serviceBodyHead : checkBodyHead), 'a stored service or check row is its body');
            record = registerRecordWith(node.body, isService ? 'Service' : 'Check', value);
          }
        } else {
          if (table !== Table.kvs && table !== Table.sessions && table !== Table.tombstones && table !== Table.index) {
            throw new FsmError('FSM_CORRUPT', `FSM database holds a key in unknown table 0x${table.toString(16)}`);
          }
          // Pairing check with records.ts: what we stored is the record body we wrote.
          const head = table === Table.index ? indexBodyHead : table === Table.sessions ? sessionBodyHead : dirEntryBodyHead;
          assert(value[0] === head, 'a stored value is a record body of its table');
        }
        const size = 1 + record.length;
        if (at + size > chunkBytes && at > 0) {
          // Handed out whole: the consumer may keep it, so the next chunk is a new buffer.
          yield chunk.subarray(0, at);
          chunk = Buffer.allocUnsafe(Math.max(chunkBytes, size));
          at = 0;
        }
        chunk[at] = type;
        chunk.set(record, at + 1);
        at += size;
      }
      if (this.abortError !== undefined) throw this.abortError;
      if (!derived) entries = await ahead;
    }
    if (at > 0) yield chunk.subarray(0, at);
  }
}
