// `conclave kv get|put|delete|export|import`: Consul's `consul kv` (command/kv/*), over the agent's
// /v1/kv and /v1/txn endpoints, with Consul's flags, output lines and error texts.
//
//   get [-base64] [-detailed] [-keys] [-recurse] [-separator=/] [KEY_OR_PREFIX]
//   put [-acquire] [-base64] [-cas] [-flags=N] [-modify-index=N] [-release] [-session=ID] KEY [DATA]
//       DATA is the value, "@path" (a file's contents) or "-" (stdin)
//   delete [-cas] [-modify-index=N] [-recurse] KEY_OR_PREFIX
//   export [PREFIX]          JSON array of {key, flags, value (base64)}, as Consul writes it
//   import [-prefix=P] [DATA] DATA is the JSON of an export, "@path" or "-" (stdin; also when absent)
//
// Exit status 0 on success, 1 on any error (Consul's).

import { readFile } from 'node:fs/promises';
import { lastFlag, type FlagSpec, type ParsedFlags } from '../config/index.js';
import { escapeKey, openCommand, parseKvEntries, type ApiClient, type WireEntry } from './api-client.js';
import type { TextOutput } from './agent.js';
import { errorText, httpClientFlags, serverFlags, type Env } from './snapshot/http-client.js';

export interface KvDeps {
  readonly stdout: TextOutput;
  readonly stderr: TextOutput;
  readonly env?: Env;
  /** Reads standard input whole (DATA "-"). Default: process.stdin. */
  readonly readStdin?: () => Promise<Buffer>;
}

const requestMs = 60_000;
/** An import goes in transactions of at most this many keys (Consul's txn allows 64 to 128)... */
const importBatch = 64;
/** ...and at most this many bytes of base64 values and keys (the agent's txn body limit is 512 KiB). */
const importBatchBytes = 256 * 1024;
const maxUint64 = (1n << 64n) - 1n;

const common: readonly FlagSpec[] = [...httpClientFlags, ...serverFlags];
const bool = (name: string, usage: string): FlagSpec => ({ name, kind: 'bool', usage, defaultText: 'false' });

const subcommands: Readonly<Record<string, { readonly usage: string; readonly flags: readonly FlagSpec[] }>> = {
  get: {
    usage: `Usage: conclave kv get [options] [KEY_OR_PREFIX]

  Retrieves the value from the key/value store at the given key name. If no
  key exists with that name, an error is returned. With -recurse, every key
  under the prefix is printed as "key:value"; with -keys, only key names.`,
    flags: [
      ...common,
      bool('base64', 'Base64 encode the value.'),
      bool('detailed', 'Provide additional metadata about the key in addition to the value such as the ModifyIndex and any flags that may have been set on the key.'),
      bool('keys', 'List keys which start with the given prefix, but not their values.'),
      bool('recurse', 'Recursively look at all keys prefixed with the given path.'),
      { name: 'separator', kind: 'string', valueName: 'string', usage: 'String to use as a separator between keys (only with -keys).', defaultText: '"/"' },
    ],
  },
  put: {
    usage: `Usage: conclave kv put [options] KEY [DATA]

  Writes the data to the given path in the key-value store. DATA may be the
  value itself, "@path" to read it from a file, or "-" to read stdin.`,
    flags: [
      ...common,
      bool('acquire', 'Obtain a lock on the key. If the key does not exist, this will create the key and obtain the lock. The session must already exist and be specified via -session.'),
      bool('base64', 'Treat the data as base 64 encoded.'),
      bool('cas', 'Perform a Check-And-Set operation. Specifying this value also requires the -modify-index flag to be set.'),
      { name: 'flags', kind: 'string', valueName: 'uint', usage: 'Unsigned integer value to assign to this key-value pair.', defaultText: '0' },
      { name: 'modify-index', kind: 'string', valueName: 'uint', usage: 'Unsigned integer representing the ModifyIndex of the key. This is used in combination with the -cas flag.', defaultText: '0' },
      bool('release', 'Forfeit the lock on the key at the given path. This requires the -session flag to be set.'),
      { name: 'session', kind: 'string', valueName: 'string', usage: 'User-defined identifer for this session as a string. This is commonly used with the -acquire and -release operations.' },
    ],
  },
  delete: {
    usage: `Usage: conclave kv delete [options] KEY_OR_PREFIX

  Removes the value from the key-value store at the given path. With
  -recurse, removes every key under the prefix.`,
    flags: [
      ...common,
      bool('cas', 'Perform a Check-And-Set operation. Specifying this value also requires the -modify-index flag to be set.'),
      { name: 'modify-index', kind: 'string', valueName: 'uint', usage: 'Unsigned integer representing the ModifyIndex of the key. This is used in combination with the -cas flag.', defaultText: '0' },
      bool('recurse', 'Recursively delete all keys with the path.'),
    ],
  },
  export: {
    usage: `Usage: conclave kv export [options] [PREFIX]

  Retrieves key-value pairs for the given prefix from the store, and writes
  a JSON representation to stdout, which can be given to "conclave kv import".`,
    flags: common,
  },
  import: {
    usage: `Usage: conclave kv import [options] [DATA]

  Imports key-value pairs to the store from the JSON of "conclave kv export".
  DATA may be the JSON itself, "@path" to read it from a file, or "-" (or
  nothing) to read stdin.`,
    flags: [...common, { name: 'prefix', kind: 'string', valueName: 'string', usage: 'Key prefix for imported data.', defaultText: '""' }],
  },
};

