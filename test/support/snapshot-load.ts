// Snapshot saves and restores against a ProcessCluster, seen the way a client sees them (status, text,
// or the connection failing), and a write load of sequential writers whose every write is recorded
// with when it was sent, when it was answered and what the answer says about it. The checks that
// follow compare a state (decoded from a ?stale save) with that record. Test-only.

import { performance } from 'node:perf_hooks';
import type { ProcessCluster } from './process-cluster.js';
import { sleep, waitFor } from './process-cluster.js';
import { decodeArchive, kvData, type DecodedState } from './snapshots.js';

export type KvState = Record<string, string>;

export interface Saved {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Buffer;
}

export async function save(c: ProcessCluster, i: number, query = '', timeoutMs = 60_000): Promise<Saved> {
  const r = await fetch(`http://127.0.0.1:${c.node(i).httpPort}/v1/snapshot${query}`, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
}

/** What a restore answered: a status and its text, or the connection failing (no answer at all). */
export type RestoreAnswer = { readonly kind: 'answer'; readonly status: number; readonly text: string } | { readonly kind: 'no-answer'; readonly error: string };

export async function restore(c: ProcessCluster, i: number, archive: Uint8Array, timeoutMs = 120_000): Promise<RestoreAnswer> {
  try {
    const r = await fetch(`http://127.0.0.1:${c.node(i).httpPort}/v1/snapshot`, {
      method: 'PUT',
      body: new Uint8Array(archive),
      headers: { 'Content-Type': 'application/octet-stream' },
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { kind: 'answer', status: r.status, text: await r.text() };
  } catch (e) {
    const err = e as Error & { cause?: Error };
    return { kind: 'no-answer', error: `${err.message}${err.cause !== undefined ? ` (${err.cause.message})` : ''}` };
  }
}

export function describeAnswer(a: RestoreAnswer): string {
  return a.kind === 'answer' ? `${a.status} ${JSON.stringify(a.text)}` : `no answer: ${a.error}`;
}

/** Node `i`'s own state: a ?stale save from it, decoded. */
export async function stateOf(c: ProcessCluster, i: number): Promise<{ decoded: DecodedState; kv: KvState; headers: Headers }> {
  const s = await save(c, i, '?stale');
  if (s.status !== 200) throw new Error(`stale save from ${c.node(i).name}: ${s.status} ${s.body.toString()}`);
  const decoded = await decodeArchive(s.body);
  return { decoded, kv: kvData(decoded), headers: s.headers };
}

/**
 * Waits until every running node's own state is the same (and, with `expected`, equal to it), and
 * returns that state. On a timeout the error says how the states differ.
 */
export async function waitConverged(c: ProcessCluster, timeoutMs: number, expected?: KvState): Promise<KvState> {
  let last = '';
  return waitFor('every running node to hold the same state', async () => {
    const nodes = c.running();
    const states: KvState[] = [];
    for (const i of nodes) states.push((await stateOf(c, i)).kv);
    const first = states[0];
    if (first === undefined) return undefined;
    const want = expected ?? first;
    const same = states.every((s) => sameState(s, want));
    last = states.map((s, k) => `${c.node(nodes[k] as number).name}: ${Object.keys(s).length} keys, ${diffSummary(s, want)}`).join('; ');
    return same ? want : undefined;
  }, timeoutMs, () => `states: ${last}\n${c.describe()}`);
}

export function sameState(a: KvState, b: KvState): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => b[k] === a[k]);
}

/** A short account of how `a` differs from `b`. */
export function diffSummary(a: KvState, b: KvState): string {
  const missing = Object.keys(b).filter((k) => !(k in a));
  const extra = Object.keys(a).filter((k) => !(k in b));
  const changed = Object.keys(a).filter((k) => k in b && a[k] !== b[k]);
  if (missing.length + extra.length + changed.length === 0) return 'equal';
  const few = (ks: string[]): string => `${ks.length}${ks.length > 0 ? ` (${ks.slice(0, 3).join(', ')}${ks.length > 3 ? ', ...' : ''})` : ''}`;
  return `missing ${few(missing)}, extra ${few(extra)}, changed ${few(changed)}`;
}

/** The running nodes' leader as far as node `i` knows ('' for none). */
export async function leaderSeenBy(c: ProcessCluster, i: number): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${c.node(i).httpPort}/v1/status/leader`, { signal: AbortSignal.timeout(10_000) });
  return r.status === 200 ? String(await r.json()) : '';
}

/** The server addresses `/v1/operator/raft/configuration` lists on node `i` (?stale: its own view). */
export async function raftServers(c: ProcessCluster, i: number): Promise<string[]> {
  const r = await fetch(`http://127.0.0.1:${c.node(i).httpPort}/v1/operator/raft/configuration?stale`, { signal: AbortSignal.timeout(10_000) });
  if (r.status !== 200) throw new Error(`raft configuration from ${c.node(i).name}: ${r.status} ${await r.text()}`);
  const body = (await r.json()) as { Servers: Array<{ Address: string }> };
  return body.Servers.map((s) => s.Address).sort();
}

