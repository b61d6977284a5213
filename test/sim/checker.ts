// The invariants the simulator checks after every step. Each check names the Raft property it guards.
//
// The "canonical sequence" is what the cluster has decided: for every index some server applied, the
// entry (term and payload) and the state machine's contents after it. Every server must apply a
// prefix of it (skipping only what a snapshot covers), and every acknowledged write must be in it.

import type { Entry, Index, NodeId, RaftCore, ReadState, SnapshotMeta, Term } from '../../src/raft/index.js';

export class SimFailure extends Error {
  override readonly name = 'SimFailure';
}

function fail(invariant: string, detail: string): never {
  throw new SimFailure(`${invariant}: ${detail}`);
}

/** FNV-1a over an entry's identity and payload: what "the same entry" means here. */
export function entryHash(e: Entry): number {
  let h = 0x811c9dc5;
  const mix = (x: number): void => {
    h = Math.imul(h ^ (x & 0xff), 16777619) >>> 0;
    h = Math.imul(h ^ ((x >>> 8) & 0xff), 16777619) >>> 0;
    h = Math.imul(h ^ ((x >>> 16) & 0xff), 16777619) >>> 0;
    h = Math.imul(h ^ ((x >>> 24) & 0xff), 16777619) >>> 0;
  };
  mix(e.index);
  mix(e.term);
  mix(e.kind === 'normal' ? 1 : e.kind === 'noop' ? 2 : 3);
  for (const b of e.data) h = Math.imul(h ^ b, 16777619) >>> 0;
  if (e.config !== undefined) for (const s of e.config.servers) mix(s.id.length * 31 + (s.suffrage === 'voter' ? 1 : 2));
  return h;
}

/** The simulated state machine's transition: its contents are a hash chain of what it applied. */
export function applyToState(state: number, e: Entry): number {
  return (Math.imul(state ^ entryHash(e), 0x01000193) + 0x9e3779b9) >>> 0;
}

interface CanonicalEntry {
  readonly term: Term;
  /**
   * The current term of the first server seen applying it. It was committed in this term or an
   * earlier one, so every leader of a later term must hold it.
   */
  readonly appliedInTerm: Term;
  readonly hash: number;
  /** The state machine's contents after applying it. */
  readonly state: number;
}

export class Checker {
  private readonly leaders = new Map<Term, NodeId>();
  /** (index/term) -> hash of the entry and the term of its predecessor. */
  private readonly seen = new Map<string, { hash: number; prevTerm: Term | undefined }>();
  private readonly canonical = new Map<Index, CanonicalEntry>();
  /** State after a snapshot point that was installed rather than applied (user restore). */
  private readonly canonicalSnapshotState = new Map<Index, number>();
  private readonly restores = new Map<string, number>();
  private readonly commits = new Map<string, Index>();
  maxCanonicalIndex = 0;
  maxAckedIndex = 0;
  acked = 0;
  readsChecked = 0;

  /** Election safety (§5.2): at most one leader per term. */
  observeRole(id: NodeId, core: RaftCore): void {
    if (core.currentRole() !== 'leader') return;
    const term = core.currentTerm();
    const other = this.leaders.get(term);
    if (other === undefined) {
      this.leaders.set(term, id);
      this.checkLeaderCompleteness(id, core);
    } else if (other !== id) {
      fail('election safety', `${other} and ${id} are both leaders in term ${term}`);
    }
  }

  /**
   * Leader completeness (§5.4): a leader holds every entry committed in an earlier term. (A leader
   * of an older term can still win late, after a newer term committed more: that is allowed.)
   */
  private checkLeaderCompleteness(id: NodeId, core: RaftCore): void {
    const pending = core.pendingRestore();
    const term = core.currentTerm();
    for (const [index, c] of this.canonical) {
      if (c.appliedInTerm >= term) continue;
      if (index > core.lastIndex()) {
        fail('leader completeness', `${id} leads term ${term} with last index ${core.lastIndex()} ` +
          `but index ${index} was applied in term ${c.appliedInTerm}`);
      }
      if (index <= core.snapshotMeta().index) continue;
      if (pending !== undefined && index < pending.index) continue; // overtaken by the pending restore
      const t = core.termAt(index);
      if (t !== c.term) {
        fail('leader completeness', `${id} leads term ${core.currentTerm()} with term ${t} at index ${index}, ` +
          `but the applied entry there has term ${c.term}`);
      }
    }
  }

