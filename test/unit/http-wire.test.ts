// HTTP on the wire as Go's net/http serves it (issue 9): pipelined requests on one connection served
// one after another, bad bytes after a good request, methods node does not parse, CONNECT, and paths
// that are not canonical (Go's ServeMux redirects them; none may name a key).
import test from 'ava';
import { startHarness } from '../support/http-harness.js';
import { rawExchange, rawRequest } from '../support/raw-http.js';

test('wire: a pipelined PUT then GET (?consistent and default) on one connection: the GET sees the PUT', async (t) => {
  const h = await startHarness(t);
  const { answers } = await rawExchange(h.http.address.port,
    rawRequest('PUT', '/v1/kv/a', 'one') + rawRequest('GET', '/v1/kv/a?consistent&raw') + rawRequest('GET', '/v1/kv/a?raw'), 3);
  t.deepEqual(answers.map((a) => [a.status, a.body]), [[200, 'true'], [200, 'one'], [200, 'one']]);
});

test('wire: a pipelined DELETE then GET answers 404; PUT, PUT, GET sees the second value', async (t) => {
  const h = await startHarness(t);
  t.is((await h.request('PUT', '/v1/kv/gone', { body: 'old' })).status, 200);
  const del = await rawExchange(h.http.address.port, rawRequest('DELETE', '/v1/kv/gone') + rawRequest('GET', '/v1/kv/gone?raw'), 2);
  t.deepEqual(del.answers.map((a) => [a.status, a.body]), [[200, 'true'], [404, '']]);
  const puts = await rawExchange(h.http.address.port,
    rawRequest('PUT', '/v1/kv/b', 'first') + rawRequest('PUT', '/v1/kv/b?cas=0', 'second') + rawRequest('PUT', '/v1/kv/b', 'third') + rawRequest('GET', '/v1/kv/b?raw'), 4);
  // The cas=0 PUT runs after the first one created the key, so it must fail; the third wins.
  t.deepEqual(puts.answers.map((a) => [a.status, a.body]), [[200, 'true'], [200, 'false'], [200, 'true'], [200, 'third']]);
});

test('wire: a pipelined request after one that closes the connection is not served', async (t) => {
  const h = await startHarness(t);
  const close = 'GET /v1/status/leader HTTP/1.1\r\nHost: conclave.test\r\nConnection: close\r\n\r\n';
  const r = await rawExchange(h.http.address.port, close + rawRequest('PUT', '/v1/kv/after', 'v'), 1);
  t.deepEqual(r.answers.map((a) => a.status), [200]);
  t.true(r.closedByServer);
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.is(h.appliedIndex(), 0);
});

test('wire: a valid request followed by garbage in the same packet gets its answer, then a 400, then the close', async (t) => {
  const h = await startHarness(t);
  await h.request('PUT', '/v1/kv/x', { body: 'v' });
  const r = await rawExchange(h.http.address.port, `${rawRequest('GET', '/v1/kv/x?raw')}GARBAGE\r\n\r\n`, 2);
  t.deepEqual(r.answers.map((a) => [a.status, a.body.slice(0, 24)]), [[200, 'v'], [400, 'malformed HTTP request: ']]);
  t.is(r.answers[1]?.headers['connection'], 'close');
  t.true(r.closedByServer);
  // A PUT whose write is slower than parsing the garbage is answered first too, and applied once.
  const before = h.appliedIndex();
  const w = await rawExchange(h.http.address.port, `${rawRequest('PUT', '/v1/kv/y', 'w')}\x00\x01\r\n\r\n`, 2);
  t.deepEqual(w.answers.map((a) => a.status), [200, 400]);
  t.is(h.appliedIndex(), before + 1);
});

test('wire: methods node does not parse get the router\'s answer (Consul\'s 405 with Allow, or its 404), never a silent close', async (t) => {
  const h = await startHarness(t);
  const port = h.http.address.port;
  const foo = await rawExchange(port, rawRequest('FOO', '/v1/kv/x'), 1);
  t.is(foo.answers[0]?.status, 405);
  t.is(foo.answers[0]?.body, 'method FOO not allowed');
  t.is(foo.answers[0]?.headers['allow'], 'OPTIONS,GET,PUT,DELETE');
  const status = await rawExchange(port, rawRequest('BREW', '/v1/status/leader'), 1);
  t.deepEqual([status.answers[0]?.status, status.answers[0]?.headers['allow']], [405, 'OPTIONS,GET']);
  const unknown = await rawExchange(port, rawRequest('FOO', '/v1/nowhere'), 1);
  t.deepEqual([unknown.answers[0]?.status, unknown.answers[0]?.body], [404, 'Invalid URL path: not a recognized HTTP API endpoint\n']);
  // After a good request in the same packet: that one first.
  const after = await rawExchange(port, rawRequest('GET', '/v1/status/leader') + rawRequest('FOO', '/v1/kv/x'), 2);
  t.deepEqual(after.answers.map((a) => a.status), [200, 405]);
  // A path that is not clean is redirected first, whatever the method (the mux runs before Consul's checks).
  const dirty = await rawExchange(port, rawRequest('FOO', '/v1/kv/a/../b?x=1'), 1);
  t.deepEqual([dirty.answers[0]?.status, dirty.answers[0]?.headers['location']], [301, '/v1/kv/b?x=1']);
  t.is(h.appliedIndex(), 0);
});

