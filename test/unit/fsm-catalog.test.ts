// The catalog in the FSM on a real LevelDB, as Consul's state store keeps it (catalog.go): register and
// deregister of nodes, services and checks with Consul's per-table indexes, the reads behind the catalog
// and health endpoints, sessions invalidated by their checks and nodes, and the catalog in snapshots as
// Register records (Consul's order and field names) restored whole.

import test from 'ava';
import { encode } from '@msgpack/msgpack';
import { join } from 'node:path';
import {
  decodeCommand,
  emptyCheckDefinition,
  encodeCommand,
  newDirFor,
  restoreInto,
  type ApplyResult,
  type Command,
  type NewCheck,
  type NewNode,
  type NewService,
} from '../../src/fsm/index.js';
import { encodeStateBinHeader, readStateBin, type RegisterRecord } from '../../src/snapshot/index.js';
import { FsmDriver, tempRoot } from '../support/fsm-driver.js';

const sid = '11111111-1111-4111-8111-111111111111';
const sid2 = '22222222-2222-4222-8222-222222222222';

const node = (name: string, over: Partial<NewNode> = {}): NewNode => ({
  ID: '', Node: name, Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {}, ...over,
});
const service = (name: string, over: Partial<NewService> = {}): NewService => ({
  Kind: '', ID: name, Service: name, Tags: [], Address: '', TaggedAddresses: {}, Meta: {}, Port: 80,
  Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false, ...over,
});
const check = (id: string, over: Partial<NewCheck> = {}): NewCheck => ({
  CheckID: id, Name: id, Status: 'passing', Notes: '', Output: '', ServiceID: '', Type: '', Definition: emptyCheckDefinition, ...over,
});

class Driver extends FsmDriver {
  register(n: NewNode, s?: NewService, checks: NewCheck[] = [], skipNodeUpdate = false): Promise<ApplyResult> {
    return this.run({ type: 'catalog-register', node: n, skipNodeUpdate, ...(s === undefined ? {} : { service: s }), checks });
  }
  deregister(nodeName: string, serviceId = '', checkId = ''): Promise<ApplyResult> {
    return this.run({ type: 'catalog-deregister', node: nodeName, serviceId, checkId });
  }
  session(id: string, nodeName: string, checks: string[] = ['serfHealth'], behavior: 'release' | 'delete' = 'release'): Promise<ApplyResult> {
    return this.run({
      type: 'session-create',
      session: { ID: id, Name: '', Node: nodeName, LockDelay: 0, Behavior: behavior, TTL: '', NodeChecks: checks, ServiceChecks: [] },
    });
  }
  async read(q: Parameters<FsmDriver['fsm']['catalogQuery']>[0]): Promise<{ index: number; json: any }> {
    return this.fsm.catalogQuery(q);
  }
}

const ok: ApplyResult = { kind: 'catalog', error: '' };

