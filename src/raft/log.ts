import { assert } from '../base/index.js';
import type { Configuration, Entry, Index, SnapshotMeta, Term } from './types.js';

/** Bytes an entry is counted as when filling a message: its payload plus a fixed framing estimate. */
export function entryBytes(e: Entry): number {
  return e.data.length + 32;
}

const emptyConfiguration: Configuration = { servers: [] };

export const initialSnapshot: SnapshotMeta = {
  index: 0,
  term: 0,
  configuration: emptyConfiguration,
  configurationIndex: 0,
};

/**
 * A user restore's base that is not yet known to be committed, and the entries appended after it.
 * Invariant: base.index > the last entry of the committed prefix it sits above.
 */
interface PendingRestore {
  readonly base: SnapshotMeta;
  entries: Entry[];
}

/**
 * The core's in-memory view of the log: a base snapshot, the entries kept after (and, as trailing
 * entries, before) it, and optionally a user-restore base that has not committed yet.
 *
 * Layout without a pending restore:
 *     [snapshot.index] [first .. last]        with first <= snapshot.index + 1
 * With a pending restore (see README: "User restore"), the entries end at or below the commit index
 * and the log continues after a hole:
 *     [snapshot.index] [first .. prefixLast]  (hole)  [pending.base.index] [pending entries]
 * Indexes inside the hole have no known term. Nothing in the hole or above it is applied until the
 * pending base commits; if a newer leader's log contradicts it, `dropPending()` reverts to the prefix.
 */
export class RaftLog {
  /** The latest committed snapshot. */
  snapshot: SnapshotMeta;
  /** Index of entries[0]. Invariant: 1 <= first <= snapshot.index + 1. */
  private first: Index;
  private entries: Entry[];
  private pending: PendingRestore | undefined;
  /**
   * Indexes of the config entries held (in `entries` and the pending entries), ascending, so the
   * configuration in force is found without scanning the log. Configuration changes are rare: the
   * list stays short.
   */
  private configs: Index[] = [];

  constructor(snapshot: SnapshotMeta, entries: readonly Entry[], pendingBase?: SnapshotMeta) {
    this.snapshot = snapshot;
    const kept = entries.filter((e) => pendingBase === undefined || e.index < pendingBase.index);
    const after = pendingBase === undefined ? [] : entries.filter((e) => e.index > pendingBase.index);
    this.first = kept.length > 0 ? (kept[0] as Entry).index : snapshot.index + 1;
    this.entries = [...kept];
    this.pending = pendingBase === undefined ? undefined : { base: pendingBase, entries: [...after] };
    this.configs = [...kept, ...after].filter((e) => e.kind === 'config').map((e) => e.index);
    this.checkInvariants();
  }

  checkInvariants(): void {
    assert(this.first >= 1, 'log: first index >= 1');
    assert(this.first <= this.snapshot.index + 1, 'log: entries reach the snapshot');
    checkContiguous(this.entries, this.first);
    if (this.pending !== undefined) {
      assert(this.pending.base.index > this.prefixLastIndex(), 'log: pending base above the prefix');
      checkContiguous(this.pending.entries, this.pending.base.index + 1);
    }
  }

  firstIndex(): Index {
    return this.first;
  }

  /** The last index of the committed-history part (below any pending restore). */
  prefixLastIndex(): Index {
    return Math.max(this.snapshot.index, this.first + this.entries.length - 1);
  }

  lastIndex(): Index {
    if (this.pending !== undefined) return this.pending.base.index + this.pending.entries.length;
    return this.prefixLastIndex();
  }

  lastTerm(): Term {
    const t = this.term(this.lastIndex());
    assert(t !== undefined, 'log: the last entry has a known term');
    return t;
  }

  pendingBase(): SnapshotMeta | undefined {
    return this.pending?.base;
  }

  /** The term of the entry at `index`, or undefined when it is compacted, in the hole or beyond. */
  term(index: Index): Term | undefined {
    const p = this.pending;
    if (p !== undefined) {
      if (index === p.base.index) return p.base.term;
      if (index > p.base.index) return p.entries[index - p.base.index - 1]?.term;
      if (index > this.prefixLastIndex()) return undefined;
    }
    if (index === this.snapshot.index) return this.snapshot.term;
    if (index === 0 && this.first === 1) return 0; // "before the log", while index 1 is still held
    if (index < this.first) return undefined;
    return this.entries[index - this.first]?.term;
  }

  entry(index: Index): Entry | undefined {
    const p = this.pending;
    if (p !== undefined && index > p.base.index) return p.entries[index - p.base.index - 1];
    if (p !== undefined && index >= p.base.index) return undefined;
    if (index < this.first) return undefined;
    return this.entries[index - this.first];
  }

  matchTerm(index: Index, term: Term): boolean {
    const t = this.term(index);
    return t !== undefined && t === term;
  }

  /** §5.4.1: is a log ending at (lastIndex, lastTerm) at least as up to date as this one? */
  isUpToDate(lastIndex: Index, lastTerm: Term): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * The largest index <= `index` whose term is known and <= `term`, or the lowest index with a known
   * term when there is none. Used on both sides of a rejected append to skip a whole term at once.
   */
  findConflictByTerm(index: Index, term: Term): Index {
    let i = Math.min(index, this.lastIndex());
    for (;;) {
      const t = this.term(i);
      if (t === undefined) {
        // Compacted, or inside the hole under a pending restore: step down to the last known point.
        if (this.pending !== undefined && i < this.pending.base.index && i > this.prefixLastIndex()) {
          i = this.prefixLastIndex();
          continue;
        }
        return i;
      }
      if (t <= term || i <= this.snapshot.index) return i;
      i--;
    }
  }