export function kvHelp(): string {
  return `Usage: conclave kv <subcommand> [options] [args]

  Interacts with the key-value store: get, put, delete, export and import
  keys, as consul kv does. Run "conclave kv <subcommand> -h" for details.

Subcommands:
    delete    Removes data from the KV store
    export    Exports a tree from the KV store as JSON
    get       Retrieves or lists data from the KV store
    import    Imports a tree stored as JSON to the KV store
    put       Sets or updates data in the KV store
`;
}

export async function runKvCommand(args: readonly string[], deps: KvDeps): Promise<number> {
  const sub = args[0];
  if (sub === undefined || sub === '-h' || sub === '-help' || sub === '--help') {
    (sub === undefined ? deps.stderr : deps.stdout).write(kvHelp());
    return sub === undefined ? 1 : 0;
  }
  const spec = subcommands[sub];
  if (spec === undefined) {
    deps.stderr.write(`Unknown subcommand: ${JSON.stringify(sub)} (subcommands: delete, export, get, import, put)\n\n${kvHelp()}`);
    return 1;
  }
  const opened = await openCommand(spec.flags, args.slice(1), `kv ${sub}`, spec.usage, deps);
  if (!opened.ok) return opened.code;
  const { flags, client, fail } = opened;
  try {
    switch (sub) {
      case 'get': return await get(client, flags, deps, fail);
      case 'put': return await put(client, flags, deps, fail);
      case 'delete': return await remove(client, flags, deps, fail);
      case 'export': return await exportTree(client, flags, deps, fail);
      default: return await importTree(client, flags, deps, fail);
    }
  } finally {
    client.close();
  }
}

type Fail = (line: string) => number;

function oneArgument(flags: ParsedFlags, fail: Fail, what: string, required: boolean): string | number {
  if (flags.args.length > 1) return fail(`Too many arguments (expected 1, got ${flags.args.length})`);
  const arg = flags.args[0];
  if (arg === undefined) return required ? fail(`Error! Missing ${what} argument`) : '';
  return arg;
}

function stale(flags: ParsedFlags): string {
  return lastFlag(flags, 'stale') === true ? 'stale=' : '';
}

function query(...parts: string[]): string {
  const p = parts.filter((x) => x !== '');
  return p.length === 0 ? '' : `?${p.join('&')}`;
}

