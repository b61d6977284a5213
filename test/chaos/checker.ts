// A linearizability checker for chaos histories, in the style of Porcupine (anishathalye/porcupine):
// the Wing–Gong–Lowe search with Horn & Kroening's P-compositionality. The history is split per model
// and key (a register per KV key, a lock per lock key), and each partition is searched on its own:
// the call and return entries in time order form a doubly linked list; the search repeatedly
// linearizes a call whose return has not yet been passed, lifting it out of the list, and backtracks
// (unlifting) when it reaches a return whose call it could not place. A cache of (linearized set,
// model state) pairs prunes revisits. The stack is explicit, so a history of any length recurses nowhere.
//
// Every partition is bounded by steps, wall time and cache memory; a partition that runs out is
// "unknown", never "ok". See README.md for what is checked and how to read a failure report.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Operation, SnapshotState } from './history.js';

/** Every bound of the checker, in one place. The search bounds can be overridden per call. */
export const CHECK_LIMITS = {
  /** Search steps (one list entry visited) per partition before it is "unknown". */
  maxStepsPerPartition: 20_000_000,
  /** Wall time per partition before it is "unknown". */
  maxMsPerPartition: 20_000,
  /** Estimated memory of one partition's cache of visited (set, state) pairs before it is "unknown". */
  maxCacheBytesPerPartition: 256 * 1024 * 1024,
  /** Wall time for the whole history; partitions not started by then are "unknown". */
  maxMsTotal: 120_000,
  /** How often the search reads the clock, in steps (a clock read costs more than a step). */
  stepsBetweenClockReads: 1024,
  /** Operations of the violating key shown before and after the one that could not be linearized. */
  timelineOpsBefore: 30,
  timelineOpsAfter: 10,
  /** Operations shown from the end of the longest linearization found. */
  timelineLinearizedShown: 12,
  /** Violating partitions written to the report; the rest are counted. */
  reportViolationsMax: 5,
} as const;

export type SearchLimits = Pick<
  { -readonly [K in keyof typeof CHECK_LIMITS]: number },
  'maxStepsPerPartition' | 'maxMsPerPartition' | 'maxCacheBytesPerPartition' | 'maxMsTotal'
>;

/** The register model (read, write, cas) or the lock model (acquire, release); restores write both. */
export type ModelName = 'kv' | 'lock';
export type Verdict = 'ok' | 'violation' | 'unknown';
/** Which bound a partition ran out of: its steps, its time, its cache, or the whole check's time. */
export type UnknownReason = 'steps' | 'time' | 'cache' | 'total-time';

export interface PartitionResult {
  readonly model: ModelName;
  readonly key: string;
  /** Operations searched, restores' writes included. */
  readonly ops: number;
  readonly verdict: Verdict;
  readonly reason: UnknownReason | undefined;
  readonly steps: number;
  readonly cacheEntries: number;
  readonly ms: number;
}

export interface Violation {
  readonly model: ModelName;
  readonly key: string;
  /** The partition's operations (a restore stands for its write of this key), sorted by call time. */
  readonly ops: readonly Operation[];
  /** The longest partial linearization the search found, in linearization order. */
  readonly linearized: readonly Operation[];
  /** The operation whose return the search could not pass after that linearization. */
  readonly stuck: Operation;
  /** The model's state after the longest linearization: the value (null: absent) or the holder (null: free). */
  readonly stateAtStuck: string | null;
}

export interface CheckResult {
  readonly verdict: Verdict;
  readonly partitions: readonly PartitionResult[];
  readonly violations: readonly Violation[];
  /** One line for a log: the verdict and why. */
  readonly summary: string;
  /** The plain-text timeline of the violations; undefined unless the verdict is 'violation'. */
  readonly report: string | undefined;
  /** Where the report was written, if the caller asked for a file and there was a violation. */
  readonly reportFile: string | undefined;
}

