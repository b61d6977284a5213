// The deterministic KV state machine, kept in its own LevelDB.
//
// Contract with the node runtime (the port's spec):
// - `apply`/`applyNoop` are called with strictly increasing indexes, starting at `appliedIndex() + 1`
//   after open (entries at or below the applied index are already in the state and must be skipped).
//   Calls may overlap: they are queued and applied in call order, each as ONE LevelDB batch that also
//   records the applied index and term, so after a crash the state and the applied index agree exactly.
// - An apply resolves with its results once they are computed and its batch is handed to LevelDB, before
//   the batch has landed (etcd answers the same way, once an entry is applied in memory): the thread-pool
//   turn of the write is off the path of the answer. Whatever reads the state waits for that batch first,
//   so every read, snapshot and blocking query sees every write whose answer went out before it started;
//   the next apply waits for it too (it reads the landed state), so at most one batch is in the air.
// - A failure while applying (undecodable command, disk write error) poisons the FSM: every later apply
//   rejects with FSM_POISONED, because skipping an entry would make this server's state diverge. A write
//   that fails after its answer went out also fails every later read (FSM_WRITE_FAILED: the state no
//   longer holds what was answered) and calls the `whenWriteFails` listener. The runtime must stop and
//   restart the node (or restore it from a snapshot): the entry is in the Raft log, and is applied again.
// - Writes are not fsynced by default (`syncWrites: false`). The Raft log is the durable source: an
//   entry is applied only after it is committed, i.e. fsynced in the logs of a majority. If the machine
//   loses power, LevelDB recovers a prefix of our batches (its log is checksummed record by record and
//   every batch carries its own applied index), so the FSM comes back consistent at some older applied
//   index, and the runtime re-applies the entries after it from the Raft log. The runtime must therefore
//   compact the Raft log only up to an index covered by a durable Raft snapshot (and restore from that
//   snapshot when the FSM's applied index is below the log's first index). `syncWrites: true` trades
//   apply throughput for never re-applying.
// - Reads (`get`, `list`, `keys`, `readTxn`) each see one consistent state through a LevelDB snapshot.
// - `swapIn` replaces the whole database by a restored one (see dirs.ts); no apply may be issued while it
//   runs (the runtime pauses applying around a restore), and every waiting blocking query wakes up.

import { rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Level } from 'level';
import { isWellFormedText } from '../base/index.js';
import { decodeCommand, ignoreUnknownTypeFlag, isWriteOp, type Command, type KvWriteOp, type TxnOp } from './command.js';
import { isCompleteRestore, newDirFor, oldDirFor, recoverFsmDir, type RecoveryAction } from './dirs.js';
import { assert, exists, fsyncDir, unreachable, writeOps } from '../base/index.js';
import { CommandError, FsmError } from './errors.js';
import { Gate } from './gate.js';
import {
  kvsDelete,
  kvsDeleteCas,
  kvsDeleteTree,
  kvsLock,
  kvsSet,
  kvsSetCas,
  kvsUnlock,
  sessionCreate,
  sessionDestroy,
  foldKeys,
  keyIndex,
  prefixIndex,
  reapTombstones,
  runTxn,
  setRequest,
  type TxnOutcome,
} from './kv-logic.js';
import {
  decodeApplied,
  decodeFormat,
  encodeFormat,
  layoutVersion,
  metaAppliedKey,
  metaFormatKey,
  nameOf,
  prefixRange,
  Table,
  type AppliedMark,
} from './layout.js';
import { openStateBinSnapshot, snapshotIteratorOptions, type SnapshotIterator, type StateBinSnapshot } from './snapshot.js';
import { DbReader, decodeStoredCatalogRow, decodeStoredEntry, decodeStoredIndex, decodeStoredSession, decodeStoredTombstone, KvTxn, type Db } from './store.js';
import type { ApplyResult, CatalogQuery, CatalogRead, KeyRead, KeysRead, ListRead, LogIndex, LogTerm, Session, SessionRead } from './types.js';
import { catalogDeregister, catalogRegister, sessionCatalogProblem } from './catalog-logic.js';
import { catalogQuery } from './catalog-read.js';
import { Watchers, type WakeReason, type WatchTarget } from './watch.js';

export interface FsmOptions {
  /** fsync every applied batch. Default false; see the contract above for why that is safe. */
  readonly syncWrites?: boolean;
}

