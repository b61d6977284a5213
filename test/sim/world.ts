// The simulated world: servers running real RaftCores over a simulated network and disk, under one
// virtual clock, driven by one seeded PRNG. Nothing here reads the real clock or Math.random().

import {
  RaftCore,
  SeededRandom,
  bootstrapState,
  joinState,
  type Configuration,
  type Entry,
  type InitialState,
  type Message,
  type NodeId,
  type PlantedBug,
  type Ready,
  type SnapshotMeta,
} from '../../src/raft/index.js';
import { Checker, applyToState, entryHash } from './checker.js';
import { SimDisk, type StoredSnapshot } from './disk.js';

export interface NetworkOptions {
  /** Probability that a message is lost. */
  dropProbability: number;
  duplicateProbability: number;
  /** Delivery delay in ticks, uniform in [1, maxDelayTicks]; different delays reorder messages. */
  maxDelayTicks: number;
  /** Chunks a snapshot travels in; each may be lost, which fails the whole transfer. */
  snapshotChunks: number;
  /**
   * Deliver each link's messages in the order sent, as the real transport's per-peer stream does.
   * Off while faults are on (messages then overtake each other); on once the network heals.
   */
  fifo?: boolean;
}

export interface WorldOptions {
  readonly seed: bigint;
  readonly voterCount: number;
  /** Servers that start empty, outside the configuration, to be added by membership changes. */
  readonly spareCount: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly maxMessageBytes: number;
  readonly maxInflightMessages: number;
  /** Take a snapshot and compact once this many entries were applied since the last one. */
  readonly snapshotEveryEntries: number;
  readonly trailingEntries: number;
  readonly network: NetworkOptions;
  readonly plantedBugs: ReadonlySet<PlantedBug>;
  /** Record a line per event, for a failure report. */
  readonly trace: boolean;
}

interface InFlight {
  readonly message: Message;
  /** For snapshot messages: the contents travelling with it. */
  readonly content?: number;
  /** For snapshot messages: the sender's transport learns whether the stream got through. */
  readonly report?: (ok: boolean) => void;
}

interface PendingProposal {
  readonly node: NodeId;
  readonly incarnation: number;
  readonly term: number;
  readonly hash: number;
}

export class SimNode {
  readonly id: NodeId;
  readonly disk = new SimDisk();
  core: RaftCore | undefined;
  incarnation = 0;
  downUntil = 0;
  pausedUntil = 0;
  /** The simulated state machine: a hash of everything applied, and the index it reached. */
  fsmState = 0;
  fsmApplied = 0;
  /** Contents of every snapshot this server holds or received, by "index/term". */
  readonly contents = new Map<string, number>();

  constructor(id: NodeId) {
    this.id = id;
  }
}

export class World {
  readonly opts: WorldOptions;
  readonly random: SeededRandom;
  readonly checker = new Checker();
  readonly nodes = new Map<NodeId, SimNode>();
  now = 0;
  readonly traceLines: string[] = [];
  /** Directed links that drop everything: "from>to". */
  readonly blocked = new Set<string>();
  private readonly inflight = new Map<number, InFlight[]>();
  /** The latest delivery tick scheduled on each link ("from>to"), for FIFO delivery. */
  private readonly linkTail = new Map<string, number>();
  private readonly pendingProposals = new Map<string, PendingProposal>();
  private readonly pendingReads = new Map<number, { node: NodeId; incarnation: number; minIndex: number }>();
  private readonly timers = new Map<number, Array<() => void>>();
  private nextValue = 1;
  private nextReadContext = 1;
  stats = { delivered: 0, dropped: 0, proposals: 0, reads: 0, restores: 0, snapshotsSent: 0, crashes: 0 };

  constructor(opts: WorldOptions) {
    this.opts = opts;
    this.random = new SeededRandom(opts.seed);
    const ids: NodeId[] = [];
    for (let i = 1; i <= opts.voterCount + opts.spareCount; i++) ids.push(`n${i}`);
    const config: Configuration = {
      servers: ids.slice(0, opts.voterCount).map((id) => ({ id, suffrage: 'voter' as const })),
    };
    for (const [i, id] of ids.entries()) {
      const node = new SimNode(id);
      const init = i < opts.voterCount ? bootstrapState(config) : joinState();
      node.disk.durable.hardState = init.hardState;
      for (const e of init.entries) node.disk.durable.entries.set(e.index, e);
      this.nodes.set(id, node);
      this.start(node);
    }
  }

