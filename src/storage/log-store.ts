// The Raft log, hard state and log base of one server, in LevelDB.
//
// Model. The log is a base (the SnapshotMeta it starts after; index 0 and no meta on a server that never
// had one) and the entries first .. lastIndex, contiguous, terms never decreasing. Normally first is
// base.index + 1. After a compaction that keeps trailing entries (hashicorp/raft's TrailingLogs, so a
// follower a little behind catches up from the log rather than a snapshot, also after a restart),
// first is at or below the base: the start record holds it, the entries run through the base at least,
// and the one at base.index has the base's term.
// Invariant: the keys on disk are exactly that: no entry below first, no gap.
// Every write keeps the invariant within a single LevelDB batch, and load() checks it.
//
// Durability. One call = one LevelDB batch: LevelDB applies a batch atomically (a WAL record either
// replays whole or not at all), so even an unsynced batch lost in a crash leaves the previous state,
// which satisfies the invariant too. With `sync: true` the batch is fsynced before the promise resolves.
//
// Range deletes. classic-level's db.clear({gte, lte}) runs outside any batch, so a crash between a clear
// and the batch that follows it would leave a base with no entries after it, or a hole. Instead the
// deletions go into the same batch as del ops. Because of the invariant, the stored keys are exactly
// base.index+1 .. lastIndex (cached in memory and checked at open), so the keys to delete are computed,
// not discovered by iterating. That costs one ~10-byte tombstone per deleted entry in the batch:
// replacing a log of 10,000 entries (hashicorp/raft's TrailingLogs default) writes ~100 KB of
// tombstones, once per snapshot install. A design with an "epoch" in every key would make replacement
// O(1) but would need a separate, crash-safe garbage collection of old epochs; not worth it here.

import { Level } from 'level';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

import type { Entry, HardState, Index, SnapshotMeta } from '../raft/index.js';
import {
  baseKey,
  decodeBase,
  decodeEntry,
  decodeFormat,
  decodeHardState,
  describeKey,
  encodeBase,
  encodeEntry,
  encodeFormat,
  encodeHardState,
  encodeStart,
  decodeStart,
  startKey,
  readableLogFormats,
  entryKey,
  entryKeysFrom,
  entryKeysTo,
  entryProblem,
  formatKey,
  hardStateKey,
  indexOfEntryKey,
  logFormatVersion,
  sameConfiguration,
  snapshotMetaProblem,
  hardStateProblem,
  type Decoded,
} from './codec.js';
import { assert, writeOps } from '../base/index.js';
import { StorageError, describeCause } from './errors.js';
import { fsyncDir } from './files.js';

type Db = Level<Buffer, Buffer>;
type BatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

/** What an earlier run of this server made durable; shaped like the core's InitialState. */
export interface LogState {
  /** { term: 0, vote: '' } on a server that never stored one. */
  readonly hardState: HardState;
  /** The log's base; absent when the log starts at index 1. */
  readonly snapshot?: SnapshotMeta;
  /**
   * The stored entries, contiguous, in index order: from just after the base or, when trailing entries
   * were kept, from at or below it (as the core's InitialState allows).
   */
  readonly entries: readonly Entry[];
}

/**
 * Step 1 of a Ready round (see `Ready` in src/raft/types.ts), applied in this order in one batch:
 * `snapshotBase`, then `truncateFrom`, then `entries`, then `hardState`.
 */
export interface PersistRound {
  /**
   * The log restarts after this snapshot: every stored entry is deleted and this becomes the base.
   * Its bytes must already be durable in the snapshot store (a crash right after this batch must not
   * leave a base whose state exists nowhere).
   */
  readonly snapshotBase?: SnapshotMeta;
  /** Delete every stored entry with index >= this. Must be above the base index. */
  readonly truncateFrom?: Index;
  /**
   * Contiguous entries to store, overwriting any stored entry with the same index. The first must be at
   * most lastIndex + 1 (after the truncation) and above the base, so the log stays gapless.
   */
  readonly entries: readonly Entry[];
  /** The new term and vote. Terms never decrease; within a term the vote, once cast, never changes. */
  readonly hardState?: HardState;
  /**
   * fsync before resolving (the runtime's `mustSync`). This makes durable the batch and every earlier
   * one, including unsynced compactions.
   */
  readonly sync: boolean;
}

