// The seam between the Consul HTTP layer (src/http) and a server node (src/server). The HTTP layer
// parses and answers requests; everything behind this interface decides where a request runs
// (here, or forwarded to the leader), how consistent it is, and how long a blocking query waits.

import type { Readable } from 'node:stream';
import type { ApplyResult, CatalogQuery, Command, DirEntry, KvReadOp, Session, TxnResult, TxnError } from '../fsm/index.js';

/** Consul's three read modes (https://developer.hashicorp.com/consul/api-docs/features/consistency). */
export type Consistency = 'default' | 'consistent' | 'stale';

export interface ReadOptions {
  readonly consistency: Consistency;
  /**
   * Blocking query: answer only once the result's index is greater than `minIndex`, or when
   * `waitMs` has passed (then with the current result). Absent or 0: answer at once.
   */
  readonly minIndex?: number;
  /** How long a blocking query may wait, already clamped and jittered by the HTTP layer. */
  readonly waitMs?: number;
  /** Aborted when the client goes away. */
  readonly signal?: AbortSignal;
  /** ?dc: another datacenter's servers answer (forwarded over gRPC); '' or absent: this one. */
  readonly dc?: string;
}

/** Where a write runs: ?dc names another datacenter, '' or absent this one. */
export interface ApplyOptions {
  readonly dc?: string;
}

/** What Consul reports about a read in its X-Consul-* headers. */
export interface ReadMeta {
  /** X-Consul-Index: always >= 1. */
  readonly index: number;
  /** X-Consul-KnownLeader. */
  readonly knownLeader: boolean;
  /** X-Consul-LastContact, in milliseconds: 0 on the leader, time since the leader was heard otherwise. */
  readonly lastContactMs: number;
  /** X-Consul-Effective-Consistency. */
  readonly consistency: Consistency;
}

/** Consul's /v1/operator/raft/configuration answer, field for field. */
export interface RaftConfigurationReply {
  readonly Servers: ReadonlyArray<{
    readonly ID: string;
    readonly Node: string;
    readonly Address: string;
    readonly Leader: boolean;
    readonly ProtocolVersion: string;
    readonly Voter: boolean;
  }>;
  readonly Index: number;
}

/**
 * One server as GET /v1/agent/members shows it (Consul's api.AgentMember). Addr and Port are the
 * server's RPC address (Conclave has no separate gossip port). Status: 1 alive, 4 failed (serf's).
 */
export interface AgentMember {
  readonly Name: string;
  readonly Addr: string;
  readonly Port: number;
  readonly Tags: Readonly<Record<string, string>>;
  readonly Status: number;
}

/** Why a request failed, in terms the HTTP layer maps to Consul's status codes and texts. */
export type ServerErrorCode =
  /** HTTP 500 "No cluster leader". */
  | 'no-leader'
  /** HTTP 500: the write was accepted but its outcome is unknown (leader lost, timed out). */
  | 'unknown-outcome'
  /** HTTP 500: overtaken by a restore; the write did not take effect. */
  | 'aborted-by-restore'
  /** HTTP 400: the request is malformed or refused for its content. */
  | 'bad-request'
  /** HTTP 404. */
  | 'not-found'
  /** HTTP 503: the server is shutting down or not ready. */
  | 'unavailable'
  /** HTTP 403 with Consul's "Permission denied..." text: the token may not do this. */
  | 'permission-denied'
  /** HTTP 403 "ACL not found": the token is not one this server knows. */
  | 'acl-not-found'
  /** "No path to datacenter": ?dc names a datacenter this server has no route to. */
  | 'no-path-to-dc'
  /** HTTP 500: anything else. */
  | 'internal';