test('fsm catalog: register a node, a service and checks; every read answers Consul\'s shapes and table indexes', async (t) => {
  const d = await Driver.open(t);
  t.deepEqual(await d.register(node('n1', { Meta: { rack: 'r1' } }), service('web', { ID: 'web-1', Tags: ['v1', 'blue'], Port: 8080 }),
    [check('serfHealth'), check('web-alive', { ServiceID: 'web-1', Status: 'warning' })]), ok);
  t.deepEqual(await d.register(node('n2'), service('db'), [check('serfHealth', { Status: 'critical' })]), ok);

  const nodes = await d.read({ what: 'nodes' });
  t.is(nodes.index, 2);
  t.deepEqual(nodes.json, [
    { ID: '', Node: 'n1', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: null, Meta: { rack: 'r1' }, CreateIndex: 1, ModifyIndex: 1 },
    { ID: '', Node: 'n2', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: null, Meta: null, CreateIndex: 2, ModifyIndex: 2 },
  ]);
  t.deepEqual((await d.read({ what: 'services' })).json, { db: [], web: ['blue', 'v1'] });
  const web = await d.read({ what: 'service', name: 'web', tags: [] });
  t.like(web.json[0], { Node: 'n1', NodeMeta: { rack: 'r1' }, ServiceID: 'web-1', ServiceName: 'web', ServiceTags: ['v1', 'blue'], ServicePort: 8080, CreateIndex: 1 });
  t.deepEqual((await d.read({ what: 'service', name: 'web', tags: ['v1', 'green'] })).json, [], 'every tag must match');
  const n1 = await d.read({ what: 'node', node: 'n1' });
  t.deepEqual(Object.keys(n1.json.Services), ['web-1']);
  t.is((await d.read({ what: 'node', node: 'nope' })).json, null);
  t.deepEqual((await d.read({ what: 'node-services', node: 'n1' })).json.Services.map((s: { ID: string }) => s.ID), ['web-1']);

  const health = await d.read({ what: 'health-node', node: 'n1' });
  t.deepEqual(health.json.map((c: { CheckID: string; Status: string }) => [c.CheckID, c.Status]), [['serfHealth', 'passing'], ['web-alive', 'warning']]);
  t.like(health.json[1], { ServiceID: 'web-1', ServiceName: 'web', ServiceTags: ['v1', 'blue'], Definition: {} }, 'a service check carries its service');
  t.deepEqual((await d.read({ what: 'health-checks', service: 'web' })).json.map((c: { CheckID: string }) => c.CheckID), ['web-alive']);
  t.deepEqual((await d.read({ what: 'health-state', state: 'critical' })).json.map((c: { Node: string }) => c.Node), ['n2']);
  t.is((await d.read({ what: 'health-state', state: 'any' })).json.length, 3);
  const hs = await d.read({ what: 'health-service', service: 'web', tags: [], passing: false });
  t.deepEqual(hs.json[0].Checks.map((c: { CheckID: string }) => c.CheckID), ['serfHealth', 'web-alive'], 'node checks and its own checks');
  t.deepEqual((await d.read({ what: 'health-service', service: 'web', tags: [], passing: true })).json, [], 'a warning is not passing');
  t.deepEqual((await d.read({ what: 'health-service', service: 'db', tags: [], passing: true })).json, [], 'a critical node check hides its services');
  await d.fsm.checkInvariants();
});

test('fsm catalog: an unchanged re-register keeps every index; a change moves only its row and table', async (t) => {
  const d = await Driver.open(t);
  await d.register(node('n1'), service('web'), [check('serfHealth')]);
  t.deepEqual(await d.register(node('n1'), service('web'), [check('serfHealth')]), ok);
  t.is((await d.read({ what: 'nodes' })).index, 1, 'nothing changed: the nodes index stays');
  t.is((await d.read({ what: 'health-node', node: 'n1' })).index, 1);
  await d.register(node('n1'), undefined, [check('serfHealth', { Status: 'critical', Output: 'gone' })], true);
  t.is((await d.read({ what: 'nodes' })).index, 1, 'SkipNodeUpdate with the node present leaves it');
  const checks = await d.read({ what: 'health-node', node: 'n1' });
  t.is(checks.index, 3);
  t.like(checks.json[0], { Status: 'critical', Output: 'gone', CreateIndex: 1, ModifyIndex: 3 });
  await d.register(node('n1', { Address: '10.0.0.2' }));
  t.like((await d.read({ what: 'nodes' })).json[0], { Address: '10.0.0.2', CreateIndex: 1, ModifyIndex: 4 });
  t.is((await d.read({ what: 'service', name: 'web', tags: [] })).json[0].ModifyIndex, 1, 'the service did not move');
  await d.fsm.checkInvariants();
});

test('fsm catalog: refusals in Consul words write nothing of the register', async (t) => {
  const d = await Driver.open(t);
  t.deepEqual(await d.register(node('n1'), service('web'), [check('c', { ServiceID: 'nope' })]), { kind: 'catalog', error: 'Missing service registration' });
  t.deepEqual((await d.read({ what: 'nodes' })).json, [], 'not even the node of the refused register');
  t.deepEqual(await d.register(node('n1'), service('web'), [], true), ok, 'SkipNodeUpdate registers a missing node');
  t.is((await d.read({ what: 'nodes' })).json.length, 1);
  t.deepEqual(await d.session(sid, 'ghost'), { kind: 'session', error: 'Missing node registration' });
  t.deepEqual(await d.session(sid, 'n1'), { kind: 'session', error: "Missing check 'serfHealth' registration" });
  await d.register(node('n1'), undefined, [check('serfHealth', { Status: 'critical' })]);
  t.deepEqual(await d.session(sid, 'n1'), { kind: 'session', error: "Check 'serfHealth' is in critical state" });
  t.deepEqual((await d.fsm.sessionList()).sessions, []);
});

