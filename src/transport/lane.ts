// A lane: one long-lived bidirectional gRPC stream to one peer, carrying core messages in order.
//
// The sender keeps a bounded queue and a bounded window:
//
//   send() ──> queue (≤ queueCount messages, ≤ queueBytes) ──> window (≤ windowCount, ≤ windowBytes
//              written but not acknowledged) ──> HTTP/2 stream ──> peer: deliver, ack(consumed)
//
// State machine:
//
//   idle ──send──> connecting ──first ack──> ready
//     ^                │                       │
//     │   connect timeout, error, end          │ error, end, ack timeout, bad ack
//     │                v                       v
//     └──backoff elapsed── backoff <───────────┘
//        (or revive(): the peer is back)
//
// While in backoff, sends are dropped at once ('unreachable'): they would be stale by the time the peer
// is back and the core retransmits anyway. A peer that shows it is back (the transport received
// something from it) ends the wait early: revive() brings the next attempt forward to at most
// reconnectBackoffMinMs after the last failure, and opens the stream at once when that has passed,
// so a restarted peer is reached in well under a second whatever back-off had built up, while a
// stream that keeps failing is still retried at most once per reconnectBackoffMinMs. connect() opens
// an idle lane without a message (a starting server makes itself known to its peers that way). A failure drops whatever was queued or in flight. Order is
// preserved: messages leave the queue in send order on a single stream, and drops never reorder, so
// what the peer receives is always a subsequence of what was sent, in send order.

import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Message, NodeId } from '../raft/index.js';
import { decodeStreamAck, encodePeerMessage } from './codec.js';
import type { DropReason } from './drops.js';
import type { Method } from './proto.js';

export type LaneName = 'append' | 'heartbeat';
export type LaneState = 'idle' | 'connecting' | 'ready' | 'backoff' | 'closed';

export interface LaneLimits {
  readonly windowCount: number;
  readonly windowBytes: number;
  readonly queueCount: number;
  readonly queueBytes: number;
  readonly connectTimeoutMs: number;
  readonly ackTimeoutMs: number;
  readonly reconnectBackoffMinMs: number;
  readonly reconnectBackoffMaxMs: number;
}

export interface LaneHooks {
  readonly drop: (reason: DropReason, count: number, detail: string) => void;
  /** Called with the number of messages the peer newly acknowledged as consumed. */
  readonly delivered: (count: number) => void;
}

interface Queued {
  readonly message: Message;
  readonly bytes: number;
}

export function now(): number {
  return performance.now();
}

export class Lane {
  private state: LaneState = 'idle';
  private call: grpc.ClientDuplexStream<object, unknown> | undefined;
  /** Invariant: queue[queueHead..] are the waiting messages, in send order. */
  private queue: Queued[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  /** Byte sizes of written, unacknowledged messages, oldest first. */
  private inflight: number[] = [];
  private inflightHead = 0;
  private inflightBytes = 0;
  private written = 0;
  private acked = 0;
  private openedAt = 0;
  /** Last time the window made progress (an ack, or the first write into an empty window). */
  private progressAt = 0;
  private retryAt = 0;
  private backoffMs: number;
  private failures = 0;
  private failedAt = 0;
  private lastError = '';

  constructor(
    readonly name: LaneName,
    private readonly peer: NodeId,
    /** The peer's channel for this lane, asked again at every open (the peer may replace it). */
    private readonly client: () => grpc.Client,
    private readonly method: Method,
    private readonly metadata: grpc.Metadata,
    private readonly limits: LaneLimits,
    private readonly hooks: LaneHooks,
    private readonly logger: Logger,
  ) {
    this.backoffMs = limits.reconnectBackoffMinMs;
  }

  get status(): { readonly state: LaneState; readonly queued: number; readonly inflight: number } {
    return { state: this.state, queued: this.queue.length - this.queueHead, inflight: this.written - this.acked };
  }

  /** Queues a message for the peer, or drops it (counted and logged by the hooks). Never throws. */
  enqueue(message: Message, bytes: number): void {
    if (this.state === 'closed') return this.hooks.drop('closed', 1, 'the lane is closed');
    if (this.state === 'backoff') {
      const t = now();
      if (t < this.retryAt) {
        return this.hooks.drop(
          'unreachable',
          1,
          `${this.name} stream is down (${this.lastError}); next attempt in ${Math.ceil(this.retryAt - t)} ms`,
        );
      }
      this.state = 'idle';
    }
    const queued = this.queue.length - this.queueHead;
    if (queued >= this.limits.queueCount || (queued > 0 && this.queuedBytes + bytes > this.limits.queueBytes)) {
      return this.hooks.drop(
        'queue-full',
        1,
        `${this.name} queue holds ${queued} messages / ${this.queuedBytes} bytes ` +
          `(limits ${this.limits.queueCount} / ${this.limits.queueBytes}); the peer is slow or stalled`,
      );
    }
    this.queue.push({ message, bytes });
    this.queuedBytes += bytes;
    if (this.state === 'idle') this.open();
    else if (this.state === 'ready') this.pump();
  }

  /** Opens the stream now if the lane is idle (nothing queued): the peer sees this server at once. */
  connect(): void {
    if (this.state === 'idle') this.open();
  }

  /**
   * The peer is up (something arrived from it): a lane in backoff retries as soon as
   * reconnectBackoffMinMs has passed since its last failure, at once if it has, and its backoff
   * starts again from the minimum. Any other state is left alone. Cheap enough for every message.
   */
  revive(): void {
    if (this.state !== 'backoff') return;
    const earliest = this.failedAt + this.limits.reconnectBackoffMinMs;
    this.backoffMs = this.limits.reconnectBackoffMinMs;
    if (earliest < this.retryAt) this.retryAt = earliest;
    if (now() < this.retryAt) return;
    this.state = 'idle';
    this.open();
  }

  /** Checks the connect and ack deadlines; called periodically by the transport. */
  sweep(t: number): void {
    if (this.state === 'connecting' && t - this.openedAt > this.limits.connectTimeoutMs) {
      this.fail(`no answer within the connect timeout of ${this.limits.connectTimeoutMs} ms`);
    } else if (this.state === 'ready' && this.written > this.acked && t - this.progressAt > this.limits.ackTimeoutMs) {
      this.fail(`${this.written - this.acked} messages unacknowledged for over ${this.limits.ackTimeoutMs} ms`);
    }
  }

  close(reason: DropReason, detail: string): void {
    if (this.state === 'closed') return;
    this.discard(reason, detail);
    this.state = 'closed';
  }

  private open(): void {
    const m = this.method;
    const call = this.client().makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, this.metadata, {});
    this.call = call;
    this.state = 'connecting';
    this.openedAt = now();
    call.on('data', (raw: unknown) => {
      if (this.call === call) this.onAck(raw);
    });
    // 'status' comes last for every call, whatever ended it; 'error' must have a listener or it throws.
    call.on('error', () => {});
    call.on('status', (s: grpc.StatusObject) => {
      if (this.call === call) this.fail(`stream ended: ${s.details || 'no details'} (gRPC status ${s.code})`);
    });
  }

