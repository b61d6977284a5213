// The catalog and health endpoints on a real 3-node cluster of agent processes on loopback: a node with a
// service and checks registered through a follower reads back the same through the leader and a follower
// on every GET endpoint (fields and X-Consul-Index); a blocking /v1/catalog/service/<name>?index=N waits
// until the service changes and then wakes; /v1/health/service/<name>?passing leaves out an instance with
// a failing check; a refused register changes nothing; deregistering a service takes its checks with it,
// deregistering the node takes everything; `conclave catalog` reads the same state.
//
// The leader keeps every server in the catalog (the `consul` service and a serfHealth check, as Consul's
// leader does), so lists are searched for the entries this test wrote rather than compared whole, and the
// test first waits for those registrations to settle (a steady cluster writes nothing), so they cannot
// wake the blocking query. Every wait is on a condition, bounded in time.
import test from 'ava';
import { runCliCaptured } from '../support/cli-run.js';
import { ProcessCluster, sleep, waitFor } from '../support/process-cluster.js';

const nodeId = '40e4a748-2192-161a-0510-9bf59fe950b5';

interface NodeJson {
  readonly ID: string;
  readonly Node: string;
  readonly Address: string;
  readonly Datacenter: string;
  readonly TaggedAddresses: Record<string, string> | null;
  readonly Meta: Record<string, string> | null;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}
interface ServiceJson {
  readonly ID: string;
  readonly Service: string;
  readonly Tags: readonly string[] | null;
  readonly Port: number;
  readonly Address: string;
  readonly Meta: Record<string, string> | null;
  readonly Weights: { readonly Passing: number; readonly Warning: number };
}
interface ServiceNodeJson {
  readonly Node: string;
  readonly Address: string;
  readonly Datacenter: string;
  readonly NodeMeta: Record<string, string> | null;
  readonly ServiceID: string;
  readonly ServiceName: string;
  readonly ServiceTags: readonly string[];
  readonly ServicePort: number;
  readonly ServiceAddress: string;
}
interface CheckJson {
  readonly Node: string;
  readonly CheckID: string;
  readonly Name: string;
  readonly Status: string;
  readonly ServiceID: string;
  readonly ServiceName: string;
  readonly ServiceTags: readonly string[];
  readonly Type: string;
}
interface HealthServiceJson {
  readonly Node: NodeJson;
  readonly Service: ServiceJson;
  readonly Checks: readonly CheckJson[];
}

interface Answer<T> {
  readonly status: number;
  readonly index: number;
  readonly body: T;
  readonly text: string;
}

async function answer<T>(r: Response): Promise<Answer<T>> {
  const text = await r.text();
  const header = r.headers.get('x-consul-index');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: r.status, index: header === null ? Number.NaN : Number(header), body: body as T, text };
}

function helpers(c: ProcessCluster) {
  const get = async <T>(i: number, path: string): Promise<Answer<T>> => answer<T>(await c.http(i, path));
  const ok = async <T>(i: number, path: string): Promise<Answer<T>> => {
    const a = await get<T>(i, path);
    if (a.status !== 200) throw new Error(`GET ${path} on ${c.node(i).name}: ${a.status} ${a.text}`);
    return a;
  };
  const put = async (i: number, path: string, body: unknown): Promise<Answer<unknown>> =>
    answer(await c.http(i, path, { method: 'PUT', body: JSON.stringify(body) }));
  return { get, ok, put };
}

const sorted = (tags: readonly string[] | null | undefined): string[] => [...(tags ?? [])].sort();

