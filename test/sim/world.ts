// The simulated world: servers running real RaftCores, each driven by the server's own Ready loop
// (src/node/ready-loop.ts) over a simulated network and disk, under one virtual clock, driven by one
// seeded PRNG. Nothing here reads the real clock or Math.random().
//
// The disk is where the loop's timing shows: an fsync takes 0 to 2 ticks, during which the round
// waits while messages and ticks keep reaching the core, exactly as in the server. A crash in that
// window keeps a random prefix of what was written and not yet synced; a leader's appends, sent
// before its own fsync, may by then be on followers.

import {
  RaftCore,
  SeededRandom,
  plantedBugs,
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
// The loop's own module, not the folder's index: the simulator needs the loop, not LevelDB and gRPC.
import { ReadyLoop, loopBugs, type LoopBug, type RoundWrite } from '../../src/node/ready-loop.js';
import { InvariantError } from '../../src/base/index.js';
import { Checker, SimFailure, applyToState, entryHash } from './checker.js';
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
  readonly plantedBugs: ReadonlySet<SimBug>;
  /** Record a line per event, for a failure report. */
  readonly trace: boolean;
}

/** A defect planted in the core or in the loop that drives it. */
export type SimBug = PlantedBug | LoopBug;
export const simBugs: readonly SimBug[] = [...plantedBugs, ...loopBugs];

/** A round waiting on the simulated disk: `done` makes the write durable when the wait ends. */
interface SimWait {
  readonly ticks: number;
  readonly done: () => void;
}

/**
 * Bounds that make every seed end, whatever defect is planted. Past either, the seed fails with its
 * replay command instead of running on: a run-away seed (a message storm grows the messages in
 * flight by a sixth each tick, and a tick's cost with them) would otherwise take hours and gigabytes.
 * Seeds 1..400 of a correct core peak at about 1,200 messages in flight and 9,300 ticks.
 */
