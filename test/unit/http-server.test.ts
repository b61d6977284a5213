// The HTTP server itself: keep-alive, refusing oversized bodies before reading them (also with
// Expect: 100-continue), client disconnects ending blocking queries, and close().

import test from 'ava';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { startHarness, sendRequest } from '../support/http-harness.js';

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!condition()) throw new Error(`timed out waiting for ${what}`);
}

test('server: keep-alive connections are reused across requests', async (t) => {
  const h = await startHarness(t);
  const first = await h.request('PUT', '/v1/kv/k', { body: 'v' });
  const second = await h.request('GET', '/v1/kv/k');
  const third = await h.request('GET', '/v1/status/leader');
  t.is(first.status, 200);
  t.false(first.reusedSocket);
  t.true(second.reusedSocket);
  t.true(third.reusedSocket);
  t.not(first.headers['connection'], 'close');
});

test('server: an oversized upload sent with Expect: 100-continue is refused before the client sends it', async (t) => {
  const h = await startHarness(t);
  const outcome = await new Promise<{ status: number; text: string; continued: boolean }>((resolve, reject) => {
    let continued = false;
    const req = httpRequest({
      host: '127.0.0.1',
      port: h.http.address.port,
      method: 'PUT',
      path: '/v1/kv/big',
      agent: false,
      headers: { 'content-length': 10 * 1024 * 1024, expect: '100-continue' },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, continued }));
    });
    req.on('continue', () => {
      continued = true;
      req.end(Buffer.alloc(10 * 1024 * 1024));
    });
    req.on('error', reject);
    req.flushHeaders();
  });
  t.is(outcome.status, 413);
  t.false(outcome.continued);
  t.regex(outcome.text, /^Request body\(10485760 bytes\) too large, max size: 524288 bytes/);
  t.is(h.appliedIndex(), 0);
});

test('server: a small upload with Expect: 100-continue gets "100 Continue" and is stored', async (t) => {
  const h = await startHarness(t);
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpRequest({
      host: '127.0.0.1', port: h.http.address.port, method: 'PUT', path: '/v1/kv/small', agent: false,
      headers: { 'content-length': 5, expect: '100-continue' },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('continue', () => req.end('hello'));
    req.on('error', reject);
    req.flushHeaders();
  });
  t.is(status, 200);
  t.is((await h.request('GET', '/v1/kv/small?raw')).text, 'hello');
});

test('server: a client that disconnects ends its blocking query at once', async (t) => {
  const h = await startHarness(t);
  await h.request('PUT', '/v1/kv/w', { body: 'v' });
  const controller = new AbortController();
  const pending = sendRequest(false, h.http.address.port, 'GET', '/v1/kv/w?index=1&wait=10m', { signal: controller.signal });
  await until(() => h.server.blockingNow === 1, 'the query to block');
  controller.abort();
  await t.throwsAsync(pending);
  await until(() => h.server.blockingNow === 0, 'the blocking query to end');
  t.is(h.server.blockingAborted, 1);
  // The server is still serving.
  t.is((await h.request('GET', '/v1/kv/w')).status, 200);
});

test('server: close() answers in-flight blocking queries, closes idle keep-alive connections and stops listening', async (t) => {
  const h = await startHarness(t, { closeGraceMs: 10_000 });
  await h.request('PUT', '/v1/kv/w', { body: 'v' }); // leaves an idle keep-alive socket in h.agent
  const blocked = sendRequest(false, h.http.address.port, 'GET', '/v1/kv/w?index=1&wait=10m');
  await until(() => h.server.blockingNow === 1, 'the query to block');
  await h.http.close();
  const answer = await blocked;
  t.is(answer.status, 200);
  t.is(answer.headers['connection'], 'close');
  t.like(answer.json(), [{ Key: 'w' }]);
  t.is(h.server.blockingNow, 0);
  const refused = await new Promise<string>((resolve) => {
    const socket = connect(h.http.address.port, '127.0.0.1');
    socket.on('connect', () => { socket.destroy(); resolve('connected'); });
    socket.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  t.is(refused, 'ECONNREFUSED');
  await h.http.close(); // idempotent
});

test('server: a large body that no handler reads is not drained; the connection is closed after the answer', async (t) => {
  const h = await startHarness(t);
  const r = await h.request('GET', '/v1/status/leader', { body: Buffer.alloc(256 * 1024), chunkedPieceBytes: 16 * 1024 });
  t.is(r.status, 200);
  t.is(r.headers['connection'], 'close');
  const small = await h.request('GET', '/v1/status/leader', { body: 'x' });
  t.is(small.status, 200);
  t.not(small.headers['connection'], 'close');
});

/** Sends raw bytes on a fresh connection and returns everything the server sends back. */
function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (d: string) => { answer += d; });
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

test('server: bytes that are not HTTP get a 400 with a reason, and the connection closes', async (t) => {
  const h = await startHarness(t);
  const answer = await rawExchange(h.http.address.port, 'HELLO THERE\r\n\r\n');
  t.regex(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
  t.regex(answer, /\r\nConnection: close\r\n/);
  t.regex(answer, /malformed HTTP request: /);
});

test('server: an absolute-form request target is served like its path; "/" answers like Consul\'s index page', async (t) => {
  const h = await startHarness(t);
  const answer = await rawExchange(h.http.address.port,
    'GET http://consul.example:8500/v1/status/leader?dc=dc1 HTTP/1.1\r\nHost: consul.example\r\nConnection: close\r\n\r\n');
  t.regex(answer, /^HTTP\/1\.1 200 OK\r\n/);
  t.true(answer.endsWith('\r\n\r\n"127.0.0.1:8300"'), answer);
  const index = await h.request('GET', '/');
  t.is(index.status, 200);
  t.regex(index.text, /^Conclave: /);
});
