// A tiny hand-driven network for scenario tests: the test decides which messages get through and
// when time passes, so each story plays out exactly as written.

import {
  RaftCore,
  SeededRandom,
  bootstrapState,
  joinState,
  type Configuration,
  type Entry,
  type Message,
  type NodeId,
  type PlantedBug,
  type ReadState,
} from '../../src/raft/index.js';

export interface ScenarioOptions {
  readonly voters: number;
  /** Servers that start empty and outside the configuration. */
  readonly spares?: number;
  readonly electionTimeoutTicks?: number;
  readonly heartbeatIntervalTicks?: number;
  readonly maxMessageBytes?: number;
  readonly bugs?: readonly PlantedBug[];
}

export class Scenario {
  readonly cores = new Map<NodeId, RaftCore>();
  /** What each server's state machine applied, in order. */
  readonly applied = new Map<NodeId, Entry[]>();
  readonly appliedSnapshots = new Map<NodeId, number[]>();
  readonly readStates = new Map<NodeId, ReadState[]>();
  readonly events: string[] = [];
  /** Messages sent and not yet delivered. */
  inbox: Message[] = [];
  /** Directed links that lose everything: "from>to". */
  readonly cut = new Set<string>();
  readonly electionTimeoutTicks: number;

  constructor(o: ScenarioOptions) {
    this.electionTimeoutTicks = o.electionTimeoutTicks ?? 10;
    const ids = Array.from({ length: o.voters + (o.spares ?? 0) }, (_, i) => `n${i + 1}`);
    const config: Configuration = { servers: ids.slice(0, o.voters).map((id) => ({ id, suffrage: 'voter' })) };
    ids.forEach((id, i) => {
      const core = new RaftCore({
        id,
        electionTimeoutTicks: this.electionTimeoutTicks,
        heartbeatIntervalTicks: o.heartbeatIntervalTicks ?? 2,
        // Deterministic but different jitter per server.
        random: new SeededRandom(i + 1),
        maxMessageBytes: o.maxMessageBytes ?? 1 << 20,
        maxInflightMessages: 8,
        initial: i < o.voters ? bootstrapState(config) : joinState(),
        plantedBugs: new Set(o.bugs ?? []),
        logger: (e) => this.events.push(`${String(e.node)} ${e.event}`),
      });
      this.cores.set(id, core);
      this.applied.set(id, []);
      this.appliedSnapshots.set(id, []);
      this.readStates.set(id, []);
    });
  }

  core(id: NodeId): RaftCore {
    const c = this.cores.get(id);
    if (c === undefined) throw new Error(`no server ${id}`);
    return c;
  }

  /** Hands every ready batch's messages to the inbox and records what was applied. */
  process(): void {
    for (const [id, core] of this.cores) {
      while (core.hasReady()) {
        const rd = core.ready();
        this.inbox.push(...rd.messages);
        if (rd.applySnapshot !== undefined) {
          this.appliedSnapshots.get(id)?.push(rd.applySnapshot.index);
          this.applied.set(id, []);
        }
        this.applied.get(id)?.push(...rd.committedEntries);
        this.readStates.get(id)?.push(...rd.readStates);
        core.advance(rd);
      }
    }
  }

  /** Delivers every pending message whose link is up (others are lost), until the network is quiet. */
  stabilize(maxRounds = 200): void {
    for (let round = 0; round < maxRounds; round++) {
      this.process();
      if (this.inbox.length === 0) return;
      const batch = this.inbox;
      this.inbox = [];
      for (const m of batch) {
        if (!this.cut.has(`${m.from}>${m.to}`)) this.cores.get(m.to)?.step(m);
      }
    }
    throw new Error('the network did not go quiet');
  }

  /** Delivers only the pending messages that `keep` selects; the rest stay pending. */
  deliver(keep: (m: Message) => boolean): void {
    this.process();
    const batch = this.inbox;
    this.inbox = [];
    for (const m of batch) {
      if (keep(m) && !this.cut.has(`${m.from}>${m.to}`)) this.cores.get(m.to)?.step(m);
      else if (!keep(m)) this.inbox.push(m);
    }
    this.process();
  }

  /** Delivers the pending messages that `keep` selects and loses the rest. */
  deliverOrDrop(keep: (m: Message) => boolean): void {
    this.process();
    const batch = this.inbox;
    this.inbox = [];
    for (const m of batch) {
      if (keep(m) && !this.cut.has(`${m.from}>${m.to}`)) this.cores.get(m.to)?.step(m);
    }
    this.process();
  }

  /** Drops every pending message. */
  dropAll(): void {
    this.process();
    this.inbox = [];
  }

  tick(ids: readonly NodeId[], ticks: number): void {
    for (let i = 0; i < ticks; i++) for (const id of ids) this.core(id).tick();
  }

  /** Ticks everyone and keeps the network flowing, for `ticks` ticks. */
  run(ticks: number): void {
    for (let i = 0; i < ticks; i++) {
      for (const c of this.cores.values()) c.tick();
      this.stabilize();
    }
  }

  isolate(id: NodeId): void {
    for (const other of this.cores.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}>${other}`);
      this.cut.add(`${other}>${id}`);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  elect(id: NodeId): void {
    this.core(id).campaign();
    this.stabilize();
    if (this.core(id).currentRole() !== 'leader') throw new Error(`${id} did not win`);
  }

  propose(id: NodeId, text: string): number {
    const r = this.core(id).propose(new TextEncoder().encode(text));
    if (!r.ok) throw new Error(`${id} refused the proposal: ${r.message}`);
    return r.index;
  }

  /** The normal-entry payloads a server applied, as text. */
  appliedTexts(id: NodeId): string[] {
    return (this.applied.get(id) ?? []).filter((e) => e.kind === 'normal').map((e) => new TextDecoder().decode(e.data));
  }

  leaders(): NodeId[] {
    return [...this.cores].filter(([, c]) => c.currentRole() === 'leader').map(([id]) => id);
  }
}
