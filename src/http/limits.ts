// Every limit and default of the HTTP layer, with its unit last and its source beside it.

import { assert, KiB } from '../base/index.js';

const second = 1000;
const minute = 60 * second;

export const httpLimits = {
  /**
   * Largest KV value a PUT /v1/kv/<key> accepts (and largest Value of one txn operation). Consul's
   * `kv_max_value_size` default: raft.SuggestedMaxDataSize = 512 KiB (agent/config/default.go).
   */
  kvMaxValueBytes: 512 * KiB,
  /**
   * Largest PUT /v1/txn body. Consul's `txn_max_req_len` default, also 512 KiB; Consul uses the larger
   * of the two limits (agent/txn_endpoint.go convertOps), and so do we.
   */
  txnMaxRequestBytes: 512 * KiB,
  /** Most operations in one txn: Consul's `maxTxnOps` (128 since 1.x; 64 in 0.x). */
  txnMaxOpsCount: 128,
  /** Blocking queries: wait when `?wait` is absent, zero or negative (Consul's defaultQueryTime). */
  blockingDefaultWaitMs: 5 * minute,
  /** Blocking queries: the longest wait honoured (Consul's maxQueryTime). */
  blockingMaxWaitMs: 10 * minute,
  /** Jitter added to a blocking wait: up to wait/16 (Consul's structs.JitterFraction). */
  blockingJitterFraction: 16,
  /**
   * Idle keep-alive connections are closed after this. Longer than the usual client pool timeouts
   * (Node's agent keeps sockets until the server closes them), so a client rarely reuses a socket the
   * server is closing at that very moment (the ECONNRESET race of a short server timeout).
   */
  keepAliveTimeoutMs: 65 * second,
  /** Time to receive a request's headers; must exceed keepAliveTimeoutMs (Node's own advice). */
  headersTimeoutMs: 70 * second,
  /**
   * Time to receive a whole request (headers and body). Bodies are at most about 512 KiB, so this only
   * stops clients that trickle bytes. It does not limit how long a blocking query may take to answer.
   */
  requestTimeoutMs: 2 * minute,
  /**
   * A streamed upload (PUT /v1/snapshot) has no time limit as a whole (a multi-GB archive may take
   * many minutes); its connection is closed when no byte arrives for this long.
   */
  streamIdleTimeoutMs: 2 * minute,
  /** How long close() lets in-flight requests finish before it cuts their connections. */
  closeGraceMs: 5 * second,
  /** The shortest session TTL accepted: Consul's `session_ttl_min` default (the agent passes the configured one). */
  sessionTtlMinMs: 10 * second,
  /** Bodies above this that no handler read are not drained; the connection is closed instead. */
  drainUnreadBodyMaxBytes: 64 * KiB,
  /**
   * Longest ?filter accepted (filter.ts), in UTF-8 bytes. Consul sets none (its URLs are bounded by Go's
   * 1 MiB of headers); real filters are a few dozen bytes.
   */
  filterMaxBytes: 4 * KiB,
  /** Deepest nesting of parentheses and `not` in a ?filter (keeps the recursive parser's stack small). */
  filterMaxNesting: 64,
  /**
   * Longest pattern a ?filter's `matches` takes, in characters: go-bexpr's own default MaxRawValueLength
   * (512), which Consul does not apply.
   */
  filterRegexpMaxChars: 512,
} as const;

assert(httpLimits.headersTimeoutMs > httpLimits.keepAliveTimeoutMs, 'headers timeout > keep-alive timeout');
assert(httpLimits.blockingDefaultWaitMs <= httpLimits.blockingMaxWaitMs, 'default wait <= max wait');
