// Encoders and decoders for everything the storage layer puts on disk. Data is validated once, where it
// enters, by one decoder per boundary: LevelDB values and meta.json pass through here on the way in and
// come out as typed values or as a sentence saying what is wrong; past this file the types are trusted.
//
// LevelDB values are framed as [CRC-32 of the rest, u32 big-endian][msgpack]. LevelDB checksums its own
// blocks, but classic-level does not expose `paranoid_checks` / `verify_checksums`, so a flipped bit in a
// value could otherwise decode into a plausible entry with the wrong bytes. The CRC costs ~1 µs per KiB.

import { decode, encode } from '@msgpack/msgpack';
import * as zlib from 'node:zlib';

import type {
  Configuration,
  Entry,
  EntryKind,
  HardState,
  Server,
  SnapshotMeta,
  Suffrage,
} from '../raft/index.js';

/** A value read from disk: either valid and typed, or a description of what is wrong with it. */
export type Decoded<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly problem: string };

const valid = <T>(value: T): Decoded<T> => ({ ok: true, value });
const invalid = <T>(problem: string): Decoded<T> => ({ ok: false, problem });

// ---------------------------------------------------------------------------------------------
// Keys. Everything sorts by raw bytes. Meta keys (prefix 0x00) sort before entry keys (prefix 0x01);
// an entry key is the prefix then the index as 8 bytes big-endian, so byte order is index order.
// ---------------------------------------------------------------------------------------------

const metaPrefix = 0x00;
const entryPrefix = 0x01;
/** The on-disk format of the log store; written once when the store is created. */
export const formatKey = Buffer.from([metaPrefix, 0x01]);
export const hardStateKey = Buffer.from([metaPrefix, 0x02]);
export const baseKey = Buffer.from([metaPrefix, 0x03]);
/**
 * The first stored index, present only while trailing entries are kept at or below the base (format 2);
 * absent, the log starts right after its base.
 */
export const startKey = Buffer.from([metaPrefix, 0x04]);
export const entryKeyLength = 9;
/** Lower and upper bounds of all entry keys, for iterators. */
export const entryKeysFrom = Buffer.from([entryPrefix]);
export const entryKeysTo = Buffer.from([entryPrefix + 1]);

const twoTo32 = 2 ** 32;

export function entryKey(index: number): Buffer {
  const key = Buffer.allocUnsafe(entryKeyLength);
  key[0] = entryPrefix;
  key.writeUInt32BE(Math.floor(index / twoTo32), 1);
  key.writeUInt32BE(index >>> 0, 5);
  return key;
}

/** The index in an entry key, or undefined when `key` is not an entry key. */
export function indexOfEntryKey(key: Uint8Array): number | undefined {
  if (key.length !== entryKeyLength || key[0] !== entryPrefix) return undefined;
  const buf = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  const index = buf.readUInt32BE(1) * twoTo32 + buf.readUInt32BE(5);
  return Number.isSafeInteger(index) ? index : undefined;
}

export function describeKey(key: Uint8Array): string {
  return `0x${Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex')}`;
}

// ---------------------------------------------------------------------------------------------
// Framing.
// ---------------------------------------------------------------------------------------------

type Crc32 = (data: Uint8Array) => number;
// zlib.crc32 arrived in Node 20.15, which package.json now requires; the table-driven fallback is kept for older runtimes.
const nativeCrc32 = (zlib as { crc32?: Crc32 }).crc32;
let crcTable: Uint32Array | undefined;

function softwareCrc32(data: Uint8Array): number {
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of data) crc = crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

export const crc32: Crc32 = nativeCrc32 ?? softwareCrc32;

function frame(value: unknown): Buffer {
  const payload = encode(value);
  const out = Buffer.allocUnsafe(4 + payload.byteLength);
  out.writeUInt32BE(crc32(payload), 0);
  out.set(payload, 4);
  return out;
}

