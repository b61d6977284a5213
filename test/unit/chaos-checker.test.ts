// The chaos suite's linearizability checker (test/chaos/checker.ts) on hand-made histories: each kind of
// anomaly the chaos runs must catch is caught, its fixed twin passes, bounds give "unknown" and never
// "ok", and a large linearizable history checks quickly.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkHistory, type CheckOptions, type CheckResult } from '../chaos/checker.js';
import { HistoryRecorder, type CasInput, type Operation, type OpStatus, type SnapshotState } from '../chaos/history.js';
import { prng } from '../support/prng.js';

/** Builds a history by hand: times in ms, ids in the order written. `ret` is ignored unless status is ok/fail. */
class Hist {
  readonly ops: Operation[] = [];

  private timing(process: string, call: number, ret: number, status: OpStatus): { id: number; process: string; call: number; ret: number | undefined; status: OpStatus } {
    return { id: this.ops.length, process, call, ret: status === 'info' ? undefined : ret, status };
  }

  read(p: string, key: string, output: string | null, call: number, ret: number): Operation {
    return this.push({ ...this.timing(p, call, ret, 'ok'), kind: 'read', key, input: null, output });
  }
  write(p: string, key: string, value: string | null, call: number, ret: number, status: OpStatus = 'ok'): Operation {
    return this.push({ ...this.timing(p, call, ret, status), kind: 'write', key, input: value, output: status === 'ok' ? null : undefined });
  }
  cas(p: string, key: string, input: CasInput, output: boolean | undefined, call: number, ret: number, status: OpStatus = 'ok'): Operation {
    return this.push({ ...this.timing(p, call, ret, status), kind: 'cas', key, input, output });
  }
  acquire(p: string, key: string, holder: string, output: boolean | undefined, call: number, ret: number, status: OpStatus = 'ok'): Operation {
    return this.push({ ...this.timing(p, call, ret, status), kind: 'acquire', key, input: holder, output });
  }
  release(p: string, key: string, holder: string, output: boolean | undefined, call: number, ret: number, status: OpStatus = 'ok'): Operation {
    return this.push({ ...this.timing(p, call, ret, status), kind: 'release', key, input: holder, output });
  }
  restore(p: string, input: SnapshotState, call: number, ret: number, status: OpStatus = 'ok'): Operation {
    return this.push({ ...this.timing(p, call, ret, status), kind: 'restore', key: '', input, output: status === 'ok' ? null : undefined });
  }

  check(options?: CheckOptions): CheckResult {
    return checkHistory(this.ops, options);
  }

  private push(op: Operation): Operation {
    this.ops.push(op);
    return op;
  }
}

// ---------------------------------------------------------------------------------------------------
// The anomalies, each with its fixed twin

function staleRead(fixed: boolean): { h: Hist; read: Operation } {
  const h = new Hist();
  h.write('w1', 'x', '1', 0, 1);
  h.write('w2', 'x', '2', 2, 3);
  const read = h.read('w3', 'x', fixed ? '2' : '1', 4, 5);
  return { h, read };
}

test('a stale read (the old value after a later write completed) is a violation, and the fresh read is ok', (t) => {
  const { h, read } = staleRead(false);
  const r = h.check();
  t.is(r.verdict, 'violation', r.summary);
  t.is(r.violations.length, 1);
  t.is(r.violations[0]?.key, 'x');
  t.is(r.violations[0]?.model, 'kv');
  t.is(r.violations[0]?.stuck, read, 'the read is the operation that could not be linearized');
  t.is(r.violations[0]?.stateAtStuck, '2', 'the register held 2 when the read had to happen');
  t.deepEqual(r.violations[0]?.linearized.map((o) => o.id), [0, 1]);
  t.is(staleRead(true).h.check().verdict, 'ok');
});

test('a lost acknowledged write (every later read sees the previous value) is a violation; seeing it is ok', (t) => {
  for (const fixed of [false, true]) {
    const h = new Hist();
    h.write('w1', 'x', 'before', 0, 1);
    h.write('w2', 'x', 'acked', 2, 3);
    for (let i = 0; i < 5; i++) h.read(`w${(i % 3) + 1}`, 'x', fixed ? 'acked' : 'before', 10 + i * 2, 11 + i * 2);
    t.is(h.check().verdict, fixed ? 'ok' : 'violation', fixed ? 'fixed twin' : 'lost write');
  }
});

