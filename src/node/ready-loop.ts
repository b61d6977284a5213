// The Ready loop: the one piece of code that drives a RaftCore, run by the server (RaftNode, with
// LevelDB, the snapshot store and gRPC behind its ports) and by the simulator (test/sim, with its
// simulated disk and network behind the same ports). What the simulator proves about ordering is
// therefore what ships.
//
// A round does, in the order the core's Ready contract gives:
//   1. urgent messages (heartbeats and their answers, which claim nothing durable) leave at once;
//   2. a leader's appends leave before its own write is durable (it counts itself toward commit only
//      once its write is, and its term was durable before it campaigned), so disk and network overlap
//      (Raft thesis §10.2.1; etcd-raft does the same);
//   3. persist: one write, fsynced when the round says so;
//   4. every other message leaves (a vote or an acknowledgement claims what step 3 made durable);
//   5. apply: a committed snapshot replaces the state machine's contents, then committed entries;
//   6. advance, then the driver's bookkeeping (proposals, reads, role and configuration changes).
// After steps 2 and 4, when a persist or an apply comes next, the loop waits on the transport's flush
// (if it has one): in the server, one turn of the event loop, in which the sent messages reach the
// socket instead of waiting behind that work. The simulator's network needs no such wait.
//
// Ports may finish at once (return undefined) or hand back something to wait on: a Promise in the
// server, a simulated disk delay in the simulator. The loop is written as a generator that yields
// those, and the driver's `wait` decides how to resume it, so one body serves a synchronous,
// deterministic simulator and an asynchronous server. Rounds never overlap; inputs (tick, step)
// reach the core between them and while a round waits, exactly as network and timer events do.

import type { Entry, Index, Message, RaftCore, Ready, SnapshotMeta, HardState } from '../raft/index.js';

/** Defects of the loop itself, switched on only to prove that the simulator catches them. */
export type LoopBug =
  /** Send every message, a follower's acknowledgements included, before the round's write is durable. */
  'send-before-persist';

export const loopBugs: readonly LoopBug[] = ['send-before-persist'];

/** Step 1 of a Ready round: what to make durable, in this order, as one atomic write where possible. */
export interface RoundWrite {
  /** The log's committed base is now this snapshot (its bytes are already in the snapshot store). */
  readonly snapshotBase?: SnapshotMeta;
  /** A pending user restore's base (bytes stored beside the log); null: the pending restore is abandoned. */
  readonly pendingRestore?: SnapshotMeta | null;
  readonly truncateFrom?: Index;
  /** In index order; contiguous except across a pending restore (prefix entries, then those after it). */
  readonly entries: readonly Entry[];
  readonly hardState?: HardState;
  /** Durable (fsynced) before the port's work counts as done. */
  readonly sync: boolean;
}

/** The durable log: LevelDB (main plus pending-restore store) in the server, a simulated disk in the simulator. */
export interface LogPort<W> {
  persist(write: RoundWrite): W | undefined;
}

/** The state machine as the loop sees it. */
export interface StateMachinePort<W> {
  /** Replace the contents with a committed snapshot's (whose bytes the snapshot store holds). */
  installSnapshot(meta: SnapshotMeta): W | undefined;
  /** Apply committed entries in index order and report each to whoever proposed it. */
  apply(entries: readonly Entry[]): W | undefined;
}

export interface TransportPort<W> {
  /** Hands one message to the network (a snapshot message streams its snapshot; its outcome is reported back to the core). */
  send(m: Message): void;
  /**
   * Something to wait on until the messages handed over so far have left, or undefined (the
   * simulator's network takes them at once). The loop waits on it after steps 2 and 4 when the round
   * has CPU-heavy work next (the persist after a leader's appends; the apply after a follower's
   * acknowledgement), so a message on the commit path is not held behind that work. Timing only:
   * nothing about order or durability depends on it.
   */
  flush?(): W | undefined;
}

export interface ReadyLoopOptions<W> {
  readonly log: LogPort<W>;
  readonly stateMachine: StateMachinePort<W>;
  readonly transport: TransportPort<W>;
  /**
   * The driver's clock for the loop: run `f` soon, after the inputs already queued (setImmediate in
   * the server; the end of the current tick in the simulator).
   */
  schedule(f: () => void): void;
  /** Resume the round with `resume` once `w` is done, or `fail` if it failed. */
  wait(w: W, resume: () => void, fail: (e: Error) => void): void;
  /** After each round's advance: the driver's bookkeeping. */
  afterRound(rd: Ready): void;
  /** A port failed or an invariant broke: the loop has stopped and will run no more rounds. */
  onFatal(e: Error): void;
  readonly bugs?: ReadonlySet<LoopBug>;
}

type Round<W> = Generator<W, Ready, void>;

export class ReadyLoop<W> {
  private coreRef: RaftCore;
  private readonly o: ReadyLoopOptions<W>;
  private readonly sendFirst: boolean;
  /** A round is scheduled or in progress. */
  private running = false;
  /** While held, no round starts (inputs still reach the core). */
  private held = false;
  private stopped = false;
  private idleWaiters: Array<() => void> = [];

