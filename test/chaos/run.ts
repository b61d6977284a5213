// One chaos run: a 3-node cluster of agent processes on loopback, a client workload recording every
// operation (history.ts), a nemesis drawn from a seed, then the checks: the history is linearizable
// (checker.ts) and every server ends with the same state (its decoded stale save, indexes included).
//
// Workload: `workers` workers, each one operation in flight, against random servers:
//   write      PUT /v1/kv/<key> with a value unique in the run (so no value is ever written twice);
//   cas        a ?consistent read for the ModifyIndex, then PUT ?cas=<index>; a true answer is the model's
//              cas(from = the value read, to); a false one changed nothing and is recorded as failed
//              (a restore can rewrite a key to an old value with a new index, so "false" does not
//              prove the value differed);
//   read       GET, default or ?consistent at random;
//   acquire / release  PUT ?acquire= / ?release= with the worker's session (NodeChecks [] and no TTL:
//              nothing but a restore ends it; a restore that drops it makes the next lock call fail,
//              and the worker creates a new one).
// Outcomes: 2xx is ok; what certainly did not take effect (connection refused, 4xx, the server's "not
// applied" answers, a read's error) is failed; anything else (a timeout, an unknown outcome) is
// indeterminate: it may or may not have taken effect, at any time after its call.
//
// Nemesis (seeded, faults.ts does the partitions and clocks): every `faultEveryMs` one fault, held
// for half the interval and then undone:
//   kill / kill-leader       SIGKILL a random server / the leader, restart it;
//   pause                    SIGSTOP a random server, SIGCONT it;
//   isolate / isolate-leader a random server / the leader cut off from both others (a minority of one
//                            against a majority of two);
//   one-way                  one server's messages to another dropped, the other way still open;
//   clock                    one server's wall clock jumped by minutes to an hour, either way;
//   restore-via-leader / restore-via-follower   `PUT /v1/snapshot` of an archive saved earlier in the
//                            run, sent to the leader or to a follower, most of the time while another
//                            fault (kill, pause, isolate, one-way, clock) is in force.
// A restore is an operation of the history: a write of every key's snapshot value and lock holder at
// once. Around every restore, every server's state must be wholly the snapshot's or wholly what came
// before, never a mixture: marker keys spread over the key space are rewritten together (one txn)
// after every save, so a server's view of them (one recurse read, or its stale save) must show one
// generation, whichever it is.
// The longest unavailability after a leader kill (or isolation) is measured: from the fault to the
// first write invoked after it that succeeds.
//
// Everything ends: the run has a deadline, every request a timeout, every wait a bound; the checker its
// limits ("unknown" is reported, never taken for "ok").

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeArchive } from '../support/snapshots.js';
import { ProcessCluster, sleep, waitFor } from '../support/process-cluster.js';
import { prng } from '../support/prng.js';
import { checkHistory, type CheckResult } from './checker.js';
import { ChaosNet } from './faults.js';
import { HistoryRecorder, type SnapshotState } from './history.js';
import type { Sandbox } from './sandbox.js';
import type { PlantedBug } from '../../src/base/planted.js';

export const plantedBugNames: readonly PlantedBug[] = ['stale-default-read', 'half-restore'];

export const faultKinds = [
  'kill', 'kill-leader', 'pause', 'isolate', 'isolate-leader', 'one-way', 'clock', 'restore-via-leader', 'restore-via-follower',
] as const;
export type FaultKind = typeof faultKinds[number];
/** What may be in force while a restore runs ('none': nothing). */
const restoreBackdrops = ['none', 'kill', 'pause', 'isolate', 'one-way', 'clock'] as const;
type Disruption = Exclude<FaultKind, 'restore-via-leader' | 'restore-via-follower'>;

