// Loading the agent configuration: flags and JSON files in, a checked AgentConfig or one message out.
//
// Order, as in Consul: built-in defaults, then each -config-file / -config-dir in command-line order
// (later wins), then the flags that set keys (they win over every file). Lists (retry_join) are
// concatenated across sources instead of replaced, which is how Consul merges slices.
//
// Every problem found is reported, not just the first, each on its own line naming where it came from
// (`config file "a.json"`, `flag -http-port`), the key, the value and what is expected.
//
// Loading reads files and directory entries and stats data_dir; it writes nothing and creates no
// directory. Creating data_dir is the agent's job once it starts. The one exception is -dev without a
// data_dir: as the very last step of a load that found no problem, it creates the fresh temporary
// directory (mkdtemp) the dev server runs in, and the caller owns it from then on.
//
// ACL tokens are secrets: no message built here shows one (values of secret keys print as <hidden>),
// and `redactConfig` gives the configuration as it may be logged.

import { mkdtemp, readFile, readdir, stat } from 'node:fs/promises';
import { hostname as osHostname, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { lastFlag, parseFlags, suggestion, type ParsedFlags } from './flags.js';
import { isWildcardIp, joinHostPort, privateIpv4Addresses } from './network.js';
import {
  agentFlags,
  configKeys,
  defaultHttpPort,
  isSecretPath,
  defaultServerPort,
  keyFlags,
  keySpecs,
  nestedObjects,
  unsupportedConsulKeys,
  type ConfigKey,
  type DecodeContext,
  type Fragment,
} from './schema.js';
import type { AclSettings, AgentConfig, LoadResult, RaftSettings } from './types.js';

/** What a secret (an ACL token) is replaced with wherever it would be shown; Consul shows the same. */
export const hiddenSecret = '<hidden>';

/** Where -dev makes its temporary data directory: a fresh `conclave-dev-XXXXXX` in os.tmpdir(). */
export const devDataDirPrefix = 'conclave-dev-';

/** Seams for tests; production callers pass nothing. */
export interface LoadOptions {
  /** Base for relative paths on the command line; default process.cwd(). */
  readonly cwd?: string;
  /** Default node name; default os.hostname(). */
  readonly hostname?: () => string;
  /** Private IPv4 addresses of this machine, for advertise_addr when bind_addr is 0.0.0.0. */
  readonly privateIpv4Addresses?: () => readonly string[];
  /** Creates -dev's temporary data directory; default mkdtemp(os.tmpdir()/conclave-dev-). */
  readonly makeTempDataDir?: () => Promise<string>;
}

/** Consul's dev-mode defaults (agent/config/default.go DevSource) that Conclave has keys for. */
const devDefaults: Fragment = { bind_addr: '127.0.0.1', bootstrap_expect: 1, log_level: 'debug' };
const devLabel = 'the -dev defaults';

/** Where each key's value came from: a config file or a flag. */
type Origins = Map<ConfigKey, string>;

interface Source {
  readonly label: string;
  readonly fragment: Fragment;
}

export async function loadAgentConfig(argv: readonly string[], options: LoadOptions = {}): Promise<LoadResult> {
  const cwd = options.cwd ?? process.cwd();
  const parsed = parseFlags(agentFlags, argv);
  if (!parsed.ok) return { ok: false, message: parsed.message };
  const flags = parsed.flags;
  if (flags.args.length > 0) return { ok: false, message: extraArgumentsMessage(flags) };

  const errors: string[] = [];
  const dev = lastFlag(flags, 'dev') === true;
  // As in Consul: defaults, then the dev defaults, then files and flags, which override them.
  const sources: Source[] = dev ? [{ label: devLabel, fragment: devDefaults }] : [];
  const configFiles: string[] = [];
  for (const use of flags.uses) {
    if (use.name !== 'config-file' && use.name !== 'config-dir') continue;
    const given = String(use.value);
    for (const file of await configFilesAt(given, resolve(cwd, given), use.name === 'config-dir', errors)) {
      const source = await readConfigFile(file.label, file.path, errors);
      if (source !== undefined) {
        sources.push(source);
        configFiles.push(file.path);
      }
    }
  }
  sources.push(flagSource(flags, { baseDir: cwd }, errors));
  if (errors.length > 0) return { ok: false, message: errors.join('\n') };

  const { merged, origins } = merge(sources);
  const config = await resolveConfig(merged, origins, configFiles, dev, options, errors);
  if (errors.length > 0 || config === undefined) return { ok: false, message: errors.join('\n') };
  if (!config.dataDirIsTemporary) return { ok: true, config };
  // -dev without data_dir: the only thing loading ever creates, and only once all else is valid.
  try {
    const dataDir = await (options.makeTempDataDir ?? (() => mkdtemp(join(tmpdir(), devDataDirPrefix))))();
    return { ok: true, config: { ...config, dataDir, warnings: [...config.warnings, devWarning(dataDir)] } };
  } catch (err) {
    return { ok: false, message: `-dev: cannot create a temporary data directory in ${tmpdir()}: ${describeFsError(err)}; pass -data-dir <path>` };
  }
}

function devWarning(dataDir: string | undefined): string {
  return dataDir === undefined
    ? 'Dev mode is enabled: one server that bootstraps itself, with Consul\'s dev settings. Never run -dev in production.'
    : `Dev mode is enabled: all data lives in the temporary directory ${dataDir}, which is removed when the agent stops; nothing is kept. Never run -dev in production.`;
}

/**
 * The configuration as it may be logged or printed: every secret (the initial management token)
 * replaced by <hidden>. Log this, never the AgentConfig itself.
 */
export function redactConfig(config: AgentConfig): AgentConfig {
  const token = config.acl.initialManagementToken;
  return token === undefined ? config : { ...config, acl: { ...config.acl, initialManagementToken: hiddenSecret } };
}

// ---------------------------------------------------------------------------------------------------
// Sources

async function configFilesAt(given: string, path: string, mustBeDir: boolean, errors: string[]): Promise<Array<{ label: string; path: string }>> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (err) {
    errors.push(`${mustBeDir ? 'config directory' : 'config file'} ${JSON.stringify(given)}: cannot read it: ${describeFsError(err)}`);
    return [];
  }
  if (!isDir) {
    if (mustBeDir) errors.push(`config directory ${JSON.stringify(given)}: not a directory; use -config-file for a single file`);
    return mustBeDir ? [] : [{ label: given, path }];
  }
  // As in Consul's -config-dir: every *.json file, in alphabetical order; other files are skipped.
  // An .hcl file would silently drop settings, so it is an error here.
  let names: string[];
  try {
    names = (await readdir(path, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name).sort();
  } catch (err) {
    errors.push(`config directory ${JSON.stringify(given)}: cannot list it: ${describeFsError(err)}`);
    return [];
  }
  for (const name of names.filter((n) => n.endsWith('.hcl'))) {
    errors.push(`config file ${JSON.stringify(`${given}/${name}`)}: HCL config files are not supported by Conclave; write it as JSON`);
  }
  return names.filter((n) => n.endsWith('.json')).map((n) => ({ label: `${given.replace(/\/+$/, '')}/${n}`, path: resolve(path, n) }));
}

async function readConfigFile(given: string, path: string, errors: string[]): Promise<Source | undefined> {
  const label = `config file ${JSON.stringify(given)}`;
  if (path.endsWith('.hcl')) {
    errors.push(`${label}: HCL config files are not supported by Conclave; write it as JSON`);
    return undefined;
  }
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    errors.push(`${label}: cannot read it: ${describeFsError(err)}`);
    return undefined;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    errors.push(`${label}: not valid JSON: ${jsonErrorWithoutText(err as Error, text)}`);
    return undefined;
  }
  if (!isPlainObject(raw)) {
    errors.push(`${label}: must hold one JSON object ({ "node_name": ..., ... }), not ${jsonTypeOf(raw)}`);
    return undefined;
  }
  const before = errors.length;
  const fragment = decodeObject(raw, label, { baseDir: dirname(path) }, errors);
  return errors.length === before ? { label, fragment } : undefined;
}

