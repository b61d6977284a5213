// The HTTP side of `conclave snapshot save` and `restore`, as Consul's CLI and Go API client do it
// (command/flags/http.go, api/api.go, api/snapshot.go):
//
// - Flags -http-addr, -token, -token-file, -datacenter, -stale; environment CONSUL_HTTP_ADDR,
//   CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_SSL. The address defaults to
//   127.0.0.1:8500; "host:port" without a scheme is http (https with CONSUL_HTTP_SSL=true);
//   "unix:///path" is a Unix socket; another scheme is `Unknown protocol scheme: <s>`.
// - The token, first non-empty of: the -token-file flag's file, the -token flag, the
//   CONSUL_HTTP_TOKEN_FILE file, CONSUL_HTTP_TOKEN. It goes in X-Consul-Token and nowhere else: it is
//   never printed, and never put in the URL.
// - A status other than 200 is `Unexpected response code: <code> (<body trimmed>)`, the text of the Go
//   client's StatusError.
//
// Streaming both ways with node:http: the response body is handed over as a stream, the request body
// is piped from a stream, nothing is buffered whole. There is no timeout on a whole body (a snapshot may
// take hours); a connect timeout, and an idle timeout while body bytes are expected to flow.

import { request as httpRequest, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { conclaveVersion } from '../../base/index.js';
import { lastFlag, type FlagSpec, type ParsedFlags } from '../../config/index.js';

/** The HTTP client flags of the network commands (Consul's -ca-file and friends are not supported). */
export const httpClientFlags: readonly FlagSpec[] = [
  {
    name: 'http-addr',
    kind: 'string',
    valueName: 'address',
    usage:
      'The address and port of the Conclave HTTP agent. The value can be an IP address or DNS address, but it must also include the port. This can also be specified via the CONSUL_HTTP_ADDR environment variable.',
    defaultText: 'http://127.0.0.1:8500',
  },
  {
    name: 'token',
    kind: 'string',
    valueName: 'value',
    usage: 'ACL token to use in the request. This can also be specified via the CONSUL_HTTP_TOKEN environment variable. If unspecified, the query will default to the token of the Conclave agent at the HTTP address.',
  },
  {
    name: 'token-file',
    kind: 'string',
    valueName: 'value',
    usage: 'File containing the ACL token to use in the request instead of one specified via the -token argument or CONSUL_HTTP_TOKEN environment variable. This can also be specified via the CONSUL_HTTP_TOKEN_FILE environment variable.',
  },
];

export const serverFlags: readonly FlagSpec[] = [
  {
    name: 'datacenter',
    kind: 'string',
    valueName: 'name',
    usage: 'Name of the datacenter to query. If unspecified, this will default to the datacenter of the queried agent.',
  },
  {
    name: 'stale',
    kind: 'bool',
    usage:
      'Permit any Conclave server (non-leader) to respond to this request. This allows for lower latency and higher throughput, but can result in stale data. This option has no effect on non-read operations.',
    defaultText: 'false',
  },
];

export type Env = Readonly<Record<string, string | undefined>>;

export interface HttpTarget {
  readonly protocol: 'http:' | 'https:';
  /** host:port, for messages and the Host header; "localhost" for a Unix socket. */
  readonly host: string;
  readonly hostname: string;
  readonly port: number;
  readonly socketPath?: string;
}

export interface HttpClientConfig {
  readonly target: HttpTarget;
  readonly token: string | undefined;
  readonly datacenter: string | undefined;
  readonly stale: boolean;
}

/** A problem building the client: Consul prints it as `Error connecting to <agent>: <message>`. */
export class ClientConfigError extends Error {}

/** The client configuration from the flags and the environment; rejects with ClientConfigError. */
/** resolveHttpClient, with a bad setting (address, token file) reported as Consul reports it, as a failure to connect. */
export async function httpClientOrFail(flags: ParsedFlags, env: Env, fail: (line: string) => number): Promise<HttpClientConfig | number> {
  try {
    return await resolveHttpClient(flags, env);
  } catch (err) {
    if (err instanceof ClientConfigError) return fail(`Error connecting to Conclave agent: ${err.message}`);
    throw err;
  }
}

export async function resolveHttpClient(flags: ParsedFlags, env: Env): Promise<HttpClientConfig> {
  const addrFlag = lastFlag(flags, 'http-addr');
  const address = typeof addrFlag === 'string' ? addrFlag : nonEmpty(env['CONSUL_HTTP_ADDR']) ?? '127.0.0.1:8500';
  const ssl = parseEnvBool(env['CONSUL_HTTP_SSL'], 'CONSUL_HTTP_SSL');
  const target = parseAddress(address, ssl);
  const token = await resolveToken(flags, env);
  const dc = lastFlag(flags, 'datacenter');
  return { target, token, datacenter: typeof dc === 'string' && dc !== '' ? dc : undefined, stale: lastFlag(flags, 'stale') === true };
}

/** Consul's precedence: -token-file, -token, CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_TOKEN; empty ones skipped. */
async function resolveToken(flags: ParsedFlags, env: Env): Promise<string | undefined> {
  const fileFlag = lastFlag(flags, 'token-file');
  if (typeof fileFlag === 'string' && fileFlag !== '') {
    const token = await readTokenFile(fileFlag);
    if (token !== undefined) return token;
  }
  const tokenFlag = lastFlag(flags, 'token');
  if (typeof tokenFlag === 'string' && tokenFlag !== '') return tokenFlag;
  const envFile = nonEmpty(env['CONSUL_HTTP_TOKEN_FILE']);
  if (envFile !== undefined) {
    const token = await readTokenFile(envFile);
    if (token !== undefined) return token;
  }
  return nonEmpty(env['CONSUL_HTTP_TOKEN']);
}

async function readTokenFile(path: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ClientConfigError(`Error loading token file: ${errorText(err)}`);
  }
  return nonEmpty(text.trim());
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}

