// The fast scan of KVS/Tombstone bodies (src/snapshot/record-scan.ts) against the general path
// (measure, decode, parseKvsRecord): on every body, valid or mutated, the scan either declines or
// accepts exactly what the general path accepts, read the same way. And it does accept every body our
// own encoder writes, marking those canonical, or the fast path would silently never run.

import test from 'ava';
import { decode, encode } from '@msgpack/msgpack';
import { encodeKvsRecord, measureMsgpack, parseKvsRecord, wireUint, withModifyIndex, type DirEntry } from '../../src/snapshot/index.js';
import { scanDirEntry } from '../../src/snapshot/record-scan.js';
import { prng } from '../support/prng.js';

const maxBytes = 1 << 20;


const boundaries = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 40, Number.MAX_SAFE_INTEGER];
/** Flags take Consul's whole uint64 range: a bigint from 2^53 (Uint64). */
const flagBoundaries: ReadonlyArray<number | bigint> = [...boundaries, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n];

/** An index for withModifyIndex: any width of msgpack's unsigned encodings. */
function pickIndex(next: () => number): number {
  const b = boundaries[next() % boundaries.length] as number;
  return next() % 2 === 0 || b === 0 ? b : b - 1;
}

function entryOf(next: () => number): DirEntry {
  const pick = <T>(list: readonly T[]): T => list[next() % list.length] as T;
  const keyBase = pick(['a', 'app/config', 'ключ/значение', 'k'.repeat(31), 'k'.repeat(32), 'x'.repeat(300), 'emoji/😀']);
  const valueLength = next() % 50 === 0 ? 70000 : pick([0, 1, 31, 32, 255, 256, 4000]);
  const value = new Uint8Array(valueLength);
  for (let i = 0; i < valueLength; i++) value[i] = next() & 0xff;
  const create = pick(boundaries);
  return {
    Key: `${keyBase}${next() % 100}`,
    Flags: pick(flagBoundaries),
    Value: value,
    Session: pick(['', 'adf4238a-882b-9ddc-4a9d-5b6758e4159e']),
    LockIndex: pick(boundaries),
    CreateIndex: create,
    ModifyIndex: Math.max(create, pick(boundaries)),
  };
}

/** The body as Consul's encoder might write it: old-spec strings, another order, omitted or extra fields. */
function consulStyle(entry: DirEntry, next: () => number): Uint8Array {
  const fields: Array<[string, unknown]> = [
    ['LockIndex', entry.LockIndex], ['Key', entry.Key], ['Flags', entry.Flags],
    ['Value', entry.Value.length === 0 && next() % 2 === 0 ? null : Buffer.from(entry.Value).toString('latin1')],
    ['Session', entry.Session], ['CreateIndex', entry.CreateIndex], ['ModifyIndex', entry.ModifyIndex],
  ];
  if (entry.Session === '' && next() % 2 === 0) fields.splice(4, 1);
  if (next() % 3 === 0) fields.push(['Namespace', 'default']);
  if (next() % 3 === 0) fields.reverse();
  // As Go writes integers: the smallest unsigned encoding (uint64 from 2^32, never a float).
  return encode(Object.fromEntries(fields.map(([k, v]) => [k, typeof v === 'number' ? wireUint(v) : v])), { useBigInt64: true });
}

function mutate(body: Uint8Array, next: () => number): Uint8Array {
  const out = Uint8Array.from(body);
  switch (next() % 4) {
    case 0: {
      const at = next() % out.length;
      out[at] = (out[at] as number) ^ (1 << (next() % 8));
      return out;
    }
    case 1:
      return out.subarray(0, next() % out.length);
    case 2: {
      const at = next() % (out.length + 1);
      return Uint8Array.from([...out.subarray(0, at), next() & 0xff, ...out.subarray(at)]);
    }
    default: {
      const at = next() % out.length;
      out[at] = next() & 0xff;
      return out;
    }
  }
}

/** Entries equal, values compared as bytes (ava's deepEqual is slow on large byte arrays). */
function sameEntry(a: DirEntry, b: DirEntry): boolean {
  return a.Key === b.Key && a.Flags === b.Flags && a.Session === b.Session && a.LockIndex === b.LockIndex &&
    a.CreateIndex === b.CreateIndex && a.ModifyIndex === b.ModifyIndex && Buffer.from(a.Value).equals(b.Value);
}

const show = (e: DirEntry): string => JSON.stringify({ ...e, Flags: String(e.Flags), Value: Buffer.from(e.Value).toString('hex').slice(0, 40) });

/** What the general path makes of a body: the framed length and the parsed entry, or why it refuses. */
function general(body: Uint8Array): { end: number; entry: DirEntry } | undefined {
  const frame = measureMsgpack(body, 0, body.length, maxBytes);
  if (frame.kind !== 'complete') return undefined;
  let decoded: unknown;
  try {
    decoded = decode(body.subarray(0, frame.end), { rawStrings: true, useBigInt64: true });
  } catch {
    return undefined;
  }
  const parsed = parseKvsRecord(decoded);
  return parsed.ok ? { end: frame.end, entry: parsed.value } : undefined;
}

