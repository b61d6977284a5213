// The server's durable Raft log as one store behind the Ready loop's log port: the main LevelDB log
// (term and vote, the committed base, the entries after it and the trailing entries kept below it)
// and, only while a user restore is pending, a second store whose base is the restore.
//
// A pending restore sits above a hole in the log, which LogStore (gapless by design) cannot hold, so
// it lives in its own store. Crash safety of the two-store steps:
//   set:     main batch first (truncating at the restore), then the pending store: a crash between
//            leaves no pending restore and an intact prefix.
//   drop:    pending store deleted (and its parent directory fsynced) before the main batch.
//   promote: one main batch makes the restore the base and moves the entries after it in; the
//            pending store is deleted after. A pending store whose base is not above the main base is
//            a leftover of that last step and is deleted at open.

import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { exists } from '../base/index.js';
import type { Entry, HardState, Index, SnapshotMeta } from '../raft/index.js';
import { LogStore, fsyncDir, type PersistRound } from '../storage/index.js';
import type { LogPort, RoundWrite } from './ready-loop.js';

/** What a restarting server reads back. */
export interface LoadedLog {
  readonly hardState: HardState;
  readonly snapshot?: SnapshotMeta;
  readonly pendingRestore?: SnapshotMeta;
  /** Main entries below the pending restore (if any), then the pending store's entries. */
  readonly entries: readonly Entry[];
  /** The last main-log index below a pending restore (or the base): what the state machine may have applied. */
  readonly lastMainIndex: Index;
}

export class RaftLog implements LogPort<Promise<void>> {
  private readonly raftDir: string;
  private readonly main: LogStore;
  private pending: LogStore | undefined;

  private constructor(raftDir: string, main: LogStore, pending: LogStore | undefined) {
    this.raftDir = raftDir;
    this.main = main;
    this.pending = pending;
  }

  /** Opens the log under `raftDir` (created if missing), clearing a pending store left by a finished promotion. */
  static async open(raftDir: string, logger: Logger): Promise<{ log: RaftLog; loaded: LoadedLog }> {
    const main = await LogStore.open(join(raftDir, 'log'));
    const state = await main.load();
    let pending: LogStore | undefined;
    let pendingMeta: SnapshotMeta | undefined;
    let pendingEntries: readonly Entry[] = [];
    const pendingDir = join(raftDir, 'pending');
    if (await exists(pendingDir)) {
      const p = await LogStore.open(pendingDir);
      const ps = await p.load();
      if (ps.snapshot !== undefined && ps.snapshot.index > (state.snapshot?.index ?? 0)) {
        pending = p;
        pendingMeta = ps.snapshot;
        pendingEntries = ps.entries;
      } else {
        await p.close();
        await removeDir(pendingDir);
        logger.info({ event: 'pending-restore-cleared' }, 'a leftover pending-restore store was removed');
      }
    }
    const mainEntries = pendingMeta === undefined ? state.entries : state.entries.filter((e) => e.index < pendingMeta.index);
    const loaded: LoadedLog = {
      hardState: state.hardState,
      ...(state.snapshot !== undefined ? { snapshot: state.snapshot } : {}),
      ...(pendingMeta !== undefined ? { pendingRestore: pendingMeta } : {}),
      entries: [...mainEntries, ...pendingEntries],
      lastMainIndex: mainEntries.length > 0 ? (mainEntries[mainEntries.length - 1] as Entry).index : state.snapshot?.index ?? 0,
    };
    return { log: new RaftLog(raftDir, main, pending), loaded };
  }

  /** Writes a fresh server's first state (bootstrap). */
  async initialize(entries: readonly Entry[], hardState: HardState | undefined): Promise<void> {
    await this.main.persist({ entries, ...(hardState !== undefined ? { hardState } : {}), sync: true });
  }