export interface CheckOptions {
  /** Overrides of CHECK_LIMITS' search bounds (tests use tiny ones). */
  readonly limits?: Partial<SearchLimits>;
  /** The state before the first operation; by default every key is absent and every lock free. */
  readonly initial?: SnapshotState;
  /** On a violation, write the report here (directories are created). */
  readonly reportFile?: string;
}

/** Checks a history; see CheckResult. Throws on a malformed history (a bug in the recorder or the caller). */
export function checkHistory(history: readonly Operation[], options: CheckOptions = {}): CheckResult {
  validateHistory(history);
  const limits: SearchLimits = { ...CHECK_LIMITS, ...options.limits };
  const partitions = buildPartitions(history, options.initial ?? { kv: {}, locks: {} });
  const totalDeadline = performance.now() + limits.maxMsTotal;
  const results: PartitionResult[] = [];
  const violations: Violation[] = [];
  for (const p of partitions) {
    const { result, violation } = checkPartition(p, limits, totalDeadline);
    results.push(result);
    if (violation !== undefined) violations.push(violation);
  }
  const verdict: Verdict = violations.length > 0 ? 'violation' : results.every((r) => r.verdict === 'ok') ? 'ok' : 'unknown';
  const origin = history.reduce((m, op) => Math.min(m, op.call), Infinity);
  const report = verdict === 'violation' ? formatReport(violations, origin, history.length) : undefined;
  const reportFile = report !== undefined && options.reportFile !== undefined ? writeReport(options.reportFile, report) : undefined;
  return { verdict, partitions: results, violations, summary: summarize(verdict, results, violations, history.length, reportFile), report, reportFile };
}

// ---------------------------------------------------------------------------------------------------
// The history as it comes in

function validateHistory(history: readonly Operation[]): void {
  const ids = new Set<number>();
  // A key's model: the two are checked apart, so a key used by both would hide how they interact.
  const models = new Map<string, ModelName>();
  for (const op of history) {
    const bad = (why: string): never => {
      throw new Error(`checker: operation #${op.id} (${op.kind} by ${op.process}): ${why}`);
    };
    if (ids.has(op.id)) bad('its id is used twice');
    ids.add(op.id);
    if (!Number.isFinite(op.call)) bad('its call time is not a finite number');
    if ((op.kind === 'restore') !== (op.key === '')) bad('a restore has key "" and nothing else does');
    if (op.kind !== 'restore') {
      const model = modelOf(op.kind);
      if ((models.get(op.key) ?? model) !== model) bad(`key ${JSON.stringify(op.key)} is used as both a register and a lock`);
      models.set(op.key, model);
    }
    if (op.status !== 'ok') continue;
    if (op.ret === undefined || !Number.isFinite(op.ret) || op.ret < op.call) bad('it completed ok but its return time is missing or before its call');
    if (!outputFits(op)) bad(`it completed ok with output ${JSON.stringify(op.output)}, which a ${op.kind} cannot answer`);
  }
}

function outputFits(op: Operation): boolean {
  switch (op.kind) {
    case 'read':
      return op.output === null || typeof op.output === 'string';
    case 'write':
    case 'restore':
      return op.output === null;
    case 'cas':
    case 'acquire':
    case 'release':
      return typeof op.output === 'boolean';
  }
}

// ---------------------------------------------------------------------------------------------------
// Partitions: one per (model, key), each a list of compiled operations over interned values

/** What a compiled operation does to the model's state. A restore's share of a key is a WRITE. */
const Code = { Read: 0, Write: 1, Cas: 2, Acquire: 3, Release: 4 } as const;
type Code = (typeof Code)[keyof typeof Code];

/** The boolean outputs of cas, acquire and release; UNKNOWN when the operation was indeterminate. */
const FALSE = 0;
const TRUE = 1;
const UNKNOWN = -1;
/** Value id of null: an absent key, a free lock. */
const NULL_ID = 0;
/** What step() returns when the operation cannot happen in that state with that output. */
const ILLEGAL = -1;