test('a cas applied twice (two concurrent cas from the same value both succeed) is a violation; one failing is ok', (t) => {
  for (const fixed of [false, true]) {
    const h = new Hist();
    h.write('w1', 'x', 'a', 0, 1);
    h.cas('w1', 'x', { from: 'a', to: 'b' }, true, 2, 6);
    h.cas('w2', 'x', { from: 'a', to: 'c' }, !fixed, 3, 5);
    h.read('w3', 'x', 'b', 10, 11);
    const r = h.check();
    t.is(r.verdict, fixed ? 'ok' : 'violation', r.summary);
  }
});

test('a cas that fails although the value matched, or succeeds on an absent key it expected absent, is judged by the value', (t) => {
  const h = new Hist();
  h.write('w1', 'x', 'a', 0, 1);
  h.cas('w2', 'x', { from: 'a', to: 'b' }, false, 2, 3);
  t.is(h.check().verdict, 'violation', 'nothing else could have changed the value');
  const g = new Hist();
  g.cas('w1', 'y', { from: null, to: 'first' }, true, 0, 1);
  g.read('w2', 'y', 'first', 2, 3);
  t.is(g.check().verdict, 'ok', 'cas from absent on a fresh key succeeds');
});

test('two lock holders at once (two acquires succeed with no release between) is a violation; with the release it is ok', (t) => {
  for (const fixed of [false, true]) {
    const h = new Hist();
    h.acquire('w1', 'L', 's1', true, 0, 1);
    if (fixed) h.release('w1', 'L', 's1', true, 2, 3);
    h.acquire('w2', 'L', 's2', true, 4, 5);
    const r = h.check();
    t.is(r.verdict, fixed ? 'ok' : 'violation', r.summary);
    if (!fixed) t.is(r.violations[0]?.model, 'lock');
  }
});

test('the lock model: a non-holder cannot release, the holder may re-acquire, a refused acquire must be explained', (t) => {
  const refusedRelease = new Hist();
  refusedRelease.acquire('w1', 'L', 's1', true, 0, 1);
  refusedRelease.release('w2', 'L', 's2', false, 2, 3);
  refusedRelease.acquire('w1', 'L', 's1', true, 4, 5);
  t.is(refusedRelease.check().verdict, 'ok');

  const stolen = new Hist();
  stolen.acquire('w1', 'L', 's1', true, 0, 1);
  stolen.release('w2', 'L', 's2', true, 2, 3);
  t.is(stolen.check().verdict, 'violation', 'a release by a non-holder that succeeds');

  const refusedFree = new Hist();
  refusedFree.acquire('w1', 'L', 's1', false, 0, 1);
  t.is(refusedFree.check().verdict, 'violation', 'a free lock refused to its first taker');
});

function halfRestored(fixed: boolean): Hist {
  const h = new Hist();
  h.write('w1', 'a', 'a0', 0, 1);
  h.write('w2', 'b', 'b0', 0, 1);
  // The snapshot was saved here; then the data changed, then the snapshot was restored.
  h.write('w1', 'a', 'a1', 2, 3);
  h.write('w2', 'b', 'b1', 2, 3);
  h.restore('op', { kv: { a: 'a0', b: 'b0' }, locks: {} }, 4, 10);
  h.read('w1', 'a', 'a0', 11, 12);
  h.read('w2', 'b', fixed ? 'b0' : 'b1', 11, 12);
  return h;
}

test('a half-restored read (after the restore, a key still shows its pre-restore value) is a violation', (t) => {
  const r = halfRestored(false).check();
  t.is(r.verdict, 'violation', r.summary);
  t.deepEqual(
    r.violations.map((v) => v.key),
    ['b'],
  );
  t.is(halfRestored(true).check().verdict, 'ok');
});

