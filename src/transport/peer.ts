// One peer as the sending side sees it: its address, its three connections (append, control,
// snapshot), its two lanes and its counters. Also the transport's options and their defaults.
//
// A channel is never left in gRPC's reconnect back-off: a channel found in TRANSIENT_FAILURE when a
// lane opens, a vote goes out or a snapshot starts is replaced by a new one (grpc-js has no public
// resetConnectBackoff). The lanes' own back-off (lane.ts), which inbound traffic from the peer cuts
// short, is then the only thing that paces reconnection, and a peer that is back is reached at once.

import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { NodeId } from '../raft/index.js';
import type { DropReason } from './drops.js';
import { TransportError } from './errors.js';
import { channelOptions } from './grpc-util.js';
import { Lane, type LaneLimits, type LaneState } from './lane.js';
import { checkLimit, transportDefaults, transportLimits } from './limits.js';
import { raftPeerService } from './proto.js';

export interface PeerTransportOptions {
  /** This server's node id. Incoming messages addressed to anyone else are dropped. */
  readonly id: NodeId;
  /** Defaults to a silent logger. */
  readonly logger?: Logger;
  /** Defaults to insecure (plaintext) credentials. */
  readonly serverCredentials?: grpc.ServerCredentials;
  readonly channelCredentials?: grpc.ChannelCredentials;
  /** Limits; each defaults to `transportDefaults` (src/transport/limits.ts documents them). */
  readonly appendWindowCount?: number;
  readonly appendWindowBytes?: number;
  readonly appendQueueCount?: number;
  readonly appendQueueBytes?: number;
  readonly heartbeatWindowCount?: number;
  readonly heartbeatQueueCount?: number;
  /** Receiving side: acknowledge after this many messages or this delay, whichever is first. */
  readonly streamAckEveryCount?: number;
  readonly streamAckDelayMs?: number;
  readonly maxInflightUnaryCount?: number;
  readonly unaryTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly ackTimeoutMs?: number;
  readonly reconnectBackoffMinMs?: number;
  readonly reconnectBackoffMaxMs?: number;
  readonly snapshotChunkBytes?: number;
  readonly snapshotChunksInFlightCount?: number;
  readonly snapshotBaseTimeoutMs?: number;
  readonly snapshotMinThroughputBytesPerSec?: number;
  readonly dropLogIntervalMs?: number;
  readonly sweepIntervalMs?: number;
}

export type Settings = Required<Omit<PeerTransportOptions, 'id' | 'logger' | 'serverCredentials' | 'channelCredentials'>>;

export interface LaneStats {
  readonly state: LaneState;
  readonly queued: number;
  readonly inflight: number;
}

export interface PeerStats {
  readonly address: string;
  /** Messages handed to send() for this peer (including ones dropped later). */
  readonly sent: number;
  /** Messages the peer confirmed it consumed (stream acks, successful unary calls). */
  readonly delivered: number;
  readonly dropped: Readonly<Partial<Record<DropReason, number>>>;
  readonly append: LaneStats;
  readonly heartbeat: LaneStats;
  readonly unaryInflight: number;
  readonly sendingSnapshot: boolean;
}

export type Connection = 'append' | 'control' | 'snapshot';

export class Peer {
  sent = 0;
  delivered = 0;
  readonly dropped: Partial<Record<DropReason, number>> = {};
  unaryInflight = 0;
  snapshot: AbortController | undefined;
  private readonly clients: Record<Connection, grpc.Client>;
  private readonly creds: grpc.ChannelCredentials;
  private readonly backoff: { minMs: number; maxMs: number };
  private closed = false;
  readonly append: Lane;
  readonly heartbeat: Lane;