async function get(client: ApiClient, flags: ParsedFlags, deps: KvDeps, fail: Fail): Promise<number> {
  const recurse = lastFlag(flags, 'recurse') === true;
  const keysOnly = lastFlag(flags, 'keys') === true;
  const arg = oneArgument(flags, fail, 'KEY', !(recurse || keysOnly));
  if (typeof arg === 'number') return arg;
  const key = arg.replace(/^\/+/, '');
  const b64 = lastFlag(flags, 'base64') === true;
  const detailed = lastFlag(flags, 'detailed') === true;
  const out = (s: string): void => void deps.stdout.write(s);
  const value = (e: WireEntry): string => (b64 ? e.Value ?? '' : Buffer.from(e.Value ?? '', 'base64').toString('utf8'));
  try {
    if (keysOnly) {
      const sep = lastFlag(flags, 'separator');
      const separator = typeof sep === 'string' ? sep : '/';
      const r = await client.request({ method: 'GET', path: `/v1/kv/${escapeKey(key)}${query('keys=', `separator=${encodeURIComponent(separator)}`, stale(flags))}`, timeoutMs: requestMs, accept: [404] });
      if (r.status === 200) for (const k of JSON.parse(r.body.toString('utf8')) as string[]) out(`${k}\n`);
      return 0;
    }
    const r = await client.request({ method: 'GET', path: `/v1/kv/${escapeKey(key)}${query(recurse ? 'recurse=' : '', stale(flags))}`, timeoutMs: requestMs, accept: [404] });
    if (r.status === 404) return recurse ? 0 : fail(`Error! No key exists at: ${key}`);
    const entries = parseKvEntries(r.body);
    if (!recurse) {
      const e = entries[0] as WireEntry;
      if (detailed) out(details(e, value(e)));
      else out(`${value(e)}\n`);
      return 0;
    }
    for (const e of entries) {
      if (detailed) out(`${details(e, value(e))}\n`);
      else out(`${e.Key}:${value(e)}\n`);
    }
    return 0;
  } catch (err) {
    return fail(`Error querying Conclave agent: ${errorText(err)}`);
  }
}

/** Consul's -detailed block: tab-aligned fields in alphabetical order, "-" for no session. */
function details(e: WireEntry, value: string): string {
  const rows: Array<[string, string]> = [
    ['CreateIndex', String(e.CreateIndex)], ['Flags', e.Flags], ['Key', e.Key], ['LockIndex', String(e.LockIndex)],
    ['ModifyIndex', String(e.ModifyIndex)], ['Session', e.Session === undefined || e.Session === '' ? '-' : e.Session], ['Value', value],
  ];
  return rows.map(([k, v]) => `${k.padEnd(17)}${v}\n`).join('');
}

async function dataArgument(arg: string, deps: KvDeps): Promise<Buffer> {
  if (arg === '-') return deps.readStdin !== undefined ? deps.readStdin() : readAll(process.stdin);
  if (arg.startsWith('@')) return readFile(arg.slice(1));
  return Buffer.from(arg, 'utf8');
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return Buffer.concat(chunks);
}

function uintFlag(flags: ParsedFlags, name: string): string | undefined {
  const v = lastFlag(flags, name);
  return typeof v === 'string' ? v : undefined;
}

