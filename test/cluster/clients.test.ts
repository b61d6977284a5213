// Real Consul client libraries against a real 3-process cluster, through a follower (issue 10's "tools
// built on them must work against Conclave unchanged"): the npm `consul` package (node-consul 2.0.1, a
// devDependency) and Debian's python3-consul 0.7.1 (installed by .ci/run; run by /usr/bin/python3, whose
// site-packages hold it). Each does KV, sessions and a lock with acquire/release as its users do, and
// a blocking read; the test asserts what the library returned. A second test does service discovery:
// registration through the agent and the catalog, discovery and health filtering, deregistration.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import Consul from 'consul';
import { ProcessCluster } from '../support/process-cluster.js';

const python = '/usr/bin/python3';

/** Runs a python-consul script with Debian's interpreter against `port`, bounded to 60 s. */
function runPython(script: string, port: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(python, ['-c', script, String(port)], { timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : (err.code as number | null), stdout, stderr }));
  });
}

test.serial('node-consul and python-consul: KV, sessions, locks and a blocking read through a follower', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3, tickMs: 50, electionTimeoutTicks: 20 });
  c.startAll();
  const leader = await c.leader();
  const follower = [0, 1, 2].find((i) => i !== leader) as number;
  const port = c.node(follower).httpPort;

  // node-consul: the calls as its README shows them.
  const consul = new Consul({ host: '127.0.0.1', port });
  t.true(await consul.kv.set('node/app/db', 'postgres'));
  t.is((await consul.kv.get('node/app/db'))?.Value, 'postgres');
  t.is((await consul.kv.get('node/missing')) as unknown, undefined, '404 reads as undefined');
  t.deepEqual(await consul.kv.keys('node/'), ['node/app/db']);
  const { ID: sid } = await consul.session.create({ name: 'node-lock', ttl: '10s', lockdelay: '1s', behavior: 'release' });
  t.true(await consul.kv.set({ key: 'node/leader', value: 'me', acquire: sid }));
  const other = (await consul.session.create({ name: 'other' })).ID;
  // node-consul hands back a JSON `false` as undefined (papi drops falsy bodies), as against Consul.
  t.falsy(await consul.kv.set({ key: 'node/leader', value: 'you', acquire: other }), 'a held lock is not taken');
  const info = await consul.session.info(sid);
  t.like(info, { ID: sid, Name: 'node-lock', TTL: '10s', LockDelay: 1_000_000_000, Behavior: 'release' });
  t.like((await consul.session.renew(sid))?.[0], { ID: sid });
  t.like(await consul.kv.get('node/leader'), { Session: sid, LockIndex: 1 });
  t.true(await consul.kv.set({ key: 'node/leader', value: 'bye', release: sid }));
  await consul.session.destroy(sid);
  await consul.session.destroy(other);
  t.deepEqual(await consul.session.list(), []);
  // create(operations), as its README calls it (its typings describe only the options form).
  const create = consul.transaction.create.bind(consul.transaction) as unknown as (ops: unknown[]) => Promise<unknown>;
  const txn = await create([{ KV: { Verb: 'set', Key: 'node/txn', Value: Buffer.from('t').toString('base64') } }]);
  t.like(txn, { Errors: null });

  // python-consul: run by Debian's interpreter, which has the package.
  t.true(existsSync(python), `${python} is missing: install python3 and python3-consul (sudo apt-get install -y python3-consul); .ci/run does`);
  const script = `
import consul, json, sys, time
c = consul.Consul(host='127.0.0.1', port=int(sys.argv[1]))
out = {}
out['put'] = c.kv.put('py/app', 'hello')
out['get'] = c.kv.get('py/app')[1]['Value'].decode()
out['missing'] = c.kv.get('py/none')[1]
sid = c.session.create(name='py-lock', ttl=10, lock_delay=2, behavior='delete')
out['acquire'] = c.kv.put('py/lock', 'me', acquire=sid)
info = c.session.info(sid)[1]
out['info'] = [info['Name'], info['TTL'], info['LockDelay'], info['Behavior']]
out['renew'] = c.session.renew(sid)['ID'] == sid
index, entry = c.kv.get('py/lock')
out['holder'] = entry['Session'] == sid
t0 = time.time()
index2, _ = c.kv.get('py/lock', index=index, wait='1s')
out['blocked'] = time.time() - t0 >= 0.9 and int(index2) == int(index)
out['keys'] = c.kv.get('py/', keys=True)[1]
out['destroy'] = c.session.destroy(sid)
out['deleted_with_session'] = c.kv.get('py/lock')[1] is None
out['empty'] = c.session.create()
print(json.dumps(out))
`;
  const result = await runPython(script, port);
  t.is(result.code, 0, result.stderr);
  const out = JSON.parse(result.stdout) as Record<string, unknown>;
  t.like(out, {
    put: true,
    get: 'hello',
    missing: null,
    acquire: true,
    info: ['py-lock', '10s', 2_000_000_000, 'delete'],
    renew: true,
    holder: true,
    blocked: true,
    keys: ['py/app', 'py/lock'],
    destroy: true,
    deleted_with_session: true,
  });
  t.regex(String(out['empty']), /^[0-9a-f-]{36}$/, 'a session created with an empty body');
});