  trace(line: string): void {
    if (this.opts.trace) this.traceLines.push(`${this.now} ${line}`);
  }

  // ------------------------------------------------------------------------------------------
  // Server lifecycle
  // ------------------------------------------------------------------------------------------

  private start(node: SimNode): void {
    const d = node.disk.durable;
    const snap = d.snapshot;
    node.fsmState = snap?.content ?? 0;
    node.fsmApplied = snap?.meta.index ?? 0;
    const init: InitialState = {
      hardState: d.hardState,
      ...(snap !== undefined ? { snapshot: snap.meta } : {}),
      ...(d.pending !== undefined ? { pendingRestore: d.pending.meta } : {}),
      entries: node.disk.entriesInOrder(),
      applied: node.fsmApplied,
    };
    if (snap !== undefined) node.contents.set(key(snap.meta), snap.content);
    if (d.pending !== undefined) node.contents.set(key(d.pending.meta), d.pending.content);
    node.incarnation++;
    node.core = new RaftCore({
      id: node.id,
      electionTimeoutTicks: this.opts.electionTimeoutTicks,
      heartbeatIntervalTicks: this.opts.heartbeatIntervalTicks,
      random: new SeededRandom(BigInt(this.random.nextUint32()) * 65536n + BigInt(node.incarnation)),
      maxMessageBytes: this.opts.maxMessageBytes,
      maxInflightMessages: this.opts.maxInflightMessages,
      initial: init,
      plantedBugs: this.opts.plantedBugs,
      ...(this.opts.trace ? { logger: (e) => this.trace(`${node.id} ${JSON.stringify(e)}`) } : {}),
    });
    this.trace(`${node.id} start #${node.incarnation} term=${init.hardState.term} applied=${init.applied}`);
  }

  crash(node: SimNode, downTicks: number): void {
    if (node.core === undefined) return;
    node.disk.crash(this.random);
    node.core = undefined;
    node.downUntil = this.now + downTicks;
    node.contents.clear();
    this.stats.crashes++;
    this.trace(`${node.id} crash, down for ${downTicks}`);
  }

  restartIfDue(node: SimNode): void {
    if (node.core === undefined && this.now >= node.downUntil) this.start(node);
  }

  isUp(node: SimNode): boolean {
    return node.core !== undefined && this.now >= node.pausedUntil;
  }

  // ------------------------------------------------------------------------------------------
  // The clock
  // ------------------------------------------------------------------------------------------

  /** One tick of virtual time: deliver what is due, tick every running server, do the work. */
  step(): void {
    this.now++;
    const timers = this.timers.get(this.now);
    if (timers !== undefined) {
      this.timers.delete(this.now);
      for (const f of timers) f();
    }
    const due = this.inflight.get(this.now);
    if (due !== undefined) {
      this.inflight.delete(this.now);
      // Same-tick deliveries happen in a random order (unless links are FIFO).
      for (let i = this.opts.network.fifo === true ? 0 : due.length - 1; i > 0; i--) {
        const j = this.random.nextInt(i + 1);
        [due[i], due[j]] = [due[j] as InFlight, due[i] as InFlight];
      }
      for (const f of due) this.deliver(f);
    }
    for (const node of this.nodes.values()) {
      if (this.isUp(node)) (node.core as RaftCore).tick();
    }
    for (const node of this.nodes.values()) this.processReady(node);
  }

  after(ticks: number, f: () => void): void {
    const at = this.now + Math.max(1, ticks);
    const list = this.timers.get(at);
    if (list === undefined) this.timers.set(at, [f]);
    else list.push(f);
  }

  // ------------------------------------------------------------------------------------------
  // Network
  // ------------------------------------------------------------------------------------------

  private send(from: SimNode, m: Message): void {
    const net = this.opts.network;
    if (m.type === 'snapshot') {
      const content = from.contents.get(key(m.snapshot));
      if (content === undefined) throw new Error(`${from.id} sends snapshot ${key(m.snapshot)} it does not hold`);
      this.stats.snapshotsSent++;
      const incarnation = from.incarnation;
      let delay = 0;
      let lost = false;
      for (let c = 0; c < net.snapshotChunks; c++) {
        delay += 1 + this.random.nextInt(net.maxDelayTicks);
        if (this.random.chance(net.dropProbability)) lost = true;
      }
      const report = (ok: boolean): void => {
        if (from.incarnation === incarnation && from.core !== undefined) from.core.reportSnapshot(m.to, ok);
      };
      if (lost || this.blocked.has(`${m.from}>${m.to}`)) {
        this.after(delay, () => report(false));
        return;
      }
      this.schedule(delay, { message: m, content, report: (ok) => this.after(1, () => report(ok)) });
      return;
    }
    if (this.blocked.has(`${m.from}>${m.to}`)) {
      this.stats.dropped++;
      return;
    }
    if (this.random.chance(net.dropProbability)) {
      this.stats.dropped++;
      return;
    }
    this.schedule(1 + this.random.nextInt(net.maxDelayTicks), { message: m });
    if (this.random.chance(net.duplicateProbability)) {
      this.schedule(1 + this.random.nextInt(net.maxDelayTicks), { message: m });
    }
  }

