// Every configuration key the agent accepts: its JSON path, how a value is checked, its default, its
// flag and a line of documentation. This table is the one home of those facts: the loader, the help
// text of `conclave agent -h` and src/config/README.md all follow it.
//
// Key names are Consul's wherever Consul has the setting (https://developer.hashicorp.com/consul/docs/agent/config/config-files);
// settings Consul does not have live under the `conclave` object.

import { resolve } from 'node:path';
import { parseGoDuration } from '../base/index.js';
import type { FlagSpec } from './flags.js';
import { joinHostPort, parseHostPort, parseIp } from './network.js';
import type { AclPolicy, LogLevel } from './types.js';

/** The value type of each key after decoding. Dotted keys live in a nested JSON object. */
export interface ConfigValues {
  node_name: string;
  datacenter: string;
  data_dir: string;
  server: boolean;
  bootstrap_expect: number;
  retry_join: string[];
  retry_join_wan: string[];
  bind_addr: string;
  advertise_addr: string;
  client_addr: string;
  'addresses.http': string;
  'ports.http': number;
  'ports.server': number;
  log_level: LogLevel;
  log_json: boolean;
  raft_snapshot_threshold: number;
  raft_trailing_logs: number;
  'performance.raft_multiplier': number;
  'conclave.raft_tick_ms': number;
  'conclave.raft_election_timeout_ticks': number;
  'conclave.raft_heartbeat_interval_ticks': number;
  'conclave.snapshots_retained': number;
  session_ttl_min: number;
  'acl.enabled': boolean;
  'acl.default_policy': AclPolicy;
  'acl.tokens.initial_management': string;
  'acl.tokens.master': string;
  acl_master_token: string;
  acl_default_policy: AclPolicy;
}

export type ConfigKey = keyof ConfigValues;

/** Values from one source (a file, or the flags), already decoded. */
export type Fragment = Partial<ConfigValues>;

export type Decoded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly expected: string };

export interface DecodeContext {
  /** Directory that relative paths are resolved against: the config file's, or the working directory for flags. */
  readonly baseDir: string;
}

export interface KeySpec<T> {
  /** For documentation: "string", "integer", "array of strings", ... */
  readonly type: string;
  readonly defaultText: string;
  readonly doc: string;
  /** The flag that sets this key, if any. */
  readonly flag?: FlagSpec;
  /** Values from several sources are concatenated instead of replaced (Consul merges lists this way). */
  readonly list?: true;
  /** The value is a secret (an ACL token): never shown in an error message, the help or a log line. */
  readonly secret?: true;
  /** A deprecated Consul alias: the key to use instead. Still accepted, with Consul's warning. */
  readonly deprecatedFor?: ConfigKey;
  readonly decode: (value: unknown, ctx: DecodeContext) => Decoded<T>;
}

/** The default server RPC port (Consul's 8300); also the port assumed for a retry_join entry without one. */
export const defaultServerPort = 8300;
export const defaultHttpPort = 8500;
/** Consul's limit for performance.raft_multiplier (consul.MaxRaftMultiplier). */
export const maxRaftMultiplier = 10;

const portRange = (min: number) => `a port number from ${min} to 65535`;

function int(min: number, max: number, expected: string): (v: unknown) => Decoded<number> {
  return (v) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max ? { ok: true, value: v } : { ok: false, expected });
}

function bool(v: unknown): Decoded<boolean> {
  return typeof v === 'boolean' ? { ok: true, value: v } : { ok: false, expected: 'true or false (a JSON boolean, without quotes)' };
}

function nonEmptyString(what: string): (v: unknown) => Decoded<string> {
  return (v) => (typeof v === 'string' && v.trim() !== '' ? { ok: true, value: v.trim() } : { ok: false, expected: `a non-empty string: ${what}` });
}

