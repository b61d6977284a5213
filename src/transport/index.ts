// The transport between Conclave servers: Raft peer traffic (PeerTransport) and server-to-server
// calls (ServerRpcServer / ServerRpcClient), over gRPC with the definitions in proto/.

export { PeerTransport } from './peer-transport.js';
export type { PeerTransportOptions, MessageHandler, PeerStats, LaneStats, TransportStats } from './peer-transport.js';
export type { SnapshotHandler } from './snapshot.js';
export { snapshotDeadlineMs } from './snapshot.js';
export type { SnapshotHeader } from './codec.js';
export { decodePeerMessage, encodePeerMessage, decodeSnapshotHeader } from './codec.js';
export type { DecodeError, Decoded } from './wire.js';
export type { ByteSource } from './chunks.js';
export type { DropReason } from './drops.js';
export type { LaneState } from './lane.js';
export { ServerRpcServer } from './rpc-server.js';
export type { ServerRpcServerOptions, ServerRpcStats } from './rpc-server.js';
export { ServerRpcClient } from './rpc-client.js';
export type { ServerRpcClientOptions, CallOptions } from './rpc-client.js';
export { decodeOutcome } from './rpc-codec.js';
export type {
  ServerRpcHandlers,
  RpcContext,
  RpcError,
  RpcResult,
  LeaderHint,
  SnapshotSaveAnswer,
  SnapshotSaveResult,
} from './rpc-codec.js';
export { TransportError, SnapshotStreamError, StreamError, codeMetadataKey } from './errors.js';
export type { TransportErrorCode, SnapshotRejectCode, StreamRejectCode } from './errors.js';
export { transportLimits, transportDefaults } from './limits.js';
export { raftPeerService, conclaveServerService, protoDir } from './proto.js';
