// The data of the KV tables, named as Consul names them (structs.DirEntry, state.Tombstone,
// state.IndexEntry), so that the HTTP layer and the state.bin codec need no renaming.

/** A Raft log position as the FSM sees it (same meaning as `Index` in src/raft/types.ts). */
export type LogIndex = number;
/** A Raft term (same meaning as `Term` in src/raft/types.ts). */
export type LogTerm = number;

// The KV table rows are the bodies of state.bin records, so they are defined beside that codec.
import type { DirEntry, Session } from '../snapshot/index.js';
export type { DirEntry, Tombstone, Session, SessionBehavior, ServiceCheck } from '../snapshot/index.js';

/** The tables that keep an index in the `index` table, with Consul's table names. */
export type KvTableName = 'kvs' | 'tombstones' | 'sessions';

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
