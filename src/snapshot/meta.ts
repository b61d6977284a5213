// meta.json: Raft's SnapshotMeta as Consul writes it (Go's json.Encoder: compact, fields in struct order,
// HTML-escaped, one trailing newline), plus Conclave's own fields after Consul's. Go's json.Unmarshal
// ignores unknown fields, so Consul tools read our meta.json; ours are optional on read, because Consul's
// archives lack them.

import { utf8, utf8DecodeStrict } from '../base/index.js';
import type { Configuration } from '../raft/index.js';
import { ArchiveError } from './errors.js';

/** Raft's ServerSuffrage: 0 Voter, 1 Nonvoter, 2 Staging. */
export type ArchiveSuffrage = 0 | 1 | 2;

export interface ArchiveServer {
  readonly Suffrage: ArchiveSuffrage;
  readonly ID: string;
  readonly Address: string;
}

export interface ArchiveMeta {
  /** Raft's snapshot-metadata version: 1 (0 is read too). Not the state.bin format. */
  readonly Version: number;
  /** `<term>-<index>-<unix ms>`. */
  readonly ID: string;
  readonly Index: number;
  readonly Term: number;
  /** Base64 of the deprecated v0 peer list: a msgpack array of voter addresses (old-spec raw strings). */
  readonly Peers: string;
  readonly Configuration: { readonly Servers: readonly ArchiveServer[] };
  readonly ConfigurationIndex: number;
  /** state.bin's length in bytes. */
  readonly Size: number;
  /** Ours: who wrote the archive ("conclave"). Absent in Consul's archives. */
  readonly Producer?: string;
  readonly ProducerVersion?: string;
  /** Ours: the state.bin format version (`stateBinFormat`). */
  readonly FsmFormat?: number;
}

export const archiveProducer = 'conclave';
/** The state.bin format we write: Consul's record stream, KV tables only. Bump when what we write changes. */
export const stateBinFormat = 1;

export interface ArchiveMetaArgs {
  readonly index: number;
  readonly term: number;
  readonly configuration: Configuration;
  readonly configurationIndex: number;
  readonly size: number;
  readonly nowMs: number;
  readonly producerVersion: string;
}

export function archiveMeta(args: ArchiveMetaArgs): ArchiveMeta {
  const servers = args.configuration.servers.map((s): ArchiveServer => ({
    Suffrage: s.suffrage === 'voter' ? 0 : 1,
    ID: s.id,
    Address: s.address ?? '',
  }));
  return {
    Version: 1,
    ID: `${args.term}-${args.index}-${args.nowMs}`,
    Index: args.index,
    Term: args.term,
    Peers: Buffer.from(encodePeers(servers.filter((s) => s.Suffrage === 0).map((s) => s.Address))).toString('base64'),
    Configuration: { Servers: servers },
    ConfigurationIndex: args.configurationIndex,
    Size: args.size,
    Producer: archiveProducer,
    ProducerVersion: args.producerVersion,
    FsmFormat: stateBinFormat,
  };
}