async function put(client: ApiClient, flags: ParsedFlags, deps: KvDeps, fail: Fail): Promise<number> {
  if (flags.args.length > 2) return fail(`Too many arguments (expected 1 or 2, got ${flags.args.length})`);
  const [rawKey, data] = flags.args;
  if (rawKey === undefined) return fail('Error! Missing KEY argument');
  const key = rawKey.replace(/^\/+/, '');
  const cas = lastFlag(flags, 'cas') === true;
  const acquire = lastFlag(flags, 'acquire') === true;
  const release = lastFlag(flags, 'release') === true;
  const session = lastFlag(flags, 'session');
  const modifyIndex = uintFlag(flags, 'modify-index');
  const flagValue = uintFlag(flags, 'flags');
  for (const [name, v] of [['flags', flagValue], ['modify-index', modifyIndex]] as const) {
    if (v !== undefined && !/^\d+$/.test(v)) return fail(`invalid value "${v}" for flag -${name}: must be an unsigned integer`);
  }
  if (cas && modifyIndex === undefined) return fail('Must specify -modify-index with -cas!');
  if ((acquire || release) && (typeof session !== 'string' || session === '')) return fail('Error! Missing -session (required with -acquire and -release)');
  let body: Buffer;
  try {
    body = data === undefined ? Buffer.alloc(0) : await dataArgument(data, deps);
  } catch (err) {
    return fail(`Error! Failed to read data: ${errorText(err)}`);
  }
  if (lastFlag(flags, 'base64') === true) {
    const text = body.toString('utf8').trim();
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return fail('Error! Cannot base 64 decode data: illegal base64 data');
    body = Buffer.from(text, 'base64');
  }
  const params = [
    flagValue !== undefined ? `flags=${flagValue}` : '',
    cas ? `cas=${modifyIndex}` : '',
    acquire ? `acquire=${encodeURIComponent(String(session))}` : '',
    release ? `release=${encodeURIComponent(String(session))}` : '',
  ];
  try {
    const r = await client.request({ method: 'PUT', path: `/v1/kv/${escapeKey(key)}${query(...params)}`, body, timeoutMs: requestMs });
    const ok = JSON.parse(r.body.toString('utf8')) === true;
    if (acquire) return ok ? done(deps, `Success! Lock acquired on: ${key}`) : fail(`Error! Did not acquire lock`);
    if (release) return ok ? done(deps, `Success! Lock released on: ${key}`) : fail(`Error! Did not release lock`);
    if (cas && !ok) return fail(`Error! Did not write to ${key}: CAS failed`);
    return done(deps, `Success! Data written to: ${key}`);
  } catch (err) {
    return fail(`Error! Failed writing data: ${errorText(err)}`);
  }
}

function done(deps: KvDeps, line: string): number {
  deps.stdout.write(`${line}\n`);
  return 0;
}

async function remove(client: ApiClient, flags: ParsedFlags, deps: KvDeps, fail: Fail): Promise<number> {
  const recurse = lastFlag(flags, 'recurse') === true;
  const arg = oneArgument(flags, fail, 'KEY', !recurse);
  if (typeof arg === 'number') return arg;
  const key = arg.replace(/^\/+/, '');
  const cas = lastFlag(flags, 'cas') === true;
  const modifyIndex = uintFlag(flags, 'modify-index');
  if (cas && modifyIndex === undefined) return fail('Must specify -modify-index with -cas!');
  if (cas && recurse) return fail('Cannot specify both -cas and -recurse!');
  if (modifyIndex !== undefined && !/^\d+$/.test(modifyIndex)) return fail(`invalid value "${modifyIndex}" for flag -modify-index: must be an unsigned integer`);
  try {
    const r = await client.request({ method: 'DELETE', path: `/v1/kv/${escapeKey(key)}${query(recurse ? 'recurse=' : '', cas ? `cas=${modifyIndex}` : '')}`, timeoutMs: requestMs });
    if (cas && JSON.parse(r.body.toString('utf8')) !== true) return fail(`Error! Did not delete key ${key}: CAS failed`);
    return done(deps, recurse ? `Success! Deleted keys with prefix: ${key}` : `Success! Deleted key: ${key}`);
  } catch (err) {
    return fail(`Error! Did not delete key ${key}: ${errorText(err)}`);
  }
}

/** Consul's kvExportEntry: {key, flags, value} with the value base64. */
interface ExportEntry {
  readonly key: string;
  readonly flags: string;
  readonly value: string;
}

