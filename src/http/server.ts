// The node:http server around the handlers: connection lifecycle, bounded request bodies, client
// disconnects, the mapping of failures to Consul's statuses and texts, and a graceful close.
//
// Contract:
// - Keep-alive is on; idle connections close after httpLimits.keepAliveTimeoutMs.
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

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline, type Duplex, type Readable } from 'node:stream';
import type { Logger } from 'pino';
import { ServerError, type ServerApi } from '../server/index.js';
import { HttpError, serverErrorReplies } from './errors.js';
import { httpLimits } from './limits.js';
import { percentDecode, Query } from './query.js';
import { textReply, type HttpServerLimits, type Reply, type RequestContext } from './reply.js';
import { findRoute, unknownPathBody } from './routes.js';

export interface HttpServerOptions {
  /** Interface to listen on, e.g. "127.0.0.1" or "0.0.0.0". */
  readonly host: string;
  /** TCP port; 0 picks a free one (see HttpServer.address). */
  readonly port: number;
  readonly api: ServerApi;
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

  const serve = (req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void => {
    const task = handleRequest({ req, res, expectsContinue, api: options.api, limits, random, log, requests });
    inFlight.add(task);
    void task.finally(() => inFlight.delete(task));
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => serve(req, res, false));
  // With this listener node does not answer "100 Continue" itself: readBody does, once the declared
  // length is known to fit, so an oversized upload is refused before the client sends it.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => serve(req, res, true));
  server.on('clientError', (error: Error & { code?: string }, socket: Duplex) => {
    // Bytes that are not HTTP never reach a handler; answer as node would by default, with a reason.
    log.debug({ err: error }, 'http: malformed request or broken connection');
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, reason] = error.code === 'HPE_HEADER_OVERFLOW'
      ? ['431 Request Header Fields Too Large', 'the request headers are larger than this server accepts']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? ['408 Request Timeout', 'the request was not received in time']
        : ['400 Bad Request', `malformed HTTP request: ${error.message}`];
    const body = Buffer.from(reason, 'utf8');
    socket.end(`HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n` +
      `Connection: close\r\n\r\n${reason}`);
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
  const ms = Math.round(performance.now() - started);
  const entry = { method: req.method, url: redact(req.url), status: reply.status, ms };
  if (reply.status >= 500) log.warn({ ...entry, error: String(reply.body).slice(0, 500) }, 'http: request failed');
  else log.debug(entry, 'http: request');
}

async function dispatch(env: RequestEnv, signal: AbortSignal, body: BodyReader): Promise<Reply> {
  const { req } = env;
  const target = originForm(req.url ?? '/');
  const q = target.indexOf('?');
  const rawPath = q === -1 ? target : target.slice(0, q);
  const path = percentDecode(rawPath, false);
  if (path === undefined) {
    throw new HttpError(400, 'Invalid URL path: it has a malformed %-escape or bytes that are not UTF-8');
  }
  const query = Query.parse(q === -1 ? '' : target.slice(q + 1));
  const route = findRoute(path);
  if (route === undefined) {
    // Consul's index page answers "/" itself; everything else unregistered is a 404.
    if (path === '/' && req.method === 'GET') return textReply(200, 'Conclave: the Consul-compatible HTTP API is under /v1/ (no UI)');
    return textReply(404, unknownPathBody(path));
  }
  const method = req.method ?? 'GET';
  const allow = ['OPTIONS', ...route.methods].join(',');
  if (method === 'OPTIONS') return { status: 200, headers: { Allow: allow }, body: '' };
  if (!route.methods.includes(method)) return textReply(405, `method ${method} not allowed`, { Allow: allow });
  const ctx: RequestContext = {
    method,
    path,
    query,
    headers: req.headers,
    api: env.api,
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

/** "/path?query" from a request target, also when a proxy sends the absolute form "http://host/path". */
function originForm(target: string): string {
  const absolute = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?]*/.exec(target);
  if (absolute === null) return target;
  const rest = target.slice(absolute[0].length);
  return rest.startsWith('/') ? rest : `/${rest}`;
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