  constructor(core: RaftCore, o: ReadyLoopOptions<W>) {
    this.coreRef = core;
    this.o = o;
    this.sendFirst = o.bugs?.has('send-before-persist') ?? false;
  }

  get core(): RaftCore {
    return this.coreRef;
  }

  /** Swaps in a new core (a bootstrap) between rounds. */
  replaceCore(core: RaftCore): void {
    if (this.running) throw new Error('the core can only be replaced while no round runs');
    this.coreRef = core;
    this.kick();
  }

  // ------------------------------------------------------------------------------------------
  // Inputs
  // ------------------------------------------------------------------------------------------

  tick(): void {
    if (this.stopped) return;
    this.coreRef.tick();
    this.sendUrgent();
    this.kick();
  }

  step(m: Message): void {
    if (this.stopped) return;
    this.coreRef.step(m);
    this.sendUrgent();
    this.kick();
  }

  /** Call after any other input to the core (a proposal, a read, a snapshot report). */
  kick(): void {
    if (this.running || this.held || this.stopped || !this.coreRef.hasReady()) return;
    this.running = true;
    this.o.schedule(() => this.next());
  }

  /** No round starts until release(); resolves once a round in progress (if any) has finished. */
  hold(): Promise<void> {
    this.held = true;
    return this.idle();
  }

  release(): void {
    this.held = false;
    this.kick();
  }

  /** True while a round is scheduled or in progress. */
  busy(): boolean {
    return this.running;
  }

  /** Resolves once no round is in progress (at once if none is). */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Starts no more rounds; one in progress runs to its end (close() waits for idle()). */
  stop(): void {
    this.stopped = true;
  }

  // ------------------------------------------------------------------------------------------
  // Rounds
  // ------------------------------------------------------------------------------------------

  private sendUrgent(): void {
    for (const m of this.coreRef.takeUrgentMessages()) this.o.transport.send(m);
  }

  private next(): void {
    if (this.stopped || this.held || !this.coreRef.hasReady()) {
      this.goIdle();
      return;
    }
    this.drive(this.round(this.coreRef));
  }

  private goIdle(): void {
    this.running = false;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
    // Inputs that arrived while the last round finished may have left work.
    this.kick();
  }

  /** Runs a round until it waits (the driver resumes it) or ends (the next round starts). */
  private drive(round: Round<W>): void {
    for (;;) {
      let r: IteratorResult<W, Ready>;
      try {
        r = round.next();
      } catch (e) {
        this.fail(e);
        return;
      }
      if (r.done) break;
      this.o.wait(
        r.value,
        () => this.drive(round),
        (e) => this.fail(e),
      );
      return;
    }
    this.next();
  }

  private fail(e: unknown): void {
    this.stopped = true;
    this.goIdle();
    this.o.onFatal(e instanceof Error ? e : new Error(String(e)));
  }

  private *round(core: RaftCore): Round<W> {
    const { log, stateMachine, transport } = this.o;
    this.sendUrgent();
    const rd = core.ready();
    const early = rd.softState.role === 'leader' && rd.hardState === undefined;
    const sentFirst = (m: Message): boolean => this.sendFirst || (early && m.type === 'append');
    /** Sends the round's messages that go first (or the others); true if there were any. */
    const sendWhere = (first: boolean): boolean => {
      let any = false;
      for (const m of rd.messages) {
        if (sentFirst(m) !== first) continue;
        transport.send(m);
        any = true;
      }
      return any;
    };
    const write = roundWrite(rd);
    if (sendWhere(true) && write !== undefined) yield* this.flushed();

    if (write !== undefined) {
      const w = log.persist(write);
      if (w !== undefined) yield w;
    }
    if (sendWhere(false) && (rd.applySnapshot !== undefined || rd.committedEntries.length > 0)) yield* this.flushed();

    if (rd.applySnapshot !== undefined) {
      const w = stateMachine.installSnapshot(rd.applySnapshot);
      if (w !== undefined) yield w;
    }
    if (rd.committedEntries.length > 0) {
      const w = stateMachine.apply(rd.committedEntries);
      if (w !== undefined) yield w;
    }
    core.advance(rd);
    this.o.afterRound(rd);
    return rd;
  }

  /** Waits, if the transport says to, until the messages sent so far have left. */
  private *flushed(): Generator<W, void, void> {
    const w = this.o.transport.flush?.();
    if (w !== undefined) yield w;
  }
}

/** Step 1 of a round as one write, or undefined when the round has nothing to make durable. */
function roundWrite(rd: Ready): RoundWrite | undefined {
  const { snapshot, pendingRestore, truncateFrom, entries, hardState, mustSync } = rd;
  if (snapshot === undefined && pendingRestore === undefined && truncateFrom === undefined && entries.length === 0 && hardState === undefined && !mustSync) {
    return undefined;
  }
  return {
    ...(snapshot !== undefined ? { snapshotBase: snapshot } : {}),
    ...(pendingRestore !== undefined ? { pendingRestore } : {}),
    ...(truncateFrom !== undefined ? { truncateFrom } : {}),
    entries,
    ...(hardState !== undefined ? { hardState } : {}),
    sync: mustSync,
  };
}