export interface WatchOutcome {
  /** 'changed': the index passed sinceIndex; 'restored': the state was replaced (index may be lower). */
  readonly reason: WakeReason;
  /** The index for the target as last computed (for 'changed' and 'restored', the current one). */
  readonly index: LogIndex;
}

/** One entry of applyBatch: `data` undefined for a noop or configuration entry. */
export interface BatchItem {
  readonly index: LogIndex;
  readonly term: LogTerm;
  readonly data?: Uint8Array;
}

type FsmState = 'open' | 'swapping' | 'closed';

async function openDb(dir: string): Promise<{ db: Db; applied: AppliedMark }> {
  const db: Db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  try {
    await db.open({ createIfMissing: true });
  } catch (cause) {
    throw new FsmError('FSM_OPEN_FAILED', `cannot open the FSM database in ${dir}: ${String(cause)}`, { cause });
  }
  try {
    const [format, applied] = await db.getMany([metaFormatKey, metaAppliedKey]);
    if (format === undefined) {
      const any = await db.keys({ limit: 1 }).all();
      if (any.length > 0) {
        throw new FsmError('FSM_DIR_UNKNOWN_FORMAT',
          `${dir} holds a LevelDB database without a Conclave FSM format mark; refusing to use it. Point the FSM at an empty directory.`);
      }
      await db.put(metaFormatKey, encodeFormat(), { sync: true });
    } else if (decodeFormat(format) !== layoutVersion) {
      throw new FsmError('FSM_DIR_UNKNOWN_FORMAT',
        `${dir} holds FSM layout ${String(decodeFormat(format))}; this version reads layout ${layoutVersion}. ` +
        'Upgrade Conclave or restore from a snapshot.');
    }
    return { db, applied: applied === undefined ? { index: 0, term: 0 } : decodeApplied(applied) };
  } catch (error) {
    await db.close();
    throw error;
  }
}

export class Fsm {
  private state: FsmState = 'open';
  private readonly gate = new Gate();
  private readonly watchers = new Watchers();
  private readonly snapshots = new Set<StateBinSnapshot>();
  /** Settles after the last queued apply, its batch landed (or failed). */
  private applyChain: Promise<unknown> = Promise.resolve();
  /** The one staged batch not yet landed (see the contract above); rejects if its write failed. */
  private landing: Promise<void> | undefined;
  /** Set when a staged batch (whose results may have been answered) failed to land. */
  private writeFailure: FsmError | undefined;
  private writeFailureListener: ((e: FsmError) => void) | undefined;
  /** Highest index handed to apply/applyNoop. Invariant: applied.index <= lastAccepted. */
  private lastAccepted: LogIndex;
  private poisoned: FsmError | undefined;
  /**
   * Consul's lock-delay (state.Store.lockDelay): key -> wall-clock ms until which it may not be locked,
   * noted when this server applied the invalidation that freed it. Memory only, like Consul's: it is
   * consulted only by the leader before it proposes a lock, and a new leader has its own.
   */
  private readonly lockDelays = new Map<string, number>();

  private constructor(
    readonly dir: string,
    private db: Db,
    /** The last applied entry: its results are computed and its batch handed to LevelDB (maybe not landed). */
    private applied: AppliedMark,
    private readonly syncWrites: boolean,
    /** What open did to settle an interrupted swap. */
    readonly recovery: RecoveryAction,
  ) {
    this.lastAccepted = applied.index;
  }

  /** Opens (or creates) the FSM database in `dir`, first settling an interrupted swap (dirs.ts). */
  static async open(dir: string, options: FsmOptions = {}): Promise<Fsm> {
    const liveDir = resolve(dir);
    const recovery = await recoverFsmDir(liveDir);
    const { db, applied } = await openDb(liveDir);
    return new Fsm(liveDir, db, applied, options.syncWrites ?? false, recovery);
  }

  appliedIndex(): LogIndex {
    return this.applied.index;
  }

  appliedTerm(): LogTerm {
    return this.applied.term;
  }

  // -------------------------------------------------------------------------------------------------
  // Applying
  // -------------------------------------------------------------------------------------------------

  /**
   * Called once if a staged batch fails to land (its results may have been answered already): the
   * runtime must stop (see the contract above).
   */
  whenWriteFails(listener: (e: FsmError) => void): void {
    this.writeFailureListener = listener;
  }

