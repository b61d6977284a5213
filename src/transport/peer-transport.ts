// PeerTransport: carries the consensus core's messages between servers over gRPC (proto/raft.proto).
//
// Sending side, per peer, three connections (see proto/raft.proto for why):
//   append connection   AppendStream lane: append, appendResponse    (window 32 msgs / 8 MiB, queue 4096 / 64 MiB)
//   control connection  HeartbeatStream lane: heartbeat(Response)    (window 16, queue 64)
//                       Vote, TimeoutNow unary calls                 (≤ 16 outstanding, 1 s deadline)
//   snapshot connection InstallSnapshot client stream                 (512 KiB chunks, deadline scaled by size)
// Heartbeats therefore never queue behind a slow append or a snapshot transfer: they have their own
// stream, their own queue and their own TCP connection.
//
// Receiving side: every message passes decodePeerMessage (and must be addressed to this node) before
// the onMessage handler sees it; bad input is logged and dropped. Snapshots are verified (size,
// SHA-256) while streaming into the onSnapshot handler; the SnapshotMessage reaches onMessage only
// after the handler has accepted the verified bytes.

import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { childWith } from '../base/index.js';
import type { Message, MessageType, NodeId } from '../raft/index.js';
import { limitReadAhead, type ByteSource } from './chunks.js';
import { decodePeerMessage, encodePeerMessage, estimateMessageBytes, type SnapshotHeader } from './codec.js';
import { RateLimitedLog, type DropReason } from './drops.js';
import { TransportError } from './errors.js';
import { bind, callerOf, serverOptions, silentLogger, statusError } from './grpc-util.js';
import { now } from './lane.js';
import { transportLimits } from './limits.js';
import { Peer, settingsFrom, type PeerStats, type PeerTransportOptions, type Settings } from './peer.js';
import { raftPeerService, type Method } from './proto.js';
import { receiveSnapshot, sendSnapshotStream, snapshotDeadlineMs, type SnapshotHandler } from './snapshot.js';

export type { LaneStats, PeerStats, PeerTransportOptions } from './peer.js';

export type MessageHandler = (message: Message) => void;

export interface TransportStats {
  /** Valid messages handed to the onMessage handler. */
  readonly received: number;
  /** Incoming messages refused at the boundary (malformed, misaddressed, wrong call). */
  readonly rejected: number;
  /** Messages dropped before a peer could be chosen (unknown peer, closed, misrouted). */
  readonly droppedUnrouted: number;
  readonly peers: Readonly<Record<NodeId, PeerStats>>;
}

const appendTypes: readonly MessageType[] = ['append', 'appendResponse'];
const heartbeatTypes: readonly MessageType[] = ['heartbeat', 'heartbeatResponse'];
const voteTypes: readonly MessageType[] = ['vote', 'voteResponse'];
const timeoutNowTypes: readonly MessageType[] = ['timeoutNow'];

const sha256Hex = /^[0-9a-f]{64}$/;

export class PeerTransport {
  readonly id: NodeId;
  private readonly logger: Logger;
  private readonly settings: Settings;
  private readonly serverCreds: grpc.ServerCredentials;
  private readonly channelCreds: grpc.ChannelCredentials;
  private readonly metadata: grpc.Metadata;
  private readonly peers = new Map<NodeId, Peer>();
  private readonly dropLog: RateLimitedLog;
  private readonly inputLog: RateLimitedLog;
  private readonly sweeper: NodeJS.Timeout;
  private messageHandler: MessageHandler | undefined;
  private snapshotHandler: SnapshotHandler | undefined;
  private server: grpc.Server | undefined;
  private closed = false;
  private received = 0;
  private rejected = 0;
  private droppedUnrouted = 0;

  constructor(options: PeerTransportOptions) {
    if (typeof options.id !== 'string' || options.id.length === 0) throw new RangeError('PeerTransport needs a non-empty node id');
    this.id = options.id;
    this.settings = settingsFrom(options);
    // Only what the given logger does not bind already: pino would write a key bound twice twice.
    this.logger = childWith(options.logger ?? silentLogger(), { component: 'transport', node: options.id });
    this.serverCreds = options.serverCredentials ?? grpc.ServerCredentials.createInsecure();
    this.channelCreds = options.channelCredentials ?? grpc.credentials.createInsecure();
    this.metadata = new grpc.Metadata();
    this.metadata.set('conclave-from', options.id);
    this.dropLog = new RateLimitedLog(this.logger, this.settings.dropLogIntervalMs);
    this.inputLog = new RateLimitedLog(this.logger, this.settings.dropLogIntervalMs);
    this.sweeper = setInterval(() => this.sweep(), this.settings.sweepIntervalMs);
    this.sweeper.unref();
  }