export class ServerError extends Error {
  override readonly name = 'ServerError';
  readonly code: ServerErrorCode;
  constructor(code: ServerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** A read-only transaction's answer (Consul serves those without going through Raft). */
export interface ReadTxnReply {
  readonly results: readonly TxnResult[];
  readonly errors: readonly TxnError[];
}

/** How a snapshot request arrived: Consul reads only ?stale, ?dc and the token for /v1/snapshot. */
export interface SnapshotOptions {
  /** ?stale: any server answers from its own state (a save only; a restore refuses it). */
  readonly stale: boolean;
  /** ?dc; '' or absent: this server's datacenter. */
  readonly dc?: string;
  /** The ACL token the request carried ('' or absent: none). */
  readonly token?: string;
  /** Aborted when the client goes away. */
  readonly signal?: AbortSignal;
}

/** A save: Consul's query meta, known before the first byte, and the archive (gzip bytes). */
export interface SnapshotSaveReply {
  readonly meta: { readonly index: number; readonly knownLeader: boolean; readonly lastContactMs: number };
  /**
   * The archive's bytes. It errors (never just ends) if the save fails midway, so a cut-short
   * archive is never taken for a whole one. Read it to the end or destroy() it: either releases
   * what the save holds (a scratch file, a stream from the leader).
   */
  readonly body: Readable;
}

export interface ServerApi {
  /** Consul's agent facts: Config.NodeName, Config.Datacenter, Config.Version. */
  readonly nodeName: string;
  readonly datacenter: string;
  readonly version: string;

  /**
   * Runs a write through Raft (on the leader; a follower forwards it) and returns what applying
   * it produced. Rejects with ServerError.
   */
  apply(command: Command, o?: ApplyOptions): Promise<ApplyResult>;

  kvGet(key: string, o: ReadOptions): Promise<{ meta: ReadMeta; entry: DirEntry | undefined }>;
  /** Every entry whose key starts with `prefix` (recurse). */
  kvList(prefix: string, o: ReadOptions): Promise<{ meta: ReadMeta; entries: readonly DirEntry[] }>;
  /** Consul's ?keys: keys under `prefix`, folded at the first `separator` after it ('' = no folding). */
  kvKeys(prefix: string, separator: string, o: ReadOptions): Promise<{ meta: ReadMeta; keys: readonly string[] }>;
  /** A transaction made only of read verbs. */
  readTxn(ops: readonly KvReadOp[], o: ReadOptions): Promise<{ meta: ReadMeta; reply: ReadTxnReply }>;

  /** GET /v1/session/info/<id>: none or one session; blocking on the sessions table. */
  sessionInfo(id: string, o: ReadOptions): Promise<{ meta: ReadMeta; sessions: readonly Session[] }>;
  /** GET /v1/session/list, or /v1/session/node/<node> when `node` is given. */
  sessionList(node: string | undefined, o: ReadOptions): Promise<{ meta: ReadMeta; sessions: readonly Session[] }>;
  /**
   * A catalog or health read (see CatalogQuery): `json` is Consul's answer body, null where Consul finds
   * nothing. Blocking on the query's tables, with Consul's per-table index.
   */
  catalogRead(query: CatalogQuery, o: ReadOptions): Promise<{ meta: ReadMeta; json: unknown }>;
  /** PUT /v1/session/renew/<id>: the session, its TTL timer restarted on the leader; `not-found` when gone. */
  sessionRenew(id: string, o?: ApplyOptions): Promise<readonly Session[]>;
  /**
   * GET /v1/agent/members: every server of the cluster, alive when the leader heard from it lately
   * (asked of the leader; without one, this server's own view).
   */
  members(): Promise<readonly AgentMember[]>;

  /** The leader's server RPC address ("127.0.0.1:8300"), '' when there is none. */
  leaderAddress(): Promise<string>;
  /** Every datacenter this server has a route to, its own included, sorted (/v1/catalog/datacenters). */
  knownDatacenters(): readonly string[];
  /** The voters' server RPC addresses. */
  peers(): Promise<readonly string[]>;
  raftConfiguration(o: ReadOptions): Promise<RaftConfigurationReply>;
  /** POST /v1/operator/raft/transfer-leader (?id= names the target; otherwise any voter). */
  transferLeadership(targetId?: string): Promise<void>;
  /** DELETE /v1/operator/raft/peer with ?id= or ?address=. */
  removePeer(by: { readonly id?: string; readonly address?: string }): Promise<void>;

  /** GET /v1/snapshot: consistent (on the leader, after a quorum round) unless `stale`. */
  snapshotSave(o: SnapshotOptions): Promise<SnapshotSaveReply>;
  /**
   * PUT /v1/snapshot: checks the whole archive, then restores it through Raft on the leader.
   * Resolves once the leader serves the restored state. A bad archive rejects with `bad-request`
   * and changes nothing.
   */
  snapshotRestore(archive: Readable, o: SnapshotOptions): Promise<void>;
}