/**
 * V8's JSON.parse messages quote the text around the error (`Unexpected token 's', ..."ment": s3cr"...
 * is not valid JSON`), which could print a token. Say where instead: line and column.
 */
function jsonErrorWithoutText(err: Error, text: string): string {
  const at = /at position (\d+)/.exec(err.message);
  const quoted = /^(.*?), (?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s.exec(err.message);
  if (quoted === null) return at === null ? err.message : `${err.message}${lineColumn(text, Number(at[1]))}`;
  const what = quoted[1]!.replace(/^Unexpected token '.*'$/s, 'Unexpected character');
  return what;
}

function lineColumn(text: string, position: number): string {
  const before = text.slice(0, position).split('\n');
  return ` (line ${before.length}, column ${before.at(-1)!.length + 1})`;
}

function decodeObject(raw: Record<string, unknown>, label: string, ctx: DecodeContext, errors: string[], prefix = ''): Fragment {
  const fragment: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(raw)) {
    const path = `${prefix}${name}`;
    if (nestedObjects.has(path)) {
      if (!isPlainObject(value)) {
        const keys = configKeys.filter((k) => k.startsWith(`${path}.`)).map((k) => k.slice(path.length + 1).split('.')[0]!);
        errors.push(`${label}: ${path} cannot be ${show(value, path)}. Must be an object with the keys ${[...new Set(keys)].join(', ')}`);
        continue;
      }
      Object.assign(fragment, decodeObject(value, label, ctx, errors, `${path}.`));
    } else {
      decodeKey(path, value, label, ctx, fragment, errors);
    }
  }
  return fragment as Fragment;
}