export interface CompactOptions {
  /** fsync the batch before resolving. Default false: losing a compaction only keeps entries longer. */
  readonly sync?: boolean;
  /**
   * Keep the stored entries from this index on, even at or below the base (trailing entries). Default
   * base.index + 1: nothing at or below the base is kept. Entries already deleted are not brought back.
   */
  readonly keepFrom?: Index;
}

export interface ReadOptions {
  /**
   * Return only as many entries as fit in this many data bytes, but always at least one. Default
   * unlimited. Mirrors the core's maxMessageBytes.
   */
  readonly maxBytes?: number;
}

const emptyHardState: HardState = { term: 0, vote: '' };

/** What the store knows without reading the disk. Invariant: mirrors the disk after every batch. */
interface Cache {
  readonly hardState: HardState;
  readonly base: SnapshotMeta | undefined;
  /** Index of the first stored entry: base index + 1, or lower while trailing entries are kept. */
  readonly first: Index;
  /** Index of the last stored entry; the base index when there is none. */
  readonly lastIndex: Index;
  /** Term of the entry at lastIndex (the base term when there is none); undefined until read. */
  readonly lastTerm: number | undefined;
  /** The stored config entries, ascending by index: lets compact() check the meta it is given. */
  readonly configIndexes: readonly Index[];
}

/**
 * The durable log of one server. Calls may overlap: writes (persist, compact, load) run one at a time in
 * call order; reads (entries) run at once against a LevelDB snapshot. After a write fails the store
 * refuses every call: its state on disk is unknown and the node must stop (a failed write of the log,
 * term or vote is never retried).
 */
export class LogStore {
  /** The LevelDB directory, absolute. */
  readonly dir: string;
  private readonly db: Db;
  private cache: Cache;
  /** Serializes writes. Always resolves (errors are reported to each call's own promise). */
  private tail: Promise<unknown> = Promise.resolve();
  private unusable: StorageError | undefined;
  private closed = false;
  /** Writes started so far, and whether one is in flight: lets a read tell a race from a lost entry. */
  private writeCount = 0;
  private writing = false;

  private constructor(dir: string, db: Db, cache: Cache) {
    this.dir = dir;
    this.db = db;
    this.cache = cache;
  }

