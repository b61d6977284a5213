// The node:http server around the handlers: connection lifecycle, bounded request bodies, client
// disconnects, the mapping of failures to Consul's statuses and texts, and a graceful close.
//
// Contract:
// - Keep-alive is on; idle connections close after httpLimits.keepAliveTimeoutMs.
// - Requests on one connection are served one at a time, in order (as Go's server does): a pipelined
//   request's handler starts once the previous answer was written. Bytes node cannot parse, CONNECT,
//   and methods node does not know are answered after the requests before them (see mux.ts for what),
//   then the connection closes.
// - A request body is read only by a handler that wants it, and never past that handler's limit: a
//   Content-Length above it is refused with 413 before any byte is read (and before "100 Continue" is
//   sent to a client that asked for it), a body of unknown length once the bytes received pass it. The
//   connection then closes, so the rest of the body is never read. Bodies no handler read are discarded
//   by node (small ones) or cut by closing the connection (chunked or large ones).
// - Every handler gets an AbortSignal that fires when its client goes away or close() begins; blocking
//   queries pass it to the server, so an abandoned blocking query ends at once.
// - close(): stops accepting, closes idle connections, aborts in-flight requests' signals (blocking queries
//   answer with what they have, or 503), lets in-flight requests finish for up to closeGraceMs, then cuts
//   the remaining connections. Answers given while closing carry "Connection: close".

import { createServer, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline, type Duplex, type Readable } from 'node:stream';
import type { Logger } from 'pino';
import { assert } from '../base/index.js';
import { ServerError, type ServerApi } from '../server/index.js';
import type { LocalAgentApi } from './agent-api.js';
import { HttpError, serverErrorReplies } from './errors.js';
import { httpLimits } from './limits.js';
import { routeRequest } from './mux.js';
import { textReply, type HttpServerLimits, type Reply, type RequestContext } from './reply.js';

export interface HttpServerOptions {
  /** Interface to listen on, e.g. "127.0.0.1" or "0.0.0.0". */
  readonly host: string;
  /** TCP port; 0 picks a free one (see HttpServer.address). */
  readonly port: number;
  readonly api: ServerApi;
  /** This agent's local state for /v1/agent/service* and /v1/agent/check* (absent: those answer 501). */
  readonly agent?: LocalAgentApi;
  readonly logger: Logger;
  /** Overrides of httpLimits (tests use small values). */
  readonly limits?: Partial<HttpServerLimits>;
  /** How long close() waits for in-flight requests, in ms. Default httpLimits.closeGraceMs. */
  readonly closeGraceMs?: number;
  /** Source of the blocking-query jitter, in [0, 1). Default Math.random. */
  readonly random?: () => number;
}

export interface HttpServer {
  /** Where the server listens (the real port when options.port was 0). */
  readonly address: { readonly host: string; readonly port: number };
  /** "http://<host>:<port>" (IPv6 hosts in brackets). */
  readonly url: string;
  /** Stops the server as described above. Idempotent; resolves once every connection is closed. */
  close(): Promise<void>;
}

/** Why a request's signal fired. */
class ClientGone extends Error {
  override readonly name = 'ClientGone';
}
class ShuttingDown extends Error {
  override readonly name = 'ShuttingDown';
}

/**
 * The requests in flight, each with its own AbortController, which close() aborts. One shared set,
 * not a listener per request on one shared signal: past ten requests held at once (say, waiting for
 * a leader) Node reports those listeners as a leak (MaxListenersExceededWarning).
 */
class Requests {
  private readonly controllers = new Set<AbortController>();
  private reason: ShuttingDown | undefined;

  get shuttingDown(): boolean {
    return this.reason !== undefined;
  }

  /** A controller for one request, aborted at once if close() has begun; `release` it when done. */
  open(): AbortController {
    const c = new AbortController();
    if (this.reason !== undefined) c.abort(this.reason);
    else this.controllers.add(c);
    return c;
  }