  constructor(
    readonly id: NodeId,
    readonly address: string,
    creds: grpc.ChannelCredentials,
    readonly metadata: grpc.Metadata,
    s: Settings,
    onDrop: (peer: Peer, reason: DropReason, count: number, detail: string) => void,
    logger: Logger,
  ) {
    this.creds = creds;
    this.backoff = { minMs: s.reconnectBackoffMinMs, maxMs: s.reconnectBackoffMaxMs };
    this.clients = { append: this.newClient('append'), control: this.newClient('control'), snapshot: this.newClient('snapshot') };
    const common = {
      connectTimeoutMs: s.connectTimeoutMs,
      ackTimeoutMs: s.ackTimeoutMs,
      reconnectBackoffMinMs: s.reconnectBackoffMinMs,
      reconnectBackoffMaxMs: s.reconnectBackoffMaxMs,
    };
    const appendLimits: LaneLimits = {
      ...common,
      windowCount: s.appendWindowCount,
      windowBytes: s.appendWindowBytes,
      queueCount: s.appendQueueCount,
      queueBytes: s.appendQueueBytes,
    };
    const heartbeatLimits: LaneLimits = {
      ...common,
      windowCount: s.heartbeatWindowCount,
      windowBytes: transportLimits.grpcMaxMessageBytes,
      queueCount: s.heartbeatQueueCount,
      queueBytes: transportLimits.grpcMaxMessageBytes,
    };
    const hooks = {
      drop: (reason: DropReason, count: number, detail: string) => onDrop(this, reason, count, detail),
      delivered: (count: number) => {
        this.delivered += count;
      },
    };
    const svc = raftPeerService();
    this.append = new Lane('append', id, () => this.client('append'), svc.appendStream, metadata, appendLimits, hooks, logger);
    this.heartbeat = new Lane('heartbeat', id, () => this.client('control'), svc.heartbeatStream, metadata, heartbeatLimits, hooks, logger);
  }

  /**
   * The channel for a new call on `which`: the current one, or a new one in its place when the current
   * one is in TRANSIENT_FAILURE (gRPC's reconnect back-off, in which every call fails at once).
   */
  client(which: Connection): grpc.Client {
    const current = this.clients[which];
    if (this.closed) return current;
    if (current.getChannel().getConnectivityState(false) !== grpc.connectivityState.TRANSIENT_FAILURE) return current;
    const fresh = this.newClient(which);
    this.clients[which] = fresh;
    current.close();
    return fresh;
  }

  /** Opens both lanes without a message: the peer learns at once that this server is up. */
  announce(): void {
    this.append.connect();
    this.heartbeat.connect();
  }

  /** Something arrived from this peer, so it is up: its lanes stop waiting out their back-off. */
  revive(): void {
    this.append.revive();
    this.heartbeat.revive();
  }

  close(reason: DropReason, error: TransportError): void {
    this.closed = true;
    this.append.close(reason, error.message);
    this.heartbeat.close(reason, error.message);
    this.snapshot?.abort(error);
    for (const c of Object.values(this.clients)) c.close();
  }

  private newClient(which: Connection): grpc.Client {
    return new grpc.Client(this.address, this.creds, channelOptions(which, this.backoff));
  }

  stats(): PeerStats {
    return {
      address: this.address,
      sent: this.sent,
      delivered: this.delivered,
      dropped: { ...this.dropped },
      append: this.append.status,
      heartbeat: this.heartbeat.status,
      unaryInflight: this.unaryInflight,
      sendingSnapshot: this.snapshot !== undefined,
    };
  }
}

