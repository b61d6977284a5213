// Helpers for tests of the transport (and of code built on it): deterministic byte sources, polling,
// and pairs of connected transports on loopback. Not exported from index.ts; tests import this file.

import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import type { Logger } from 'pino';
import { KiB } from '../base/index.js';
import type { Message } from '../raft/index.js';
import { PeerTransport, type PeerTransportOptions } from './peer-transport.js';

/** Deterministic pseudo-random bytes (xorshift32), `sizeBytes` in total, in pieces of `pieceBytes`. */
export async function* pseudoRandomBytes(sizeBytes: number, seed: number, pieceBytes = 64 * KiB): AsyncGenerator<Uint8Array> {
  let x = seed >>> 0 || 1;
  let left = sizeBytes;
  while (left > 0) {
    const n = Math.min(pieceBytes, left);
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      out[i] = x & 0xff;
      if (i + 1 < n) out[i + 1] = (x >>> 8) & 0xff;
      if (i + 2 < n) out[i + 2] = (x >>> 16) & 0xff;
      if (i + 3 < n) out[i + 3] = (x >>> 24) & 0xff;
    }
    left -= n;
    yield out;
  }
}

/** SHA-256 (hex) of what pseudoRandomBytes(sizeBytes, seed) yields. */
export async function pseudoRandomSha256(sizeBytes: number, seed: number): Promise<string> {
  const h = createHash('sha256');
  for await (const b of pseudoRandomBytes(sizeBytes, seed)) h.update(b);
  return h.digest('hex');
}

/** Polls `cond` until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000, intervalMs = 5): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * A port on 127.0.0.1 held by a TCP server that drops every connection at once: a peer that is down
 * but whose port nobody else can take meanwhile. `release()` frees the port for the real server.
 */
export async function deadPort(): Promise<{ readonly port: number; release(): Promise<void> }> {
  const srv = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = srv.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return { port, release: () => new Promise<void>((resolve) => srv.close(() => resolve())) };
}

export interface Pair {
  readonly a: PeerTransport;
  readonly b: PeerTransport;
  readonly aPort: number;
  readonly bPort: number;
  close(): Promise<void>;
}

/** Two transports, ids 'a' and 'b', listening on 127.0.0.1 ephemeral ports and knowing each other. */
export async function startPair(
  options: Partial<Omit<PeerTransportOptions, 'id'>> = {},
  logger?: Logger,
): Promise<Pair> {
  const extra = logger === undefined ? {} : { logger };
  const a = new PeerTransport({ ...options, ...extra, id: 'a' });
  const b = new PeerTransport({ ...options, ...extra, id: 'b' });
  const aPort = await a.listen('127.0.0.1', 0);
  const bPort = await b.listen('127.0.0.1', 0);
  a.setPeer('b', `127.0.0.1:${bPort}`);
  b.setPeer('a', `127.0.0.1:${aPort}`);
  return {
    a,
    b,
    aPort,
    bPort,
    close: async () => {
      await Promise.all([a.close(), b.close()]);
    },
  };
}

/** One message of every type from `from` to `to`, with edge values: binary data (all 256 byte values),
 *  empty data, config entries with voters and non-voters, Number.MAX_SAFE_INTEGER terms and indexes. */
export function sampleMessages(from: string, to: string): Message[] {
  const all = new Uint8Array(256).map((_, i) => i);
  const max = Number.MAX_SAFE_INTEGER;
  const configuration = {
    servers: [
      { id: from, suffrage: 'voter' as const, address: '10.0.0.1:8300' },
      { id: to, suffrage: 'voter' as const },
      { id: 'c', suffrage: 'nonvoter' as const, address: '' },
    ],
  };
  return [
    {
      type: 'append',
      from,
      to,
      term: 7,
      prevIndex: 41,
      prevTerm: 6,
      commit: 40,
      entries: [
        { index: 42, term: 6, kind: 'normal', data: all },
        { index: 43, term: 7, kind: 'noop', data: new Uint8Array(0) },
        { index: 44, term: 7, kind: 'config', data: new Uint8Array(0), config: configuration },
        { index: 45, term: 7, kind: 'normal', data: new Uint8Array([0, 0, 0, 255]) },
      ],
    },
    { type: 'append', from, to, term: max, prevIndex: max - 1, prevTerm: max, commit: max, entries: [] },
    { type: 'appendResponse', from, to, term: 7, reject: true, index: 41, hintIndex: 30, hintTerm: 5 },
    { type: 'appendResponse', from, to, term: 7, reject: false, index: 45, hintIndex: 0, hintTerm: 0 },
    { type: 'heartbeat', from, to, term: 7, commit: 44, readSeq: 12 },
    { type: 'heartbeatResponse', from, to, term: 7, readSeq: 12 },
    { type: 'vote', from, to, term: 8, preVote: true, transfer: false, lastIndex: 45, lastTerm: 7 },
    { type: 'vote', from, to, term: 8, preVote: false, transfer: true, lastIndex: max, lastTerm: max },
    { type: 'voteResponse', from, to, term: 8, preVote: true, granted: true },
    { type: 'voteResponse', from, to, term: 8, preVote: false, granted: false },
    { type: 'timeoutNow', from, to, term: 7 },
    {
      type: 'snapshot',
      from,
      to,
      term: 7,
      commit: 44,
      snapshot: { index: 44, term: 7, configuration, configurationIndex: 44 },
    },
  ];
}