function parseEnvBool(value: string | undefined, name: string): boolean {
  if (value === undefined || value === '') return false;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  throw new ClientConfigError(`Could not parse ${name}: strconv.ParseBool: parsing ${JSON.stringify(value)}: invalid syntax`);
}

/** Consul's address rules: "scheme://rest" with http, https or unix; otherwise host:port over http. */
export function parseAddress(address: string, ssl = false): HttpTarget {
  let scheme = ssl ? 'https' : 'http';
  let rest = address;
  const sep = address.indexOf('://');
  if (sep !== -1) {
    const given = address.slice(0, sep);
    rest = address.slice(sep + 3);
    if (given === 'unix') return { protocol: 'http:', host: 'localhost', hostname: 'localhost', port: 80, socketPath: rest };
    if (given === 'https') scheme = 'https';
    else if (given !== 'http') throw new ClientConfigError(`Unknown protocol scheme: ${given}`);
  }
  rest = rest.replace(/\/+$/, '');
  let url: URL;
  try {
    url = new URL(`${scheme}://${rest}`);
  } catch {
    throw new ClientConfigError(`invalid address ${JSON.stringify(address)}: expected host:port, http://host:port, https://host:port or unix:///path`);
  }
  if (url.pathname !== '/' || url.search !== '' || url.username !== '') {
    throw new ClientConfigError(`invalid address ${JSON.stringify(address)}: expected host:port, http://host:port, https://host:port or unix:///path`);
  }
  const protocol = scheme === 'https' ? 'https:' : 'http:';
  const port = url.port === '' ? (protocol === 'https:' ? 443 : 80) : Number(url.port);
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return { protocol, host: url.host, hostname, port };
}

/** The Go client's StatusError. */
export class StatusError extends Error {
  constructor(
    readonly code: number,
    readonly body: string,
  ) {
    super(`Unexpected response code: ${code} (${body})`);
  }
}

/**
 * A failure to reach the agent (`connected` false: refused, no route, no connection in time) or to keep
 * talking to it (true: reset, closed early, idle too long).
 */
export class ConnectionError extends Error {
  constructor(
    message: string,
    readonly connected: boolean,
  ) {
    super(message);
  }
}

export interface TransferTimeouts {
  /** Until the TCP (or TLS) connection is up. Default 10 s. */
  readonly connectMs: number;
  /** With no byte moving while a body is being sent or received. Default 60 s. */
  readonly idleMs: number;
}

export const defaultTimeouts: TransferTimeouts = { connectMs: 10_000, idleMs: 60_000 };

/** Longest error body kept for StatusError: a proxy's HTML page must not be read whole. */
const maxErrorBody = 64 * 1024;

export interface SnapshotRequest {
  readonly method: 'GET' | 'PUT';
  readonly config: HttpClientConfig;
  /** PUT: the body, streamed, and its length. */
  readonly body?: { readonly stream: Readable; readonly length: number };
  readonly timeouts?: TransferTimeouts;
}

export interface SnapshotResponse {
  readonly headers: IncomingMessage['headers'];
  /**
   * The body as it arrives. Iterating it throws a ConnectionError if the connection drops before the
   * body's end (the agent aborts the connection when a save fails midway): never a clean, short end.
   */
  readonly body: AsyncIterable<Uint8Array>;
  /** The Content-Length the agent announced, when it did. */
  readonly length: number | undefined;
  /** Drops the connection (after a failure on our side); harmless once the body was read. */
  close(): void;
}

/** The request line's target: /v1/snapshot with dc= and stale= as the Go client encodes them. */
export function snapshotPath(config: HttpClientConfig, method: 'GET' | 'PUT'): string {
  const params: string[] = [];
  if (config.datacenter !== undefined) params.push(`dc=${encodeURIComponent(config.datacenter)}`);
  // Restore passes no query options in Consul's CLI: -stale is accepted and ignored there.
  if (method === 'GET' && config.stale) params.push('stale=');
  return params.length === 0 ? '/v1/snapshot' : `/v1/snapshot?${params.join('&')}`;
}

/** Where the request goes, for error messages: `GET http://127.0.0.1:8500/v1/snapshot` (no token). */
export function describeRequest(method: string, config: HttpClientConfig): string {
  const t = config.target;
  const where = t.socketPath !== undefined ? `unix://${t.socketPath}` : `${t.protocol}//${t.host}`;
  return `${method} ${where}${snapshotPath(config, method as 'GET' | 'PUT')}`;
}