  /** Log matching (§5.3): one entry per (index, term), and it always follows the same predecessor. */
  observePersisted(id: NodeId, core: RaftCore, entries: readonly Entry[]): void {
    for (const e of entries) {
      const key = `${e.index}/${e.term}`;
      const hash = entryHash(e);
      const prevTerm = core.termAt(e.index - 1);
      const s = this.seen.get(key);
      if (s === undefined) {
        this.seen.set(key, { hash, prevTerm });
        continue;
      }
      if (s.hash !== hash) fail('log matching', `${id} holds a different entry at index ${e.index} term ${e.term}`);
      if (s.prevTerm !== undefined && prevTerm !== undefined && s.prevTerm !== prevTerm) {
        fail('log matching', `${id} has term ${prevTerm} before ${key}; another server had ${s.prevTerm}`);
      }
      if (s.prevTerm === undefined && prevTerm !== undefined) s.prevTerm = prevTerm;
    }
  }

  /** The commit index never goes back within one run of a server (it is not persisted). */
  observeCommit(id: NodeId, incarnation: number, core: RaftCore): void {
    const key = `${id}#${incarnation}`;
    const before = this.commits.get(key) ?? 0;
    const now = core.commitIndex();
    if (now < before) fail('commit monotonic', `${id} commit index went from ${before} back to ${now}`);
    this.commits.set(key, now);
  }

  /** State machine safety (§5.4.3): every server applies the same entry at each index. */
  observeApply(id: NodeId, currentTerm: Term, e: Entry, stateBefore: number, stateAfter: number): void {
    const prev = this.canonical.get(e.index - 1)?.state ?? this.canonicalSnapshotState.get(e.index - 1);
    if (prev !== undefined && prev !== stateBefore) {
      fail('state machine safety', `${id} applied index ${e.index} on top of a state that differs from the ` +
        `decided state at ${e.index - 1}`);
    }
    const hash = entryHash(e);
    const c = this.canonical.get(e.index);
    if (c === undefined) {
      this.canonical.set(e.index, { term: e.term, appliedInTerm: currentTerm, hash, state: stateAfter });
      this.maxCanonicalIndex = Math.max(this.maxCanonicalIndex, e.index);
      return;
    }
    if (c.term !== e.term || c.hash !== hash) {
      fail('state machine safety', `${id} applied term ${e.term} at index ${e.index}; the decided entry has term ${c.term}`);
    }
    if (c.state !== stateAfter) fail('state machine safety', `${id} reached a different state at index ${e.index}`);
  }

  /** A snapshot's contents equal replaying the decided sequence up to its index. */
  observeSnapshotApplied(id: NodeId, meta: SnapshotMeta, content: number): void {
    const restore = this.restores.get(`${meta.index}/${meta.term}`);
    if (restore !== undefined) {
      if (content !== restore) fail('restore', `${id} installed restore ${meta.index} with the wrong contents`);
      const earlier = this.canonicalSnapshotState.get(meta.index);
      if (earlier !== undefined && earlier !== content) fail('restore', `two contents for restore at ${meta.index}`);
      if (this.canonical.has(meta.index)) {
        fail('restore', `restore at ${meta.index} took an index that an applied entry holds`);
      }
      this.canonicalSnapshotState.set(meta.index, content);
      this.maxCanonicalIndex = Math.max(this.maxCanonicalIndex, meta.index);
      return;
    }
    const expected = this.canonical.get(meta.index)?.state ?? this.canonicalSnapshotState.get(meta.index);
    if (expected === undefined) {
      fail('snapshot contents', `${id} installed a snapshot at ${meta.index} that no server ever applied`);
    }
    if (expected !== content) fail('snapshot contents', `${id} installed a snapshot at ${meta.index} whose contents differ from the log's`);
  }

  /** A snapshot taken by a server from its own state machine. */
  observeSnapshotTaken(id: NodeId, meta: SnapshotMeta, content: number): void {
    this.observeSnapshotApplied(id, meta, content);
  }

  restoreRequested(meta: SnapshotMeta, content: number): void {
    this.restores.set(`${meta.index}/${meta.term}`, content);
  }

  /** No acknowledged write is lost: an acknowledged entry is the decided one at its index. */
  observeAck(index: Index, term: Term, hash: number): void {
    const c = this.canonical.get(index);
    if (c === undefined || c.term !== term || c.hash !== hash) {
      fail('durability', `write acknowledged at index ${index} is not the decided entry there`);
    }
    this.acked++;
    this.maxAckedIndex = Math.max(this.maxAckedIndex, index);
  }

  /** ReadIndex is linearizable: it never returns an index older than a write acknowledged before it. */
  observeReadState(id: NodeId, rs: ReadState, minIndex: Index): void {
    if (rs.index < minIndex) {
      fail('linearizable read', `${id} served read ${rs.context} at index ${rs.index}, but index ${minIndex} ` +
        `was acknowledged before the read began`);
    }
    this.readsChecked++;
  }

  /** Every acknowledged write survives at the end: it is in the final leader's committed history. */
  checkFinal(core: RaftCore): void {
    if (core.commitIndex() < this.maxAckedIndex) {
      fail('durability', `final commit index ${core.commitIndex()} is below acknowledged index ${this.maxAckedIndex}`);
    }
  }
}