function unframe(bytes: Uint8Array): Decoded<unknown> {
  if (bytes.byteLength < 5) return invalid(`value is ${bytes.byteLength} bytes, shorter than any record`);
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const payload = buf.subarray(4);
  const stored = buf.readUInt32BE(0);
  const actual = crc32(payload);
  if (stored !== actual) {
    return invalid(`CRC-32 mismatch (stored ${hex32(stored)}, computed ${hex32(actual)})`);
  }
  try {
    return valid(decode(payload));
  } catch (cause) {
    return invalid(`msgpack does not decode: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

const hex32 = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

// ---------------------------------------------------------------------------------------------
// Field checks, shared by the msgpack and JSON decoders.
// ---------------------------------------------------------------------------------------------

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

const kindCodes: readonly EntryKind[] = ['normal', 'noop', 'config'];
const suffrageCodes: readonly Suffrage[] = ['voter', 'nonvoter'];

function checkServers(servers: readonly Server[]): string | undefined {
  const seen = new Set<string>();
  for (const s of servers) {
    if (s.id === '') return 'a server has an empty id';
    if (seen.has(s.id)) return `server id ${JSON.stringify(s.id)} appears twice`;
    seen.add(s.id);
  }
  return undefined;
}

/** What is wrong with `e` as an entry to store, or undefined. Used by encoders as an assertion. */
export function entryProblem(e: Entry): string | undefined {
  if (!isCount(e.index) || e.index === 0) return `index ${e.index} is not a positive safe integer`;
  if (!isCount(e.term)) return `term ${e.term} is not a non-negative safe integer`;
  if (!kindCodes.includes(e.kind)) return `kind ${String(e.kind)} is not normal, noop or config`;
  if (!(e.data instanceof Uint8Array)) return 'data is not a Uint8Array';
  if (e.kind !== 'normal' && e.data.byteLength !== 0) return `a ${e.kind} entry has ${e.data.byteLength} data bytes`;
  if ((e.kind === 'config') !== (e.config !== undefined)) return `a ${e.kind} entry ${e.config ? 'has' : 'lacks'} a config`;
  return e.config === undefined ? undefined : checkServers(e.config.servers);
}

/** What is wrong with `m` as a snapshot meta, or undefined. */
export function snapshotMetaProblem(m: SnapshotMeta): string | undefined {
  if (!isCount(m.index)) return `index ${m.index} is not a non-negative safe integer`;
  if (!isCount(m.term)) return `term ${m.term} is not a non-negative safe integer`;
  if (!isCount(m.configurationIndex)) return `configurationIndex ${m.configurationIndex} is not a non-negative safe integer`;
  if (m.configurationIndex > m.index) return `configurationIndex ${m.configurationIndex} is above index ${m.index}`;
  if (!Array.isArray(m.configuration?.servers)) return 'configuration.servers is not an array';
  return checkServers(m.configuration.servers);
}

export function hardStateProblem(h: HardState): string | undefined {
  if (!isCount(h.term)) return `term ${h.term} is not a non-negative safe integer`;
  if (typeof h.vote !== 'string') return 'vote is not a string';
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Configurations: msgpack [[id, suffrageCode, address?], ...]; JSON {servers: [{id, suffrage, address?}]}.
// ---------------------------------------------------------------------------------------------

const encodeConfiguration = (c: Configuration): unknown[] =>
  c.servers.map((s) => (s.address === undefined ? [s.id, suffrageCodes.indexOf(s.suffrage)] : [s.id, suffrageCodes.indexOf(s.suffrage), s.address]));

function decodePackedConfiguration(v: unknown): Decoded<Configuration> {
  if (!Array.isArray(v)) return invalid('configuration is not an array');
  const servers: Server[] = [];
  for (const item of v) {
    if (!Array.isArray(item) || (item.length !== 2 && item.length !== 3)) return invalid('a server is not an [id, suffrage, address?] tuple');
    const [id, code, address] = item as [unknown, unknown, unknown];
    const suffrage = typeof code === 'number' ? suffrageCodes[code] : undefined;
    if (typeof id !== 'string' || suffrage === undefined) return invalid(`server ${JSON.stringify(item)} is malformed`);
    if (address !== undefined && typeof address !== 'string') return invalid(`server ${JSON.stringify(id)} has a non-string address`);
    servers.push(address === undefined ? { id, suffrage } : { id, suffrage, address });
  }
  const problem = checkServers(servers);
  return problem === undefined ? valid({ servers }) : invalid(problem);
}

function decodeJsonConfiguration(v: unknown): Decoded<Configuration> {
  const servers = (v as { servers?: unknown } | null)?.servers;
  if (!Array.isArray(servers)) return invalid('configuration.servers is not an array');
  const out: Server[] = [];
  for (const s of servers as unknown[]) {
    const { id, suffrage, address } = (s ?? {}) as { id?: unknown; suffrage?: unknown; address?: unknown };
    if (typeof id !== 'string') return invalid(`server ${JSON.stringify(s)} has no string id`);
    if (!suffrageCodes.includes(suffrage as Suffrage)) return invalid(`server ${JSON.stringify(id)} has suffrage ${JSON.stringify(suffrage)}`);
    if (address !== undefined && typeof address !== 'string') return invalid(`server ${JSON.stringify(id)} has a non-string address`);
    out.push(address === undefined ? { id, suffrage: suffrage as Suffrage } : { id, suffrage: suffrage as Suffrage, address });
  }
  const problem = checkServers(out);
  return problem === undefined ? valid({ servers: out }) : invalid(problem);
}

// ---------------------------------------------------------------------------------------------
// Log store values.
// ---------------------------------------------------------------------------------------------

/**
 * Format 2 added the start record (trailing entries kept at or below the base). A format-1 store is a
 * format-2 store without one: it is read as is and its format record is rewritten to 2 at open, so an
 * older Conclave refuses it with a clear message rather than misreading the new key.
 */
export const logFormatVersion = 2;
export const readableLogFormats: readonly number[] = [1, 2];

export const encodeFormat = (version: number = logFormatVersion): Buffer => frame([version]);

export function decodeFormat(bytes: Uint8Array): Decoded<number> {
  const v = unframe(bytes);
  if (!v.ok) return v;
  if (!Array.isArray(v.value) || v.value.length !== 1 || !isCount(v.value[0])) return invalid('format record is not [version]');
  return valid(v.value[0]);
}

/** The start record: [first stored index]. */
export const encodeStart = (index: number): Buffer => frame([index]);

export function decodeStart(bytes: Uint8Array): Decoded<number> {
  const v = unframe(bytes);
  if (!v.ok) return v;
  if (!Array.isArray(v.value) || v.value.length !== 1 || !isCount(v.value[0]) || v.value[0] < 1) {
    return invalid('start record is not [index >= 1]');
  }
  return valid(v.value[0]);
}

/** Entry value: [index, term, kindCode, data, packedConfig | null]. The index repeats the key's. */
export const encodeEntry = (e: Entry): Buffer =>
  frame([e.index, e.term, kindCodes.indexOf(e.kind), e.data, e.config ? encodeConfiguration(e.config) : null]);

export function decodeEntry(bytes: Uint8Array): Decoded<Entry> {
  const v = unframe(bytes);
  if (!v.ok) return v;
  if (!Array.isArray(v.value) || v.value.length !== 5) return invalid('entry record is not a 5-element array');
  const [index, term, kindCode, data, packedConfig] = v.value as unknown[];
  const kind = typeof kindCode === 'number' ? kindCodes[kindCode] : undefined;
  if (kind === undefined) return invalid(`entry kind code ${JSON.stringify(kindCode)} is unknown`);
  if (!(data instanceof Uint8Array)) return invalid('entry data is not binary');
  let config: Configuration | undefined;
  if (packedConfig !== null) {
    const c = decodePackedConfiguration(packedConfig);
    if (!c.ok) return c;
    config = c.value;
  }
  // A plain view (msgpack hands back a Buffer slice when given a Buffer): callers get one type.
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const entry: Entry = config === undefined
    ? { index: index as number, term: term as number, kind, data: view }
    : { index: index as number, term: term as number, kind, data: view, config };
  const problem = entryProblem(entry);
  return problem === undefined ? valid(entry) : invalid(problem);
}

export const encodeHardState = (h: HardState): Buffer => frame([h.term, h.vote]);

export function decodeHardState(bytes: Uint8Array): Decoded<HardState> {
  const v = unframe(bytes);
  if (!v.ok) return v;
  if (!Array.isArray(v.value) || v.value.length !== 2) return invalid('hard state record is not [term, vote]');
  const h = { term: v.value[0] as number, vote: v.value[1] as string };
  const problem = hardStateProblem(h);
  return problem === undefined ? valid(h) : invalid(problem);
}

/** Log base value: [index, term, packedConfiguration, configurationIndex]. */
export const encodeBase = (m: SnapshotMeta): Buffer =>
  frame([m.index, m.term, encodeConfiguration(m.configuration), m.configurationIndex]);

export function decodeBase(bytes: Uint8Array): Decoded<SnapshotMeta> {
  const v = unframe(bytes);
  if (!v.ok) return v;
  if (!Array.isArray(v.value) || v.value.length !== 4) return invalid('log base record is not a 4-element array');
  const [index, term, packed, configurationIndex] = v.value as unknown[];
  const configuration = decodePackedConfiguration(packed);
  if (!configuration.ok) return configuration;
  const meta = {
    index: index as number,
    term: term as number,
    configuration: configuration.value,
    configurationIndex: configurationIndex as number,
  };
  const problem = snapshotMetaProblem(meta);
  return problem === undefined ? valid(meta) : invalid(problem);
}

// ---------------------------------------------------------------------------------------------
// Snapshot store meta.json.
// ---------------------------------------------------------------------------------------------

export const snapshotFormatVersion = 1;

/** The contents of a snapshot's meta.json: the meta as given plus what verifies state.bin. */
export interface SnapshotMetaFile {
  readonly format: number;
  readonly id: string;
  readonly meta: SnapshotMeta;
  /** Bytes in state.bin. */
  readonly size: number;
  /** SHA-256 of state.bin, lower-case hex. */
  readonly sha256: string;
}

export function encodeSnapshotMetaFile(f: SnapshotMetaFile): string {
  const { meta } = f;
  const json = {
    format: f.format,
    id: f.id,
    index: meta.index,
    term: meta.term,
    configuration: {
      servers: meta.configuration.servers.map((s) => (s.address === undefined ? { id: s.id, suffrage: s.suffrage } : { id: s.id, suffrage: s.suffrage, address: s.address })),
    },
    configurationIndex: meta.configurationIndex,
    size: f.size,
    sha256: f.sha256,
  };
  return `${JSON.stringify(json, null, 2)}\n`;
}

export function decodeSnapshotMetaFile(text: string): Decoded<SnapshotMetaFile> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    return invalid(`not JSON: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return invalid('not a JSON object');
  const o = raw as Record<string, unknown>;
  if (o.format !== snapshotFormatVersion) return invalid(`format is ${JSON.stringify(o.format)}, expected ${snapshotFormatVersion}`);
  if (typeof o.id !== 'string') return invalid('id is not a string');
  if (!isCount(o.size)) return invalid(`size ${JSON.stringify(o.size)} is not a non-negative safe integer`);
  if (typeof o.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(o.sha256)) return invalid('sha256 is not 64 lower-case hex digits');
  const configuration = decodeJsonConfiguration(o.configuration);
  if (!configuration.ok) return configuration;
  const meta = {
    index: o.index as number,
    term: o.term as number,
    configuration: configuration.value,
    configurationIndex: o.configurationIndex as number,
  };
  const problem = snapshotMetaProblem(meta);
  if (problem !== undefined) return invalid(problem);
  return valid({ format: o.format, id: o.id, meta, size: o.size, sha256: o.sha256 });
}

export function sameConfiguration(a: Configuration, b: Configuration): boolean {
  if (a.servers.length !== b.servers.length) return false;
  const byId = new Map(a.servers.map((s) => [s.id, s.suffrage]));
  return b.servers.every((s) => byId.get(s.id) === s.suffrage);
}
