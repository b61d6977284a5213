// Counting and logging dropped messages. Raft tolerates lost messages (the core retransmits), so
// send() never fails; instead every drop is counted per peer and reason, and logged at most once per
// interval per (peer, reason) with the number suppressed since, so an outage of a minute writes a few
// lines instead of thousands.

import type { Logger } from 'pino';

export type DropReason =
  /** The peer's stream failed recently and the reconnect backoff has not elapsed. */
  | 'unreachable'
  /** The per-peer queue is at its message or byte limit. */
  | 'queue-full'
  /** Queued or in-flight when the stream failed. */
  | 'stream-failed'
  /** Queued when the peer was removed or its address changed. */
  | 'peer-changed'
  /** No address is known for the message's `to`. */
  | 'unknown-peer'
  /** Larger than the wire limit. */
  | 'too-large'
  /** A snapshot message handed to send(): snapshots travel through sendSnapshot(). */
  | 'misrouted'
  /** Too many Vote/TimeoutNow calls already outstanding to the peer. */
  | 'unary-limit'
  /** A Vote/TimeoutNow call failed (peer down, deadline, refused). */
  | 'unary-failed'
  /** The transport is closed. */
  | 'closed';

/** Logs at most once per interval per key, reporting how many occurrences were suppressed since. */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs: number,
  ) {}

  warn(key: string, count: number, fields: Record<string, unknown>, message: string, now: number): void {
    const prev = this.last.get(key);
    if (prev !== undefined && now - prev.at < this.intervalMs) {
      prev.suppressed += count;
      return;
    }
    this.last.set(key, { at: now, suppressed: 0 });
    this.logger.warn({ ...fields, count, suppressedSinceLastLog: prev?.suppressed ?? 0 }, message);
  }

  /** Forgets every key starting with `prefix` (a removed peer). */
  forget(prefix: string): void {
    for (const key of this.last.keys()) if (key.startsWith(prefix)) this.last.delete(key);
  }
}