interface PartOp {
  /** The history's operation; for a restore's write, the restore. */
  readonly source: Operation;
  readonly code: Code;
  /** Read: unused. Write: the value written. Cas: `from`. Acquire/release: the holder. */
  readonly arg: number;
  /** Cas: `to`. Otherwise unused. */
  readonly arg2: number;
  /** Read: the value id read. Cas/acquire/release: TRUE, FALSE or UNKNOWN. Write: unused. */
  readonly out: number;
  readonly call: number;
  /** Infinity when indeterminate: the effect may land any time after the call, or never. */
  readonly ret: number;
}

interface Partition {
  readonly model: ModelName;
  readonly key: string;
  readonly ops: readonly PartOp[];
  readonly initial: number;
  /** Value ids back to values; ids are small integers so the search compares and hashes states cheaply. */
  readonly values: readonly (string | null)[];
}

/** Interns one partition's values: null is 0, every distinct string gets the next id. */
class Values {
  private readonly ids = new Map<string, number>();
  readonly names: (string | null)[] = [null];

  id(v: string | null): number {
    if (v === null) return NULL_ID;
    let id = this.ids.get(v);
    if (id === undefined) {
      id = this.names.length;
      this.ids.set(v, id);
      this.names.push(v);
    }
    return id;
  }
}

class PartitionBuilder {
  readonly values = new Values();
  readonly ops: PartOp[] = [];
  constructor(
    readonly model: ModelName,
    readonly key: string,
  ) {}

  add(source: Operation, code: Code, arg: number, arg2: number, out: number): void {
    // 'fail' never reaches here; 'info' may take effect at any point after its call, so its return is +inf.
    const ret = source.status === 'ok' && source.ret !== undefined ? source.ret : Infinity;
    this.ops.push({ source, code, arg, arg2, out, call: source.call, ret });
  }

  build(initial: string | null): Partition {
    return { model: this.model, key: this.key, ops: this.ops, initial: this.values.id(initial), values: this.values.names };
  }
}

function modelOf(kind: Exclude<Operation['kind'], 'restore'>): ModelName {
  return kind === 'acquire' || kind === 'release' ? 'lock' : 'kv';
}

function boolOut(op: Operation): number {
  return op.status !== 'ok' ? UNKNOWN : op.output === true ? TRUE : FALSE;
}