  // -------------------------------------------------------------------------------------------
  // Receiving side.
  // -------------------------------------------------------------------------------------------

  /** Binds a gRPC server for the peer service; resolves with the bound port (useful with port 0). */
  async listen(host: string, port: number): Promise<number> {
    if (this.closed) throw new TransportError('TRANSPORT_CLOSED', 'the transport is closed');
    if (this.server !== undefined) throw new TransportError('LISTEN_FAILED', 'the transport is already listening');
    const server = new grpc.Server(serverOptions);
    this.addTo(server);
    this.server = server;
    try {
      const bound = await bind(server, host, port, this.serverCreds, 'Raft peers');
      this.logger.info({ host, port: bound }, `listening for Raft peers on ${host}:${bound}`);
      return bound;
    } catch (err) {
      this.server = undefined;
      server.forceShutdown();
      throw err;
    }
  }

  /** Registers the peer service on a server owned by someone else (to share one port). */
  addTo(server: grpc.Server): void {
    const svc = raftPeerService();
    const impl: grpc.UntypedServiceImplementation = {
      AppendStream: (call: grpc.ServerDuplexStream<unknown, object>) => this.serveStream(call, 'append', appendTypes),
      HeartbeatStream: (call: grpc.ServerDuplexStream<unknown, object>) => this.serveStream(call, 'heartbeat', heartbeatTypes),
      Vote: (call: grpc.ServerUnaryCall<unknown, object>, cb: grpc.sendUnaryData<object>) => this.serveUnary(call, cb, voteTypes),
      TimeoutNow: (call: grpc.ServerUnaryCall<unknown, object>, cb: grpc.sendUnaryData<object>) =>
        this.serveUnary(call, cb, timeoutNowTypes),
      InstallSnapshot: (call: grpc.ServerReadableStream<unknown, object>, cb: grpc.sendUnaryData<object>) =>
        void this.serveSnapshot(call, cb).catch((err: unknown) => {
          this.logger.error({ err }, 'serving an InstallSnapshot call failed unexpectedly');
          cb(statusError(grpc.status.INTERNAL, 'INTERNAL', `the receiver failed: ${err instanceof Error ? err.message : String(err)}`), null);
        }),
    };
    server.addService(svc.definition, impl);
  }

  /**
   * Sets the one function that receives every valid incoming message, synchronously, in arrival
   * order per lane. It must not block; exceptions are logged and swallowed. Replaces any earlier one.
   */
  onMessage(handler: MessageHandler): void {
    this.messageHandler = handler;
  }

  /**
   * Sets the function that stores incoming snapshots (see SnapshotHandler). Once it resolves (and the
   * bytes verified), the header's SnapshotMessage goes to the onMessage handler, so the core only
   * ever hears of a snapshot that is stored; the node finds the bytes again by the message's
   * snapshot index and term. Replaces any earlier handler.
   */
  onSnapshot(handler: SnapshotHandler): void {
    this.snapshotHandler = handler;
  }

  /**
   * Something arrived from `from` (a stream opened, a message, a vote): that peer is up, so its lanes
   * stop waiting out a reconnect back-off built up while it was down. Called for every message; cheap.
   */
  private heardFrom(from: string): void {
    this.peers.get(from)?.revive();
  }

  private serveStream(call: grpc.ServerDuplexStream<unknown, object>, lane: string, allowed: readonly MessageType[]): void {
    const from = callerOf(call);
    this.heardFrom(from);
    // Acks only open the sender's window (32 appends, 16 heartbeats by default), so they are lazy:
    // one per `streamAckEveryCount` messages, or `streamAckDelayMs` after the first unacknowledged
    // one. At a write every couple of milliseconds an ack per message would double the frames.
    const { streamAckEveryCount, streamAckDelayMs } = this.settings;
    let consumed = 0;
    let acked = 0;
    let open = true;
    let soon: NodeJS.Immediate | undefined;
    let later: NodeJS.Timeout | undefined;
    const ack = (): void => {
      if (soon !== undefined) clearImmediate(soon);
      if (later !== undefined) clearTimeout(later);
      soon = undefined;
      later = undefined;
      acked = consumed;
      if (open) call.write({ consumed });
    };
    const close = (): void => {
      open = false;
      if (soon !== undefined) clearImmediate(soon);
      if (later !== undefined) clearTimeout(later);
    };
    call.on('data', (raw: unknown) => {
      consumed++;
      this.receive(raw, allowed, from, lane);
      if (consumed - acked >= streamAckEveryCount) soon ??= setImmediate(ack);
      else later ??= setTimeout(ack, streamAckDelayMs);
    });
    call.on('end', () => {
      close();
      call.end();
    });
    call.on('cancelled', close);
    call.on('close', close);
    call.on('error', (err: Error) => {
      close();
      this.logger.debug({ from, lane, err: err.message }, `${lane} stream from ${from} failed`);
    });
    call.write({ consumed: 0 });
  }

