// A small client for the agent's JSON endpoints, for the CLI commands that are not snapshots (lock, kv):
// the same address, token and datacenter resolution as `conclave snapshot` (snapshot/http-client.ts),
// one keep-alive agent, a bound on every request, and Consul's Go client's error text for a status
// other than 200 (`Unexpected response code: <code> (<body>)`).

import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { conclaveVersion } from '../base/index.js';
import { formatFlagHelp, parseFlags, type FlagSpec, type ParsedFlags } from '../config/index.js';
import type { TextOutput } from './agent.js';
import { ClientConfigError, ConnectionError, errorText, resolveHttpClient, StatusError, type Env, type HttpClientConfig } from './snapshot/http-client.js';

export type OpenedCommand =
  | {
    readonly ok: true;
    readonly flags: ParsedFlags;
    readonly client: ApiClient;
    /** Writes `line` to stderr and gives the exit status 1. */
    readonly fail: (line: string) => number;
  }
  | { readonly ok: false; readonly code: number };

/**
 * What every network command starts with: its flags (help on stdout with status 0; a bad flag on
 * stderr with status 1) and a client for the agent (a bad address or token file is Consul's
 * `Error connecting to ...`, status 1). The caller closes the client.
 */
export async function openCommand(
  specs: readonly FlagSpec[], args: readonly string[], command: string, usage: string,
  deps: { readonly stdout: TextOutput; readonly stderr: TextOutput; readonly env?: Env },
): Promise<OpenedCommand> {
  const parsed = parseFlags(specs, args);
  if (!parsed.ok) {
    if (parsed.helpRequested) {
      deps.stdout.write([usage, '', 'Command Options', '', formatFlagHelp(specs)].join('\n'));
      return { ok: false, code: 0 };
    }
    deps.stderr.write(`${parsed.message}\nRun "conclave ${command} -h" for its usage and flags.\n`);
    return { ok: false, code: 1 };
  }
  try {
    const fail = (line: string): number => {
      deps.stderr.write(`${line}\n`);
      return 1;
    };
    return { ok: true, flags: parsed.flags, client: new ApiClient(await resolveHttpClient(parsed.flags, deps.env ?? process.env)), fail };
  } catch (err) {
    if (!(err instanceof ClientConfigError)) throw err;
    deps.stderr.write(`Error connecting to Conclave agent: ${err.message}\n`);
    return { ok: false, code: 1 };
  }
}

export interface ApiAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface ApiRequest {
  readonly method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  /** The path with its query, e.g. `/v1/kv/a?recurse=`; `dc` is added from the configuration. */
  readonly path: string;
  readonly body?: Buffer | string;
  /** Bound on the whole request; blocking queries pass their wait plus a margin. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  /** Statuses answered rather than thrown (e.g. 404 for a missing key). Always 200. */
  readonly accept?: readonly number[];
}

/** A KV entry as GET /v1/kv answers it, with Flags as exact decimal digits (a uint64). */
export interface WireEntry {
  readonly Key: string;
  readonly Flags: string;
  readonly Value: string | null;
  readonly Session?: string;
  readonly LockIndex: number;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

/**
 * Parses a GET /v1/kv answer keeping Flags exact (values from 2^53, such as the lock flag, would be
 * rounded as JSON numbers). Inside JSON strings every quote is escaped, so only the field name matches.
 */
export function parseKvEntries(body: Buffer): WireEntry[] {
  return JSON.parse(body.toString('utf8').replace(/"Flags":(\d+)/g, '"Flags":"$1"')) as WireEntry[];
}

/** A key in a URL path: each segment escaped, the slashes kept. */
export function escapeKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

/** Largest answer read: the CLI's reads are keys, sessions and lists, not snapshots. */
const maxAnswerBytes = 256 * 1024 * 1024;

export class ApiClient {
  private readonly agent: HttpAgent;

  constructor(readonly config: HttpClientConfig) {
    this.agent = config.target.protocol === 'https:' ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
  }

  close(): void {
    this.agent.destroy();
  }

  /** Sends one request; rejects with StatusError (a status not accepted) or ConnectionError. */
  request(req: ApiRequest): Promise<ApiAnswer> {
    const t = this.config.target;
    const headers: OutgoingHttpHeaders = { 'User-Agent': `conclave/${conclaveVersion()}` };
    if (this.config.token !== undefined) headers['X-Consul-Token'] = this.config.token;
    const body = req.body === undefined ? undefined : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body, 'utf8');
    if (body !== undefined) headers['Content-Length'] = String(body.length);
    let path = req.path;
    if (this.config.datacenter !== undefined) path += `${path.includes('?') ? '&' : '?'}dc=${encodeURIComponent(this.config.datacenter)}`;
    const what = `${req.method} ${path.split('?')[0] ?? path}`;
    const send = t.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<ApiAnswer>((resolve, reject) => {
      let done = false;
      const finish = (f: () => void): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        req.signal?.removeEventListener('abort', onAbort);
        f();
      };
      const cr = send({
        method: req.method,
        hostname: t.hostname,
        port: t.port,
        ...(t.socketPath !== undefined ? { socketPath: t.socketPath } : {}),
        path,
        headers,
        agent: this.agent,
      });
      const timer = setTimeout(() => cr.destroy(new ConnectionError(`${what}: no answer within ${Math.round(req.timeoutMs / 1000)} s`, true)), req.timeoutMs);
      const onAbort = (): void => void cr.destroy(new ConnectionError(`${what}: stopped`, true));
      req.signal?.addEventListener('abort', onAbort, { once: true });
      cr.on('error', (err) => finish(() => reject(err instanceof ConnectionError ? err : new ConnectionError(`${what}: ${errorText(err)}`, false))));
      cr.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxAnswerBytes) cr.destroy(new ConnectionError(`${what}: the answer is larger than ${maxAnswerBytes} bytes`, true));
          else chunks.push(chunk);
        });
        res.on('error', (err) => finish(() => reject(new ConnectionError(`${what}: ${errorText(err)}`, true))));
        res.on('end', () => finish(() => {
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks);
          if (status === 200 || (req.accept ?? []).includes(status)) resolve({ status, headers: res.headers, body: text });
          else reject(new StatusError(status, text.toString('utf8').trim()));
        }));
      });
      cr.end(body);
    });
  }

  /** A request whose 200 answer is JSON. */
  async json<T>(req: ApiRequest): Promise<{ readonly value: T; readonly index: number; readonly status: number }> {
    const a = await this.request(req);
    const index = Number(a.headers['x-consul-index'] ?? 0);
    if (a.status !== 200) return { value: undefined as T, index, status: a.status };
    return { value: JSON.parse(a.body.toString('utf8')) as T, index, status: a.status };
  }
}
