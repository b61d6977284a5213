// The vocabulary of the consensus core: identities, log entries, configurations, messages and the
// batch of work (`Ready`) the core hands to whoever drives it. Nothing here does I/O.

/** A server's stable identity (Consul's node ID or name). Never reused for a different server. */
export type NodeId = string;
/** A Raft term. Starts at 0 on a fresh server and only grows. */
export type Term = number;
/** A position in the replicated log. The first real entry has index 1; 0 means "before the log". */
export type Index = number;

export type Suffrage = 'voter' | 'nonvoter';

export interface Server {
  readonly id: NodeId;
  /** Voters elect and count toward commit; non-voters (learners) only receive the log. */
  readonly suffrage: Suffrage;
  /** Where the server's RPC endpoint is ("127.0.0.1:8300"). Opaque to the core, which only carries it. */
  readonly address?: string;
}

/** The set of servers in the cluster. Order is not significant; ids are unique. */
export interface Configuration {
  readonly servers: readonly Server[];
}

/**
 * `normal` carries application data; `noop` is the entry every new leader appends (thesis §6.4) and
 * the one a user restore commits; `config` carries a whole new configuration, which takes effect as
 * soon as it is appended (thesis §4.1), not when it commits.
 */
export type EntryKind = 'normal' | 'noop' | 'config';

export interface Entry {
  readonly index: Index;
  readonly term: Term;
  readonly kind: EntryKind;
  /** Application bytes for `normal`; empty for the others. */
  readonly data: Uint8Array;
  /** Present exactly when kind is `config`. */
  readonly config?: Configuration;
}

/** What must survive a crash besides the log: the current term and the vote cast in it. */
export interface HardState {
  readonly term: Term;
  /** The candidate this server voted for in `term`, or '' when it has not voted in `term`. */
  readonly vote: NodeId;
}

/**
 * Describes a snapshot: the state machine after applying every entry up to `index`, together with
 * the configuration in force at that point. `term` is the term of the entry at `index` (or of the
 * leader that performed a user restore).
 */
export interface SnapshotMeta {
  readonly index: Index;
  readonly term: Term;
  readonly configuration: Configuration;
  /** Index of the config entry that produced `configuration` (0 for a bootstrap configuration). */
  readonly configurationIndex: Index;
}

// ---------------------------------------------------------------------------------------------
// Messages between cores. Every message carries the sender's term; `from` and `to` are node ids.
// ---------------------------------------------------------------------------------------------

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
}

/** Leader → follower: append `entries` after (prevIndex, prevTerm); `commit` is the leader's. */
export interface AppendMessage extends MessageBase {
  readonly type: 'append';
  readonly prevIndex: Index;
  readonly prevTerm: Term;
  readonly entries: readonly Entry[];
  readonly commit: Index;
}

/**
 * Follower → leader. On success `index` is the last index now known to match the leader's log. On
 * rejection `index` is the rejected prevIndex and (hintIndex, hintTerm) is the follower's last entry
 * at or below it whose term is <= the rejected prevTerm, so the leader can skip a whole term at once.
 */
export interface AppendResponseMessage extends MessageBase {
  readonly type: 'appendResponse';
  readonly reject: boolean;
  readonly index: Index;
  readonly hintIndex: Index;
  readonly hintTerm: Term;
}

/**
 * Leader → follower, every heartbeat interval. `commit` is min(leader commit, follower match) so a
 * follower never commits past what it is known to hold. `readSeq` lets the leader confirm leadership
 * for ReadIndex.
 */
export interface HeartbeatMessage extends MessageBase {
  readonly type: 'heartbeat';
  readonly commit: Index;
  readonly readSeq: number;
}

export interface HeartbeatResponseMessage extends MessageBase {
  readonly type: 'heartbeatResponse';
  readonly readSeq: number;
}

/**
 * Candidate → voter. With `preVote`, `term` is the term the candidate would campaign in; the voter's
 * own term does not change. `transfer` marks a campaign started by TimeoutNow (leadership transfer),
 * which voters grant even while they still hear from a leader.
 */