function buildPartitions(history: readonly Operation[], initial: SnapshotState): Partition[] {
  const builders = new Map<string, PartitionBuilder>();
  const restores: Array<Extract<Operation, { kind: 'restore' }>> = [];
  const builderFor = (model: ModelName, key: string): PartitionBuilder => {
    const name = `${model}\u0000${key}`;
    let b = builders.get(name);
    if (b === undefined) builders.set(name, (b = new PartitionBuilder(model, key)));
    return b;
  };
  for (const op of history) {
    // 'fail': it definitely did not happen. An indeterminate read changed nothing and observed nothing.
    if (op.status === 'fail' || (op.kind === 'read' && op.status !== 'ok')) continue;
    if (op.kind === 'restore') {
      restores.push(op);
      continue;
    }
    const b = builderFor(modelOf(op.kind), op.key);
    const v = b.values;
    switch (op.kind) {
      case 'read':
        b.add(op, Code.Read, 0, 0, v.id(op.output ?? null));
        break;
      case 'write':
        b.add(op, Code.Write, v.id(op.input), 0, 0);
        break;
      case 'cas':
        b.add(op, Code.Cas, v.id(op.input.from), v.id(op.input.to), boolOut(op));
        break;
      case 'acquire':
        b.add(op, Code.Acquire, v.id(op.input), 0, boolOut(op));
        break;
      case 'release':
        b.add(op, Code.Release, v.id(op.input), 0, boolOut(op));
        break;
    }
  }
  // A restore replaces the whole state: to each key's register or lock it is a write of the snapshot's
  // value, absent (null) where the snapshot lacks the key. Keys only a restore names have nothing to check.
  for (const b of builders.values()) {
    for (const r of restores) {
      const snapshot = b.model === 'kv' ? r.input.kv : r.input.locks;
      b.add(r, Code.Write, b.values.id(snapshot[b.key] ?? null), 0, 0);
    }
  }
  return [...builders.values()]
    .sort((a, b) => (a.model === b.model ? compareStrings(a.key, b.key) : compareStrings(a.model, b.model)))
    .map((b) => b.build((b.model === 'kv' ? initial.kv : initial.locks)[b.key] ?? null));
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------------
// The models

/**
 * One operation applied to a state: the next state, or ILLEGAL if the operation could not have
 * answered what it did. Both models share it; a partition holds only its model's codes (plus writes).
 * Lock: acquire succeeds when the lock is free or already held by the same session (Consul's
 * re-acquire), release succeeds only for the holder; a failed one changes nothing.
 */
function step(state: number, op: PartOp): number {
  switch (op.code) {
    case Code.Read:
      return state === op.out ? state : ILLEGAL;
    case Code.Write:
      return op.arg;
    case Code.Cas:
      return outcome(state === op.arg, op.out, op.arg2, state);
    case Code.Acquire:
      return outcome(state === NULL_ID || state === op.arg, op.out, op.arg, state);
    case Code.Release:
      return outcome(state === op.arg, op.out, NULL_ID, state);
  }
}

/** A conditional operation: legal if its answer matches whether it could succeed (any answer if unknown). */
function outcome(succeeds: boolean, out: number, ifSucceeds: number, state: number): number {
  const next = succeeds ? ifSucceeds : state;
  if (out === UNKNOWN) return next;
  return (out === TRUE) === succeeds ? next : ILLEGAL;
}

// ---------------------------------------------------------------------------------------------------
// The search

interface SearchBounds {
  readonly maxSteps: number;
  readonly maxCacheBytes: number;
  /** performance.now() after which the search gives up. */
  readonly deadline: number;
}

/** The deepest point the search reached: after `depth` operations, it could not pass `stuckOp`'s return. */
interface Deepest {
  readonly depth: number;
  readonly stuckOp: number;
  readonly state: number;
  /** The step at which it got there: a rerun stops at this step to read the linearization off the stack. */
  readonly step: number;
}

type SearchOutcome = { readonly steps: number; readonly cacheEntries: number } & (
  | { readonly kind: 'ok' }
  | { readonly kind: 'unknown'; readonly reason: 'steps' | 'time' | 'cache' }
  | { readonly kind: 'violation'; readonly deepest: Deepest }
  | { readonly kind: 'captured'; readonly linearization: readonly number[] }
);

/**
 * The visited (linearized set, state) pairs. The sets live in one growing arena of 32-bit words, so an
 * entry costs its bits and a few bytes, not a typed array each. Set hashes are Zobrist hashes: the XOR
 * of a random word per member, updated in O(1) as operations are linearized and undone.
 */
class VisitedCache {
  /** Bytes an entry costs beyond its bits: its state, its slot in a bucket, the bucket's share of the map. */
  private static readonly overheadBytes = 48;
  private readonly words: number;
  private readonly maxEntries: number;
  private arena: Uint32Array;
  private states: Int32Array;
  private readonly buckets = new Map<number, number[]>();
  count = 0;

  constructor(opCount: number, maxBytes: number) {
    this.words = Math.max(1, Math.ceil(opCount / 32));
    this.maxEntries = Math.floor(maxBytes / (this.words * 4 + VisitedCache.overheadBytes));
    const initial = Math.max(1, Math.min(1024, this.maxEntries));
    this.arena = new Uint32Array(initial * this.words);
    this.states = new Int32Array(initial);
  }

  get full(): boolean {
    return this.count > this.maxEntries;
  }

  /** Adds (`bits` plus op `add`, `state`) unless present; true if it was new. */
  addIfNew(hash: number, bits: Uint32Array, add: number, state: number): boolean {
    const key = (hash ^ Math.imul(state + 1, 0x9e3779b1)) >>> 0;
    let bucket = this.buckets.get(key);
    if (bucket !== undefined) {
      for (const e of bucket) if (this.states[e] === state && this.sameBits(e, bits, add)) return false;
    } else {
      this.buckets.set(key, (bucket = []));
    }
    if (this.count === this.states.length) this.grow();
    const e = this.count++;
    this.states[e] = state;
    const base = e * this.words;
    this.arena.set(bits, base);
    this.arena[base + (add >>> 5)]! |= 1 << (add & 31);
    bucket.push(e);
    return true;
  }

  private sameBits(e: number, bits: Uint32Array, add: number): boolean {
    const base = e * this.words;
    const addWord = add >>> 5;
    for (let w = 0; w < this.words; w++) {
      const mine = w === addWord ? (bits[w]! | (1 << (add & 31))) >>> 0 : bits[w]!;
      if (this.arena[base + w] !== mine) return false;
    }
    return true;
  }

  /** Doubles the capacity, but never past one entry beyond the bound (that entry trips `full`). */
  private grow(): void {
    const capacity = Math.min(this.states.length * 2, this.maxEntries + 1);
    const arena = new Uint32Array(capacity * this.words);
    arena.set(this.arena);
    const states = new Int32Array(capacity);
    states.set(this.states);
    this.arena = arena;
    this.states = states;
  }
}

/** Zobrist words for the ops of a partition, from a fixed seed so every run searches alike. */
function zobristWords(n: number): Uint32Array {
  const out = new Uint32Array(n);
  let x = 0x2545f491;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x >>> 0;
  }
  return out;
}

