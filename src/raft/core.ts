import { assert, unreachable } from '../base/index.js';
import { RaftLog, initialSnapshot } from './log.js';
import { Progress, hasServer, isVoter, quorumSize, quorumValue, tallyVotes, voters } from './progress.js';
import type {
  AppendMessage,
  AppendResponseMessage,
  Configuration,
  CoreOptions,
  Entry,
  HardState,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  Index,
  MembershipChange,
  Message,
  NodeId,
  PlantedBug,
  Ready,
  ReadState,
  Refusal,
  RefusalCode,
  Result,
  Role,
  Server,
  SnapshotMessage,
  SnapshotMeta,
  SoftState,
  Term,
  VoteMessage,
  VoteResponseMessage,
} from './types.js';

interface PendingRead {
  readonly context: number;
  /** The commit index to wait for; assigned once the leader has committed an entry of its term. */
  index: Index;
  /** The heartbeat round that must reach a quorum; 0 while waiting for the first commit. */
  seq: number;
}

const emptyBytes = new Uint8Array(0);

/**
 * The Raft consensus core: a deterministic state machine with no I/O. See README.md beside this
 * file for the contract (inputs, the Ready batch and its order) and every departure from the paper.
 */
export class RaftCore {
  readonly id: NodeId;
  private readonly opts: CoreOptions;
  private readonly bugs: ReadonlySet<PlantedBug>;

  // Persistent state (mirrored to storage through Ready.hardState).
  private term: Term;
  private vote: NodeId;
  private readonly log: RaftLog;

  // Volatile state.
  private role: Role = 'follower';
  private leader: NodeId = '';
  private commit: Index;
  /** Everything up to here has been handed out for application in a Ready. */
  private applying: Index;
  /** Everything up to here is applied (acknowledged through advance). */
  private applied: Index;
  private config: Configuration;
  private configIndex: Index;

  // Time, in ticks.
  private nowTick = 0;
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout: number;

  // Elections.
  private votes = new Map<NodeId, boolean>();

  // Leadership.
  private progress = new Map<NodeId, Progress>();
  private leaderStartIndex: Index = 0;
  private transfer: { to: NodeId; elapsedTicks: number } | undefined;
  private readSeq = 0;
  private reads: PendingRead[] = [];
  /**
   * Reads wait for a round (seq 0). Invariant: at most one read round is in flight: reads that arrive
   * meanwhile wait, and all of them share the next round, which starts (in ready()) once the one in
   * flight is confirmed. So any number of concurrent reads costs one heartbeat per follower per round
   * trip, as etcd's read loop does, instead of one broadcast per read.
   */
  private readRoundWanted = false;
  /** Reads of the round in flight not yet released. */
  private readsInRound = 0;
  private pendingBroadcast = false;
  /**
   * The commit index moved: idle followers hear of it at the next tick (hashicorp/raft's
   * CommitTimeout), not at once. A follower with more to receive learns it from the next append;
   * announcing every commit at once doubles the messages per write for nothing the leader needs.
   */
  private announceCommit = false;

  // Work waiting to be handed out in the next Ready.
  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  private persistedHard: HardState;
  private unpersistedSnapshot: SnapshotMeta | undefined;
  private unpersistedPending: SnapshotMeta | null | undefined;
  private unpersistedTruncate: Index | undefined;
  /** The first log index not yet handed out for persistence. */
  private handedNext: Index;
  /** The last index known durable and matching the in-memory log (the leader's own match). */
  private durableLast: Index;
  private snapshotToApply: SnapshotMeta | undefined;
  private lastSoft: SoftState;

  constructor(opts: CoreOptions) {
    assert(opts.heartbeatIntervalTicks >= 1, 'options: heartbeatIntervalTicks >= 1');
    assert(opts.electionTimeoutTicks > opts.heartbeatIntervalTicks, 'options: election timeout > heartbeat');
    assert(opts.maxInflightMessages >= 1, 'options: maxInflightMessages >= 1');
    assert(opts.maxMessageBytes >= 1, 'options: maxMessageBytes >= 1');
    this.opts = opts;
    this.id = opts.id;
    this.bugs = opts.plantedBugs ?? new Set();
    const init = opts.initial;
    this.term = init.hardState.term;
    this.vote = init.hardState.vote;
    this.persistedHard = init.hardState;
    this.log = new RaftLog(init.snapshot ?? initialSnapshot, init.entries, init.pendingRestore);
    const snap = this.log.snapshot;
    assert(init.applied <= this.log.prefixLastIndex(), 'initial: applied <= last stored entry');
    this.applied = Math.max(init.applied, 0);
    this.commit = Math.max(this.applied, snap.index);
    if (this.applied < snap.index) this.snapshotToApply = snap;
    this.applying = this.applied;
    this.handedNext = this.log.lastIndex() + 1;
    this.durableLast = this.log.lastIndex();
    const c = this.log.configurationAt(this.log.lastIndex());
    this.config = c.configuration;
    this.configIndex = c.index;
    this.randomizedElectionTimeout = this.drawElectionTimeout();
    this.lastSoft = this.softState();
    this.checkInvariants();
  }

  // ------------------------------------------------------------------------------------------
  // Status
  // ------------------------------------------------------------------------------------------

  softState(): SoftState {
    return { role: this.role, leader: this.leader, term: this.term };
  }
  currentTerm(): Term {
    return this.term;
  }
  currentRole(): Role {
    return this.role;
  }
  currentLeader(): NodeId {
    return this.leader;
  }
  commitIndex(): Index {
    return this.commit;
  }
  appliedIndex(): Index {
    return this.applied;
  }
  /**
   * On a leader: the index of the no-op that opened its term (0 elsewhere). Once it is applied, the
   * state machine holds every entry an earlier leader committed.
   */
  termStartIndex(): Index {
    return this.role === 'leader' ? this.leaderStartIndex : 0;
  }
  lastIndex(): Index {
    return this.log.lastIndex();
  }
  lastTerm(): Term {
    return this.log.lastTerm();
  }
  firstIndex(): Index {
    return this.log.firstIndex();
  }
  termAt(index: Index): Term | undefined {
    return this.log.term(index);
  }
  entryAt(index: Index): Entry | undefined {
    return this.log.entry(index);
  }
  snapshotMeta(): SnapshotMeta {
    return this.log.snapshot;
  }
  pendingRestore(): SnapshotMeta | undefined {
    return this.log.pendingBase();
  }
  configuration(): Configuration {
    return this.config;
  }
  configurationIndex(): Index {
    return this.configIndex;
  }
  hardState(): HardState {
    return { term: this.term, vote: this.vote };
  }
  /** Per-follower replication state, for status pages (leader only; empty otherwise). */
  followerProgress(): ReadonlyMap<NodeId, Readonly<Progress>> {
    return this.progress;
  }
  transferTarget(): NodeId | undefined {
    return this.transfer?.to;
  }