  private serveUnary(call: grpc.ServerUnaryCall<unknown, object>, cb: grpc.sendUnaryData<object>, allowed: readonly MessageType[]): void {
    const from = callerOf(call);
    this.heardFrom(from);
    const why = this.receive(call.request, allowed, from, 'unary');
    if (why === undefined) cb(null, {});
    else cb(statusError(why.grpcCode, why.code, why.message), null);
  }

  private async serveSnapshot(call: grpc.ServerReadableStream<unknown, object>, cb: grpc.sendUnaryData<object>): Promise<void> {
    const from = callerOf(call);
    this.heardFrom(from);
    limitReadAhead(call, 1);
    const receipt = await receiveSnapshot(call, {
      localId: this.id,
      handler: this.snapshotHandler,
      maxChunkBytes: transportLimits.maxChunkBytes,
    });
    if (!receipt.ok) {
      this.logger.warn({ from, code: receipt.code }, `refused a snapshot from ${from}: ${receipt.message}`);
      cb(statusError(receipt.grpcCode, receipt.code, receipt.message), null);
      return;
    }
    const meta = receipt.header.message.snapshot;
    this.logger.info(
      { from, index: meta.index, term: meta.term, bytes: receipt.receivedBytes },
      `accepted a snapshot from ${from} at index ${meta.index}`,
    );
    const why = this.deliver(receipt.header.message, from);
    if (why === undefined) cb(null, { receivedBytes: receipt.receivedBytes });
    else cb(statusError(why.grpcCode, why.code, why.message), null);
  }

  /** Decodes and delivers one incoming message; returns why it was refused, if it was. */
  private receive(
    raw: unknown,
    allowed: readonly MessageType[],
    from: string,
    via: string,
  ): { grpcCode: grpc.status; code: string; message: string } | undefined {
    const decoded = decodePeerMessage(raw, allowed);
    if (!decoded.ok) {
      this.rejected++;
      const message = `malformed message from ${from} on the ${via} call: ${decoded.error.message}`;
      this.inputLog.warn(`${from}\u0000invalid`, 1, { from, via, path: decoded.error.path }, `dropped a ${message}`, now());
      return { grpcCode: grpc.status.INVALID_ARGUMENT, code: decoded.error.code, message };
    }
    return this.deliver(decoded.value, from);
  }

