// The data of the KV tables, named as Consul names them (structs.DirEntry, state.Tombstone,
// state.IndexEntry), so that the HTTP layer and the state.bin codec need no renaming.

/** A Raft log position as the FSM sees it (same meaning as `Index` in src/raft/types.ts). */
export type LogIndex = number;
/** A Raft term (same meaning as `Term` in src/raft/types.ts). */
export type LogTerm = number;

/**
 * One KV entry, Consul's `DirEntry`.
 * Invariant (stored entries): CreateIndex <= ModifyIndex <= the `kvs` table index <= the applied index.
 * Every read hands out its own copy of `Value`. (txn get-or-empty answers a missing key with zeros.)
 */
export interface DirEntry {
  readonly Key: string;
  /** Opaque uint64 for clients; limited to 0..2^53-1 here (a JS number holds no more exactly). */
  readonly Flags: number;
  /** The value bytes; empty for "no value" (Consul's JSON shows `null` then). */
  readonly Value: Uint8Array;
  readonly CreateIndex: LogIndex;
  readonly ModifyIndex: LogIndex;
  /** How many times the lock on this key was acquired (sessions come later; 0 until then). */
  readonly LockIndex: number;
  /** The session holding the lock, '' when none. */
  readonly Session: string;
}

/** A deleted key (or deleted prefix for a delete-tree) and the index at which it was deleted. */
export interface Tombstone {
  readonly Key: string;
  readonly Index: LogIndex;
}

/** The tables that keep an index in the `index` table, with Consul's table names. */
export type KvTableName = 'kvs' | 'tombstones';

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
 * - `kvs`: Consul's KVS.Apply answer: `true` for set/delete/delete-tree, the CAS outcome otherwise.
 * - `txn`: Consul's TxnResponse: either results (errors empty) or errors (results empty), never both.
 * - `tombstone-reap`: nothing to report.
 * - `noop`: a noop/config entry or an ignorable unknown command (Consul's IgnoreUnknownTypeFlag).
 */
export type ApplyResult =
  | { readonly kind: 'kvs'; readonly ok: boolean }
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
