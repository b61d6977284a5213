// Errors of the transport. Expected conditions on the send path (peer unreachable, queue full) are not
// errors at all: send() drops and logs. Errors here are for calls with a result: sendSnapshot and the
// ServerRpc client.

import type { NodeId } from '../raft/index.js';

export type TransportErrorCode =
  /** No address is known for the peer (setPeer was never called, or removePeer was). */
  | 'PEER_UNKNOWN'
  /** The peer was removed or its address changed while the call was running. */
  | 'PEER_CHANGED'
  /** The transport was closed while the call was running. */
  | 'TRANSPORT_CLOSED'
  /** A snapshot is already being sent to this peer. */
  | 'SNAPSHOT_BUSY'
  /** The arguments of sendSnapshot are inconsistent (bad header, sha256 not hex, ...). */
  | 'SNAPSHOT_BAD_ARGUMENT'
  /** The local source yielded more or fewer bytes than the header declared. */
  | 'SNAPSHOT_SOURCE_SIZE_MISMATCH'
  /** The local source failed while being read. */
  | 'SNAPSHOT_SOURCE_FAILED'
  /** The peer refused the snapshot; `remoteCode` says why (checksum, size, handler refused...). */
  | 'SNAPSHOT_REJECTED'
  /**
   * The call was never sent: no connection to the server could be made, or the Forward stream failed
   * before the server accepted it (the client writes no call before that). Nothing ran there, so
   * any call, a write included, may be retried.
   */
  | 'NOT_SENT'
  /** The peer could not be reached or the stream broke; a call may have been sent and run. */
  | 'UNAVAILABLE'
  /** The call's deadline passed. */
  | 'DEADLINE_EXCEEDED'
  /** The caller gave up on the call (its AbortSignal fired); the remote side was told to stop. */
  | 'CANCELLED'
  /** The remote answered something that does not decode. */
  | 'BAD_RESPONSE'
  /** A forwarded call failed on the remote side for a reason that is not a typed answer. */
  | 'REMOTE_FAILED'
  /** listen() could not bind the address. */
  | 'LISTEN_FAILED';

export interface TransportErrorDetails {
  readonly peer?: NodeId | string;
  /** The stable code the remote side put in the `conclave-code` trailer, when it did. */
  readonly remoteCode?: string;
  /** The gRPC status code, when the failure came from gRPC. */
  readonly grpcCode?: number;
  readonly cause?: unknown;
}

export class TransportError extends Error {
  override readonly name = 'TransportError';
  readonly code: TransportErrorCode;
  readonly peer: string | undefined;
  readonly remoteCode: string | undefined;
  readonly grpcCode: number | undefined;

  constructor(code: TransportErrorCode, message: string, details: TransportErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.peer = details.peer;
    this.remoteCode = details.remoteCode;
    this.grpcCode = details.grpcCode;
  }
}

/** Trailing-metadata key carrying a stable rejection code on a failed call. */
export const codeMetadataKey = 'conclave-code';

/** Why a receiver refused an InstallSnapshot stream; sent back in the `conclave-code` trailer. */
export type SnapshotRejectCode =
  /** The first message is not a valid header. */
  | 'SNAPSHOT_BAD_HEADER'
  /** The header's `to` is not this node. */
  | 'SNAPSHOT_MISADDRESSED'
  /** This node has no snapshot handler registered. */
  | 'SNAPSHOT_NO_HANDLER'
  /** A message after the header is not a data chunk. */
  | 'SNAPSHOT_BAD_CHUNK'
  /** A data chunk is larger than the chunk limit. */
  | 'SNAPSHOT_CHUNK_TOO_LARGE'
  /** More or fewer bytes than the header declared. */
  | 'SNAPSHOT_SIZE_MISMATCH'
  /** The bytes do not hash to the header's SHA-256. */
  | 'SNAPSHOT_CHECKSUM_MISMATCH'
  /** The stream broke (sender cancelled, connection lost, deadline). */
  | 'SNAPSHOT_STREAM_BROKEN'
  /** The handler refused the snapshot (its promise rejected). */
  | 'SNAPSHOT_REFUSED'
  /** The handler resolved without reading the whole stream. */
  | 'SNAPSHOT_NOT_CONSUMED';

/** The error the snapshot handler's stream fails with when the incoming bytes do not verify. */
export class SnapshotStreamError extends Error {
  override readonly name = 'SnapshotStreamError';
  constructor(
    readonly code: SnapshotRejectCode,
    message: string,
  ) {
    super(message);
  }
}

/** Why a chunked ServerRpc stream (snapshot save or restore) failed its integrity checks. */
export type StreamRejectCode =
  /** A part arrived out of order (a second header, data after the trailer, an error mid-stream...). */
  | 'STREAM_BAD_PART'
  /** A data chunk is larger than the chunk limit. */
  | 'STREAM_CHUNK_TOO_LARGE'
  /** The stream ended without its trailer. */
  | 'STREAM_TRUNCATED'
  /** The data is not as long as the trailer says. */
  | 'STREAM_SIZE_MISMATCH'
  /** The data does not hash to the trailer's SHA-256. */
  | 'STREAM_CHECKSUM_MISMATCH'
  /** The underlying call failed (peer gone, deadline, cancelled). */
  | 'STREAM_BROKEN'
  /** The handler answered success without reading the whole stream. */
  | 'STREAM_NOT_CONSUMED';

/** The error a verified byte stream fails with (save body on the client, restore body on the server). */
export class StreamError extends Error {
  override readonly name = 'StreamError';
  constructor(
    readonly code: StreamRejectCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