/**
 * The call (2i) and return (2i+1) entries of op i, in time order. Intervals are closed: at equal times
 * calls come first, so operations that touch count as concurrent.
 */
function sortedEntries(ops: readonly PartOp[]): number[] {
  const time = (e: number): number => ((e & 1) === 0 ? ops[e >> 1]!.call : ops[e >> 1]!.ret);
  const entries = Array.from({ length: ops.length * 2 }, (_, e) => e);
  return entries.sort((a, b) => {
    const ta = time(a);
    const tb = time(b);
    if (ta !== tb) return ta < tb ? -1 : 1;
    return (a & 1) - (b & 1) || a - b;
  });
}

/**
 * Porcupine's checkSingle over one partition. Indeterminate operations (return at +inf) are candidates
 * from their call on; the greedy search tends to place one early and let a later write overwrite it,
 * which clears it out of the way cheaply. Once every completed operation is placed, what is left is
 * indeterminate, and an indeterminate operation is legal in any state (a write, or a cas, acquire or
 * release whose answer is unknown), so the search stops there: linearizable.
 *
 * With `captureAtStep`, it stops at that step and returns the linearization on the stack (the search
 * is deterministic, so a rerun retraces the first run).
 */
function search(p: Partition, bounds: SearchBounds, captureAtStep?: number): SearchOutcome {
  const ops = p.ops;
  const n = ops.length;
  const HEAD = 2 * n;
  const TAIL = 2 * n + 1;
  const next = new Int32Array(2 * n + 2);
  const prev = new Int32Array(2 * n + 2);
  let last = HEAD;
  for (const e of sortedEntries(ops)) {
    next[last] = e;
    prev[e] = last;
    last = e;
  }
  next[last] = TAIL;
  prev[TAIL] = last;

  // Removing an op's two entries leaves their own links intact, so undoing in reverse order restores them.
  const unlink = (e: number): void => {
    next[prev[e]!] = next[e]!;
    prev[next[e]!] = prev[e]!;
  };
  const relink = (e: number): void => {
    next[prev[e]!] = e;
    prev[next[e]!] = e;
  };
  const lift = (i: number): void => {
    unlink(2 * i);
    unlink(2 * i + 1);
  };
  const unlift = (i: number): void => {
    relink(2 * i + 1);
    relink(2 * i);
  };

  const zobrist = zobristWords(n);
  const cache = new VisitedCache(n, bounds.maxCacheBytes);
  const linearized = new Uint32Array(Math.max(1, Math.ceil(n / 32)));
  let setHash = 0;
  const stackOp = new Int32Array(n);
  const stackState = new Int32Array(n);
  let depth = 0;
  let state = p.initial;
  let deepest: Deepest = { depth: -1, stuckOp: -1, state, step: 0 };
  let steps = 0;
  const stats = (): { steps: number; cacheEntries: number } => ({ steps, cacheEntries: cache.count });
  const indeterminate = ops.map((op) => op.ret === Infinity);
  let completedLeft = indeterminate.filter((x) => !x).length;
  if (completedLeft === 0) return { kind: 'ok', ...stats() };

  let entry = next[HEAD]!;
  while (next[HEAD] !== TAIL) {
    steps++;
    if (steps > bounds.maxSteps) return { kind: 'unknown', reason: 'steps', ...stats() };
    if (steps % CHECK_LIMITS.stepsBetweenClockReads === 0 && performance.now() > bounds.deadline) return { kind: 'unknown', reason: 'time', ...stats() };
    const i = entry >> 1;
    if ((entry & 1) === 0) {
      // A call: linearize it now if the model allows and this (set, state) was not explored before.
      const after = step(state, ops[i]!);
      if (after !== ILLEGAL && cache.addIfNew(setHash ^ zobrist[i]!, linearized, i, after)) {
        if (cache.full) return { kind: 'unknown', reason: 'cache', ...stats() };
        if (!indeterminate[i] && --completedLeft === 0) return { kind: 'ok', ...stats() };
        stackOp[depth] = i;
        stackState[depth] = state;
        depth++;
        state = after;
        linearized[i >>> 5]! |= 1 << (i & 31);
        setHash ^= zobrist[i]!;
        lift(i);
        entry = next[HEAD]!;
      } else {
        entry = next[entry]!;
      }
    } else {
      // A return whose call is not linearized: nothing before it can be placed. Undo the last choice.
      if (depth > deepest.depth) deepest = { depth, stuckOp: i, state, step: steps };
      if (steps === captureAtStep) return { kind: 'captured', linearization: Array.from(stackOp.subarray(0, depth)), ...stats() };
      if (depth === 0) return { kind: 'violation', deepest, ...stats() };
      depth--;
      const j = stackOp[depth]!;
      if (!indeterminate[j]) completedLeft++;
      state = stackState[depth]!;
      linearized[j >>> 5]! &= ~(1 << (j & 31));
      setHash ^= zobrist[j]!;
      unlift(j);
      entry = next[2 * j]!;
    }
  }
  return { kind: 'ok', ...stats() };
}