export interface ChaosOptions {
  readonly seed: number;
  readonly seconds: number;
  readonly workers?: number;
  readonly faultEveryMs?: number;
  /** Server defects planted through the agents' environment (CONCLAVE_TEST_PLANTED_BUG). */
  readonly plantedBugs?: readonly PlantedBug[];
  /** Where a failing history's timeline goes. */
  readonly reportDir: string;
  /** End at `seconds` even when some fault kind has not run yet (by default every kind runs once). */
  readonly strictTime?: boolean;
  /** After the fault schedule, restore through the leader with no other fault (at most 5 more tries)
   *  until this many restores have answered 200: a run that must see a restore take hold. */
  readonly minRestores?: number;
  /** The sandbox the run is in (sandbox.ts): partitions and clock jumps need it. */
  readonly sandbox: Sandbox;
  readonly log?: (line: string) => void;
}

export interface ChaosResult {
  readonly seed: number;
  readonly verdict: 'ok' | 'violation' | 'unknown' | 'diverged' | 'mixed';
  readonly ops: number;
  readonly okOps: number;
  readonly indeterminate: number;
  readonly faults: Readonly<Record<FaultKind, number>>;
  readonly restores: number;
  /** Restores the cluster answered 200 to. */
  readonly restoresOk: number;
  /** The longest time from a leader kill or isolation to the first write after it that succeeded (ms). */
  readonly longestLeaderLossMs: number;
  /** Views of the marker keys that mixed generations (a half-restored or half-written state). */
  readonly mixtures: readonly string[];
  /** How often an isolated leader was seen replaced, and a jumped clock seen off, during the fault. */
  readonly effects: Readonly<Record<'isolate-leader' | 'clock', number>>;
  readonly check: CheckResult;
  /** Why the run failed, in a line; '' when it passed. */
  readonly why: string;
}

const registerKeys = ['r0', 'r1', 'r2', 'r3', 'r4', 'r5'];
const lockKeys = ['l0', 'l1'];
/** Keys far apart in the key space, always rewritten together (see "never a mixture" above). */
const markerKeys = ['0-marker', 'm-marker', 'zz-marker'];
const requestTimeoutMs = 4_000;
/** How much longer than its hold a fault may stay in force while its effect is awaited. */
const effectWaitMs = 8_000;
/** A restore of this run's small state takes well under a second; past this it has an unknown outcome. */
const restoreTimeoutMs = 15_000;
const prefix = 'chaos/';

/** A command that repeats a run's fault schedule (the workload's timing is not deterministic). */
export function repeatCommand(o: Pick<ChaosOptions, 'seed' | 'seconds' | 'plantedBugs' | 'strictTime' | 'minRestores'>): string {
  const bugs = o.plantedBugs ?? [];
  return `npm run chaos -- --runs 1 --seed ${o.seed} --seconds ${o.seconds}${bugs.length === 0 ? '' : ` --bug ${bugs.join(',')}`}${o.strictTime === true ? ' --strict-time' : ''}${(o.minRestores ?? 0) > 0 ? ` --min-restores ${o.minRestores}` : ''}`;
}