async function exportTree(client: ApiClient, flags: ParsedFlags, deps: KvDeps, fail: Fail): Promise<number> {
  const arg = oneArgument(flags, fail, 'PREFIX', false);
  if (typeof arg === 'number') return arg;
  const prefix = arg.replace(/^\/+/, '');
  try {
    const r = await client.request({ method: 'GET', path: `/v1/kv/${escapeKey(prefix)}${query('recurse=', stale(flags))}`, timeoutMs: requestMs, accept: [404] });
    const entries = r.status === 404 ? [] : parseKvEntries(r.body);
    const exported: ExportEntry[] = entries.map((e) => ({ key: e.Key, flags: e.Flags, value: e.Value ?? '' }));
    // Go's json.MarshalIndent(..., "", "\t"); flags are written as exact numbers.
    const text = JSON.stringify(exported, null, '\t').replace(/"flags": "(\d+)"/g, '"flags": $1');
    deps.stdout.write(`${text}\n`);
    return 0;
  } catch (err) {
    return fail(`Error querying Conclave agent: ${errorText(err)}`);
  }
}

async function importTree(client: ApiClient, flags: ParsedFlags, deps: KvDeps, fail: Fail): Promise<number> {
  const arg = oneArgument(flags, fail, 'DATA', false);
  if (typeof arg === 'number') return arg;
  let data: Buffer;
  try {
    data = await dataArgument(arg === '' ? '-' : arg, deps);
  } catch (err) {
    return fail(`Error! Failed to read data: ${errorText(err)}`);
  }
  let entries: Array<{ key: string; flags: string; value: string }>;
  try {
    // flags may be above 2^53: keep the digits of every JSON number there, marked so that a string
    // (which Consul refuses) can never pass for one.
    const parsed: unknown = JSON.parse(data.toString('utf8').replace(/"flags"\s*:\s*(\d+)/g, '"flags":"#$1"'));
    if (!Array.isArray(parsed)) throw new Error('the data is not a JSON array');
    entries = parsed.map((p: unknown, i) => {
      const o = p as Record<string, unknown>;
      if (typeof o !== 'object' || o === null || typeof o['key'] !== 'string') throw new Error(`entry ${i} has no "key" string`);
      const value = o['value'] ?? '';
      if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) throw new Error(`entry ${i} ("${o['key']}"): "value" is not base64`);
      const f = o['flags'] ?? '#0';
      const digits = typeof f === 'string' && /^#\d+$/.test(f) ? f.slice(1) : undefined;
      if (digits === undefined || BigInt(digits) > maxUint64) throw new Error(`entry ${i} ("${o['key']}"): "flags" is not an unsigned 64-bit integer`);
      return { key: o['key'], flags: digits, value };
    });
  } catch (err) {
    return fail(`Cannot unmarshal data: ${errorText(err)}`);
  }
  const prefixFlag = lastFlag(flags, 'prefix');
  const prefix = typeof prefixFlag === 'string' ? prefixFlag : '';
  try {
    // Every entry was checked above, before the first write. One txn per batch (each applied whole or
    // not at all), bounded by count and by bytes so that no batch passes the agent's txn body limit.
    let batch: typeof entries = [];
    let bytes = 0;
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      // Flags are validated digits, spliced in as a JSON number (a uint64 JSON.stringify cannot write).
      const ops = batch.map((e) => JSON.stringify({ KV: { Verb: 'set', Key: prefix + e.key, Flags: '#F#', Value: e.value } }).replace('"#F#"', e.flags));
      await client.request({ method: 'PUT', path: '/v1/txn', body: `[${ops.join(',')}]`, timeoutMs: requestMs });
      for (const e of batch) deps.stdout.write(`Imported: ${prefix}${e.key}\n`);
      batch = [];
      bytes = 0;
    };
    for (const e of entries) {
      if (batch.length >= importBatch || (batch.length > 0 && bytes + e.value.length > importBatchBytes)) await flush();
      batch.push(e);
      bytes += e.value.length + e.key.length + prefix.length;
    }
    await flush();
    return 0;
  } catch (err) {
    return fail(`Error! Failed writing data: ${errorText(err)}`);
  }
}