export function serverAddresses(c: ProcessCluster): string[] {
  return c.nodes.map((n) => `127.0.0.1:${n.serverPort}`).sort();
}

// ------------------------------------------------------------------------------------------------
// A write load
// ------------------------------------------------------------------------------------------------

/**
 * What a write's answer says about it. `ack`: applied. `not-applied`: the server says it was not
 * (and then it must not be in any state). `unknown`: no answer, or an answer that leaves it open.
 */
export type WriteOutcome = 'ack' | 'not-applied' | 'unknown';

export interface WriteRecord {
  readonly writer: number;
  readonly seq: number;
  readonly key: string;
  readonly value: string;
  readonly node: string;
  /** performance.now() when the request was sent, and when its answer (or failure) came. */
  readonly sentAt: number;
  doneAt: number | undefined;
  outcome: WriteOutcome | undefined;
  detail: string;
}

/** Texts by which a server says a write was not applied (anything else that is not a 200 is unknown). */
const notAppliedTexts = [/the write was not applied/, /nothing was done/];

export function classifyWrite(status: number, text: string): WriteOutcome {
  if (status === 200) return text.trim() === 'true' ? 'ack' : 'unknown';
  if (notAppliedTexts.some((re) => re.test(text)) && !/may or may not/.test(text)) return 'not-applied';
  return 'unknown';
}

/**
 * `writers` clients, each writing `${prefix}/w${n}/k${seq}` for seq = 0, 1, 2, ... one at a time,
 * each write to the next running node in turn (forwarded to the leader by a follower). A write that
 * does not succeed is recorded and the writer goes on with the next key after a short pause (the
 * pause only paces a writer facing an unreachable cluster; nothing waits on it).
 */
