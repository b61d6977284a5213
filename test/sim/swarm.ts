// One seed, one run: the seed draws the cluster, the fault mix and the workload ("swarm testing":
// every seed is a different combination), then a safety phase under faults and a liveness phase in
// which the healed cluster must elect a leader, commit and converge within a bounded number of ticks.

import { InvariantError } from '../../src/base/index.js';
import { SeededRandom, type NodeId, type RaftCore } from '../../src/raft/index.js';
import { SimFailure } from './checker.js';
import { World, type SimBug, type SimNode, type WorldOptions } from './world.js';

export interface SwarmOptions {
  readonly bug?: SimBug;
  readonly trace?: boolean;
}

export interface SeedResult {
  readonly seed: bigint;
  readonly ok: boolean;
  readonly failure?: string;
  /** Where the failure was raised, for a person replaying the seed (not part of the verdict). */
  readonly stack?: string;
  readonly ticks: number;
  readonly summary: string;
  readonly stats: World['stats'] & { acked: number; readsChecked: number };
  readonly trace: readonly string[];
}

interface FaultMix {
  faultTicks: number;
  proposeProbability: number;
  readProbability: number;
  crashProbability: number;
  partitionProbability: number;
  pauseProbability: number;
  membershipProbability: number;
  transferProbability: number;
  restoreProbability: number;
  writebackProbability: number;
  maxDownTicks: number;
}

function drawOptions(seed: bigint, opts: SwarmOptions): { world: WorldOptions; mix: FaultMix } {
  const r = new SeededRandom(seed ^ 0x5eed5eedn);
  const electionTimeoutTicks = r.between(10, 24);
  const heartbeatIntervalTicks = r.between(1, Math.max(1, Math.floor(electionTimeoutTicks / 4)));
  const world: WorldOptions = {
    seed,
    voterCount: r.chance(0.6) ? 3 : 5,
    spareCount: r.chance(0.5) ? 1 : 0,
    electionTimeoutTicks,
    heartbeatIntervalTicks,
    maxMessageBytes: r.pick([1, 40, 200, 4096]),
    maxInflightMessages: r.pick([1, 2, 4, 64]),
    snapshotEveryEntries: r.pick([3, 8, 30, 1000]),
    trailingEntries: r.pick([0, 1, 5]),
    network: {
      dropProbability: r.pick([0, 0.02, 0.1, 0.3]),
      duplicateProbability: r.pick([0, 0.05, 0.2]),
      maxDelayTicks: r.between(1, Math.max(1, Math.floor(electionTimeoutTicks / 3))),
      snapshotChunks: r.between(1, 4),
    },
    plantedBugs: new Set(opts.bug === undefined ? [] : [opts.bug]),
    trace: opts.trace ?? false,
  };
  const mix: FaultMix = {
    faultTicks: r.between(600, 2000),
    proposeProbability: r.pick([0.05, 0.2, 0.6]),
    readProbability: r.pick([0, 0.05, 0.2]),
    crashProbability: r.pick([0, 0.002, 0.01, 0.03]),
    partitionProbability: r.pick([0, 0.005, 0.02]),
    pauseProbability: r.pick([0, 0.002, 0.01]),
    membershipProbability: r.pick([0, 0.003, 0.01]),
    transferProbability: r.pick([0, 0.002, 0.01]),
    restoreProbability: r.pick([0, 0, 0.002, 0.008]),
    writebackProbability: r.pick([0.01, 0.1, 0.5]),
    maxDownTicks: r.pick([5, 40, 200]),
  };
  return { world, mix };
}

export function describe(seed: bigint, opts: SwarmOptions = {}): string {
  const { world, mix } = drawOptions(seed, opts);
  return JSON.stringify({
    voters: world.voterCount,
    spares: world.spareCount,
    election: world.electionTimeoutTicks,
    heartbeat: world.heartbeatIntervalTicks,
    msgBytes: world.maxMessageBytes,
    inflight: world.maxInflightMessages,
    snapshotEvery: world.snapshotEveryEntries,
    trailing: world.trailingEntries,
    ...world.network,
    ...mix,
  });
}

