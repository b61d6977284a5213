// A simulated disk for one server: what is durable, and what was written but not yet synced.
// A crash keeps a random prefix of the unsynced writes (the OS may have flushed some of them) and
// loses the rest, which is exactly the freedom a real disk has.

import type { Entry, HardState, Index, SnapshotMeta } from '../../src/raft/index.js';
import type { SeededRandom } from '../../src/raft/index.js';

export interface StoredSnapshot {
  readonly meta: SnapshotMeta;
  /** The simulated state machine's contents: a hash of everything applied. */
  readonly content: number;
}

export interface DurableState {
  hardState: HardState;
  /** The log's committed base. */
  snapshot: StoredSnapshot | undefined;
  /** A user restore's base that has not committed. */
  pending: StoredSnapshot | undefined;
  entries: Map<Index, Entry>;
}

/** One atomic write (a LevelDB batch in the real server). */
export type DiskWrite = (s: DurableState) => void;

export class SimDisk {
  readonly durable: DurableState;
  private unsynced: DiskWrite[] = [];

  constructor() {
    this.durable = { hardState: { term: 0, vote: '' }, snapshot: undefined, pending: undefined, entries: new Map() };
  }

  write(op: DiskWrite, sync: boolean): void {
    if (!sync) {
      this.unsynced.push(op);
      return;
    }
    this.flush();
    op(this.durable);
  }

  /** Background writeback: the OS flushes everything written so far. */
  flush(): void {
    for (const op of this.unsynced) op(this.durable);
    this.unsynced = [];
  }

  unsyncedCount(): number {
    return this.unsynced.length;
  }

  /** Power loss: a random prefix of the unsynced writes reached the platter. */
  crash(random: SeededRandom): void {
    const kept = random.nextInt(this.unsynced.length + 1);
    for (let i = 0; i < kept; i++) (this.unsynced[i] as DiskWrite)(this.durable);
    this.unsynced = [];
  }

  /** Stored entries above the base in index order (what a restarting server reads back). */
  entriesInOrder(): Entry[] {
    return [...this.durable.entries.values()].sort((a, b) => a.index - b.index);
  }
}
