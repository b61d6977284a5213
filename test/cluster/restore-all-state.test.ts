// Save and restore of a 3-node cluster holding every kind of state Conclave keeps: KV entries, sessions
// holding locks (one on a server, one tied to a check of a registered node), catalog nodes, services and
// checks, and an agent's own service. After the state is changed every way and the archive restored
// through a follower: every server holds the same state (decoded stale saves compared), that state is the
// archive's (KV, locks, sessions, catalog), and it works: the restored sessions hold their locks, one
// takes another lock, a check going critical kills the session tied to it, the agent's check still
// reaches the catalog. Every wait is on a condition, bounded in time.

import test from 'ava';
import { okJson, ProcessCluster, waitFor, type HealthCheckJson } from '../support/process-cluster.js';
import { decodeArchive, kvData, type DecodedState } from '../support/snapshots.js';

test.serial('save and restore with every kind of state: equal on every server, the archive\'s, and working', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3, tickMs: 50, electionTimeoutTicks: 20 });
  c.startAll();
  const leader = await c.leader();
  const f = [0, 1, 2].find((i) => i !== leader) as number;
  const fName = c.node(f).name;
  const put = (i: number, path: string, body: unknown = ''): Promise<Response> =>
    c.http(i, path, { method: 'PUT', body: typeof body === 'string' ? body : JSON.stringify(body) });
  const serf = async (node: string): Promise<string | undefined> =>
    (await okJson<HealthCheckJson[]>(await c.http(leader, `/v1/health/node/${node}`), 'health')).find((k) => k.CheckID === 'serfHealth')?.Status;
  for (const i of [0, 1, 2]) await waitFor(`${c.node(i).name} passing`, async () => ((await serf(c.node(i).name)) === 'passing' ? true : undefined), 30_000, () => c.describe());

  // --- The state.
  for (let k = 0; k < 20; k++) t.true(await c.put(leader, `app/k${k}`, `v${k}`));
  const reg = await put(f, '/v1/catalog/register', {
    Node: 'db-host', Address: '10.0.0.7',
    Service: { ID: 'db-1', Service: 'db', Port: 5432, Tags: ['primary'] },
    Checks: [{ CheckID: 'db-ok', Name: 'db ok', Status: 'passing', ServiceID: 'db-1' }, { CheckID: 'host-ok', Name: 'host', Status: 'passing' }],
  });
  t.is(reg.status, 200, await reg.text());
  const s1 = (await okJson<{ ID: string }>(await put(f, '/v1/session/create', { Name: 'server-lock', TTL: '60s', LockDelay: '0s' }), 'create')).ID;
  const s2 = (await okJson<{ ID: string }>(await put(f, '/v1/session/create', {
    Name: 'db-lock', Node: 'db-host', NodeChecks: ['host-ok'], ServiceChecks: [{ ID: 'db-ok' }], Behavior: 'delete', LockDelay: '0s',
  }), 'create')).ID;
  t.is(await (await put(f, `/v1/kv/locks/server?acquire=${s1}`, 'a')).text(), 'true');
  t.is(await (await put(f, `/v1/kv/locks/db?acquire=${s2}`, 'b')).text(), 'true');
  t.is((await put(f, '/v1/agent/service/register', { Name: 'api', Port: 7000, Check: { TTL: '60s', Status: 'passing' } })).status, 200);
  await waitFor('the agent service in the catalog', async () => {
    const list = await okJson<unknown[]>(await c.http(leader, '/v1/catalog/service/api'), 'catalog/service');
    return list.length === 1 ? true : undefined;
  }, 20_000, () => c.describe());

  const save = await c.http(leader, '/v1/snapshot');
  t.is(save.status, 200);
  const archive = Buffer.from(await save.arrayBuffer());
  const saved = await decodeArchive(archive);
  t.is(saved.sessions.length, 2);
  t.true(saved.catalog.includes('db-host check db-ok passing db-1'), saved.catalog.join('\n'));
  t.true(saved.catalog.some((line) => line.startsWith(`${fName} service api `)), 'the agent\'s service is in the archive');

  // --- Change everything.
  for (let k = 0; k < 10; k++) t.is((await c.http(leader, `/v1/kv/app/k${k}`, { method: 'DELETE' })).status, 200);
  t.true(await c.put(leader, 'app/new', 'later'));
  t.is((await put(f, `/v1/session/destroy/${s1}`)).status, 200);
  t.is((await put(f, '/v1/catalog/deregister', { Node: 'db-host' })).status, 200);
  t.deepEqual(await okJson<unknown[]>(await c.http(leader, `/v1/session/info/${s2}`), 'info'), [], 'deregistering db-host killed s2');
  t.is((await put(f, '/v1/catalog/register', { Node: 'later-host', Address: '10.0.0.8' })).status, 200);

  // --- Restore through a follower.
  const restore = await c.http(f, '/v1/snapshot', { method: 'PUT', body: archive });
  t.is(restore.status, 200, await restore.text());

  // Every server holds the same state: stale saves compared, taken until they agree (anti-entropy and
  // the leader's serfHealth upkeep may still be writing just after the restore).
  const states = await waitFor('every server to hold the same state', async () => {
    const decoded: DecodedState[] = [];
    for (const i of [0, 1, 2]) {
      const r = await c.http(i, '/v1/snapshot?stale');
      if (r.status !== 200) return undefined;
      decoded.push(await decodeArchive(Buffer.from(await r.arrayBuffer())));
    }
    const key = (s: DecodedState): string => JSON.stringify([kvData(s), [...s.locks], s.sessions, s.catalog]);
    return decoded.every((s) => key(s) === key(decoded[0] as DecodedState)) ? decoded : undefined;
  }, 30_000, () => c.describe());
  const now = states[0] as DecodedState;
  t.deepEqual(kvData(now), kvData(saved), 'the KV entries are the archive\'s');
  t.deepEqual([...now.locks].sort(), [...saved.locks].sort(), 'so are the locks and their holders');
  t.deepEqual(now.sessions, saved.sessions, 'and the sessions');
  t.deepEqual(now.catalog, saved.catalog, 'and the catalog (later-host gone, db-host back)');

  // --- And it works.
  t.is(await (await put(leader, `/v1/kv/locks/second?acquire=${s1}`, 'c')).text(), 'true', 'a restored session takes a new lock');
  const renewed = await okJson<Array<{ ID: string }>>(await put(f, `/v1/session/renew/${s1}`), 'renew');
  t.is(renewed[0]?.ID, s1);
  const critical = await put(f, '/v1/catalog/register', { Node: 'db-host', Address: '10.0.0.7', SkipNodeUpdate: true, Check: { CheckID: 'db-ok', Name: 'db ok', Status: 'critical', ServiceID: 'db-1' } });
  t.is(critical.status, 200, await critical.text());
  t.deepEqual(await okJson<unknown[]>(await c.http(leader, `/v1/session/info/${s2}`), 'info'), [], 'a restored check going critical kills its session');
  t.is((await c.http(leader, '/v1/kv/locks/db')).status, 404, 'and its delete behaviour takes the key');
  t.is((await put(f, '/v1/agent/check/update/service:api', { Status: 'warning', Output: 'slow' })).status, 200);
  await waitFor('the agent\'s check update in the catalog', async () => {
    const checks = await okJson<HealthCheckJson[]>(await c.http(leader, `/v1/health/node/${fName}`), 'health');
    return checks.find((k) => k.CheckID === 'service:api')?.Status === 'warning' ? true : undefined;
  }, 20_000, () => c.describe());
});