test('fsm catalog: a critical check, a removed check, service or node invalidates the sessions tied to it', async (t) => {
  const text = (s: string): Uint8Array => new TextEncoder().encode(s);
  const d = await Driver.open(t);
  await d.register(node('n1'), service('web'), [check('serfHealth'), check('web-ok', { ServiceID: 'web' })]);
  t.deepEqual(await d.session(sid, 'n1', ['serfHealth']), { kind: 'session', error: '' });
  t.deepEqual(await d.session(sid2, 'n1', ['web-ok'], 'delete'), { kind: 'session', error: '' });
  await d.run({ type: 'kvs', op: { verb: 'lock', key: 'leader', value: text('me'), flags: 0, session: sid } });
  await d.run({ type: 'kvs', op: { verb: 'lock', key: 'web/lock', value: text('w'), flags: 0, session: sid2 } });

  await d.register(node('n1'), undefined, [check('web-ok', { ServiceID: 'web', Status: 'warning' })], true);
  t.is((await d.fsm.sessionList()).sessions.length, 2, 'warning keeps sessions');
  await d.deregister('n1', 'web');
  t.deepEqual((await d.fsm.sessionList()).sessions.map((s) => s.ID), [sid], 'the service\'s check went with it, and its session');
  t.is((await d.fsm.get('web/lock')).entry, undefined, 'a delete session takes its keys');
  t.is((await d.read({ what: 'health-node', node: 'n1' })).json.length, 1);

  await d.register(node('n1'), undefined, [check('serfHealth', { Status: 'critical' })], true);
  t.deepEqual((await d.fsm.sessionList()).sessions, [], 'serfHealth critical kills the node\'s session');
  t.like((await d.fsm.get('leader')).entry, { Session: '', LockIndex: 1 }, 'its lock is released');

  await d.register(node('n1'), undefined, [check('serfHealth')], true);
  await d.session(sid, 'n1');
  await d.deregister('n1');
  t.deepEqual((await d.fsm.sessionList()).sessions, [], 'deregistering the node destroys its sessions');
  t.deepEqual((await d.read({ what: 'nodes' })).json, []);
  t.deepEqual((await d.read({ what: 'health-state', state: 'any' })).json, []);
  await d.fsm.checkInvariants();
});

test('fsm catalog: snapshots carry Register records in Consul\'s order and a restore gives the same catalog', async (t) => {
  const root = await tempRoot(t);
  const d = await Driver.open(t, join(root, 'a'));
  await d.register(node('b-node', { TaggedAddresses: { lan: '10.0.0.1' } }), service('web', { Meta: { v: '1' } }), [check('serfHealth')]);
  await d.register(node('a-node'), service('db', { ID: 'db-1' }), [check('db-ok', { ServiceID: 'db-1' })]);
  await d.register(node('a-node'), service('cache'));
  await d.session(sid, 'b-node');
  const chunks: Uint8Array[] = [];
  for await (const c of await d.fsm.snapshot()) chunks.push(c);
  const registers: RegisterRecord[] = [];
  const order: string[] = [];
  for await (const item of readStateBin((async function* () { yield Buffer.concat(chunks); })())) {
    if (item.kind !== 'header') order.push(item.kind);
    if (item.kind === 'register') registers.push(item.register);
  }
  t.deepEqual(order.slice(0, 7), ['register', 'register', 'register', 'register', 'register', 'register', 'register'], 'the catalog comes first');
  t.deepEqual(registers.map((r) => [r.node.Node, r.service?.ID ?? '', r.checks.map((c) => c.CheckID).join()]), [
    ['a-node', '', ''], ['a-node', 'cache', ''], ['a-node', 'db-1', ''], ['a-node', '', 'db-ok'],
    ['b-node', '', ''], ['b-node', 'web', ''], ['b-node', '', 'serfHealth'],
  ], 'per node: the node, its services, then its checks');
  t.like(registers[5]?.node, { TaggedAddresses: { lan: '10.0.0.1' }, CreateIndex: 1 }, 'each record carries its node\'s fields');

  const dir = join(root, 'b');
  const summary = await restoreInto(newDirFor(dir), (async function* () { yield* chunks; })());
  t.is(summary.registerCount, 7);
  const r = await Driver.open(t, dir);
  await r.fsm.checkInvariants();
  for (const q of [
    { what: 'nodes' }, { what: 'services' }, { what: 'health-state', state: 'any' },
    { what: 'health-service', service: 'db', tags: [], passing: false }, { what: 'node', node: 'b-node' },
  ] as const) {
    t.deepEqual(await r.read(q), await d.read(q), q.what);
  }
  t.deepEqual((await r.fsm.sessionList()).sessions.map((s) => s.ID), [sid]);
});

