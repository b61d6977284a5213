// Every limit and default of the transport, with its unit as the last word of its name. Options of
// PeerTransport and ServerRpc fall back to these; `checkPeerTransportLimits` runs at construction so a
// bad combination fails loudly at start-up, not as a stuck stream later.

import { KiB, MiB } from '../base/index.js';

export const transportLimits = {
  /** gRPC's default maximum receive message size; we keep it and stay under it everywhere. */
  grpcMaxMessageBytes: 4 * MiB,
  /** Largest append we put on the wire (estimated): the 4 MiB gRPC cap less room for framing. */
  maxAppendMessageBytes: 4 * MiB - 64 * KiB,
  /** A snapshot or restore data chunk may never exceed this (receivers reject larger chunks). */
  maxChunkBytes: 1 * MiB,
} as const;

export const transportDefaults = {
  /** Append messages written to a peer's stream but not yet acknowledged. hashicorp/raft keeps 2
   *  AppendEntries in flight on a LAN; acks here are cheap and coalesced, so a wider window costs
   *  little and hides round trips on slower links. */
  appendWindowCount: 32,
  /** Bytes (estimated) written but not acknowledged on the append stream; one message always fits. */
  appendWindowBytes: 8 * MiB,
  /** Messages waiting behind the window per peer (etcd's rafthttp streamBufSize is 4096). */
  appendQueueCount: 4096,
  /** Bytes waiting behind the window per peer. */
  appendQueueBytes: 64 * MiB,
  /** Heartbeats are tiny and only the newest matter: short window, short queue. */
  heartbeatWindowCount: 16,
  heartbeatQueueCount: 64,
  /** A receiving stream acknowledges after this many messages, or after streamAckDelayMs, whichever
   *  comes first. Keep it at most half the senders' windows, or they pace at the delay. */
  streamAckEveryCount: 8,
  streamAckDelayMs: 20,
  /** Vote / TimeoutNow calls outstanding per peer before further ones are dropped. */
  maxInflightUnaryCount: 16,
  /** Deadline of one Vote or TimeoutNow call. Elections time out in ~1 s, so later is useless. */
  unaryTimeoutMs: 1_000,
  /** A stream that has not been acknowledged as open within this is abandoned (peer black-holed). */
  connectTimeoutMs: 2_000,
  /** Messages in flight with no acknowledgement for this long reset the stream. */
  ackTimeoutMs: 5_000,
  /** Reconnect backoff after a failed or broken stream: doubles from min to max, ±20 % jitter. Any
   *  message or stream from the peer ends the wait early (lane.ts, revive), so the max only matters
   *  when a peer is back but silent towards us (its own streams to us failed too, or a one-way
   *  partition healed). It is 1 s, not 5 s: that case then costs at most about one election timeout,
   *  and what the max saves is one refused loopback/LAN connect per lane per second to a dead peer.
   *  gRPC's own channel back-off uses the same bounds, and a channel in it is replaced (peer.ts). */
  reconnectBackoffMinMs: 100,
  reconnectBackoffMaxMs: 1_000,
  /** Snapshot data chunk size: well under gRPC's 4 MiB message limit. */
  snapshotChunkBytes: 512 * KiB,
  /** Snapshot chunks handed to gRPC but not yet flushed to the socket. Bounds sender memory to
   *  about chunkBytes × this. */
  snapshotChunksInFlightCount: 4,
  /** A verified incoming stream (snapshot, save or restore body) reads this far ahead of its consumer. */
  verifiedReadAheadBytes: 64 * KiB,
  /** InstallSnapshot deadline = base + size / minimum throughput. hashicorp/raft scales its deadline
   *  with size the same way (timeout × size / 256 KB). 20 MiB → 30 s; 1 GiB → about 17.5 min. */
  snapshotBaseTimeoutMs: 10_000,
  snapshotMinThroughputBytesPerSec: 1 * MiB,
  /** Drops of one kind to one peer are logged at most once per interval (with the count since). */
  dropLogIntervalMs: 5_000,
  /** How often the transport checks connect and ack deadlines. */
  sweepIntervalMs: 250,
  /** Deadline of a forwarded apply or read. */
  rpcTimeoutMs: 30_000,
  /** Forwarded calls one follower's Forward stream may have running on the leader at once (blocking
   *  queries count while they wait). */
  forwardInflightCount: 100_000,
} as const;

/** Throws a RangeError naming the option, its value and the rule when a limit is out of range. */
export function checkLimit(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`transport option ${name} is ${value}; it must be an integer in [${min}, ${max}]`);
  }
}