export async function runChaos(t: { teardown(f: () => Promise<void>): void }, o: ChaosOptions): Promise<ChaosResult> {
  const log = o.log ?? (() => undefined);
  // The nemesis draws from its own generator, so a seed repeats its fault schedule whatever the
  // workload's timing; the workers share another (their operations depend on timing anyway).
  const faultRandom = prng(o.seed);
  const random = prng((o.seed * 7919 + 17) >>> 0);
  const pick = <T>(items: readonly T[], from: () => number = random): T => items[from() % items.length] as T;
  const net = await ChaosNet.create(o.sandbox, 3);
  const c = await ProcessCluster.create(t, {
    size: 3, tickMs: 50, electionTimeoutTicks: 20,
    ...((o.plantedBugs ?? []).length === 0 ? {} : { env: { CONCLAVE_TEST_PLANTED_BUG: (o.plantedBugs ?? []).join(',') } }),
    launch: (i, file, args) => net.launch(i, file, args),
  });
  c.startAll();
  await c.leader();
  await c.catalogSettled(0);
  const history = new HistoryRecorder();
  const deadline = performance.now() + o.seconds * 1000;
  const faults = Object.fromEntries(faultKinds.map((k) => [k, 0])) as Record<FaultKind, number>;
  let restores = 0;
  let restoresOk = 0;
  let seq = 0;
  let archive: { bytes: Buffer; state: SnapshotState } | undefined;
  /** When the leader was killed or cut off. */
  const leaderLosses: number[] = [];
  const mixtures: string[] = [];
  let markerGeneration = 0;

  const http = async (i: number, path: string, init: RequestInit = {}): Promise<{ status: number; text: string }> => {
    const r = await fetch(`http://127.0.0.1:${c.node(i).httpPort}${path}`, { ...init, signal: AbortSignal.timeout(requestTimeoutMs) });
    return { status: r.status, text: await r.text() };
  };
  const anyNode = (from: () => number = random): number => from() % 3;
  /** Whether an error or answer proves the operation did not take effect. */
  const certainlyNot = (e: unknown): boolean => {
    const text = e instanceof Error ? `${e.message} ${String((e as { cause?: unknown }).cause ?? '')}` : String(e);
    return /ECONNREFUSED/.test(text);
  };
  const notApplied = (r: { status: number; text: string }): boolean =>
    (r.status >= 400 && r.status < 500) || /the write was not applied|No cluster leader|nothing was written/.test(r.text);

  const worker = async (w: number): Promise<void> => {
    const name = `w${w}`;
    let session = '';
    const newSession = async (): Promise<void> => {
      const r = await http(anyNode(), '/v1/session/create', { method: 'PUT', body: JSON.stringify({ Name: name, NodeChecks: [], LockDelay: '0s' }) });
      session = r.status === 200 ? (JSON.parse(r.text) as { ID: string }).ID : '';
    };
    while (performance.now() < deadline || !nemesisDone) {
      const roll = random() % 100;
      const node = anyNode();
      try {
        if (session === '' && roll >= 80) await newSession().catch(() => undefined);
        if (roll < 30) {
          const key = pick(registerKeys);
          const value = `${name}-${++seq}`;
          const op = history.invoke(name, { kind: 'write', key, input: value });
          try {
            const r = await http(node, `/v1/kv/${prefix}${key}`, { method: 'PUT', body: value });
            if (r.status === 200) op.ok(null);
            else if (notApplied(r)) op.fail();
            else op.info();
          } catch (e) {
            if (certainlyNot(e)) op.fail();
            else op.info();
          }
        } else if (roll < 45) {
          const key = pick(registerKeys);
          const read = await http(node, `/v1/kv/${prefix}${key}?consistent`).catch(() => undefined);
          if (read === undefined || (read.status !== 200 && read.status !== 404)) continue;
          const entry = read.status === 404 ? undefined : (JSON.parse(read.text) as Array<{ ModifyIndex: number; Value: string | null }>)[0];
          const from = entry?.Value === undefined || entry.Value === null ? null : Buffer.from(entry.Value, 'base64').toString('utf8');
          const to = `${name}-${++seq}`;
          const op = history.invoke(name, { kind: 'cas', key, input: { from, to } });
          try {
            const r = await http(node, `/v1/kv/${prefix}${key}?cas=${entry?.ModifyIndex ?? 0}`, { method: 'PUT', body: to });
            if (r.status === 200 && r.text === 'true') op.ok(true);
            else if (r.status === 200 || notApplied(r)) op.fail();
            else op.info();
          } catch (e) {
            if (certainlyNot(e)) op.fail();
            else op.info();
          }
        } else if (roll < 80) {
          const key = pick(registerKeys);
          const mode = random() % 2 === 0 ? '' : '?consistent';
          const op = history.invoke(name, { kind: 'read', key, input: null });
          try {
            const r = await http(node, `/v1/kv/${prefix}${key}${mode}`);
            if (r.status === 404) op.ok(null);
            else if (r.status === 200) {
              const e = (JSON.parse(r.text) as Array<{ Value: string | null }>)[0];
              op.ok(e?.Value === null || e?.Value === undefined ? '' : Buffer.from(e.Value, 'base64').toString('utf8'));
            } else op.fail();
          } catch {
            op.fail();
          }
        } else if (session !== '') {
          const key = pick(lockKeys);
          const kind = roll < 90 ? 'acquire' : 'release';
          const op = history.invoke(name, { kind, key, input: session });
          try {
            const r = await http(node, `/v1/kv/${prefix}${key}?${kind}=${session}`, { method: 'PUT', body: name });
            if (r.status === 200) op.ok(r.text === 'true');
            else {
              if (/invalid session|missing session/i.test(r.text)) session = '';
              if (notApplied(r)) op.fail();
              else op.info();
            }
          } catch (e) {
            if (certainlyNot(e)) op.fail();
            else op.info();
          }
        }
      } catch (error) {
        log(`worker ${name}: ${(error as Error).message}`);
      }
    }
  };

  /** A view of the marker keys that mixes generations, described; '' when it shows one. */
  const mixed = (where: string, values: ReadonlyArray<string | null>): string =>
    values.every((v) => v === values[0]) ? '' : `${where}: ${markerKeys.map((k, j) => `${k}=${values[j] ?? 'absent'}`).join(' ')}`;
  /** A decoded archive's marker values, in markerKeys order (null: absent). */
  const markersIn = (d: Awaited<ReturnType<typeof decodeArchive>>): Array<string | null> =>
    markerKeys.map((k) => d.kv.get(prefix + k)?.value ?? null);
  const noteMixture = (m: string): void => {
    if (m === '') return;
    log(`MIXED STATE ${m}`);
    if (mixtures.length < 20) mixtures.push(m);
  };

  /** Rewrites every marker key to a new generation in one txn (the outcome does not matter). */
  const bumpMarkers = async (): Promise<void> => {
    const value = Buffer.from(`gen-${++markerGeneration}`).toString('base64');
    const ops = markerKeys.map((k) => ({ KV: { Verb: 'set', Key: prefix + k, Value: value } }));
    await http(anyNode(faultRandom), '/v1/txn', { method: 'PUT', body: JSON.stringify(ops) }).catch(() => undefined);
  };

  const saveArchive = async (): Promise<void> => {
    // The first archive must hold markers too, or a restore of it could not show a mixture.
    if (markerGeneration === 0) await bumpMarkers();
    const r = await fetch(`http://127.0.0.1:${c.node(anyNode(faultRandom)).httpPort}/v1/snapshot`, { signal: AbortSignal.timeout(20_000) }).catch(() => undefined);
    if (r === undefined || r.status !== 200) return;
    const bytes = Buffer.from(await r.arrayBuffer());
    const decoded = await decodeArchive(bytes);
    const kv: Record<string, string | null> = {};
    for (const key of registerKeys) kv[key] = decoded.kv.get(prefix + key)?.value ?? null;
    const locks: Record<string, string | null> = {};
    for (const key of lockKeys) locks[key] = decoded.locks.get(prefix + key) ?? null;
    noteMixture(mixed('a consistent save', markersIn(decoded)));
    archive = { bytes, state: { kv, locks } };
    // From now on the cluster's markers differ from the archive's: a restore that left any server
    // half old, half new shows as mixed generations.
    await bumpMarkers();
  };

  /** Every running server's own view of the markers (stale: no forwarding), checked for a mixture. */
  const sampleMarkers = async (why: string): Promise<void> => {
    await Promise.all(c.running().map(async (i) => {
      const r = await http(i, `/v1/kv/${prefix}?recurse&stale`).catch(() => undefined);
      if (r === undefined || (r.status !== 200 && r.status !== 404)) return;
      const entries = r.status === 404 ? [] : JSON.parse(r.text) as Array<{ Key: string; Value: string | null }>;
      const value = (k: string): string | null => {
        const e = entries.find((x) => x.Key === prefix + k);
        return e === undefined || e.Value === null ? null : Buffer.from(e.Value, 'base64').toString('utf8');
      };
      noteMixture(mixed(`${c.node(i).name} ${why}`, markerKeys.map(value)));
    }));
  };

  /** Each running server's stale save, decoded, checked for a mixture. */
  const checkSaves = async (why: string): Promise<void> => {
    await Promise.all(c.running().map(async (i) => {
      const r = await fetch(`http://127.0.0.1:${c.node(i).httpPort}/v1/snapshot?stale`, { signal: AbortSignal.timeout(20_000) }).catch(() => undefined);
      if (r === undefined || r.status !== 200) return;
      const d = await decodeArchive(Buffer.from(await r.arrayBuffer())).catch(() => undefined);
      if (d !== undefined) noteMixture(mixed(`${c.node(i).name}'s stale save ${why}`, markersIn(d)));
    }));
  };

  /** The server a majority of the running servers name as leader, if any. */
  const currentLeader = async (): Promise<number | undefined> => {
    const answers = await Promise.all(c.running().map(async (i) => {
      const r = await http(i, '/v1/status/leader').catch(() => undefined);
      return r?.status === 200 ? String(JSON.parse(r.text)) : '';
    }));
    for (const a of answers) {
      if (a === '' || answers.filter((b) => b === a).length * 2 <= 3) continue;
      const index = c.nodes.findIndex((n) => `127.0.0.1:${n.serverPort}` === a);
      if (index >= 0) return index;
    }
    return undefined;
  };
  const runningNode = (): number | undefined => {
    const up = c.running();
    return up.length === 0 ? undefined : up[faultRandom() % up.length];
  };

  /** The faults seen to take hold (a fault that does nothing proves nothing). */
  const effects = { 'isolate-leader': 0, clock: 0 };
  /** Checks, at the end of its hold, that a fault took hold; logs what was seen. */
  const verifyEffect = async (kind: Disruption, victim: number): Promise<void> => {
    // The fault stays in force until its effect is seen, for at most `effectWaitMs` more.
    const until = performance.now() + effectWaitMs;
    if (kind === 'isolate-leader') {
      let now: number | undefined;
      do {
        now = await currentLeader();
        if (now !== undefined && now !== victim) break;
        await sleep(200);
      } while (performance.now() < until);
      log(`nemesis: ${now !== undefined && now !== victim ? `${c.node(now).name} leads the majority` : 'no new leader'}`);
      if (now !== undefined && now !== victim) effects['isolate-leader']++;
    } else if (kind === 'clock') {
      // Node's HTTP server dates its answers with the (faked) wall clock.
      let skew = NaN;
      do {
        const r = await fetch(`http://127.0.0.1:${c.node(victim).httpPort}/v1/status/leader`, { signal: AbortSignal.timeout(requestTimeoutMs) }).catch(() => undefined);
        skew = r === undefined ? NaN : Date.parse(r.headers.get('date') ?? '') - Date.now();
        if (Math.abs(skew) > 20_000) break;
        await sleep(200);
      } while (performance.now() < until);
      log(`nemesis: ${c.node(victim).name}'s clock reads ${Number.isNaN(skew) ? 'unknown' : `${Math.round(skew / 1000)} s`} off`);
      if (Math.abs(skew) > 20_000) effects.clock++;
    }
  };

  /** Puts `kind` in force; resolves with what undoes it and the server it hit. */
  const disrupt = async (kind: Disruption): Promise<{ undo: () => Promise<void>; victim?: number }> => {
    const leaderKind = kind === 'kill-leader' || kind === 'isolate-leader';
    const victim = leaderKind ? (await currentLeader()) ?? runningNode() : runningNode();
    if (victim === undefined) return { undo: async () => undefined };
    return { undo: await hit(kind, victim, leaderKind), victim };
  };
  const hit = async (kind: Disruption, victim: number, leaderKind: boolean): Promise<() => Promise<void>> => {
    const name = c.node(victim).name;
    if (leaderKind) leaderLosses.push(performance.now());
    if (kind === 'kill' || kind === 'kill-leader') {
      log(`nemesis: SIGKILL ${name}${leaderKind ? ' (the leader)' : ''}`);
      await c.kill(victim);
      return async () => {
        if (c.node(victim).proc === undefined) c.start(victim);
      };
    }
    if (kind === 'pause') {
      log(`nemesis: SIGSTOP ${name}`);
      c.pause(victim);
      return async () => {
        if (c.node(victim).paused === true) c.resume(victim);
      };
    }
    if (kind === 'isolate' || kind === 'isolate-leader') {
      log(`nemesis: isolate ${name}${leaderKind ? ' (the leader)' : ''}`);
      for (let j = 0; j < 3; j++) {
        if (j === victim) continue;
        await net.block(victim, j, c.node(j).serverPort);
        await net.block(j, victim, c.node(victim).serverPort);
      }
      return () => net.heal();
    }
    if (kind === 'one-way') {
      const to = (victim + 1 + (faultRandom() % 2)) % 3;
      log(`nemesis: drop ${name}'s messages to ${c.node(to).name}`);
      await net.block(victim, to, c.node(to).serverPort);
      return () => net.heal();
    }
    const seconds = (30 + (faultRandom() % 3570)) * (faultRandom() % 2 === 0 ? 1 : -1);
    log(`nemesis: ${name}'s clock jumps ${seconds > 0 ? '+' : ''}${seconds} s`);
    await net.setClock(victim, seconds);
    return () => net.setClock(victim, 0);
  };

  const restore = async (kind: 'restore-via-leader' | 'restore-via-follower'): Promise<void> => {
    if (archive === undefined) await saveArchive();
    const a = archive;
    if (a === undefined) return;
    const leader = await currentLeader();
    const up = c.running();
    const candidates = kind === 'restore-via-leader' ? up.filter((i) => i === leader) : up.filter((i) => i !== leader);
    const via = candidates.length > 0 ? candidates[faultRandom() % candidates.length] as number : anyNode(faultRandom);
    log(`nemesis: restore through ${c.node(via).name}${via === leader ? ' (the leader)' : ''}`);
    const op = history.invoke('nemesis', { kind: 'restore', key: '', input: a.state });
    restores++;
    // Watch every server's markers while the restore runs and for a while after it answered.
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        await sampleMarkers('during a restore');
        await sleep(50);
      }
    })();
    try {
      const r = await fetch(`http://127.0.0.1:${c.node(via).httpPort}/v1/snapshot`, { method: 'PUT', body: new Uint8Array(a.bytes), signal: AbortSignal.timeout(restoreTimeoutMs) });
      const text = await r.text();
      log(`nemesis: the restore answered ${r.status}${r.status === 200 ? '' : `: ${text.slice(0, 200)}`}`);
      if (r.status === 200) {
        op.ok(null);
        restoresOk++;
      } else if (r.status === 400 || /not applied|nothing was restored|No cluster leader/.test(text)) op.fail();
      else op.info();
    } catch (e) {
      log(`nemesis: the restore failed: ${(e as Error).message}`);
      if (certainlyNot(e)) op.fail();
      else op.info();
    }
    await sleep(1_000);
    watching = false;
    await watcher;
    await checkSaves('after a restore');
    await saveArchive();
  };

  const nemesis = async (): Promise<void> => {
    const every = o.faultEveryMs ?? 4_000;
    // Each kind once first, in a seeded order, so a short run has them all; then at random.
    const order: FaultKind[] = [...faultKinds];
    for (let i = order.length - 1; i > 0; i--) {
      const j = faultRandom() % (i + 1);
      [order[i], order[j]] = [order[j] as FaultKind, order[i] as FaultKind];
    }
    await sleep(every / 2);
    await saveArchive();
    // Every kind runs once even when a slow machine makes that take longer than the run's seconds
    // (the workers go on until the nemesis is done); the first round is bounded by its faults' own
    // bounds (effectWaitMs, the request timeouts).
    for (let n = 0; (n < order.length && o.strictTime !== true) || performance.now() < deadline - every; n++) {
      const kind = n < order.length ? order[n] as FaultKind : pick(faultKinds, faultRandom);
      faults[kind]++;
      let undo = async (): Promise<void> => undefined;
      try {
        if (kind === 'restore-via-leader' || kind === 'restore-via-follower') {
          const backdrop = pick(restoreBackdrops, faultRandom);
          if (backdrop !== 'none') undo = (await disrupt(backdrop)).undo;
          await restore(kind);
        } else {
          const d = await disrupt(kind);
          undo = d.undo;
          await sleep(every / 2);
          if (d.victim !== undefined) await verifyEffect(kind, d.victim);
        }
      } catch (error) {
        log(`nemesis ${kind}: ${(error as Error).message}`);
      }
      try {
        await undo();
      } catch (error) {
        log(`nemesis undoing ${kind}: ${(error as Error).message}`);
      }
      await sleep(every / 2);
    }
    // A restore amid other faults may rightly fail (a paused leader answers nothing); a run that must
    // see one take hold tries again, bounded, with nothing else in the way.
    for (let extra = 0; restoresOk < (o.minRestores ?? 0) && extra < 5; extra++) {
      faults['restore-via-leader']++;
      try {
        await restore('restore-via-leader');
      } catch (error) {
        log(`nemesis restore-via-leader: ${(error as Error).message}`);
      }
      await sleep(every / 2);
    }
  };

  let nemesisDone = false;
  await Promise.all([nemesis().finally(() => { nemesisDone = true; }), ...Array.from({ length: o.workers ?? 5 }, (_, w) => worker(w))]);

  // Heal: no partition, true clocks, every server running and resumed; a leader; every server applied
  // the same state.
  await net.heal();
  for (let i = 0; i < 3; i++) await net.setClock(i, 0);
  for (let i = 0; i < 3; i++) {
    const n = c.node(i);
    if (n.paused === true) c.resume(i);
    if (n.proc === undefined) c.start(i);
  }
  await c.leader(60_000);
  const ops = history.history();
  const reportFile = join(o.reportDir, `chaos-seed-${o.seed}.txt`);
  const check = checkHistory(ops, { reportFile });
  let diverged = '';
  let finalMarkers: Array<Array<string | null>> = [];
  await waitFor('every server to hold the same state', async () => {
    const states: string[] = [];
    const markers: Array<Array<string | null>> = [];
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`http://127.0.0.1:${c.node(i).httpPort}/v1/snapshot?stale`, { signal: AbortSignal.timeout(20_000) }).catch(() => undefined);
      if (r === undefined || r.status !== 200) return undefined;
      const d = await decodeArchive(Buffer.from(await r.arrayBuffer()));
      markers.push(markersIn(d));
      // The whole state, indexes included: entries with their flags and indexes, tombstones, table
      // indexes and the applied index, locks, sessions, catalog.
      states.push(JSON.stringify([
        d.lastIndex, [...d.kv].map(([k, v]) => [k, v.value, String(v.flags), v.createIndex, v.modifyIndex]).sort(),
        [...d.tombstones].sort(), [...d.indexes].sort(), [...d.locks].sort(), d.sessions, d.catalog,
      ]));
    }
    finalMarkers = markers;
    return states.every((s) => s === states[0]) ? true : undefined;
  }, 60_000).catch((e: unknown) => {
    diverged = (e as Error).message;
  });
  // The final saves just decoded are checked for a mixture too (no second round of saves).
  finalMarkers.forEach((m, i) => noteMixture(mixed(`${c.node(i).name}'s stale save at the end`, m)));
  const verdict = diverged !== '' ? 'diverged' : mixtures.length > 0 ? 'mixed' : check.verdict;
  const why = verdict === 'ok' ? '' : verdict === 'diverged' ? diverged : verdict === 'mixed'
    ? `a server showed a mixture of states: ${mixtures.join('; ')}` : `${check.summary} (${reportFile})`;
  // Unavailability after a leader loss: until the first write invoked after it succeeds.
  let longestLeaderLossMs = 0;
  for (const at of leaderLosses) {
    const first = ops.filter((op) => op.status === 'ok' && op.call >= at && (op.kind === 'write' || op.kind === 'cas')).reduce((m, op) => Math.min(m, op.ret ?? Infinity), Infinity);
    if (Number.isFinite(first)) longestLeaderLossMs = Math.max(longestLeaderLossMs, first - at);
  }
  if (verdict !== 'ok') await writeFile(join(o.reportDir, `chaos-seed-${o.seed}.summary.txt`), `${why}\nrepeat: ${repeatCommand(o)}\n`);
  return {
    seed: o.seed, verdict, ops: ops.length, okOps: ops.filter((op) => op.status === 'ok').length,
    indeterminate: ops.filter((op) => op.status === 'info').length, faults, restores, restoresOk,
    longestLeaderLossMs: Math.round(longestLeaderLossMs), mixtures, effects, check, why,
  };
}