test('wire: CONNECT is served as a request with that method, as Go serves it: 405 for Consul\'s paths, 404 for an authority', async (t) => {
  const h = await startHarness(t);
  const port = h.http.address.port;
  const kv = await rawExchange(port, rawRequest('CONNECT', '/v1/kv/x'), 1);
  t.is(kv.answers[0]?.status, 405);
  t.is(kv.answers[0]?.body, 'method CONNECT not allowed');
  t.is(kv.answers[0]?.headers['allow'], 'OPTIONS,GET,PUT,DELETE');
  t.true(kv.closedByServer);
  const authority = await rawExchange(port, rawRequest('CONNECT', 'consul.example:443'), 1);
  t.deepEqual([authority.answers[0]?.status, authority.answers[0]?.body], [404, '404 page not found\n']);
  // CONNECT paths are not cleaned (Go: "CONNECT requests are not canonicalized"): an unknown path is a 404.
  const dirty = await rawExchange(port, rawRequest('CONNECT', '/v1/x/../kv/a'), 1);
  t.is(dirty.answers[0]?.status, 404);
  const after = await rawExchange(port, rawRequest('PUT', '/v1/kv/c', 'v') + rawRequest('CONNECT', '/v1/kv/c'), 2);
  t.deepEqual(after.answers.map((a) => a.status), [200, 405]);
  t.is(h.appliedIndex(), 1);
});

test('wire: non-canonical paths get Go ServeMux\'s 301 to the clean path, query kept, and no key is written', async (t) => {
  const h = await startHarness(t);
  const port = h.http.address.port;
  const cases: Array<[string, string]> = [
    ['/v1/kv/a/../b', '/v1/kv/b'],
    ['/v1/kv/a/./b', '/v1/kv/a/b'],
    ['/v1/kv/a//b', '/v1/kv/a/b'],
    ['//v1/kv/a', '/v1/kv/a'],
    ['/v1/kv/./a', '/v1/kv/a'],
    ['/v1/kv/a/.', '/v1/kv/a'],
    ['/v1/kv/a/..', '/v1/kv'],
    ['/v1/kv/a/b/../', '/v1/kv/a/'],
    ['/v1/kv/../../etc', '/etc'],
    ['/v1/kv/x/../y?flags=3&cas=0', '/v1/kv/y?flags=3&cas=0'],
    // Spelled with escapes: cleaned after decoding, as Go did up to 1.21 (see src/http/mux.ts).
    ['/v1/kv/a/%2E%2E/b', '/v1/kv/b'],
    ['/v1/kv/a%2F%2Fb', '/v1/kv/a/b'],
    ['/v1/kv/a%2F.%2Fb', '/v1/kv/a/b'],
    ['/v1/kv/sp%20ace/./q%3Fm', '/v1/kv/sp%20ace/q%3Fm'],
  ];
  for (const method of ['PUT', 'DELETE', 'GET', 'OPTIONS']) {
    for (const [path, location] of cases) {
      const r = await rawExchange(port, rawRequest(method, path, method === 'PUT' ? 'v' : undefined), 1);
      t.is(r.answers[0]?.status, 301, `${method} ${path}`);
      t.is(r.answers[0]?.headers['location'], location, `${method} ${path}`);
      t.is(r.answers[0]?.body, method === 'GET' ? `<a href="${location.replace(/&/g, '&amp;')}">Moved Permanently</a>.\n\n` : '', `${method} ${path}`);
    }
  }
  // A tree DELETE through a dirty path deletes nothing either.
  await h.request('PUT', '/v1/kv/keep/me', { body: 'v' });
  t.is((await rawExchange(port, rawRequest('DELETE', '/v1/kv/x/../keep?recurse'), 1)).answers[0]?.status, 301);
  t.is(h.appliedIndex(), 1);
  const keys = await h.request('GET', '/v1/kv/?keys');
  t.deepEqual(keys.json(), ['keep/me']);
  // The redirect keeps the connection: a request after it on the same one is served.
  const kept = await rawExchange(port, rawRequest('GET', '/v1/kv/./keep/me') + rawRequest('GET', '/v1/kv/keep/me?raw'), 2);
  t.deepEqual(kept.answers.map((a) => [a.status, a.status === 200 ? a.body : '']), [[301, ''], [200, 'v']]);
});