export interface VoteMessage extends MessageBase {
  readonly type: 'vote';
  readonly preVote: boolean;
  readonly transfer: boolean;
  readonly lastIndex: Index;
  readonly lastTerm: Term;
}

export interface VoteResponseMessage extends MessageBase {
  readonly type: 'voteResponse';
  readonly preVote: boolean;
  readonly granted: boolean;
}

/** Leader → transfer target: start an election now, skipping pre-vote. */
export interface TimeoutNowMessage extends MessageBase {
  readonly type: 'timeoutNow';
}

/**
 * Leader → follower: replace your state with the snapshot described by `snapshot`. The bytes
 * themselves travel beside this message as a stream of bounded chunks (the transport's job); a core
 * receives this message only once the whole snapshot has arrived and been verified. The follower
 * answers with an AppendResponseMessage whose `index` is `snapshot.index`.
 */
export interface SnapshotMessage extends MessageBase {
  readonly type: 'snapshot';
  readonly snapshot: SnapshotMeta;
  readonly commit: Index;
}

export type Message =
  | AppendMessage
  | AppendResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | VoteMessage
  | VoteResponseMessage
  | TimeoutNowMessage
  | SnapshotMessage;

export type MessageType = Message['type'];

// ---------------------------------------------------------------------------------------------
// The batch of work.
// ---------------------------------------------------------------------------------------------

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Volatile facts about this server, for logs and for the server layer (not persisted). */
export interface SoftState {
  readonly role: Role;
  /** The leader this server currently follows ('' when unknown). */
  readonly leader: NodeId;
  readonly term: Term;
}

/** A ReadIndex request that is now safe to serve once the state machine has applied `index`. */
export interface ReadState {
  readonly index: Index;
  readonly context: number;
}

/**
 * One round of work, produced by `RaftCore.ready()`. Do it in this order, then call
 * `RaftCore.advance(ready)`:
 *
 *  1. Persist, in this order, as one atomic write where the store allows:
 *     a. `snapshot`: the log's committed base is now this snapshot. Keep its bytes (a follower got
 *        them with the SnapshotMessage; for a restore that just committed they are the pending
 *        restore's bytes), forget any pending restore, and delete stored entries at or below its index.
 *     b. `pendingRestore`: a user restore's base, not yet committed: keep its bytes beside the log
 *        (do not touch the state machine). `null`: the pending restore was abandoned; forget it.
 *     c. `truncateFrom`: delete every stored entry with index >= it.
 *     d. `entries`: store them (overwriting an entry with the same index).
 *     e. `hardState`.
 *     When `mustSync` is true, all of step 1 must be durable (fsync) before step 2.
 *  2. `messages`: send them. They may claim what step 1 made durable (a vote, an acknowledged
 *     entry), which is why they wait for it.
 *  3. `applySnapshot`: replace the state machine's contents with this (committed) snapshot's, then
 *     apply `committedEntries` in order. Report each applied entry to whoever proposed it. Proposals
 *     at indexes below an applied snapshot that this server never applied were overtaken by it (a
 *     user restore): fail them.
 *  4. `readStates`: each may be served once the state machine has applied its index.
 *
 * A round with nothing to do is never produced: `hasReady()` is false.
 */
export interface Ready {
  readonly softState: SoftState;
  readonly hardState?: HardState;
  readonly snapshot?: SnapshotMeta;
  readonly pendingRestore?: SnapshotMeta | null;
  readonly truncateFrom?: Index;
  /** In index order; contiguous, except under a pending restore: prefix entries, then those after it. */
  readonly entries: readonly Entry[];
  readonly mustSync: boolean;
  readonly messages: readonly Message[];
  readonly applySnapshot?: SnapshotMeta;
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
}

/** Deterministic randomness for election jitter: the core has no other source of randomness. */
export interface RandomSource {
  /** A uniformly distributed integer in [0, bound). */
  nextInt(bound: number): number;
}