function ipAddress(what: string): (v: unknown) => Decoded<string> {
  return (v) => {
    const ip = typeof v === 'string' ? parseIp(v.trim()) : undefined;
    if (ip !== undefined) return { ok: true, value: ip };
    const templateNote = typeof v === 'string' && v.includes('{{') ? ' (go-sockaddr templates are not supported)' : '';
    return { ok: false, expected: `one IP address, such as "127.0.0.1" or "::1": ${what}${templateNote}` };
  };
}

/** A list of server RPC addresses, as retry_join and retry_join_wan take them. */
function serverAddressList(v: unknown): Decoded<string[]> {
  if (!Array.isArray(v)) return { ok: false, expected: 'an array of server addresses, such as ["10.0.0.2:8300", "10.0.0.3:8300"]' };
  const out: string[] = [];
  for (const [i, entry] of v.entries()) {
    const r = typeof entry === 'string' ? parseHostPort(entry.trim(), defaultServerPort) : undefined;
    if (r === undefined || !r.ok) {
      return { ok: false, expected: `an array of server addresses; entry ${i} (${JSON.stringify(entry)}) is not ${r === undefined ? 'a string' : r.expected}` };
    }
    out.push(joinHostPort(r.host, r.port));
  }
  return { ok: true, value: out };
}

function aclPolicy(v: unknown): Decoded<AclPolicy> {
  return v === 'allow' || v === 'deny' ? { ok: true, value: v } : { ok: false, expected: '"allow" or "deny"' };
}

/**
 * An ACL token as a config file gives it. Consul takes any string; Conclave refuses what cannot be a
 * token a client sends back in an X-Consul-Token header or a ?token= parameter, so a stray space or
 * newline from a copy and paste is caught here rather than as a 403 later.
 */
function aclToken(v: unknown): Decoded<string> {
  return typeof v === 'string' && v !== '' && !/[\s\p{Cc}]/u.test(v)
    ? { ok: true, value: v }
    : { ok: false, expected: 'a non-empty token without spaces or control characters, such as a UUID from uuidgen' };
}

const logLevels: Readonly<Record<string, LogLevel>> = { trace: 'trace', debug: 'debug', info: 'info', warn: 'warn', err: 'error', error: 'error' };

