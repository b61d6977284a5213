// Small gRPC plumbing shared by PeerTransport and ServerRpc.

import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { TransportError, codeMetadataKey } from './errors.js';
import { transportLimits } from './limits.js';

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** `host:port`, bracketing bare IPv6 hosts. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Options for one client channel. Each channel gets its own connection (local subchannel pool), so
 * the lanes of a peer never share a TCP send buffer. Retries are off: grpc-js would otherwise buffer
 * streamed messages for replay, which defeats bounded memory, and Raft retransmits anyway.
 */
export function channelOptions(purpose: string, backoff: { minMs: number; maxMs: number }): grpc.ChannelOptions {
  return {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.enable_retries': 0,
    // Even without retries grpc-js acknowledges writes early while they fit its retry buffers
    // (1 MiB per call); with no buffer, a write completes only once HTTP/2 has taken it.
    'grpc.per_rpc_retry_buffer_size': 0,
    'grpc.retry_buffer_size': 0,
    'grpc.initial_reconnect_backoff_ms': backoff.minMs,
    'grpc.max_reconnect_backoff_ms': backoff.maxMs,
    'grpc.max_receive_message_length': transportLimits.grpcMaxMessageBytes,
    'grpc.max_send_message_length': transportLimits.grpcMaxMessageBytes,
    'grpc.primary_user_agent': `conclave-${purpose}`,
  };
}

export const serverOptions: grpc.ServerOptions = {
  'grpc.max_receive_message_length': transportLimits.grpcMaxMessageBytes,
  'grpc.max_send_message_length': transportLimits.grpcMaxMessageBytes,
};

export function bind(server: grpc.Server, host: string, port: number, creds: grpc.ServerCredentials, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(hostPort(host, port), creds, (err, bound) => {
      if (err) {
        reject(
          new TransportError('LISTEN_FAILED', `cannot listen for ${what} on ${hostPort(host, port)}: ${err.message}`, { cause: err }),
        );
      } else {
        resolve(bound);
      }
    });
  });
}

/** A gRPC error status carrying a stable code in the `conclave-code` trailer. */
export function statusError(code: grpc.status, conclaveCode: string, details: string): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  metadata.set(codeMetadataKey, conclaveCode);
  return { code, details, metadata };
}

/** Who is calling, for logs: the `conclave-from` header when present, else the socket address. */
export function callerOf(call: { metadata: grpc.Metadata; getPeer(): string }): string {
  const from = call.metadata.get('conclave-from')[0];
  return typeof from === 'string' && from.length > 0 && from.length <= 256 ? from : call.getPeer();
}