  checkInvariants(): void {
    this.log.checkInvariants();
    assert(this.applied <= this.applying, 'applied <= applying');
    assert(this.applying <= this.commit || this.snapshotToApply !== undefined, 'applying <= commit');
    assert(this.commit <= this.log.lastIndex(), 'commit <= last index');
    const pending = this.log.pendingBase();
    if (pending !== undefined) assert(this.commit < pending.index, 'a pending restore is not committed');
    if (this.role === 'leader') assert(this.leader === this.id, 'a leader follows itself');
    if (this.role !== 'leader') assert(this.progress.size === 0, 'only a leader tracks progress');
    for (const pr of this.progress.values()) pr.checkInvariants();
  }

  // ------------------------------------------------------------------------------------------
  // Inputs
  // ------------------------------------------------------------------------------------------

  /** Advances logical time by one tick. */
  tick(): void {
    this.nowTick++;
    if (this.role === 'leader') {
      this.tickLeader();
      return;
    }
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.campaign(false);
    }
  }

  /** Starts an election now (through pre-vote), as if the election timeout had fired. */
  campaign(transfer = false): void {
    if (!this.promotable()) return;
    if (this.role === 'leader') return;
    if (transfer) {
      this.becomeCandidate();
      this.requestVotes(false, true);
    } else {
      this.becomePreCandidate();
      this.requestVotes(true, false);
    }
  }

  /** Proposes application data. Accepted proposals may still be lost; watch for their index. */
  propose(data: Uint8Array): Result<{ index: Index; term: Term }> {
    const refusal = this.refuseUnlessLeaderAccepting();
    if (refusal !== undefined) return refusal;
    const index = this.appendLeaderEntry('normal', data);
    return { ok: true, index, term: this.term };
  }

  proposeMembership(change: MembershipChange): Result<{ index: Index }> {
    const refusal = this.refuseUnlessLeaderAccepting();
    if (refusal !== undefined) return refusal;
    if (this.configIndex > this.commit) {
      return this.refuse(
        'config-change-pending',
        `configuration change at index ${this.configIndex} is not committed yet (commit index ` +
          `${this.commit}); retry once it commits`,
      );
    }
    // These two guards (one change at a time, and only after this term has committed) are also what
    // makes readIndexConfirmedBy safe: see there before relaxing them.
    if (!this.committedInTerm()) {
      return this.refuse('leader-not-ready', 'the new leader has not committed an entry of its term yet');
    }
    const next = applyMembershipChange(this.config, change);
    if (typeof next === 'string') return this.refuse('invalid-change', next);
    const index = this.appendLeaderEntry('config', emptyBytes, next);
    return { ok: true, index };
  }

  /**
   * Registers a linearizable read. Once a quorum confirms this leader is still the leader, a
   * ReadState with `context` comes out in a Ready; serve the read once that index is applied.
   */
  readIndex(context: number): Result<object> {
    if (this.role !== 'leader') return this.refuse('not-leader', 'reads with ReadIndex go to the leader');
    const read: PendingRead = { context, index: 0, seq: 0 };
    this.reads.push(read);
    if (this.committedInTerm()) this.readRoundWanted = true;
    return { ok: true };
  }

  /**
   * The leader's side of a follower's read round, without a heartbeat round where none is needed:
   * the commit index, when this leader and `from` (a voter whose call, carrying its term `fromTerm`,
   * was sent after the reads it serves began) are a quorum by themselves, as in a 3-server cluster.
   * Then no newer leader can have committed anything before that call: a newer term needs the vote
   * of a quorum, which includes one of the two, and neither had moved past this term by then (this
   * leader still leads it; `from` sent it). Undefined when that does not hold (not the leader, another
   * term, a non-voter, a bigger cluster, nothing committed in this term yet): use readIndex.
   *
   * Counting the voters of this leader's latest configuration, committed or not, rests on membership
   * changing one server at a time, each only after the previous change and an entry of this term have
   * committed (proposeMembership): a newer leader's configuration is then at most one change away, and
   * when {leader, from} is a majority here (at most 3 voters, so also 2 voters, or 3 left of 4 while a
   * removal is uncommitted) every majority one change away still holds one of the two. Joint
   * consensus or changes of several servers at once would break that: revisit this first.
   */
  readIndexConfirmedBy(from: NodeId, fromTerm: Term): Index | undefined {
    if (this.role !== 'leader' || from === this.id || fromTerm !== this.term) return undefined;
    if ((!this.committedInTerm() && !this.bugs.has('read-round-before-term-commit')) || !isVoter(this.config, from)) return undefined;
    const confirmed = (isVoter(this.config, this.id) ? 1 : 0) + 1;
    if (confirmed < quorumSize(voters(this.config).length)) return undefined;
    return this.bugs.has('read-round-uncommitted') ? this.log.lastIndex() : this.commit;
  }

  /**
   * A follower learns of a commit outside the append path: the leader of `term` answered a read-index
   * call with `index`, the term of its entry there being `indexTerm`. When this follower's entry at
   * `index` has that term, Log Matching makes its log equal to the leader's up to there, so all of it
   * is committed here too (as a heartbeat's commit would say, one message later).
   */
  learnCommit(term: Term, index: Index, indexTerm: Term): void {
    if (this.role !== 'follower' || term !== this.term) return;
    if (index <= this.commit || index > this.log.lastIndex()) return;
    if (!this.log.matchTerm(index, indexTerm) && !this.bugs.has('learn-commit-unmatched')) return;
    this.commitTo(index);
  }

  /** Hands leadership to `to`: catch it up, then tell it to campaign at once (TimeoutNow). */
  transferLeadership(to: NodeId): Result<object> {
    if (this.role !== 'leader') return this.refuse('not-leader', 'only the leader can transfer leadership');
    if (to === this.id) return this.refuse('invalid-change', `${to} is already the leader`);
    if (!isVoter(this.config, to)) return this.refuse('unknown-server', `${to} is not a voter`);
    if (this.transfer?.to === to) return { ok: true };
    this.transfer = { to, elapsedTicks: 0 };
    this.logEvent('transfer-started', { to });
    const pr = this.progress.get(to);
    assert(pr !== undefined, 'a voter has progress');
    if (pr.match === this.log.lastIndex()) {
      this.send({ type: 'timeoutNow', from: this.id, to, term: this.term });
    } else {
      // Catch the target up now: resend from its last known match rather than wait for appends in
      // flight that may be lost (the transfer would expire after one election timeout).
      if (pr.state === 'replicate') pr.becomeProbe();
      pr.probeSent = false;
      this.sendAppends(to);
    }
    return { ok: true };
  }

  /**
   * Starts a user restore (hashicorp/raft's Restore): the caller holds the snapshot's bytes. The
   * restore becomes a pending base at index max(last index, externalIndex) + 1 with the current
   * configuration; followers get it through InstallSnapshot; a no-op after it commits it. Nothing
   * is applied until it commits; proposals still in flight below it are then overtaken (see Ready).
   */
  userRestore(externalIndex: Index): Result<{ snapshot: SnapshotMeta }> {
    const placed = this.userRestorePlacement(externalIndex);
    if (!placed.ok) return placed;
    const meta = placed.snapshot;
    const index = meta.index;
    this.log.setPending(meta);
    this.unpersistedPending = meta;
    // Every follower must now be sent the restore as a snapshot: its next index is at most `index`.
    for (const pr of this.progress.values()) pr.becomeProbe();
    this.logEvent('restore-started', { index });
    this.leaderStartIndex = this.appendLeaderEntry('noop', emptyBytes);
    return { ok: true, snapshot: meta };
  }

  /**
   * Where userRestore(externalIndex) would place the restore now, or why it would refuse; changes
   * nothing. The runtime writes the restore's bytes (whose indexes depend on the placement) before
   * it calls userRestore, then checks that the placement still holds.
   */
  userRestorePlacement(externalIndex: Index): Result<{ snapshot: SnapshotMeta }> {
    const refusal = this.refuseUnlessLeaderAccepting();
    if (refusal !== undefined) return refusal;
    if (this.configIndex > this.commit) {
      return this.refuse(
        'config-change-pending',
        `cannot restore while the configuration change at index ${this.configIndex} is uncommitted ` +
          `(commit index ${this.commit}); retry once it commits`,
      );
    }
    const snapshot: SnapshotMeta = {
      index: Math.max(this.log.lastIndex(), externalIndex) + 1,
      term: this.term,
      configuration: this.config,
      configurationIndex: this.configIndex,
    };
    return { ok: true, snapshot };
  }

  /** The metadata a snapshot of the state machine at `index` (<= applied) must carry. */
  snapshotMetaAt(index: Index): SnapshotMeta {
    assert(index <= this.applied, 'a snapshot covers applied entries only');
    const term = this.log.term(index);
    assert(term !== undefined, `the term of index ${index} is known`);
    const c = this.log.configurationAt(index);
    return { index, term, configuration: c.configuration, configurationIndex: c.index };
  }

  /**
   * The application holds a durable snapshot at `index` (<= applied): entries before
   * `index - trailingEntries + 1` may go. Returns the new first index; delete stored entries below it.
   */
  compact(index: Index, trailingEntries: number): Index {
    if (index <= this.log.snapshot.index || index > this.log.prefixLastIndex()) return this.log.firstIndex();
    const meta = this.snapshotMetaAt(index);
    return this.log.compact(meta, index - trailingEntries + 1);
  }

  /** The transport's verdict on a snapshot sent to `to`. */
  reportSnapshot(to: NodeId, ok: boolean): void {
    const pr = this.progress.get(to);
    if (this.role !== 'leader' || pr === undefined || pr.state !== 'snapshot') return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // After a failure, wait for the next heartbeat answer before trying again.
    if (!ok) pr.probeSent = true;
  }

  /** The transport could not reach `to`: stop sending optimistically. */
  reportUnreachable(to: NodeId): void {
    const pr = this.progress.get(to);
    if (this.role === 'leader' && pr !== undefined && pr.state === 'replicate') pr.becomeProbe();
  }

  step(m: Message): void {
    if (m.to !== this.id) return;
    if (m.from === this.id) return;
    if (m.term > this.term) {
      if (m.type === 'vote') {
        if (!m.transfer && this.inLease()) {
          this.logEvent('vote-ignored', { from: m.from, reason: 'leader lease', preVote: m.preVote });
          return;
        }
        if (!m.preVote) this.becomeFollower(m.term, '');
      } else if (m.type === 'voteResponse' && m.preVote && m.granted) {
        // A granted pre-vote carries the term we would campaign in; nothing to adopt.
      } else {
        const leader = m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot' ? m.from : '';
        this.becomeFollower(m.term, leader);
      }
    } else if (m.term < this.term) {
      this.stepStale(m);
      return;
    }

    switch (m.type) {
      case 'vote':
        this.handleVote(m);
        return;
      case 'voteResponse':
        this.handleVoteResponse(m);
        return;
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        if (this.role === 'leader') {
          // Two leaders in one term would be a safety violation; a message from one is a bug.
          assert(false, `leader ${this.id} got ${m.type} from ${m.from} in its own term ${m.term}`);
        }
        if (this.role !== 'follower') this.becomeFollower(this.term, m.from);
        this.leader = m.from;
        this.electionElapsed = 0;
        if (m.type === 'append') this.handleAppend(m);
        else if (m.type === 'heartbeat') this.handleHeartbeat(m);
        else this.handleSnapshot(m);
        return;
      case 'appendResponse':
        this.handleAppendResponse(m);
        return;
      case 'heartbeatResponse':
        this.handleHeartbeatResponse(m);
        return;
      case 'timeoutNow':
        if (this.role === 'leader') return;
        this.logEvent('timeout-now', { from: m.from });
        this.campaign(true);
        return;
      default:
        unreachable(m);
    }
  }

  // ------------------------------------------------------------------------------------------
  // The batch of work
  // ------------------------------------------------------------------------------------------

  /**
   * Heartbeats and heartbeat answers claim nothing durable, so while no term or vote change waits
   * to be persisted they may leave at once, ahead of the Ready round (which may be waiting on a
   * slow disk or a snapshot install). Returns them, removed from the next Ready.
   */
  takeUrgentMessages(): Message[] {
    if (this.hardStateChanged() || this.msgs.length === 0) return [];
    const urgent: Message[] = [];
    const rest: Message[] = [];
    for (const m of this.msgs) (m.type === 'heartbeat' || m.type === 'heartbeatResponse' ? urgent : rest).push(m);
    this.msgs = rest;
    return urgent;
  }

  hasReady(): boolean {
    if (this.pendingBroadcast && this.role === 'leader') return true;
    if (this.readRoundDue()) return true;
    if (this.msgs.length > 0 || this.readStates.length > 0) return true;
    if (this.hardStateChanged()) return true;
    if (this.unpersistedSnapshot !== undefined || this.unpersistedPending !== undefined) return true;
    if (this.unpersistedTruncate !== undefined || this.handedNext <= this.log.lastIndex()) return true;
    if (this.snapshotToApply !== undefined || this.applying < this.commit) return true;
    const s = this.softState();
    return s.role !== this.lastSoft.role || s.leader !== this.lastSoft.leader || s.term !== this.lastSoft.term;
  }

  ready(): Ready {
    if (this.pendingBroadcast && this.role === 'leader') this.broadcastAppends();
    this.pendingBroadcast = false;
    if (this.readRoundDue()) this.startReadRound();

    const hardChanged = this.hardStateChanged();
    const hardState = hardChanged ? { term: this.term, vote: this.vote } : undefined;
    const snapshot = this.unpersistedSnapshot;
    const pendingRestore = this.unpersistedPending;
    const truncateFrom = this.unpersistedTruncate;
    const entries = this.unpersistedEntries();
    let applySnapshot: SnapshotMeta | undefined;
    if (this.snapshotToApply !== undefined) {
      applySnapshot = this.snapshotToApply;
      this.applying = applySnapshot.index;
      this.snapshotToApply = undefined;
    }
    const committedEntries: Entry[] = [];
    if (this.applying < this.commit) {
      committedEntries.push(...this.log.slice(this.applying + 1, this.commit, Number.POSITIVE_INFINITY));
      this.applying = this.commit;
    }
    const leaderAppends = this.role === 'leader';
    let mustSync =
      snapshot !== undefined ||
      pendingRestore !== undefined ||
      ((entries.length > 0 || truncateFrom !== undefined) &&
        (leaderAppends || !this.bugs.has('ack-before-persist')));
    if (hardChanged && !this.bugs.has('forget-vote')) mustSync = true;

    const rd: Ready = {
      softState: this.softState(),
      ...(hardState !== undefined ? { hardState } : {}),
      ...(snapshot !== undefined ? { snapshot } : {}),
      ...(pendingRestore !== undefined ? { pendingRestore } : {}),
      ...(truncateFrom !== undefined ? { truncateFrom } : {}),
      entries,
      mustSync,
      messages: this.msgs,
      ...(applySnapshot !== undefined ? { applySnapshot } : {}),
      committedEntries,
      readStates: this.readStates,
    };
    this.msgs = [];
    this.readStates = [];
    this.unpersistedSnapshot = undefined;
    this.unpersistedPending = undefined;
    this.unpersistedTruncate = undefined;
    if (hardState !== undefined) this.persistedHard = hardState;
    this.lastSoft = rd.softState;
    return rd;
  }

  /** Everything in `rd` was done in order (persisted, sent, applied). */
  advance(rd: Ready): void {
    const durableTop =
      rd.entries.length > 0
        ? (rd.entries[rd.entries.length - 1] as Entry)
        : rd.snapshot ?? (rd.pendingRestore === null ? undefined : rd.pendingRestore);
    if (durableTop !== undefined && this.log.term(durableTop.index) === durableTop.term) {
      this.durableLast = Math.max(this.durableLast, durableTop.index);
    }
    if (rd.applySnapshot !== undefined) this.applied = Math.max(this.applied, rd.applySnapshot.index);
    if (rd.committedEntries.length > 0) {
      this.applied = (rd.committedEntries[rd.committedEntries.length - 1] as Entry).index;
    }
    if (this.role === 'leader' && this.maybeCommit()) this.announceCommitToFollowers();
  }

  // ------------------------------------------------------------------------------------------
  // Roles
  // ------------------------------------------------------------------------------------------

  private becomeFollower(term: Term, leader: NodeId): void {
    const wasLeader = this.role === 'leader';
    if (term > this.term) {
      this.term = term;
      this.vote = '';
    }
    this.role = 'follower';
    this.leader = leader;
    this.resetTimers();
    this.votes.clear();
    this.progress.clear();
    this.transfer = undefined;
    this.clearReads();
    if (wasLeader) this.logEvent('stepped-down', { leader });
  }

  private becomePreCandidate(): void {
    this.role = 'preCandidate';
    this.leader = '';
    this.votes = new Map([[this.id, true]]);
    this.resetTimers();
  }

  private becomeCandidate(): void {
    this.term += 1;
    this.vote = this.id;
    this.role = 'candidate';
    this.leader = '';
    this.votes = new Map([[this.id, true]]);
    this.resetTimers();
    this.logEvent('campaign', { lastIndex: this.log.lastIndex(), lastTerm: this.log.lastTerm() });
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', 'only a candidate becomes leader');
    this.role = 'leader';
    this.leader = this.id;
    this.resetTimers();
    this.progress.clear();
    this.clearReads();
    this.transfer = undefined;
    const next = this.log.lastIndex() + 1;
    for (const s of this.config.servers) {
      if (s.id !== this.id) this.progress.set(s.id, new Progress(next, this.nowTick));
    }
    this.leaderStartIndex = this.appendLeaderEntry('noop', emptyBytes);
    this.logEvent('became-leader', { index: this.leaderStartIndex });
  }

  private resetTimers(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.drawElectionTimeout();
  }

  private drawElectionTimeout(): number {
    const n = this.opts.electionTimeoutTicks;
    return n + this.opts.random.nextInt(n);
  }

  /** A server may campaign only while it is a voter in its latest configuration. */
  private promotable(): boolean {
    return isVoter(this.config, this.id);
  }

  /** Heard from a leader within the minimum election timeout: ignore disruptive candidates. */
  private inLease(): boolean {
    if (this.role === 'leader') return true;
    return this.leader !== '' && this.electionElapsed < this.opts.electionTimeoutTicks;
  }

  private tickLeader(): void {
    if (this.transfer !== undefined) {
      this.transfer.elapsedTicks++;
      if (this.transfer.elapsedTicks >= this.opts.electionTimeoutTicks) {
        this.logEvent('transfer-aborted', { to: this.transfer.to });
        this.transfer = undefined;
      }
    }
    // Check-quorum: step down as soon as a quorum has been silent for a whole election timeout.
    const vs = voters(this.config);
    let active = 0;
    for (const v of vs) {
      if (v === this.id) active++;
      else {
        const pr = this.progress.get(v);
        if (pr !== undefined && this.nowTick - pr.lastContactTick < this.opts.electionTimeoutTicks) active++;
      }
    }
    if (vs.length > 0 && active < quorumSize(vs.length)) {
      this.logEvent('check-quorum-failed', { active, voters: vs.length });
      this.becomeFollower(this.term, '');
      return;
    }
    this.heartbeatElapsed++;
    if (this.heartbeatElapsed >= this.opts.heartbeatIntervalTicks) {
      // A heartbeat carries the commit index as far as each follower holds the log.
      this.heartbeatElapsed = 0;
      this.announceCommit = false;
      this.broadcastHeartbeats();
    } else if (this.announceCommit) {
      this.sendCommitAnnouncements();
    }
  }

  // ------------------------------------------------------------------------------------------
  // Elections
  // ------------------------------------------------------------------------------------------

  private requestVotes(preVote: boolean, transfer: boolean): void {
    const vs = voters(this.config);
    if (tallyVotes(vs, this.votes) === 'won') {
      this.winElection(preVote);
      return;
    }
    const term = preVote ? this.term + 1 : this.term;
    for (const to of vs) {
      if (to === this.id) continue;
      const m: VoteMessage = {
        type: 'vote',
        from: this.id,
        to,
        term,
        preVote,
        transfer,
        lastIndex: this.log.lastIndex(),
        lastTerm: this.log.lastTerm(),
      };
      this.send(m);
    }
  }

  private winElection(preVote: boolean): void {
    if (preVote) {
      this.becomeCandidate();
      this.requestVotes(false, false);
    } else {
      this.becomeLeader();
    }
  }

  private handleVote(m: VoteMessage): void {
    const canVote =
      this.vote === m.from || (this.vote === '' && this.leader === '') || (m.preVote && m.term > this.term);
    const upToDate = this.bugs.has('vote-ignores-log') || this.log.isUpToDate(m.lastIndex, m.lastTerm);
    const granted = canVote && upToDate && this.role !== 'leader';
    if (granted && !m.preVote) {
      this.vote = m.from;
      this.electionElapsed = 0;
    }
    const reply: VoteResponseMessage = {
      type: 'voteResponse',
      from: this.id,
      to: m.from,
      term: granted ? m.term : this.term,
      preVote: m.preVote,
      granted,
    };
    this.send(reply);
  }

  private handleVoteResponse(m: VoteResponseMessage): void {
    const expected = m.preVote ? 'preCandidate' : 'candidate';
    if (this.role !== expected) return;
    this.votes.set(m.from, m.granted);
    const outcome = tallyVotes(voters(this.config), this.votes);
    if (outcome === 'won') this.winElection(m.preVote);
    else if (outcome === 'lost') this.becomeFollower(this.term, '');
  }

  // ------------------------------------------------------------------------------------------
  // Follower side of replication
  // ------------------------------------------------------------------------------------------

  private handleAppend(m: AppendMessage): void {
    const pending = this.log.pendingBase();
    if (
      pending !== undefined &&
      m.term > pending.term &&
      m.prevIndex <= pending.index &&
      !this.log.matchTerm(m.prevIndex, m.prevTerm)
    ) {
      // A leader of a later term whose log does not hold our pending restore: it never will, so
      // the restore can never commit. Revert to the prefix below it, which nothing has touched.
      // (A message from the restoring leader's own term proves nothing: it may predate the restore.)
      this.abandonPendingRestore(`leader ${m.from} of term ${m.term} does not hold it`);
    } else if (pending !== undefined && m.term === pending.term && m.prevIndex < pending.index) {
      // From the restoring leader, sent before it started the restore: overtaken, and it must not
      // cut through the pending base. The leader is now sending the restore instead.
      return;
    }
    if (m.prevIndex < this.commit) {
      this.sendAppendResponse(m.from, false, this.commit);
      return;
    }
    if (!this.log.matchTerm(m.prevIndex, m.prevTerm)) {
      const hintIndex = this.log.findConflictByTerm(Math.min(m.prevIndex, this.log.lastIndex()), m.prevTerm);
      const hintTerm = this.log.term(hintIndex) ?? 0;
      this.send({
        type: 'appendResponse',
        from: this.id,
        to: m.from,
        term: this.term,
        reject: true,
        index: m.prevIndex,
        hintIndex,
        hintTerm,
      });
      return;
    }
    const lastNew = m.prevIndex + m.entries.length;
    let firstNew = -1;
    for (let i = 0; i < m.entries.length; i++) {
      const e = m.entries[i] as Entry;
      if (!this.log.matchTerm(e.index, e.term)) {
        firstNew = i;
        break;
      }
    }
    if (firstNew >= 0) {
      const from = (m.entries[firstNew] as Entry).index;
      assert(from > this.commit, `an append never overwrites committed entry ${from} (commit ${this.commit})`);
      const toAppend = m.entries.slice(firstNew);
      this.appendToLog(toAppend);
    }
    this.commitTo(Math.min(m.commit, lastNew));
    this.sendAppendResponse(m.from, false, lastNew);
  }

  private handleHeartbeat(m: HeartbeatMessage): void {
    this.commitTo(Math.min(m.commit, this.log.lastIndex()));
    const reply: HeartbeatResponseMessage = {
      type: 'heartbeatResponse',
      from: this.id,
      to: m.from,
      term: this.term,
      readSeq: m.readSeq,
    };
    this.send(reply);
  }

  private handleSnapshot(m: SnapshotMessage): void {
    const s = m.snapshot;
    const committed = m.commit >= s.index;
    if (this.log.matchTerm(s.index, s.term)) {
      // We already hold it (as an entry, the snapshot, or the same pending restore).
      if (committed) this.commitTo(s.index);
      this.sendAppendResponse(m.from, false, Math.max(s.index, this.commit));
      return;
    }
    if (s.index <= this.commit) {
      // Stale (a duplicate, or a restore that a later one overtook): we are already past it.
      this.sendAppendResponse(m.from, false, this.commit);
      return;
    }
    const pending = this.log.pendingBase();
    if (pending !== undefined && m.term === pending.term && s.index < pending.index) {
      // Sent by the restoring leader before it restored: overtaken by the restore we hold and
      // have acknowledged. (A later leader's snapshot below it does prove the restore dead.)
      return;
    }
    if (committed) {
      this.log.restoreBase(s);
      this.unpersistedSnapshot = s;
      this.unpersistedPending = undefined;
      // The log restarts after the snapshot: stored entries above it belong to the old log.
      this.unpersistedTruncate = s.index + 1;
      this.handedNext = s.index + 1;
      this.durableLast = Math.min(this.durableLast, s.index);
      this.commit = s.index;
      this.snapshotToApply = s;
      this.refreshConfig();
      this.logEvent('snapshot-installed', { index: s.index, snapshotTerm: s.term, from: m.from });
    } else {
      // A user restore not yet committed: keep it above our log and apply nothing yet. Entries at or
      // above its index cannot have committed (the restoring leader's log ended below it); the rest
      // stay, because some may have committed without our knowing, and they matter if it is abandoned.
      if (this.log.pendingBase() !== undefined) this.abandonPendingRestore(`leader ${m.from} sent another`);
      assert(this.commit < s.index, 'an uncommitted restore lies above our commit index');
      this.truncateLog(s.index);
      this.log.setPending(s);
      this.unpersistedPending = s;
      this.refreshConfig();
      this.logEvent('restore-staged', { index: s.index, from: m.from });
    }
    this.sendAppendResponse(m.from, false, s.index);
  }

  private sendAppendResponse(to: NodeId, reject: boolean, index: Index): void {
    const m: AppendResponseMessage = {
      type: 'appendResponse',
      from: this.id,
      to,
      term: this.term,
      reject,
      index,
      hintIndex: 0,
      hintTerm: 0,
    };
    this.send(m);
  }

  /** Follower side: the leader says everything up to `index` is committed and matches our log. */
  private commitTo(index: Index): void {
    const pending = this.log.pendingBase();
    // Under a pending restore our prefix was never checked against this leader's log (it sends us
    // the restore instead of entries), so only the restore itself and what follows it can commit.
    if (pending !== undefined && index < pending.index) return;
    if (index <= this.commit) return;
    assert(index <= this.log.lastIndex(), 'commit <= last index');
    this.commit = index;
    if (pending !== undefined && index >= pending.index) this.promotePendingRestore();
    this.afterCommit();
  }

  // ------------------------------------------------------------------------------------------
  // Leader side of replication
  // ------------------------------------------------------------------------------------------

  private handleAppendResponse(m: AppendResponseMessage): void {
    if (this.role !== 'leader') return;
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.lastContactTick = this.nowTick;
    if (m.reject) {
      const hint = this.log.findConflictByTerm(m.hintIndex, m.hintTerm);
      if (pr.maybeDecrease(m.index, hint + 1)) this.sendAppends(m.from);
      return;
    }
    const wasState = pr.state;
    if (pr.maybeUpdate(m.index)) {
      if (wasState === 'probe') pr.becomeReplicate();
      else if (wasState === 'snapshot' && pr.match >= pr.pendingSnapshot) {
        pr.becomeProbe();
        pr.becomeReplicate();
      }
      if (this.maybeCommit()) this.announceCommitToFollowers();
      if (this.transfer?.to === m.from && pr.match === this.log.lastIndex()) {
        this.send({ type: 'timeoutNow', from: this.id, to: m.from, term: this.term });
      }
    }
    if (this.role === 'leader' && this.progress.has(m.from)) this.sendAppends(m.from);
  }

  private handleHeartbeatResponse(m: HeartbeatResponseMessage): void {
    if (this.role !== 'leader') return;
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.lastContactTick = this.nowTick;
    pr.readSeqAcked = Math.max(pr.readSeqAcked, m.readSeq);
    if (pr.match < this.log.lastIndex()) {
      if (pr.state === 'probe') pr.probeSent = false;
      const oldest = pr.oldestInflightTick();
      // Appends are fire-and-forget. A loss inside the window shows as a rejection of the next
      // append; only a lost tail goes unanswered. Treat the oldest as lost once it is older than an
      // election timeout: any shorter bound mistakes a slow link for a lossy one and throttles
      // replication to one probe per round trip.
      if (pr.state === 'replicate' && oldest !== undefined && this.nowTick - oldest > this.opts.electionTimeoutTicks) {
        pr.becomeProbe();
      }
      this.sendAppends(m.from);
    }
    this.releaseReads();
  }

  /** Sends as many appends to `to` as its flow control allows. */
  private sendAppends(to: NodeId): void {
    for (let guard = 0; guard < 1_000_000; guard++) {
      if (!this.sendAppend(to)) return;
    }
    assert(false, 'sendAppends terminates');
  }

  /** Sends one append (or a snapshot) to `to`. Returns true when another could follow. */
  private sendAppend(to: NodeId): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || pr.isPaused(this.opts.maxInflightMessages)) return false;
    const pending = this.log.pendingBase();
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const compacted = prevTerm === undefined || pr.next < this.log.firstIndex();
    if (compacted || (pending !== undefined && pr.next <= pending.index)) {
      this.sendSnapshot(to, pr);
      return false;
    }
    const last = this.log.lastIndex();
    const entries = pr.next <= last ? this.log.slice(pr.next, last, this.opts.maxMessageBytes) : [];
    if (entries.length === 0 && pr.state === 'replicate') return false;
    const m: AppendMessage = {
      type: 'append',
      from: this.id,
      to,
      term: this.term,
      prevIndex,
      prevTerm,
      entries,
      commit: this.commit,
    };
    this.send(m);
    pr.sent(prevIndex + entries.length, this.nowTick, entries.length);
    return entries.length > 0 && pr.state === 'replicate';
  }

  private sendSnapshot(to: NodeId, pr: Progress): void {
    const snapshot = this.log.pendingBase() ?? this.log.snapshot;
    pr.becomeSnapshot(snapshot.index);
    this.send({ type: 'snapshot', from: this.id, to, term: this.term, snapshot, commit: this.commit });
  }

  private announceCommitToFollowers(): void {
    this.pendingBroadcast = true;
    this.announceCommit = true;
  }

  private broadcastAppends(): void {
    for (const to of this.progress.keys()) this.sendAppends(to);
  }

  /** The tick after a commit: an empty append carries the new commit index to idle followers. */
  private sendCommitAnnouncements(): void {
    this.announceCommit = false;
    for (const [to, pr] of this.progress) {
      // Caught up and nothing in flight: with nothing in flight the append's prevIndex is the
      // follower's match, so it cannot be rejected.
      if (pr.state === 'replicate' && pr.inflightCount() === 0 && pr.next > this.log.lastIndex()) {
        const prevIndex = pr.next - 1;
        const prevTerm = this.log.term(prevIndex);
        if (prevTerm !== undefined) {
          this.send({ type: 'append', from: this.id, to, term: this.term, prevIndex, prevTerm, entries: [], commit: this.commit });
        }
      }
    }
  }

  private broadcastHeartbeats(): void {
    for (const [to, pr] of this.progress) {
      const m: HeartbeatMessage = {
        type: 'heartbeat',
        from: this.id,
        to,
        term: this.term,
        commit: Math.min(pr.match, this.commit),
        readSeq: this.readSeq,
      };
      this.send(m);
    }
  }

  /** Counts replicas to move the commit index (current-term entries only: §5.4.2). */
  private maybeCommit(): boolean {
    const vs = voters(this.config);
    const matches = vs.map((v) => (v === this.id ? this.durableLast : this.progress.get(v)?.match ?? 0));
    const pending = this.log.pendingBase();
    const candidate = quorumValue(matches);
    // While a restore is pending nothing below it commits: a follower that acknowledged the restore
    // has a match at or above it but a hole under it, so matches say nothing about the prefix. (If
    // the restore commits, the prefix is overtaken; if it is abandoned, the next leader commits it.)
    if (pending !== undefined && candidate < pending.index) return false;
    if (candidate <= this.commit) return false;
    const term = this.log.term(candidate);
    if (term === undefined) return false;
    if (term !== this.term && !this.bugs.has('commit-prior-term')) return false;
    this.commit = candidate;
    if (pending !== undefined && candidate >= pending.index) this.promotePendingRestore();
    this.afterCommit();
    return true;
  }

  private afterCommit(): void {
    if (this.role !== 'leader') return;
    if (this.committedInTerm() && this.reads.length > this.readsInRound) this.readRoundWanted = true;
    if (this.configIndex <= this.commit && !isVoter(this.config, this.id)) {
      // Removed (or demoted) and the change is committed: hand over by stepping down (§4.2.2).
      this.logEvent('removed-stepping-down', { configIndex: this.configIndex });
      this.becomeFollower(this.term, '');
    }
  }

  private committedInTerm(): boolean {
    return this.commit >= this.leaderStartIndex && this.log.term(this.commit) === this.term;
  }

  /** A round is wanted, none is in flight, and this leader may serve reads. */
  private readRoundDue(): boolean {
    return this.readRoundWanted && this.readsInRound === 0 && this.role === 'leader' && this.committedInTerm();
  }

  /** One round for every read waiting for one: a heartbeat to each follower carrying a new readSeq. */
  private startReadRound(): void {
    this.readRoundWanted = false;
    this.readSeq++;
    for (const r of this.reads) {
      if (r.seq !== 0) continue;
      r.index = this.commit;
      r.seq = this.readSeq;
      this.readsInRound++;
    }
    this.broadcastHeartbeats();
    this.releaseReads();
  }

  private releaseReads(): void {
    if (this.reads.length === 0) return;
    const acked = voters(this.config).map((v) =>
      v === this.id ? this.readSeq : this.progress.get(v)?.readSeqAcked ?? 0,
    );
    const confirmed = quorumValue(acked);
    const keep: PendingRead[] = [];
    for (const r of this.reads) {
      if (r.seq !== 0 && r.seq <= confirmed) {
        this.readStates.push({ index: r.index, context: r.context });
        this.readsInRound--;
      } else {
        keep.push(r);
      }
    }
    this.reads = keep;
    // Reads that arrived during the round get the next one.
    if (this.readsInRound === 0 && this.reads.length > 0) this.readRoundWanted = true;
  }

  private clearReads(): void {
    this.reads = [];
    this.readsInRound = 0;
    this.readRoundWanted = false;
  }

  // ------------------------------------------------------------------------------------------
  // Log changes
  // ------------------------------------------------------------------------------------------

  private appendLeaderEntry(kind: Entry['kind'], data: Uint8Array, config?: Configuration): Index {
    const index = this.log.lastIndex() + 1;
    const entry: Entry =
      config === undefined ? { index, term: this.term, kind, data } : { index, term: this.term, kind, data, config };
    this.appendToLog([entry]);
    this.pendingBroadcast = true;
    // A single-voter cluster commits as soon as the entry is durable (see advance()).
    return index;
  }

  private appendToLog(entries: readonly Entry[]): void {
    const pending = this.log.pendingBase();
    const removedFrom = this.log.append(entries);
    if (removedFrom !== undefined) this.noteTruncation(removedFrom);
    if (pending !== undefined && this.log.pendingBase() === undefined) this.notePendingDropped(pending, 'overwritten');
    this.handedNext = Math.min(this.handedNext, (entries[0] as Entry).index);
    this.refreshConfig();
    if (this.role === 'leader') {
      for (const s of this.config.servers) {
        if (s.id !== this.id && !this.progress.has(s.id)) {
          this.progress.set(s.id, new Progress(this.log.lastIndex(), this.nowTick));
        }
      }
      for (const id of [...this.progress.keys()]) if (!hasServer(this.config, id)) this.progress.delete(id);
    }
  }

  private truncateLog(from: Index): void {
    const pending = this.log.pendingBase();
    const removed = this.log.truncateFrom(from);
    if (removed !== undefined) this.noteTruncation(removed);
    if (pending !== undefined && this.log.pendingBase() === undefined) this.notePendingDropped(pending, 'truncated');
    this.refreshConfig();
  }

  private notePendingDropped(pending: SnapshotMeta, why: string): void {
    this.unpersistedPending = null;
    this.logEvent('restore-abandoned', { index: pending.index, why });
  }

  private noteTruncation(from: Index): void {
    this.unpersistedTruncate = Math.min(this.unpersistedTruncate ?? from, from);
    this.handedNext = Math.min(this.handedNext, from);
    this.durableLast = Math.min(this.durableLast, from - 1);
  }

  private abandonPendingRestore(why: string): void {
    const pending = this.log.pendingBase();
    assert(pending !== undefined, 'a pending restore to abandon');
    const from = this.log.prefixLastIndex() + 1;
    this.log.dropPending();
    this.noteTruncation(from);
    this.notePendingDropped(pending, why);
    this.refreshConfig();
  }

  private promotePendingRestore(): void {
    const base = this.log.promotePending();
    this.unpersistedSnapshot = base;
    this.unpersistedPending = undefined;
    this.snapshotToApply = base;
    this.refreshConfig();
    this.logEvent('restore-committed', { index: base.index });
  }

  /**
   * Entries not yet handed out for persistence. Under a pending restore that can be two runs: the
   * end of the prefix below it (proposed just before the restore began) and the entries after it.
   */
  private unpersistedEntries(): Entry[] {
    const last = this.log.lastIndex();
    const lo = Math.max(this.handedNext, this.log.firstIndex());
    this.handedNext = last + 1;
    if (lo > last) return [];
    const pending = this.log.pendingBase();
    if (pending === undefined || lo > pending.index) return this.log.slice(lo, last, Number.POSITIVE_INFINITY);
    const prefixLast = this.log.prefixLastIndex();
    const below = lo <= prefixLast ? this.log.slice(lo, prefixLast, Number.POSITIVE_INFINITY) : [];
    const above = pending.index < last ? this.log.slice(pending.index + 1, last, Number.POSITIVE_INFINITY) : [];
    return [...below, ...above];
  }

  private hardStateChanged(): boolean {
    return this.term !== this.persistedHard.term || this.vote !== this.persistedHard.vote;
  }

  private refreshConfig(): void {
    const c = this.log.configurationAt(this.log.lastIndex());
    this.config = c.configuration;
    this.configIndex = c.index;
  }

  // ------------------------------------------------------------------------------------------
  // Helpers
  // ------------------------------------------------------------------------------------------

  private stepStale(m: Message): void {
    if (m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot') {
      // Tell a deposed leader about the newer term, so it steps down even when check-quorum and
      // pre-vote keep terms from spreading by elections.
      this.send({ type: 'heartbeatResponse', from: this.id, to: m.from, term: this.term, readSeq: 0 });
    } else if (m.type === 'vote' && m.preVote) {
      this.send({ type: 'voteResponse', from: this.id, to: m.from, term: this.term, preVote: true, granted: false });
    }
  }

  private refuseUnlessLeaderAccepting(): Refusal | undefined {
    if (this.role !== 'leader') return this.refuse('not-leader', `${this.id} is not the leader`);
    if (this.transfer !== undefined) {
      return this.refuse('transfer-in-progress', `leadership is being transferred to ${this.transfer.to}`);
    }
    if (this.log.pendingBase() !== undefined) {
      return this.refuse('restore-pending', 'a restore is in progress; retry once it commits');
    }
    return undefined;
  }

  private refuse(code: RefusalCode, message: string): Refusal {
    return { ok: false, code, message, leader: this.leader };
  }

  private send(m: Message): void {
    this.msgs.push(m);
  }

  private logEvent(event: string, fields: Record<string, unknown>): void {
    this.opts.logger?.({ event, term: this.term, node: this.id, ...fields });
  }
}