test('the scan accepts only what the general path accepts, reads it the same way, and marks only our own bytes canonical', (t) => {
  const next = prng(20261201);
  let accepted = 0;
  let declinedValid = 0;
  let mutatedAccepted = 0;
  let bigFlagsAccepted = 0;
  const problems: string[] = [];
  for (let round = 0; round < 3000 && problems.length < 5; round++) {
    const entry = entryOf(next);
    const ours = encodeKvsRecord(entry);
    // Every body our encoder writes is scanned, canonical, with ModifyIndex as its last field.
    const own = scanDirEntry(ours, 0, ours.length, maxBytes);
    if (own === undefined || own.canonicalModifyIndexAt < 0 || !sameEntry(own.entry, entry) || own.end !== ours.length) {
      problems.push(`our own body for ${show(entry)}: ${own === undefined ? 'declined' : `read as ${show(own.entry)}, end ${own.end}, canonical at ${own.canonicalModifyIndexAt}`}`);
      continue;
    }
    const raised = pickIndex(next);
    if (!Buffer.from(withModifyIndex(ours, own.canonicalModifyIndexAt, raised)).equals(encodeKvsRecord({ ...entry, ModifyIndex: raised }))) {
      problems.push(`withModifyIndex of ${show(entry)} differs from encodeKvsRecord`);
    }

    const candidates = [consulStyle(entry, next), mutate(ours, next), mutate(consulStyle(entry, next), next)];
    // Followed by the next record's bytes, as in a stream: the scan must stop at the map's end.
    candidates.push(Uint8Array.from([...ours, 2, 0x87, 0xa1]));
    for (const [i, body] of candidates.entries()) {
      const fast = scanDirEntry(body, 0, body.length, maxBytes);
      const slow = general(body);
      const hex = Buffer.from(body).toString('hex').slice(0, 120);
      if (fast === undefined) {
        if (slow !== undefined && i === 0) declinedValid += 1;
        continue;
      }
      if (slow === undefined) {
        problems.push(`accepted a body the general path refuses: ${hex}`);
        continue;
      }
      accepted += 1;
      if (typeof fast.entry.Flags === 'bigint') bigFlagsAccepted += 1;
      if (i === 1 || i === 2) mutatedAccepted += 1;
      if (fast.end !== slow.end || !sameEntry(fast.entry, slow.entry)) problems.push(`read ${hex} as ${show(fast.entry)} (end ${fast.end}), the general path as ${show(slow.entry)} (end ${slow.end})`);
      if (!Buffer.from(fast.keyBytes).equals(Buffer.from(fast.entry.Key, 'utf8'))) problems.push(`keyBytes of ${hex} are not its Key's UTF-8`);
      const isOurs = Buffer.from(encodeKvsRecord(fast.entry)).equals(body.subarray(0, fast.end));
      if ((fast.canonicalModifyIndexAt >= 0) !== isOurs) problems.push(`${hex}: canonical ${fast.canonicalModifyIndexAt >= 0}, but encodeKvsRecord ${isOurs ? 'writes' : 'does not write'} these bytes`);
    }
  }
  t.deepEqual(problems, []);
  // The comparison ran on many accepted bodies, mutated ones among them, and Consul-style bodies
  // without extra fields took the fast path too.
  t.true(accepted > 3000, `accepted ${accepted}`);
  t.true(mutatedAccepted > 100, `mutated bodies accepted ${mutatedAccepted}`);
  // Flags from 2^53 (bigints) were among them, compared like every other field.
  t.true(bigFlagsAccepted > 500, `bodies with Flags from 2^53 accepted ${bigFlagsAccepted}`);
  t.true(declinedValid < 2000, `valid Consul-style bodies declined ${declinedValid}`);
});