  /** Applies one committed `normal` entry. Resolves once its results are computed and its batch handed over. */
  apply(index: LogIndex, term: LogTerm, data: Uint8Array): Promise<ApplyResult> {
    this.accept(index);
    return this.enqueue(() => this.applyNow({ index, term }, data));
  }

  /**
   * Applies several committed entries (in index order; `data` undefined for a noop or config entry)
   * as ONE LevelDB batch that also records the last applied index: the same results and the same
   * state as applying them one by one, with one write instead of one per entry. Each entry runs in
   * its own transaction layered over the batch's, so a failing txn or cas discards only its own
   * writes. An entry that cannot be decoded stops the batch there: the entries before it are
   * written, and it fails as `apply` would.
   */
  applyBatch(items: ReadonlyArray<BatchItem>): Promise<ApplyResult[]> {
    for (const it of items) this.accept(it.index);
    return this.enqueue(async () => {
      const batch = new KvTxn(DbReader.forApply(this.db));
      const results: ApplyResult[] = [];
      let mark: AppliedMark | undefined;
      for (const it of items) {
        assert(it.index > (mark ?? this.applied).index, 'an entry is applied once');
        if (it.data === undefined) {
          results.push({ kind: 'noop' });
          mark = { index: it.index, term: it.term };
          continue;
        }
        const decoded = decodeCommand(it.data);
        if (!decoded.ok) {
          if (decoded.error.code === 'COMMAND_UNKNOWN_TYPE' && ((it.data[0] ?? 0) & ignoreUnknownTypeFlag) !== 0) {
            results.push({ kind: 'noop' });
            mark = { index: it.index, term: it.term };
            continue;
          }
          // applyNow reads the landed state: the entries before this one must be in it.
          if (mark !== undefined) await this.stage(batch, mark);
          return [...results, await this.applyNow({ index: it.index, term: it.term }, it.data)];
        }
        const entry = new KvTxn(batch.asReader());
        const { result, keep } = await execute(entry, it.index, decoded.command);
        if (keep) entry.mergeInto(batch);
        results.push(result);
        mark = { index: it.index, term: it.term };
      }
      if (mark !== undefined) this.stage(batch, mark);
      return results;
    });
  }

  /** Records a noop or config entry: only the applied index and term advance. */
  applyNoop(index: LogIndex, term: LogTerm): Promise<void> {
    this.accept(index);
    return this.enqueue(async () => {
      this.stage(new KvTxn(DbReader.forApply(this.db)), { index, term });
    });
  }

  private accept(index: LogIndex): void {
    assert(Number.isSafeInteger(index) && index > 0, 'an applied index is a positive integer');
    assert(index > this.lastAccepted, 'entries are applied in strictly increasing index order');
    this.lastAccepted = index;
  }