export const keySpecs: { readonly [K in ConfigKey]: KeySpec<ConfigValues[K]> } = {
  node_name: {
    type: 'string',
    defaultText: 'the host name',
    doc: 'Name of this node. Must be unique in the cluster.',
    flag: { name: 'node', kind: 'string', valueName: 'name', usage: 'Name of this node. Must be unique in the cluster.', defaultText: 'the host name' },
    decode: nonEmptyString('the name of this node, unique in the cluster'),
  },
  datacenter: {
    type: 'string',
    defaultText: '"dc1"',
    doc: 'Datacenter of this server: lowercase letters, digits, "-" and "_" (Consul\'s rule); upper case is folded to lower case as Consul does. Every server of one cluster has the same datacenter; servers of other datacenters are reached through retry_join_wan and ?dc=.',
    flag: { name: 'datacenter', kind: 'string', valueName: 'name', usage: 'Datacenter of the agent.', defaultText: 'dc1' },
    decode: (v) => {
      // Consul (agent/config/builder.go): strings.ToLower, then "datacenter cannot be empty" and
      // "datacenter can only contain lowercase alphanumeric, - or _ characters."
      const dc = typeof v === 'string' ? v.toLowerCase() : undefined;
      if (dc !== undefined && /^[a-z0-9_-]+$/.test(dc)) return { ok: true, value: dc };
      const consul = dc === '' ? 'datacenter cannot be empty' : 'datacenter can only contain lowercase alphanumeric, - or _ characters';
      return { ok: false, expected: `a name of only [a-z0-9-_], upper case folded to lower case (${consul})` };
    },
  },
  data_dir: {
    type: 'string, a path',
    defaultText: 'none: required',
    doc: 'Directory for the Raft log, snapshots and state. In a config file a relative path is relative to that file; on the command line, to the working directory. Created by the agent at start, never by loading the configuration.',
    flag: { name: 'data-dir', kind: 'string', valueName: 'path', usage: 'Path to a data directory to store agent state (relative to the working directory). Required.' },
    decode: (v, ctx) => {
      const s = nonEmptyString('a directory path')(v);
      return s.ok ? { ok: true, value: resolve(ctx.baseDir, s.value) } : s;
    },
  },
  server: {
    type: 'boolean',
    defaultText: 'true',
    doc: 'Must be true (or absent): Conclave runs servers only; there is no client mode.',
    flag: { name: 'server', kind: 'bool', usage: 'Switches agent to server mode. Conclave agents are always servers, so this is accepted for Consul compatibility and -server=false is an error.', defaultText: 'true' },
    decode: bool,
  },
  bootstrap_expect: {
    type: 'integer',
    defaultText: '0',
    doc: 'Number of servers to wait for before the first election. Give every server of a new cluster the same number; 0 means this server never bootstraps a cluster and waits to be joined to one.',
    flag: { name: 'bootstrap-expect', kind: 'int', valueName: 'count', usage: 'Number of servers to wait for before bootstrapping a new cluster; 0 = never bootstrap, wait to be joined.', defaultText: '0' },
    decode: int(0, 100, 'a whole number of servers from 0 to 100'),
  },
  retry_join: {
    type: 'array of strings',
    defaultText: '[]',
    doc: `Server RPC addresses of the other servers, "host:port" (IPv6 as "[addr]:port"); the port defaults to ${defaultServerPort}. Entries from several files and -retry-join flags are combined, as in Consul; this server's own address is dropped.`,
    flag: { name: 'retry-join', kind: 'list', valueName: 'host:port', usage: `Server RPC address of another server to join, retried until it answers. Can be specified multiple times; adds to retry_join from config files. The port defaults to ${defaultServerPort}.` },
    list: true,
    decode: serverAddressList,
  },
  retry_join_wan: {
    type: 'array of strings',
    defaultText: '[]',
    doc: `Server RPC addresses of servers in OTHER datacenters, "host:port" (IPv6 as "[addr]:port"); the port defaults to ${defaultServerPort}. Consul's WAN join: this server learns their datacenters from them and forwards requests with ?dc=<their datacenter> there. Combined across sources like retry_join; this server's own address is dropped.`,
    flag: { name: 'retry-join-wan', kind: 'list', valueName: 'host:port', usage: `Server RPC address of a server in another datacenter, retried until it answers. Can be specified multiple times; adds to retry_join_wan from config files. The port defaults to ${defaultServerPort}.` },
    list: true,
    decode: serverAddressList,
  },
  bind_addr: {
    type: 'string, an IP address',
    defaultText: '"0.0.0.0"',
    doc: 'IP address the server RPC listener (Raft and forwarding between servers, port ports.server) binds to. As in Consul, 0.0.0.0 listens everywhere and then advertise_addr defaults to the one private IPv4 address of this machine.',
    flag: { name: 'bind', kind: 'string', valueName: 'ip', usage: 'Sets the bind address for cluster communication (server RPC).', defaultText: '0.0.0.0' },
    decode: ipAddress('the address the server RPC listener binds to'),
  },
  advertise_addr: {
    type: 'string, an IP address',
    defaultText: 'bind_addr, or the private IPv4 when bind_addr is a wildcard',
    doc: 'IP address other servers use to reach this one; with ports.server it is this server\'s Raft address, the one /v1/status/leader reports. Cannot be 0.0.0.0 or ::.',
    flag: { name: 'advertise', kind: 'string', valueName: 'ip', usage: 'Sets the advertise address to use: the address other servers reach this one at.', defaultText: 'the bind address, or the private IPv4 when binding 0.0.0.0' },
    decode: ipAddress('the address other servers use to reach this one'),
  },
  client_addr: {
    type: 'string, an IP address',
    defaultText: '"127.0.0.1"',
    doc: 'IP address client interfaces (the HTTP API) bind to, unless addresses.http overrides it.',
    flag: { name: 'client', kind: 'string', valueName: 'ip', usage: 'Sets the address to bind for client access (the HTTP API).', defaultText: '127.0.0.1' },
    decode: ipAddress('the address the HTTP API listens on'),
  },
  'addresses.http': {
    type: 'string, an IP address',
    defaultText: 'client_addr',
    doc: 'IP address the HTTP API binds to (Consul\'s meaning: overrides client_addr for HTTP).',
    decode: ipAddress('the address the HTTP API listens on'),
  },
  'ports.http': {
    type: 'integer',
    defaultText: `${defaultHttpPort}`,
    doc: 'HTTP API port. 0 asks the system for any free port (the agent logs the one it got); unlike Consul, -1 (disable) is not accepted.',
    flag: { name: 'http-port', kind: 'int', valueName: 'port', usage: 'Sets the HTTP API port to listen on; 0 = any free port.', defaultText: `${defaultHttpPort}` },
    decode: int(0, 65535, portRange(0)),
  },
  'ports.server': {
    type: 'integer',
    defaultText: `${defaultServerPort}`,
    doc: 'Server RPC port (gRPC between servers), bound on bind_addr and advertised with advertise_addr.',
    flag: { name: 'server-port', kind: 'int', valueName: 'port', usage: 'Sets the server RPC port to listen on.', defaultText: `${defaultServerPort}` },
    decode: int(1, 65535, portRange(1)),
  },
  log_level: {
    type: 'string',
    defaultText: '"info"',
    doc: 'One of trace, debug, info, warn, err (or error), in any case, as in Consul.',
    flag: { name: 'log-level', kind: 'string', valueName: 'level', usage: 'Log level of the agent: trace, debug, info, warn or err.', defaultText: 'info' },
    decode: (v) => {
      const level = typeof v === 'string' ? logLevels[v.trim().toLowerCase()] : undefined;
      return level !== undefined ? { ok: true, value: level } : { ok: false, expected: 'one of TRACE, DEBUG, INFO, WARN, ERR, ERROR (any case)' };
    },
  },
  log_json: {
    type: 'boolean',
    defaultText: 'JSON unless stdout is a terminal',
    doc: 'true: logs are JSON lines on stdout; false: human-readable lines. When absent, JSON unless stdout is a terminal.',
    flag: { name: 'log-json', kind: 'bool', usage: 'Output logs in JSON format; -log-json=false forces human-readable lines.', defaultText: 'JSON unless stdout is a terminal' },
    decode: bool,
  },
  raft_snapshot_threshold: {
    type: 'integer',
    defaultText: '16384',
    doc: 'Take a Raft snapshot (and compact the log) once this many entries were applied since the last one. Consul\'s key and default.',
    decode: int(1, 1e9, 'a whole number of log entries from 1 to 1000000000'),
  },
  raft_trailing_logs: {
    type: 'integer',
    defaultText: '10240',
    doc: 'Log entries kept below a snapshot so a follower a little behind catches up without a full snapshot. Consul\'s key and default.',
    decode: int(0, 1e9, 'a whole number of log entries from 0 to 1000000000'),
  },
  'performance.raft_multiplier': {
    type: 'integer',
    defaultText: 'absent (timing of Consul\'s multiplier 1)',
    doc: `Consul's Raft timing scale, 1 to ${maxRaftMultiplier}: election timeout 1000 ms × n and heartbeat 100 ms × n, turned into ticks of conclave.raft_tick_ms. Explicit conclave.raft_*_ticks keys win over it. Unlike Consul, absent means 1 (Consul's production recommendation), not 5.`,
    decode: int(1, maxRaftMultiplier, `a whole number from 1 to ${maxRaftMultiplier}`),
  },
  'conclave.raft_tick_ms': {
    type: 'integer',
    defaultText: '100',
    doc: 'Length of one Raft tick in milliseconds; the election timeout and heartbeat interval are counted in ticks.',
    decode: int(10, 10_000, 'a whole number of milliseconds from 10 to 10000'),
  },
  'conclave.raft_election_timeout_ticks': {
    type: 'integer',
    defaultText: '1000 ms × raft_multiplier, in ticks (10 at 100 ms)',
    doc: 'Election timeout in ticks: a follower that hears no leader for a random time in [n, 2n) ticks starts an election. Must be greater than the heartbeat interval.',
    decode: int(2, 100_000, 'a whole number of ticks from 2 to 100000'),
  },
  'conclave.raft_heartbeat_interval_ticks': {
    type: 'integer',
    defaultText: '100 ms × raft_multiplier, in ticks (1 at 100 ms)',
    doc: 'Ticks between the leader\'s heartbeats. Must be less than the election timeout; a tenth of it is usual.',
    decode: int(1, 100_000, 'a whole number of ticks from 1 to 100000'),
  },
  'conclave.snapshots_retained': {
    type: 'integer',
    defaultText: '2',
    doc: 'Raft snapshots kept on disk (Consul keeps 2, fixed).',
    decode: int(1, 100, 'a whole number of snapshots from 1 to 100'),
  },
  session_ttl_min: {
    type: 'string, a duration',
    defaultText: '"10s"',
    doc: 'The shortest TTL a session may ask for (PUT /v1/session/create); the longest is 86400s. Consul\'s key and default.',
    decode: (v) => {
      const d = typeof v === 'string' ? parseGoDuration(v) : undefined;
      return d !== undefined && d.ok && d.nanoseconds >= 1_000_000n && d.nanoseconds <= 86_400_000_000_000n
        ? { ok: true, value: Number(d.nanoseconds / 1_000_000n) }
        : { ok: false, expected: 'a duration from "1ms" to "86400s", such as "10s"' };
    },
  },
  'acl.enabled': {
    type: 'boolean',
    defaultText: 'false',
    doc: 'Enables ACLs: requests are checked against tokens. The snapshot endpoints need a management token, so set acl.tokens.initial_management too.',
    decode: bool,
  },
  'acl.default_policy': {
    type: 'string',
    defaultText: '"allow"',
    doc: 'What a request without a matching rule gets when ACLs are enabled: "allow" or "deny" (Consul\'s key and default; "deny" is the production choice).',
    decode: aclPolicy,
  },
  'acl.tokens.initial_management': {
    type: 'string, a secret',
    defaultText: 'none',
    doc: 'Secret of a management token the leader creates if it does not exist (Consul\'s initial management token). Any string without spaces or control characters; a UUID is usual. Never shown in logs, the start banner or error messages.',
    secret: true,
    decode: aclToken,
  },
  'acl.tokens.master': {
    type: 'string, a secret',
    defaultText: 'none',
    doc: 'Deprecated (as in Consul): use acl.tokens.initial_management. Accepted with a warning.',
    secret: true,
    deprecatedFor: 'acl.tokens.initial_management',
    decode: aclToken,
  },
  acl_master_token: {
    type: 'string, a secret',
    defaultText: 'none',
    doc: 'Deprecated (as in Consul): use acl.tokens.initial_management. Accepted with a warning.',
    secret: true,
    deprecatedFor: 'acl.tokens.initial_management',
    decode: aclToken,
  },
  acl_default_policy: {
    type: 'string',
    defaultText: '"allow"',
    doc: 'Deprecated (as in Consul): use acl.default_policy. Accepted with a warning.',
    deprecatedFor: 'acl.default_policy',
    decode: aclPolicy,
  },
};