/** A msgpack array of strings in the old spec Go's handle writes: raw (0xa0 / 0xda / 0xdb), never str8. */
function encodePeers(addresses: readonly string[]): Uint8Array {
  const parts: number[] = [];
  const n = addresses.length;
  if (n < 16) parts.push(0x90 | n);
  else if (n < 0x10000) parts.push(0xdc, n >> 8, n & 0xff);
  else parts.push(0xdd, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
  for (const a of addresses) {
    const b = utf8(a);
    const len = b.length;
    if (len < 32) parts.push(0xa0 | len);
    else if (len < 0x10000) parts.push(0xda, len >> 8, len & 0xff);
    else parts.push(0xdb, (len >>> 24) & 0xff, (len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff);
    parts.push(...b);
  }
  return Uint8Array.from(parts);
}

/** meta.json's exact bytes: Go's field order, compact, Go's HTML escaping, trailing newline. */
export function encodeMetaJson(meta: ArchiveMeta): Uint8Array {
  const ordered: Record<string, unknown> = {
    Version: meta.Version,
    ID: meta.ID,
    Index: meta.Index,
    Term: meta.Term,
    Peers: meta.Peers,
    Configuration: { Servers: meta.Configuration.Servers.map((s) => ({ Suffrage: s.Suffrage, ID: s.ID, Address: s.Address })) },
    ConfigurationIndex: meta.ConfigurationIndex,
    Size: meta.Size,
  };
  if (meta.Producer !== undefined) ordered['Producer'] = meta.Producer;
  if (meta.ProducerVersion !== undefined) ordered['ProducerVersion'] = meta.ProducerVersion;
  if (meta.FsmFormat !== undefined) ordered['FsmFormat'] = meta.FsmFormat;
  // Go's encoder escapes <, >, & and U+2028/2029 inside strings; they can appear nowhere else in JSON.
  const json = JSON.stringify(ordered).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return utf8(json + '\n');
}

const decodeFailed = 'failed to decode snapshot metadata';

function bad(detail: string): ArchiveError {
  return new ArchiveError('metadata', `${decodeFailed}: ${detail}`);
}

function uintField(o: Record<string, unknown>, name: string, where = ''): number {
  const v = o[name];
  if (v === undefined) throw bad(`field "${where}${name}" is missing`);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw bad(`field "${where}${name}" must be an integer in 0..2^53-1, got ${JSON.stringify(v)}`);
  }
  return v;
}

function stringField(o: Record<string, unknown>, name: string, where = ''): string {
  const v = o[name];
  if (v === undefined) throw bad(`field "${where}${name}" is missing`);
  if (typeof v !== 'string') throw bad(`field "${where}${name}" must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses meta.json (read whole, already hashed). Consul's fields are required (Go would zero missing ones;
 * a meta.json without them is not one Raft wrote); `Peers` and `Servers` may be null (Go's nil slices);
 * unknown fields are ignored, as Go does. Throws ArchiveError('metadata').
 */
export function parseMetaJson(bytes: Uint8Array): ArchiveMeta {
  const text = utf8DecodeStrict(bytes);
  if (text === undefined) throw bad('meta.json is not valid UTF-8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw bad(cause instanceof Error ? cause.message : String(cause));
  }
  if (!isObject(value)) throw bad('meta.json must be a JSON object');
  const version = uintField(value, 'Version');
  if (version > 1) throw bad(`unsupported snapshot version ${version} (Raft reads versions 0 and 1)`);
  const id = stringField(value, 'ID');
  const index = uintField(value, 'Index');
  const term = uintField(value, 'Term');
  const peersRaw = value['Peers'];
  if (peersRaw === undefined) throw bad('field "Peers" is missing');
  if (peersRaw !== null && (typeof peersRaw !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(peersRaw) || peersRaw.length % 4 !== 0)) {
    throw bad('field "Peers" must be base64 bytes');
  }
  const configuration = value['Configuration'];
  if (configuration === undefined) throw bad('field "Configuration" is missing');
  if (!isObject(configuration)) throw bad('field "Configuration" must be an object');
  const serversRaw = configuration['Servers'];
  if (serversRaw === undefined) throw bad('field "Configuration.Servers" is missing');
  if (serversRaw !== null && !Array.isArray(serversRaw)) throw bad('field "Configuration.Servers" must be an array');
  const servers: ArchiveServer[] = (serversRaw ?? []).map((s: unknown, i: number) => {
    const where = `Configuration.Servers[${i}].`;
    if (!isObject(s)) throw bad(`field "Configuration.Servers[${i}]" must be an object`);
    const suffrage = uintField(s, 'Suffrage', where);
    if (suffrage > 2) throw bad(`field "${where}Suffrage" must be 0, 1 or 2, got ${suffrage}`);
    return { Suffrage: suffrage as ArchiveSuffrage, ID: stringField(s, 'ID', where), Address: stringField(s, 'Address', where) };
  });
  const meta: ArchiveMeta = {
    Version: version,
    ID: id,
    Index: index,
    Term: term,
    Peers: peersRaw ?? '',
    Configuration: { Servers: servers },
    ConfigurationIndex: uintField(value, 'ConfigurationIndex'),
    Size: uintField(value, 'Size'),
  };
  const extra: { Producer?: string; ProducerVersion?: string; FsmFormat?: number } = {};
  if (value['Producer'] !== undefined) extra.Producer = stringField(value, 'Producer');
  if (value['ProducerVersion'] !== undefined) extra.ProducerVersion = stringField(value, 'ProducerVersion');
  if (value['FsmFormat'] !== undefined) extra.FsmFormat = uintField(value, 'FsmFormat');
  return { ...meta, ...extra };
}

/** "consul (version unknown)" for Consul's archives, "conclave 0.1.0" for ours. */
export function describeProducer(meta: ArchiveMeta | undefined): string {
  if (meta === undefined) return 'an unknown producer (meta.json unreadable)';
  if (meta.Producer === undefined) return 'consul (version unknown)';
  return `${meta.Producer} ${meta.ProducerVersion ?? '(version unknown)'}`;
}
