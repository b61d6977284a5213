// The agent configuration after loading: every default applied, every value checked, relative paths
// made absolute. The configuration is checked once, where it enters, and trusted inside: past
// `loadAgentConfig` nothing needs to be validated again.
// Field names are camelCase with the unit last; the comments name the JSON key each one comes from.

/** Pino's level names; Consul's ERR maps to 'error'. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** acl.default_policy: what a request no rule matches gets when ACLs are enabled. */
export type AclPolicy = 'allow' | 'deny';

/** The acl block (Consul's keys). */
export interface AclSettings {
  /** acl.enabled (default false). */
  readonly enabled: boolean;
  /** acl.default_policy (default 'allow', Consul's). */
  readonly defaultPolicy: AclPolicy;
  /**
   * acl.tokens.initial_management (or its deprecated aliases acl.tokens.master, acl_master_token): the
   * secret of the management token the leader creates if missing. A SECRET: never log or print it;
   * log `redactConfig(config)` instead of the configuration itself.
   */
  readonly initialManagementToken: string | undefined;
}

/** Raft timing and log compaction, in the shape src/node's RaftNodeOptions takes them. */
export interface RaftSettings {
  /** One core tick, in milliseconds (conclave.raft_tick_ms). */
  readonly tickMs: number;
  /** Election timeout in ticks; each wait is drawn from [n, 2n) (conclave.raft_election_timeout_ticks). */
  readonly electionTimeoutTicks: number;
  /** Leader heartbeat interval in ticks; always less than electionTimeoutTicks. */
  readonly heartbeatIntervalTicks: number;
  /** Snapshot once this many entries were applied since the last one (raft_snapshot_threshold). */
  readonly snapshotThresholdEntries: number;
  /** Log entries kept below a snapshot for followers a little behind (raft_trailing_logs). */
  readonly trailingEntries: number;
  /** Snapshots kept on disk, the newest first (conclave.snapshots_retained). */
  readonly snapshotsRetained: number;
}

export interface AgentConfig {
  /** node_name: unique in the cluster. */
  readonly nodeName: string;
  /** datacenter: lower-cased, [a-z0-9_-]+. */
  readonly datacenter: string;
  /** data_dir, absolute. Loading never creates it (the agent does), except -dev's temporary one. */
  readonly dataDir: string;
  /** bootstrap_expect: servers to wait for before the first election; 0 = never bootstrap, join instead. */
  readonly bootstrapExpect: number;
  /** retry_join: other servers' RPC addresses, "host:port" ("[v6]:port"), without duplicates or this server. */
  readonly retryJoin: readonly string[];
  /** retry_join_wan: RPC addresses of servers in other datacenters, same form, without duplicates or this server. */
  readonly retryJoinWan: readonly string[];
  /** The acl block. */
  readonly acl: AclSettings;
  /** session_ttl_min, in ms: the shortest session TTL accepted (Consul's default 10 s). */
  readonly sessionTtlMinMs: number;
  /** -dev was given: dev-mode defaults applied (they may have been overridden by flags and files). */
  readonly dev: boolean;
  /**
   * True when dataDir is the fresh temporary directory -dev made (no data_dir given). Whoever loaded
   * the configuration owns it and removes it when the agent stops (src/cli does); a data_dir that was
   * given is never temporary and never removed.
   */
  readonly dataDirIsTemporary: boolean;

  /** addresses.http, else client_addr: the IP the HTTP API listens on. */
  readonly httpHost: string;
  /** ports.http; 0 = any free port (the agent reports the one it got). */
  readonly httpPort: number;
  /** bind_addr: the IP the server RPC (gRPC) listener binds to; may be 0.0.0.0 or ::. */
  readonly serverBindHost: string;
  /** ports.server: the server RPC port, for binding and advertising. */
  readonly serverPort: number;
  /** advertise_addr: the IP other servers use to reach this one; never a wildcard. */
  readonly serverAdvertiseHost: string;
  /** serverAdvertiseHost:serverPort ("[v6]:port" for IPv6): the Raft address, what /v1/status/leader shows. */
  readonly serverAdvertiseAddress: string;

  /** log_level. */
  readonly logLevel: LogLevel;
  /** log_json: true = JSON lines, false = human-readable, undefined = JSON unless stdout is a terminal. */
  readonly logJson: boolean | undefined;

  readonly raft: RaftSettings;

  /** The config files read, absolute, in the order applied (later wins). */
  readonly configFiles: readonly string[];
  /** Things worth a warning line at start (Consul prints the same kind of notes). */
  readonly warnings: readonly string[];
}

export type LoadResult = { readonly ok: true; readonly config: AgentConfig } | { readonly ok: false; readonly message: string };
