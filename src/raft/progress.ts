import { assert } from '../base/index.js';
import type { Configuration, Index, NodeId } from './types.js';

/**
 * The leader's view of one follower (etcd-raft's tracker.Progress).
 *  - probe: we do not know where the follower's log matches ours; send one append at a time and
 *    wait for its answer (or a heartbeat answer) before sending the next.
 *  - replicate: the follower is matching; send optimistically, up to maxInflight messages ahead.
 *  - snapshot: a snapshot is on its way; send nothing until it is reported done or failed.
 */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

interface Inflight {
  readonly last: Index;
  readonly sentTick: number;
}

export class Progress {
  /** Highest index known to match the leader's log. Invariant: match < next. */
  match: Index = 0;
  next: Index;
  state: ProgressState = 'probe';
  /** In probe state: an append is out and unanswered. */
  probeSent = false;
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshot: Index = 0;
  /** The leader's tick counter when this follower last answered anything in this term. */
  lastContactTick: number;
  /** The highest ReadIndex round this follower has acknowledged in this term. */
  readSeqAcked = 0;
  private readonly inflight: Inflight[] = [];

  constructor(next: Index, nowTick: number) {
    this.next = next;
    this.lastContactTick = nowTick;
  }

  checkInvariants(): void {
    assert(this.match < this.next, 'progress: match < next');
  }

  inflightCount(): number {
    return this.inflight.length;
  }

  oldestInflightTick(): number | undefined {
    return this.inflight[0]?.sentTick;
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      this.next = Math.max(this.match + 1, this.pendingSnapshot + 1);
    } else {
      this.next = this.match + 1;
    }
    this.state = 'probe';
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflight.length = 0;
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflight.length = 0;
  }

  becomeSnapshot(index: Index): void {
    this.state = 'snapshot';
    this.pendingSnapshot = index;
    this.probeSent = false;
    this.inflight.length = 0;
  }

  /** Records an append that ends at `last`. */
  sent(last: Index, tick: number, entryCount: number): void {
    if (this.state === 'replicate') {
      if (entryCount > 0) {
        this.next = last + 1;
        this.inflight.push({ last, sentTick: tick });
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  /** An acknowledgement up to `index`. Returns true when match moved forward. */
  maybeUpdate(index: Index): boolean {
    let updated = false;
    if (index > this.match) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    while (this.inflight.length > 0 && (this.inflight[0] as Inflight).last <= index) this.inflight.shift();
    return updated;
  }

  /**
   * A rejection of prevIndex `rejected`; `hintNext` is where the leader's log and the follower's may
   * first differ. Returns false for a stale rejection that needs no action.
   */
  maybeDecrease(rejected: Index, hintNext: Index): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false; // answers an append that was sent before a later ack
      this.becomeProbe();
      this.next = Math.max(this.match + 1, Math.min(rejected, hintNext));
      return true;
    }
    if (this.next - 1 !== rejected) return false; // not the probe we are waiting for
    this.next = Math.max(this.match + 1, Math.min(rejected, hintNext));
    this.probeSent = false;
    return true;
  }

  isPaused(maxInflight: number): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflight.length >= maxInflight;
      case 'snapshot':
        return true;
    }
  }
}

export function voters(c: Configuration): NodeId[] {
  return c.servers.filter((s) => s.suffrage === 'voter').map((s) => s.id);
}

export function isVoter(c: Configuration, id: NodeId): boolean {
  return c.servers.some((s) => s.id === id && s.suffrage === 'voter');
}

export function hasServer(c: Configuration, id: NodeId): boolean {
  return c.servers.some((s) => s.id === id);
}

export function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The highest value that at least a quorum of `values` (one per voter) reach: sort descending and
 * take the quorum-th. With no voters nothing is committed (returns 0).
 */
export function quorumValue(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => b - a);
  return sorted[quorumSize(values.length) - 1] as number;
}

export type VoteOutcome = 'won' | 'lost' | 'pending';

export function tallyVotes(voterIds: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  let granted = 0;
  let rejected = 0;
  for (const id of voterIds) {
    const v = votes.get(id);
    if (v === true) granted++;
    else if (v === false) rejected++;
  }
  const q = quorumSize(voterIds.length);
  if (granted >= q) return 'won';
  if (rejected > voterIds.length - q) return 'lost';
  return 'pending';
}