function checkPartition(p: Partition, limits: SearchLimits, totalDeadline: number): { result: PartitionResult; violation: Violation | undefined } {
  const base = { model: p.model, key: p.key, ops: p.ops.length };
  const started = performance.now();
  if (started >= totalDeadline) {
    return { result: { ...base, verdict: 'unknown', reason: 'total-time', steps: 0, cacheEntries: 0, ms: 0 }, violation: undefined };
  }
  const partitionDeadline = started + limits.maxMsPerPartition;
  const bounds: SearchBounds = {
    maxSteps: limits.maxStepsPerPartition,
    maxCacheBytes: limits.maxCacheBytesPerPartition,
    deadline: Math.min(partitionDeadline, totalDeadline),
  };
  const o = search(p, bounds);
  const ms = performance.now() - started;
  const stats = { steps: o.steps, cacheEntries: o.cacheEntries, ms };
  switch (o.kind) {
    case 'ok':
      return { result: { ...base, verdict: 'ok', reason: undefined, ...stats }, violation: undefined };
    case 'unknown': {
      // The total deadline, not the partition's own, is what cut a search short if it came first.
      const reason: UnknownReason = o.reason === 'time' && totalDeadline < partitionDeadline ? 'total-time' : o.reason;
      return { result: { ...base, verdict: 'unknown', reason, ...stats }, violation: undefined };
    }
    case 'violation':
      return { result: { ...base, verdict: 'violation', reason: undefined, ...stats }, violation: describeViolation(p, bounds, o.deepest) };
    case 'captured':
      throw new Error('checker: a search without a capture step captured');
  }
}