  private deliver(m: Message, from: string): { grpcCode: grpc.status; code: string; message: string } | undefined {
    if (this.closed) return { grpcCode: grpc.status.UNAVAILABLE, code: 'CLOSED', message: `${this.id}'s transport is closed` };
    if (m.to !== this.id) {
      this.rejected++;
      const message = `a ${m.type} message from ${from} is addressed to ${m.to}, but this is ${this.id}`;
      this.inputLog.warn(`${from}\u0000misaddressed`, 1, { from, to: m.to }, `dropped ${message}`, now());
      return { grpcCode: grpc.status.INVALID_ARGUMENT, code: 'MISADDRESSED', message };
    }
    this.heardFrom(m.from);
    const handler = this.messageHandler;
    if (handler === undefined) {
      const message = `no message handler is registered yet; dropped a ${m.type} message from ${from}`;
      this.inputLog.warn(`${from}\u0000nohandler`, 1, { from }, message, now());
      return { grpcCode: grpc.status.UNAVAILABLE, code: 'NOT_READY', message };
    }
    this.received++;
    try {
      handler(m);
    } catch (err) {
      this.logger.error({ err, type: m.type, from }, 'the message handler threw; the message is lost');
    }
    return undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Sending side.
  // -------------------------------------------------------------------------------------------

  /**
   * Sets or updates a peer's address (`host:port`). A changed address closes the old connections
   * (dropping what was queued) and uses the new one from the next send. Setting this node's own id is
   * ignored.
   */
  setPeer(id: NodeId, address: string): void {
    if (this.closed) return;
    if (typeof id !== 'string' || id.length === 0) throw new RangeError('setPeer needs a non-empty node id');
    if (typeof address !== 'string' || address.length === 0) throw new RangeError(`setPeer(${id}) needs a non-empty address`);
    if (id === this.id) return;
    const old = this.peers.get(id);
    if (old?.address === address) return;
    if (old !== undefined) {
      old.close('peer-changed', new TransportError('PEER_CHANGED', `${id}'s address changed from ${old.address} to ${address}`, { peer: id }));
    }
    const peer = new Peer(id, address, this.channelCreds, this.metadata, this.settings, this.onDrop, this.logger);
    this.peers.set(id, peer);
    this.logger.info({ peer: id, address, previous: old?.address }, `peer ${id} is at ${address}`);
    // Make this server known to the peer now rather than at its first message: the peer's own lanes
    // to us may be waiting out a back-off from while we were down, and an incoming stream ends it.
    peer.announce();
  }

  /** Forgets a peer: closes its connections, drops its queue, fails a snapshot being sent to it. */
  removePeer(id: NodeId): void {
    const peer = this.peers.get(id);
    if (peer === undefined) return;
    this.peers.delete(id);
    peer.close('peer-changed', new TransportError('PEER_CHANGED', `${id} was removed from the transport`, { peer: id }));
    this.dropLog.forget(`${id}\u0000`);
    this.logger.info({ peer: id }, `peer ${id} removed`);
  }

  /**
   * Hands a message to its peer's lane and returns at once. Never throws and never waits: when the
   * peer is unknown, unreachable or its queue is full the message is dropped, counted and logged (Raft
   * retransmits). Messages to one peer on one lane arrive in send order (or not at all). Snapshot
   * messages must go through sendSnapshot(); here they are dropped with an error log.
   */
  send(message: Message): void {
    if (this.closed) {
      this.droppedUnrouted++;
      return;
    }
    if (message.type === 'snapshot') {
      this.droppedUnrouted++;
      this.logger.error(
        { to: message.to, index: message.snapshot.index },
        'a snapshot message was handed to send(); it needs its bytes: use sendSnapshot(header, source). Dropped',
      );
      return;
    }
    const peer = this.peers.get(message.to);
    if (peer === undefined) {
      this.droppedUnrouted++;
      this.dropLog.warn(
        `${message.to}\u0000unknown-peer`,
        1,
        { peer: message.to, reason: 'unknown-peer' },
        `dropped a ${message.type} message to ${message.to}: no address is known for it (setPeer was not called)`,
        now(),
      );
      return;
    }
    peer.sent++;
    const bytes = estimateMessageBytes(message);
    if (bytes > transportLimits.maxAppendMessageBytes) {
      this.onDrop(
        peer,
        'too-large',
        1,
        `a ${message.type} message of about ${bytes} bytes exceeds the ${transportLimits.maxAppendMessageBytes}-byte wire limit; ` +
          'lower the core option maxMessageBytes',
      );
      return;
    }
    switch (message.type) {
      case 'append':
      case 'appendResponse':
        return peer.append.enqueue(message, bytes);
      case 'heartbeat':
      case 'heartbeatResponse':
        return peer.heartbeat.enqueue(message, bytes);
      case 'vote':
      case 'voteResponse':
        return this.unary(peer, raftPeerService().vote, message);
      case 'timeoutNow':
        return this.unary(peer, raftPeerService().timeoutNow, message);
      default: {
        const never: never = message;
        throw new Error(`unhandled message ${JSON.stringify(never)}`);
      }
    }
  }

  private unary(peer: Peer, method: Method, message: Message): void {
    if (peer.unaryInflight >= this.settings.maxInflightUnaryCount) {
      this.onDrop(peer, 'unary-limit', 1, `${peer.unaryInflight} ${message.type}-type calls are still outstanding`);
      return;
    }
    peer.unaryInflight++;
    peer.client('control').makeUnaryRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      encodePeerMessage(message),
      peer.metadata,
      { deadline: Date.now() + this.settings.unaryTimeoutMs },
      (err: grpc.ServiceError | null) => {
        peer.unaryInflight--;
        if (err === null) peer.delivered++;
        else this.onDrop(peer, 'unary-failed', 1, `${message.type} call failed: ${err.details} (gRPC status ${err.code})`);
      },
    );
  }

  private readonly onDrop = (peer: Peer, reason: DropReason, count: number, detail: string): void => {
    peer.dropped[reason] = (peer.dropped[reason] ?? 0) + count;
    this.dropLog.warn(`${peer.id}\u0000${reason}`, count, { peer: peer.id, reason }, `dropped message(s) to ${peer.id}: ${detail}`, now());
  };