  private schedule(delay: number, f: InFlight): void {
    let at = this.now + delay;
    if (this.opts.network.fifo === true) {
      const link = `${f.message.from}>${f.message.to}`;
      at = Math.max(at, this.linkTail.get(link) ?? 0);
      this.linkTail.set(link, at);
    }
    const list = this.inflight.get(at);
    if (list === undefined) this.inflight.set(at, [f]);
    else list.push(f);
  }

  private deliver(f: InFlight): void {
    const m = f.message;
    const to = this.nodes.get(m.to);
    if (to === undefined || to.core === undefined || this.blocked.has(`${m.from}>${m.to}`)) {
      this.stats.dropped++;
      f.report?.(false);
      return;
    }
    if (this.now < to.pausedUntil) {
      // A paused process: the kernel buffers the bytes until it runs again.
      this.schedule(to.pausedUntil - this.now, f);
      return;
    }
    if (m.type === 'snapshot' && f.content !== undefined) to.contents.set(key(m.snapshot), f.content);
    this.stats.delivered++;
    to.core.step(m);
    f.report?.(true);
  }

  // ------------------------------------------------------------------------------------------
  // The runtime loop, as a real server does it: persist, send, apply, advance.
  // ------------------------------------------------------------------------------------------

  processReady(node: SimNode): void {
    try {
      this.processReadyRounds(node);
    } catch (e) {
      if (e instanceof Error) e.message = `${node.id} at tick ${this.now}: ${e.message}`;
      throw e;
    }
  }

  private processReadyRounds(node: SimNode): void {
    for (let rounds = 0; node.core !== undefined && node.core.hasReady(); rounds++) {
      if (rounds > 1000) throw new Error(`${node.id} produced Ready rounds without end`);
      const core = node.core;
      // Like the real runtime, sometimes let heartbeat traffic go ahead of the round.
      if (this.random.chance(0.5)) for (const m of core.takeUrgentMessages()) this.send(node, m);
      const rd = core.ready();
      this.persist(node, rd);
      for (const m of rd.messages) this.send(node, m);
      this.apply(node, rd);
      core.advance(rd);
      this.checker.observeCommit(node.id, node.incarnation, core);
      this.checker.observeRole(node.id, core);
      this.maybeSnapshot(node);
    }
  }

  private persist(node: SimNode, rd: Ready): void {
    const core = node.core as RaftCore;
    const snap = rd.snapshot !== undefined ? this.stored(node, rd.snapshot) : undefined;
    const pending = rd.pendingRestore === undefined ? undefined : rd.pendingRestore === null ? null : this.stored(node, rd.pendingRestore);
    const { truncateFrom, entries, hardState } = rd;
    if (snap === undefined && pending === undefined && truncateFrom === undefined && entries.length === 0 && hardState === undefined) {
      return;
    }
    this.checker.observePersisted(node.id, core, entries);
    node.disk.write((s) => {
      if (snap !== undefined) {
        s.snapshot = snap;
        s.pending = undefined;
        for (const i of [...s.entries.keys()]) if (i <= snap.meta.index) s.entries.delete(i);
      }
      if (pending !== undefined) s.pending = pending ?? undefined;
      if (truncateFrom !== undefined) for (const i of [...s.entries.keys()]) if (i >= truncateFrom) s.entries.delete(i);
      for (const e of entries) s.entries.set(e.index, e);
      if (hardState !== undefined) s.hardState = hardState;
    }, rd.mustSync);
  }

  private stored(node: SimNode, meta: SnapshotMeta): StoredSnapshot {
    const content = node.contents.get(key(meta));
    if (content === undefined) throw new Error(`${node.id} must persist snapshot ${key(meta)} it never received`);
    return { meta, content };
  }