/**
 * Sends the request and resolves once response headers arrive with status 200. Rejects with
 * StatusError (another status; the error body read, at most 64 KiB) or ConnectionError.
 */
export function snapshotRequest(req: SnapshotRequest): Promise<SnapshotResponse> {
  const { config, method } = req;
  const timeouts = req.timeouts ?? defaultTimeouts;
  const t = config.target;
  const headers: OutgoingHttpHeaders = { 'User-Agent': `conclave/${conclaveVersion()}`, Accept: '*/*' };
  if (config.token !== undefined) headers['X-Consul-Token'] = config.token;
  if (req.body !== undefined) {
    headers['Content-Type'] = 'application/octet-stream';
    headers['Content-Length'] = String(req.body.length);
  }
  const what = describeRequest(method, config);
  const send = t.protocol === 'https:' ? httpsRequest : httpRequest;

  return new Promise<SnapshotResponse>((resolve, reject) => {
    let settled = false;
    let connected = false;
    let connectTimer: NodeJS.Timeout | undefined;
    const fail = (err: Error): void => {
      clearTimeout(connectTimer);
      if (settled) return;
      settled = true;
      req.body?.stream.destroy();
      reject(err);
    };
    let cr: ClientRequest;
    try {
      cr = send({
        method,
        protocol: t.protocol,
        hostname: t.hostname,
        port: t.port,
        ...(t.socketPath !== undefined ? { socketPath: t.socketPath } : {}),
        path: snapshotPath(config, method),
        headers,
        agent: false,
      });
    } catch (err) {
      fail(new ConnectionError(`${what}: ${errorText(err)}`, false));
      return;
    }

    connectTimer = setTimeout(() => cr.destroy(new ConnectionError(`${what}: no connection within ${timeouts.connectMs / 1000} s`, false)), timeouts.connectMs);
    cr.on('socket', (socket: Socket) => {
      const onConnect = (): void => {
        connected = true;
        clearTimeout(connectTimer);
        // Idle timeout while the request body goes out; after it, the agent may take as long as it needs
        // (a restore answers only once it is done), until the response starts.
        if (req.body !== undefined) socket.setTimeout(timeouts.idleMs);
      };
      if (t.protocol === 'https:') socket.once('secureConnect', onConnect);
      else if (socket.connecting) socket.once('connect', onConnect);
      else onConnect();
      socket.on('timeout', () => cr.destroy(new ConnectionError(`${what}: no data moved for ${timeouts.idleMs / 1000} s`, true)));
    });
    cr.on('finish', () => cr.socket?.setTimeout(0));
    let answered = false;
    cr.on('error', (err) => {
      // An agent that answers before reading the whole upload (a 403) may reset the connection while the
      // body still goes out: its answer, read below, is the one to report.
      if (answered && !(err instanceof ConnectionError)) return;
      fail(err instanceof ConnectionError ? err : new ConnectionError(`${what}: ${errorText(err)}`, connected));
    });
    cr.on('response', (res: IncomingMessage) => {
      answered = true;
      clearTimeout(connectTimer);
      res.socket.setTimeout(timeouts.idleMs);
      if (res.statusCode !== 200) {
        void readErrorBody(res).then((body) => fail(new StatusError(res.statusCode ?? 0, body)));
        return;
      }
      res.on('error', () => cr.destroy());
      const length = res.headers['content-length'] === undefined ? undefined : Number(res.headers['content-length']);
      settled = true;
      resolve({
        headers: res.headers,
        body: completeBody(res, what),
        length: Number.isSafeInteger(length) ? length : undefined,
        close: () => {
          res.destroy();
          cr.destroy();
        },
      });
    });

    if (req.body === undefined) {
      cr.end();
    } else {
      const body = req.body.stream;
      body.on('error', (err) => cr.destroy(err));
      body.pipe(cr);
    }
  });
}

/** The response body; a connection that closes before the body's end throws, whatever node calls it. */
async function* completeBody(res: IncomingMessage, what: string): AsyncGenerator<Uint8Array> {
  const early = (): ConnectionError => new ConnectionError(`${what}: the connection closed before the snapshot was complete`, true);
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) yield chunk;
  } catch (err) {
    if (err instanceof ConnectionError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ECONNRESET' || !res.complete) throw early();
    throw new ConnectionError(`${what}: ${errorText(err)}`, true);
  }
  if (!res.complete) throw early();
}

/** The error body, trimmed, at most 64 KiB of it; what arrived when the connection drops midway. */
async function readErrorBody(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      if (size < maxErrorBody) {
        chunks.push(chunk.subarray(0, maxErrorBody - size));
        size += Math.min(chunk.length, maxErrorBody - size);
      }
    }
  } catch {
    // keep what arrived
  }
  return Buffer.concat(chunks).toString('utf8').trim();
}

/** The message of an error, with its code when the message does not already carry it. */
export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== undefined && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}