test.serial('catalog and health: register through a follower, read everywhere, block, filter, deregister', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3, tickMs: 50, electionTimeoutTicks: 20 });
  c.startAll();
  const leader = await c.leader();
  const [f1, f2] = [0, 1, 2].filter((i) => i !== leader) as [number, number];
  const h = helpers(c);
  const serversSettled = () => waitFor('every server in the catalog with a passing serfHealth', async () => {
    const a = await h.ok<CheckJson[]>(leader, '/v1/health/state/passing');
    return a.body.filter((k) => k.CheckID === 'serfHealth').length === 3 ? true : undefined;
  }, 30_000, () => c.describe());
  await serversSettled();

  // --- Register through a follower: a node with a service, a service check and a node check.
  const reg = await h.put(f1, '/v1/catalog/register', {
    ID: nodeId,
    Node: 'web-1',
    Address: '10.0.0.5',
    TaggedAddresses: { lan: '10.0.0.5', wan: '198.18.0.5' },
    NodeMeta: { rack: 'r1' },
    Service: { ID: 'web-a', Service: 'web', Tags: ['v1', 'primary'], Address: '10.0.0.6', Port: 8080, Meta: { version: '1' } },
    Check: { CheckID: 'web-http', Name: 'HTTP on 8080', Status: 'passing', ServiceID: 'web-a', Output: 'HTTP 200' },
    Checks: [{ Name: 'mem', Status: 'passing' }],
  });
  t.deepEqual([reg.status, reg.body], [200, true], reg.text);

  // --- Every GET endpoint through the leader and a follower: the same fields and the same index.
  const indexes = new Map<number, number[]>();
  for (const i of [leader, f2]) {
    const seen: number[] = [];
    indexes.set(i, seen);
    const who = c.node(i).name;

    const nodes = await h.ok<NodeJson[]>(i, '/v1/catalog/nodes');
    seen.push(nodes.index);
    t.like(nodes.body.find((n) => n.Node === 'web-1'), {
      ID: nodeId, Node: 'web-1', Address: '10.0.0.5', Datacenter: 'dc1', TaggedAddresses: { lan: '10.0.0.5', wan: '198.18.0.5' }, Meta: { rack: 'r1' },
    }, who);

    const services = await h.ok<Record<string, string[] | null>>(i, '/v1/catalog/services');
    seen.push(services.index);
    t.deepEqual(sorted(services.body['web']), ['primary', 'v1'], who);

    const service = await h.ok<ServiceNodeJson[]>(i, '/v1/catalog/service/web');
    seen.push(service.index);
    t.is(service.body.length, 1, who);
    t.like(service.body[0], {
      Node: 'web-1', Address: '10.0.0.5', Datacenter: 'dc1', NodeMeta: { rack: 'r1' },
      ServiceID: 'web-a', ServiceName: 'web', ServiceAddress: '10.0.0.6', ServicePort: 8080,
    }, who);
    t.deepEqual(sorted(service.body[0]?.ServiceTags), ['primary', 'v1'], who);
    t.is((await h.ok<ServiceNodeJson[]>(i, '/v1/catalog/service/web?tag=v1&tag=primary')).body.length, 1, `${who}: every tag matches`);
    t.deepEqual((await h.ok<ServiceNodeJson[]>(i, '/v1/catalog/service/web?tag=v1&tag=v9')).body, [], `${who}: one tag does not`);
    t.deepEqual((await h.ok<ServiceNodeJson[]>(i, '/v1/catalog/service/nope')).body, [], `${who}: an unknown service is []`);

    const node = await h.ok<{ Node: NodeJson; Services: Record<string, ServiceJson> }>(i, '/v1/catalog/node/web-1');
    seen.push(node.index);
    t.like(node.body.Node, { Node: 'web-1', Address: '10.0.0.5' }, who);
    t.like(node.body.Services['web-a'], { ID: 'web-a', Service: 'web', Port: 8080, Address: '10.0.0.6', Meta: { version: '1' }, Weights: { Passing: 1, Warning: 1 } }, who);
    const ghost = await h.get<unknown>(i, '/v1/catalog/node/ghost');
    t.deepEqual([ghost.status, ghost.text], [200, 'null'], `${who}: an unknown node is 200 null, as in Consul`);
    t.true(ghost.index >= 1, `${who}: X-Consul-Index on the null answer`);

    const nodeServices = await h.ok<{ Node: NodeJson; Services: ServiceJson[] }>(i, '/v1/catalog/node-services/web-1');
    seen.push(nodeServices.index);
    t.like(nodeServices.body.Node, { Node: 'web-1' }, who);
    t.deepEqual(nodeServices.body.Services.map((s) => s.ID), ['web-a'], who);
    const missing = await h.get<unknown>(i, '/v1/catalog/node-services/ghost');
    t.deepEqual([missing.status, missing.text], [404, 'Node not found'], who);
    t.true(missing.index >= 1, `${who}: X-Consul-Index on the 404`);

    const nodeChecks = await h.ok<CheckJson[]>(i, '/v1/health/node/web-1');
    seen.push(nodeChecks.index);
    t.deepEqual(nodeChecks.body.map((k) => k.CheckID).sort(), ['mem', 'web-http'], who);
    t.like(nodeChecks.body.find((k) => k.CheckID === 'web-http'), {
      Node: 'web-1', Name: 'HTTP on 8080', Status: 'passing', ServiceID: 'web-a', ServiceName: 'web', Type: '',
    }, `${who}: the FSM filled ServiceName from the service`);
    t.like(nodeChecks.body.find((k) => k.CheckID === 'mem'), { Node: 'web-1', Name: 'mem', Status: 'passing', ServiceID: '' }, who);

    const serviceChecks = await h.ok<CheckJson[]>(i, '/v1/health/checks/web');
    seen.push(serviceChecks.index);
    t.deepEqual(serviceChecks.body.map((k) => k.CheckID), ['web-http'], who);

    const health = await h.ok<HealthServiceJson[]>(i, '/v1/health/service/web');
    seen.push(health.index);
    t.is(health.body.length, 1, who);
    t.like(health.body[0], { Node: { Node: 'web-1', Address: '10.0.0.5' }, Service: { ID: 'web-a', Service: 'web', Port: 8080 } }, who);
    t.deepEqual(health.body[0]?.Checks.map((k) => k.CheckID).sort(), ['mem', 'web-http'], `${who}: node and service checks`);

    const passing = await h.ok<CheckJson[]>(i, '/v1/health/state/passing');
    seen.push(passing.index);
    t.deepEqual(passing.body.filter((k) => k.Node === 'web-1').map((k) => k.CheckID).sort(), ['mem', 'web-http'], who);
    t.deepEqual((await h.ok<CheckJson[]>(i, '/v1/health/state/critical')).body.filter((k) => k.Node === 'web-1'), [], who);
    t.is((await h.get<unknown>(i, '/v1/health/state/bogus')).status, 400, who);

    t.true(seen.every((x) => Number.isSafeInteger(x) && x >= 1), `${who}: X-Consul-Index on every answer: ${seen.join(', ')}`);
  }
  const [onLeader, onFollower] = [indexes.get(leader) ?? [], indexes.get(f2) ?? []];
  t.is(onFollower.length, onLeader.length);
  t.true(onFollower.every((x, k) => x >= (onLeader[k] ?? Infinity)), `read later, the follower's indexes are no lower: ${onLeader.join(',')} / ${onFollower.join(',')}`);

  // --- The CLI reads the same state.
  const cli = (i: number, argv: string[]) => runCliCaptured(argv, { CONSUL_HTTP_ADDR: `127.0.0.1:${c.node(i).httpPort}` });
  const services = await cli(f2, ['catalog', 'services', '-tags']);
  t.is(services.code, 0, services.stderr);
  t.regex(services.stdout, /^web +primary,v1$/m);
  const nodesCli = await cli(leader, ['catalog', 'nodes', '-service=web']);
  t.is(nodesCli.code, 0, nodesCli.stderr);
  t.regex(nodesCli.stdout, /^Node +ID +Address +DC\nweb-1 +40e4a748 +10\.0\.0\.5 +dc1\n$/);

  // --- A blocking query on the service wakes when the service changes, not before.
  await serversSettled();
  const before = await h.ok<ServiceNodeJson[]>(f2, '/v1/catalog/service/web');
  let woke: Answer<ServiceNodeJson[]> | undefined;
  const started = performance.now();
  const blocked = h.get<ServiceNodeJson[]>(f2, `/v1/catalog/service/web?index=${before.index}&wait=20s`).then((a) => (woke = a));
  await sleep(1_500);
  t.is(woke, undefined, 'nothing changed: the query still waits');
  // A second node and instance, registered with python-consul's lower-case keys; its service check fails.
  const reg2 = await h.put(f1, '/v1/catalog/register', {
    node: 'web-2', address: '10.0.0.7', datacenter: '',
    service: { id: 'web-b', service: 'web', tags: ['v1'], port: 8081 },
    check: { checkid: 'web-b-http', name: 'HTTP on 8081', status: 'critical', serviceid: 'web-b' },
  });
  t.deepEqual([reg2.status, reg2.body], [200, true], reg2.text);
  const wake = await Promise.race([blocked, sleep(15_000).then(() => undefined)]);
  t.not(wake, undefined, 'the blocking query woke on the change');
  t.true(performance.now() - started < 15_000);
  t.is(wake?.status, 200);
  t.true((wake?.index ?? 0) > before.index, `the index moved past ${before.index}: ${wake?.index}`);
  t.deepEqual(wake?.body.map((s) => s.ServiceID).sort(), ['web-a', 'web-b']);

  // --- ?passing leaves out the instance with a critical check; ?passing=false does not filter.
  for (const i of [leader, f2]) {
    const all = await h.ok<HealthServiceJson[]>(i, '/v1/health/service/web');
    t.deepEqual(all.body.map((e) => e.Service.ID).sort(), ['web-a', 'web-b']);
    const healthy = await h.ok<HealthServiceJson[]>(i, '/v1/health/service/web?passing');
    t.deepEqual(healthy.body.map((e) => e.Service.ID), ['web-a']);
    t.true(healthy.index >= 1);
    t.deepEqual((await h.ok<HealthServiceJson[]>(i, '/v1/health/service/web?passing=1&tag=v1')).body.map((e) => e.Service.ID), ['web-a']);
    t.deepEqual((await h.ok<HealthServiceJson[]>(i, '/v1/health/service/web?passing=false')).body.length, 2);
    t.deepEqual((await h.ok<HealthServiceJson[]>(i, '/v1/health/service/web?tag=primary')).body.map((e) => e.Service.ID), ['web-a']);
    t.deepEqual((await h.ok<CheckJson[]>(i, '/v1/health/state/critical')).body.filter((k) => k.Node.startsWith('web-')).map((k) => k.CheckID), ['web-b-http']);
  }

  // --- A refused register changes nothing: a check naming a service the node does not have.
  const refused = await h.put(f1, '/v1/catalog/register', {
    Node: 'bad-node', Address: '10.9.9.9', Check: { Name: 'orphan', ServiceID: 'no-such-service' },
  });
  t.is(refused.status, 400, refused.text);
  t.not(refused.text, '');
  t.is((await h.get<unknown>(leader, '/v1/catalog/node/bad-node')).text, 'null', 'the refused register did not create its node');
  const badBody = await h.put(f2, '/v1/catalog/register', { Node: 'x', Address: 'y', Service: { Service: 'web', Port: '80' } });
  t.deepEqual([badBody.status, badBody.text], [400, 'Request decode failed: Service.Port must be an integer in 0..9007199254740991, got the string "80"']);

  // --- Deregister a service: it goes with its checks; the node and its node check stay.
  const beforeDeregister = (await h.ok<ServiceNodeJson[]>(leader, '/v1/catalog/service/web')).index;
  const dereg = await h.put(f1, '/v1/catalog/deregister', { Node: 'web-1', ServiceID: 'web-a' });
  t.deepEqual([dereg.status, dereg.body], [200, true], dereg.text);
  for (const i of [leader, f2]) {
    const left = await h.ok<ServiceNodeJson[]>(i, '/v1/catalog/service/web');
    t.deepEqual(left.body.map((s) => s.ServiceID), ['web-b']);
    t.true(left.index > beforeDeregister, `${left.index} > ${beforeDeregister}`);
    t.deepEqual((await h.ok<CheckJson[]>(i, '/v1/health/checks/web')).body.map((k) => k.CheckID), ['web-b-http'], 'the service\'s check went with it');
    t.deepEqual((await h.ok<CheckJson[]>(i, '/v1/health/node/web-1')).body.map((k) => k.CheckID), ['mem'], 'the node check stays');
    const node = await h.ok<{ Node: NodeJson; Services: Record<string, ServiceJson> | null }>(i, '/v1/catalog/node/web-1');
    t.is(node.body.Node.Node, 'web-1');
    t.deepEqual(Object.keys(node.body.Services ?? {}), []);
  }

  // --- Deregister the node: everything of it goes.
  const deregNode = await h.put(f2, '/v1/catalog/deregister', { node: 'web-1' });
  t.deepEqual([deregNode.status, deregNode.body], [200, true], deregNode.text);
  for (const i of [leader, f1]) {
    t.is((await h.get<unknown>(i, '/v1/catalog/node/web-1')).text, 'null');
    t.is((await h.get<unknown>(i, '/v1/catalog/node-services/web-1')).status, 404);
    t.deepEqual((await h.ok<CheckJson[]>(i, '/v1/health/node/web-1')).body, []);
    t.is((await h.ok<NodeJson[]>(i, '/v1/catalog/nodes')).body.find((n) => n.Node === 'web-1'), undefined);
    t.like((await h.ok<NodeJson[]>(i, '/v1/catalog/nodes')).body.find((n) => n.Node === 'web-2'), { Address: '10.0.0.7', Datacenter: 'dc1' });
  }
  // ?stale on every server converges to the same state.
  for (const i of c.running()) {
    await waitFor(`${c.node(i).name} to serve the deregistration with ?stale`, async () => {
      const a = await h.ok<ServiceNodeJson[]>(i, '/v1/catalog/service/web?stale');
      return JSON.stringify(a.body.map((s) => s.ServiceID)) === '["web-b"]' ? true : undefined;
    }, 20_000, () => c.describe());
  }
  const none = await cli(f1, ['catalog', 'services', '-node=web-1']);
  t.deepEqual(none, { code: 0, stdout: '', stderr: 'No services match the given query - try expanding your search.\n' });
});
