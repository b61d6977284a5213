// Snapshot restores and saves under process faults, against real agent processes on loopback: the
// leader SIGKILLed in the middle of a restore, the leader SIGSTOPped holding one sent through a follower,
// a follower SIGSTOPped during one, a follower SIGKILLed
// during one and restarted; each with writers running. Afterwards every node must hold the same state,
// and that state is either wholly the archive's (plus writes made after it) or wholly the state before
// the restore (plus writes made around it), never a mixture; what the PUT answered must agree with it.
// Then a consistent save through a follower while the leader is SIGSTOPped, answered by the new
// leader. Last, a ?stale save from the only survivor of three, and the consistent save that cannot be
// served.
//
// The faults are timed on the leader's own log lines (read from its stdout as they are printed), not
// on sleeps. The tests share one cluster, one after another: each starts by waiting for every node
// to be up and to hold the same state, so each begins from whatever the one before left.
// SNAPFAULT_DUMP=<file> writes every node's whole output there when a restore-under-fault test fails.

import test, { type ExecutionContext } from 'ava';
import { performance } from 'node:perf_hooks';
import { ProcessCluster, waitFor } from '../support/process-cluster.js';
import {
  describeAnswer,
  diffSummary,
  leaderSeenBy,
  parseWriteKey,
  restore,
  save,
  stateOf,
  waitConverged,
  WriteLoad,
  type KvState,
  type RestoreAnswer,
} from '../support/snapshot-load.js';
import { buildArchive, decodeArchive, kvData } from '../support/snapshots.js';

const raft = { tickMs: 50, electionTimeoutTicks: 20 };
const archiveKeys = 20_000;

const fileTeardowns: Array<() => Promise<void>> = [];
test.after.always(async () => {
  for (const f of fileTeardowns.reverse()) await f();
});

let shared: ProcessCluster | undefined;
async function cluster(): Promise<ProcessCluster> {
  if (shared === undefined) {
    shared = await ProcessCluster.create({ teardown: (f) => fileTeardowns.push(f) }, { size: 3, ...raft });
    shared.startAll();
  }
  return shared;
}

/** A 20,000-key archive under `arch/<tag>/`, large enough that a restore takes a moment. */
async function bigArchive(tag: string): Promise<{ bytes: Buffer; kv: KvState }> {
  const entries: Record<string, string> = {};
  for (let i = 0; i < archiveKeys; i++) entries[`arch/${tag}/k${String(i).padStart(5, '0')}`] = `a${i}-${'x'.repeat(40)}`;
  const bytes = await buildArchive(entries, 50_000);
  return { bytes, kv: kvData(await decodeArchive(bytes)) };
}

type Outcome = 'restored' | 'not-restored';

interface FaultRun {
  /** When the fault is applied: once the leader's log says the restore reached this point. */
  readonly at: RegExp;
  /** Which node the PUT goes to, given the leader and the two followers. */
  readonly via: (leader: number, followers: [number, number]) => number;
  /** Applies the fault; returns how to undo it (after the PUT answered). */
  readonly fault: (c: ProcessCluster, leader: number, followers: [number, number]) => Promise<() => Promise<void>>;
  /** The outcomes this fault allows, and the answers that go with them. */
  readonly expect: (a: RestoreAnswer) => Outcome | 'either';
}

