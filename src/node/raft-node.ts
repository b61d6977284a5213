// The runtime that drives one RaftCore: a timer for ticks, the peer transport for messages, the
// LevelDB log store and the snapshot store for durability, the FSM for application. Each Ready round
// is handled in the order its contract gives: persist (one batch, fsynced when the round says so),
// then send, then apply, then advance. Heartbeat traffic that claims nothing durable leaves at once,
// so it never waits behind a slow disk round or a snapshot install.
//
// Disk layout under dataDir:
//   raft/log       LevelDB: term and vote, the log's committed base, the entries after it and the
//                  trailing entries kept at or below it
//   raft/pending   LevelDB, only while a user restore is pending: its base and the entries after it
//   snapshots/     snapshot store (state.bin + meta.json per snapshot, last N kept)
//   fsm/           the state machine's LevelDB
//
// A pending restore sits above a hole in the log, which LogStore (gapless by design) cannot hold, so
// it lives in its own store whose base is the restore. Crash safety of the two-store steps:
//   set:     main batch first (truncating at the restore), then the pending store: a crash between
//            leaves no pending restore and an intact prefix.
//   drop:    pending store deleted (and the directory fsynced) before the main batch.
//   promote: one main batch makes the restore the base and moves the entries after it in; the
//            pending store is deleted after. A pending store whose base is not above the main base is
//            a leftover of that last step and is deleted at startup.

import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  type ApplyResult,
  Fsm,
  newDirFor,
  restoreInto,
} from '../fsm/index.js';
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
  type SnapshotMessage,
  type SnapshotMeta,
  type SoftState,
  type Term,
} from '../raft/index.js';
import { LogStore, SnapshotStore, fsyncDir, type PersistRound, type SnapshotInfo } from '../storage/index.js';
import type { PeerTransport } from '../transport/index.js';
import { NodeError } from './errors.js';

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

const MiB = 1024 * 1024;
const defaultSnapshotThresholdBytes = 256 * MiB;
const defaultTrailingBytes = 64 * MiB;

const leadershipLost = (): NodeError =>
  new NodeError('unknown-outcome', 'leadership lost while committing log; the write may or may not have been applied');

export class RaftNode {
  readonly id: NodeId;
  readonly fsm: Fsm;
  private readonly o: RaftNodeOptions;
  private readonly log: Logger;
  private readonly main: LogStore;
  private readonly snapshots: SnapshotStore;
  private pending: LogStore | undefined;
  private core: RaftCore;
  private readonly ticker: NodeJS.Timeout;
  private looping = false;
  /** While set, no Ready round starts (a restore's bytes are being stored). Ticks go on. */
  private held = false;
  private closed = false;
  private fatalError: Error | undefined;
  private readonly proposals = new Map<Index, Waiter<ApplyResult>>();
  private readonly reads = new Map<number, ReadWaiter>();
  private caughtUpWaiters: Array<{ readonly resolve: () => void; readonly reject: (e: Error) => void }> = [];
  private nextReadContext = 1;
  private lastLeaderContact = -1;
  private soft: SoftState;
  private snapshotting = false;
  /** Entry data bytes applied since the last snapshot was started (or installed, or since open). */
  private appliedBytesSinceSnapshot = 0;
  /** Snapshot work running beside the loop (taking one, receiving one): close() lets it stop first. */
  private readonly snapshotTasks = new Set<Promise<unknown>>();
  private configurationIndexSeen = -1;
  private readonly listeners = new Set<(s: NodeStatus) => void>();
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  private constructor(o: RaftNodeOptions, main: LogStore, pending: LogStore | undefined, snapshots: SnapshotStore, fsm: Fsm, init: InitialState) {
    this.o = o;
    this.id = o.id;
    this.log = o.logger;
    this.main = main;
    this.pending = pending;
    this.snapshots = snapshots;
    this.fsm = fsm;
    this.core = this.newCore(init);
    this.soft = this.core.softState();
    const base = init.snapshot?.index ?? 0;
    for (const e of init.entries) if (e.index > base && e.index <= init.applied) this.appliedBytesSinceSnapshot += e.data.byteLength;
    this.closedPromise = new Promise((r) => (this.resolveClosed = r));
    o.transport.onMessage((m) => this.step(m));
    o.transport.onSnapshot((header, data) => this.receiveSnapshot(header.message, data));
    this.updatePeers();
    this.ticker = setInterval(() => this.tick(), o.tickMs);
    this.ticker.unref?.();
    this.kick();
  }