test('the scan declines what it must leave to the general path', (t) => {
  const entry: DirEntry = { Key: 'k', Flags: 0, Value: Uint8Array.of(1), Session: '', LockIndex: 0, CreateIndex: 1, ModifyIndex: 2 };
  const with_ = (extra: Record<string, unknown>): Uint8Array =>
    encode({ LockIndex: 0, Key: 'k', Flags: 0, Value: Uint8Array.of(1), Session: '', CreateIndex: 1, ModifyIndex: 2, ...extra }, { useBigInt64: true });
  t.truthy(scanDirEntry(with_({}), 0, with_({}).length, maxBytes));
  const declined: Array<[string, Uint8Array]> = [
    ['an empty Key', with_({ Key: '' })],
    ['a nil Key', with_({ Key: null })],
    ['a negative index', with_({ ModifyIndex: -1 })],
    ['a float index', with_({ ModifyIndex: 1.5 })],
    ['an index above 2^53-1', with_({ ModifyIndex: 2n ** 60n })],
    ['a LockIndex above 2^53-1', with_({ LockIndex: 2n ** 64n - 1n })],
    ['a negative Flags', with_({ Flags: -(2n ** 63n) })],
    ['a float Flags', with_({ Flags: 2 ** 64 })],
    ['a nested value', with_({ Value: { a: 1 } })],
    ['an unknown field', with_({ Extra: 1 })],
    ['a missing required field', encode({ Key: 'k', Flags: 0, CreateIndex: 1, ModifyIndex: 2 })],
    ['invalid UTF-8 in Key', Uint8Array.from([...encode({ LockIndex: 0, Flags: 0, CreateIndex: 1, ModifyIndex: 2 }).subarray(0, 0), 0x85, 0xa9, ...Buffer.from('LockIndex'), 0, 0xa3, ...Buffer.from('Key'), 0xa1, 0xff, 0xa5, ...Buffer.from('Flags'), 0, 0xab, ...Buffer.from('CreateIndex'), 1, 0xab, ...Buffer.from('ModifyIndex'), 2])],
    ['not a map', encode([1, 2])],
  ];
  for (const [what, body] of declined) t.is(scanDirEntry(body, 0, body.length, maxBytes), undefined, what);
  // A body cut short, or longer than the limit, is declined (the general path says which).
  const ours = encodeKvsRecord(entry);
  for (let cut = 0; cut < ours.length; cut++) t.is(scanDirEntry(ours, 0, cut, maxBytes), undefined, `cut at ${cut}`);
  t.is(scanDirEntry(ours, 0, ours.length, ours.length - 1), undefined);
  t.truthy(scanDirEntry(ours, 0, ours.length, ours.length));
});

test('Flags at 0, 2^53-1, 2^53, 2^53+1, 2^63 and 2^64-1: written as msgpack uint64, read exactly by both paths', (t) => {
  const cases: Array<[number | bigint, string]> = [
    [0, '00'],
    [Number.MAX_SAFE_INTEGER, 'cf001fffffffffffff'],
    [2n ** 53n, 'cf0020000000000000'],
    [2n ** 53n + 1n, 'cf0020000000000001'],
    [2n ** 63n, 'cf8000000000000000'],
    [2n ** 64n - 1n, 'cfffffffffffffffff'],
  ];
  for (const [flags, wire] of cases) {
    const entry: DirEntry = { Key: 'k', Flags: flags, Value: Uint8Array.of(1), Session: '', LockIndex: 2 ** 40, CreateIndex: 1, ModifyIndex: 2 ** 33 };
    const body = encodeKvsRecord(entry);
    const hex = Buffer.from(body).toString('hex');
    t.true(hex.includes(`a5466c616773${wire}`), `${String(flags)}: ${hex}`);
    // The other integers are unsigned integers as before (2^40 and 2^33 as uint64, not as floats).
    t.true(hex.startsWith('87a94c6f636b496e646578cf0000010000000000'), hex);
    t.true(hex.endsWith('ab4d6f64696679496e646578cf0000000200000000'), hex);
    const slow = general(body);
    const fast = scanDirEntry(body, 0, body.length, maxBytes);
    t.truthy(slow);
    t.truthy(fast);
    t.is(slow?.entry.Flags, flags);
    t.is(fast?.entry.Flags, flags);
    t.true(fast !== undefined && fast.canonicalModifyIndexAt >= 0, 'our own bytes are canonical');
    // Raising the ModifyIndex keeps the bytes encodeKvsRecord writes.
    if (fast !== undefined) t.deepEqual(Buffer.from(withModifyIndex(body, fast.canonicalModifyIndexAt, 2 ** 50)), Buffer.from(encodeKvsRecord({ ...entry, ModifyIndex: 2 ** 50 })));
  }
  // A uint64 below 2^53 in a wide encoding reads as a number, so Flags compare with ===.
  const wide = encode({ LockIndex: 0, Key: 'k', Flags: 5n, Value: null, Session: '', CreateIndex: 1, ModifyIndex: 1 }, { useBigInt64: true });
  t.is(general(wide)?.entry.Flags, 5);
  t.is(scanDirEntry(wide, 0, wide.length, maxBytes)?.entry.Flags, 5);
  // Beyond uint64 (msgpack has no wider integer): a negative int64 or a float is refused, with the field named.
  for (const bad of [-(2n ** 63n), -1, 2 ** 64, 1.5]) {
    const body = encode({ LockIndex: 0, Key: 'k', Flags: bad, Value: null, Session: '', CreateIndex: 1, ModifyIndex: 1 }, { useBigInt64: true });
    const parsed = parseKvsRecord(decode(body, { rawStrings: true, useBigInt64: true }));
    t.false(parsed.ok, String(bad));
    if (!parsed.ok) t.is(parsed.field, 'Flags');
  }
});