function decodeKey(key: string, value: unknown, label: string, ctx: DecodeContext, out: Record<string, unknown>, errors: string[]): void {
  if (!isConfigKey(key)) {
    errors.push(`${label}: ${unknownKeyMessage(key)}`);
    return;
  }
  const spec = keySpecs[key];
  const decoded = spec.decode(value, ctx);
  if (!decoded.ok) {
    errors.push(`${label}: ${key} cannot be ${show(value, key)}${typeNote(value, spec.type)}. Must be ${decoded.expected}`);
    return;
  }
  out[key] = decoded.value;
}

/** The flags that set keys, decoded by the same rules as the files; each error names the flag. */
function flagSource(flags: ParsedFlags, ctx: DecodeContext, errors: string[]): Source {
  const fragment: Record<string, unknown> = {};
  for (const use of flags.uses) {
    const entry = keyFlags.find((f) => f.flag.name === use.name);
    if (entry === undefined) continue; // -config-file / -config-dir
    const spec = keySpecs[entry.key];
    const decoded = spec.decode(spec.list ? [use.value] : use.value, ctx);
    if (!decoded.ok) {
      errors.push(`flag -${use.name}: invalid value ${show(use.value, entry.key)} for ${entry.key}. Must be ${decoded.expected}`);
      continue;
    }
    const previous = fragment[entry.key];
    fragment[entry.key] = spec.list && Array.isArray(previous) ? [...previous, ...(decoded.value as string[])] : decoded.value;
  }
  return { label: 'flags', fragment: fragment as Fragment };
}

function merge(sources: readonly Source[]): { merged: Fragment; origins: Origins } {
  const merged: Record<string, unknown> = {};
  const origins: Origins = new Map();
  for (const source of sources) {
    for (const key of Object.keys(source.fragment) as ConfigKey[]) {
      const value = source.fragment[key];
      const previous = merged[key];
      merged[key] = keySpecs[key].list && Array.isArray(previous) ? [...previous, ...(value as string[])] : value;
      origins.set(key, source.label === 'flags' ? `flag -${keySpecs[key].flag?.name ?? key}` : source.label);
    }
  }
  return { merged: merged as Fragment, origins };
}

