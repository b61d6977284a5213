// /v1/snapshot with ACLs (the management token, three ways of sending it, in both directions) and
// across datacenters (?dc, forwarded over gRPC to a server found through retry_join_wan), with real
// agent processes.
import test from 'ava';
import { readFile, writeFile } from 'node:fs/promises';
import { ProcessCluster } from '../support/process-cluster.js';
import { buildArchive, decodeArchive, kvData } from '../support/snapshots.js';

async function configure(c: ProcessCluster, i: number, change: (config: Record<string, unknown>) => void): Promise<void> {
  const file = c.node(i).configFile;
  const config = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  change(config);
  await writeFile(file, JSON.stringify(config, null, 2));
}

const put = (archive: Uint8Array, headers: Record<string, string> = {}): RequestInit => ({
  method: 'PUT',
  body: new Uint8Array(archive),
  headers: { 'Content-Type': 'application/octet-stream', ...headers },
});

test.serial('with ACLs, both directions need the management token: none is 403 Permission denied, a wrong one 403 ACL not found', async (t) => {
  const secret = 'acl-test-management-secret';
  const c = await ProcessCluster.create(t, { size: 3 });
  for (const i of [0, 1, 2]) await configure(c, i, (config) => (config['acl'] = { enabled: true, default_policy: 'deny', tokens: { initial_management: secret } }));
  c.startAll();
  const leader = await c.leader();
  const follower = [0, 1, 2].find((i) => i !== leader) as number;
  t.true(await c.put(leader, 'guarded', 'before'));
  const archive = await buildArchive({ restored: 'yes' }, 50);

  for (const i of [leader, follower]) {
    const none = await c.http(i, '/v1/snapshot');
    t.is(none.status, 403);
    t.regex(await none.text(), /^Permission denied/);
    const wrong = await c.http(i, '/v1/snapshot', { headers: { 'X-Consul-Token': 'not-it' } });
    t.is(wrong.status, 403);
    t.is(await wrong.text(), 'ACL not found');
    const noneRestore = await c.http(i, '/v1/snapshot', put(archive));
    t.is(noneRestore.status, 403);
    t.regex(await noneRestore.text(), /^Permission denied/);
    const wrongRestore = await c.http(i, '/v1/snapshot', put(archive, { Authorization: 'Bearer not-it' }));
    t.is(wrongRestore.status, 403);
    t.is(await wrongRestore.text(), 'ACL not found');
  }
  t.is(await c.getRaw(leader, 'guarded'), 'before', 'refused restores changed nothing');

  // The management token, by header, by ?token and by Authorization: Bearer.
  const byHeader = await c.http(follower, '/v1/snapshot', { headers: { 'X-Consul-Token': secret } });
  t.is(byHeader.status, 200);
  t.is(kvData(await decodeArchive(Buffer.from(await byHeader.arrayBuffer())))['guarded'], '0:before');
  const byQuery = await c.http(leader, `/v1/snapshot?token=${secret}`);
  t.is(byQuery.status, 200);
  await byQuery.arrayBuffer();
  const restored = await c.http(follower, '/v1/snapshot', put(archive, { Authorization: `Bearer ${secret}` }));
  t.is(restored.status, 200, await restored.text());
  t.is(await c.getRaw(leader, 'restored'), 'yes');
  t.is(await c.getRaw(leader, 'guarded'), undefined);
  // The token never reaches the logs.
  for (const n of c.nodes) t.false(n.output.join('').includes(secret), `${n.name}'s log holds no token`);
});

test.serial('?dc: a save and a restore for another datacenter are forwarded there, KV too; an unknown one has no path', async (t) => {
  const dc1 = await ProcessCluster.create(t, { size: 1 });
  const dc2 = await ProcessCluster.create(t, { size: 1 });
  const rpc = (c: ProcessCluster): string => `127.0.0.1:${c.node(0).serverPort}`;
  await configure(dc1, 0, (config) => (config['retry_join_wan'] = [rpc(dc2)]));
  await configure(dc2, 0, (config) => {
    config['datacenter'] = 'dc2';
    config['retry_join_wan'] = [rpc(dc1)];
  });
  dc1.startAll();
  dc2.startAll();
  await dc1.leader();
  await dc2.leader();
  t.true(await dc2.put(0, 'where', 'dc2'));
  t.true(await dc1.put(0, 'where', 'dc1'));

  // KV both ways.
  t.is(await (await dc1.http(0, '/v1/kv/where?raw&dc=dc2')).text(), 'dc2');
  t.is(await (await dc2.http(0, '/v1/kv/where?raw&dc=dc1')).text(), 'dc1');
  t.is((await dc1.http(0, '/v1/kv/written/from/dc1?dc=dc2', { method: 'PUT', body: 'x' })).status, 200);
  t.is(await dc2.getRaw(0, 'written/from/dc1'), 'x');

  // A save of dc2 through dc1, and a restore into dc2 through dc1.
  const saved = await dc1.http(0, '/v1/snapshot?dc=dc2');
  t.is(saved.status, 200);
  const state = await decodeArchive(Buffer.from(await saved.arrayBuffer()));
  t.is(kvData(state)['where'], '0:dc2');
  const archive = await buildArchive({ where: 'restored into dc2' }, 20);
  const r = await dc1.http(0, '/v1/snapshot?dc=dc2', put(archive));
  t.is(r.status, 200, await r.text());
  t.is(await dc2.getRaw(0, 'where'), 'restored into dc2');
  t.is(await dc1.getRaw(0, 'where'), 'dc1', 'dc1 is untouched');
  // And the other way.
  const back = await dc2.http(0, '/v1/snapshot?dc=dc1');
  t.is(back.status, 200);
  t.is(kvData(await decodeArchive(Buffer.from(await back.arrayBuffer())))['where'], '0:dc1');

  t.deepEqual(await (await dc1.http(0, '/v1/catalog/datacenters')).json(), ['dc1', 'dc2']);
  for (const [path, init] of [['/v1/snapshot?dc=nowhere', {}], ['/v1/kv/where?dc=nowhere', {}], ['/v1/snapshot?dc=nowhere', put(archive)]] as const) {
    const res = await dc1.http(0, path, init);
    t.is(res.status, 400, path);
    t.is(await res.text(), 'No path to datacenter', path);
  }
  t.is(await dc1.getRaw(0, 'where'), 'dc1');
});
