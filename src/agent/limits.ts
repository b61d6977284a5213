// Every limit and default the agent sets where it wires the layers together, with its unit last and
// its reason beside it. Limits that belong to a layer (gRPC message sizes, HTTP timeouts) stay in that
// layer's table; the agent uses them from there.

import { MiB } from '../base/index.js';

export const agentLimits = {
  /** How often a fresh server looks for its peers (bootstrap_expect, retry_join). */
  discoveryIntervalMs: 1_000,
  /** How often the leader checks whether a non-voter has caught up and can be promoted. */
  promotionIntervalMs: 1_000,
  /**
   * How often the agent compares its own registrations with the catalog and repairs the difference
   * (Consul's anti-entropy runs about once a minute; every change also syncs at once).
   */
  antiEntropyIntervalMs: 5_000,
  /** Entry bytes per append message the Raft node builds; far below the transport's append limit. */
  raftMaxMessageBytes: 1 * MiB,
  /** Append messages the Raft core keeps in flight to one follower. */
  raftMaxInflightMessages: 64,
  /**
   * How long a request waits for a leader before Consul's "No cluster leader": this many election
   * timeouts, so a slow-ticking cluster gets the time to elect one...
   */
  leaderWaitElectionTimeouts: 4,
  /** ...and never less than this. */
  leaderWaitMinMs: 2_000,
} as const;
