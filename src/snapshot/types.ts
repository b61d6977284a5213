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

// ---------------------------------------------------------------------------------------------------
// The catalog: Consul's structs.Node, structs.NodeService and structs.HealthCheck (CE fields we model).
// state.bin carries them inside Register (0) records (structs.RegisterRequest); see catalog-records.ts.
// ---------------------------------------------------------------------------------------------------

/** A catalog node. Invariant (stored): CreateIndex <= ModifyIndex <= the `nodes` table index. */
export interface CatalogNode {
  /** Consul's node ID (a UUID) or ''. */
  readonly ID: string;
  /** The node name: not empty, no NUL (it is a database key prefix). */
  readonly Node: string;
  readonly Address: string;
  readonly Datacenter: string;
  readonly TaggedAddresses: Readonly<Record<string, string>>;
  /** Consul's NodeMeta (JSON `Meta` on /v1/catalog/nodes). */
  readonly Meta: Readonly<Record<string, string>>;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

/** Consul's structs.Weights. */
export interface ServiceWeights {
  readonly Passing: number;
  readonly Warning: number;
}

/** Consul's structs.ServiceAddress (a value of a service's TaggedAddresses). */
export interface ServiceAddress {
  readonly Address: string;
  readonly Port: number;
}

/** A service instance on a node. Invariant (stored): CreateIndex <= ModifyIndex <= the `services` table index. */
export interface NodeService {
  /** '' for a typical service (Consul's ServiceKind). */
  readonly Kind: string;
  /** Unique on its node; defaults to the service name. */
  readonly ID: string;
  /** The service name. */
  readonly Service: string;
  readonly Tags: readonly string[];
  readonly Address: string;
  readonly TaggedAddresses: Readonly<Record<string, ServiceAddress>>;
  readonly Meta: Readonly<Record<string, string>>;
  readonly Port: number;
  readonly Weights: ServiceWeights;
  readonly EnableTagOverride: boolean;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

export type CheckStatus = 'passing' | 'warning' | 'critical';

/**
 * How an agent runs a check (Consul's structs.HealthCheckDefinition, the fields we model). Durations are
 * Go time.Duration values: nanoseconds. All empty/0 for a check registered through the catalog.
 */
export interface CheckDefinition {
  readonly HTTP: string;
  readonly Method: string;
  readonly TLSSkipVerify: boolean;
  readonly TCP: string;
  readonly Interval: number;
  readonly Timeout: number;
  readonly DeregisterCriticalServiceAfter: number;
}

/** A health check. Invariant (stored): CreateIndex <= ModifyIndex <= the `checks` table index. */
export interface HealthCheck {
  readonly Node: string;
  /** Unique on its node; defaults to the check name. */
  readonly CheckID: string;
  readonly Name: string;
  readonly Status: CheckStatus;
  readonly Notes: string;
  readonly Output: string;
  /** '' for a node-level check. */
  readonly ServiceID: string;
  /** Copied from the service at registration (Consul does the same). */
  readonly ServiceName: string;
  readonly ServiceTags: readonly string[];
  /** 'ttl', 'http', 'tcp', 'serf' or '' (Consul's Type). */
  readonly Type: string;
  readonly Definition: CheckDefinition;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}