export class WriteLoad {
  readonly records: WriteRecord[][] = [];
  private stopped = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly c: ProcessCluster,
    readonly prefix: string,
    private readonly writers: number,
    private readonly requestTimeoutMs = 15_000,
    /** Which nodes a write may go to (default: every running one). */
    private readonly targets: () => number[] = () => c.running(),
  ) {
    for (let w = 0; w < writers; w++) this.records.push([]);
  }

  start(): void {
    this.loops = this.records.map((_, w) => this.loop(w));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  all(): WriteRecord[] {
    return this.records.flat();
  }

  acks(): number {
    return this.all().filter((r) => r.outcome === 'ack').length;
  }

  /** Waits until every writer has had `n` writes acknowledged that were sent after `since`. */
  async waitAcksAfter(since: number, n: number, timeoutMs: number): Promise<void> {
    await waitFor(`every writer to have ${n} writes acknowledged after t=${since.toFixed(0)}`, async () =>
      this.records.every((rs) => rs.filter((r) => r.outcome === 'ack' && r.sentAt > since).length >= n) ? true : undefined,
    timeoutMs, () => this.summary());
  }

  summary(): string {
    const count = (o: WriteOutcome | undefined): number => this.all().filter((r) => r.outcome === o).length;
    const odd = this.all().filter((r) => r.outcome !== 'ack').slice(0, 8).map((r) => `${r.key}@${r.node}: ${r.detail}`);
    return `writes: ${count('ack')} acked, ${count('not-applied')} not applied, ${count('unknown')} unknown, ${count(undefined)} in flight${odd.length > 0 ? `; e.g. ${odd.join(' | ')}` : ''}`;
  }

  private async loop(w: number): Promise<void> {
    const rs = this.records[w] as WriteRecord[];
    for (let seq = 0; !this.stopped; seq++) {
      const nodes = this.targets();
      const i = nodes[(w + seq) % Math.max(1, nodes.length)];
      if (i === undefined) {
        await sleep(50);
        seq--;
        continue;
      }
      const key = `${this.prefix}/w${w}/k${String(seq).padStart(5, '0')}`;
      const value = `v${seq}`;
      const rec: WriteRecord = { writer: w, seq, key, value, node: this.c.node(i).name, sentAt: performance.now(), doneAt: undefined, outcome: undefined, detail: '' };
      rs.push(rec);
      try {
        const r = await fetch(`http://127.0.0.1:${this.c.node(i).httpPort}/v1/kv/${key}`, { method: 'PUT', body: value, signal: AbortSignal.timeout(this.requestTimeoutMs) });
        const text = await r.text();
        rec.outcome = classifyWrite(r.status, text);
        rec.detail = `${r.status} ${text.trim().slice(0, 160)}`;
      } catch (e) {
        const err = e as Error & { cause?: Error };
        rec.outcome = 'unknown';
        rec.detail = `no answer: ${err.message}${err.cause !== undefined ? ` (${err.cause.message})` : ''}`;
      }
      rec.doneAt = performance.now();
      if (rec.outcome !== 'ack') await sleep(50);
    }
  }
}

/** The writer and sequence number of a key written by a WriteLoad with `prefix` (undefined otherwise). */
export function parseWriteKey(prefix: string, key: string): { writer: number; seq: number } | undefined {
  const m = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/w(\\d+)/k(\\d+)$`).exec(key);
  return m === null ? undefined : { writer: Number(m[1]), seq: Number(m[2]) };
}

/**
 * Checks that `state`'s keys under the load's prefix are a point-in-time cut of the load, as a save
 * taken between `saveSentAt` and `saveAnsweredAt` must be:
 * - every such key was written, with the value written, and sent before the save was answered;
 * - every write acknowledged before the save was sent is present;
 * - for each writer, the keys present are k0..k(m-1) for some m (a prefix of its sequence);
 * - no write the server called not applied is present.
 * Returns the problems found (empty: none).
 */
export function checkPrefixCut(load: WriteLoad, state: KvState, saveSentAt: number, saveAnsweredAt: number): string[] {
  const problems: string[] = [];
  const present = new Map<number, Set<number>>();
  for (const [key, v] of Object.entries(state)) {
    const p = parseWriteKey(load.prefix, key);
    if (p === undefined) continue;
    const rec = load.records[p.writer]?.[p.seq];
    if (rec === undefined || rec.key !== key) {
      problems.push(`${key} is in the state but was never written`);
      continue;
    }
    if (v !== `0:${rec.value}`) problems.push(`${key} holds ${v}, but ${rec.value} was written`);
    if (rec.sentAt > saveAnsweredAt) problems.push(`${key} is in the save but was sent ${(rec.sentAt - saveAnsweredAt).toFixed(0)} ms after the save was answered`);
    if (rec.outcome === 'not-applied') problems.push(`${key} is present but its write was answered "${rec.detail}"`);
    const s = present.get(p.writer) ?? new Set<number>();
    s.add(p.seq);
    present.set(p.writer, s);
  }
  load.records.forEach((rs, w) => {
    const seqs = present.get(w) ?? new Set<number>();
    for (const r of rs) {
      if (r.outcome === 'ack' && r.doneAt !== undefined && r.doneAt < saveSentAt && !seqs.has(r.seq)) {
        problems.push(`${r.key} was acknowledged ${(saveSentAt - r.doneAt).toFixed(0)} ms before the save was sent, but is not in it`);
      }
    }
    const m = seqs.size;
    for (const s of seqs) if (s >= m) problems.push(`writer ${w}: k${s} is present but the present keys are not a prefix (${m} present)`);
  });
  return problems;
}
