// The query parameters most endpoints share, parsed as Consul's HTTPHandlers.parse() does (agent/http.go:
// parseDC, parseToken, parseConsistency, parseWait), plus the X-Consul-* headers of a read.

import type { Consistency, ReadMeta, ReadOptions } from '../server/index.js';
import { maxUint64, toUint64, type Uint64 } from '../fsm/index.js';
import { assert } from '../base/index.js';
import { goQuote } from './json.js';
import { parseGoDuration } from '../base/index.js';
import { badRequest, HttpError } from './errors.js';
import type { Query } from './query.js';
import type { RequestContext } from './reply.js';

/** Go's strconv.ParseBool spellings of false. */
const falseSpellings: ReadonlySet<string> = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

/**
 * A flag Consul reads by presence (`?recurse`, `?recurse=`, `?recurse=1`, `?recurse=true` all mean
 * true). Consul also takes `?recurse=false` as true, which turns a harmless-looking DELETE into a
 * delete-tree; we refuse an explicit false instead of guessing (a 400, nothing changed), so every
 * request we accept means what it means to Consul.
 */
export function flag(query: Query, name: string): boolean {
  if (!query.has(name)) return false;
  const value = query.get(name);
  if (falseSpellings.has(value)) {
    throw badRequest(
      `?${name}=${value} is ambiguous: Consul treats any ?${name} as true, whatever its value. ` +
        `Leave the parameter out to turn it off, or send ?${name} to turn it on; nothing was done.`,
    );
  }
  return true;
}

/**
 * An index parameter (?cas) as Consul parses it (strconv.ParseUint base 10), limited to 0..2^53-1: our
 * indexes are JS numbers and are refused rather than rounded. Consul answers
 * a malformed value with a 500 carrying strconv's error; we answer 400 naming the value.
 */
export function uintParam(query: Query, name: string): number | undefined {
  if (!query.has(name)) return undefined;
  const text = query.get(name);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw badRequest(
      `Invalid ?${name}=${text}: expected an unsigned decimal integer between 0 and ${Number.MAX_SAFE_INTEGER}; nothing was done.`,
    );
  }
  return Number(text);
}

/**
 * A uint64 parameter taking Consul's whole range (?flags): Go's strconv.ParseUint(text, 10, 64), 0 to
 * 2^64-1, exact (see Uint64). A refused value answers Consul's text, strconv's error (`strconv.ParseUint:
 * parsing "<v>": invalid syntax` or `value out of range`, whichever Go meets first reading left to
 * right), with a 400 where Consul answers 500; nothing is done.
 */
export function uint64Param(query: Query, name: string): Uint64 | undefined {
  if (!query.has(name)) return undefined;
  const text = query.get(name);
  const parsed = parseUint64(text);
  if (typeof parsed === 'string') throw badRequest(`strconv.ParseUint: parsing ${goQuote(text)}: ${parsed}`);
  return parsed;
}

/** Go's strconv.ParseUint(text, 10, 64): the value, or the reason it fails ('invalid syntax', 'value out of range'). */
export function parseUint64(text: string): Uint64 | 'invalid syntax' | 'value out of range' {
  if (text === '') return 'invalid syntax';
  const digits = /^[0-9]*/.exec(text)?.[0] ?? '';
  // Go stops at the first digit that overflows, before it sees a later non-digit.
  if (digits !== '' && BigInt(digits) > maxUint64) return 'value out of range';
  if (digits.length !== text.length) return 'invalid syntax';
  const value = toUint64(BigInt(digits));
  assert(value !== undefined, 'a decimal within 0..2^64-1 is a Uint64');
  return value;
}

/** ?dc for endpoints answered by this server alone (status, operator): only its own datacenter. */
export function checkDatacenter(ctx: RequestContext): void {
  const dc = ctx.query.get('dc');
  // Consul answers 500 (structs.ErrNoDCPath from RPC routing). A datacenter this cluster does not have is
  // the caller's mistake and retrying cannot fix it, so we answer 400 with Consul's exact text.
  if (dc !== '' && dc !== ctx.api.datacenter) throw badRequest('No path to datacenter');
}

