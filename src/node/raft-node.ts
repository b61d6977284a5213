// The server's Raft node: one RaftCore driven by the shared Ready loop (ready-loop.ts) over the
// server's real ports: the durable log (raft-log.ts: LevelDB, with a pending-restore store beside it),
// the snapshot store and the state machine (fsm/), the peer transport (gRPC). A timer ticks the core;
// messages step it. This file holds what only a server has: proposals and reads waiting for their
// outcome, the public operations, status for the server layer, and the order of startup and close.
//
// Disk layout under dataDir:
//   raft/log       LevelDB: term and vote, the log's committed base, the entries after it and the
//                  trailing entries kept at or below it
//   raft/pending   LevelDB, only while a user restore is pending: its base and the entries after it
//   snapshots/     snapshot store (state.bin + meta.json per snapshot, last N kept)
//   fsm/           the state machine's LevelDB

import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { MiB, unbound } from '../base/index.js';
import { type ApplyResult, Fsm, newDirFor, restoreInto } from '../fsm/index.js';
import {
  RaftCore,
  SeededRandom,
  bootstrapState,
  type Configuration,
  type CoreEvent,
  type Entry,
  type Index,
  type InitialState,
  type MembershipChange,
  type Message,
  type NodeId,
  type RandomSource,
  type Ready,
  type Refusal,
  type SnapshotMeta,
  type SoftState,
  type Term,
} from '../raft/index.js';
import { SnapshotStore } from '../storage/index.js';
import type { PeerTransport } from '../transport/index.js';
import { NodeError } from './errors.js';
import { RaftLog } from './raft-log.js';
import { ReadyLoop } from './ready-loop.js';
import { SnapshotWork } from './snapshot-work.js';

export interface RaftNodeOptions {
  readonly id: NodeId;
  /** This server's RPC address, as other servers reach it (carried in configurations). */
  readonly address: string;
  readonly dataDir: string;
  readonly logger: Logger;
  /** Listening already; the node installs its handlers. */
  readonly transport: PeerTransport;
  readonly tickMs: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  /** Entry bytes per append message; far below gRPC's 4 MiB message limit. */
  readonly maxMessageBytes: number;
  readonly maxInflightMessages: number;
  /** Take a snapshot once this many entries were applied since the last one (raft_snapshot_threshold). */
  readonly snapshotThresholdEntries: number;
  /** Entries kept (in memory and on disk) below a snapshot for followers a little behind (raft_trailing_logs). */
  readonly trailingEntries: number;
  /**
   * Also take a snapshot once this many bytes of entry data were applied since the last one. The core
   * holds the log above its snapshot in memory; counting entries alone would let large values grow it
   * to gigabytes (8,192 entries of 512 KiB are 4 GiB). Default 256 MiB.
   */
  readonly snapshotThresholdBytes?: number;
  /** Trailing entries are also limited to this many bytes of entry data. Default 64 MiB. */
  readonly trailingBytes?: number;
  readonly snapshotsRetained: number;
  readonly random?: RandomSource;
}

export interface NodeStatus {
  readonly id: NodeId;
  readonly role: SoftState['role'];
  readonly term: Term;
  readonly leader: NodeId;
  readonly leaderAddress: string;
  readonly commitIndex: Index;
  readonly appliedIndex: Index;
  readonly lastIndex: Index;
  /** Milliseconds since the leader was last heard (0 on the leader; -1 when never). */
  readonly lastContactMs: number;
  readonly configuration: Configuration;
  readonly configurationIndex: Index;
}

interface Waiter<T> {
  readonly term: Term;
  readonly resolve: (v: T) => void;
  readonly reject: (e: Error) => void;
}

interface ReadWaiter {
  index: Index | undefined;
  readonly resolve: (index: Index) => void;
  readonly reject: (e: Error) => void;
}

const defaultSnapshotThresholdBytes = 256 * MiB;
const defaultTrailingBytes = 64 * MiB;

/** How long close() waits for a round in progress, and for snapshot work to stop. */
const closeRoundBoundMs = 2_000;
const scratchDirName = 'tmp';
const closeSnapshotBoundMs = 5_000;

const restoreInProgress = (): NodeError =>
  new NodeError('aborted-by-restore', 'a snapshot restore is in progress on the leader; the write was not applied. Retry once the restore completes');