  async persist(w: RoundWrite): Promise<void> {
    const main: { -readonly [K in keyof PersistRound]: PersistRound[K] } = { entries: [], sync: w.sync };
    let pendingTruncate: Index | undefined;
    const pendingBase = this.pendingBaseIndex();
    let promoted = false;
    if (w.snapshotBase !== undefined) {
      main.snapshotBase = w.snapshotBase;
      if (this.pending !== undefined && pendingBase === w.snapshotBase.index) {
        // The pending restore committed: its entries move into the main log in the same batch.
        const p = this.pending;
        // This round's truncation and entries come after the promotion (PersistRound's order), so
        // they apply to the moved entries too: a follower whose own entry after the restore conflicts
        // with the new leader's learns both in one round.
        const moved = p.lastIndex() > w.snapshotBase.index ? await p.entries(w.snapshotBase.index + 1, p.lastIndex() + 1) : [];
        main.entries = w.truncateFrom === undefined ? moved : moved.filter((e) => e.index < (w.truncateFrom as Index));
        promoted = true;
      } else if (this.pending !== undefined) {
        await this.dropPending();
      }
    }
    if (w.pendingRestore === null) await this.dropPending();
    const newPending = w.pendingRestore ?? undefined;
    const split = newPending?.index ?? (promoted ? undefined : this.pendingBaseIndex());
    if (w.truncateFrom !== undefined) {
      if (split !== undefined && w.truncateFrom > split) pendingTruncate = w.truncateFrom;
      else main.truncateFrom = w.truncateFrom;
    }
    const newMain: Entry[] = [];
    const pendingEntries: Entry[] = [];
    for (const e of w.entries) {
      if (split !== undefined && e.index > split) pendingEntries.push(e);
      else newMain.push(e);
    }
    // New entries overwrite moved ones with the same index (as they would stored ones).
    const firstNew = newMain[0]?.index;
    const lastNew = newMain[newMain.length - 1]?.index;
    if (firstNew !== undefined && lastNew !== undefined) {
      main.entries = [...main.entries.filter((e) => e.index < firstNew), ...newMain, ...main.entries.filter((e) => e.index > lastNew)];
    }
    if (w.hardState !== undefined) main.hardState = w.hardState;
    if (main.snapshotBase !== undefined || main.truncateFrom !== undefined || main.entries.length > 0 || main.hardState !== undefined || w.sync) {
      await this.main.persist(main);
    }
    if (promoted) await this.dropPending();
    if (newPending !== undefined) {
      await this.dropPending();
      this.pending = await LogStore.open(join(this.raftDir, 'pending'));
      await this.pending.persist({ snapshotBase: newPending, entries: [], sync: true });
    }
    if (this.pending !== undefined && (pendingTruncate !== undefined || pendingEntries.length > 0)) {
      await this.pending.persist({
        ...(pendingTruncate !== undefined ? { truncateFrom: pendingTruncate } : {}),
        entries: pendingEntries,
        sync: w.sync,
      });
    }
  }

  /** Compacts the main log behind a stored snapshot, keeping entries from `keepFrom` on. */
  async compact(meta: SnapshotMeta, keepFrom: Index): Promise<void> {
    await this.main.compact(meta, { keepFrom });
  }

  /** Closes both stores, the second even when the first fails to (the first failure is what rejects). */
  async close(): Promise<void> {
    try {
      await this.main.close();
    } finally {
      await this.pending?.close();
    }
  }

  private pendingBaseIndex(): Index | undefined {
    return this.pending?.base()?.index;
  }

  private async dropPending(): Promise<void> {
    if (this.pending === undefined) return;
    const dir = this.pending.dir;
    await this.pending.close();
    this.pending = undefined;
    await removeDir(dir);
  }
}

/**
 * Removes a directory and makes the removal durable (fsync of its parent): the crash-safety steps
 * above rely on a dropped pending store staying dropped. A failed fsync is an I/O error like any
 * other and stops the node.
 */
async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await fsyncDir(dirname(dir));
}