test.serial('node-consul and python-consul: service discovery through the agent, catalog and health endpoints of a follower', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3, tickMs: 50, electionTimeoutTicks: 20 });
  c.startAll();
  const leader = await c.leader();
  const follower = [0, 1, 2].find((i) => i !== leader) as number;
  const port = c.node(follower).httpPort;
  const consul = new Consul({ host: '127.0.0.1', port });

  // node-consul registers on the follower's agent with a TTL check and passes it, as its README shows.
  // (Its typings want name and timeout on every check; its code, like Consul, needs only ttl.)
  const register = consul.agent.service.register.bind(consul.agent.service) as (o: unknown) => Promise<unknown>;
  await register({ name: 'web', id: 'web-node', port: 8080, tags: ['node'], check: { ttl: '30s', status: 'critical' } });
  t.like(await consul.agent.service.list(), { 'web-node': { Service: 'web', Port: 8080 } });
  await consul.agent.check.pass({ id: 'service:web-node', note: 'ok' });
  const deadline = Date.now() + 20_000;
  let healthy: Array<{ Service: { ID: string } }> = [];
  while (Date.now() < deadline) {
    healthy = await consul.health.service({ service: 'web', passing: true }) as typeof healthy;
    if (healthy.length === 1) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.deepEqual(healthy.map((e) => e.Service.ID), ['web-node'], 'the passing instance, through the agent and anti-entropy');
  t.like((await consul.catalog.service.nodes('web'))[0], { ServiceID: 'web-node', ServicePort: 8080, Node: c.node(follower).name });
  const nodes = await consul.catalog.node.list();
  t.is(nodes.length, 3, 'the three servers');

  // python-consul: registers through the agent and the catalog (lower-case keys), discovers, filters.
  t.true(existsSync(python), `${python} is missing: install python3 and python3-consul (sudo apt-get install -y python3-consul); .ci/run does`);
  const script = `
import consul, json, sys, time
c = consul.Consul(host='127.0.0.1', port=int(sys.argv[1]))
out = {}
out['agent_register'] = c.agent.service.register('web', service_id='web-py', port=9090, tags=['py'], check=consul.Check.ttl('30s'))
out['catalog_register'] = c.catalog.register('ext-1', '10.0.0.9', service={'service': 'web', 'port': 80, 'tags': ['ext']}, check={'name': 'ext-alive', 'status': 'passing', 'serviceid': 'web'})
deadline = time.time() + 20
while time.time() < deadline:
    index, nodes = c.catalog.service('web')
    if len(nodes) == 3:
        break
    time.sleep(0.1)
index, services = c.catalog.services()
out['tags'] = sorted(services.get('web', []))
out['instances'] = sorted(n['ServiceID'] + '@' + n['Node'] for n in nodes)
index, passing = c.health.service('web', passing=True)
out['passing'] = sorted(e['Service']['ID'] for e in passing)
index, tagged = c.health.service('web', tag='ext')
out['tagged'] = [e['Node']['Node'] for e in tagged]
index, checks = c.health.checks('web')
out['checks'] = sorted(k['CheckID'] for k in checks)
out['deregister'] = c.catalog.deregister('ext-1')
index, after = c.catalog.service('web')
out['after'] = sorted(n['ServiceID'] for n in after)
print(json.dumps(out))
`;
  const result = await runPython(script, port);
  t.is(result.code, 0, result.stderr);
  t.like(JSON.parse(result.stdout) as Record<string, unknown>, {
    agent_register: true,
    catalog_register: true,
    tags: ['ext', 'node', 'py'],
    instances: [`web-node@${c.node(follower).name}`, `web-py@${c.node(follower).name}`, 'web@ext-1'].sort(),
    passing: ['web', 'web-node'],
    tagged: ['ext-1'],
    checks: ['ext-alive', 'service:web-node', 'service:web-py'],
    deregister: true,
    after: ['web-node', 'web-py'],
  });
  await consul.agent.service.deregister('web-node');
  t.deepEqual(Object.keys(await consul.agent.service.list() as object), ['web-py'], 'python-consul\'s registration, on the same agent');
  // python-consul 0.7 deregisters with a GET, which Consul from 1.0 on (and Conclave) answers with 405.
  await consul.agent.service.deregister('web-py');
  t.deepEqual(await consul.agent.service.list(), {});
});