function sameMeta(a: SnapshotMeta, b: SnapshotMeta): boolean {
  return a.index === b.index && a.term === b.term && a.configurationIndex === b.configurationIndex;
}

const leadershipLost = (): NodeError =>
  new NodeError('unknown-outcome', 'leadership lost while committing log; the write may or may not have been applied');

export class RaftNode {
  readonly id: NodeId;
  readonly fsm: Fsm;
  private readonly o: RaftNodeOptions;
  private readonly log: Logger;
  private readonly raftLog: RaftLog;
  private readonly snapshots: SnapshotStore;
  private readonly snapshotWork: SnapshotWork;
  private readonly loop: ReadyLoop<Promise<void>>;
  private readonly ticker: NodeJS.Timeout;
  private closed = false;
  private fatalError: Error | undefined;
  private readonly proposals = new Map<Index, Waiter<ApplyResult>>();
  private readonly reads = new Map<number, ReadWaiter>();
  /** appliedThrough's waiters, released after each round; a Set, so a waiter that times out leaves in O(1). */
  private readonly applyWaiters = new Set<{ readonly index: Index; readonly resolve: (ok: boolean) => void; readonly timer: ReturnType<typeof setTimeout> }>();
  private caughtUpWaiters: Array<{ readonly resolve: () => void; readonly reject: (e: Error) => void }> = [];
  private nextReadContext = 1;
  /** Set while a user restore is being prepared: writes are refused until it is placed. */
  private restoring: { readonly since: number } | undefined;
  /** The pending restore as last persisted (tracked to delete its bytes once it is dropped). */
  private persistedPending: SnapshotMeta | undefined;
  private lastLeaderContact = -1;
  /** When each peer's last Raft message arrived (performance.now(): monotonic). */
  private readonly heardFrom = new Map<NodeId, number>();
  private soft: SoftState;
  private configurationIndexSeen = -1;
  private readonly listeners = new Set<(s: NodeStatus) => void>();
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  private constructor(o: RaftNodeOptions, raftLog: RaftLog, snapshots: SnapshotStore, fsm: Fsm, init: InitialState) {
    this.o = o;
    this.id = o.id;
    this.log = o.logger;
    this.raftLog = raftLog;
    this.snapshots = snapshots;
    this.fsm = fsm;
    const core = this.newCore(init);
    this.soft = core.softState();
    this.closedPromise = new Promise((r) => (this.resolveClosed = r));
    this.loop = new ReadyLoop<Promise<void>>(core, {
      log: raftLog,
      stateMachine: {
        installSnapshot: (meta) => this.installSnapshot(meta),
        apply: (entries) => this.applyEntries(entries),
      },
      transport: {
        send: (m) => {
          if (m.type === 'snapshot') void this.snapshotWork.send(m);
          else o.transport.send(m);
        },
        // Node's HTTP/2 sessions write what gRPC queued from a native immediate, which runs before the
        // JavaScript immediates of the same turn: once this one fires, the frames are on the socket
        // (why the loop waits on it: src/node/README.md).
        flush: () => new Promise<void>((resolve) => setImmediate(resolve)),
      },
      schedule: (f) => void setImmediate(f),
      wait: (w, resume, fail) => void w.then(resume, fail),
      afterRound: (rd) => this.afterRound(rd),
      onFatal: (e) => this.stopOnFatal(e),
    });
    this.snapshotWork = new SnapshotWork({
      core: () => this.loop.core,
      fsm,
      snapshots,
      log: raftLog,
      transport: o.transport,
      logger: this.log,
      policy: {
        thresholdEntries: o.snapshotThresholdEntries,
        thresholdBytes: o.snapshotThresholdBytes ?? defaultSnapshotThresholdBytes,
        trailingEntries: o.trailingEntries,
        trailingBytes: o.trailingBytes ?? defaultTrailingBytes,
      },
      checkOpen: () => this.checkOpen(),
      isClosed: () => this.closed,
      scratchDir: join(o.dataDir, scratchDirName),
      kick: () => this.loop.kick(),
    });
    const base = init.snapshot?.index ?? 0;
    for (const e of init.entries) if (e.index > base && e.index <= init.applied) this.snapshotWork.noteApplied(e.data.byteLength);
    // A batch that failed to land after its results were answered: this state no longer holds them.
    fsm.whenWriteFails((e) => this.stopOnFatal(e));
    o.transport.onMessage((m) => this.step(m));
    o.transport.onSnapshot((header, data) => this.snapshotWork.receive(header.message, data));
    this.updatePeers();
    this.ticker = setInterval(() => this.tick(), o.tickMs);
    this.ticker.unref?.();
    this.loop.kick();
  }

