// Test harness for the HTTP layer: a LocalServer (real FSM, see local-server.ts) behind a real
// startHttpServer on 127.0.0.1, and a raw HTTP client that sends exactly the bytes a test names (no
// URL normalisation, keep-alive pooled like node-consul's agent). Everything is torn down with the test.

import type { ExecutionContext } from 'ava';
import { Agent, request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { pino } from 'pino';
import { startHttpServer, type HttpServer, type HttpServerLimits } from '../../src/http/index.js';
import { LocalAgent } from '../../src/agent/local-agent.js';
import { LocalServer } from './local-server.js';

export interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly text: string;
  /** Whether the request went over a socket an earlier request had used. */
  readonly reusedSocket: boolean;
  json(): unknown;
}

export interface RequestOptions {
  readonly body?: string | Buffer;
  readonly headers?: OutgoingHttpHeaders;
  /** Send the body chunked (no Content-Length), in pieces of this many bytes. */
  readonly chunkedPieceBytes?: number;
  readonly signal?: AbortSignal;
}

export interface Harness {
  readonly server: LocalServer;
  readonly http: HttpServer;
  readonly agent: Agent;
  /** The LocalAgent behind /v1/agent/service* (when HarnessOptions.localAgent asked for one). */
  readonly localAgent: LocalAgent | undefined;
  request(method: string, path: string, options?: RequestOptions): Promise<HttpAnswer>;
  /** Index of the last applied entry (to prove bad input changed nothing). */
  appliedIndex(): number;
}

export interface HarnessOptions {
  readonly limits?: Partial<HttpServerLimits>;
  readonly closeGraceMs?: number;
  /** Serve /v1/agent/service* and /v1/agent/check* from a real LocalAgent over `agentDir`, syncing this often. */
  readonly localAgent?: { readonly dir: string; readonly syncIntervalMs: number };
}

export async function startHarness(t: ExecutionContext, options: HarnessOptions = {}): Promise<Harness> {
  const server = await LocalServer.open(t);
  const localAgent = options.localAgent === undefined ? undefined : await LocalAgent.start({
    dataDir: options.localAgent.dir,
    nodeName: server.nodeName,
    datacenter: server.datacenter,
    address: () => '127.0.0.1',
    apply: (command) => server.apply(command),
    read: async (query) => (await server.catalogRead(query, { consistency: 'default' })).json,
    syncIntervalMs: options.localAgent.syncIntervalMs,
    logger: pino({ level: 'silent' }),
  });
  const http = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    api: server,
    ...(localAgent === undefined ? {} : { agent: localAgent }),
    logger: pino({ level: 'silent' }),
    random: () => 0, // no jitter: a test's ?wait is the wait
    ...(options.limits === undefined ? {} : { limits: options.limits }),
    ...(options.closeGraceMs === undefined ? {} : { closeGraceMs: options.closeGraceMs }),
  });
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  // Runs before the LocalServer teardown registered above (ava runs teardowns last-in, first-out).
  t.teardown(async () => {
    agent.destroy();
    await http.close();
    await localAgent?.close();
  });
  const request = (method: string, path: string, o: RequestOptions = {}): Promise<HttpAnswer> =>
    sendRequest(agent, http.address.port, method, path, o);
  return { server, http, agent, localAgent, request, appliedIndex: () => server.fsm.appliedIndex() };
}

export function sendRequest(agent: Agent | false, port: number, method: string, path: string, o: RequestOptions = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const body = o.body === undefined ? undefined : Buffer.from(o.body);
    const headers: OutgoingHttpHeaders = { ...o.headers };
    if (body !== undefined && o.chunkedPieceBytes === undefined) headers['content-length'] = body.length;
    // Node frames a GET or DELETE body only when told to; say so for every chunked body.
    if (body !== undefined && o.chunkedPieceBytes !== undefined) headers['transfer-encoding'] = 'chunked';
    const req = httpRequest({ host: '127.0.0.1', port, method, path, agent, headers, ...(o.signal === undefined ? {} : { signal: o.signal }) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const all = Buffer.concat(chunks);
        const text = all.toString('utf8');
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: all,
          text,
          reusedSocket: req.reusedSocket,
          json: () => JSON.parse(text) as unknown,
        });
      });
    });
    req.on('error', reject);
    if (body === undefined) {
      req.end();
    } else if (o.chunkedPieceBytes === undefined) {
      req.end(body);
    } else {
      for (let i = 0; i < body.length; i += o.chunkedPieceBytes) req.write(body.subarray(i, i + o.chunkedPieceBytes));
      req.end();
    }
  });
}

export const b64 = (s: string): string => Buffer.from(s).toString('base64');