  /**
   * Runs `task` after every earlier apply has landed. The caller's promise settles with the task (its
   * results); the chain, and the shared hold on the gate that keeps a swap or close out, go on until
   * the batch the task staged has landed.
   */
  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    let answer!: (value: T) => void;
    let refuse!: (e: unknown) => void;
    const answered = new Promise<T>((resolve, reject) => {
      answer = resolve;
      refuse = reject;
    });
    const run = this.applyChain.then(() =>
      this.gate.runShared(async () => {
        this.checkUsable();
        if (this.poisoned !== undefined) {
          const message = `FSM stopped applying after an earlier failure: ${this.poisoned.message}`;
          throw new FsmError('FSM_POISONED', message, { cause: this.poisoned });
        }
        answer(await task());
        if (this.landing !== undefined) await this.landing;
      }),
    );
    // A failure before the answer is the caller's; one after it (the batch did not land) is reported
    // through whenWriteFails and to every later read, and settling `answered` again does nothing.
    run.catch(refuse);
    // Safe to drop: see above; the chain only orders the next task.
    this.applyChain = run.catch(() => undefined);
    return answered;
  }

  private async applyNow(mark: AppliedMark, data: Uint8Array): Promise<ApplyResult> {
    assert(mark.index > this.applied.index, 'an entry is applied once');
    const decoded = decodeCommand(data);
    const txn = new KvTxn(DbReader.forApply(this.db));
    if (!decoded.ok) {
      if (decoded.error.code === 'COMMAND_UNKNOWN_TYPE' && ((data[0] ?? 0) & ignoreUnknownTypeFlag) !== 0) {
        // Consul's IgnoreUnknownTypeFlag: a newer leader marked this entry as safe to skip.
        await this.stage(txn, mark);
        return { kind: 'noop' };
      }
      this.poisoned = new FsmError('FSM_COMMAND_UNDECODABLE',
        `log entry ${mark.index} (term ${mark.term}) holds a command this server cannot decode (${decoded.error.message}); ` +
        'it was not applied. Upgrade this server to the version of the leader that proposed it.', { cause: decoded.error });
      throw this.poisoned;
    }
    const { result, keep } = await execute(txn, mark.index, decoded.command);
    this.stage(keep ? txn : new KvTxn(DbReader.forApply(this.db)), mark);
    return result;
  }

  /**
   * Hands `txn` and the applied mark to LevelDB as one batch and makes it the `landing` one; the
   * applied mark and lock-delays move now (the leader consults lock-delay before proposing a lock,
   * so it must hold from the answer on), blocking queries wake once the batch has landed.
   */
  private stage(txn: KvTxn, mark: AppliedMark): Promise<void> {
    let write: Promise<void>;
    try {
      write = writeOps(this.db, txn.toBatch(mark), this.syncWrites);
    } catch (cause) {
      // Nothing moved yet: the entry fails as an apply, and no later one may be applied past it.
      const message = `writing log entry ${mark.index} to the FSM database in ${this.dir} failed: ${String(cause)}`;
      this.poisoned = new FsmError('FSM_WRITE_FAILED', message, { cause });
      throw this.poisoned;
    }
    this.applied = mark;
    const delays = txn.lockDelays();
    if (delays.length > 0) {
      const now = performance.now();
      // Expired entries go whenever new ones come, so keys never locked again do not stay forever.
      for (const [key, until] of this.lockDelays) if (until <= now) this.lockDelays.delete(key);
      for (const d of delays) this.lockDelays.set(d.key, now + d.ms);
    }
    const changes = txn.changes();
    const landing: Promise<void> = write.then(
      () => {
        if (this.landing === landing) this.landing = undefined;
        this.watchers.announce(changes);
      },
      (cause: unknown) => {
        const message = `writing log entry ${mark.index} to the FSM database in ${this.dir} failed: ${String(cause)}`;
        const failure = new FsmError('FSM_WRITE_FAILED', message, { cause });
        this.poisoned = failure;
        this.writeFailure = failure;
        this.writeFailureListener?.(failure);
        throw failure;
      },
    );
    this.landing = landing;
    return landing;
  }

  /** Waits for the batch in the air, if any; throws if a staged batch failed to land. */
  private async landed(): Promise<void> {
    const landing = this.landing;
    // Safe to drop: a failure is in writeFailure, thrown below.
    if (landing !== undefined) await landing.catch(() => undefined);
    if (this.state === 'closed') this.checkUsable();
    if (this.writeFailure !== undefined) {
      throw new FsmError('FSM_WRITE_FAILED', `the state cannot be read: ${this.writeFailure.message}`, { cause: this.writeFailure });
    }
  }

  /** The monotonic time (performance.now()) until which `key` is under lock-delay, 0 when it is not. */
  lockDelayUntil(key: string): number {
    const until = this.lockDelays.get(key);
    if (until === undefined) return 0;
    if (until <= performance.now()) {
      this.lockDelays.delete(key);
      return 0;
    }
    return until;
  }

  // -------------------------------------------------------------------------------------------------
  // Reads
  // -------------------------------------------------------------------------------------------------

  /** GET /v1/kv/<key>: the entry, and the index for X-Consul-Index. */
  async get(key: string): Promise<KeyRead> {
    checkKeyArgument(key, 'key');
    return this.read(async (txn) => {
      const entry = await txn.get(key);
      return { entry, index: await keyIndex(txn, entry) };
    });
  }

  /** GET /v1/kv/<prefix>?recurse */
  async list(prefix: string): Promise<ListRead> {
    checkKeyArgument(prefix, 'prefix');
    return this.read(async (txn) => {
      const entries = await txn.list(prefix);
      return { entries, index: await prefixIndex(txn, prefix, entries) };
    });
  }

  /** GET /v1/kv/<prefix>?keys[&separator=<sep>] */
  async keys(prefix: string, separator = ''): Promise<KeysRead> {
    checkKeyArgument(prefix, 'prefix');
    checkKeyArgument(separator, 'separator');
    return this.read(async (txn) => {
      const entries = await txn.list(prefix);
      return { keys: foldKeys(entries, prefix, separator), index: await prefixIndex(txn, prefix, entries) };
    });
  }

  /** GET /v1/session/info/<id>: the session (none or one) and the `sessions` table index (at least 1). */
  async sessionInfo(id: string): Promise<SessionRead> {
    checkKeyArgument(id, 'session');
    return this.read(async (txn) => {
      const s = await txn.getSession(id);
      return { sessions: s === undefined ? [] : [s], index: Math.max(1, await txn.tableIndex('sessions')) };
    });
  }

  /** GET /v1/session/list, or /v1/session/node/<node> when `node` is given. */
  async sessionList(node?: string): Promise<SessionRead> {
    if (node !== undefined) checkKeyArgument(node, 'node');
    return this.read(async (txn) => {
      const all = await txn.listSessions();
      const sessions: Session[] = node === undefined ? all : all.filter((s) => s.Node === node);
      return { sessions, index: Math.max(1, await txn.tableIndex('sessions')) };
    });
  }

  /** A catalog or health read (catalog-read.ts). */
  async catalogQuery(q: CatalogQuery): Promise<CatalogRead> {
    return this.read((txn) => catalogQuery(txn, q));
  }

  /** The KV table index (max of the kvs and tombstones indexes), as Consul's kvsMaxIndex. */
  kvsIndex(): Promise<LogIndex> {
    return this.read((txn) => txn.kvsMaxIndex());
  }

  /**
   * A read-only txn (Consul's TxnRO, served without Raft): every op must be a read verb.
   * Results are shaped exactly as for an applied txn.
   */
  async readTxn(ops: readonly TxnOp[]): Promise<TxnOutcome> {
    ops.forEach((o, i) => {
      if (isWriteOp(o.op)) {
        throw new CommandError('COMMAND_BAD_FIELD', `Ops[${i}].KV.Verb`, `read-only txn cannot carry the write verb "${o.op.verb}"`);
      }
    });
    // Reads never write: index 0 is never used by the read verbs.
    return this.read((txn) => runTxn(txn, 0, ops));
  }

  private async read<T>(task: (txn: KvTxn) => Promise<T>): Promise<T> {
    await this.landed();
    return this.gate.runShared(async () => {
      this.checkUsable();
      const snapshot = this.db.snapshot();
      try {
        return await task(new KvTxn(new DbReader(this.db, snapshot)));
      } finally {
        await snapshot.close();
      }
    });
  }

  // -------------------------------------------------------------------------------------------------
  // Blocking queries
  // -------------------------------------------------------------------------------------------------

  /**
   * Resolves when the index for `target` (the one `get` or `list`/`keys` would report) passes
   * `sinceIndex`, or when `signal` aborts, the state is replaced by a restore, or the FSM closes.
   * Consul semantics: a blocking query may return without a change; callers re-read and re-block.
   */
  async waitForChange(target: WatchTarget, sinceIndex: LogIndex, signal?: AbortSignal): Promise<WatchOutcome> {
    if ('key' in target || 'prefix' in target) checkKeyArgument('key' in target ? target.key : target.prefix, 'key' in target ? 'key' : 'prefix');
    // Register before the first read, so a change landing between the read and the wait is not lost.
    const waiter = this.watchers.register(target);
    const onAbort = (): void => waiter.notify('aborted');
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted === true) waiter.notify('aborted');
    try {
      let index = await this.indexFor(target);
      for (;;) {
        if (index > sinceIndex) return { reason: 'changed', index };
        const reason = await waiter.next();
        if (reason === 'aborted' || reason === 'closed') return { reason, index };
        index = await this.indexFor(target);
        if (reason === 'restored') return { reason, index };
      }
    } finally {
      waiter.dispose();
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private async indexFor(target: WatchTarget): Promise<LogIndex> {
    if ('sessions' in target) return this.read(async (txn) => Math.max(1, await txn.tableIndex('sessions')));
    if ('catalog' in target) return (await this.catalogQuery(target.catalog)).index;
    return 'key' in target ? (await this.get(target.key)).index : (await this.list(target.prefix)).index;
  }

  // -------------------------------------------------------------------------------------------------
  // Snapshot and restore
  // -------------------------------------------------------------------------------------------------

  /**
   * A point-in-time state.bin stream of the state as of this call (see snapshot.ts). Applies may go on
   * while it streams. Consume it once or `close()` it; it holds a LevelDB snapshot until then.
   */
  async snapshot(): Promise<StateBinSnapshot> {
    // The point in time is this call, once the batch in the air (answered already) has landed: unless a
    // swap or close holds the gate, the iterator (and with it LevelDB's snapshot) is created right then.
    await this.landed();
    if (!this.gate.tryEnterShared()) await this.gate.enterShared();
    try {
      this.checkUsable();
      // Derived tables are not part of a snapshot (layout.ts): the iterator ends before them.
      const iterator: SnapshotIterator = this.db.iterator(snapshotIteratorOptions);
      const snapshot = await openStateBinSnapshot(iterator, (s) => this.snapshots.delete(s));
      this.snapshots.add(snapshot);
      return snapshot;
    } finally {
      this.gate.leaveShared();
    }
  }

  /**
   * Replaces the live database with `restoredDir`, built by `restoreInto` (on the same file system).
   * Steps: close; rename live aside; rename the new one in; fsync the parent; delete the old; reopen.
   * A crash at any step leaves the old or the new database (dirs.ts). Open snapshot streams fail with
   * FSM_SNAPSHOT_ABORTED; blocking queries wake with reason 'restored'.
   */
  async swapIn(restoredDir: string): Promise<void> {
    const source = resolve(restoredDir);
    if (!(await isCompleteRestore(source))) {
      throw new FsmError('FSM_RESTORE_INCOMPLETE',
        `${source} is not a complete restored FSM database (no completion marker); the live state is untouched`);
    }
    assert(source !== this.dir, 'a restored directory is not the live one');
    await this.applyChain;
    await this.gate.runExclusive(async () => {
      this.checkUsable();
      this.state = 'swapping';
      const aborted = new FsmError('FSM_SNAPSHOT_ABORTED',
        'snapshot stream aborted: the FSM state was replaced by a restore; take a new snapshot');
      for (const s of this.snapshots) s.abort(aborted);
      await this.db.close();
      let failure: unknown;
      try {
        await swapDirectories(source, this.dir);
      } catch (cause) {
        // Leave whichever complete database the recovery rule finds, reopen it, then report.
        failure = cause;
        // Safe to drop: `failure` is reported below, and a recovery that failed shows as a reopen
        // failure (FSM_SWAP_FAILED); Fsm.open runs the same recovery again at the next start.
        await recoverFsmDir(this.dir).catch(() => undefined);
      }
      let reopened: { db: Db; applied: AppliedMark };
      try {
        reopened = await openDb(this.dir);
      } catch (cause) {
        this.state = 'closed';
        this.watchers.wakeAll('closed');
        const message = `the FSM database in ${this.dir} could not be reopened after a swap: ${String(cause)}; restart the server`;
        throw new FsmError('FSM_SWAP_FAILED', message, { cause });
      }
      this.db = reopened.db;
      this.applied = reopened.applied;
      // A new state, as Consul's restore makes a new state store: no lock-delay carries over.
      this.lockDelays.clear();
      this.lastAccepted = reopened.applied.index;
      this.state = 'open';
      this.watchers.wakeAll('restored');
      if (failure !== undefined) {
        throw new FsmError('FSM_SWAP_FAILED',
          `swapping in the restored FSM database failed: ${String(failure)}; the FSM holds applied index ${reopened.applied.index}`,
          { cause: failure });
      }
      this.poisoned = undefined;
      // The chain has drained (above): no batch is in the air, and the failed one's state is gone.
      this.writeFailure = undefined;
      this.landing = undefined;
    });
  }

  /** Closes the database. Waiting blocking queries return with reason 'closed'; open streams fail. */
  async close(): Promise<void> {
    await this.applyChain;
    await this.gate.runExclusive(async () => {
      if (this.state === 'closed') return;
      this.state = 'closed';
      this.watchers.wakeAll('closed');
      const aborted = new FsmError('FSM_SNAPSHOT_ABORTED', 'snapshot stream aborted: the FSM was closed');
      for (const s of this.snapshots) s.abort(aborted);
      await this.db.close();
    });
  }

  private checkUsable(): void {
    if (this.state === 'closed') throw new FsmError('FSM_CLOSED', `the FSM in ${this.dir} is closed`);
    assert(this.state === 'open', 'no operation runs inside a swap');
  }

  /**
   * Checks the stored state against its invariants by a full scan (tests and the simulator call it).
   * Throws InvariantError on the first violation.
   */
  async checkInvariants(): Promise<void> {
    await this.landed();
    await this.gate.runShared(async () => {
      this.checkUsable();
      const snapshot = this.db.snapshot();
      try {
        const options = { snapshot };
        const [appliedBytes] = await this.db.getMany([metaAppliedKey], options);
        const stored = appliedBytes === undefined ? { index: 0, term: 0 } : decodeApplied(appliedBytes);
        assert(stored.index <= this.lastAccepted, 'the stored applied index was handed to apply');
        const indexes = new Map<string, number>();
        for await (const [k, v] of this.db.iterator({ ...prefixRange(Table.index, ''), snapshot })) {
          const index = decodeStoredIndex(k, v);
          assert(index <= stored.index, 'a table index is at most the applied index');
          indexes.set(nameOf(k), index);
        }
        const kvsIndex = indexes.get('kvs') ?? 0;
        const tombstonesIndex = indexes.get('tombstones') ?? 0;
        for await (const [k, v] of this.db.iterator({ ...prefixRange(Table.kvs, ''), snapshot })) {
          const e = decodeStoredEntry(k, v);
          assert(e.ModifyIndex <= kvsIndex, 'an entry ModifyIndex is at most the kvs table index');
          assert(e.CreateIndex <= e.ModifyIndex || e.CreateIndex === 0, 'an entry is created before it is modified');
        }
        for await (const [k, v] of this.db.iterator({ ...prefixRange(Table.tombstones, ''), snapshot })) {
          const stone = decodeStoredTombstone(k, v);
          assert(stone.Index <= tombstonesIndex, 'a tombstone index is at most the tombstones table index');
        }
        const sessionsIndex = indexes.get('sessions') ?? 0;
        for await (const [k, v] of this.db.iterator({ ...prefixRange(Table.sessions, ''), snapshot })) {
          const session = decodeStoredSession(k, v);
          assert(session.ModifyIndex <= sessionsIndex, 'a session ModifyIndex is at most the sessions table index');
        }
        // Catalog rows: within their table indexes; every service and check belongs to a node present,
        // and every check of a service names a service present on its node.
        const tableOf = { node: 'nodes', service: 'services', check: 'checks' } as const;
        let node = '';
        const services = new Set<string>();
        for await (const [k, v] of this.db.iterator({ ...prefixRange(Table.catalog, ''), snapshot })) {
          const [, row] = decodeStoredCatalogRow(k, v);
          const r = row.kind === 'node' ? row.node : row.kind === 'service' ? row.service : row.check;
          assert(r.ModifyIndex <= (indexes.get(tableOf[row.kind]) ?? 0), 'a catalog row ModifyIndex is at most its table index');
          assert(r.CreateIndex <= r.ModifyIndex, 'a catalog row is created before it is modified');
          if (row.kind === 'node') {
            node = row.node.Node;
            services.clear();
            continue;
          }
          assert(row.node === node, 'a service or check follows its node');
          if (row.kind === 'service') services.add(row.service.ID);
          else assert(row.check.ServiceID === '' || services.has(row.check.ServiceID), 'a service check names a service of its node');
        }
        // The derived session index holds exactly the (session, key) pairs of the entries' Session fields.
        const holders = new Set<string>();
        for await (const [k, v] of this.db.iterator({ ...prefixRange(Table.kvs, ''), snapshot })) {
          const e = decodeStoredEntry(k, v);
          if (e.Session !== '') holders.add(e.Session + e.Key);
        }
        let derived = 0;
        for await (const k of this.db.keys({ ...prefixRange(Table.sessionKeys, ''), snapshot })) {
          assert(holders.has(nameOf(k)), 'a derived session row names an entry that session holds');
          derived += 1;
        }
        assert(derived === holders.size, 'every held entry has its derived session row');
      } finally {
        await snapshot.close();
      }
    });
  }
}