  private get core(): RaftCore {
    return this.loop.core;
  }

  /** Opens (or creates) the server's state under dataDir and starts the Raft loop. */
  static async open(o: RaftNodeOptions): Promise<RaftNode> {
    const raftDir = join(o.dataDir, 'raft');
    await mkdir(raftDir, { recursive: true });
    const { log: raftLog, loaded } = await RaftLog.open(raftDir, o.logger);
    // The base and a pending restore are never deleted by retention, whatever their rank.
    let protect: () => SnapshotMeta[] = () => [];
    const snapshots = await SnapshotStore.open(join(o.dataDir, 'snapshots'), { retain: o.snapshotsRetained, protect: () => protect() });
    // Snapshots above the log's base other than a pending restore will never be used: an abandoned
    // restore, or bytes stored before a crash cut their hand-over short. They would rank as the
    // newest and push the base out of retention.
    const keep = [loaded.snapshot, loaded.pendingRestore].filter((m): m is SnapshotMeta => m !== undefined);
    for (const s of await snapshots.list()) {
      if (s.meta.index <= (loaded.snapshot?.index ?? 0) || keep.some((m) => m.index === s.meta.index && m.term === s.meta.term)) continue;
      await snapshots.remove(s.id);
      o.logger.info({ event: 'snapshot-discarded', index: s.meta.index, term: s.meta.term }, 'removed a snapshot above the log base that will not be used');
    }
    await rm(join(o.dataDir, scratchDirName), { recursive: true, force: true });
    await mkdir(join(o.dataDir, scratchDirName), { recursive: true });
    const fsm = await Fsm.open(join(o.dataDir, 'fsm'));
    const init: InitialState = {
      hardState: loaded.hardState,
      ...(loaded.snapshot !== undefined ? { snapshot: loaded.snapshot } : {}),
      ...(loaded.pendingRestore !== undefined ? { pendingRestore: loaded.pendingRestore } : {}),
      entries: loaded.entries,
      applied: Math.min(fsm.appliedIndex(), loaded.lastMainIndex),
    };
    o.logger.info(
      { event: 'raft-open', term: init.hardState.term, applied: init.applied, lastIndex: lastOf(init.entries) ?? init.snapshot?.index ?? 0 },
      'raft state loaded',
    );
    const node = new RaftNode(o, raftLog, snapshots, fsm, init);
    node.persistedPending = loaded.pendingRestore;
    protect = () => {
      const pending = node.core.pendingRestore();
      return pending === undefined ? [node.core.snapshotMeta()] : [node.core.snapshotMeta(), pending];
    };
    return node;
  }

  /** A directory for scratch files (a save's state.bin, a restore's upload), emptied at every open. */
  get scratchDir(): string {
    return join(this.o.dataDir, scratchDirName);
  }

  // ------------------------------------------------------------------------------------------
  // Public operations
  // ------------------------------------------------------------------------------------------

  /**
   * True for a server that has never been part of a cluster: it holds no log. (Its term may have
   * moved: a founder's vote request reaches it before it has found its peers.)
   */
  isFresh(): boolean {
    return this.core.lastIndex() === 0 && this.core.snapshotMeta().index === 0;
  }

  /** Makes a fresh server the founding member of a cluster with `configuration` (all founders must agree). */
  async bootstrap(configuration: Configuration): Promise<void> {
    if (!this.isFresh()) throw new NodeError('bad-request', `${this.id} already has Raft state; it cannot bootstrap`);
    await this.loop.hold();
    try {
      if (!this.isFresh()) throw new NodeError('bad-request', `${this.id} already has Raft state; it cannot bootstrap`);
      const base = bootstrapState(configuration);
      // Keep a term (and vote) this server may already have reached by answering a founder's vote.
      const current = this.core.hardState();
      const init = current.term >= base.hardState.term ? { ...base, hardState: current } : base;
      await this.raftLog.initialize(init.entries, init.hardState === current ? undefined : init.hardState);
      this.loop.replaceCore(this.newCore(init));
      this.soft = this.core.softState();
      this.updatePeers();
      this.log.info({ event: 'bootstrap', servers: configuration.servers.map((s) => s.id) }, 'bootstrapped a new cluster');
    } finally {
      this.loop.release();
    }
  }