// ---------------------------------------------------------------------------------------------------
// Defaults, cross-key rules and derived values

async function resolveConfig(c: Fragment, origins: Origins, configFiles: string[], dev: boolean, options: LoadOptions, errors: string[]): Promise<AgentConfig | undefined> {
  const warnings: string[] = [];
  const from = (key: ConfigKey) => (origins.has(key) ? ` (set by ${origins.get(key)})` : '');

  if (c.server === false) {
    errors.push(`server cannot be false${from('server')}: Conclave runs servers only and has no client mode. Remove "server": false (or -server=false); the default is true`);
  }
  const nodeName = (c.node_name ?? (options.hostname ?? osHostname)()).trim();
  if (nodeName === '') errors.push('node_name cannot be empty: the host name is empty, so set "node_name" in a config file or pass -node');
  // -dev without a data_dir runs in a fresh temporary directory, made once everything else is valid.
  const dataDirIsTemporary = dev && c.data_dir === undefined;
  const dataDir = dataDirIsTemporary ? '' : c.data_dir;
  if (dataDir === undefined) errors.push('data_dir cannot be empty: set "data_dir" in a config file or pass -data-dir <path> (or run -dev for a throwaway server)');
  else if (!dataDirIsTemporary) await checkDataDir(dataDir, from('data_dir'), errors);

  const serverBindHost = c.bind_addr ?? '0.0.0.0';
  const serverPort = c['ports.server'] ?? defaultServerPort;
  const serverAdvertiseHost = advertiseHost(c, from, options, errors);
  const httpHost = c['addresses.http'] ?? c.client_addr ?? '127.0.0.1';
  const httpPort = c['ports.http'] ?? defaultHttpPort;
  if (httpPort === serverPort && (httpHost === serverBindHost || isWildcardIp(httpHost) || isWildcardIp(serverBindHost))) {
    errors.push(`ports.http${from('ports.http')} and ports.server${from('ports.server')} are both ${serverPort} on overlapping addresses (${httpHost} and ${serverBindHost}); give them different ports`);
  }
  const raft = raftSettings(c, from, errors, warnings);

  const serverAdvertiseAddress = joinHostPort(serverAdvertiseHost ?? '', serverPort);
  // Consul allows a server to list itself in retry_join (one shared list for every server); drop it.
  const retryJoin = [...new Set(c.retry_join ?? [])].filter((a) => a !== serverAdvertiseAddress);
  const retryJoinWan = [...new Set(c.retry_join_wan ?? [])].filter((a) => a !== serverAdvertiseAddress);
  const bootstrapExpect = c.bootstrap_expect ?? 0;
  warnings.push(...bootstrapWarnings(bootstrapExpect, retryJoin.length));
  const acl = aclSettings(c, warnings);
  if (dev && !dataDirIsTemporary) warnings.push(devWarning(undefined));

  if (errors.length > 0 || dataDir === undefined || serverAdvertiseHost === undefined || raft === undefined) return undefined;
  return {
    nodeName,
    datacenter: c.datacenter ?? 'dc1',
    dataDir,
    bootstrapExpect,
    retryJoin,
    retryJoinWan,
    acl,
    sessionTtlMinMs: c.session_ttl_min ?? 10_000,
    dev,
    dataDirIsTemporary,
    httpHost,
    httpPort,
    serverBindHost,
    serverPort,
    serverAdvertiseHost,
    serverAdvertiseAddress,
    logLevel: c.log_level ?? 'info',
    logJson: c.log_json,
    raft,
    configFiles,
    warnings,
  };
}