/** Runs one command against `txn`. `keep` false: the txn failed and nothing of it may be written. */
async function execute(txn: KvTxn, index: LogIndex, command: Command): Promise<{ result: ApplyResult; keep: boolean }> {
  switch (command.type) {
    case 'kvs':
      return applyKvs(txn, index, command.op);
    case 'txn': {
      const outcome = await runTxn(txn, index, command.ops);
      return { result: { kind: 'txn', results: outcome.results, errors: outcome.errors }, keep: outcome.errors.length === 0 };
    }
    case 'tombstone-reap':
      await reapTombstones(txn, command.reapIndex);
      return { result: { kind: 'tombstone-reap' }, keep: true };
    case 'session-create': {
      const error = (await sessionCatalogProblem(txn, command.session)) ?? (await sessionCreate(txn, index, command.session));
      return error === undefined ? { result: { kind: 'session', error: '' }, keep: true } : { result: { kind: 'session', error }, keep: false };
    }
    case 'session-destroy':
      await sessionDestroy(txn, index, command.id);
      return { result: { kind: 'session', error: '' }, keep: true };
    case 'catalog-register': {
      const error = await catalogRegister(txn, index, command);
      return error === undefined ? { result: { kind: 'catalog', error: '' }, keep: true } : { result: { kind: 'catalog', error }, keep: false };
    }
    case 'catalog-deregister':
      await catalogDeregister(txn, index, command.node, command.serviceId, command.checkId);
      return { result: { kind: 'catalog', error: '' }, keep: true };
    default:
      return unreachable(command);
  }
}