  private apply(node: SimNode, rd: Ready): void {
    if (rd.applySnapshot !== undefined) {
      const content = this.stored(node, rd.applySnapshot).content;
      this.checker.observeSnapshotApplied(node.id, rd.applySnapshot, content);
      node.fsmState = content;
      node.fsmApplied = rd.applySnapshot.index;
      this.trace(`${node.id} applied snapshot ${key(rd.applySnapshot)}`);
    }
    for (const e of rd.committedEntries) {
      if (e.index !== node.fsmApplied + 1) throw new Error(`${node.id} applies ${e.index} after ${node.fsmApplied}`);
      const before = node.fsmState;
      node.fsmState = applyToState(before, e);
      node.fsmApplied = e.index;
      this.checker.observeApply(node.id, (node.core as RaftCore).currentTerm(), e, before, node.fsmState);
      this.ackIfProposed(node, e);
    }
    const core = node.core as RaftCore;
    for (const rs of rd.readStates) {
      const read = this.pendingReads.get(rs.context);
      if (read === undefined || read.node !== node.id || read.incarnation !== node.incarnation) continue;
      this.pendingReads.delete(rs.context);
      this.checker.observeReadState(node.id, rs, read.minIndex);
    }
    void core;
  }

  private ackIfProposed(node: SimNode, e: Entry): void {
    const k = `${node.id}/${e.index}`;
    const p = this.pendingProposals.get(k);
    if (p === undefined) return;
    this.pendingProposals.delete(k);
    if (p.incarnation !== node.incarnation || p.term !== e.term || p.hash !== entryHash(e)) return; // lost
    this.checker.observeAck(e.index, e.term, p.hash);
  }

  private maybeSnapshot(node: SimNode): void {
    const core = node.core as RaftCore;
    const applied = core.appliedIndex();
    if (applied - core.snapshotMeta().index < this.opts.snapshotEveryEntries) return;
    if (applied > core.lastIndex() || core.pendingRestore() !== undefined && applied >= core.pendingRestore()!.index) return;
    if (core.termAt(applied) === undefined) return;
    const meta = core.snapshotMetaAt(applied);
    if (node.fsmApplied !== applied) throw new Error(`${node.id} state machine at ${node.fsmApplied}, core says ${applied}`);
    const content = node.fsmState;
    this.checker.observeSnapshotTaken(node.id, meta, content);
    node.contents.set(key(meta), content);
    // The snapshot store writes a temp file, fsyncs and renames: durable before the log is compacted.
    node.disk.write((s) => {
      if (s.snapshot === undefined || s.snapshot.meta.index < meta.index) s.snapshot = { meta, content };
    }, true);
    const first = core.compact(applied, this.opts.trailingEntries);
    node.disk.write((s) => {
      for (const i of [...s.entries.keys()]) if (i < first) s.entries.delete(i);
    }, false);
    this.trace(`${node.id} snapshot at ${applied}, log from ${first}`);
  }

  // ------------------------------------------------------------------------------------------
  // Client workload
  // ------------------------------------------------------------------------------------------

  /** Leaders as the servers themselves believe (several may believe so during a partition). */
  leaders(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.core?.currentRole() === 'leader');
  }

  propose(node: SimNode): boolean {
    const core = node.core;
    if (core === undefined) return false;
    const value = this.nextValue++;
    const data = new Uint8Array([value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff]);
    const r = core.propose(data);
    if (!r.ok) return false;
    this.stats.proposals++;
    const hash = entryHash({ index: r.index, term: r.term, kind: 'normal', data });
    this.pendingProposals.set(`${node.id}/${r.index}`, { node: node.id, incarnation: node.incarnation, term: r.term, hash });
    return true;
  }

  read(node: SimNode): void {
    const core = node.core;
    if (core === undefined) return;
    const context = this.nextReadContext++;
    const r = core.readIndex(context);
    if (!r.ok) return;
    this.stats.reads++;
    this.pendingReads.set(context, { node: node.id, incarnation: node.incarnation, minIndex: this.checker.maxAckedIndex });
  }

  restore(node: SimNode): void {
    const core = node.core;
    if (core === undefined) return;
    const external = Math.max(0, core.lastIndex() + this.random.between(-10, 30));
    const r = core.userRestore(external);
    if (!r.ok) return;
    const content = this.random.nextUint32();
    node.contents.set(key(r.snapshot), content);
    this.checker.restoreRequested(r.snapshot, content);
    this.stats.restores++;
    this.trace(`${node.id} user restore at ${key(r.snapshot)}`);
  }
}

export function key(meta: SnapshotMeta): string {
  return `${meta.index}/${meta.term}`;
}