  private onAck(raw: unknown): void {
    const ack = decodeStreamAck(raw);
    if (!ack.ok) return this.fail(`peer sent a malformed ack: ${ack.error.message}`);
    const consumed = ack.value;
    if (consumed < this.acked || consumed > this.written) {
      return this.fail(`peer acknowledged ${consumed} messages; expected between ${this.acked} and ${this.written}`);
    }
    if (this.state === 'connecting') {
      if (this.failures > 0) {
        this.logger.info({ peer: this.peer, lane: this.name, failedAttempts: this.failures }, `${this.name} stream to ${this.peer} is up again`);
      }
      this.state = 'ready';
      this.failures = 0;
      this.backoffMs = this.limits.reconnectBackoffMinMs;
    }
    const fresh = consumed - this.acked;
    for (let i = 0; i < fresh; i++) this.inflightBytes -= this.inflight[this.inflightHead++]!;
    if (this.inflightHead > 1024 && this.inflightHead * 2 > this.inflight.length) {
      this.inflight = this.inflight.slice(this.inflightHead);
      this.inflightHead = 0;
    }
    this.acked = consumed;
    this.progressAt = now();
    if (fresh > 0) this.hooks.delivered(fresh);
    this.pump();
  }

  /** Moves messages from the queue into the window while the window has room. */
  private pump(): void {
    const call = this.call;
    if (call === undefined) return;
    while (this.queueHead < this.queue.length) {
      const inWindow = this.written - this.acked;
      const next = this.queue[this.queueHead]!;
      if (inWindow >= this.limits.windowCount) break;
      if (inWindow > 0 && this.inflightBytes + next.bytes > this.limits.windowBytes) break;
      this.queueHead++;
      this.queuedBytes -= next.bytes;
      if (inWindow === 0) this.progressAt = now();
      this.inflight.push(next.bytes);
      this.inflightBytes += next.bytes;
      this.written++;
      call.write(encodePeerMessage(next.message));
    }
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  private fail(reason: string): void {
    if (this.state === 'closed' || this.state === 'backoff') return;
    const wasReady = this.state === 'ready';
    this.lastError = reason;
    this.failures++;
    const lost = this.discard('stream-failed', `${this.name} stream failed: ${reason}`);
    const jitter = 0.8 + 0.4 * Math.random();
    const delay = Math.round(this.backoffMs * jitter);
    this.failedAt = now();
    this.retryAt = this.failedAt + delay;
    this.backoffMs = Math.min(this.backoffMs * 2, this.limits.reconnectBackoffMaxMs);
    this.state = 'backoff';
    const fields = { peer: this.peer, lane: this.name, reason, lostMessages: lost, retryInMs: delay, failedAttempts: this.failures };
    if (wasReady || this.failures === 1) this.logger.warn(fields, `${this.name} stream to ${this.peer} failed: ${reason}`);
    else this.logger.debug(fields, `${this.name} stream to ${this.peer} still failing: ${reason}`);
  }

  /** Cancels the stream and drops everything queued or in flight; returns how many were dropped. */
  private discard(reason: DropReason, detail: string): number {
    const call = this.call;
    this.call = undefined;
    call?.cancel();
    const lost = this.queue.length - this.queueHead + (this.written - this.acked);
    if (lost > 0) this.hooks.drop(reason, lost, detail);
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
    this.inflight = [];
    this.inflightHead = 0;
    this.inflightBytes = 0;
    this.written = 0;
    this.acked = 0;
    return lost;
  }
}