export function runSeed(seed: bigint, opts: SwarmOptions = {}): SeedResult {
  const { world: wopts, mix } = drawOptions(seed, opts);
  const summary = describe(seed, opts);
  const w = new World(wopts);
  let failure: string | undefined;
  let stack: string | undefined;
  try {
    faultPhase(w, mix);
    livenessPhase(w);
  } catch (e) {
    if (e instanceof SimFailure || e instanceof InvariantError) failure = `${e.name}: ${e.message}`;
    else failure = `simulator error: ${(e as Error).message ?? String(e)}`;
    stack = (e as Error).stack;
  }
  return {
    seed,
    ok: failure === undefined,
    ...(failure !== undefined ? { failure } : {}),
    ...(stack !== undefined ? { stack } : {}),
    ticks: w.now,
    summary,
    stats: { ...w.stats, acked: w.checker.acked, readsChecked: w.checker.readsChecked },
    trace: w.traceLines,
  };
}

function faultPhase(w: World, mix: FaultMix): void {
  const r = w.random;
  const followerReads = new SeededRandom(w.opts.seed * 104729n + 3n);
  const nodes = [...w.nodes.values()];
  const heal: Array<{ at: number; undo: () => void }> = [];
  for (let t = 0; t < mix.faultTicks; t++) {
    w.step();
    for (const n of nodes) w.restartIfDue(n);
    for (let i = heal.length - 1; i >= 0; i--) {
      const h = heal[i] as { at: number; undo: () => void };
      if (w.now >= h.at) {
        h.undo();
        heal.splice(i, 1);
      }
    }
    const leaders = w.leaders();
    const target = (): SimNode => (leaders.length > 0 && r.chance(0.9) ? r.pick(leaders) : r.pick(nodes));
    if (r.chance(mix.proposeProbability)) {
      const n = target();
      const burst = r.chance(0.1) ? r.between(2, 20) : 1;
      for (let i = 0; i < burst; i++) w.propose(n);
    }
    if (r.chance(mix.readProbability)) w.read(target());
    // Follower read rounds draw from a generator of their own: seeds without them run as before.
    if (mix.readProbability > 0 && followerReads.chance(mix.readProbability)) w.followerRead(followerReads.pick(nodes));
    if (leaders.length > 0 && r.chance(mix.membershipProbability)) changeMembership(w, r.pick(leaders));
    if (leaders.length > 0 && r.chance(mix.transferProbability)) {
      const l = r.pick(leaders).core as RaftCore;
      const vs = l.configuration().servers.filter((s) => s.suffrage === 'voter' && s.id !== l.id);
      if (vs.length > 0) l.transferLeadership(r.pick(vs).id);
    }
    if (leaders.length > 0 && r.chance(mix.restoreProbability)) w.restore(r.pick(leaders));
    if (r.chance(mix.crashProbability)) {
      // Crash the leader more often than chance would: that is where the interesting bugs live.
      const n = leaders.length > 0 && r.chance(0.5) ? r.pick(leaders) : r.pick(nodes);
      w.crash(n, r.between(1, mix.maxDownTicks));
    }
    if (r.chance(mix.pauseProbability)) {
      const n = r.pick(nodes);
      n.pausedUntil = w.now + r.between(1, 3 * w.opts.electionTimeoutTicks);
    }
    if (r.chance(mix.partitionProbability)) heal.push({ at: w.now + r.between(10, 300), undo: partition(w, r.pick(leaders.length > 0 ? leaders : nodes)) });
    if (r.chance(mix.writebackProbability)) r.pick(nodes).disk.flush();
  }
}

/** Cuts some links; returns how to restore exactly them. */
function partition(w: World, leader: SimNode): () => void {
  const r = w.random;
  const ids = [...w.nodes.keys()];
  const cut: string[] = [];
  const block = (a: NodeId, b: NodeId): void => {
    const k = `${a}>${b}`;
    if (!w.blocked.has(k)) {
      w.blocked.add(k);
      cut.push(k);
    }
  };
  const kind = r.nextInt(3);
  if (kind === 0) {
    // Isolate the leader (symmetric).
    for (const id of ids) if (id !== leader.id) { block(leader.id, id); block(id, leader.id); }
  } else if (kind === 1) {
    // A random symmetric split.
    const side = new Set(ids.filter(() => r.chance(0.5)));
    for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) block(a, b);
  } else {
    // One-way: some server stops hearing another.
    const a = r.pick(ids);
    const b = r.pick(ids);
    if (a !== b) block(a, b);
  }
  w.trace(`partition ${cut.join(' ')}`);
  return () => {
    for (const k of cut) w.blocked.delete(k);
    w.trace(`heal ${cut.join(' ')}`);
  };
}