function describeViolation(p: Partition, bounds: SearchBounds, deepest: Deepest): Violation {
  // Rerun to the step where the search got deepest and read the linearization off its stack. The first
  // run got there within its bounds, so the rerun, which retraces it, needs only the step bound.
  const rerun = search(p, { ...bounds, maxSteps: deepest.step, deadline: Infinity }, deepest.step);
  const order = rerun.kind === 'captured' ? rerun.linearization : [];
  // One shown object per op, so the report can find ops by identity.
  const shown = p.ops.map((op) => shownOp(p, op));
  const byCall = p.ops.map((_, i) => i).sort((a, b) => p.ops[a]!.call - p.ops[b]!.call || a - b);
  return {
    model: p.model,
    key: p.key,
    ops: byCall.map((i) => shown[i]!),
    linearized: order.map((i) => shown[i]!),
    stuck: shown[deepest.stuckOp]!,
    stateAtStuck: p.values[deepest.state] ?? null,
  };
}

/** A partition's op as the report shows it: a restore becomes its write of this key. */
function shownOp(p: Partition, op: PartOp): Operation {
  const s = op.source;
  if (s.kind !== 'restore') return s;
  const only = { [p.key]: p.values[op.arg] ?? null };
  return { ...s, input: p.model === 'kv' ? { kv: only, locks: {} } : { kv: {}, locks: only } };
}

// ---------------------------------------------------------------------------------------------------
// Reporting

const MARKER = '>>>';

function summarize(verdict: Verdict, results: readonly PartitionResult[], violations: readonly Violation[], opCount: number, reportFile: string | undefined): string {
  const steps = results.reduce((s, r) => s + r.steps, 0);
  const ms = results.reduce((s, r) => s + r.ms, 0);
  const scope = `${opCount} operations, ${results.length} partitions, ${steps} steps, ${(ms / 1000).toFixed(2)} s`;
  if (verdict === 'ok') return `linearizable (${scope})`;
  if (verdict === 'violation') {
    const first = violations[0]!;
    const where = reportFile === undefined ? '' : `; timeline in ${reportFile}`;
    return `NOT linearizable: ${violations.length} partition(s), first ${first.model} key ${JSON.stringify(first.key)}: ${describeOp(first.stuck)} could not be linearized (${scope})${where}`;
  }
  const undecided = results.filter((r) => r.verdict === 'unknown');
  const shown = undecided.slice(0, 5).map((r) => `${r.model} ${JSON.stringify(r.key)} ran out of ${r.reason}`);
  const more = undecided.length > shown.length ? `, and ${undecided.length - shown.length} more` : '';
  return `unknown: ${undecided.length} of ${results.length} partitions undecided (${shown.join('; ')}${more}) (${scope})`;
}

function formatReport(violations: readonly Violation[], origin: number, opCount: number): string {
  const shown = violations.slice(0, CHECK_LIMITS.reportViolationsMax);
  const sections = shown.map((v) => formatViolation(v, origin, opCount));
  const rest = violations.length - shown.length;
  if (rest > 0) sections.push(`... and ${rest} more violating partition(s), not shown.\n`);
  return sections.join('\n');
}

