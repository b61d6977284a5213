// What a handler gets (RequestContext) and what it gives back (Reply). Handlers never touch node:http:
// they return a complete answer as a value, and server.ts writes it. That keeps every status, header and
// body decision in the handler where a reader expects it, and makes the writing uniform (Content-Length,
// Connection: close when needed).

import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { ServerApi } from '../server/index.js';
import type { LocalAgentApi } from './agent-api.js';
import type { HttpError } from './errors.js';
import { encodeJson } from './json.js';
import type { Query } from './query.js';

/** The limits a server instance applies (httpLimits, possibly overridden per server). */
export interface HttpServerLimits {
  readonly kvMaxValueBytes: number;
  readonly txnMaxRequestBytes: number;
  readonly txnMaxOpsCount: number;
  readonly blockingDefaultWaitMs: number;
  readonly blockingMaxWaitMs: number;
  readonly blockingJitterFraction: number;
  readonly sessionTtlMinMs: number;
}

export interface RequestContext {
  readonly method: string;
  /** The percent-decoded path, e.g. "/v1/kv/app/config" for "/v1/kv/app%2Fconfig". */
  readonly path: string;
  readonly query: Query;
  readonly headers: IncomingHttpHeaders;
  readonly api: ServerApi;
  /** This agent's local state (/v1/agent/service*, /v1/agent/check*); absent in servers started without one. */
  readonly agent: LocalAgentApi | undefined;
  readonly limits: HttpServerLimits;
  /** Aborted when the client goes away or the server shuts down; pass it to every ServerApi read. */
  readonly signal: AbortSignal;
  /** In [0, 1); the blocking-query jitter (injectable so tests can pin it). */
  readonly random: () => number;
  /** The local IP address the request arrived on. */
  readonly localAddress: string;
  /** `?pretty`: indent JSON answers (Consul's marshalJSON). */
  readonly pretty: boolean;
  /**
   * Reads the whole body, refusing it before buffering if it is larger than `limitBytes`: by its
   * Content-Length without reading any of it, or once the bytes received pass the limit. `tooLarge`
   * builds the 413 (declaredBytes is undefined for a body of unknown length).
   */
  readBody(limitBytes: number, tooLarge: (declaredBytes: number | undefined) => HttpError): Promise<Buffer>;
  /**
   * The body as a stream of unlimited length, for uploads too large to buffer (PUT /v1/snapshot).
   * The connection gets an inactivity timeout instead of a time limit for the whole body.
   */
  bodyStream(): Readable;
}

export interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** Empty for no body. */
  readonly body: Buffer | string;
  /**
   * A body streamed after the headers (chunked), instead of `body`. If it fails midway the
   * connection is aborted (no final chunk), so no client can take a cut-short body for a whole one.
   * It is destroyed if the client goes away.
   */
  readonly stream?: Readable;
}

export const jsonContentType = 'application/json';
/** What Go's http server sniffs for the plain-text error bodies Consul writes with fmt.Fprint. */
export const textContentType = 'text/plain; charset=utf-8';

export function jsonReply(ctx: RequestContext, value: unknown, status = 200, headers: Record<string, string> = {}): Reply {
  return { status, headers: { ...headers, 'Content-Type': jsonContentType }, body: encodeJson(value, ctx.pretty) };
}

export function textReply(status: number, body: string, headers: Readonly<Record<string, string>> = {}): Reply {
  return { status, headers: body === '' ? { ...headers } : { ...headers, 'Content-Type': textContentType }, body };
}

export function emptyReply(status: number, headers: Readonly<Record<string, string>> = {}): Reply {
  return { status, headers, body: '' };
}
