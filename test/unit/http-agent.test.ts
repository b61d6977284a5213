// /v1/agent/service* and /v1/agent/check* over a real LocalAgent, HTTP server and FSM: registrations kept
// locally and synced to the catalog, TTL checks that expire, HTTP and TCP checks really run against
// local listeners, DeregisterCriticalServiceAfter, maintenance mode, registrations that survive a
// restart of the agent, and bad input refused with Consul's texts, changing nothing.

import test from 'ava';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { LocalAgent } from '../../src/agent/local-agent.js';
import { startHarness, type Harness } from '../support/http-harness.js';
import { tempRoot } from '../support/fsm-driver.js';

interface Check {
  readonly CheckID: string;
  readonly Status: string;
  readonly Output: string;
  readonly ServiceID: string;
  readonly Type: string;
}

async function harness(t: Parameters<typeof startHarness>[0]): Promise<{ h: Harness; dir: string }> {
  const dir = await tempRoot(t, 'conclave-agent-');
  const h = await startHarness(t, { localAgent: { dir, syncIntervalMs: 200 } });
  return { h, dir };
}

/** Polls `f` every 50 ms until it returns a value, at most `ms`. */
async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const catalogCheck = async (h: Harness, id: string): Promise<Check | undefined> =>
  ((await h.request('GET', '/v1/health/node/node-1')).json() as Check[]).find((c) => c.CheckID === id);

test('agent: a service with a TTL check reaches the catalog; pass, warn and expiry move its status there', async (t) => {
  const { h } = await harness(t);
  // python-consul's shape: lower-case names, the check inline.
  const reg = await h.request('PUT', '/v1/agent/service/register', { body: '{"name":"web","id":"web-1","port":8080,"tags":["v1"],"check":{"ttl":"1s"}}' });
  t.is(reg.status, 200, reg.text);
  t.deepEqual(Object.keys((await h.request('GET', '/v1/agent/services')).json() as object), ['web-1']);
  t.like((await h.request('GET', '/v1/agent/service/web-1')).json(), { ID: 'web-1', Service: 'web', Port: 8080, Tags: ['v1'], Datacenter: 'dc1' });
  const unknown = await h.request('GET', '/v1/agent/service/nope');
  t.deepEqual([unknown.status, unknown.text], [404, 'unknown service ID: nope']);
  t.like((await h.request('GET', '/v1/agent/checks')).json(), { 'service:web-1': { Status: 'critical', ServiceID: 'web-1', Type: 'ttl', Name: "Service 'web' check" } });

  await until('the service in the catalog', async () => {
    const list = (await h.request('GET', '/v1/catalog/service/web')).json() as Array<{ ServiceID: string; ServicePort: number }>;
    return list[0]?.ServiceID === 'web-1' && list[0].ServicePort === 8080 ? true : undefined;
  });
  t.is((await h.request('PUT', '/v1/agent/check/pass/service:web-1?note=all%20good')).status, 200);
  await until('passing in the catalog', async () => ((await catalogCheck(h, 'service:web-1'))?.Output === 'all good' ? true : undefined));
  t.is((await catalogCheck(h, 'service:web-1'))?.Status, 'passing');
  const healthy = (await h.request('GET', '/v1/health/service/web?passing')).json() as unknown[];
  t.is(healthy.length, 1);
  t.is((await h.request('PUT', '/v1/agent/check/update/service:web-1', { body: '{"Status":"warning","Output":"slow"}' })).status, 200);
  await until('warning in the catalog', async () => ((await catalogCheck(h, 'service:web-1'))?.Status === 'warning' ? true : undefined));
  // Not refreshed: after its 1 s TTL the check goes critical.
  const expired = await until('the TTL to expire', async () => {
    const c = await catalogCheck(h, 'service:web-1');
    return c?.Status === 'critical' ? c : undefined;
  });
  t.is(expired.Output, 'TTL expired');

  t.is((await h.request('PUT', '/v1/agent/service/deregister/web-1')).status, 200);
  t.deepEqual((await h.request('GET', '/v1/agent/services')).json(), {});
  await until('the service gone from the catalog', async () => (((await h.request('GET', '/v1/catalog/service/web')).json() as unknown[]).length === 0 ? true : undefined));
  t.is(await catalogCheck(h, 'service:web-1'), undefined, 'its check went with it');
  const again = await h.request('PUT', '/v1/agent/service/deregister/web-1');
  t.deepEqual([again.status, again.text], [404, 'Unknown service ID "web-1". Ensure that the service ID is passed, not the service name.']);
});

