// Status, operator, agent and catalog endpoints, and Consul's answers for unknown paths and methods.

import test from 'ava';
import { startHarness } from '../support/http-harness.js';

test('status: /v1/status/leader is a JSON string, "" without a leader; /v1/status/peers an array', async (t) => {
  const h = await startHarness(t);
  const leader = await h.request('GET', '/v1/status/leader');
  t.is(leader.status, 200);
  t.is(leader.headers['content-type'], 'application/json');
  t.is(leader.text, '"127.0.0.1:8300"');
  const peers = await h.request('GET', '/v1/status/peers');
  t.is(peers.text, '["127.0.0.1:8300"]');
  h.server.leaderless = true;
  t.is((await h.request('GET', '/v1/status/leader')).text, '""');
  const other = await h.request('GET', '/v1/status/peers?dc=dc9');
  t.is(other.status, 400);
  t.is(other.text, 'No path to datacenter');
});

test('operator: /v1/operator/raft/configuration has Consul\'s shape; without a leader it needs ?stale', async (t) => {
  const h = await startHarness(t);
  const r = await h.request('GET', '/v1/operator/raft/configuration');
  t.is(r.status, 200);
  t.is(r.text, '{"Servers":[{"ID":"node-1-id","Node":"node-1","Address":"127.0.0.1:8300","Leader":true,"ProtocolVersion":"3","Voter":true}],"Index":1}');
  h.server.leaderless = true;
  const noLeader = await h.request('GET', '/v1/operator/raft/configuration');
  t.is(noLeader.status, 500);
  t.is(noLeader.text, 'No cluster leader');
  t.like((await h.request('GET', '/v1/operator/raft/configuration?stale')).json(), { Servers: [{ Leader: false }] });
});

test('operator: transfer-leader is POST only, passes ?id on, and maps a refusal to its status', async (t) => {
  const h = await startHarness(t);
  const get = await h.request('GET', '/v1/operator/raft/transfer-leader');
  t.is(get.status, 405);
  t.is(get.text, 'method GET not allowed');
  t.is(get.headers['allow'], 'OPTIONS,POST');
  const r = await h.request('POST', '/v1/operator/raft/transfer-leader?id=node-2-id');
  t.is(r.status, 400);
  t.is(r.text, 'cannot transfer leadership: this single-node cluster has no other voter');
  await h.request('POST', '/v1/operator/raft/transfer-leader');
  t.deepEqual(h.server.operatorCalls, [{ op: 'transfer-leader', arg: 'node-2-id' }, { op: 'transfer-leader', arg: undefined }]);
});

test('operator: DELETE /v1/operator/raft/peer needs exactly one of ?id and ?address (Consul\'s texts)', async (t) => {
  const h = await startHarness(t);
  const none = await h.request('DELETE', '/v1/operator/raft/peer');
  t.is(none.status, 400);
  t.is(none.text, "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove");
  const both = await h.request('DELETE', '/v1/operator/raft/peer?id=a&address=b');
  t.is(both.status, 400);
  t.is(both.text, 'Must specify only one of ?id or ?address');
  t.deepEqual(h.server.operatorCalls, []);
  const ok = await h.request('DELETE', '/v1/operator/raft/peer?address=127.0.0.1:8300');
  t.is(ok.status, 200);
  t.is(ok.text, '');
  const unknown = await h.request('DELETE', '/v1/operator/raft/peer?id=ghost');
  t.is(unknown.status, 400);
  t.is(unknown.text, 'id "ghost" was not found in the Raft configuration');
  t.deepEqual(h.server.operatorCalls.map((c) => c.arg), [{ address: '127.0.0.1:8300' }, { id: 'ghost' }]);
});

test('agent: /v1/agent/self reports Config.NodeName, Datacenter, Version and Server, and Member basics', async (t) => {
  const h = await startHarness(t);
  const r = await h.request('GET', '/v1/agent/self');
  t.is(r.status, 200);
  t.deepEqual(r.json(), {
    Config: { Datacenter: 'dc1', PrimaryDatacenter: 'dc1', NodeName: 'node-1', Server: true, Version: '0.1.0' },
    Member: { Name: 'node-1', Addr: '127.0.0.1', Tags: { role: 'consul', dc: 'dc1' }, Status: 1 },
  });
});

test('catalog: /v1/catalog/datacenters lists the local datacenter', async (t) => {
  const h = await startHarness(t);
  const r = await h.request('GET', '/v1/catalog/datacenters');
  t.is(r.status, 200);
  t.is(r.text, '["dc1"]');
});

test('routing: unknown paths get Consul\'s 404 texts; near misses of real paths are unknown too', async (t) => {
  const h = await startHarness(t);
  for (const path of ['/v1/session/created', '/v1/session', '/v1/status/leader/', '/v1/txn/x', '/v1/kvs/a']) {
    const r = await h.request('PUT', path);
    t.is(r.status, 404, path);
    t.is(r.text, 'Invalid URL path: not a recognized HTTP API endpoint\n', path);
  }
  const root = await h.request('GET', '/status/leader');
  t.is(root.status, 404);
  t.is(root.text, "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'\n");
});

test('routing: a wrong method is Consul\'s 405 with an Allow header; OPTIONS answers the Allow header', async (t) => {
  const h = await startHarness(t);
  const r = await h.request('POST', '/v1/kv/k', { body: 'v' });
  t.is(r.status, 405);
  t.is(r.text, 'method POST not allowed');
  t.is(r.headers['allow'], 'OPTIONS,GET,PUT,DELETE');
  t.is((await h.request('GET', '/v1/txn')).headers['allow'], 'OPTIONS,PUT');
  t.is((await h.request('PUT', '/v1/status/leader')).status, 405);
  const o = await h.request('OPTIONS', '/v1/kv/k');
  t.is(o.status, 200);
  t.is(o.headers['allow'], 'OPTIONS,GET,PUT,DELETE');
  t.is(o.text, '');
  t.is(h.appliedIndex(), 0);
});