  /**
   * Streams a snapshot to `header.message.to`. Resolves once the peer has received all
   * `header.sizeBytes` bytes, verified their SHA-256 and its handler accepted them; rejects with a
   * TransportError otherwise (code SNAPSHOT_REJECTED with `remoteCode` when the peer refused). The
   * source is read in bounded chunks (never buffered whole) and is consumed or destroyed in every
   * case. One snapshot at a time per peer. The deadline grows with the size:
   * snapshotBaseTimeoutMs + sizeBytes / snapshotMinThroughputBytesPerSec.
   */
  async sendSnapshot(header: SnapshotHeader, source: ByteSource): Promise<void> {
    const refuse = (err: TransportError): never => {
      if ('destroy' in source && typeof source.destroy === 'function') source.destroy();
      throw err;
    };
    const m = header.message;
    if (m?.type !== 'snapshot') {
      refuse(new TransportError('SNAPSHOT_BAD_ARGUMENT', 'sendSnapshot needs a header whose message is a snapshot message'));
    }
    if (m.from !== this.id) {
      refuse(new TransportError('SNAPSHOT_BAD_ARGUMENT', `the snapshot message is from ${m.from}, but this transport is ${this.id}`));
    }
    if (!Number.isSafeInteger(header.sizeBytes) || header.sizeBytes < 0) {
      refuse(new TransportError('SNAPSHOT_BAD_ARGUMENT', `sizeBytes is ${header.sizeBytes}; it must be a safe non-negative integer`));
    }
    if (typeof header.sha256 !== 'string' || !sha256Hex.test(header.sha256)) {
      refuse(new TransportError('SNAPSHOT_BAD_ARGUMENT', `sha256 is ${JSON.stringify(header.sha256)}; it must be 64 lowercase hex characters`));
    }
    if (this.closed) refuse(new TransportError('TRANSPORT_CLOSED', 'the transport is closed', { peer: m.to }));
    const peer = this.peers.get(m.to);
    if (peer === undefined) {
      return refuse(new TransportError('PEER_UNKNOWN', `no address is known for ${m.to}; call setPeer first`, { peer: m.to }));
    }
    if (peer.snapshot !== undefined) {
      refuse(new TransportError('SNAPSHOT_BUSY', `a snapshot is already being sent to ${m.to}; wait for it to finish`, { peer: m.to }));
    }
    const abort = new AbortController();
    peer.snapshot = abort;
    const s = this.settings;
    const deadlineMs = snapshotDeadlineMs(header.sizeBytes, s.snapshotBaseTimeoutMs, s.snapshotMinThroughputBytesPerSec);
    const started = now();
    this.logger.info(
      { peer: m.to, index: m.snapshot.index, term: m.snapshot.term, bytes: header.sizeBytes, deadlineMs },
      `sending snapshot at index ${m.snapshot.index} to ${m.to}`,
    );
    try {
      await sendSnapshotStream(
        {
          peer: m.to,
          client: peer.client('snapshot'),
          method: raftPeerService().installSnapshot,
          metadata: peer.metadata,
          chunkBytes: s.snapshotChunkBytes,
          chunksInFlight: s.snapshotChunksInFlightCount,
          deadlineMs,
          signal: abort.signal,
        },
        header,
        source,
      );
      this.logger.info(
        { peer: m.to, index: m.snapshot.index, bytes: header.sizeBytes, ms: Math.round(now() - started) },
        `snapshot at index ${m.snapshot.index} installed on ${m.to}`,
      );
    } catch (err) {
      this.logger.warn({ peer: m.to, index: m.snapshot.index, err: (err as Error).message }, 'sending a snapshot failed');
      throw err;
    } finally {
      if (peer.snapshot === abort) peer.snapshot = undefined;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Housekeeping.
  // -------------------------------------------------------------------------------------------

  stats(): TransportStats {
    const peers: Record<NodeId, PeerStats> = {};
    for (const [id, p] of this.peers) peers[id] = p.stats();
    return { received: this.received, rejected: this.rejected, droppedUnrouted: this.droppedUnrouted, peers };
  }

  private sweep(): void {
    const t = now();
    for (const p of this.peers.values()) {
      p.append.sweep(t);
      p.heartbeat.sweep(t);
    }
  }

  /** Stops everything: cancels streams and calls, fails snapshot sends, shuts the server down. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    for (const peer of this.peers.values()) {
      peer.close('closed', new TransportError('TRANSPORT_CLOSED', 'the transport was closed', { peer: peer.id }));
    }
    this.peers.clear();
    const server = this.server;
    this.server = undefined;
    // Peer streams never end on their own, so a graceful shutdown would wait forever: force it.
    server?.forceShutdown();
  }
}