  /**
   * Opens (creating if missing) the log store in directory `dir` and checks everything in it: the same
   * validation as load(), without keeping the entries. Rejects with LOG_OPEN_FAILED when another process
   * holds the directory, LOG_CORRUPT when the contents fail validation.
   */
  static async open(dir: string): Promise<LogStore> {
    const path = resolve(dir);
    const created = !existsSync(path);
    const db: Db = new Level<Buffer, Buffer>(path, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    try {
      await db.open({ createIfMissing: true });
    } catch (cause) {
      throw openError(path, cause);
    }
    try {
      if (created) await fsyncDir(dirname(path));
      const cache = await scan(db, path, undefined);
      return new LogStore(path, db, cache);
    } catch (err) {
      // Safe to drop: the open failed and `err` says why; a close failure on top would only hide it.
      await db.close().catch(() => undefined);
      throw err;
    }
  }

  /** The first stored index: base index + 1, or lower while trailing entries are kept. */
  firstIndex(): Index {
    return this.cache.first;
  }

  /** The last stored index, or the base index when no entry is stored. */
  lastIndex(): Index {
    return this.cache.lastIndex;
  }

  /** The log base, or undefined when the log starts at index 1. */
  base(): SnapshotMeta | undefined {
    return this.cache.base;
  }

  hardState(): HardState {
    return this.cache.hardState;
  }

  /** Reads and validates everything; the stored entries, as the core's InitialState wants them. */
  load(): Promise<LogState> {
    return this.serialized(async () => {
      const entries: Entry[] = [];
      this.cache = await scan(this.db, this.dir, entries);
      const { hardState, base } = this.cache;
      return base === undefined ? { hardState, entries } : { hardState, snapshot: base, entries };
    });
  }

  /** Writes one round as one LevelDB batch; see PersistRound for the order and the preconditions. */
  persist(round: PersistRound): Promise<void> {
    return this.serialized(async () => {
      const ops: BatchOp[] = [];
      let next = this.cache;
      if (round.snapshotBase !== undefined) next = this.replaceBase(next, round.snapshotBase, ops);
      if (round.truncateFrom !== undefined) next = this.truncate(next, round.truncateFrom, ops);
      if (round.entries.length > 0) next = await this.append(next, round.entries, ops);
      if (round.hardState !== undefined) next = setHardState(next, round.hardState, ops);
      if (ops.length === 0 && !round.sync) return;
      // A synced batch also makes every earlier unsynced one durable (they precede it in LevelDB's
      // write-ahead log), so a synced round with nothing new still writes: the format record again.
      if (ops.length === 0) ops.push({ type: 'put', key: formatKey, value: encodeFormat() });
      await this.write(ops, round.sync, next);
    });
  }

  /**
   * Makes `base` the log's base and deletes the entries below `options.keepFrom` (default: up to
   * base.index), keeping the rest.
   * `base` describes the state machine at base.index, normally the meta of a snapshot just taken (the
   * store needs the configuration in force there, which it cannot know when it came from a bootstrap
   * configuration rather than an entry). Its index must be stored (<= lastIndex()) and its term and
   * configuration must agree with the stored entries. A base at or below the current one is a no-op.
   */
  compact(base: SnapshotMeta, options: CompactOptions = {}): Promise<void> {
    return this.serialized(async () => {
      const current = this.cache;
      const oldIndex = current.base?.index ?? 0;
      if (base.index <= oldIndex) return;
      const keepFrom = options.keepFrom ?? base.index + 1;
      assert(Number.isSafeInteger(keepFrom) && keepFrom >= 1, `compact keepFrom ${keepFrom} is a positive integer`);
      assert(snapshotMetaProblem(base) === undefined, `compact base is valid: ${snapshotMetaProblem(base)}`);
      assert(base.index <= current.lastIndex, `compact to ${base.index} <= last stored index ${current.lastIndex}`);
      const at = await this.readEntry(base.index);
      assert(at.term === base.term, `compact base term ${base.term} = stored term ${at.term} at ${base.index}`);
      const configIndex = current.configIndexes.filter((i) => i <= base.index).at(-1);
      const expectedConfigIndex = configIndex ?? current.base?.configurationIndex ?? 0;
      assert(base.configurationIndex === expectedConfigIndex,
        `compact base configurationIndex ${base.configurationIndex} = ${expectedConfigIndex} (last config at or below ${base.index})`);
      const expectedConfig = configIndex === undefined ? current.base?.configuration : (await this.readEntry(configIndex)).config;
      assert(expectedConfig === undefined || sameConfiguration(expectedConfig, base.configuration),
        `compact base configuration equals the one in force at ${base.index}`);
      const first = Math.min(Math.max(current.first, keepFrom), base.index + 1);
      const ops: BatchOp[] = [];
      for (let i = current.first; i < first; i++) ops.push({ type: 'del', key: entryKey(i) });
      ops.push({ type: 'put', key: baseKey, value: encodeBase(base) });
      ops.push(startOp(first, base));
      await this.write(ops, options.sync ?? false, {
        ...current,
        base,
        first,
        lastTerm: base.index === current.lastIndex ? base.term : current.lastTerm,
        configIndexes: current.configIndexes.filter((i) => i >= first),
      });
    });
  }

  /**
   * Entries lo .. hi-1 (half-open, as etcd's Storage.Entries), read from one LevelDB snapshot. Rejects
   * with LOG_RANGE_UNAVAILABLE when lo is at or below the base (compacted: send a snapshot instead) or
   * hi is above lastIndex() + 1.
   */
  async entries(lo: Index, hi: Index, options: ReadOptions = {}): Promise<Entry[]> {
    this.checkUsable();
    assert(Number.isSafeInteger(lo) && Number.isSafeInteger(hi), `entries(${lo}, ${hi}) bounds are integers`);
    assert(lo <= hi, `entries(${lo}, ${hi}): lo <= hi`);
    this.checkRange(lo, hi);
    if (lo === hi) return [];
    const maxBytes = options.maxBytes ?? Infinity;
    const out: Entry[] = [];
    let bytes = 0;
    let stoppedAtMaxBytes = false;
    const writesBefore = this.writing ? -1 : this.writeCount;
    try {
      for await (const [key, value] of this.db.iterator({ gte: entryKey(lo), lt: entryKey(hi) })) {
        const e = this.decodeStoredEntry(key, value, lo + out.length);
        if (out.length > 0 && bytes + e.data.byteLength > maxBytes) {
          stoppedAtMaxBytes = true;
          break;
        }
        out.push(e);
        bytes += e.data.byteLength;
      }
    } catch (err) {
      if (!(err instanceof StorageError)) throw this.readError(`entries ${lo}..${hi - 1}`, err);
      this.checkUnchangedSince(writesBefore, lo, hi);
      throw err;
    }
    if (!stoppedAtMaxBytes && out.length < hi - lo) {
      this.checkUnchangedSince(writesBefore, lo, hi);
      const absent = lo + out.length;
      throw corrupt(this.dir, absent,
        `entry ${absent} is missing although the log holds ${this.firstIndex()}..${this.cache.lastIndex}`);
    }
    return out;
  }

  /** Waits for queued writes, then closes LevelDB. Later calls reject with LOG_UNUSABLE. */
  async close(): Promise<void> {
    await this.tail;
    if (this.closed) return;
    this.closed = true;
    this.unusable ??= new StorageError('LOG_UNUSABLE', `the Raft log store in ${this.dir} is closed`, { path: this.dir });
    await this.db.close();
  }

  // -------------------------------------------------------------------------------------------

  private serialized<T>(op: () => Promise<T>): Promise<T> {
    const run = this.tail.then(() => {
      this.checkUsable();
      return op();
    });
    // Safe to drop: the caller gets `run` and its error; the tail only orders the next operation.
    this.tail = run.catch(() => undefined);
    return run;
  }

  private checkUsable(): void {
    if (this.unusable !== undefined) throw this.unusable;
  }

  private checkRange(lo: Index, hi: Index): void {
    const first = this.firstIndex();
    if (lo < first) {
      throw new StorageError('LOG_RANGE_UNAVAILABLE',
        `entries from ${lo} were compacted: the log in ${this.dir} starts at ${first}; send a snapshot instead`,
        { path: this.dir, index: lo });
    }
    if (hi > this.cache.lastIndex + 1) {
      throw new StorageError('LOG_RANGE_UNAVAILABLE',
        `entries up to ${hi - 1} are not stored: the last entry in ${this.dir} is ${this.cache.lastIndex}`,
        { path: this.dir, index: hi - 1 });
    }
  }

  /**
   * A read found an entry missing or out of place. If a write overlapped the read, the log simply
   * changed under it (LOG_RANGE_UNAVAILABLE, the caller may retry); otherwise the disk lost entries.
   */
  private checkUnchangedSince(writesBefore: number, lo: Index, hi: Index): void {
    if (writesBefore === this.writeCount && !this.writing) return;
    this.checkRange(lo, hi);
    throw new StorageError('LOG_RANGE_UNAVAILABLE',
      `entries ${lo}..${hi - 1} changed while being read from ${this.dir} (a write ran at the same time); read again`,
      { path: this.dir, index: lo });
  }

  private replaceBase(c: Cache, base: SnapshotMeta, ops: BatchOp[]): Cache {
    assert(snapshotMetaProblem(base) === undefined, `snapshotBase is valid: ${snapshotMetaProblem(base)}`);
    for (let i = c.first; i <= c.lastIndex; i++) ops.push({ type: 'del', key: entryKey(i) });
    ops.push({ type: 'put', key: baseKey, value: encodeBase(base) });
    ops.push(startOp(base.index + 1, base));
    return { ...c, base, first: base.index + 1, lastIndex: base.index, lastTerm: base.term, configIndexes: [] };
  }

  private truncate(c: Cache, from: Index, ops: BatchOp[]): Cache {
    const baseIndex = c.base?.index ?? 0;
    assert(Number.isSafeInteger(from), `truncateFrom ${from} is an integer`);
    assert(from > baseIndex, `truncateFrom ${from} > base index ${baseIndex}`);
    if (from > c.lastIndex) return c;
    for (let i = from; i <= c.lastIndex; i++) ops.push({ type: 'del', key: entryKey(i) });
    const lastTerm = from - 1 === baseIndex ? c.base?.term ?? 0 : undefined;
    return { ...c, lastIndex: from - 1, lastTerm, configIndexes: c.configIndexes.filter((i) => i < from) };
  }

  private async append(c: Cache, entries: readonly Entry[], ops: BatchOp[]): Promise<Cache> {
    const baseIndex = c.base?.index ?? 0;
    const first = entries[0]!;
    const last = entries[entries.length - 1]!;
    assert(first.index > baseIndex, `first entry ${first.index} > base index ${baseIndex}`);
    assert(first.index <= c.lastIndex + 1, `first entry ${first.index} <= last index ${c.lastIndex} + 1 (no gap)`);
    let prev: { index: Index; term: number } = { index: first.index - 1, term: await this.termAt(c, first.index - 1) };
    for (const e of entries) {
      assert(entryProblem(e) === undefined, `entry ${e.index} is valid: ${entryProblem(e)}`);
      assert(e.index === prev.index + 1, `entry ${e.index} follows ${prev.index}`);
      assert(e.term >= prev.term, `entry ${e.index} term ${e.term} >= term ${prev.term} of entry ${prev.index}`);
      ops.push({ type: 'put', key: entryKey(e.index), value: encodeEntry(e) });
      prev = e;
    }
    if (last.index < c.lastIndex) {
      const after = await this.termAt(c, last.index + 1);
      assert(after >= last.term, `kept entry ${last.index + 1} term ${after} >= term ${last.term} of overwritten entry ${last.index}`);
    }
    const written = entries.filter((e) => e.kind === 'config').map((e) => e.index);
    const kept = c.configIndexes.filter((i) => i < first.index || i > last.index);
    return {
      ...c,
      lastIndex: Math.max(c.lastIndex, last.index),
      lastTerm: last.index >= c.lastIndex ? last.term : c.lastTerm,
      configIndexes: [...kept, ...written].sort((a, b) => a - b),
    };
  }

  /** Term of the entry at `index` in the log described by `c`, whose entries up to `index` are on disk. */
  private async termAt(c: Cache, index: Index): Promise<number> {
    const baseIndex = c.base?.index ?? 0;
    if (index === baseIndex) return c.base?.term ?? 0;
    if (index === c.lastIndex && c.lastTerm !== undefined) return c.lastTerm;
    return (await this.readEntry(index)).term;
  }

  private async readEntry(index: Index): Promise<Entry> {
    let value: Buffer | undefined;
    try {
      value = (await this.db.get(entryKey(index))) as Buffer | undefined;
    } catch (err) {
      throw this.readError(`entry ${index}`, err);
    }
    if (value === undefined) {
      throw corrupt(this.dir, index, `entry ${index} is missing although the log holds ${this.firstIndex()}..${this.cache.lastIndex}`);
    }
    return this.decodeStoredEntry(entryKey(index), value, index);
  }

  private decodeStoredEntry(key: Buffer, value: Buffer, expected: Index): Entry {
    const index = indexOfEntryKey(key);
    if (index !== expected) {
      throw corrupt(this.dir, expected, `entry ${expected} is missing: the next stored key is ${index ?? describeKey(key)}`);
    }
    return checked(this.dir, `entry ${index}`, index, decodeEntryAt(value, index));
  }

  /** Writes one batch and, once it is applied, makes `next` the cache. */
  private async write(ops: BatchOp[], sync: boolean, next: Cache): Promise<void> {
    this.writeCount++;
    this.writing = true;
    try {
      await writeOps(this.db, ops, sync);
      this.cache = next;
    } catch (cause) {
      this.unusable = new StorageError('LOG_WRITE_FAILED',
        `writing the Raft log in ${this.dir} failed (${describeCause(cause)}); its state on disk is unknown, ` +
          `so this store refuses further use. Stop the server, fix the disk (space, permissions, hardware) ` +
          `and restart it.`,
        { path: this.dir, cause });
      throw this.unusable;
    } finally {
      this.writing = false;
    }
  }

  private readError(what: string, cause: unknown): StorageError {
    return new StorageError('LOG_READ_FAILED',
      `reading ${what} from the Raft log in ${this.dir} failed (${describeCause(cause)})`,
      { path: this.dir, cause });
  }
}

/** The start record's op for a log whose first stored index is `first`: absent when it follows the base. */
function startOp(first: Index, base: SnapshotMeta): BatchOp {
  return first > base.index ? { type: 'del', key: startKey } : { type: 'put', key: startKey, value: encodeStart(first) };
}

function setHardState(c: Cache, h: HardState, ops: BatchOp[]): Cache {
  assert(hardStateProblem(h) === undefined, `hardState is valid: ${hardStateProblem(h)}`);
  assert(h.term >= c.hardState.term, `hardState term ${h.term} >= stored term ${c.hardState.term}`);
  const sameTerm = h.term === c.hardState.term;
  assert(!sameTerm || c.hardState.vote === '' || h.vote === c.hardState.vote,
    `vote in term ${h.term} stays ${JSON.stringify(c.hardState.vote)}, not ${JSON.stringify(h.vote)}`);
  ops.push({ type: 'put', key: hardStateKey, value: encodeHardState(h) });
  return { ...c, hardState: h };
}

function decodeEntryAt(value: Uint8Array, keyIndex: Index): Decoded<Entry> {
  const d = decodeEntry(value);
  if (!d.ok || d.value.index === keyIndex) return d;
  return { ok: false, problem: `the value holds entry ${d.value.index}` };
}

const recoveryAdvice =
  'The log store is damaged; nothing was changed. Restore this server from a healthy copy, or stop it, ' +
  'move its data directory aside and let it rejoin the cluster (it will receive a snapshot).';

function corrupt(dir: string, index: Index | undefined, what: string): StorageError {
  return new StorageError('LOG_CORRUPT', `Raft log in ${dir}: ${what}. ${recoveryAdvice}`,
    index === undefined ? { path: dir } : { path: dir, index });
}

function checked<T>(dir: string, what: string, index: Index | undefined, d: Decoded<T>): T {
  if (d.ok) return d.value;
  throw corrupt(dir, index, `${what} is invalid: ${d.problem}`);
}

function openError(dir: string, cause: unknown): StorageError {
  const inner = (cause as { cause?: { code?: string } }).cause;
  const locked = inner?.code === 'LEVEL_LOCKED';
  const advice = locked
    ? 'another process (or another LogStore in this one) has it open; stop that process or use another data directory'
    : 'check that the path is a directory this user can write and that it holds a LevelDB database';
  return new StorageError('LOG_OPEN_FAILED', `cannot open the Raft log store in ${dir}: ${advice} (${describeCause(inner ?? cause)})`,
    { path: dir, cause });
}

/**
 * Reads the whole store once, in key order, validating every record and the log invariant, and
 * returns the cache it implies. Collects the entries into `into` when given. A fresh (empty) store gets
 * its format record here.
 */
async function scan(db: Db, dir: string, into: Entry[] | undefined): Promise<Cache> {
  let format: number | undefined;
  let hardState = emptyHardState;
  let base: SnapshotMeta | undefined;
  let start: Index | undefined;
  let last: Entry | undefined;
  let count = 0;
  const configIndexes: Index[] = [];
  try {
    for await (const [key, value] of db.iterator()) {
      count++;
      if (key.equals(formatKey)) {
        format = checked(dir, 'the format record', undefined, decodeFormat(value));
      } else if (key.equals(hardStateKey)) {
        hardState = checked(dir, 'the hard state (term, vote)', undefined, decodeHardState(value));
      } else if (key.equals(baseKey)) {
        base = checked(dir, 'the log base (snapshot meta)', undefined, decodeBase(value));
      } else if (key.equals(startKey)) {
        start = checked(dir, 'the start record (first stored index)', undefined, decodeStart(value));
      } else {
        const index = indexOfEntryKey(key);
        if (index === undefined) throw corrupt(dir, undefined, `unknown key ${describeKey(key)}`);
        const e = checked(dir, `entry ${index}`, index, decodeEntryAt(value, index));
        if (last === undefined) checkStart(dir, base, start);
        checkNext(dir, base, start, last, e);
        if (e.kind === 'config') configIndexes.push(e.index);
        into?.push(e);
        last = e;
      }
    }
  } catch (err) {
    if (err instanceof StorageError) throw err;
    throw new StorageError('LOG_READ_FAILED', `reading the Raft log in ${dir} failed (${describeCause(err)})`,
      { path: dir, cause: err });
  }
  if (count === 0) {
    await db.put(formatKey, encodeFormat(), { sync: true });
    format = logFormatVersion;
  }
  if (format === undefined) throw corrupt(dir, undefined, 'the format record is missing (is this a Conclave log store?)');
  if (!readableLogFormats.includes(format)) {
    throw new StorageError('LOG_CORRUPT',
      `Raft log in ${dir} has format ${format}; this version of Conclave reads formats ${readableLogFormats.join(' and ')}. ` +
        'Run the Conclave version that wrote it, or move the directory aside.',
      { path: dir });
  }
  if (last === undefined) checkStart(dir, base, start);
  if (start !== undefined && (last?.index ?? 0) < (base?.index ?? 0)) {
    throw corrupt(dir, last === undefined ? start : last.index + 1,
      `the trailing entries from ${start} end at ${last?.index ?? 'none'}, below the log base ${base?.index ?? 0}`);
  }
  if (format !== logFormatVersion) await db.put(formatKey, encodeFormat(), { sync: true });
  return {
    hardState,
    base,
    first: start ?? (base?.index ?? 0) + 1,
    lastIndex: last?.index ?? base?.index ?? 0,
    lastTerm: last?.term ?? base?.term ?? 0,
    configIndexes,
  };
}

/** Checks the start record against the base (the meta keys are all read before the first entry). */
function checkStart(dir: string, base: SnapshotMeta | undefined, start: Index | undefined): void {
  if (start === undefined) return;
  if (base === undefined || start > base.index) {
    throw corrupt(dir, start, `the start record says the log starts at ${start}, which is not at or below its base ` +
      `${base?.index ?? 0} (only trailing entries kept at or below a base need one)`);
  }
}

/** Checks that `e` may follow `prev` (or start the log when it is the first entry). */
function checkNext(dir: string, base: SnapshotMeta | undefined, start: Index | undefined, prev: Entry | undefined, e: Entry): void {
  const baseIndex = base?.index ?? 0;
  if (e.index === baseIndex && base !== undefined && e.term !== base.term) {
    throw corrupt(dir, e.index, `entry ${e.index} has term ${e.term} but the log base at ${baseIndex} has term ${base.term}`);
  }
  if (prev === undefined) {
    const first = start ?? baseIndex + 1;
    if (e.index < first) {
      throw corrupt(dir, e.index, start === undefined
        ? `entry ${e.index} is at or below the log base ${baseIndex}, where no entry may be`
        : `entry ${e.index} is below the log's first index ${start}, where no entry may be`);
    }
    if (e.index !== first) {
      throw corrupt(dir, first, `the first entry is ${e.index} but the log ${start === undefined ? `base is ${baseIndex}` : `starts at ${start}`}: ` +
        missing(first, e.index - 1));
    }
    const baseTerm = base?.term ?? 0;
    if (start === undefined && e.term < baseTerm) {
      throw corrupt(dir, e.index, `entry ${e.index} has term ${e.term}, below the log base's term ${baseTerm}`);
    }
    return;
  }
  if (e.index !== prev.index + 1) {
    throw corrupt(dir, prev.index + 1, `entry ${e.index} follows entry ${prev.index}: ${missing(prev.index + 1, e.index - 1)}`);
  }
  if (e.term < prev.term) {
    throw corrupt(dir, e.index, `entry ${e.index} has term ${e.term} but entry ${prev.index} has term ${prev.term}; ` +
      'terms never decrease along a Raft log');
  }
}

const missing = (lo: Index, hi: Index): string => (lo === hi ? `entry ${lo} is missing` : `entries ${lo}..${hi} are missing`);