/** The configuration after `change`, or why the change is refused. */
export function applyMembershipChange(c: Configuration, change: MembershipChange): Configuration | string {
  const existing = c.servers.find((s) => s.id === change.id);
  const others = c.servers.filter((s) => s.id !== change.id);
  const withServer = (s: Server): Configuration => ({ servers: [...others, s] });
  const address = (change.kind === 'addNonvoter' || change.kind === 'addVoter' ? change.address : undefined) ?? existing?.address;
  const at = address === undefined ? {} : { address };
  switch (change.kind) {
    case 'addNonvoter':
      if (existing !== undefined) return `${change.id} is already a ${existing.suffrage}`;
      return withServer({ id: change.id, suffrage: 'nonvoter', ...at });
    case 'addVoter':
      if (existing?.suffrage === 'voter') return `${change.id} is already a voter`;
      return withServer({ id: change.id, suffrage: 'voter', ...at });
    case 'demoteVoter':
      if (existing?.suffrage !== 'voter') return `${change.id} is not a voter`;
      if (voters(c).length === 1) return `${change.id} is the only voter`;
      return withServer({ id: change.id, suffrage: 'nonvoter', ...at });
    case 'removeServer':
      if (existing === undefined) return `${change.id} is not in the configuration`;
      if (existing.suffrage === 'voter' && voters(c).length === 1) return `${change.id} is the only voter`;
      return { servers: others };
    default:
      return unreachable(change);
  }
}