export const maxInflightMessages = 20_000;
export const maxTicks = 300_000;
/** Ready rounds one server may run in one tick. */
const maxRoundsPerTick = 1000;

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
  loop: ReadyLoop<SimWait> | undefined;
  /** Ready rounds run in the current tick (bounded: a loop that never goes quiet is a failure). */
  roundsThisTick = 0;
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
  /** Loop runs scheduled for the end of this tick, in the order they were asked for (setImmediate's order). */
  private runQueue: Array<() => void> = [];
  /** The first error a loop stopped on: World.step rethrows it. */
  private fatal: Error | undefined;
  private inflightCount = 0;
  private readonly coreBugs: ReadonlySet<PlantedBug>;
  private readonly loopBugs: ReadonlySet<LoopBug>;
  private nextValue = 1;
  private nextReadContext = 1;
  stats = { delivered: 0, dropped: 0, proposals: 0, reads: 0, followerReads: 0, restores: 0, snapshotsSent: 0, crashes: 0 };
  /**
   * Draws for follower read rounds only, so that adding them left every other draw of a seed as it
   * was (the world's own `random` keeps its sequence when no follower read runs).
   */
  private readonly sideRandom: SeededRandom;

  constructor(opts: WorldOptions) {
    this.opts = opts;
    this.random = new SeededRandom(opts.seed);
    this.sideRandom = new SeededRandom(opts.seed * 7919n + 17n);
    const isLoopBug = (b: SimBug): b is LoopBug => (loopBugs as readonly string[]).includes(b);
    this.coreBugs = new Set([...opts.plantedBugs].filter((b): b is PlantedBug => !isLoopBug(b)));
    this.loopBugs = new Set([...opts.plantedBugs].filter(isLoopBug));
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
      plantedBugs: this.coreBugs,
      ...(this.opts.trace ? { logger: (e) => this.trace(`${node.id} ${JSON.stringify(e)}`) } : {}),
    });
    node.loop = this.newLoop(node, node.core);
    this.trace(`${node.id} start #${node.incarnation} term=${init.hardState.term} applied=${init.applied}`);
  }

  crash(node: SimNode, downTicks: number): void {
    if (node.core === undefined) return;
    node.disk.crash(this.random);
    node.loop?.stop();
    node.loop = undefined;
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
    if (this.now > maxTicks) throw new SimFailure(`bound: the seed ran past ${maxTicks} ticks`);
    const timers = this.timers.get(this.now);
    if (timers !== undefined) {
      this.timers.delete(this.now);
      for (const f of timers) {
        f();
        this.throwIfFatal();
      }
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
      if (this.isUp(node)) node.loop?.tick();
    }
    // Inputs given to cores between ticks (proposals, reads, membership changes, transfers,
    // restores) wait for the loop as they do in the server, whose operations kick it.
    for (const node of this.nodes.values()) if (this.isUp(node)) node.loop?.kick();
    this.runScheduled();
    for (const node of this.nodes.values()) {
      node.roundsThisTick = 0;
      node.core?.checkInvariants();
    }
    if (this.inflightCount > maxInflightMessages) {
      throw new SimFailure(`bound: ${this.inflightCount} messages in flight at tick ${this.now} (at most ${maxInflightMessages}): a message storm`);
    }
  }

  /** Runs the loop work scheduled this tick, and whatever it schedules in turn. */
  private runScheduled(): void {
    while (this.runQueue.length > 0) {
      const queue = this.runQueue;
      this.runQueue = [];
      for (const f of queue) {
        f();
        this.throwIfFatal();
      }
    }
  }

  private throwIfFatal(): void {
    if (this.fatal !== undefined) throw this.fatal;
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
        if (from.incarnation === incarnation && from.core !== undefined) {
          from.core.reportSnapshot(m.to, ok);
          from.loop?.kick();
        }
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
    this.inflightCount++;
  }

  private deliver(f: InFlight): void {
    this.inflightCount--;
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
    to.loop?.step(m);
    f.report?.(true);
  }

  // ------------------------------------------------------------------------------------------
  // The server's Ready loop, over simulated ports
  // ------------------------------------------------------------------------------------------

  private newLoop(node: SimNode, core: RaftCore): ReadyLoop<SimWait> {
    const incarnation = node.incarnation;
    const current = (): boolean => node.incarnation === incarnation && node.loop === loop;
    const loop: ReadyLoop<SimWait> = new ReadyLoop<SimWait>(core, {
      log: { persist: (w) => this.persist(node, core, w) },
      stateMachine: {
        installSnapshot: (meta) => this.installSnapshot(node, meta),
        apply: (entries) => this.apply(node, core, entries),
      },
      transport: { send: (m) => this.send(node, m) },
      schedule: (f) => this.runQueue.push(() => {
        if (current()) f();
      }),
      wait: (w, resume) => {
        const finish = (): void => {
          if (!current()) return; // crashed meanwhile: the write never completed
          if (this.now < node.pausedUntil) {
            // A paused process finishes its fsync once it runs again.
            this.after(node.pausedUntil - this.now, finish);
            return;
          }
          w.done();
          resume();
        };
        this.after(w.ticks, finish);
      },
      afterRound: (rd) => this.afterRound(node, core, rd),
      onFatal: (e) => {
        if (!(e instanceof SimFailure) && !(e instanceof InvariantError)) e.message = `${node.id} at tick ${this.now}: ${e.message}`;
        this.fatal ??= e;
      },
      bugs: this.loopBugs,
    });
    return loop;
  }

  private persist(node: SimNode, core: RaftCore, w: RoundWrite): SimWait | undefined {
    const snap = w.snapshotBase !== undefined ? this.stored(node, w.snapshotBase) : undefined;
    const pending = w.pendingRestore === undefined ? undefined : w.pendingRestore === null ? null : this.stored(node, w.pendingRestore);
    const { truncateFrom, entries, hardState } = w;
    if (snap !== undefined || pending !== undefined || truncateFrom !== undefined || entries.length > 0 || hardState !== undefined) {
      this.checker.observePersisted(node.id, core, entries);
      // One atomic write (a LevelDB batch), in the order the Ready contract gives.
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
      }, false);
    }
    if (!w.sync) return undefined;
    // An fsync makes everything written so far durable; it takes a while, or no time at all.
    const ticks = this.random.nextInt(3);
    if (ticks === 0) {
      node.disk.flush();
      return undefined;
    }
    return { ticks, done: () => node.disk.flush() };
  }

  private stored(node: SimNode, meta: SnapshotMeta): StoredSnapshot {
    const content = node.contents.get(key(meta));
    if (content === undefined) throw new Error(`${node.id} must persist snapshot ${key(meta)} it never received`);
    return { meta, content };
  }

  private installSnapshot(node: SimNode, meta: SnapshotMeta): undefined {
    const content = this.stored(node, meta).content;
    this.checker.observeSnapshotApplied(node.id, meta, content);
    node.fsmState = content;
    node.fsmApplied = meta.index;
    this.trace(`${node.id} applied snapshot ${key(meta)}`);
    return undefined;
  }

  private apply(node: SimNode, core: RaftCore, entries: readonly Entry[]): undefined {
    for (const e of entries) {
      if (e.index !== node.fsmApplied + 1) throw new Error(`${node.id} applies ${e.index} after ${node.fsmApplied}`);
      const before = node.fsmState;
      node.fsmState = applyToState(before, e);
      node.fsmApplied = e.index;
      this.checker.observeApply(node.id, core.currentTerm(), e, before, node.fsmState);
      this.ackIfProposed(node, e);
    }
    return undefined;
  }

  private afterRound(node: SimNode, core: RaftCore, rd: Ready): void {
    if (++node.roundsThisTick > maxRoundsPerTick) throw new SimFailure(`bound: ${node.id} ran over ${maxRoundsPerTick} Ready rounds in tick ${this.now}`);
    for (const rs of rd.readStates) {
      const read = this.pendingReads.get(rs.context);
      if (read === undefined || read.node !== node.id || read.incarnation !== node.incarnation) continue;
      this.pendingReads.delete(rs.context);
      this.checker.observeReadState(node.id, rs, read.minIndex);
    }
    this.checker.observeCommit(node.id, node.incarnation, core);
    this.checker.observeRole(node.id, core);
    this.maybeSnapshot(node);
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

  /**
   * A follower's read round as the server runs it (Server.fetchReadIndex): the call carries the
   * follower's term, read now, to the server it believes leads; the answer comes back and the
   * follower learns the commit from it (RaftCore.learnCommit). Both legs travel like messages (lost,
   * delayed, cut by partitions, dropped by a paused or crashed server). Only the answer without a
   * heartbeat round is modelled (readIndexConfirmedBy); the round itself is `read`'s. The answer must
   * not be older than any write acknowledged before the call; what the follower then applies is
   * checked against the canonical history like everything it applies.
   */
  followerRead(node: SimNode): void {
    const core = node.core;
    if (core === undefined || !this.isUp(node) || core.currentRole() !== 'follower') return;
    const leader = this.nodes.get(core.currentLeader());
    if (leader === undefined || leader === node) return;
    const minIndex = this.checker.maxAckedIndex;
    const fromTerm = core.currentTerm();
    const incarnation = node.incarnation;
    const leaderIncarnation = leader.incarnation;
    const context = this.nextReadContext++;
    this.stats.followerReads++;
    this.sideCall(node, leader, () => {
      const lc = leader.core;
      if (lc === undefined || leader.incarnation !== leaderIncarnation || !this.isUp(leader)) return;
      const index = lc.readIndexConfirmedBy(node.id, fromTerm);
      if (index === undefined) return;
      this.checker.observeReadState(leader.id, { index, context }, minIndex);
      const term = lc.currentTerm();
      const indexTerm = lc.termAt(index) ?? 0;
      this.sideCall(leader, node, () => {
        if (node.core === undefined || node.incarnation !== incarnation || !this.isUp(node)) return;
        node.core.learnCommit(term, index, indexTerm);
        node.loop?.kick();
        this.trace(`${node.id} read round answered by ${leader.id}: index ${index} (term ${term}, entry term ${indexTerm})`);
      });
    });
  }

  /** Runs `f` at `to` as if a message from `from` had arrived: maybe lost, after a delay, not across a cut. */
  private sideCall(from: SimNode, to: SimNode, f: () => void): void {
    const net = this.opts.network;
    const link = `${from.id}>${to.id}`;
    if (this.blocked.has(link) || this.sideRandom.chance(net.dropProbability)) return;
    this.after(1 + this.sideRandom.nextInt(net.maxDelayTicks), () => {
      if (!this.blocked.has(link)) f();
    });
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