/** The acl block, with Consul's deprecated aliases (the new key wins when both are set, as in Consul). */
function aclSettings(c: Fragment, warnings: string[]): AclSettings {
  for (const key of ['acl_master_token', 'acl.tokens.master', 'acl_default_policy'] as const) {
    // Consul's text (agent/config/deprecated.go).
    if (c[key] !== undefined) warnings.push(`The '${key}' field is deprecated. Use the '${keySpecs[key].deprecatedFor}' field instead.`);
  }
  const enabled = c['acl.enabled'] ?? false;
  const initialManagementToken = c['acl.tokens.initial_management'] ?? c['acl.tokens.master'] ?? c.acl_master_token;
  if (enabled && initialManagementToken === undefined) {
    warnings.push(
      'acl.enabled is true but acl.tokens.initial_management is not set: no token can use the snapshot endpoints ' +
        '(saving and restoring need a management token) until one is configured',
    );
  }
  if (!enabled && initialManagementToken !== undefined) {
    warnings.push('acl.tokens.initial_management is set but acl.enabled is not true: ACLs are off, the token is not used and every request is allowed');
  }
  return { enabled, defaultPolicy: c['acl.default_policy'] ?? c.acl_default_policy ?? 'allow', initialManagementToken };
}

async function checkDataDir(dataDir: string, from: string, errors: string[]): Promise<void> {
  // Consul's checks and texts (agent/config/builder.go, Validate): a missing directory is fine.
  try {
    if (!(await stat(dataDir)).isDirectory()) errors.push(`data_dir ${JSON.stringify(dataDir)} is not a directory${from}`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') errors.push(`Error getting info on data_dir${from}: ${describeFsError(err)}`);
  }
}

/** advertise_addr, else bind_addr, else (bind_addr a wildcard) the single private IPv4, as Consul picks it. */
function advertiseHost(c: Fragment, from: (k: ConfigKey) => string, options: LoadOptions, errors: string[]): string | undefined {
  if (c.advertise_addr !== undefined) {
    if (!isWildcardIp(c.advertise_addr)) return c.advertise_addr;
    errors.push(`Advertise address cannot be 0.0.0.0, :: or [::]${from('advertise_addr')}: set advertise_addr (-advertise) to the IP other servers should use`);
    return undefined;
  }
  const bind = c.bind_addr ?? '0.0.0.0';
  if (!isWildcardIp(bind)) return bind;
  if (bind !== '0.0.0.0') {
    errors.push(`bind_addr is ${bind}${from('bind_addr')}, so advertise_addr (-advertise) must say which IPv6 address other servers use`);
    return undefined;
  }
  const candidates = (options.privateIpv4Addresses ?? privateIpv4Addresses)();
  if (candidates.length === 1) return candidates[0];
  const found = candidates.length === 0 ? 'No private IPv4 address found' : `Multiple private IPv4 addresses found (${candidates.join(', ')})`;
  errors.push(`${found}. Please configure one with 'bind' and/or 'advertise': set bind_addr (-bind) or advertise_addr (-advertise) to the IP other servers should use (127.0.0.1 for a cluster on one machine)`);
  return undefined;
}

function raftSettings(c: Fragment, from: (k: ConfigKey) => string, errors: string[], warnings: string[]): RaftSettings | undefined {
  // Consul's multiplier 1: a 1000 ms election timeout and a 100 ms heartbeat; n scales both.
  const multiplier = c['performance.raft_multiplier'] ?? 1;
  const tickMs = c['conclave.raft_tick_ms'] ?? 100;
  const electionTimeoutTicks = c['conclave.raft_election_timeout_ticks'] ?? Math.max(2, Math.round((1000 * multiplier) / tickMs));
  const heartbeatIntervalTicks = c['conclave.raft_heartbeat_interval_ticks'] ?? Math.max(1, Math.round((100 * multiplier) / tickMs));
  if (heartbeatIntervalTicks >= electionTimeoutTicks) {
    errors.push(
      `conclave.raft_heartbeat_interval_ticks is ${heartbeatIntervalTicks}${from('conclave.raft_heartbeat_interval_ticks')} but must be less than ` +
        `conclave.raft_election_timeout_ticks, ${electionTimeoutTicks}${from('conclave.raft_election_timeout_ticks')}: followers would start elections while the leader is healthy`,
    );
    return undefined;
  }
  if (heartbeatIntervalTicks * 3 > electionTimeoutTicks) {
    warnings.push(`the heartbeat interval (${heartbeatIntervalTicks} ticks) is more than a third of the election timeout (${electionTimeoutTicks} ticks): one late heartbeat may start an election; a tenth is usual`);
  }
  if (electionTimeoutTicks * tickMs < 500) {
    warnings.push(`the election timeout is ${electionTimeoutTicks * tickMs} ms: on a busy machine a pause that long starts needless elections; 1000 ms or more is safer`);
  }
  return {
    tickMs,
    electionTimeoutTicks,
    heartbeatIntervalTicks,
    snapshotThresholdEntries: c.raft_snapshot_threshold ?? 16384,
    trailingEntries: c.raft_trailing_logs ?? 10240,
    snapshotsRetained: c['conclave.snapshots_retained'] ?? 2,
  };
}

function bootstrapWarnings(expect: number, others: number): string[] {
  const out: string[] = [];
  // The first two texts are Consul's (agent/config/builder.go).
  if (expect === 2) out.push('bootstrap_expect = 2: A cluster with 2 servers will provide no failure tolerance. See https://www.consul.io/docs/internals/consensus.html#deployment-table');
  if (expect > 2 && expect % 2 === 0) {
    out.push('bootstrap_expect is even number: A cluster with an even number of servers does not achieve optimum fault tolerance. See https://www.consul.io/docs/internals/consensus.html#deployment-table');
  }
  if (expect > 1 && others < expect - 1) {
    out.push(`bootstrap_expect = ${expect} but retry_join lists ${others} other server${others === 1 ? '' : 's'}: the cluster bootstraps only once ${expect - 1} other servers are found (list them in retry_join, or join them to this one)`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Messages

function unknownKeyMessage(key: string): string {
  if (unsupportedConsulKeys.has(key) || unsupportedConsulKeys.has(key.split('.')[0]!)) {
    return `invalid config key ${key}: Consul has this setting but Conclave does not support it; remove it`;
  }
  const snake = key.replace(/[A-Z]/g, (ch) => `_${ch.toLowerCase()}`);
  const hint = isConfigKey(snake) ? `; did you mean ${snake}?` : suggestion(key, configKeys, '');
  return `invalid config key ${key}${hint}`;
}

function extraArgumentsMessage(flags: ParsedFlags): string {
  const args = flags.args.map((a) => JSON.stringify(a)).join(' ');
  const previous = flags.uses.at(-1);
  const boolHint =
    previous !== undefined && typeof previous.value === 'boolean' && /^(true|false)$/i.test(flags.args[0] ?? '')
      ? ` (a boolean flag takes its value after "=": -${previous.name}=${flags.args[0]!.toLowerCase()})`
      : '';
  return `Unknown extra arguments: ${args}${boolHint}. conclave agent takes only flags; see conclave agent -h`;
}

function isConfigKey(key: string): key is ConfigKey {
  return Object.hasOwn(keySpecs, key);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function jsonTypeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

/** The value as written in JSON, shortened for long values; <hidden> where it may be a secret. */
function show(v: unknown, path: string): string {
  if (isSecretPath(path)) return hiddenSecret;
  const text = v === undefined ? 'undefined' : JSON.stringify(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** " (a string)" when the JSON type is not the one the key takes: the usual mistake is "8500" for 8500. */
function typeNote(v: unknown, specType: string): string {
  const wanted = specType.startsWith('integer') ? 'number' : specType.startsWith('boolean') ? 'boolean' : specType.startsWith('array') ? 'array' : 'string';
  const actual = v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
  return actual === wanted ? '' : ` (${jsonTypeOf(v)})`;
}

function describeFsError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const reasons: Record<string, string> = { ENOENT: 'no such file or directory', EACCES: 'permission denied', EISDIR: 'is a directory', ENOTDIR: 'a path component is not a directory' };
  return e.code !== undefined && reasons[e.code] !== undefined ? `${reasons[e.code]} (${e.code})` : e.message;
}

