// The KV table rows as state.bin carries them, named as Consul names them (structs.DirEntry,
// state.Tombstone). The FSM stores the same shapes and re-exports these types.

import type { Index as LogIndex } from '../raft/index.js';
import type { Uint64 } from './values.js';

/**
 * One KV entry, Consul's `DirEntry`.
 * Invariant (stored entries): CreateIndex <= ModifyIndex <= the `kvs` table index <= the applied index.
 * Every read hands out its own copy of `Value`. (txn get-or-empty answers a missing key with zeros.)
 */
export interface DirEntry {
  readonly Key: string;
  /** Opaque uint64 for clients, 0..2^64-1: a number below 2^53, a bigint from there (see `Uint64`). */
  readonly Flags: Uint64;
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

/** Consul's session behaviours: what happens to the keys a session holds when it is invalidated. */
export type SessionBehavior = 'release' | 'delete';

/** A service health check a session depends on (Consul's structs.ServiceCheck). */
export interface ServiceCheck {
  readonly ID: string;
  readonly Namespace: string;
}

/**
 * One session, Consul's `structs.Session` (CE fields). `LockDelay` is Go's time.Duration: nanoseconds.
 * Invariant (stored sessions): CreateIndex <= ModifyIndex <= the `sessions` table index.
 */
export interface Session {
  readonly ID: string;
  readonly Name: string;
  readonly Node: string;
  readonly LockDelay: number;
  readonly Behavior: SessionBehavior;
  /** A Go duration string ('' for none), as the client sent it. */
  readonly TTL: string;
  readonly NodeChecks: readonly string[];
  readonly ServiceChecks: readonly ServiceCheck[];
  readonly CreateIndex: LogIndex;
  readonly ModifyIndex: LogIndex;
}