/** Something the core wants a person to know (an election, a step-down). Output only. */
export interface CoreEvent {
  readonly event: string;
  readonly term: Term;
  readonly [key: string]: unknown;
}
export type CoreLogger = (e: CoreEvent) => void;

/**
 * Defects that can be switched on, for testing only, to prove the simulator catches them. A core
 * built without `plantedBugs` never consults them.
 */
export type PlantedBug =
  /** Grant votes without the "candidate's log is at least as up to date" check (§5.4.1). */
  | 'vote-ignores-log'
  /** Commit an entry of an earlier term by counting its replicas (the Figure 8 error, §5.4.2). */
  | 'commit-prior-term'
  /** Answer a vote request before the vote is durable (the vote is written without sync). */
  | 'forget-vote'
  /** Acknowledge appended entries before they are durable (entries written without sync). */
  | 'ack-before-persist'
  /** Answer a follower's read round before this leader has committed an entry of its term. */
  | 'read-round-before-term-commit'
  /** Answer a follower's read round with the last index instead of the commit index. */
  | 'read-round-uncommitted'
  /** learnCommit without checking that the follower's entry at the index has the leader's term. */
  | 'learn-commit-unmatched';

export const plantedBugs: readonly PlantedBug[] = [
  'vote-ignores-log',
  'commit-prior-term',
  'forget-vote',
  'ack-before-persist',
  'read-round-before-term-commit',
  'read-round-uncommitted',
  'learn-commit-unmatched',
];

/** Everything the core knows when it starts: what an earlier run of this server made durable. */
export interface InitialState {
  readonly hardState: HardState;
  /** The log's base; absent on a server that never snapshotted (the base is then index 0). */
  readonly snapshot?: SnapshotMeta;
  /**
   * Stored entries, in index order: contiguous from at most the snapshot's index + 1 (trailing
   * entries below it are allowed), then, when `pendingRestore` is set, those after its index.
   */
  readonly entries: readonly Entry[];
  /** A user restore's base that had not committed when the server stopped. */
  readonly pendingRestore?: SnapshotMeta;
  /**
   * The highest index the state machine has durably applied (at least the snapshot's index, at
   * most the last stored entry). Everything up to it is known committed.
   */
  readonly applied: Index;
}

export interface CoreOptions {
  readonly id: NodeId;
  /** Election timeout, in ticks; each wait is drawn uniformly from [n, 2n). */
  readonly electionTimeoutTicks: number;
  /** Heartbeat interval, in ticks; must be less than electionTimeoutTicks. */
  readonly heartbeatIntervalTicks: number;
  readonly random: RandomSource;
  /** Upper bound on the entry bytes in one append message (at least one entry is always sent). */
  readonly maxMessageBytes: number;
  /** Append messages in flight to one follower before the leader waits for acknowledgements. */
  readonly maxInflightMessages: number;
  readonly initial: InitialState;
  readonly logger?: CoreLogger;
  readonly plantedBugs?: ReadonlySet<PlantedBug>;
}

/** Why a request to the core was refused. A typed result, not an exception: callers branch on it. */
export type RefusalCode =
  | 'not-leader'
  | 'transfer-in-progress'
  | 'config-change-pending'
  | 'restore-pending'
  | 'leader-not-ready'
  | 'unknown-server'
  | 'invalid-change';

export interface Refusal {
  readonly ok: false;
  readonly code: RefusalCode;
  readonly message: string;
  /** The leader to retry against, when known. */
  readonly leader: NodeId;
}

export type Accepted<T> = { readonly ok: true } & T;
export type Result<T> = Accepted<T> | Refusal;

export type MembershipChange =
  | { readonly kind: 'addNonvoter'; readonly id: NodeId; readonly address?: string }
  | { readonly kind: 'addVoter'; readonly id: NodeId; readonly address?: string }
  | { readonly kind: 'demoteVoter'; readonly id: NodeId }
  | { readonly kind: 'removeServer'; readonly id: NodeId };