export const configKeys = Object.keys(keySpecs) as ConfigKey[];

/**
 * JSON objects that hold dotted keys, by their dotted path: `ports` holds `ports.http` and
 * `ports.server`; `acl` holds `acl.enabled` and the object `acl.tokens`.
 */
export const nestedObjects: ReadonlySet<string> = new Set(
  configKeys.flatMap((k) => {
    const parts = k.split('.');
    return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join('.'));
  }),
);

/** True for a key or object path whose value may hold a secret: an ACL token, or an object of them. */
export function isSecretPath(path: string): boolean {
  if (path === 'acl' || path === 'acl.tokens' || path.startsWith('acl.tokens.')) return true;
  if (Object.hasOwn(keySpecs, path)) return keySpecs[path as ConfigKey].secret === true;
  return unsupportedConsulKeys.has(path) && /token/.test(path);
}

/**
 * Consul agent keys Conclave does not implement. Naming them in the error tells a person the key is
 * real but unsupported here, rather than a typo.
 */
export const unsupportedConsulKeys: ReadonlySet<string> = new Set([
  'acl.down_policy', 'acl.enable_key_list_policy', 'acl.enable_token_persistence', 'acl.enable_token_replication',
  'acl.policy_ttl', 'acl.role_ttl', 'acl.token_ttl', 'acl.msp_disable_bootstrap', 'acl.tokens.agent',
  'acl.tokens.agent_master', 'acl.tokens.agent_recovery', 'acl.tokens.config_file_service_registration',
  'acl.tokens.default', 'acl.tokens.dns', 'acl.tokens.replication', 'acl_agent_master_token', 'acl_agent_token',
  'acl_datacenter', 'acl_down_policy', 'acl_enforce_version_8', 'acl_replication_token', 'acl_token', 'acl_ttl',
  'addresses.dns', 'addresses.grpc', 'addresses.https',
  'advertise_addr_wan', 'auto_config', 'auto_encrypt', 'autopilot', 'bootstrap', 'ca_file', 'ca_path', 'cert_file',
  'check', 'checks', 'config_entries', 'connect', 'disable_host_node_id', 'disable_update_check', 'dns_config',
  'domain', 'enable_debug', 'enable_local_script_checks', 'enable_script_checks', 'enable_syslog', 'encrypt',
  'http_config', 'key_file', 'leave_on_terminate', 'limits', 'log_file', 'log_rotate_bytes', 'log_rotate_duration',
  'node_id', 'node_meta', 'performance.leave_drain_time', 'performance.rpc_hold_timeout', 'pid_file', 'ports.dns',
  'ports.grpc', 'ports.grpc_tls', 'ports.https', 'ports.serf_lan', 'ports.serf_wan', 'primary_datacenter',
  'raft_boltdb', 'raft_logstore', 'raft_protocol', 'raft_snapshot_interval', 'recursors', 'rejoin_after_leave',
  'retry_interval', 'retry_interval_wan', 'retry_max', 'retry_max_wan', 'serf_lan', 'serf_wan', 'service', 'services',
  'skip_leave_on_interrupt', 'start_join', 'telemetry', 'tls', 'ui', 'ui_config', 'verify_incoming',
  'verify_outgoing', 'verify_server_hostname',
]);

