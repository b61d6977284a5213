// The agent endpoints on a real 3-node cluster of agent processes: a service and checks registered on a
// follower's agent reach the catalog everywhere; a session tied to an agent check dies when that check's
// TTL lapses (its lock released); the follower's own registrations survive its restart (SIGKILL, then
// start on its data directory) and come back to the catalog; a restore that drops them from the catalog
// is repaired by the agent's anti-entropy. Every wait is on a condition, bounded in time.

import test from 'ava';
import { okJson, ProcessCluster, waitFor, type HealthCheckJson } from '../support/process-cluster.js';

test.serial('agent services: registered on a follower, in the catalog, a lapsed check kills its session, kept across a restart and a restore', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3, tickMs: 50, electionTimeoutTicks: 20 });
  c.startAll();
  const leader = await c.leader();
  const f = [0, 1, 2].find((i) => i !== leader) as number;
  const node = c.node(f).name;
  const check = async (i: number, id: string, query = ''): Promise<HealthCheckJson | undefined> =>
    (await okJson<HealthCheckJson[]>(await c.http(i, `/v1/health/node/${node}${query}`), 'health/node')).find((k) => k.CheckID === id);
  await waitFor(`${node}'s serfHealth`, async () => ((await check(leader, 'serfHealth'))?.Status === 'passing' ? true : undefined), 30_000, () => c.describe());

  const put = (path: string, body: unknown): Promise<Response> => c.http(f, path, { method: 'PUT', body: JSON.stringify(body) });
  t.is((await put('/v1/agent/service/register', { Name: 'billing', ID: 'billing-1', Port: 9000, Tags: ['v2'], Check: { TTL: '30s', Status: 'passing' } })).status, 200);
  t.is((await put('/v1/agent/check/register', { Name: 'app-alive', TTL: '3s', Status: 'passing' })).status, 200);
  await waitFor('the service in the catalog, seen through the leader', async () => {
    const list = await okJson<Array<{ Node: string; ServiceID: string }>>(await c.http(leader, '/v1/catalog/service/billing'), 'catalog/service');
    return list.length === 1 && list[0]?.Node === node ? true : undefined;
  }, 20_000, () => c.describe());
  const healthy = await okJson<unknown[]>(await c.http(leader, '/v1/health/service/billing?passing'), 'health/service');
  t.is(healthy.length, 1);

  // A session tied to the agent's app-alive check, holding a lock; the check's TTL is not refreshed.
  const { ID: sid } = await okJson<{ ID: string }>(await put('/v1/session/create', { NodeChecks: ['serfHealth', 'app-alive'], LockDelay: '0s' }), 'create');
  t.is(await (await c.http(f, `/v1/kv/billing/leader?acquire=${sid}`, { method: 'PUT', body: 'me' })).text(), 'true');
  await waitFor('app-alive to lapse', async () => ((await check(leader, 'app-alive'))?.Status === 'critical' ? true : undefined), 20_000, () => c.describe());
  t.is((await check(leader, 'app-alive'))?.Output, 'TTL expired');
  t.deepEqual(await okJson<unknown[]>(await c.http(leader, `/v1/session/info/${sid}`), 'info'), [], 'the session tied to it is invalidated');
  const entry = await okJson<Array<{ Session?: string }>>(await c.http(leader, '/v1/kv/billing/leader'), 'kv');
  t.is(entry[0]?.Session, undefined, 'and its lock released');

  // Saved now: the catalog holds billing-1. Then the agent deregisters it and registers another.
  const save = await c.http(leader, '/v1/snapshot');
  t.is(save.status, 200);
  const archive = Buffer.from(await save.arrayBuffer());
  t.is((await c.http(f, '/v1/agent/service/deregister/billing-1', { method: 'PUT' })).status, 200);
  t.is((await put('/v1/agent/service/register', { Name: 'ledger', Port: 9100, Check: { TTL: '60s', Status: 'passing' } })).status, 200);

  // SIGKILL and restart on the same data directory: the agent's registrations come back with it.
  await c.kill(f);
  c.start(f);
  await waitFor(`${node} to serve its agent services again`, async () => {
    const r = await c.http(f, '/v1/agent/services').catch(() => undefined);
    if (r === undefined || r.status !== 200) return undefined;
    const ids = Object.keys(await r.json() as object);
    return JSON.stringify(ids) === JSON.stringify(['ledger']) ? true : undefined;
  }, 30_000, () => c.describe());
  t.deepEqual(Object.keys(await okJson<object>(await c.http(f, '/v1/agent/checks'), 'agent/checks')).sort(), ['app-alive', 'service:ledger']);

  // Restore the snapshot (billing-1 in the catalog, no ledger): anti-entropy brings the catalog back in
  // line with what the agent holds, on every server.
  const restore = await c.http(leader, '/v1/snapshot', { method: 'PUT', body: archive });
  t.is(restore.status, 200, await restore.text());
  for (const i of c.running()) {
    await waitFor(`node ${i}: ledger back, billing gone`, async () => {
      const services = await okJson<Record<string, unknown>>(await c.http(i, '/v1/catalog/services?stale'), 'catalog/services');
      return 'ledger' in services && !('billing' in services) ? true : undefined;
    }, 30_000, () => c.describe());
  }
  t.pass();
});
