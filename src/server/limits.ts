// Every limit and default of the server layer, with its unit last and its reason beside it.

export const serverLimits = {
  /** /v1/agent/members: a server is alive when heard from within 3 election timeouts, and at least this. */
  memberAliveMinMs: 3_000,
  /** Deadline of a hello to a possible peer: an unreachable address must not stall discovery. */
  helloTimeoutMs: 2_000,
  /** A forwarded read's deadline is its blocking wait plus this, for the leader's own work and the reply. */
  forwardedReadMarginMs: 15_000,
  /** A blocking read with nothing to watch (txn, raft configuration) sleeps at most this long, then answers. */
  unwatchedBlockMaxMs: 1_000,
  /**
   * While no leader is known a request looks again after 50, 100, 150... ms, at most 250 ms, or as soon
   * as the node sees a leader, role or term change.
   */
  leaderPollStepMs: 50,
  leaderPollMaxMs: 250,
  /** After a leader's "retry" (it has not committed its first entry yet): 10, 20, 30... ms, at most 100 ms. */
  retryPollStepMs: 10,
  retryPollMaxMs: 100,
  /**
   * A follower serving a read batch itself waits at most this long for its state machine to reach the
   * leader's read index; past it (a follower far behind, or installing a snapshot) the read is
   * forwarded to the leader instead, as before read batches.
   */
  followerReadApplyWaitMs: 1_000,
  /** Deadline of a read round's call to the leader (a ?consistent one includes a quorum round). */
  readIndexTimeoutMs: 5_000,
  /** The leader compares the servers' catalog registrations and serfHealth with what it sees this often. */
  catalogReconcileMs: 1_000,
  /** A session create on a new leader waits at most this long for the servers to be in the catalog. */
  catalogReadyWaitMs: 10_000,
  /**
   * A save, restore or write forwarded to a leader that has since been replaced gets this long to answer
   * before it is given up on: a deposed leader that is alive learns the new term within a heartbeat
   * and answers with what it knows ("nothing was restored"), better than our unknown outcome; a paused
   * or cut-off one never answers.
   */
  forwardReplacedGraceMs: 2_000,
} as const;