test('agent: HTTP and TCP checks run against real listeners on their interval', async (t) => {
  const { h } = await harness(t);
  let code = 200;
  const web: HttpServer = createHttpServer((_req, res) => {
    res.statusCode = code;
    res.end(code === 200 ? 'ok' : 'broken');
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => web.close(() => r())));
  const webPort = (web.address() as AddressInfo).port;
  const tcp = createTcpServer((s) => s.end());
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  const tcpPort = (tcp.address() as AddressInfo).port;

  const reg = await h.request('PUT', '/v1/agent/service/register', {
    body: JSON.stringify({
      Name: 'api', Port: webPort,
      Checks: [
        { HTTP: `http://127.0.0.1:${webPort}/health`, Interval: '1s', Timeout: '2s' },
        { TCP: `127.0.0.1:${tcpPort}`, Interval: '1s' },
      ],
    }),
  });
  t.is(reg.status, 200, reg.text);
  const http = await until('the HTTP check to pass', async () => {
    const c = await catalogCheck(h, 'service:api:1');
    return c?.Status === 'passing' ? c : undefined;
  });
  t.is(http.Type, 'http');
  t.regex(http.Output, new RegExp(`^HTTP GET http://127.0.0.1:${webPort}/health: 200 OK Output: ok`));
  t.like(await until('the TCP check to pass', async () => {
    const c = await catalogCheck(h, 'service:api:2');
    return c?.Status === 'passing' ? c : undefined;
  }), { Output: `TCP connect 127.0.0.1:${tcpPort}: Success`, Type: 'tcp' });

  code = 503;
  t.regex((await until('the HTTP check to fail', async () => {
    const c = await catalogCheck(h, 'service:api:1');
    return c?.Status === 'critical' ? c : undefined;
  })).Output, /: 503 Service Unavailable Output: broken/);
  code = 429;
  await until('429 to be a warning', async () => ((await catalogCheck(h, 'service:api:1'))?.Status === 'warning' ? true : undefined));
  await new Promise<void>((r) => tcp.close(() => r()));
  t.regex((await until('the TCP check to fail', async () => {
    const c = await catalogCheck(h, 'service:api:2');
    return c?.Status === 'critical' ? c : undefined;
  })).Output, /^dial tcp 127\.0\.0\.1:\d+: connect ECONNREFUSED/);
});

test('agent: DeregisterCriticalServiceAfter reaps a service; maintenance adds and removes its critical check', async (t) => {
  const { h } = await harness(t);
  await h.request('PUT', '/v1/agent/service/register', { body: '{"Name":"db","Check":{"TTL":"10s","Status":"passing"}}' });
  t.is((await h.request('PUT', '/v1/agent/service/maintenance/db?enable=true&reason=upgrade')).status, 200);
  t.like((await h.request('GET', '/v1/agent/checks')).json(), { '_service_maintenance:db': { Status: 'critical', ServiceID: 'db' } });
  await until('maintenance in the catalog', async () => ((await catalogCheck(h, '_service_maintenance:db'))?.Status === 'critical' ? true : undefined));
  t.deepEqual((await h.request('GET', '/v1/health/service/db?passing')).json(), [], 'a service in maintenance is not passing');
  t.is((await h.request('PUT', '/v1/agent/service/maintenance/db?enable=false')).status, 200);
  await until('maintenance gone from the catalog', async () => ((await catalogCheck(h, '_service_maintenance:db')) === undefined ? true : undefined));
  const missing = await h.request('PUT', '/v1/agent/service/maintenance/db');
  t.deepEqual([missing.status, missing.text], [400, 'Missing value for enable']);

  const reg = await h.request('PUT', '/v1/agent/service/register', {
    body: '{"Name":"flaky","Check":{"TTL":"500ms","DeregisterCriticalServiceAfter":"1s"}}',
  });
  t.is(reg.status, 200, reg.text);
  await until('the critical service to be reaped', async () => ((await h.request('GET', '/v1/agent/service/flaky')).status === 404 ? true : undefined));
  await until('and gone from the catalog', async () => (((await h.request('GET', '/v1/catalog/service/flaky')).json() as unknown[]).length === 0 ? true : undefined));
  t.is((await h.request('GET', '/v1/agent/service/db')).status, 200, 'the other service stays');
});

test('agent: registrations survive a restart of the agent on its data directory', async (t) => {
  const { h, dir } = await harness(t);
  await h.request('PUT', '/v1/agent/service/register', { body: '{"Name":"cache","Port":6379,"Check":{"TTL":"30s"}}' });
  await h.request('PUT', '/v1/agent/check/register', { body: '{"Name":"disk","TTL":"30s","Status":"passing"}' });
  await h.localAgent?.close();
  const again = await LocalAgent.start({
    dataDir: dir, nodeName: 'node-1', datacenter: 'dc1', address: () => '127.0.0.1',
    apply: (command) => h.server.apply(command),
    read: async (query) => (await h.server.catalogRead(query, { consistency: 'default' })).json,
    syncIntervalMs: 200, logger: pino({ level: 'silent' }),
  });
  t.teardown(() => again.close());
  t.like(again.services(), { cache: { Service: 'cache', Port: 6379 } });
  t.deepEqual(Object.keys(again.checks()), ['disk', 'service:cache']);
  await again.synced(10_000);
});