/**
 * Consul's KVS.Apply answers: true for set, delete and delete-tree; the CAS or lock outcome otherwise;
 * an error (nothing written) for a lock or unlock without a valid session.
 */
async function applyKvs(txn: KvTxn, index: LogIndex, op: KvWriteOp): Promise<{ result: ApplyResult; keep: boolean }> {
  const answer = (ok: boolean): { result: ApplyResult; keep: boolean } => ({ result: { kind: 'kvs', ok }, keep: true });
  switch (op.verb) {
    case 'set':
      await kvsSet(txn, index, setRequest(op.key, op.flags, op.value), false);
      return answer(true);
    case 'cas':
      return answer((await kvsSetCas(txn, index, setRequest(op.key, op.flags, op.value), op.index)) !== undefined);
    case 'lock':
    case 'unlock': {
      const request = { Key: op.key, Flags: op.flags, Value: op.value, Session: op.session };
      const r = op.verb === 'lock' ? await kvsLock(txn, index, request) : await kvsUnlock(txn, index, request);
      if (typeof r === 'string') return { result: { kind: 'kvs', ok: false, error: r }, keep: false };
      return answer(r !== false);
    }
    case 'delete':
      await kvsDelete(txn, index, op.key);
      return answer(true);
    case 'delete-cas':
      return answer(await kvsDeleteCas(txn, index, op.index, op.key));
    case 'delete-tree':
      await kvsDeleteTree(txn, index, op.prefix);
      return answer(true);
    default:
      return unreachable(op);
  }
}

function checkKeyArgument(value: string, name: string): void {
  if (typeof value !== 'string' || !isWellFormedText(value)) {
    throw new CommandError('COMMAND_BAD_FIELD', name, `${name} must be a string without lone UTF-16 surrogates`);
  }
}

/** The rename sequence of a swap (dirs.ts explains the crash-recovery rule it relies on). */
async function swapDirectories(restoredDir: string, liveDir: string): Promise<void> {
  const newDir = newDirFor(liveDir);
  const oldDir = oldDirFor(liveDir);
  const parent = dirname(liveDir);
  if (restoredDir !== newDir) {
    await rm(newDir, { recursive: true, force: true });
    await rename(restoredDir, newDir); // EXDEV if on another file system: nothing moved yet
    await fsyncDir(dirname(restoredDir));
  }
  await rm(oldDir, { recursive: true, force: true });
  if (await exists(liveDir)) await rename(liveDir, oldDir);
  await rename(newDir, liveDir);
  await fsyncDir(parent);
  await rm(oldDir, { recursive: true, force: true });
}