  release(c: AbortController): void {
    this.controllers.delete(c);
  }

  abortAll(reason: ShuttingDown): void {
    this.reason ??= reason;
    const all = [...this.controllers];
    this.controllers.clear();
    for (const c of all) c.abort(this.reason);
  }
}

export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const limits: HttpServerLimits = { ...httpLimits, ...options.limits };
  const closeGraceMs = options.closeGraceMs ?? httpLimits.closeGraceMs;
  const random = options.random ?? Math.random;
  const log = options.logger;
  const requests = new Requests();
  const inFlight = new Set<Promise<void>>();

  const server = createServer({
    // Node's requestTimeout bounds every request's body as a whole, which would cut a large snapshot
    // upload. Buffered bodies keep that bound in BodyReader.read; streamed ones get an idle timeout.
    requestTimeout: 0,
    headersTimeout: httpLimits.headersTimeoutMs,
  });
  server.keepAliveTimeout = httpLimits.keepAliveTimeoutMs;

  // Requests on one connection are served one after another, in order, as Go's server serves them: it
  // reads the next request only once the previous handler returned and its answer was written. node
  // parses pipelined requests as their bytes arrive and emits each at once (only the answers are queued
  // in order), so without this a pipelined GET would run beside the PUT before it and miss its write.
  // `turns` holds, per connection, a promise that settles once everything queued on it so far is done
  // (answered, or its client gone); it never rejects.
  const turns = new WeakMap<Duplex, Promise<void>>();
  const inTurn = (socket: Duplex, run: () => Promise<void>): void => {
    const task = (turns.get(socket) ?? Promise.resolve()).then(run).catch((err: unknown) => {
      log.error({ err }, 'http: unexpected failure while answering a request; the connection is closed');
      socket.destroy();
    });
    turns.set(socket, task);
    inFlight.add(task);
    void task.finally(() => inFlight.delete(task));
  };
  const serve = (req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void => {
    inTurn(req.socket, async () => {
      // The client went away before this request's turn, or an earlier answer closed the connection
      // (Connection: close): as in Go, nothing after it is served.
      if (req.socket.destroyed || !req.socket.writable) return;
      await handleRequest({ req, res, expectsContinue, api: options.api, agent: options.agent, limits, random, log, requests });
      await answered(res);
    });
  };
  /**
   * Writes `reply()` (if any) on a connection node parses no further, after the requests before it,
   * and closes it.
   */
  const answerRaw = (socket: Duplex, reply: () => Reply | undefined): void => {
    inTurn(socket, async () => {
      // end(), not destroy(): the answers before may still be in the socket's write queue.
      const answer = socket.writable ? reply() : undefined;
      if (answer === undefined) socket.end();
      else socket.end(rawResponse(answer));
    });
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => serve(req, res, false));
  // With this listener node does not answer "100 Continue" itself: readBody does, once the declared
  // length is known to fit, so an oversized upload is refused before the client sends it.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => serve(req, res, true));
  // node hands a CONNECT request over as a tunnel (and drops the connection if nobody listens). Go
  // serves it as any request with the method CONNECT: Consul's router answers it (405 with Allow for its
  // paths, its 404 otherwise). node parses nothing more on the connection, so it closes after the answer.
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    answerRaw(socket, () => routedWithoutHandler(req.method ?? 'CONNECT', req.url ?? ''));
  });
  server.on('clientError', (error: ClientError, socket: Duplex) => {
    // Bytes node cannot parse as HTTP never reach a handler. The requests before them on the connection
    // are answered first (Go reads the bad bytes only once those are served), then the bad request gets
    // its answer and the connection closes (as in Go: nothing after bad bytes can be read reliably).
    log.debug({ err: error }, 'http: malformed request or broken connection');
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    // Bytes after a request that asked for Connection: close are ignored: its answer closes the
    // connection, as Go's does.
    answerRaw(socket, () => (error.code === 'HPE_CLOSED_CONNECTION' ? undefined : unparsedRequestReply(error)));
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (cause: NodeJS.ErrnoException): void => {
      const error: NodeJS.ErrnoException = new Error(
        `cannot serve the HTTP API on ${options.host}:${options.port}: ${cause.message}`, { cause });
      if (cause.code !== undefined) error.code = cause.code;
      reject(error);
    };
    server.once('error', onError);
    server.listen(options.port, options.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const address = { host: bound.address, port: bound.port };
  const url = `http://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
  log.info({ url }, 'http: Consul-compatible HTTP API listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      requests.abortAll(new ShuttingDown('the HTTP server is shutting down'));
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, closeGraceMs);
      });
      await Promise.race([Promise.allSettled([...inFlight]), grace]);
      clearTimeout(timer);
      server.closeAllConnections();
      await closed;
      log.info({ url }, 'http: closed');
    })();
    return closing;
  };

  return { address, url, close };
}

interface RequestEnv {
  readonly agent: LocalAgentApi | undefined;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly expectsContinue: boolean;
  readonly api: ServerApi;
  readonly limits: HttpServerLimits;
  readonly random: () => number;
  readonly log: Logger;
  readonly requests: Requests;
}

async function handleRequest(env: RequestEnv): Promise<void> {
  const { req, res, log } = env;
  const started = performance.now();
  const controller = env.requests.open();
  res.on('close', () => {
    if (!res.writableFinished) controller.abort(new ClientGone('the client closed the connection'));
  });
  const body = new BodyReader(req, res, env.expectsContinue, started);
  let reply: Reply;
  try {
    reply = await dispatch(env, controller.signal, body);
  } catch (error) {
    reply = replyForError(error, controller.signal, log, req);
  } finally {
    env.requests.release(controller);
  }
  if (res.destroyed || res.headersSent) {
    log.debug({ method: req.method, url: redact(req.url) }, 'http: client gone before the answer');
    return;
  }
  const closeConnection = env.requests.shuttingDown || body.mustCloseConnection();
  if (reply.stream !== undefined) {
    await streamReply(res, reply, reply.stream, closeConnection, log);
    log.debug({ method: req.method, url: redact(req.url), status: reply.status, ms: Math.round(performance.now() - started) }, 'http: streamed');
    return;
  }
  writeReply(res, reply, closeConnection);
  // Built only when it is written: at info level this is every request's cost for nothing.
  if (reply.status < 500 && !log.isLevelEnabled('debug')) return;
  const ms = Math.round(performance.now() - started);
  const entry = { method: req.method, url: redact(req.url), status: reply.status, ms };
  if (reply.status >= 500) log.warn({ ...entry, error: String(reply.body).slice(0, 500) }, 'http: request failed');
  else log.debug(entry, 'http: request');
}

async function dispatch(env: RequestEnv, signal: AbortSignal, body: BodyReader): Promise<Reply> {
  const { req } = env;
  const routing = routeRequest(req.method ?? 'GET', req.url ?? '/');
  if (routing.kind === 'reply') return routing.reply;
  const { route, method, path, query } = routing;
  const ctx: RequestContext = {
    method,
    path,
    query,
    headers: req.headers,
    api: env.api,
    agent: env.agent,
    limits: env.limits,
    signal,
    random: env.random,
    localAddress: req.socket.localAddress ?? '',
    pretty: query.has('pretty'),
    readBody: (limitBytes, tooLarge) => body.read(limitBytes, tooLarge),
    bodyStream: () => body.stream(),
  };
  return route.handle(ctx);
}

/** Resolves once `res` was written out or its connection is gone. */
function answered(res: ServerResponse): Promise<void> {
  if (res.writableFinished || res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    res.once('finish', resolve);
    res.once('close', resolve);
  });
}

/** What the router answers for a request no handler may serve (CONNECT, or a method node does not parse). */
function routedWithoutHandler(method: string, target: string): Reply {
  try {
    const routing = routeRequest(method, target);
    // Every method a route registers is one node parses and does not tunnel.
    assert(routing.kind === 'reply', `no route serves ${method}`);
    return routing.reply;
  } catch (error) {
    if (error instanceof HttpError) return textReply(error.status, error.body, error.options.headers);
    throw error;
  }
}

type ClientError = Error & { code?: string; rawPacket?: Buffer; bytesParsed?: number };

/** A token method, a request target and the version: a request line Go parses (and node may not). */
const requestLine = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/1\.[01]\r?$/;

/**
 * The answer to bytes node refused to parse. A method node does not know (Go accepts any token) is
 * routed as Go would route it: Consul's 405 with Allow for its paths, its 404 for the rest, a redirect
 * for a path that is not clean. Anything else is a 400 (431 for oversized headers, 408 for slow ones).
 */
function unparsedRequestReply(error: ClientError): Reply {
  if (error.code === 'HPE_HEADER_OVERFLOW') return textReply(431, 'the request headers are larger than this server accepts');
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') return textReply(408, 'the request was not received in time');
  if (error.code === 'HPE_INVALID_METHOD' && error.rawPacket !== undefined && error.bytesParsed !== undefined) {
    // node reports where the failing request starts within the packet it was parsing.
    const packet = error.rawPacket;
    const start = packet.lastIndexOf(0x0a, error.bytesParsed - 1) + 1;
    const end = packet.indexOf(0x0a, start);
    const line = end === -1 ? null : requestLine.exec(packet.subarray(start, end).toString('latin1'));
    if (line !== null) return routedWithoutHandler(line[1] as string, line[2] as string);
  }
  return textReply(400, `malformed HTTP request: ${error.message}`);
}

/** `reply` as the bytes of an HTTP/1.1 response that closes the connection. */
function rawResponse(reply: Reply): Buffer {
  const body = typeof reply.body === 'string' ? Buffer.from(reply.body, 'utf8') : reply.body;
  let head = `HTTP/1.1 ${reply.status} ${STATUS_CODES[reply.status] ?? ''}\r\n`;
  for (const [name, value] of Object.entries(reply.headers)) {
    if (!/^(connection|content-length)$/i.test(name)) head += `${name}: ${value}\r\n`;
  }
  head += `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

function replyForError(error: unknown, signal: AbortSignal, log: Logger, req: IncomingMessage): Reply {
  if (error instanceof HttpError) return textReply(error.status, error.body, error.options.headers);
  if (error instanceof ServerError) {
    // Consul's exact text where it has one, whatever the server's message says.
    const { status, body } = serverErrorReplies[error.code];
    return textReply(status, body ?? error.message);
  }
  if (signal.aborted && signal.reason instanceof ShuttingDown) {
    return textReply(503, 'This Conclave server is shutting down; retry the request on another server.');
  }
  if (error instanceof ClientGone || (signal.aborted && signal.reason instanceof ClientGone)) {
    return textReply(499, ''); // the client is gone: never written
  }
  log.error({ err: error, method: req.method, url: redact(req.url) }, 'http: unexpected failure while serving a request');
  const message = error instanceof Error ? error.message : String(error);
  return textReply(500, `Internal error while serving this request: ${message}`);
}

/**
 * Writes the headers, then the stream, chunked. A stream that fails midway aborts the connection:
 * the response never gets its final chunk, so the client sees a broken transfer, never a whole one.
 * A client that goes away destroys the stream (which releases what it holds).
 */
function streamReply(res: ServerResponse, reply: Reply, stream: Readable, closeConnection: boolean, log: Logger): Promise<void> {
  const headers: Record<string, string> = { ...reply.headers };
  if (closeConnection) headers['Connection'] = 'close';
  res.writeHead(reply.status, headers);
  return new Promise((resolve) => {
    pipeline(stream, res, (err) => {
      if (err !== undefined && err !== null) {
        if (!res.destroyed) log.warn({ err: err.message }, 'http: a streamed answer failed midway; the connection is aborted');
        res.destroy(err);
        stream.destroy();
      }
      resolve();
    });
  });
}

function writeReply(res: ServerResponse, reply: Reply, closeConnection: boolean): void {
  const body = typeof reply.body === 'string' ? Buffer.from(reply.body, 'utf8') : reply.body;
  const headers: Record<string, string> = { ...reply.headers, 'Content-Length': String(body.length) };
  if (closeConnection) headers['Connection'] = 'close';
  res.writeHead(reply.status, headers);
  res.end(body);
}

/** The request URL for logs, with ?token values hidden (Consul does the same). */
function redact(url: string | undefined): string {
  return (url ?? '').replace(/([?&]token=)[^&]*/g, '$1<hidden>');
}

/** Reads one request body within a limit; remembers whether the connection can be reused afterwards. */
class BodyReader {
  private consumed = false;
  private abandoned = false;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly expectsContinue: boolean,
    /** performance.now() when the request arrived: a buffered body must be whole by requestTimeoutMs after. */
    private readonly startedMs: number,
  ) {}

  /** The body as a stream, with no length limit and an inactivity timeout instead of a deadline. */
  stream(): Readable {
    const { req } = this;
    if (this.expectsContinue) this.res.writeContinue();
    this.consumed = true;
    req.setTimeout(httpLimits.streamIdleTimeoutMs, () => {
      this.abandoned = true;
      req.destroy(new Error(`no byte of the request body arrived for ${httpLimits.streamIdleTimeoutMs / 1000} s`));
    });
    req.once('end', () => req.setTimeout(0));
    return req;
  }

  /** True when the body was refused or left unread in a way node will not cheaply drain. */
  mustCloseConnection(): boolean {
    if (this.abandoned) return true;
    if (this.consumed) return false;
    if (this.expectsContinue) return true; // the client may still be holding its body back
    if (this.req.headers['transfer-encoding'] !== undefined) return true;
    return Number(this.req.headers['content-length'] ?? 0) > httpLimits.drainUnreadBodyMaxBytes;
  }

  read(limitBytes: number, tooLarge: (declaredBytes: number | undefined) => HttpError): Promise<Buffer> {
    const { req } = this;
    const header = req.headers['content-length'];
    const declared = header === undefined ? undefined : Number(header);
    if (declared !== undefined && declared > limitBytes) {
      this.abandoned = true;
      return Promise.reject(tooLarge(declared));
    }
    if (this.expectsContinue) this.res.writeContinue();
    this.consumed = true;
    return new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let total = 0;
      let ended = false;
      const cleanup = (): void => {
        clearTimeout(deadline);
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', onGone);
        req.off('close', onClose);
      };
      const deadline = setTimeout(() => {
        cleanup();
        req.pause();
        this.abandoned = true;
        reject(new HttpError(408, `the request body was not received within ${httpLimits.requestTimeoutMs / 1000} s`));
      }, Math.max(0, httpLimits.requestTimeoutMs - (performance.now() - this.startedMs)));
      const onData = (chunk: Buffer): void => {
        total += chunk.length;
        if (total > limitBytes) {
          cleanup();
          req.pause();
          this.abandoned = true;
          reject(tooLarge(undefined));
          return;
        }
        chunks.push(chunk);
      };
      const onEnd = (): void => {
        ended = true;
        cleanup();
        resolve(Buffer.concat(chunks, total));
      };
      const onGone = (): void => {
        cleanup();
        reject(new ClientGone('the client went away while sending the request body'));
      };
      const onClose = (): void => {
        if (!ended) onGone();
      };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('error', onGone);
      req.on('close', onClose);
    });
  }
}
