// HTTP on the wire as Go's net/http serves it (issue 9), through the leader and through followers
// (whose reads and writes are forwarded to the leader, so a write takes a round trip more): pipelined
// requests on one connection are served in order, each after the previous one finished; bad bytes
// after a good request, unknown methods and CONNECT get an answer; non-canonical paths are redirected
// and name no key. Real agent processes on loopback.
import test from 'ava';
import { ProcessCluster, waitFor } from '../support/process-cluster.js';
import { rawExchange, rawRequest } from '../support/raw-http.js';

test.serial('3 nodes: pipelined requests, bad bytes, unknown methods, CONNECT and dirty paths, through leader and followers', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3 });
  c.startAll();
  const leader = await c.leader();
  const order = [leader, ...[0, 1, 2].filter((i) => i !== leader)];
  for (const i of order) {
    const port = c.node(i).httpPort;
    const who = `${c.node(i).name}${i === leader ? ' (leader)' : ' (follower)'}`;
    const key = `pipe/${c.node(i).name}`;

    const put = await rawExchange(port,
      rawRequest('PUT', `/v1/kv/${key}`, 'one') + rawRequest('GET', `/v1/kv/${key}?consistent&raw`) + rawRequest('GET', `/v1/kv/${key}?raw`), 3);
    t.deepEqual(put.answers.map((a) => [a.status, a.body]), [[200, 'true'], [200, 'one'], [200, 'one']], `PUT then GETs through ${who}`);

    const del = await rawExchange(port,
      rawRequest('DELETE', `/v1/kv/${key}`) + rawRequest('GET', `/v1/kv/${key}?consistent`) + rawRequest('GET', `/v1/kv/${key}`), 3);
    t.deepEqual(del.answers.map((a) => a.status), [200, 404, 404], `DELETE then GETs through ${who}`);

    const cas = await rawExchange(port,
      rawRequest('PUT', `/v1/kv/${key}?cas=0`, 'a') + rawRequest('PUT', `/v1/kv/${key}?cas=0`, 'b') + rawRequest('GET', `/v1/kv/${key}?raw`), 3);
    t.deepEqual(cas.answers.map((a) => [a.status, a.body]), [[200, 'true'], [200, 'false'], [200, 'a']], `two cas=0 PUTs through ${who}`);

    const garbage = await rawExchange(port, `${rawRequest('PUT', `/v1/kv/${key}`, 'g')}GARBAGE\r\n\r\n`, 2);
    t.deepEqual(garbage.answers.map((a) => a.status), [200, 400], `PUT then garbage through ${who}`);
    t.true(garbage.closedByServer);

    const methods = await rawExchange(port, rawRequest('GET', `/v1/kv/${key}?raw`) + rawRequest('FOO', `/v1/kv/${key}`), 2);
    t.deepEqual(methods.answers.map((a) => [a.status, a.body]), [[200, 'g'], [405, 'method FOO not allowed']], `FOO through ${who}`);
    const connect = await rawExchange(port, rawRequest('CONNECT', `/v1/kv/${key}`), 1);
    t.deepEqual(connect.answers.map((a) => [a.status, a.headers['allow']]), [[405, 'OPTIONS,GET,PUT,DELETE']], `CONNECT through ${who}`);

    for (const dirty of [`/v1/kv/${key}/../x`, `/v1/kv/${key}//x`, `/v1/kv/${key}/./x`, `//v1/kv/${key}x`]) {
      const r = await rawExchange(port, rawRequest('PUT', dirty, 'dirty'), 1);
      t.is(r.answers[0]?.status, 301, `PUT ${dirty} through ${who}`);
    }
  }
  // Nothing but the clean keys exists, on every server.
  const expected = order.map((i) => `pipe/${c.node(i).name}`).sort();
  for (const i of [0, 1, 2]) {
    const keys = await waitFor(`${c.node(i).name} to list the keys`, async () => {
      const r = await c.http(i, '/v1/kv/?keys&stale');
      const listed = r.status === 200 ? ((await r.json()) as string[]) : [];
      return listed.length >= expected.length ? listed : undefined;
    });
    t.deepEqual(keys, expected, c.node(i).name);
  }
});