  /** Opens (or creates) the server's state under dataDir and starts the Raft loop. */
  static async open(o: RaftNodeOptions): Promise<RaftNode> {
    const raftDir = join(o.dataDir, 'raft');
    await mkdir(raftDir, { recursive: true });
    const main = await LogStore.open(join(raftDir, 'log'));
    const snapshots = await SnapshotStore.open(join(o.dataDir, 'snapshots'), { retain: o.snapshotsRetained });
    const fsm = await Fsm.open(join(o.dataDir, 'fsm'));
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
        o.logger.info({ event: 'pending-restore-cleared' }, 'a leftover pending-restore store was removed');
      }
    }
    const mainEntries = pendingMeta === undefined ? state.entries : state.entries.filter((e) => e.index < pendingMeta!.index);
    const init: InitialState = {
      hardState: state.hardState,
      ...(state.snapshot !== undefined ? { snapshot: state.snapshot } : {}),
      ...(pendingMeta !== undefined ? { pendingRestore: pendingMeta } : {}),
      entries: [...mainEntries, ...pendingEntries],
      applied: Math.min(fsm.appliedIndex(), lastOf(mainEntries) ?? state.snapshot?.index ?? 0),
    };
    o.logger.info(
      { event: 'raft-open', term: init.hardState.term, applied: init.applied, lastIndex: lastOf(init.entries) ?? init.snapshot?.index ?? 0 },
      'raft state loaded',
    );
    return new RaftNode(o, main, pending, snapshots, fsm, init);
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
    const base = bootstrapState(configuration);
    // Keep a term (and vote) this server may already have reached by answering a founder's vote.
    const current = this.core.hardState();
    const init = current.term >= base.hardState.term ? { ...base, hardState: current } : base;
    await this.main.persist({ entries: init.entries, ...(init.hardState === current ? {} : { hardState: init.hardState }), sync: true });
    this.core = this.newCore(init);
    this.soft = this.core.softState();
    this.updatePeers();
    this.log.info({ event: 'bootstrap', servers: configuration.servers.map((s) => s.id) }, 'bootstrapped a new cluster');
    this.kick();
  }

  /** Proposes a write and resolves with what applying it produced (on this server, the leader). */
  propose(data: Uint8Array): Promise<ApplyResult> {
    this.checkOpen();
    const r = this.core.propose(data);
    if (!r.ok) return Promise.reject(refusalError(r));
    this.kick();
    return this.waitApplied(r.index, r.term);
  }

  /** Resolves once this server may serve a linearizable read from its state machine (ReadIndex). */
  readBarrier(): Promise<Index> {
    this.checkOpen();
    const context = this.nextReadContext++;
    const r = this.core.readIndex(context);
    if (!r.ok) return Promise.reject(refusalError(r));
    this.kick();
    return new Promise((resolve, reject) => this.reads.set(context, { index: undefined, resolve, reject }));
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
    const r = this.core.proposeMembership(change);
    if (!r.ok) throw refusalError(r);
    this.kick();
    await this.waitApplied(r.index, this.core.currentTerm());
    return r.index;
  }

  /**
   * Restores the whole state from `stateBin` (Consul's state.bin stream, already verified by the
   * caller) through Raft, as hashicorp/raft's Restore: the restore is placed at
   * max(last index, externalIndex) + 1 and resolves once it and the no-op after it are committed
   * and applied here. Rejects if leadership is lost first (the restore is then abandoned or may
   * still commit under the next leader: its outcome is unknown).
   */
  async userRestore(stateBin: AsyncIterable<Uint8Array>, externalIndex: Index): Promise<SnapshotMeta> {
    this.checkOpen();
    // No round may persist the pending restore before its bytes are durable in the snapshot store.
    this.held = true;
    try {
      while (this.looping) await sleep(1);
      const r = this.core.userRestore(externalIndex);
      if (!r.ok) throw refusalError(r);
      const meta = r.snapshot;
      const noop = { index: meta.index + 1, term: meta.term };
      const applied = this.waitApplied(noop.index, noop.term);
      const sink = await this.snapshots.create(meta);
      try {
        for await (const chunk of stateBin) await sink.write(chunk);
        await sink.close();
      } catch (e) {
        await sink.cancel().catch(() => undefined);
        // The core already holds the pending restore; without its bytes it cannot go on. The
        // leader steps down so that the cluster can carry on without it.
        this.stopOnFatal(new NodeError('internal', `storing the restore's bytes failed: ${(e as Error).message}`));
        throw e;
      }
      this.log.info({ event: 'restore', index: meta.index, term: meta.term }, 'user restore staged; waiting for it to commit');
      this.held = false;
      this.kick();
      await applied;
      return meta;
    } finally {
      this.held = false;
      this.kick();
    }
  }

  transferLeadership(to: NodeId): void {
    this.checkOpen();
    const r = this.core.transferLeadership(to);
    if (!r.ok) throw refusalError(r);
    this.kick();
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
      lastContactMs: c.currentRole() === 'leader' ? 0 : this.lastLeaderContact < 0 ? -1 : Date.now() - this.lastLeaderContact,
      configuration,
      configurationIndex: c.configurationIndex(),
    };
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
    this.failAll(new NodeError('unavailable', 'the server is shutting down'));
    // Let a round in progress finish its writes before the stores close.
    for (let i = 0; i < 200 && this.looping; i++) await sleep(10);
    // Snapshot work stops at its next chunk once closed; a receive whose sender went quiet is not
    // waited for past the bound (its temp file is removed by the next open).
    if (this.snapshotTasks.size > 0) await Promise.race([Promise.allSettled([...this.snapshotTasks]), sleep(5_000)]);
    await this.main.close().catch(() => undefined);
    await this.pending?.close().catch(() => undefined);
    await this.fsm.close().catch(() => undefined);
    this.resolveClosed();
  }

  // ------------------------------------------------------------------------------------------
  // Inputs
  // ------------------------------------------------------------------------------------------

  private tick(): void {
    if (this.closed) return;
    this.core.tick();
    this.sendUrgent();
    this.kick();
  }

  private step(m: Message): void {
    if (this.closed) return;
    if ((m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot') && m.term >= this.core.currentTerm()) {
      this.lastLeaderContact = Date.now();
    }
    this.core.step(m);
    this.sendUrgent();
    this.kick();
  }

  private sendUrgent(): void {
    for (const m of this.core.takeUrgentMessages()) this.o.transport.send(m);
  }

  // ------------------------------------------------------------------------------------------
  // The Ready loop
  // ------------------------------------------------------------------------------------------

  private kick(): void {
    if (this.looping || this.closed || this.held) return;
    this.looping = true;
    setImmediate(() => {
      this.loop().catch((e: unknown) => this.stopOnFatal(e as Error));
    });
  }

  private async loop(): Promise<void> {
    try {
      while (!this.closed && !this.held && this.core.hasReady()) {
        this.sendUrgent();
        const rd = this.core.ready();
        // A leader's appends claim nothing about its own disk (it counts itself toward commit only
        // once its write is durable, and its term was made durable before it campaigned), so they
        // leave before its fsync and the two overlap (thesis §10.2.1; etcd-raft does the same).
        const early = rd.softState.role === 'leader' && rd.hardState === undefined;
        if (early) for (const m of rd.messages) if (m.type === 'append') this.send(m);
        await this.persist(rd);
        for (const m of rd.messages) if (!(early && m.type === 'append')) this.send(m);
        await this.apply(rd);
        this.core.advance(rd);
        this.afterRound(rd);
      }
    } finally {
      this.looping = false;
    }
    if (!this.closed && this.core.hasReady()) this.kick();
  }

  private async persist(rd: Ready): Promise<void> {
    const main: { -readonly [K in keyof PersistRound]: PersistRound[K] } = { entries: [], sync: rd.mustSync };
    let pendingEntries: Entry[] = [];
    let pendingTruncate: Index | undefined;
    const pendingBase = this.pendingBaseIndex();
    let promoted = false;
    if (rd.snapshot !== undefined) {
      main.snapshotBase = rd.snapshot;
      if (this.pending !== undefined && pendingBase === rd.snapshot.index) {
        // The pending restore committed: its entries move into the main log in the same batch.
        const p = this.pending;
        const moved = p.lastIndex() > rd.snapshot.index ? await p.entries(rd.snapshot.index + 1, p.lastIndex() + 1) : [];
        main.entries = moved;
        promoted = true;
      } else if (this.pending !== undefined) {
        await this.dropPendingStore();
      }
    }
    if (rd.pendingRestore === null) await this.dropPendingStore();
    const newPending = rd.pendingRestore ?? undefined;
    const split = newPending?.index ?? (promoted ? undefined : this.pendingBaseIndex());
    if (rd.truncateFrom !== undefined) {
      if (split !== undefined && rd.truncateFrom > split) pendingTruncate = rd.truncateFrom;
      else main.truncateFrom = rd.truncateFrom;
    }
    const mainEntries = [...main.entries];
    for (const e of rd.entries) {
      if (split !== undefined && e.index > split) pendingEntries.push(e);
      else mainEntries.push(e);
    }
    main.entries = mainEntries;
    if (rd.hardState !== undefined) main.hardState = rd.hardState;
    if (main.snapshotBase !== undefined || main.truncateFrom !== undefined || main.entries.length > 0 || main.hardState !== undefined || rd.mustSync) {
      await this.main.persist(main);
    }
    if (promoted) await this.dropPendingStore();
    if (newPending !== undefined) {
      await this.dropPendingStore();
      const dir = join(this.o.dataDir, 'raft', 'pending');
      this.pending = await LogStore.open(dir);
      await this.pending.persist({ snapshotBase: newPending, entries: [], sync: true });
    }
    if (this.pending !== undefined && (pendingTruncate !== undefined || pendingEntries.length > 0)) {
      await this.pending.persist({
        ...(pendingTruncate !== undefined ? { truncateFrom: pendingTruncate } : {}),
        entries: pendingEntries,
        sync: rd.mustSync,
      });
      pendingEntries = [];
    }
  }

  private pendingBaseIndex(): Index | undefined {
    return this.pending?.base()?.index;
  }

  private async dropPendingStore(): Promise<void> {
    if (this.pending === undefined) return;
    const dir = this.pending.dir;
    await this.pending.close();
    this.pending = undefined;
    await removeDir(dir);
  }

  private send(m: Message): void {
    if (m.type === 'snapshot') {
      void this.sendSnapshot(m);
      return;
    }
    this.o.transport.send(m);
  }

  private async sendSnapshot(m: SnapshotMessage): Promise<void> {
    let ok = false;
    try {
      const info = await this.findSnapshot(m.snapshot);
      const opened = await this.snapshots.open(info.id);
      await this.o.transport.sendSnapshot({ message: m, sizeBytes: info.size, sha256: info.sha256 }, opened.stream);
      ok = true;
      this.log.info({ event: 'snapshot-sent', to: m.to, index: m.snapshot.index, bytes: info.size }, 'snapshot sent');
    } catch (e) {
      this.log.warn({ event: 'snapshot-send-failed', to: m.to, index: m.snapshot.index, err: (e as Error).message }, 'snapshot send failed');
    }
    if (!this.closed) {
      this.core.reportSnapshot(m.to, ok);
      this.kick();
    }
  }

  /** Stores an incoming snapshot's bytes durably; the core gets the message once this resolves. */
  private receiveSnapshot(m: SnapshotMessage, data: AsyncIterable<Uint8Array>): Promise<void> {
    return this.track(this.storeSnapshot(m, data));
  }

  private async storeSnapshot(m: SnapshotMessage, data: AsyncIterable<Uint8Array>): Promise<void> {
    this.checkOpen();
    const sink = await this.snapshots.create(m.snapshot);
    try {
      for await (const chunk of data) {
        this.checkOpen();
        await sink.write(chunk);
      }
      await sink.close();
    } catch (e) {
      await sink.cancel().catch(() => undefined);
      throw e;
    }
  }

  /** How many entries up to `index` to keep: at most trailingEntries, and at most trailingBytes of data. */
  private trailingCount(index: Index): number {
    const maxBytes = this.o.trailingBytes ?? defaultTrailingBytes;
    let bytes = 0;
    let count = 0;
    while (count < this.o.trailingEntries) {
      const e = this.core.entryAt(index - count);
      if (e === undefined || bytes + e.data.byteLength > maxBytes) break;
      bytes += e.data.byteLength;
      count++;
    }
    return count;
  }

  private track<T>(task: Promise<T>): Promise<T> {
    this.snapshotTasks.add(task);
    const untrack = (): void => void this.snapshotTasks.delete(task);
    task.then(untrack, untrack);
    return task;
  }

  private async findSnapshot(meta: SnapshotMeta): Promise<SnapshotInfo> {
    const found = (await this.snapshots.list()).find((s) => s.meta.index === meta.index && s.meta.term === meta.term);
    if (found === undefined) throw new NodeError('internal', `snapshot ${meta.term}/${meta.index} is not in the snapshot store`);
    return found;
  }

  private async apply(rd: Ready): Promise<void> {
    if (rd.applySnapshot !== undefined) {
      const meta = rd.applySnapshot;
      const info = await this.findSnapshot(meta);
      const opened = await this.snapshots.open(info.id);
      const target = newDirFor(join(this.o.dataDir, 'fsm'));
      await removeDir(target);
      await restoreInto(target, opened.stream, { appliedIndex: meta.index, appliedTerm: meta.term, expectedBytes: info.size });
      await this.fsm.swapIn(target);
      this.log.info({ event: 'snapshot-installed', index: meta.index, term: meta.term, bytes: info.size }, 'state machine restored from snapshot');
      this.appliedBytesSinceSnapshot = 0;
      for (const [index, w] of this.proposals) {
        if (index <= meta.index) {
          this.proposals.delete(index);
          w.reject(new NodeError('aborted-by-restore', `overtaken by a snapshot at index ${meta.index}; the write was not applied`));
        }
      }
    }
    // Entries the FSM kept from before a crash are skipped; the rest go in as one LevelDB batch.
    const fresh = rd.committedEntries.filter((e) => e.index > this.fsm.appliedIndex());
    if (fresh.length === 0) return;
    for (const e of fresh) this.appliedBytesSinceSnapshot += e.data.byteLength;
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

  private afterRound(rd: Ready): void {
    for (const rs of rd.readStates) {
      const w = this.reads.get(rs.context);
      if (w !== undefined) w.index = rs.index;
    }
    this.releaseReads();
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
    this.maybeSnapshot();
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

  private maybeSnapshot(): void {
    if (this.snapshotting || this.closed) return;
    const applied = this.core.appliedIndex();
    const entries = applied - this.core.snapshotMeta().index;
    const bytesDue = entries > 0 && this.appliedBytesSinceSnapshot >= (this.o.snapshotThresholdBytes ?? defaultSnapshotThresholdBytes);
    if (entries < this.o.snapshotThresholdEntries && !bytesDue) return;
    this.snapshotting = true;
    this.appliedBytesSinceSnapshot = 0;
    this.track(this.takeSnapshot())
      .catch((e: unknown) => {
        if (this.closed) this.log.info({ event: 'snapshot-abandoned' }, 'snapshot abandoned: the server is shutting down');
        else this.log.error({ event: 'snapshot-failed', err: (e as Error).message }, 'snapshot failed');
      })
      .finally(() => (this.snapshotting = false));
  }

  /** Streams a point-in-time FSM snapshot into the store, then compacts the log behind it. */
  private async takeSnapshot(): Promise<void> {
    const started = Date.now();
    const stateBin = await this.fsm.snapshot();
    try {
      this.checkOpen();
      if (this.core.termAt(stateBin.index) === undefined || stateBin.index <= this.core.snapshotMeta().index) return;
      const meta = this.core.snapshotMetaAt(stateBin.index);
      const sink = await this.snapshots.create(meta);
      try {
        for await (const chunk of stateBin) {
          this.checkOpen();
          await sink.write(chunk);
        }
      } catch (e) {
        await sink.cancel().catch(() => undefined);
        throw e;
      }
      const info = await sink.close();
      this.checkOpen(); // the snapshot is stored; compaction waits for the next start
      const first = this.core.compact(meta.index, this.trailingCount(meta.index));
      await this.main.compact(meta, { keepFrom: first });
      this.log.info(
        { event: 'snapshot', index: meta.index, term: meta.term, bytes: info.size, logFrom: first, ms: Date.now() - started },
        'snapshot taken and log compacted',
      );
    } finally {
      stateBin.close?.();
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
      random: o.random ?? new SeededRandom(BigInt(Date.now()) ^ BigInt(process.pid)),
      maxMessageBytes: o.maxMessageBytes,
      maxInflightMessages: o.maxInflightMessages,
      initial: init,
      logger: (e: CoreEvent) => this.log.info({ ...e }, e.event),
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

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await fsyncDir(join(dir, '..')).catch(() => undefined);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