/** parseConsistency: ?stale, ?consistent, ?leader, ?max_stale, and their one conflict. */
export function parseConsistency(query: Query): Consistency {
  let stale = flag(query, 'stale');
  const consistent = flag(query, 'consistent');
  const maxStale = query.get('max_stale');
  if (maxStale !== '') {
    const parsed = parseGoDuration(maxStale);
    if (!parsed.ok) throw badRequest(`Invalid max_stale value ${JSON.stringify(maxStale)}`);
    if (parsed.nanoseconds > 0n) stale = true;
  }
  if (stale && consistent) throw badRequest('Cannot specify ?stale with ?consistent, conflicting semantics.');
  if (consistent) return 'consistent';
  return stale ? 'stale' : 'default';
}

/**
 * parseWait plus Consul's blockingQuery clamping: `?index` > 0 makes the read block; `?wait` absent,
 * zero or negative means 5 minutes, above 10 minutes means 10, and up to wait/16 of jitter is added.
 */
export function parseBlocking(ctx: RequestContext): { readonly minIndex?: number; readonly waitMs?: number } {
  const { query, limits } = ctx;
  let waitMs = 0;
  const wait = query.get('wait');
  if (wait !== '') {
    const parsed = parseGoDuration(wait);
    if (!parsed.ok) throw badRequest('Invalid wait time');
    waitMs = Number(parsed.nanoseconds) / 1e6;
  }
  let minIndex = 0;
  const index = query.get('index');
  if (index !== '') {
    if (!/^[0-9]+$/.test(index) || BigInt(index) > 0xffff_ffff_ffff_ffffn) throw badRequest('Invalid index');
    // Above 2^53-1 no index of ours can pass it: block for the whole wait, as Consul would.
    minIndex = Math.min(Number(index), Number.MAX_SAFE_INTEGER);
  }
  if (minIndex === 0) return {};
  if (waitMs > limits.blockingMaxWaitMs) waitMs = limits.blockingMaxWaitMs;
  else if (waitMs <= 0) waitMs = limits.blockingDefaultWaitMs;
  const jitter = ctx.random() * (waitMs / limits.blockingJitterFraction);
  return { minIndex, waitMs: Math.max(1, Math.ceil(waitMs + jitter)) };
}

/**
 * ?dc for endpoints the server can route to another datacenter (KV, txn, snapshots, raft
 * configuration): '' for this one; the server answers "No path to datacenter" for an unknown one.
 */
export function datacenterOf(ctx: RequestContext): string {
  const dc = ctx.query.get('dc');
  return dc === ctx.api.datacenter ? '' : dc;
}

/** Everything Consul's parse() does for a read: dc, consistency, blocking. */
export function parseReadOptions(ctx: RequestContext): ReadOptions {
  const consistency = parseConsistency(ctx.query);
  return { consistency, ...parseBlocking(ctx), signal: ctx.signal, dc: datacenterOf(ctx) };
}

const effectiveConsistency: Readonly<Record<Consistency, string>> = {
  default: 'leader',
  consistent: 'consistent',
  stale: 'stale',
};

/** Consul's setMeta: X-Consul-Index (never 0), -LastContact (ms), -KnownLeader, -Effective-Consistency. */
export function metaHeaders(meta: ReadMeta): Record<string, string> {
  return {
    'X-Consul-Index': String(Math.max(1, meta.index)),
    'X-Consul-KnownLeader': meta.knownLeader ? 'true' : 'false',
    'X-Consul-LastContact': String(Math.max(0, Math.floor(meta.lastContactMs))),
    'X-Consul-Effective-Consistency': effectiveConsistency[meta.consistency],
  };
}

/** The body of Consul's conflictingFlags(): "Conflicting flags: <params.Encode()>\n", or undefined. */
export function conflictingFlags(query: Query, ...names: string[]): HttpError | undefined {
  const present = names.filter((n) => query.has(n));
  return present.length > 1 ? badRequest(`Conflicting flags: ${query.encode()}\n`) : undefined;
}