  /**
   * Entries [lo, hi] (inclusive), stopping before `maxBytes` is exceeded but always returning at
   * least one entry when the range is not empty. The range must lie in one part of the log.
   */
  slice(lo: Index, hi: Index, maxBytes: number): Entry[] {
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i <= hi; i++) {
      const e = this.entry(i);
      assert(e !== undefined, `log: slice ${lo}..${hi} reaches a missing entry at ${i}`);
      bytes += entryBytes(e);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /**
   * Appends entries that directly follow the last one. When `entries[0]` starts earlier, everything
   * from its index on is replaced. Returns the lowest index that was removed, if any.
   */
  append(entries: readonly Entry[]): Index | undefined {
    if (entries.length === 0) return undefined;
    const from = (entries[0] as Entry).index;
    const removedFrom = this.truncateFrom(from);
    const p = this.pending;
    const target = p !== undefined ? p.entries : this.entries;
    for (const e of entries) {
      target.push(e);
      if (e.kind === 'config') this.configs.push(e.index);
    }
    assert(this.lastIndex() === (entries[entries.length - 1] as Entry).index, 'log: append is contiguous');
    return removedFrom;
  }

  /** Removes every entry at index >= `from`; returns `from` when something was removed. */
  truncateFrom(from: Index): Index | undefined {
    if (from > this.lastIndex()) return undefined;
    while (this.configs.length > 0 && (this.configs[this.configs.length - 1] as Index) >= from) this.configs.pop();
    const p = this.pending;
    if (p !== undefined) {
      if (from > p.base.index) {
        p.entries.length = from - p.base.index - 1;
        return from;
      }
      // The cut reaches the pending base: the restore is abandoned with everything after it.
      this.pending = undefined;
      if (from > this.prefixLastIndex()) return from;
    }
    assert(from > this.snapshot.index, `log: cannot truncate at ${from}, inside the snapshot`);
    this.entries.length = Math.max(0, from - this.first);
    return from;
  }

  /** Installs a committed snapshot: the log restarts after it. */
  restoreBase(meta: SnapshotMeta): void {
    this.snapshot = meta;
    this.first = meta.index + 1;
    this.entries = [];
    this.pending = undefined;
    this.configs = [];
  }

  /** Places an uncommitted user-restore base above the prefix (which must end at or below it). */
  setPending(meta: SnapshotMeta): void {
    assert(this.pending === undefined, 'log: one pending restore at a time');
    assert(meta.index > this.prefixLastIndex(), 'log: pending base above the prefix');
    this.pending = { base: meta, entries: [] };
  }

  /** Abandons the pending restore and everything after it. */
  dropPending(): void {
    const p = this.pending;
    if (p !== undefined) this.configs = this.configs.filter((c) => c < p.base.index);
    this.pending = undefined;
  }

  /** The pending base committed: it becomes the snapshot and the prefix goes. */
  promotePending(): SnapshotMeta {
    const p = this.pending;
    assert(p !== undefined, 'log: promote needs a pending restore');
    this.snapshot = p.base;
    this.first = p.base.index + 1;
    this.entries = p.entries;
    this.pending = undefined;
    this.configs = this.configs.filter((c) => c > p.base.index);
    return p.base;
  }

  /**
   * A snapshot at `meta.index` exists: drop entries below `keepFrom` (trailing entries are kept for
   * followers that are only a little behind). Returns the new first index.
   */
  compact(meta: SnapshotMeta, keepFrom: Index): Index {
    assert(meta.index >= this.snapshot.index, 'log: compaction moves forward');
    assert(meta.index <= this.prefixLastIndex(), 'log: compaction inside the prefix');
    this.snapshot = meta;
    const newFirst = Math.min(Math.max(this.first, keepFrom), meta.index + 1);
    this.entries = this.entries.slice(newFirst - this.first);
    this.first = newFirst;
    this.configs = this.configs.filter((c) => c >= newFirst || c > this.pendingFloor());
    return newFirst;
  }

  /** The latest configuration at or below `index` (from a config entry or the snapshot). */
  configurationAt(index: Index): { configuration: Configuration; index: Index } {
    const p = this.pending;
    const inPending = p !== undefined && index >= p.base.index;
    const lo = inPending ? (p as PendingRestore).base.index : this.snapshot.index;
    const hi = inPending ? Math.min(index, this.lastIndex()) : Math.min(index, this.prefixLastIndex());
    for (let k = this.configs.length - 1; k >= 0; k--) {
      const c = this.configs[k] as Index;
      if (c > hi) continue;
      if (c <= lo) break;
      const e = this.entry(c);
      if (e?.config !== undefined) return { configuration: e.config, index: c };
    }
    const base = inPending ? (p as PendingRestore).base : this.snapshot;
    return { configuration: base.configuration, index: base.configurationIndex };
  }

  /** Config entries above this index belong to the pending restore's run (kept by compaction). */
  private pendingFloor(): Index {
    return this.pending?.base.index ?? Number.POSITIVE_INFINITY;
  }
}

function checkContiguous(entries: readonly Entry[], first: Index): void {
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as Entry;
    assert(e.index === first + i, `log: entry ${first + i} is contiguous (found ${e.index})`);
    if (i > 0) assert(e.term >= (entries[i - 1] as Entry).term, 'log: terms never decrease');
  }
}
