// The data of the KV tables, named as Consul names them (structs.DirEntry, state.Tombstone,
// state.IndexEntry), so that the HTTP layer and the state.bin codec need no renaming.

/** A Raft log position as the FSM sees it (same meaning as `Index` in src/raft/types.ts). */
export type LogIndex = number;
/** A Raft term (same meaning as `Term` in src/raft/types.ts). */
export type LogTerm = number;

// The KV table rows are the bodies of state.bin records, so they are defined beside that codec.
import type { DirEntry, Session } from '../snapshot/index.js';
export type {
  DirEntry,
  Tombstone,
  Session,
  SessionBehavior,
  ServiceCheck,
  CatalogNode,
  NodeService,
  HealthCheck,
  CheckStatus,
  CheckDefinition,
  ServiceWeights,
  ServiceAddress,
} from '../snapshot/index.js';
import type { CheckStatus } from '../snapshot/index.js';

/** The tables that keep an index in the `index` table, with Consul's table names. */
export type KvTableName = 'kvs' | 'tombstones' | 'sessions' | 'nodes' | 'services' | 'checks';

/** Consul's `TxnResult` for KV operations. */
export interface TxnResult {
  readonly KV: DirEntry;
}

/** Consul's `TxnError`: which operation failed and why, in Consul's words. */
export interface TxnError {
  readonly OpIndex: number;
  readonly What: string;
}

/**
 * What applying one log entry produced.
 * - `kvs`: Consul's KVS.Apply answer: `true` for set/delete/delete-tree, the CAS or lock outcome
 *   otherwise; `error`, present only when there is one, is Consul's apply error, e.g.
 *   `invalid session "..."` for a lock.
 * - `session`: a session create or destroy; `error` (else '') says why a create was refused.
 * - `txn`: Consul's TxnResponse: either results (errors empty) or errors (results empty), never both.
 * - `tombstone-reap`: nothing to report.
 * - `noop`: a noop/config entry or an ignorable unknown command (Consul's IgnoreUnknownTypeFlag).
 */
export type ApplyResult =
  | { readonly kind: 'kvs'; readonly ok: boolean; readonly error?: string }
  | { readonly kind: 'session'; readonly error: string }
  /** A catalog register or deregister; `error` (else '') is Consul's refusal, e.g. "Missing node registration". */
  | { readonly kind: 'catalog'; readonly error: string }
  | { readonly kind: 'txn'; readonly results: readonly TxnResult[]; readonly errors: readonly TxnError[] }
  | { readonly kind: 'tombstone-reap' }
  | { readonly kind: 'noop' };

/** A read's answer plus the index Consul would put in X-Consul-Index for it (always >= 1). */
export interface KeyRead {
  readonly index: LogIndex;
  readonly entry: DirEntry | undefined;
}

export interface ListRead {
  readonly index: LogIndex;
  readonly entries: readonly DirEntry[];
}

export interface KeysRead {
  readonly index: LogIndex;
  readonly keys: readonly string[];
}

export interface SessionRead {
  readonly index: LogIndex;
  readonly sessions: readonly Session[];
}

/**
 * A read of the catalog or of health, one per Consul endpoint:
 *   nodes            GET /v1/catalog/nodes
 *   services         GET /v1/catalog/services
 *   service          GET /v1/catalog/service/<name>[?tag=...] (every tag must match)
 *   node             GET /v1/catalog/node/<node>
 *   node-services    GET /v1/catalog/node-services/<node>
 *   health-node      GET /v1/health/node/<node>
 *   health-checks    GET /v1/health/checks/<service>
 *   health-service   GET /v1/health/service/<service>[?tag=...][&passing]
 *   health-state     GET /v1/health/state/<state>
 */
export type CatalogQuery =
  | { readonly what: 'nodes' }
  | { readonly what: 'services' }
  | { readonly what: 'service'; readonly name: string; readonly tags: readonly string[] }
  | { readonly what: 'node'; readonly node: string }
  | { readonly what: 'node-services'; readonly node: string }
  | { readonly what: 'health-node'; readonly node: string }
  | { readonly what: 'health-checks'; readonly service: string }
  | { readonly what: 'health-service'; readonly service: string; readonly tags: readonly string[]; readonly passing: boolean }
  | { readonly what: 'health-state'; readonly state: CheckStatus | 'any' };

/**
 * A catalog read's answer: `json` is the body Consul answers, already in Consul's JSON shape (field
 * names, nulls for empty Go slices and maps); null where Consul finds nothing (an unknown node for
 * `node` and `node-services`). `index` is what Consul's X-Consul-Index would be (>= 1).
 */
export interface CatalogRead {
  readonly index: LogIndex;
  readonly json: unknown;
}