test('a restore writes absent to keys its snapshot lacks, and resets locks to the snapshot holder', (t) => {
  for (const fixed of [false, true]) {
    const h = new Hist();
    h.write('w1', 'new-key', 'v', 0, 1);
    h.acquire('w2', 'L', 's2', true, 0, 1);
    h.restore('op', { kv: {}, locks: { L: 's1' } }, 2, 3);
    h.read('w1', 'new-key', fixed ? null : 'v', 4, 5);
    h.acquire('w2', 'L', 's2', !fixed, 4, 5);
    const r = h.check();
    t.is(r.verdict, fixed ? 'ok' : 'violation', r.summary);
    if (!fixed) t.deepEqual(r.violations.map((v) => `${v.model}:${v.key}`).sort(), ['kv:new-key', 'lock:L']);
  }
});

test('a restore that is still in flight may show either side; one that failed shows only the old side', (t) => {
  for (const status of ['ok', 'info', 'fail'] as const) {
    const h = new Hist();
    h.write('w1', 'x', 'old', 0, 1);
    h.restore('op', { kv: { x: 'snap' }, locks: {} }, 2, 20, status);
    h.read('w1', 'x', 'old', 3, 4);
    h.read('w2', 'x', 'snap', 5, 6);
    h.read('w1', 'x', 'old', 7, 8);
    t.is(h.check().verdict, 'violation', `${status}: once the snapshot is seen, the old value cannot come back`);
    const g = new Hist();
    g.write('w1', 'x', 'old', 0, 1);
    g.restore('op', { kv: { x: 'snap' }, locks: {} }, 2, 20, status);
    g.read('w1', 'x', 'old', 3, 4);
    g.read('w2', 'x', status === 'fail' ? 'old' : 'snap', 21, 22);
    t.is(g.check().verdict, 'ok', status);
  }
});

// ---------------------------------------------------------------------------------------------------
// Indeterminate and failed operations, concurrency

test('an indeterminate write may or may not take effect, but once seen it cannot be unseen', (t) => {
  for (const seen of ['1', '2']) {
    const h = new Hist();
    h.write('w1', 'x', '1', 0, 1);
    h.write('w2', 'x', '2', 2, 3, 'info');
    h.read('w3', 'x', seen, 100, 101);
    h.read('w3', 'x', seen, 200, 201);
    t.is(h.check().verdict, 'ok', `reads see ${seen}`);
  }
  const flip = new Hist();
  flip.write('w1', 'x', '1', 0, 1);
  flip.write('w2', 'x', '2', 2, 3, 'info');
  flip.read('w3', 'x', '2', 100, 101);
  flip.read('w3', 'x', '1', 200, 201);
  t.is(flip.check().verdict, 'violation');
});

test('an indeterminate write cannot take effect before it was invoked', (t) => {
  const h = new Hist();
  h.write('w1', 'x', '1', 0, 1);
  h.read('w3', 'x', '2', 2, 3);
  h.write('w2', 'x', '2', 5, 6, 'info');
  t.is(h.check().verdict, 'violation');
});

test('indeterminate cas and acquire take effect exactly when their condition held, or never', (t) => {
  const h = new Hist();
  h.write('w1', 'x', 'a', 0, 1);
  h.cas('w2', 'x', { from: 'a', to: 'b' }, undefined, 2, 3, 'info');
  h.read('w3', 'x', 'b', 10, 11);
  h.acquire('w1', 'L', 's1', true, 0, 1);
  h.acquire('w2', 'L', 's2', undefined, 2, 3, 'info');
  h.release('w1', 'L', 's1', true, 4, 5);
  t.is(h.check().verdict, 'ok');
  const wrongFrom = new Hist();
  wrongFrom.write('w1', 'x', 'a', 0, 1);
  wrongFrom.cas('w2', 'x', { from: 'z', to: 'b' }, undefined, 2, 3, 'info');
  wrongFrom.read('w3', 'x', 'b', 10, 11);
  t.is(wrongFrom.check().verdict, 'violation', 'a cas from a value the key never had cannot have set it');
});

test('a failed write never took effect: reading its value is a violation', (t) => {
  const h = new Hist();
  h.write('w1', 'x', '1', 0, 1);
  h.write('w2', 'x', '2', 2, 3, 'fail');
  h.read('w3', 'x', '2', 4, 5);
  t.is(h.check().verdict, 'violation');
  h.ops.pop();
  h.read('w3', 'x', '1', 4, 5);
  t.is(h.check().verdict, 'ok');
});