/** The flags that set keys, with the key each sets. */
export const keyFlags: ReadonlyArray<{ readonly key: ConfigKey; readonly flag: FlagSpec }> = configKeys.flatMap((key) => {
  const flag = keySpecs[key].flag;
  return flag === undefined ? [] : [{ key, flag }];
});

/** Flags that name config sources rather than set a key. */
export const sourceFlags: readonly FlagSpec[] = [
  {
    name: 'config-file',
    kind: 'list',
    valueName: 'path',
    usage: 'Path to a JSON config file (or a directory, read as -config-dir). Can be specified multiple times; files apply in order, later values win, and flags win over all files.',
  },
  {
    name: 'config-dir',
    kind: 'list',
    valueName: 'path',
    usage: 'Path to a directory to read configuration files from: every file ending in ".json", in alphabetical order. Can be specified multiple times.',
  },
];

/** `-dev`: a source of defaults, not a key (Consul has no dev key either). */
export const devFlag: FlagSpec = {
  name: 'dev',
  kind: 'bool',
  usage:
    'Starts the agent in development mode: one server on 127.0.0.1 that bootstraps itself (bootstrap_expect 1), log level debug, and its data in a fresh temporary directory removed when the agent stops, unless -data-dir or data_dir is given. Flags and config files override these defaults. Nothing is kept: never use it in production.',
};

/** Every flag of `conclave agent`. */
export const agentFlags: readonly FlagSpec[] = [...sourceFlags, devFlag, ...keyFlags.map((f) => f.flag)];
