// The servers in their own catalog, on a real 3-node cluster of agent processes: every server is a
// catalog node with the `consul` service and a serfHealth check the leader keeps current; a SIGSTOPped
// server goes critical, which kills the sessions tied to it and releases their locks, and passing again
// after SIGCONT; a node that claims a serfHealth check but is no server of the cluster is reaped; after a
// restore, the restoring cluster's servers are still in the catalog with their checks, on every node.
// Every wait is on a condition, bounded in time.

import test from 'ava';
import { okJson, ProcessCluster, waitFor, type HealthCheckJson } from '../support/process-cluster.js';

test.serial('servers are catalog nodes with serfHealth: critical while stopped (their sessions die), passing again, reaped when foreign, kept by a restore', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3, tickMs: 50, electionTimeoutTicks: 20 });
  c.startAll();
  const leader = await c.leader();
  const follower = [0, 1, 2].find((i) => i !== leader) as number;
  const names = [0, 1, 2].map((i) => c.node(i).name).sort();
  const serfOf = async (i: number, node: string, query = ''): Promise<HealthCheckJson | undefined> =>
    (await okJson<HealthCheckJson[]>(await c.http(i, `/v1/health/node/${node}${query}`), 'health/node')).find((k) => k.CheckID === 'serfHealth');
  const statusOf = async (i: number, node: string): Promise<string | undefined> => (await serfOf(i, node))?.Status;

  for (const name of names) {
    await waitFor(`${name} in the catalog with a passing serfHealth`, async () => ((await statusOf(leader, name)) === 'passing' ? true : undefined), 30_000, () => c.describe());
  }
  const nodes = await okJson<Array<{ Node: string }>>(await c.http(follower, '/v1/catalog/nodes'), 'catalog/nodes');
  t.deepEqual(nodes.map((n) => n.Node), names, 'the servers are the catalog\'s nodes');
  const consul = await okJson<Array<{ Node: string; ServicePort: number }>>(await c.http(follower, '/v1/catalog/service/consul'), 'service/consul');
  t.deepEqual(consul.map((s) => s.Node), names, 'each runs the consul service');
  t.true(consul.every((s) => s.ServicePort > 0));
  t.like(await serfOf(leader, c.node(follower).name), { Output: 'Agent alive and reachable' });

  // A session on the follower's node (the default: the agent's own node, tied to its serfHealth), holding a lock.
  const created = await okJson<{ ID: string }>(await c.http(follower, '/v1/session/create', { method: 'PUT', body: '{"LockDelay":"0s"}' }), 'create');
  const acquired = await c.http(follower, `/v1/kv/svc/leader?acquire=${created.ID}`, { method: 'PUT', body: 'me' });
  t.is(await acquired.text(), 'true');

  const stopped = c.node(follower).name;
  c.pause(follower);
  await waitFor(`${stopped}'s serfHealth to go critical`, async () => ((await statusOf(leader, stopped)) === 'critical' ? true : undefined), 30_000, () => c.describe());
  t.like(await serfOf(leader, stopped), { Output: 'Agent not live or unreachable' });
  const sessions = await okJson<unknown[]>(await c.http(leader, `/v1/session/info/${created.ID}`), 'session/info');
  t.deepEqual(sessions, [], 'the session tied to the stopped server\'s serfHealth is invalidated');
  const entry = await okJson<Array<{ Session?: string }>>(await c.http(leader, '/v1/kv/svc/leader'), 'kv');
  t.is(entry[0]?.Session, undefined, 'and its lock released');
  c.resume(follower);
  await waitFor(`${stopped}'s serfHealth to pass again`, async () => ((await statusOf(leader, stopped)) === 'passing' ? true : undefined), 30_000, () => c.describe());

  // The snapshot holds the servers as they are now.
  const save = await c.http(leader, '/v1/snapshot');
  t.is(save.status, 200);
  const archive = Buffer.from(await save.arrayBuffer());

  // A node with a serfHealth check that is no server of this cluster (as an archive's servers would be) is reaped.
  const reg = await c.http(follower, '/v1/catalog/register', {
    method: 'PUT',
    body: JSON.stringify({ Node: 'foreign-server', Address: '10.9.9.9', Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' } }),
  });
  t.is(reg.status, 200, await reg.text());
  await waitFor('the foreign node to be reaped', async () => {
    const list = await okJson<Array<{ Node: string }>>(await c.http(leader, '/v1/catalog/nodes'), 'catalog/nodes');
    return list.some((n) => n.Node === 'foreign-server') ? undefined : true;
  }, 30_000, () => c.describe());

  // A node without serfHealth is a registration like any other: it stays, and goes with the restore.
  const plain = await c.http(follower, '/v1/catalog/register', { method: 'PUT', body: JSON.stringify({ Node: 'after-snapshot', Address: '10.1.1.1' }) });
  t.is(plain.status, 200);
  const restore = await c.http(follower, '/v1/snapshot', { method: 'PUT', body: archive });
  t.is(restore.status, 200, await restore.text());
  for (const i of c.running()) {
    await waitFor(`node ${i} to serve the restored catalog with the servers passing`, async () => {
      const list = (await okJson<Array<{ Node: string }>>(await c.http(i, '/v1/catalog/nodes?stale'), 'catalog/nodes')).map((n) => n.Node);
      if (JSON.stringify(list) !== JSON.stringify(names)) return undefined;
      for (const name of names) if ((await serfOf(i, name, '?stale'))?.Status !== 'passing') return undefined;
      return true;
    }, 30_000, () => c.describe());
  }
  t.pass();
});