export function settingsFrom(o: PeerTransportOptions): Settings {
  const d = transportDefaults;
  const s: Settings = {
    appendWindowCount: o.appendWindowCount ?? d.appendWindowCount,
    appendWindowBytes: o.appendWindowBytes ?? d.appendWindowBytes,
    appendQueueCount: o.appendQueueCount ?? d.appendQueueCount,
    appendQueueBytes: o.appendQueueBytes ?? d.appendQueueBytes,
    heartbeatWindowCount: o.heartbeatWindowCount ?? d.heartbeatWindowCount,
    heartbeatQueueCount: o.heartbeatQueueCount ?? d.heartbeatQueueCount,
    streamAckEveryCount: o.streamAckEveryCount ?? d.streamAckEveryCount,
    streamAckDelayMs: o.streamAckDelayMs ?? d.streamAckDelayMs,
    maxInflightUnaryCount: o.maxInflightUnaryCount ?? d.maxInflightUnaryCount,
    unaryTimeoutMs: o.unaryTimeoutMs ?? d.unaryTimeoutMs,
    connectTimeoutMs: o.connectTimeoutMs ?? d.connectTimeoutMs,
    ackTimeoutMs: o.ackTimeoutMs ?? d.ackTimeoutMs,
    reconnectBackoffMinMs: o.reconnectBackoffMinMs ?? d.reconnectBackoffMinMs,
    reconnectBackoffMaxMs: o.reconnectBackoffMaxMs ?? d.reconnectBackoffMaxMs,
    snapshotChunkBytes: o.snapshotChunkBytes ?? d.snapshotChunkBytes,
    snapshotChunksInFlightCount: o.snapshotChunksInFlightCount ?? d.snapshotChunksInFlightCount,
    snapshotBaseTimeoutMs: o.snapshotBaseTimeoutMs ?? d.snapshotBaseTimeoutMs,
    snapshotMinThroughputBytesPerSec: o.snapshotMinThroughputBytesPerSec ?? d.snapshotMinThroughputBytesPerSec,
    dropLogIntervalMs: o.dropLogIntervalMs ?? d.dropLogIntervalMs,
    sweepIntervalMs: o.sweepIntervalMs ?? d.sweepIntervalMs,
  };
  const big = Number.MAX_SAFE_INTEGER;
  checkLimit('appendWindowCount', s.appendWindowCount, 1, 1 << 20);
  checkLimit('appendWindowBytes', s.appendWindowBytes, 1, big);
  checkLimit('appendQueueCount', s.appendQueueCount, 1, 1 << 24);
  checkLimit('appendQueueBytes', s.appendQueueBytes, 1, big);
  checkLimit('heartbeatWindowCount', s.heartbeatWindowCount, 1, 1 << 20);
  checkLimit('heartbeatQueueCount', s.heartbeatQueueCount, 1, 1 << 20);
  checkLimit('streamAckEveryCount', s.streamAckEveryCount, 1, 1 << 20);
  checkLimit('maxInflightUnaryCount', s.maxInflightUnaryCount, 1, 1 << 20);
  checkLimit('unaryTimeoutMs', s.unaryTimeoutMs, 1, big);
  checkLimit('connectTimeoutMs', s.connectTimeoutMs, 1, big);
  checkLimit('ackTimeoutMs', s.ackTimeoutMs, 1, big);
  // A sender treats a window unacknowledged for ackTimeoutMs as a dead stream.
  checkLimit('streamAckDelayMs', s.streamAckDelayMs, 0, Math.floor(s.ackTimeoutMs / 2));
  checkLimit('reconnectBackoffMinMs', s.reconnectBackoffMinMs, 1, big);
  checkLimit('reconnectBackoffMaxMs', s.reconnectBackoffMaxMs, s.reconnectBackoffMinMs, big);
  checkLimit('snapshotChunkBytes', s.snapshotChunkBytes, 1, transportLimits.maxChunkBytes);
  checkLimit('snapshotChunksInFlightCount', s.snapshotChunksInFlightCount, 1, 1024);
  checkLimit('snapshotBaseTimeoutMs', s.snapshotBaseTimeoutMs, 1, big);
  checkLimit('snapshotMinThroughputBytesPerSec', s.snapshotMinThroughputBytesPerSec, 1, big);
  checkLimit('dropLogIntervalMs', s.dropLogIntervalMs, 0, big);
  checkLimit('sweepIntervalMs', s.sweepIntervalMs, 1, 60_000);
  return s;
}