  /** Proposes a write and resolves with what applying it produced (on this server, the leader). */
  propose(data: Uint8Array): Promise<ApplyResult> {
    this.checkOpen();
    if (this.restoring !== undefined) return Promise.reject(restoreInProgress());
    const r = this.core.propose(data);
    if (!r.ok) return Promise.reject(refusalError(r));
    this.loop.kick();
    return this.waitApplied(r.index, r.term);
  }

  /** Resolves once this server may serve a linearizable read from its state machine (ReadIndex). */
  readBarrier(): Promise<Index> {
    this.checkOpen();
    const context = this.nextReadContext++;
    const r = this.core.readIndex(context);
    if (!r.ok) return Promise.reject(refusalError(r));
    this.loop.kick();
    return new Promise((resolve, reject) => this.reads.set(context, { index: undefined, resolve, reject }));
  }

  /**
   * On the leader, a follower's read round: the read index, and what the follower needs to learn
   * that it is committed (this term, and the term of the entry there). Without a heartbeat round
   * when this leader and the follower are a quorum by themselves (RaftCore.readIndexConfirmedBy);
   * otherwise, and for a caller that did not say who it is (an older server), through readBarrier.
   */
  async readIndexFor(caller: { readonly from: NodeId; readonly term: Term } | undefined): Promise<{ index: Index; term: Term; indexTerm: Term }> {
    this.checkOpen();
    const confirmed = caller === undefined ? undefined : this.core.readIndexConfirmedBy(caller.from, caller.term);
    const index = confirmed ?? (await this.readBarrier());
    // After a round the log may have been compacted past `index`: indexTerm 0 then, and the follower
    // learns the commit from the leader's next message instead (learnCommit finds no such entry).
    return { index, term: this.core.currentTerm(), indexTerm: this.core.termAt(index) ?? 0 };
  }

  /** On a follower: the leader's answer to a read round says `index` is committed (RaftCore.learnCommit). */
  learnCommit(term: Term, index: Index, indexTerm: Term): void {
    if (this.closed) return;
    this.core.learnCommit(term, index, indexTerm);
    this.loop.kick();
  }