async function restoreUnderFault(t: ExecutionContext, tag: string, run: FaultRun): Promise<{ answer: RestoreAnswer; outcome: Outcome }> {
  const started = performance.now();
  const c = await cluster();
  for (const i of [0, 1, 2]) if (c.node(i).proc === undefined) throw new Error(`${c.node(i).name} is down at the start\n${c.describe()}`);
  const leader = await c.leader();
  const followers = [0, 1, 2].filter((i) => i !== leader) as [number, number];
  // The state before: some keys of this test's own, on top of whatever the tests before left.
  for (let i = 0; i < 20; i++) t.true(await c.put(followers[i % 2] as number, `old/${tag}/k${i}`, `o${i}`));
  const before = await waitConverged(c, 60_000);
  const a = await bigArchive(tag);

  const load = new WriteLoad(c, `w-${tag}`, 3);
  load.start();
  let answer: RestoreAnswer = { kind: 'no-answer', error: 'not sent' };
  try {
    await load.waitAcksAfter(0, 3, 60_000);
    const faultPoint = c.waitForOutput(leader, run.at, 120_000);
    faultPoint.catch(() => undefined); // a rejection is seen through the race below
    const via = run.via(leader, followers);
    const putSentAt = performance.now();
    const put = restore(c, via, a.bytes);
    let undo: (() => Promise<void>) | undefined;
    try {
      const hit = await Promise.race([faultPoint, put.then((r) => Promise.reject(new Error(`the restore answered ${describeAnswer(r)} before the fault point ${run.at}`)))]);
      undo = await run.fault(c, leader, followers);
      t.log(`fault point: ${hit.slice(0, 240)}`);
      t.log(`fault applied ${(performance.now() - putSentAt).toFixed(0)} ms after the PUT was sent (via ${c.node(via).name}, leader ${c.node(leader).name})`);
    } finally {
      answer = await put;
    }
    const putAnsweredAt = performance.now();
    t.log(`the PUT answered ${describeAnswer(answer)} after ${(putAnsweredAt - putSentAt).toFixed(0)} ms`);
    if (undo !== undefined) await undo();

    // Recovery: a leader every node agrees on, then writes acknowledged after it, then the same state everywhere.
    await c.leader(90_000);
    const recoveredAt = performance.now();
    await load.waitAcksAfter(recoveredAt, 3, 90_000);
    await load.stop();
    t.log(load.summary());
    const after = await waitConverged(c, 120_000);
    // waitConverged and leader() look at running nodes only: a node that stopped itself drops out.
    t.deepEqual(c.nodes.filter((n) => n.proc === undefined).map((n) => n.name), [], `every node is still up\n${c.describe()}`);

    // Wholly one state or wholly the other.
    const archivePart = Object.keys(a.kv).filter((k) => after[k] === a.kv[k]).length;
    const beforePart = Object.keys(before).filter((k) => after[k] === before[k]).length;
    const foreign = Object.keys(after).filter((k) => !(k in a.kv) && !(k in before) && parseWriteKey(load.prefix, k) === undefined);
    t.deepEqual(foreign, [], 'every key is the archive\'s, the old state\'s or a writer\'s');
    let outcome: Outcome;
    if (archivePart === Object.keys(a.kv).length && beforePart === 0) outcome = 'restored';
    else if (beforePart === Object.keys(before).length && archivePart === 0) outcome = 'not-restored';
    else {
      t.fail(`a mixture: ${archivePart}/${Object.keys(a.kv).length} archive keys and ${beforePart}/${Object.keys(before).length} old keys (${diffSummary(after, before)})`);
      return { answer, outcome: 'not-restored' };
    }
    t.log(`outcome: ${outcome}; ${Object.keys(after).length} keys; took ${((performance.now() - started) / 1000).toFixed(1)} s`);

    // The writes made around the restore.
    const problems: string[] = [];
    for (const rs of load.records) {
      const present = rs.filter((r) => r.key in after);
      for (const r of present) if (after[r.key] !== `0:${r.value}`) problems.push(`${r.key} holds ${after[r.key]}`);
      for (const r of rs.filter((x) => x.outcome === 'not-applied')) if (r.key in after) problems.push(`${r.key} is present, but its write was answered ${r.detail}`);
      const acked = rs.filter((r) => r.outcome === 'ack');
      if (outcome === 'not-restored') {
        for (const r of acked) if (!(r.key in after)) problems.push(`${r.key} was acknowledged (${r.node}) but is lost`);
      } else {
        // The restore replaced everything before it: what survives of a writer is a suffix.
        const first = present[0]?.seq ?? Infinity;
        for (const r of acked) if (r.seq >= first && !(r.key in after)) problems.push(`${r.key} was acknowledged after k${first} survived the restore, but is lost`);
        for (const r of acked) if ((r.doneAt ?? Infinity) < putSentAt && r.key in after) problems.push(`${r.key} was acknowledged before the restore was sent but survived it`);
        if (answer.kind === 'answer' && answer.status === 200) {
          for (const r of acked) if (r.sentAt > putAnsweredAt && !(r.key in after)) problems.push(`${r.key} was sent after the restore answered 200 and acknowledged, but is lost`);
        }
      }
    }
    t.deepEqual(problems, [], 'the writes around the restore are consistent with its outcome');
    t.true(acksAfter(load, recoveredAt) > 0, 'writes work after the restore');

    const allowed = run.expect(answer);
    if (allowed !== 'either') t.is(outcome, allowed, `the PUT answered ${describeAnswer(answer)}`);
    if (answer.kind === 'answer' && answer.status === 200) t.is(outcome, 'restored', 'a 200 means the archive state');
    if (answer.kind === 'answer') t.not(answer.status, 400, 'a valid archive is never refused as bad input');
    if (answer.kind === 'answer' && /nothing was restored/.test(answer.text)) t.is(outcome, 'not-restored', `the PUT answered ${describeAnswer(answer)}`);
    return { answer, outcome };
  } catch (e) {
    if (process.env['SNAPFAULT_DUMP'] !== undefined) {
      const { writeFileSync } = await import('node:fs');
      writeFileSync(process.env['SNAPFAULT_DUMP'], `${(e as Error).message}\n${load.summary()}\n` + c.nodes.map((n) => `=== ${n.name} ${n.serverPort}\n${n.output.join('')}`).join('\n'));
    }
    throw e;
  } finally {
    await load.stop();
  }
}