function changeMembership(w: World, leaderNode: SimNode): void {
  const r = w.random;
  const l = leaderNode.core as RaftCore;
  const servers = l.configuration().servers;
  const nonvoter = servers.find((s) => s.suffrage === 'nonvoter');
  const outside = [...w.nodes.keys()].filter((id) => !servers.some((s) => s.id === id));
  const voterCount = servers.filter((s) => s.suffrage === 'voter').length;
  if (nonvoter !== undefined) {
    l.proposeMembership({ kind: 'addVoter', id: nonvoter.id });
  } else if (outside.length > 0 && r.chance(0.7)) {
    l.proposeMembership({ kind: 'addNonvoter', id: r.pick(outside) });
  } else if (voterCount > 3) {
    // Sometimes the leader removes itself: it must keep leading until the change commits, then go.
    const victim = r.chance(0.2) ? l.id : r.pick(servers.filter((s) => s.id !== l.id)).id;
    l.proposeMembership({ kind: 'removeServer', id: victim });
  }
}

function livenessPhase(w: World): void {
  // Heal everything: links, crashed and paused servers, a lossy and reordering network. Delays stay;
  // each link delivers in order again, like the real transport's per-peer stream.
  w.blocked.clear();
  for (const n of w.nodes.values()) {
    n.pausedUntil = 0;
    n.downUntil = 0;
    w.restartIfDue(n);
  }
  w.opts.network.dropProbability = 0;
  w.opts.network.duplicateProbability = 0;
  w.opts.network.fifo = true;
  // Two bounds. Electing a leader that commits in its own term must take a bounded number of
  // election timeouts. Catching every member up also depends on the backlog: in the worst drawn
  // configuration (one entry per message) each entry costs about one round trip.
  const cores = [...w.nodes.values()].flatMap((n) => (n.core === undefined ? [] : [n.core]));
  const backlog = Math.max(...cores.map((c) => c.lastIndex())) - Math.min(...cores.map((c) => c.commitIndex()));
  const roundTripTicks = 2 * w.opts.network.maxDelayTicks + 2;
  const catchUpTicks = Math.ceil((backlog * roundTripTicks) / w.opts.maxInflightMessages);
  // A new leader's no-op commits only once a quorum holds everything before it: the backlog counts.
  const electBy = w.now + 60 * w.opts.electionTimeoutTicks + 400 + catchUpTicks;
  const convergeBy = electBy + catchUpTicks;
  let elected = false;
  let marker: { node: SimNode; index: number; incarnation: number } | undefined;
  while (w.now < (elected ? convergeBy : electBy)) {
    w.step();
    const leaders = w.leaders();
    if (leaders.length !== 1) continue;
    const leader = leaders[0] as SimNode;
    const core = leader.core as RaftCore;
    if (core.termAt(core.commitIndex()) === core.currentTerm()) elected = true;
    if (marker === undefined || marker.node !== leader || marker.incarnation !== leader.incarnation || core.termAt(marker.index) === undefined) {
      if (w.propose(leader)) marker = { node: leader, index: core.lastIndex(), incarnation: leader.incarnation };
      continue;
    }
    if (w.checker.maxAckedIndex < marker.index || core.commitIndex() < marker.index) continue;
    // Converged: every server in the configuration applied the same state up to the marker.
    const members = core.configuration().servers.map((s) => w.nodes.get(s.id) as SimNode);
    const applied = leader.fsmApplied;
    if (members.every((m) => m.core !== undefined && m.fsmApplied === applied && m.fsmState === leader.fsmState)) {
      w.checker.checkFinal(core);
      return;
    }
  }
  const status = [...w.nodes.values()]
    .map((n) => `${n.id}:${n.core?.currentRole() ?? 'down'}/t${n.core?.currentTerm()}/c${n.core?.commitIndex()}/a${n.fsmApplied}/l${n.core?.lastIndex()}`)
    .join(' ');
  const progress = w.leaders().map((l) => [...(l.core as RaftCore).followerProgress()]
    .map(([id, p]) => `${l.id}->${id}:${p.state}/m${p.match}/n${p.next}/f${p.inflightCount()}`).join(' ')).join('; ');
  throw new SimFailure(`liveness: ${elected ? 'members did not converge' : 'no leader committed in its term'} within the bound after healing (${status}) [${progress}]`);
}