test('concurrent overlapping operations are ok in any order that fits their intervals', (t) => {
  const h = new Hist();
  h.write('w1', 'x', '1', 0, 10);
  h.write('w2', 'x', '2', 1, 9);
  h.read('w3', 'x', '2', 2, 3);
  h.read('w4', 'x', '1', 4, 5);
  h.read('w5', 'x', '1', 11, 12);
  h.read('w3', 'x', null, 0, 0.5);
  t.is(h.check().verdict, 'ok');
});

test('concurrent writes may land in either order: the search tries the other order after a dead end', (t) => {
  for (const last of ['1', '2']) {
    const h = new Hist();
    h.write('w1', 'x', '1', 0, 10);
    h.write('w2', 'x', '2', 0, 10);
    h.read('w3', 'x', last, 11, 12);
    h.read('w3', 'x', last, 13, 14);
    t.is(h.check().verdict, 'ok', `${last} written last`);
  }
});

test('intervals are closed: a read invoked exactly when a write returned may still see the old value', (t) => {
  for (const [readCall, verdict] of [
    [5, 'ok'],
    [5.001, 'violation'],
  ] as const) {
    const h = new Hist();
    h.write('w1', 'x', 'old', 0, 1);
    h.write('w2', 'x', 'new', 2, 5);
    h.read('w3', 'x', 'old', readCall, 6);
    t.is(h.check().verdict, verdict, `read at ${readCall}`);
  }
});

test('keys are independent: a violation on one key is reported for that key only', (t) => {
  const h = new Hist();
  h.write('w1', 'good', 'g', 0, 1);
  h.read('w2', 'good', 'g', 2, 3);
  h.write('w1', 'bad', '1', 0, 1);
  h.write('w1', 'bad', '2', 2, 3);
  h.read('w2', 'bad', '1', 4, 5);
  const r = h.check();
  t.is(r.verdict, 'violation');
  t.deepEqual(
    r.partitions.map((p) => `${p.key}:${p.verdict}`),
    ['bad:violation', 'good:ok'],
  );
});

test('the initial state can be given; by default every key starts absent', (t) => {
  const h = new Hist();
  h.read('w1', 'x', 'seeded', 0, 1);
  t.is(h.check().verdict, 'violation');
  t.is(h.check({ initial: { kv: { x: 'seeded' }, locks: {} } }).verdict, 'ok');
});