/** The plain-text timeline of one violation; times are ms after `origin` (the history's first call). */
export function formatViolation(v: Violation, origin: number, opCount: number): string {
  const lines: string[] = [];
  const none = v.model === 'kv' ? 'absent' : 'free';
  lines.push(`linearizability violation: ${v.model} model, key ${JSON.stringify(v.key)} (${v.ops.length} operations on it, ${opCount} in the history)`);
  lines.push(
    `The longest linearization found places ${v.linearized.length} of them; after it the ${v.model === 'kv' ? 'value' : 'holder'} is ` +
      `${v.stateAtStuck === null ? none : JSON.stringify(v.stateAtStuck)}, and no order places operation #${v.stuck.id} (marked ${MARKER}).`,
  );
  lines.push(`Times are ms after the history's first call; "ret ∞" is an indeterminate operation (it may take effect any time after its call, or never).`);
  lines.push('');
  const tail = v.linearized.slice(-CHECK_LIMITS.timelineLinearizedShown);
  const skipped = v.linearized.length - tail.length;
  lines.push(`longest linearization${skipped > 0 ? ` (last ${tail.length} of ${v.linearized.length})` : ''}:`);
  lines.push(`  ${skipped > 0 ? '... ' : ''}${tail.map((op) => `#${op.id} ${describeOp(op)}`).join('  ·  ') || '(nothing)'}`);
  lines.push('');

  const position = new Map<Operation, number>(v.linearized.map((op, k) => [op, k + 1]));
  const at = v.ops.indexOf(v.stuck);
  const from = Math.max(0, at - CHECK_LIMITS.timelineOpsBefore);
  const to = Math.min(v.ops.length, at + CHECK_LIMITS.timelineOpsAfter + 1);
  lines.push(`    ${'call'.padStart(10)} ${'ret'.padStart(10)}  ${'process'.padEnd(10)} ${'id'.padEnd(7)} ${'status'.padEnd(6)} ${'lin'.padStart(5)}  operation`);
  if (from > 0) lines.push(`    ... ${from} earlier operation(s) on this key`);
  for (let k = from; k < to; k++) {
    const op = v.ops[k]!;
    const mark = op === v.stuck ? MARKER : '   ';
    const ret = op.status === 'ok' && op.ret !== undefined ? ms(op.ret - origin) : '∞';
    const lin = position.get(op);
    const gaveUp = op.gaveUpAt === undefined ? '' : ` (gave up at ${ms(op.gaveUpAt - origin)})`;
    const note = op === v.stuck ? '   <-- cannot be linearized' : '';
    lines.push(
      `${mark} ${ms(op.call - origin).padStart(10)} ${ret.padStart(10)}  ${op.process.padEnd(10)} ${`#${op.id}`.padEnd(7)} ${op.status.padEnd(6)} ${(lin === undefined ? '-' : String(lin)).padStart(5)}  ${describeOp(op)}${gaveUp}${note}`,
    );
  }
  if (to < v.ops.length) lines.push(`    ... ${v.ops.length - to} later operation(s) on this key`);
  return lines.join('\n') + '\n';
}

function ms(t: number): string {
  return t.toFixed(1);
}

function shownValue(v: string | null, none: string): string {
  return v === null ? none : JSON.stringify(v);
}

/** One operation in a line: what it asked and, if it completed ok, what it got ("?" otherwise). */
export function describeOp(op: Operation): string {
  const got = (s: string): string => (op.status === 'ok' ? s : '?');
  switch (op.kind) {
    case 'read':
      return `read ${JSON.stringify(op.key)} -> ${got(shownValue(op.output ?? null, 'absent'))}`;
    case 'write':
      return op.input === null ? `delete ${JSON.stringify(op.key)}` : `write ${JSON.stringify(op.key)} = ${JSON.stringify(op.input)}`;
    case 'cas':
      return `cas ${JSON.stringify(op.key)} ${shownValue(op.input.from, 'absent')} => ${JSON.stringify(op.input.to)} -> ${got(String(op.output))}`;
    case 'acquire':
      return `acquire ${JSON.stringify(op.key)} by ${JSON.stringify(op.input)} -> ${got(String(op.output))}`;
    case 'release':
      return `release ${JSON.stringify(op.key)} by ${JSON.stringify(op.input)} -> ${got(String(op.output))}`;
    case 'restore': {
      const kv = Object.entries(op.input.kv).map(([k, x]) => `${JSON.stringify(k)} = ${shownValue(x, 'absent')}`);
      const locks = Object.entries(op.input.locks).map(([k, x]) => `lock ${JSON.stringify(k)} = ${shownValue(x, 'free')}`);
      return `restore (${[...kv, ...locks].join(', ') || 'empty'})`;
    }
  }
}

function writeReport(path: string, report: string): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, report);
  return path;
}