function acksAfter(load: WriteLoad, at: number): number {
  return load.all().filter((r) => r.outcome === 'ack' && r.sentAt > at).length;
}

test.serial('the leader SIGKILLed once the restore is staged in its log (PUT through a follower), writers running', async (t) => {
  const r = await restoreUnderFault(t, 'a', {
    at: /user restore staged/,
    via: (_leader, [f]) => f,
    fault: async (c, leader) => {
      await c.kill(leader);
      return async () => c.start(leader);
    },
    expect: () => 'either',
  });
  t.true(r.answer.kind === 'answer' && [200, 500, 503].includes(r.answer.status), `the follower answers for the dead leader: ${describeAnswer(r.answer)}`);
});

test.serial('the leader SIGKILLed once it sent the restore to a follower (PUT to the leader itself), writers running', async (t) => {
  await restoreUnderFault(t, 'a2', {
    at: /"event":"snapshot-sent"/,
    via: (leader) => leader,
    fault: async (c, leader) => {
      await c.kill(leader);
      return async () => c.start(leader);
    },
    expect: () => 'either',
  });
});

test.serial('the leader SIGSTOPped holding a restore sent through a follower: the follower answers once another leader is elected, not at the stream deadline', async (t) => {
  const r = await restoreUnderFault(t, 'p', {
    at: /snapshot archive verified/,
    via: (_leader, [f]) => f,
    fault: async (c, leader) => {
      c.pause(leader);
      return async () => c.resume(leader);
    },
    expect: () => 'either',
  });
  // Without the watch on the leadership, the forwarded stream waits for its deadline (an hour) and
  // the PUT gets no answer within the helper's two minutes.
  t.true(r.answer.kind === 'answer' && r.answer.status === 500 && /was replaced .* may or may not take effect/.test(r.answer.text),
    `the follower answers for the paused leader with an unknown outcome: ${describeAnswer(r.answer)}`);
});

test.serial('a follower SIGSTOPped during a restore and SIGCONTed after: the restore succeeds and the follower catches up', async (t) => {
  const r = await restoreUnderFault(t, 'b', {
    at: /snapshot archive verified/,
    via: (leader) => leader,
    fault: async (c, _leader, [f]) => {
      c.pause(f);
      return async () => c.resume(f);
    },
    expect: () => 'restored',
  });
  t.is(describeAnswer(r.answer), '200 ""', 'a quorum is up: the restore succeeds');
});