  /**
   * Resolves true once this server's state machine has applied `index`; false after `timeoutMs`, or
   * when the node closes first.
   */
  appliedThrough(index: Index, timeoutMs: number): Promise<boolean> {
    if (this.fsm.appliedIndex() >= index) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const w = {
        index,
        resolve,
        timer: setTimeout(() => {
          this.applyWaiters.delete(w);
          resolve(false);
        }, timeoutMs),
      };
      this.applyWaiters.add(w);
    });
  }

  private releaseApplyWaiters(): void {
    if (this.applyWaiters.size === 0) return;
    const applied = this.fsm.appliedIndex();
    for (const w of this.applyWaiters) {
      if (w.index > applied) continue;
      this.applyWaiters.delete(w);
      clearTimeout(w.timer);
      w.resolve(true);
    }
  }

  /**
   * Resolves once this server leads and has applied the no-op that opened its term, and with it
   * every write an earlier leader acknowledged. A new leader may hold such a write in its log
   * without knowing it committed (followers learn commits from the leader's next message): until
   * this resolves, a read served from its state machine could miss it. Rejects with `not-leader`
   * when this server does not lead, or stops leading first.
   */
  leaderCaughtUp(): Promise<void> {
    this.checkOpen();
    if (this.isCaughtUpLeader()) return Promise.resolve();
    if (this.core.currentRole() !== 'leader') return Promise.reject(this.notLeader());
    return new Promise((resolve, reject) => this.caughtUpWaiters.push({ resolve, reject }));
  }

  private isCaughtUpLeader(): boolean {
    const start = this.core.termStartIndex();
    return start > 0 && this.fsm.appliedIndex() >= start;
  }

  private notLeader(): NodeError {
    return new NodeError('not-leader', `${this.id} is not the leader`, this.core.currentLeader());
  }

  private releaseCaughtUp(): void {
    if (this.caughtUpWaiters.length === 0) return;
    const leading = this.core.currentRole() === 'leader';
    if (leading && !this.isCaughtUpLeader()) return;
    const waiters = this.caughtUpWaiters;
    this.caughtUpWaiters = [];
    for (const w of waiters) {
      if (leading) w.resolve();
      else w.reject(this.notLeader());
    }
  }

  /** Proposes a membership change and resolves once it is applied here. */
  async changeMembership(change: MembershipChange): Promise<Index> {
    this.checkOpen();
    if (this.restoring !== undefined) throw restoreInProgress();
    const r = this.core.proposeMembership(change);
    if (!r.ok) throw refusalError(r);
    this.loop.kick();
    await this.waitApplied(r.index, this.core.currentTerm());
    return r.index;
  }

  /**
   * Restores the whole state through Raft, as hashicorp/raft's Restore: the restore is placed at
   * R = max(last index, externalIndex) + 1 and this resolves once it and the no-op after it are
   * committed and applied here. `stateBinFor(R)` gives the state.bin to store for it (already
   * validated by the caller; it may write R into its indexes, which is why it is asked for R).
   *
   * Steps, each closing a way a restore could go wrong:
   * 1. From here until the restore is placed, new writes and membership changes are refused with
   *    `aborted-by-restore` (a message naming the restore), so the log cannot grow and R holds.
   * 2. The bytes are written and fsynced to the snapshot store under R, while the loop runs on
   *    (heartbeats go out however long this takes).
   * 3. With the loop held: if the placement is still R, the snapshot is committed (renamed) and
   *    only then does the core take the restore. A failure up to here leaves the core untouched and
   *    the snapshot discarded: the leader goes on serving the old state.
   * Rejects if leadership is lost before the no-op commits (the restore is then abandoned, or may
   * still commit under the next leader: its outcome is unknown, as Raft's).
   */
  async userRestore(stateBinFor: (restoreIndex: Index) => AsyncIterable<Uint8Array>, externalIndex: Index): Promise<SnapshotMeta> {
    this.checkOpen();
    if (this.restoring !== undefined) {
      throw new NodeError('unavailable', 'another snapshot restore is in progress on this server; nothing was restored, retry once it completes');
    }
    const restoring = { since: performance.now() };
    this.restoring = restoring;
    try {
      for (let attempt = 1; ; attempt++) {
        const predicted = this.core.userRestorePlacement(externalIndex);
        if (!predicted.ok) throw refusalError(predicted);
        const meta = predicted.snapshot;
        const sink = await this.snapshotWork.prepare(meta, stateBinFor(meta.index));
        let applied: Promise<ApplyResult> | undefined;
        let placedAgain = false;
        await this.loop.hold();
        try {
          const now = this.core.userRestorePlacement(externalIndex);
          if (!now.ok) throw refusalError(now);
          placedAgain = sameMeta(now.snapshot, meta);
          if (placedAgain) {
            await sink.close();
            const r = this.core.userRestore(externalIndex);
            if (!r.ok) throw refusalError(r); // cannot happen: the placement was just checked
            this.restoring = undefined; // writes from here on are placed after the restore
            // Nothing applies while the loop is held, so this waiter is in place before any outcome.
            applied = this.waitApplied(meta.index + 1, meta.term); // the no-op that follows the restore
            this.log.info({ event: 'restore', index: meta.index, term: meta.term }, 'user restore staged; waiting for it to commit');
          }
        } finally {
          if (!placedAgain || applied === undefined) await sink.cancel();
          this.loop.release();
        }
        if (applied !== undefined) {
          await applied;
          return meta;
        }
        // The placement moved (a membership change or a new term in between): write it again.
        if (attempt >= 3) throw new NodeError('retry', 'the cluster changed while the restore was being prepared; nothing was restored, retry');
      }
    } finally {
      if (this.restoring === restoring) this.restoring = undefined;
    }
  }

  transferLeadership(to: NodeId): void {
    this.checkOpen();
    const r = this.core.transferLeadership(to);
    if (!r.ok) throw refusalError(r);
    this.loop.kick();
  }

  status(): NodeStatus {
    const c = this.core;
    const leader = c.currentLeader();
    const configuration = c.configuration();
    return {
      id: this.id,
      role: c.currentRole(),
      term: c.currentTerm(),
      leader,
      leaderAddress: leader === this.id ? this.o.address : configuration.servers.find((s) => s.id === leader)?.address ?? '',
      commitIndex: c.commitIndex(),
      appliedIndex: c.appliedIndex(),
      lastIndex: c.lastIndex(),
      lastContactMs: c.currentRole() === 'leader' ? 0 : this.lastLeaderContact < 0 ? -1 : Math.round(performance.now() - this.lastLeaderContact),
      configuration,
      configurationIndex: c.configurationIndex(),
    };
  }

  /**
   * Milliseconds since each peer's last Raft message reached this server (absent: never since start).
   * A leader hears every follower each heartbeat; a follower hears only the leader (and candidates).
   */
  peerSilenceMs(): ReadonlyMap<NodeId, number> {
    const now = performance.now();
    return new Map([...this.heardFrom].map(([id, at]) => [id, now - at]));
  }

  /** The election timeout in ms (its shortest draw). */
  electionTimeoutMs(): number {
    return this.o.tickMs * this.o.electionTimeoutTicks;
  }

  /** On the leader: the highest index known replicated to each follower (empty elsewhere). */
  replicationMatch(): ReadonlyMap<NodeId, Index> {
    return new Map([...this.core.followerProgress()].map(([id, p]) => [id, p.match]));
  }

  /** Called after every change of role, leader or configuration. */
  onChange(listener: (s: NodeStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves when the node has stopped (closed, or stopped by a fatal error; see fatal()). */
  get closedSignal(): Promise<void> {
    return this.closedPromise;
  }

  /** The error that stopped the node, if one did. */
  fatal(): Error | undefined {
    return this.fatalError;
  }

  async close(): Promise<void> {
    if (this.closed) return this.closedPromise;
    this.closed = true;
    clearInterval(this.ticker);
    this.loop.stop();
    this.failAll(new NodeError('unavailable', 'the server is shutting down'));
    // Let a round in progress finish its writes before the stores close (bounded: a disk that
    // hangs for good must not hang shutdown with it).
    await within(this.loop.idle(), closeRoundBoundMs);
    // Snapshot work stops at its next chunk once closed; a receive whose sender went quiet is not
    // waited for past the bound (its temp file is removed by the next open).
    await within(this.snapshotWork.settled(), closeSnapshotBoundMs);
    // Each store is closed even when another fails to; a failure is logged, as there is no one
    // left to report it to and the next open recovers from whatever state the disk holds.
    for (const [what, close] of [
      ['raft log', () => this.raftLog.close()],
      ['state machine', () => this.fsm.close()],
    ] as const) {
      try {
        await close();
      } catch (e) {
        this.log.warn({ event: 'close-failed', store: what, err: (e as Error).message }, `closing the ${what} failed`);
      }
    }
    this.resolveClosed();
  }

  // ------------------------------------------------------------------------------------------
  // Inputs
  // ------------------------------------------------------------------------------------------

  private tick(): void {
    if (this.closed) return;
    this.loop.tick();
  }

  private step(m: Message): void {
    if (this.closed) return;
    // Durations are measured on the monotonic clock: a wall clock stepped by NTP moves neither.
    const now = performance.now();
    this.heardFrom.set(m.from, now);
    if ((m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot') && m.term >= this.core.currentTerm()) {
      this.lastLeaderContact = now;
    }
    this.loop.step(m);
  }

  // ------------------------------------------------------------------------------------------
  // The state machine port
  // ------------------------------------------------------------------------------------------

  private async installSnapshot(meta: SnapshotMeta): Promise<void> {
    const info = await this.snapshotWork.find(meta);
    const target = newDirFor(join(this.o.dataDir, 'fsm'));
    await rm(target, { recursive: true, force: true });
    // A received snapshot was built into a database as it was stored (SnapshotWork.prepare): move it in.
    const built = await this.snapshotWork.takePrebuilt(meta);
    if (built !== undefined) {
      await rename(built, target);
    } else {
      const opened = await this.snapshots.open(info.id);
      await restoreInto(target, opened.stream, { appliedIndex: meta.index, appliedTerm: meta.term, expectedBytes: info.size });
    }
    await this.fsm.swapIn(target);
    this.log.info({ event: 'snapshot-installed', index: meta.index, term: meta.term, bytes: info.size }, 'state machine restored from snapshot');
    this.snapshotWork.noteInstalled();
    // A user restore (the pending restore, promoted in this round) skips the entries below it that
    // had not committed when it was placed: they never apply. Any other snapshot includes every
    // committed entry up to its index, so a write still waiting here may be in it.
    const userRestore = this.persistedPending !== undefined && sameMeta(this.persistedPending, meta);
    for (const [index, w] of this.proposals) {
      if (index <= meta.index) {
        this.proposals.delete(index);
        w.reject(
          userRestore
            ? new NodeError('aborted-by-restore', `overtaken by a snapshot restore at index ${meta.index}; the write was not applied`)
            : new NodeError('unknown-outcome', `a snapshot at index ${meta.index} replaced this server's state before it saw the write applied; it may or may not have been applied`),
        );
      }
    }
  }

  private applyEntries(entries: readonly Entry[]): Promise<void> | undefined {
    // Entries the FSM kept from before a crash are skipped; the rest go in as one LevelDB batch.
    const fresh = entries.filter((e) => e.index > this.fsm.appliedIndex());
    if (fresh.length === 0) return undefined;
    return this.applyBatch(fresh);
  }

  private async applyBatch(fresh: readonly Entry[]): Promise<void> {
    for (const e of fresh) this.snapshotWork.noteApplied(e.data.byteLength);
    const results = await this.fsm.applyBatch(
      fresh.map((e) => (e.kind === 'normal' ? { index: e.index, term: e.term, data: e.data } : { index: e.index, term: e.term })),
    );
    fresh.forEach((e, i) => {
      const w = this.proposals.get(e.index);
      if (w === undefined) return;
      this.proposals.delete(e.index);
      if (w.term === e.term) w.resolve(results[i] ?? { kind: 'noop' });
      else w.reject(new NodeError('unknown-outcome', 'leadership lost while committing log; the write was not applied'));
    });
  }

  // ------------------------------------------------------------------------------------------
  // After each round
  // ------------------------------------------------------------------------------------------

  /**
   * Follows the pending restore as the round made it durable; once one is dropped (abandoned,
   * truncated, or replaced by another snapshot) and that drop is on disk, its bytes are deleted.
   * Before the drop is durable they must stay: a crash would bring the pending restore back.
   */
  private notePersistedRestore(rd: Ready): void {
    const before = this.persistedPending;
    if (rd.pendingRestore !== undefined && rd.pendingRestore !== null) this.persistedPending = rd.pendingRestore;
    else if (rd.pendingRestore === null) this.persistedPending = undefined;
    else if (rd.snapshot !== undefined && before !== undefined) this.persistedPending = undefined;
    if (before === undefined || (this.persistedPending !== undefined && sameMeta(before, this.persistedPending))) return;
    const base = this.core.snapshotMeta();
    if (base.index === before.index && base.term === before.term) return; // promoted: it is the base now
    this.snapshotWork.discard(before, 'the pending restore was dropped');
  }

  private afterRound(rd: Ready): void {
    this.notePersistedRestore(rd);
    for (const rs of rd.readStates) {
      const w = this.reads.get(rs.context);
      if (w !== undefined) w.index = rs.index;
    }
    this.releaseReads();
    this.releaseApplyWaiters();
    this.releaseCaughtUp();
    const s = rd.softState;
    const changed = s.role !== this.soft.role || s.leader !== this.soft.leader || s.term !== this.soft.term;
    if (changed) {
      if (this.soft.role === 'leader' && s.role !== 'leader') {
        // Uncommitted proposals may still commit under the next leader, or not: the outcome is unknown.
        for (const [index, w] of this.proposals) {
          if (index > this.core.commitIndex()) {
            this.proposals.delete(index);
            w.reject(leadershipLost());
          }
        }
        for (const [ctx, w] of this.reads) {
          this.reads.delete(ctx);
          w.reject(new NodeError('no-leader', 'leadership lost before the read was confirmed'));
        }
      }
      this.log.info({ event: 'raft-state', role: s.role, leader: s.leader, term: s.term, commit: this.core.commitIndex() }, `${s.role} in term ${s.term}`);
      this.soft = s;
    }
    if (this.core.configurationIndex() !== this.configurationIndexSeen) {
      this.configurationIndexSeen = this.core.configurationIndex();
      this.updatePeers();
      this.log.info(
        { event: 'configuration', index: this.configurationIndexSeen, term: s.term, servers: this.core.configuration().servers },
        'cluster configuration changed',
      );
    }
    if (changed || this.configurationIndexSeen !== -1) for (const l of this.listeners) l(this.status());
    this.snapshotWork.maybeTake();
  }

  private releaseReads(): void {
    const applied = this.fsm.appliedIndex();
    for (const [ctx, w] of this.reads) {
      if (w.index !== undefined && w.index <= applied) {
        this.reads.delete(ctx);
        w.resolve(w.index);
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // Helpers
  // ------------------------------------------------------------------------------------------

  private newCore(init: InitialState): RaftCore {
    const o = this.o;
    return new RaftCore({
      id: o.id,
      electionTimeoutTicks: o.electionTimeoutTicks,
      heartbeatIntervalTicks: o.heartbeatIntervalTicks,
      random: o.random ?? electionRandom(),
      maxMessageBytes: o.maxMessageBytes,
      maxInflightMessages: o.maxInflightMessages,
      initial: init,
      // The core names its node in every event; a logger that binds `node` already must not write it twice.
      logger: (e: CoreEvent) => this.log.info(unbound(this.log, { ...e }), e.event),
    });
  }

  private updatePeers(): void {
    for (const s of this.core.configuration().servers) {
      if (s.id !== this.id && s.address !== undefined) this.o.transport.setPeer(s.id, s.address);
    }
  }

  /** Lets the transport reach a server not (yet) in the configuration, e.g. one asking to join. */
  addPeerAddress(id: NodeId, address: string): void {
    if (id !== this.id) this.o.transport.setPeer(id, address);
  }

  private waitApplied(index: Index, term: Term): Promise<ApplyResult> {
    return new Promise((resolve, reject) => this.proposals.set(index, { term, resolve, reject }));
  }

  private checkOpen(): void {
    if (this.closed) throw new NodeError('unavailable', this.fatalError === undefined ? 'the server is shutting down' : `the server stopped: ${this.fatalError.message}`);
  }

  private failAll(e: Error): void {
    for (const w of this.proposals.values()) w.reject(e);
    this.proposals.clear();
    for (const w of this.reads.values()) w.reject(e);
    this.reads.clear();
    for (const w of this.caughtUpWaiters) w.reject(e);
    this.caughtUpWaiters = [];
    for (const w of this.applyWaiters) {
      clearTimeout(w.timer);
      w.resolve(false);
    }
    this.applyWaiters.clear();
  }

  /** A storage failure or a broken invariant: the node must not go on (its disk state is unknown). */
  private stopOnFatal(e: Error): void {
    if (this.fatalError !== undefined) return;
    this.fatalError = e;
    this.log.fatal({ event: 'fatal', err: e.message, stack: e.stack }, 'the Raft node stopped');
    void this.close();
  }
}

function refusalError(r: Refusal): NodeError {
  switch (r.code) {
    case 'not-leader':
      return new NodeError('not-leader', r.message, r.leader);
    case 'leader-not-ready':
    case 'transfer-in-progress':
    case 'restore-pending':
    case 'config-change-pending':
      return new NodeError('retry', r.message, r.leader);
    case 'unknown-server':
    case 'invalid-change':
      return new NodeError('bad-request', r.message, r.leader);
  }
}

function lastOf(entries: readonly Entry[]): Index | undefined {
  return entries.length === 0 ? undefined : (entries[entries.length - 1] as Entry).index;
}

/** Resolves when `p` settles or after `ms`, whichever comes first. */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

/**
 * The randomness of a server's election timeouts, seeded from the operating system's entropy. It was
 * seeded from the clock in milliseconds and the process id: servers started in one process within a
 * millisecond (the in-process tests), or in containers that each run as PID 1 and started in the same
 * millisecond, drew the same timeouts, so after losing their leader two of them timed out, campaigned
 * and split the vote in lockstep, term after term, and never elected one.
 */
export function electionRandom(): RandomSource {
  return new SeededRandom(randomBytes(8).readBigUInt64LE(0));
}