test('fsm catalog: a Consul 0.7-style Register record without indexes restores at LastIndex; a bad one is refused by field', async (t) => {
  const root = await tempRoot(t);
  const header = encodeStateBinHeader(42);
  const rec = (body: unknown): Uint8Array => Buffer.concat([Buffer.of(0), Buffer.from(encode(body))]);
  const old = [header,
    rec({ Node: 'old', Address: '10.1.1.1', TaggedAddresses: { wan: '1.2.3.4' } }),
    rec({ Node: 'old', Address: '10.1.1.1', Service: { ID: 'r', Service: 'redis', Tags: ['m'], Port: 6379 } }),
    rec({ Node: 'old', Address: '10.1.1.1', Check: { Node: 'old', CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' } }),
  ];
  const dir = join(root, 'x');
  await restoreInto(newDirFor(dir), (async function* () { yield Buffer.concat(old); })());
  const r = await Driver.open(t, dir);
  t.like((await r.read({ what: 'nodes' })).json[0], { Node: 'old', CreateIndex: 42, ModifyIndex: 42 });
  t.like((await r.read({ what: 'service', name: 'redis', tags: ['m'] })).json[0], { ServicePort: 6379, CreateIndex: 42 });
  t.is((await r.read({ what: 'health-node', node: 'old' })).index, 42);

  const bad = [header, rec({ Node: 'x', Check: { CheckID: 'c', Status: 'sideways' } })];
  const error = await t.throwsAsync(restoreInto(newDirFor(join(root, 'y')), (async function* () { yield Buffer.concat(bad); })()));
  t.regex(error?.message ?? '', /record 1 \(Register.*Check: field "Status" must be "passing", "warning" or "critical"/);
  const noNode = [header, rec({ Address: '1.1.1.1' })];
  const e2 = await t.throwsAsync(restoreInto(newDirFor(join(root, 'z')), (async function* () { yield Buffer.concat(noNode); })()));
  t.regex(e2?.message ?? '', /field "Node" is missing/);
});

test('fsm catalog: commands round-trip through their wire form; hostile ones are refused, not thrown', (t) => {
  const register: Command = {
    type: 'catalog-register', node: node('n1', { Meta: { a: 'b' } }), skipNodeUpdate: true,
    service: service('web', { Tags: ['x'] }), checks: [check('c', { ServiceID: 'web', Definition: { ...emptyCheckDefinition, HTTP: 'http://x', Interval: 10e9 } })],
  };
  const decoded = decodeCommand(encodeCommand(register));
  t.deepEqual(decoded, { ok: true, command: register });
  const dereg: Command = { type: 'catalog-deregister', node: 'n1', serviceId: 'web', checkId: '' };
  t.deepEqual(decodeCommand(encodeCommand(dereg)), { ok: true, command: dereg });
  t.throws(() => encodeCommand({ ...register, node: node('bad\u0000name') }), { message: /NUL/ });
  t.throws(() => encodeCommand({ type: 'catalog-deregister', node: '', serviceId: '', checkId: '' }), { message: /Node is empty/ });
  // A map key the decoder refuses is refused when encoding, so it can never stop every server at its apply.
  const proto = JSON.parse('{"__proto__":"x"}') as Record<string, string>;
  t.throws(() => encodeCommand({ ...register, node: node('n1', { Meta: proto }) }), { message: /"__proto__", which is not allowed/ });
  t.throws(() => encodeCommand({ ...register, service: service('web', { TaggedAddresses: JSON.parse('{"__proto__":{"Address":"a","Port":1}}') as never }) }), { message: /__proto__/ });
  const hostile = Buffer.concat([Buffer.of(0), Buffer.from(encode({ ID: '', Node: 'n', Address: '', Datacenter: '', TaggedAddresses: { a: 1 }, NodeMeta: null, Service: null, Checks: [], SkipNodeUpdate: false }))]);
  const r = decodeCommand(hostile);
  t.false(r.ok);
  t.regex(r.ok ? '' : r.error.message, /TaggedAddresses/);
});

test('fsm catalog: a blocking catalog read wakes on a catalog write, with the new index', async (t) => {
  const d = await Driver.open(t);
  await d.register(node('n1'), service('web'));
  const q = { what: 'service', name: 'web', tags: [] } as const;
  const before = (await d.read(q)).index;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 10_000);
  const woken = d.fsm.waitForChange({ catalog: q }, before, controller.signal);
  await d.register(node('n2'), service('web'));
  const outcome = await woken;
  clearTimeout(timer);
  t.deepEqual(outcome, { reason: 'changed', index: 2 });
});