test('agent: a damaged services file stops the agent with a message naming the file and the problem', async (t) => {
  const dir = await tempRoot(t, 'conclave-agent-');
  const start = () => LocalAgent.start({
    dataDir: dir, nodeName: 'node-1', datacenter: 'dc1', address: () => '127.0.0.1',
    apply: async () => undefined, read: async () => null, syncIntervalMs: 60_000, logger: pino({ level: 'silent' }),
  });
  const file = join(dir, 'agent-services.json');
  const cases: Array<[string, RegExp]> = [
    ['{"Version":1,"Services":[', /is not valid JSON/],
    ['{"Version":2,"Services":[],"Checks":[]}', /is not an agent services file of version 1/],
    ['{"Version":1,"Services":[{"ID":"x"}],"Checks":[]}', /Services\[0\]: Kind is not a string/],
    ['{"Version":1,"Services":[],"Checks":[{"CheckID":"c","Name":"c","ServiceID":"","Notes":"","http":"","method":"","tcp":"","kind":"ttl","ttlMs":0,"intervalMs":0,"timeoutMs":0,"deregisterCriticalServiceAfterMs":0,"tlsSkipVerify":false,"header":{},"initialStatus":"passing"}]}', /Checks\[0\]: a TTL check has no TTL/],
  ];
  for (const [text, message] of cases) {
    await writeFile(file, text);
    const error = await t.throwsAsync(start());
    t.regex(error?.message ?? '', message);
    t.true(error?.message.includes(file), error?.message);
  }
});

test('agent: bad input gets Consul\'s texts and registers nothing', async (t) => {
  const { h } = await harness(t);
  const cases: Array<[string, string, number, string]> = [
    ['/v1/agent/service/register', '{"Port":80}', 400, 'Missing service name'],
    ['/v1/agent/service/register', '{"Name":"x","Check":{"Args":["/bin/true"],"Interval":"10s"}}', 400, 'Check: Args checks are not supported by Conclave'],
    ['/v1/agent/service/register', '{"Name":"x","Check":{"HTTP":"http://x"}}', 400, 'Must provide TTL or HTTP/TCP and Interval!'],
    ['/v1/agent/service/register', '{"Name":"x","Check":{"TTL":"1s","TCP":"a:1"}}', 400, 'Must provide TTL or HTTP/TCP and Interval!'],
    ['/v1/agent/service/register', '{"Name":"x","Port":"80"}', 400, 'Request decode failed: Port must be an integer'],
    ['/v1/agent/service/register', '{"Name":"x","Check":{"TTL":"1s","Status":"fine"}}', 400, "Invalid check status: 'fine'"],
    ['/v1/agent/check/register', '{"TTL":"1s"}', 400, 'Missing check name'],
    ['/v1/agent/check/register', '{"Name":"c","TTL":"1s","ServiceID":"ghost"}', 400, 'ServiceID "ghost" does not exist'],
    ['/v1/agent/check/register', '{"Name":"c","TTL":"soon"}', 400, 'Request decode failed: TTL'],
    ['/v1/agent/service/register', '{"Name":"x","Meta":{"__proto__":"p"}}', 400, 'Service: field "Meta" has the key "__proto__", which is not allowed'],
    ['/v1/agent/check/register', '{"Name":"c","HTTP":"ftp://h/","Interval":"10s"}', 400, 'HTTP check URL "ftp://h/" must be an http:// or https:// URL'],
    ['/v1/agent/check/register', '{"Name":"c","HTTP":"http://h/","Method":"G ET","Interval":"10s"}', 400, 'Invalid HTTP method "G ET"'],
    ['/v1/agent/check/register', '{"Name":"c","HTTP":"http://h/","Header":{"X\\nY":["1"]},"Interval":"10s"}', 400, 'Invalid HTTP check header'],
    ['/v1/agent/check/register', '{"Name":"c","HTTP":"http://h/","Interval":"720h"}', 400, 'Interval is longer than 2147483647 ms'],
    ['/v1/agent/check/register', '{"Name":"c","TTL":"720h"}', 400, 'TTL is longer than 2147483647 ms'],
  ];
  for (const [path, body, status, text] of cases) {
    const r = await h.request('PUT', path, { body });
    t.is(r.status, status, `${body}: ${r.text}`);
    t.true(r.text.startsWith(text), `${body}: ${r.text}`);
  }
  t.deepEqual((await h.request('GET', '/v1/agent/services')).json(), {});
  t.deepEqual((await h.request('GET', '/v1/agent/checks')).json(), {});
  await h.request('PUT', '/v1/agent/check/register', { body: '{"Name":"web","HTTP":"http://127.0.0.1:1/","Interval":"30s"}' });
  const notTtl = await h.request('PUT', '/v1/agent/check/pass/web');
  t.deepEqual([notTtl.status, notTtl.text], [400, 'CheckID "web" does not have associated TTL']);
  const unknown = await h.request('PUT', '/v1/agent/check/fail/nope');
  t.deepEqual([unknown.status, unknown.text], [404, 'Unknown check ID "nope". Ensure that the check ID is passed, not the check name.']);
  t.is((await h.request('GET', '/v1/agent/check/pass/web')).status, 405, 'PUT only, as Consul from 1.0');
});