test('a malformed history is refused with the operation named', (t) => {
  const h = new Hist();
  h.write('w1', 'x', '1', 5, 1);
  t.throws(() => h.check(), { message: /#0 .*return time/ });
  const dup = new Hist();
  dup.read('w1', 'x', null, 0, 1);
  dup.ops.push({ ...dup.ops[0]! });
  t.throws(() => dup.check(), { message: /used twice/ });
  const mixed = new Hist();
  mixed.write('w1', 'k', 'v', 0, 1);
  mixed.acquire('w1', 'k', 's1', true, 2, 3);
  t.throws(() => mixed.check(), { message: /both a register and a lock/ });
});

// ---------------------------------------------------------------------------------------------------
// Bounds: "unknown", never "ok"

/** `writers` concurrent writes, then a read of a value nobody wrote: a violation the search must exhaust every order to prove. */
function pathological(writers: number): Hist {
  const h = new Hist();
  for (let i = 0; i < writers; i++) h.write(`w${i}`, 'x', `v${i}`, 0, 10);
  h.read('r', 'x', 'never-written', 20, 21);
  return h;
}

test('a search that runs out of steps, time or cache answers unknown with the bound, never ok', (t) => {
  const h = pathological(12);
  const full = h.check();
  t.is(full.verdict, 'violation', 'with room enough it is proven');
  t.true(full.partitions[0]!.steps > 10_000, `the proof took ${full.partitions[0]!.steps} steps`);
  const cases = [
    [{ maxStepsPerPartition: 1000 }, 'steps'],
    [{ maxMsPerPartition: 0 }, 'time'],
    [{ maxCacheBytesPerPartition: 4096 }, 'cache'],
    [{ maxMsTotal: 0 }, 'total-time'],
  ] as const;
  for (const [limits, reason] of cases) {
    const r = h.check({ limits });
    t.is(r.verdict, 'unknown', reason);
    t.is(r.partitions[0]?.reason, reason);
    t.regex(r.summary, /^unknown: 1 of 1 partitions/);
  }
});

test('an undecided partition makes the whole answer unknown, and a violation anywhere wins over it', (t) => {
  const h = pathological(12);
  h.write('w1', 'easy', '1', 0, 1);
  h.read('w2', 'easy', '1', 2, 3);
  const r = h.check({ limits: { maxStepsPerPartition: 1000 } });
  t.is(r.verdict, 'unknown');
  t.deepEqual(
    r.partitions.map((p) => p.verdict),
    ['ok', 'unknown'],
  );
  h.read('w2', 'easy', 'stale', 4, 5);
  t.is(h.check({ limits: { maxStepsPerPartition: 1000 } }).verdict, 'violation');
});

// ---------------------------------------------------------------------------------------------------
// The failure file

test('a violation writes a timeline with the operation that could not be linearized marked', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'chaos-checker-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const h = halfRestored(false);
  const file = join(dir, 'nested', 'violation.txt');
  const r = h.check({ reportFile: file });
  t.is(r.reportFile, file);
  const text = readFileSync(file, 'utf8');
  t.is(r.report, text);
  const stuck = r.violations[0]!.stuck;
  const marked = text.split('\n').filter((l) => l.startsWith('>>>'));
  t.is(marked.length, 1, text);
  t.regex(marked[0]!, new RegExp(`#${stuck.id} .*read "b" -> "b1".*cannot be linearized`));
  t.regex(text, /key "b"/);
  t.regex(text, /restore \("b" = "b0"\)/, 'the restore appears as its write of this key');
  t.regex(text, /after it the value is "b0"/);
  t.notRegex(text, /"a1"/, 'only the violating key is shown');
  t.regex(r.summary, new RegExp(`timeline in ${file.replace(/[.]/g, '\\.')}`));

  const okFile = join(dir, 'ok.txt');
  t.is(halfRestored(true).check({ reportFile: okFile }).reportFile, undefined, 'no file when there is nothing to report');
});

test('the timeline shows times from the first call and ∞ for indeterminate operations', (t) => {
  const h = new Hist();
  h.write('w1', 'x', '1', 1000, 1001);
  h.write('w2', 'x', '2', 1002, 1003, 'info');
  h.read('w3', 'x', '2', 1004, 1005);
  h.read('w3', 'x', '1', 1006, 1007.5);
  const r = h.check();
  t.is(r.verdict, 'violation');
  t.regex(r.report ?? '', /2\.0\s+∞\s+w2\s+#1\s+info/);
  t.regex(r.report ?? '', />>>\s+6\.0\s+7\.5\s+w3\s+#3 /);
});

// ---------------------------------------------------------------------------------------------------
// The recorder

test('the recorder times operations, keeps their outcomes, and reports unfinished ones as indeterminate', (t) => {
  let now = 100;
  const rec = new HistoryRecorder(() => now);
  const w = rec.invoke('w1', { kind: 'write', key: 'x', input: 'v' });
  const r = rec.invoke('w2', { kind: 'read', key: 'x', input: null });
  const c = rec.invoke('w3', { kind: 'cas', key: 'x', input: { from: 'v', to: 'u' } });
  const snapshot = { kv: { x: 'v' as string | null }, locks: {} };
  const s = rec.invoke('op', { kind: 'restore', key: '', input: snapshot });
  const a = rec.invoke('w4', { kind: 'acquire', key: 'L', input: 's4' });
  snapshot.kv.x = 'changed later';
  now = 105;
  w.ok(null);
  r.ok('v');
  c.info();
  s.fail();
  t.throws(() => w.ok(null), { message: /completed twice/ });
  t.is(rec.pending(), 1);
  const ops = rec.history();
  t.deepEqual(
    ops.map((o) => [o.id, o.kind, o.status, o.call, o.ret, o.output]),
    [
      [0, 'write', 'ok', 100, 105, null],
      [1, 'read', 'ok', 100, 105, 'v'],
      [2, 'cas', 'info', 100, undefined, undefined],
      [3, 'restore', 'fail', 100, 105, undefined],
      [4, 'acquire', 'info', 100, undefined, undefined],
    ],
  );
  t.is(ops[2]?.gaveUpAt, 105);
  t.deepEqual(ops[3]?.input, { kv: { x: 'v' }, locks: {} }, 'the restore keeps the state it was given');
  t.is(checkHistory(ops).verdict, 'ok');
  a.ok(true);
  t.is(rec.history()[4]?.status, 'ok');
});

// ---------------------------------------------------------------------------------------------------
// Scale

interface GenOptions {
  readonly ops: number;
  readonly kvKeys: number;
  readonly lockKeys: number;
  readonly processes: number;
  /** Out of 1000: how many operations end indeterminate, and how many fail. */
  readonly infoPerMille: number;
  readonly failPerMille: number;
  readonly restores: number;
}

/**
 * A linearizable history by construction: each op gets a linearization point inside its interval, the
 * points are applied in order to a real register/lock map, and the outputs are what that produced.
 * An indeterminate op's point may fall after the process gave up, and it takes effect half the time.
 */
function linearizableHistory(seed: number, g: GenOptions): Operation[] {
  const rand = prng(seed);
  const below = (n: number): number => rand() % n;
  const frac = (): number => rand() / 2 ** 32;
  type Plan = { id: number; process: number; call: number; lin: number; ret: number; status: OpStatus; applies: boolean; pick: number; key: string; roll: number };
  const clocks = new Array<number>(g.processes).fill(0);
  const plans: Plan[] = [];
  const restoreAt = new Set(Array.from({ length: g.restores }, (_, i) => Math.floor(((i + 1) * g.ops) / (g.restores + 1))));
  for (let id = 0; id < g.ops; id++) {
    const p = below(g.processes);
    const call = clocks[p]! + frac();
    const lin = call + frac() * 2;
    const ret = lin + frac() * 2;
    const fate = below(1000);
    const status: OpStatus = fate < g.infoPerMille ? 'info' : fate < g.infoPerMille + g.failPerMille ? 'fail' : 'ok';
    const isRestore = restoreAt.has(id);
    const pick = isRestore ? -1 : below(100);
    const key = pick < 80 ? `k${below(g.kvKeys)}` : `L${below(g.lockKeys)}`;
    const applies = status === 'ok' || (status === 'info' && below(2) === 0);
    // An indeterminate op may land long after its caller gave up and moved on.
    plans.push({ id, process: p, call, lin: status === 'info' ? lin + frac() * 50 : lin, ret, status, applies, pick, key, roll: rand() });
    clocks[p] = ret;
  }
  const kv = new Map<string, string>();
  const locks = new Map<string, string>();
  let saved: SnapshotState = { kv: {}, locks: {} };
  const ops: Operation[] = [];
  for (const pl of [...plans].sort((a, b) => a.lin - b.lin)) {
    const timing = { id: pl.id, process: `w${pl.process}`, call: pl.call, ret: pl.status === 'info' ? undefined : pl.ret, status: pl.status };
    const ok = pl.status === 'ok';
    const session = `s${pl.process}`;
    if (pl.pick < 0) {
      if (pl.applies) {
        kv.clear();
        locks.clear();
        for (const [k, v] of Object.entries(saved.kv)) if (v !== null) kv.set(k, v);
        for (const [k, v] of Object.entries(saved.locks)) if (v !== null) locks.set(k, v);
      }
      ops.push({ ...timing, kind: 'restore', key: '', input: saved, output: ok ? null : undefined });
      // The next restore puts back the state as it was just after this one.
      saved = { kv: Object.fromEntries(kv), locks: Object.fromEntries(locks) };
    } else if (pl.pick < 35) {
      ops.push({ ...timing, kind: 'read', key: pl.key, input: null, output: ok ? (kv.get(pl.key) ?? null) : undefined });
    } else if (pl.pick < 60) {
      const value = `v${pl.id}`;
      if (pl.applies) kv.set(pl.key, value);
      ops.push({ ...timing, kind: 'write', key: pl.key, input: value, output: ok ? null : undefined });
    } else if (pl.pick < 80) {
      // Half the time the cas expects the current value, so some succeed.
      const current = kv.get(pl.key) ?? null;
      const from = pl.roll % 2 === 0 ? current : `v${pl.roll % g.ops}`;
      const to = `c${pl.id}`;
      const hit = current === from;
      if (pl.applies && hit) kv.set(pl.key, to);
      ops.push({ ...timing, kind: 'cas', key: pl.key, input: { from, to }, output: ok ? hit : undefined });
    } else if (pl.pick < 90) {
      const holder = locks.get(pl.key);
      const hit = holder === undefined || holder === session;
      if (pl.applies && hit) locks.set(pl.key, session);
      ops.push({ ...timing, kind: 'acquire', key: pl.key, input: session, output: ok ? hit : undefined });
    } else {
      const hit = locks.get(pl.key) === session;
      if (pl.applies && hit) locks.delete(pl.key);
      ops.push({ ...timing, kind: 'release', key: pl.key, input: session, output: ok ? hit : undefined });
    }
  }
  return ops.sort((a, b) => a.id - b.id);
}

test('a large linearizable history (20,000 ops, 50 keys, 5 processes) checks ok within seconds', (t) => {
  const history = linearizableHistory(11, { ops: 20_000, kvKeys: 40, lockKeys: 10, processes: 5, infoPerMille: 20, failPerMille: 10, restores: 5 });
  const started = performance.now();
  const r = checkHistory(history);
  const ms = performance.now() - started;
  t.log(`${r.summary}; wall ${ms.toFixed(0)} ms`);
  t.is(r.verdict, 'ok', r.summary);
  t.is(r.partitions.length, 50);
  // The budget is generous for a loaded 2-core machine; on an idle one it takes well under a second.
  t.true(ms < 5000, `took ${ms.toFixed(0)} ms`);
});

test('a long history on one key goes as deep as it is long without recursion, and reports a violation at its end', (t) => {
  const h = new Hist();
  for (let i = 0; i < 10_000; i++) {
    h.write('w1', 'x', `v${i}`, 4 * i, 4 * i + 1);
    h.read('w2', 'x', `v${i}`, 4 * i + 2, 4 * i + 3);
  }
  t.is(h.check().verdict, 'ok');
  const stale = h.read('w3', 'x', 'v9998', 50_000, 50_001);
  const r = h.check();
  t.is(r.verdict, 'violation');
  t.is(r.violations[0]?.stuck, stale);
  t.is(r.violations[0]?.linearized.length, 20_000);
  t.regex(r.report ?? '', /longest linearization \(last 12 of 20000\)/);
  t.regex(r.report ?? '', /\.\.\. 19970 earlier operation\(s\) on this key/);
});

test('a hot key (3,000 ops on 2 keys, 5 processes, indeterminate ops and restores) checks ok', (t) => {
  const history = linearizableHistory(12, { ops: 3000, kvKeys: 1, lockKeys: 1, processes: 5, infoPerMille: 30, failPerMille: 10, restores: 3 });
  const r = checkHistory(history);
  t.log(r.summary);
  t.is(r.verdict, 'ok', r.summary);
});

test('the generated history with one read corrupted is caught', (t) => {
  const history = linearizableHistory(13, { ops: 4000, kvKeys: 10, lockKeys: 2, processes: 5, infoPerMille: 20, failPerMille: 10, restores: 2 });
  // A late read on a key that holds a value (there is one): make it return a value never written.
  const victim = [...history].reverse().find((o) => o.kind === 'read' && o.status === 'ok' && o.output !== null);
  if (victim === undefined || victim.kind !== 'read') return t.fail('the generator made no read of a present key');
  const corrupted = history.map((o) => (o === victim ? { ...victim, output: 'never-written' } : o));
  const r = checkHistory(corrupted);
  t.is(r.verdict, 'violation', r.summary);
  t.is(r.violations[0]?.stuck.id, victim.id);
});