test.serial('a follower SIGKILLed during a restore (sent through the other follower) and restarted after', async (t) => {
  const r = await restoreUnderFault(t, 'c', {
    at: /snapshot archive verified/,
    via: (_leader, [, g]) => g,
    fault: async (c, _leader, [f]) => {
      await c.kill(f);
      return async () => c.start(f);
    },
    expect: () => 'restored',
  });
  t.is(describeAnswer(r.answer), '200 ""', 'a quorum is up: the restore succeeds');
});

test.serial('the leader SIGSTOPped: a consistent save through a follower is answered by the new leader', async (t) => {
  const c = await cluster();
  for (const i of [0, 1, 2]) if (c.node(i).proc === undefined) c.start(i);
  const leader = await c.leader(90_000);
  t.true(await c.put(leader, 'paused-save/last', 'acknowledged'));
  await waitConverged(c, 60_000);
  const follower = [0, 1, 2].find((i) => i !== leader) as number;
  c.pause(leader);
  try {
    // The follower still believes in the paused leader and forwards the save to it. Without the watch
    // on the leadership the forwarded stream waits for its deadline (an hour) and this fetch times out.
    const s = await save(c, follower, '', 30_000);
    t.is(s.status, 200, s.body.toString().slice(0, 300));
    t.is(kvData(await decodeArchive(s.body))['paused-save/last'], '0:acknowledged', 'the save holds the last acknowledged write');
    const now = await leaderSeenBy(c, follower);
    t.true(now !== '' && now !== `127.0.0.1:${c.node(leader).serverPort}`, `a new leader answered (the follower sees ${JSON.stringify(now)})`);
  } finally {
    c.resume(leader);
  }
  await waitConverged(c, 60_000);
});

test.serial('two of three SIGKILLed: a ?stale save from the survivor says KnownLeader false; a consistent save fails with No cluster leader', async (t) => {
  const c = await cluster();
  for (const i of [0, 1, 2]) if (c.node(i).proc === undefined) c.start(i);
  const leader = await c.leader(90_000);
  t.true(await c.put(leader, 'survivor/check', 'present'));
  const whole = await waitConverged(c, 60_000);
  const survivor = [0, 1, 2].find((i) => i !== leader) as number;
  for (const i of [0, 1, 2].filter((j) => j !== survivor)) await c.kill(i);
  const killedAt = Date.now();

  // The survivor notices that it has lost the leader.
  await waitFor('the survivor to see no leader', async () => ((await leaderSeenBy(c, survivor)) === '' ? true : undefined), 30_000, () => c.describe());
  const sentAt = Date.now();
  const stale = await save(c, survivor, '?stale');
  t.is(stale.status, 200, stale.body.toString().slice(0, 200));
  t.is(stale.headers.get('x-consul-knownleader'), 'false');
  const lastContact = Number(stale.headers.get('x-consul-lastcontact'));
  t.true(Number.isInteger(lastContact), `X-Consul-LastContact is a number: ${stale.headers.get('x-consul-lastcontact')}`);
  t.true(lastContact >= sentAt - killedAt - 500, `X-Consul-LastContact (${lastContact} ms) covers at least the time since the leader died (${sentAt - killedAt} ms)`);
  const decoded = await decodeArchive(stale.body);
  t.is(Number(stale.headers.get('x-consul-index')), decoded.meta.Index);
  t.is(diffSummary(kvData(decoded), whole), 'equal', 'the stale save is the survivor\'s whole state');

  const consistentSentAt = performance.now();
  const consistent = await save(c, survivor);
  const tookMs = performance.now() - consistentSentAt;
  t.is(consistent.status, 500);
  t.is(consistent.body.toString(), 'No cluster leader');
  t.true(tookMs < 15_000, `the consistent save gave up within a bounded time (${tookMs.toFixed(0)} ms)`);
  t.log(`consistent save without a leader answered after ${tookMs.toFixed(0)} ms`);
  const own = await stateOf(c, survivor);
  t.is(own.headers.get('x-consul-knownleader'), 'false');
});
