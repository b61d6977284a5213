// The catalog and health endpoints without a server: the register and deregister bodies as Consul's
// decoder and Catalog.Register read them (any case, defaults, every refusal text), and the handlers over a
// stub ServerApi (what each passes to catalogRead and apply, Consul's texts for missing arguments, 200 null
// and 404 with X-Consul-Index, ?tag, ?passing, the datacenter a write goes to, the body limit).

import test from 'ava';
import type { CatalogQuery, Command } from '../../src/fsm/index.js';
import type { ReadMeta, ReadOptions, ServerApi } from '../../src/server/index.js';
import { HttpError } from '../../src/http/errors.js';
import {
  handleCatalogDeregister,
  handleCatalogNode,
  handleCatalogNodes,
  handleCatalogNodeServices,
  handleCatalogRegister,
  handleCatalogService,
  handleCatalogServices,
  parseDeregisterBody,
  parseRegisterBody,
  uuidProblem,
} from '../../src/http/catalog.js';
import { handleHealthChecks, handleHealthNode, handleHealthService, handleHealthState, parseCheckState, passingParam } from '../../src/http/health.js';
import { httpLimits } from '../../src/http/limits.js';
import { Query } from '../../src/http/query.js';
import type { Reply, RequestContext } from '../../src/http/reply.js';
import { findRoute } from '../../src/http/routes.js';

const nodeId = '40e4a748-2192-161a-0510-9bf59fe950b5';
const noDefinition = { HTTP: '', Method: '', TLSSkipVerify: false, TCP: '', Interval: 0, Timeout: 0, DeregisterCriticalServiceAfter: 0 };

const register = (body: unknown, dc = 'dc1') => parseRegisterBody(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), dc);
const deregister = (body: unknown, dc = 'dc1') => parseDeregisterBody(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), dc);

/** The 400 text a register body is refused with (fails the test if it is accepted or fails otherwise). */
function refusal(parse: () => unknown): string {
  try {
    parse();
  } catch (e) {
    if (e instanceof HttpError && e.status === 400) return e.body;
    throw e;
  }
  return '<accepted>';
}

const base = { Node: 'web-1', Address: '10.0.0.5' };

test('register: a full body with Consul\'s field names becomes the register command, Check after Checks', (t) => {
  const w = register({
    ID: nodeId, Node: 'web-1', Address: '10.0.0.5', Datacenter: 'dc1',
    TaggedAddresses: { lan: '10.0.0.5', wan: '198.18.0.5' }, NodeMeta: { rack: 'r1' },
    Service: {
      ID: 'web-a', Service: 'web', Tags: ['v1', 'primary'], Address: '10.0.0.6', Meta: { version: '1' }, Port: 8080,
      Weights: { Passing: 10, Warning: 2 }, EnableTagOverride: true, TaggedAddresses: { lan: { Address: '10.0.0.6', Port: 8080 } },
    },
    Check: {
      Node: 'web-1', CheckID: 'web-http', Name: 'HTTP on 8080', Notes: 'n', Status: 'passing', ServiceID: 'web-a', Output: 'ok',
      Definition: { HTTP: 'http://10.0.0.6:8080/health', Method: 'GET', TLSSkipVerify: true, Interval: '10s', Timeout: 2_000_000_000, DeregisterCriticalServiceAfter: '1m' },
    },
    Checks: [{ Name: 'disk' }],
    SkipNodeUpdate: true,
  });
  t.is(w.datacenter, 'dc1');
  t.deepEqual(w.command, {
    type: 'catalog-register',
    node: { ID: nodeId, Node: 'web-1', Address: '10.0.0.5', Datacenter: 'dc1', TaggedAddresses: { lan: '10.0.0.5', wan: '198.18.0.5' }, Meta: { rack: 'r1' } },
    skipNodeUpdate: true,
    service: {
      Kind: '', ID: 'web-a', Service: 'web', Tags: ['v1', 'primary'], Address: '10.0.0.6', TaggedAddresses: { lan: { Address: '10.0.0.6', Port: 8080 } },
      Meta: { version: '1' }, Port: 8080, Weights: { Passing: 10, Warning: 2 }, EnableTagOverride: true,
    },
    checks: [
      { CheckID: 'disk', Name: 'disk', Status: 'critical', Notes: '', Output: '', ServiceID: '', Type: '', Definition: noDefinition },
      {
        CheckID: 'web-http', Name: 'HTTP on 8080', Status: 'passing', Notes: 'n', Output: 'ok', ServiceID: 'web-a', Type: '',
        Definition: { HTTP: 'http://10.0.0.6:8080/health', Method: 'GET', TLSSkipVerify: true, TCP: '', Interval: 10e9, Timeout: 2e9, DeregisterCriticalServiceAfter: 60e9 },
      },
    ],
  } satisfies Command);
});

test('register: python-consul\'s lower-case keys at every level, and Consul\'s defaults', (t) => {
  const w = register({
    node: 'py-1', address: '10.1.0.1', datacenter: '',
    service: { service: 'cache', port: 6379, tags: ['a'], weights: { passing: 3 } },
    check: { name: 'mem', status: 'warning', serviceid: 'cache', definition: { interval: 1e9, tlsskipverify: false } },
  }, 'dc-home');
  t.is(w.datacenter, 'dc-home', 'an empty Datacenter is the default one');
  t.like(w.command.node, { Node: 'py-1', Address: '10.1.0.1', Datacenter: 'dc-home', ID: '', TaggedAddresses: {}, Meta: {} });
  t.false(w.command.skipNodeUpdate);
  t.deepEqual(w.command.service, {
    Kind: '', ID: 'cache', Service: 'cache', Tags: ['a'], Address: '', TaggedAddresses: {}, Meta: {}, Port: 6379,
    Weights: { Passing: 3, Warning: 0 }, EnableTagOverride: false,
  });
  t.deepEqual(w.command.checks, [
    { CheckID: 'mem', Name: 'mem', Status: 'warning', Notes: '', Output: '', ServiceID: 'cache', Type: '', Definition: { ...noDefinition, Interval: 1e9 } },
  ]);
  // No service: no `service` key at all; no Weights given: Consul's {1, 1}.
  t.false('service' in register(base).command);
  t.deepEqual(register({ ...base, Service: { Service: 's' } }).command.service?.Weights, { Passing: 1, Warning: 1 });
});

test('register: nulls are zero values, unknown fields are ignored, a later spelling of a field wins, map keys are data', (t) => {
  const w = register({
    Node: 'n', Address: 'a', Service: null, Check: null, Checks: null, TaggedAddresses: null, NodeMeta: null, SkipNodeUpdate: null, ID: null,
    Unknown: { deep: [1, 2] }, Partition: 'x',
  });
  t.deepEqual(w.command, { type: 'catalog-register', node: { ID: '', Node: 'n', Address: 'a', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {} }, skipNodeUpdate: false, checks: [] });
  t.is(register('{"Node":"first","node":"second","Address":"a"}').command.node.Node, 'second');
  t.like(register({ ...base, Service: { Service: 's', Connect: { Native: true }, Proxy: null } }).command.service, { ID: 's' });
  const meta = register('{"Node":"n","Address":"a","NodeMeta":{"__proto__":"x","k":"v"}}').command.node.Meta;
  t.deepEqual(Object.keys(meta), ['__proto__', 'k']);
  t.is(Object.getPrototypeOf(meta), Object.prototype, 'the map\'s prototype is untouched');
  t.is(meta['__proto__' as keyof typeof meta], 'x');
});

test('register: the datacenter is the body\'s, else the default given', (t) => {
  const w = register({ ...base, Datacenter: 'dc2' }, 'dc1');
  t.is(w.datacenter, 'dc2');
  t.is(w.command.node.Datacenter, 'dc2');
  t.is(register(base, 'dc3').command.node.Datacenter, 'dc3');
});

test('register: Consul\'s refusals, in Consul\'s order', (t) => {
  t.is(refusal(() => register('null')), 'Must provide node and address');
  t.is(refusal(() => register({ Node: 'n' })), 'Must provide node and address');
  t.is(refusal(() => register({ Address: 'a' })), 'Must provide node and address');
  t.is(refusal(() => register({ Node: '', Address: 'a', ID: 'bad' })), 'Must provide node and address', 'node and address come before the node ID');
  t.is(refusal(() => register({ ...base, ID: 'abc' })), 'Bad node ID: uuid string is wrong length');
  t.is(refusal(() => register({ ...base, ID: '40e4a748_2192-161a-0510-9bf59fe950b5' })), 'Bad node ID: uuid is improperly formatted');
  t.is(refusal(() => register({ ...base, ID: '40e4a748-2192-161a-0510-9bf59fe950bg' })), "Bad node ID: encoding/hex: invalid byte: U+0067 'g'");
  t.is(refusal(() => register({ ...base, ID: nodeId.toUpperCase() })), '<accepted>', 'go-uuid reads either case');
  t.is(refusal(() => register({ ...base, Service: {} })), 'Must provide service name with ID');
  t.is(refusal(() => register({ ...base, Service: { ID: 'web-a' } })), 'Must provide service name with ID');
  t.is(refusal(() => register({ ...base, Service: { Service: 'web', Address: '0.0.0.0' } })), 'Invalid service address');
  t.is(refusal(() => register({ ...base, Service: { Service: 'web', Address: '::' } })), 'Invalid service address');
  t.is(refusal(() => register({ ...base, Service: { Service: 'web', Address: '[::]' } })), 'Invalid service address');
});

test('register: our refusals (names as keys, checks, kinds)', (t) => {
  const long = 'x'.repeat(257);
  t.is(refusal(() => register({ Node: 'a\u0000b', Address: 'a' })), 'Node name contains a NUL character');
  t.is(refusal(() => register({ Node: long, Address: 'a' })), 'Node name is longer than 256 bytes');
  t.is(refusal(() => register({ Node: 'é'.repeat(128), Address: 'a' })), '<accepted>', '256 bytes of UTF-8 is the limit');
  t.is(refusal(() => register({ Node: 'é'.repeat(129), Address: 'a' })), 'Node name is longer than 256 bytes');
  t.is(refusal(() => register({ ...base, Service: { Service: 'web', ID: long } })), 'Service ID is longer than 256 bytes');
  t.is(refusal(() => register({ ...base, Service: { Service: long } })), 'Service ID is longer than 256 bytes (it defaults to the service name)');
  t.is(refusal(() => register({ ...base, Service: { Service: 'web', ID: 'a\u0000' } })), 'Service ID contains a NUL character');
  t.is(refusal(() => register({ ...base, Service: { Service: 'web', Kind: 'connect-proxy' } })),
    'Service Kind "connect-proxy" is not supported: only typical services (Kind "") can be registered');
  t.is(refusal(() => register({ ...base, Check: { Node: 'web-2', Name: 'c' } })),
    'Check: its Node "web-2" is not the node being registered, "web-1"; leave it out or name that node');
  t.is(refusal(() => register({ ...base, Check: { Node: 'web-1', Name: 'c' } })), '<accepted>');
  t.is(refusal(() => register({ ...base, Check: { Status: 'passing' } })), 'Check: Must provide check Name or CheckID');
  t.is(refusal(() => register({ ...base, Checks: [{ Name: 'a' }, { Name: 'b', Status: 'ok' }] })),
    'Checks[1]: Bad check status "ok": must be "passing", "warning" or "critical"');
  t.is(refusal(() => register({ ...base, Check: { Name: 'c', Status: 'Passing' } })), 'Check: Bad check status "Passing": must be "passing", "warning" or "critical"');
  t.is(refusal(() => register({ ...base, Check: { CheckID: 'a\u0000', Name: 'c' } })), 'Check: CheckID contains a NUL character');
  t.is(refusal(() => register({ ...base, Check: { Name: long } })), 'Check: CheckID is longer than 256 bytes');
  t.is(refusal(() => register({ ...base, Check: { Name: 'c', ServiceID: 'a\u0000' } })), 'Check: ServiceID contains a NUL character');
});

test('register: a value of the wrong JSON type is "Request decode failed" naming the field', (t) => {
  const cases: Array<[unknown, string]> = [
    ['', 'the body is empty; expected a JSON object'],
    ['[]', 'the body must be a JSON object, got an array'],
    ['"node"', 'the body must be a JSON object, got the string "node"'],
    [{ Node: 5, Address: 'a' }, 'Node must be a string, got the number 5'],
    ['{"Node":"n","Address":"\\ud800"}', 'Address holds a lone UTF-16 surrogate, which has no UTF-8 form'],
    [{ ...base, ID: true }, 'ID must be a string, got the boolean true'],
    [{ ...base, SkipNodeUpdate: 'true' }, 'SkipNodeUpdate must be a boolean, got the string "true"'],
    [{ ...base, NodeMeta: ['x'] }, 'NodeMeta must be an object, got an array'],
    [{ ...base, TaggedAddresses: { lan: 1 } }, 'TaggedAddresses["lan"] must be a string, got the number 1'],
    ['{"Node":"n","Address":"a","NodeMeta":{"\\udc00":"v"}}', 'NodeMeta has a key holding a lone UTF-16 surrogate, which has no UTF-8 form'],
    [{ ...base, Service: 'web' }, 'Service must be an object, got the string "web"'],
    [{ ...base, Service: { Service: 'web', Port: '80' } }, 'Service.Port must be an integer in 0..9007199254740991, got the string "80"'],
    ['{"Node":"n","Address":"a","Service":{"Service":"web","Port":80.0}}', 'Service.Port must be an integer in 0..9007199254740991, got the number 80.0'],
    [{ ...base, Service: { Service: 'web', Port: 80.5 } }, 'Service.Port must be an integer in 0..9007199254740991, got the number 80.5'],
    [{ ...base, Service: { Service: 'web', Port: -1 } }, 'Service.Port must be an integer in 0..9007199254740991, got the number -1'],
    ['{"Node":"n","Address":"a","Service":{"Service":"web","Port":18446744073709551616}}', 'Service.Port must be an integer in 0..9007199254740991, got the number 18446744073709551616'],
    [{ ...base, Service: { Service: 'web', Tags: 'a' } }, 'Service.Tags must be a list of strings, got the string "a"'],
    [{ ...base, Service: { Service: 'web', Tags: ['a', 1] } }, 'Service.Tags[1] must be a string, got the number 1'],
    [{ ...base, Service: { Service: 'web', Meta: { a: 1 } } }, 'Service.Meta["a"] must be a string, got the number 1'],
    [{ ...base, Service: { Service: 'web', Weights: 'x' } }, 'Service.Weights must be an object, got the string "x"'],
    [{ ...base, Service: { Service: 'web', Weights: { Passing: 1.5 } } }, 'Service.Weights.Passing must be an integer in 0..9007199254740991, got the number 1.5'],
    [{ ...base, Service: { Service: 'web', EnableTagOverride: 'yes' } }, 'Service.EnableTagOverride must be a boolean, got the string "yes"'],
    [{ ...base, Service: { Service: 'web', TaggedAddresses: { lan: 'x' } } }, 'Service.TaggedAddresses["lan"] must be an object, got the string "x"'],
    [{ ...base, Service: { Service: 'web', TaggedAddresses: { lan: { Port: 'x' } } } }, 'Service.TaggedAddresses["lan"].Port must be an integer in 0..9007199254740991, got the string "x"'],
    [{ ...base, Checks: { Name: 'a' } }, 'Checks must be a list of objects, got an object'],
    [{ ...base, Checks: [null] }, 'Checks[0] must be an object, got null'],
    [{ ...base, Checks: [{ Name: 'a' }, 'b'] }, 'Checks[1] must be an object, got the string "b"'],
    [{ ...base, Check: { Name: 7 } }, 'Check.Name must be a string, got the number 7'],
    [{ ...base, Check: { Name: 'c', Definition: [] } }, 'Check.Definition must be an object, got an array'],
    [{ ...base, Check: { Name: 'c', Definition: { Interval: 'soon' } } }, 'Check.Definition.Interval: time: invalid duration "soon"'],
    [{ ...base, Check: { Name: 'c', Definition: { Interval: '-1s' } } }, 'Check.Definition.Interval must be between 0 and 9007199254740991 nanoseconds, got the string "-1s"'],
    [{ ...base, Check: { Name: 'c', Definition: { Timeout: 1.5 } } }, 'Check.Definition.Timeout must be a duration ("10s") or whole nanoseconds, got the number 1.5'],
    [{ ...base, Check: { Name: 'c', Definition: { Timeout: true } } }, 'Check.Definition.Timeout must be a duration ("10s") or whole nanoseconds, got the boolean true'],
    [{ ...base, Check: { Name: 'c', Definition: { TLSSkipVerify: 1 } } }, 'Check.Definition.TLSSkipVerify must be a boolean, got the number 1'],
  ];
  for (const [body, why] of cases) t.is(refusal(() => register(body)), `Request decode failed: ${why}`, JSON.stringify(body));
  t.regex(refusal(() => register('{"Node":')), /^Request decode failed: \S/);
  // A decode failure anywhere comes before the checks Consul's server runs on the decoded request.
  t.is(refusal(() => register({ Service: { Service: 'web', Port: 'x' } })), 'Request decode failed: Service.Port must be an integer in 0..9007199254740991, got the string "x"');
});

test('register: durations as Consul\'s HealthCheckDefinition reads them', (t) => {
  const interval = (v: unknown): unknown => register({ ...base, Check: { Name: 'c', Definition: { Interval: v } } }).command.checks[0]?.Definition.Interval;
  t.is(interval('1m30s'), 90e9);
  t.is(interval('250ms'), 250e6);
  t.is(interval(5), 5);
  t.is(interval(0), 0);
  t.is(register('{"Node":"n","Address":"a","Check":{"Name":"c","Definition":{"Interval":1e9}}}').command.checks[0]?.Definition.Interval, 1e9);
});

test('deregister: the body as the deregister command; Consul\'s and our refusals', (t) => {
  t.deepEqual(deregister({ Node: 'web-1' }), { datacenter: 'dc1', command: { type: 'catalog-deregister', node: 'web-1', serviceId: '', checkId: '' } });
  t.deepEqual(deregister({ node: 'web-1', serviceid: 'web-a', checkid: 'c', datacenter: 'dc2' }),
    { datacenter: 'dc2', command: { type: 'catalog-deregister', node: 'web-1', serviceId: 'web-a', checkId: 'c' } });
  t.is(deregister({ Node: 'n', Datacenter: '' }, 'dc9').datacenter, 'dc9');
  t.is(refusal(() => deregister({})), 'Must provide node');
  t.is(refusal(() => deregister('null')), 'Must provide node');
  t.is(refusal(() => deregister({ ServiceID: 's' })), 'Must provide node');
  t.is(refusal(() => deregister({ Node: 'a\u0000' })), 'Node name contains a NUL character');
  t.is(refusal(() => deregister({ Node: 'x'.repeat(300) })), 'Node name is longer than 256 bytes');
  t.is(refusal(() => deregister({ Node: 'n', ServiceID: 'a\u0000' })), 'ServiceID contains a NUL character');
  t.is(refusal(() => deregister({ Node: 'n', CheckID: 'x'.repeat(300) })), 'CheckID is longer than 256 bytes');
  t.is(refusal(() => deregister({ Node: 'n', ServiceID: 5 })), 'Request decode failed: ServiceID must be a string, got the number 5');
  t.is(refusal(() => deregister('')), 'Request decode failed: the body is empty; expected a JSON object');
});

test('uuidProblem is go-uuid\'s ParseUUID', (t) => {
  t.is(uuidProblem(nodeId), undefined);
  t.is(uuidProblem(''), 'uuid string is wrong length');
  t.is(uuidProblem(`${nodeId.slice(0, 35)}é`), 'uuid string is wrong length', 'length in bytes');
  t.is(uuidProblem('40e4a7482-192-161a-0510-9bf59fe950b5'), 'uuid is improperly formatted');
  t.is(uuidProblem('40e4a748-2192-161a-0510-9bf59fe950\u0001b'), 'encoding/hex: invalid byte: U+0001');
});

test('health: ?passing is Consul\'s getBoolQueryParam; states are any, passing, warning, critical', (t) => {
  t.false(passingParam(Query.parse('')));
  t.true(passingParam(Query.parse('passing')));
  t.true(passingParam(Query.parse('passing=')));
  t.true(passingParam(Query.parse('passing=1')));
  t.true(passingParam(Query.parse('passing=true')));
  t.false(passingParam(Query.parse('passing=false')));
  t.false(passingParam(Query.parse('passing=0')));
  t.is(refusal(() => passingParam(Query.parse('passing=yes'))), 'Invalid value for ?passing');
  for (const s of ['any', 'passing', 'warning', 'critical'] as const) t.is(parseCheckState(s), s);
  t.is(refusal(() => parseCheckState('')), 'Missing check state');
  t.is(refusal(() => parseCheckState('critcal')), 'Invalid check state');
  t.is(refusal(() => parseCheckState('Passing')), 'Invalid check state');
});

// ---------------------------------------------------------------------------------------------------
// The handlers over a stub ServerApi.
// ---------------------------------------------------------------------------------------------------

interface Stub {
  readonly reads: Array<{ query: CatalogQuery; options: ReadOptions }>;
  readonly applies: Array<{ command: Command; dc: string | undefined }>;
  ctx(method: string, target: string, body?: string): RequestContext;
}

const meta: ReadMeta = { index: 42, knownLeader: true, lastContactMs: 0, consistency: 'default' };

function stub(answer: (q: CatalogQuery) => unknown = () => [], applyError = ''): Stub {
  const reads: Stub['reads'] = [];
  const applies: Stub['applies'] = [];
  const api = {
    datacenter: 'dc1',
    catalogRead: async (query: CatalogQuery, options: ReadOptions) => {
      reads.push({ query, options });
      return { meta, json: answer(query) };
    },
    apply: async (command: Command, o?: { dc?: string }) => {
      applies.push({ command, dc: o?.dc });
      return { kind: 'catalog', error: applyError };
    },
  } as unknown as ServerApi;
  const ctx = (method: string, target: string, body = ''): RequestContext => {
    const q = target.indexOf('?');
    const bytes = Buffer.from(body);
    return {
      method,
      path: q === -1 ? target : target.slice(0, q),
      query: Query.parse(q === -1 ? '' : target.slice(q + 1)),
      headers: {},
      agent: undefined,
      api,
      limits: httpLimits,
      signal: new AbortController().signal,
      random: () => 0,
      localAddress: '127.0.0.1',
      pretty: false,
      readBody: async (limit, tooLarge) => {
        if (bytes.length > limit) throw tooLarge(bytes.length);
        return bytes;
      },
      bodyStream: () => {
        throw new Error('not used');
      },
    };
  };
  return { reads, applies, ctx };
}

async function httpError(t: { fail(m: string): void }, p: Promise<Reply>): Promise<{ status: number; body: string }> {
  try {
    const r = await p;
    t.fail(`answered ${r.status}`);
    return { status: r.status, body: String(r.body) };
  } catch (e) {
    if (!(e instanceof HttpError)) throw e;
    return { status: e.status, body: e.body };
  }
}

test('register and deregister handlers: the command reaches apply for the right datacenter; true; refusals are 400s', async (t) => {
  const s = stub();
  const ok = await handleCatalogRegister(s.ctx('PUT', '/v1/catalog/register', JSON.stringify({ ...base, Service: { Service: 'web' } })));
  t.is(ok.status, 200);
  t.is(ok.body, 'true');
  t.is(ok.headers['Content-Type'], 'application/json');
  t.like(s.applies[0], { dc: '', command: { type: 'catalog-register', node: { Node: 'web-1', Datacenter: 'dc1' } } });
  await handleCatalogRegister(s.ctx('PUT', '/v1/catalog/register', JSON.stringify({ ...base, Datacenter: 'dc2' })));
  t.like(s.applies[1], { dc: 'dc2', command: { node: { Datacenter: 'dc2' } } });
  await handleCatalogRegister(s.ctx('PUT', '/v1/catalog/register?dc=dc3', JSON.stringify(base)));
  t.like(s.applies[2], { dc: 'dc3', command: { node: { Datacenter: 'dc3' } } }, '?dc applies when the body names no datacenter');
  await handleCatalogRegister(s.ctx('PUT', '/v1/catalog/register?dc=dc1', JSON.stringify(base)));
  t.is(s.applies[3]?.dc, '', 'our own datacenter is not forwarded');
  const d = await handleCatalogDeregister(s.ctx('PUT', '/v1/catalog/deregister?dc=dc2', JSON.stringify({ Node: 'web-1', ServiceID: 'web' })));
  t.is(d.body, 'true');
  t.deepEqual(s.applies[4], { dc: 'dc2', command: { type: 'catalog-deregister', node: 'web-1', serviceId: 'web', checkId: '' } });

  t.deepEqual(await httpError(t, handleCatalogRegister(s.ctx('PUT', '/v1/catalog/register', '{}'))), { status: 400, body: 'Must provide node and address' });
  t.deepEqual(await httpError(t, handleCatalogDeregister(s.ctx('PUT', '/v1/catalog/deregister', '{}'))), { status: 400, body: 'Must provide node' });
  const big = JSON.stringify({ ...base, NodeMeta: { pad: 'x'.repeat(64 * 1024) } });
  t.deepEqual(await httpError(t, handleCatalogRegister(s.ctx('PUT', '/v1/catalog/register', big))), { status: 413, body: 'Request body too large, max size: 65536 bytes' });
  t.is(s.applies.length, 5, 'refused requests change nothing');

  const refused = stub(() => [], 'Missing service registration for check');
  t.deepEqual(await httpError(t, handleCatalogRegister(refused.ctx('PUT', '/v1/catalog/register', JSON.stringify(base)))),
    { status: 400, body: 'Missing service registration for check' }, 'the FSM\'s refusal is a 400 with its text');
});

test('catalog GETs: the query each reads, its JSON with X-Consul-Index, 200 null and 404 for an unknown node', async (t) => {
  const s = stub((q) => (q.what === 'node' || q.what === 'node-services' ? null : { what: q.what }));
  const nodes = await handleCatalogNodes(s.ctx('GET', '/v1/catalog/nodes?stale'));
  t.is(nodes.body, '{"what":"nodes"}');
  t.is(nodes.headers['X-Consul-Index'], '42');
  t.is(s.reads[0]?.options.consistency, 'stale');
  t.is((await handleCatalogServices(s.ctx('GET', '/v1/catalog/services'))).body, '{"what":"services"}');
  await handleCatalogService(s.ctx('GET', '/v1/catalog/service/web?tag=v1&tag=primary&near=_agent'));
  t.deepEqual(s.reads[2]?.query, { what: 'service', name: 'web', tags: ['v1', 'primary'] });
  await handleCatalogService(s.ctx('GET', '/v1/catalog/service/web/a'));
  t.deepEqual(s.reads[3]?.query, { what: 'service', name: 'web/a', tags: [] });
  await handleCatalogServices(s.ctx('GET', '/v1/catalog/services?index=7&wait=2s&dc=dc2'));
  t.like(s.reads[4]?.options, { minIndex: 7, waitMs: 2000, dc: 'dc2' });

  const node = await handleCatalogNode(s.ctx('GET', '/v1/catalog/node/ghost'));
  t.deepEqual([node.status, node.body, node.headers['X-Consul-Index']], [200, 'null', '42'], 'Consul answers an unknown node with 200 null');
  t.deepEqual(s.reads[5]?.query, { what: 'node', node: 'ghost' });
  const missing = await handleCatalogNodeServices(s.ctx('GET', '/v1/catalog/node-services/ghost'));
  t.deepEqual([missing.status, missing.body, missing.headers['X-Consul-Index']], [404, 'Node not found', '42']);
  t.deepEqual(s.reads[6]?.query, { what: 'node-services', node: 'ghost' });
  const found = stub(() => ({ Node: { Node: 'n' }, Services: [] }));
  const ns = await handleCatalogNodeServices(found.ctx('GET', '/v1/catalog/node-services/n'));
  t.deepEqual([ns.status, ns.body], [200, '{"Node":{"Node":"n"},"Services":[]}']);
});

test('catalog and health GETs: Consul\'s texts for a missing argument, after the shared parameters', async (t) => {
  const s = stub();
  const cases: Array<[(ctx: RequestContext) => Promise<Reply>, string, string]> = [
    [handleCatalogService, '/v1/catalog/service/', 'Missing service name'],
    [handleCatalogNode, '/v1/catalog/node/', 'Missing node name'],
    [handleCatalogNodeServices, '/v1/catalog/node-services/', 'Missing node name'],
    [handleHealthNode, '/v1/health/node/', 'Missing node name'],
    [handleHealthChecks, '/v1/health/checks/', 'Missing service name'],
    [handleHealthService, '/v1/health/service/', 'Missing service name'],
    [handleHealthState, '/v1/health/state/', 'Missing check state'],
  ];
  for (const [handle, path, text] of cases) {
    t.deepEqual(await httpError(t, handle(s.ctx('GET', path))), { status: 400, body: text }, path);
    t.deepEqual(await httpError(t, handle(s.ctx('GET', `${path}?stale&consistent`))),
      { status: 400, body: 'Cannot specify ?stale with ?consistent, conflicting semantics.' }, `${path}: parameters first, as Consul's parse()`);
  }
  t.deepEqual(await httpError(t, handleCatalogNode(s.ctx('GET', `/v1/catalog/node/${'x'.repeat(300)}`))), { status: 400, body: 'Node name is longer than 256 bytes' });
  t.deepEqual(await httpError(t, handleHealthNode(s.ctx('GET', '/v1/health/node/a\u0000b'))), { status: 400, body: 'Node name contains a NUL character' });
  t.deepEqual(await httpError(t, handleCatalogNodes(s.ctx('GET', '/v1/catalog/nodes?index=x'))), { status: 400, body: 'Invalid index' });
  t.is(s.reads.length, 0, 'nothing was read for a refused request');
});

test('health GETs: the query each reads; ?tag and ?passing', async (t) => {
  const s = stub(() => []);
  const r = await handleHealthNode(s.ctx('GET', '/v1/health/node/web-1'));
  t.deepEqual([r.status, r.body, r.headers['X-Consul-Index']], [200, '[]', '42']);
  await handleHealthChecks(s.ctx('GET', '/v1/health/checks/web'));
  await handleHealthService(s.ctx('GET', '/v1/health/service/web?passing&tag=v1'));
  await handleHealthService(s.ctx('GET', '/v1/health/service/web?passing=false'));
  await handleHealthState(s.ctx('GET', '/v1/health/state/critical?consistent'));
  t.deepEqual(s.reads.map((x) => x.query), [
    { what: 'health-node', node: 'web-1' },
    { what: 'health-checks', service: 'web' },
    { what: 'health-service', service: 'web', tags: ['v1'], passing: true },
    { what: 'health-service', service: 'web', tags: [], passing: false },
    { what: 'health-state', state: 'critical' },
  ]);
  t.is(s.reads[4]?.options.consistency, 'consistent');
  t.deepEqual(await httpError(t, handleHealthService(s.ctx('GET', '/v1/health/service/web?passing=maybe'))), { status: 400, body: 'Invalid value for ?passing' });
  t.deepEqual(await httpError(t, handleHealthState(s.ctx('GET', '/v1/health/state/bogus'))), { status: 400, body: 'Invalid check state' });
  t.is(s.reads.length, 5);
});

test('routes: Consul\'s paths and methods for the catalog and health endpoints', (t) => {
  const expect: Array<[string, string[], (ctx: RequestContext) => Promise<Reply>]> = [
    ['/v1/catalog/register', ['PUT'], handleCatalogRegister],
    ['/v1/catalog/deregister', ['PUT'], handleCatalogDeregister],
    ['/v1/catalog/nodes', ['GET'], handleCatalogNodes],
    ['/v1/catalog/services', ['GET'], handleCatalogServices],
    ['/v1/catalog/service/web', ['GET'], handleCatalogService],
    ['/v1/catalog/service/', ['GET'], handleCatalogService],
    ['/v1/catalog/node/n1', ['GET'], handleCatalogNode],
    ['/v1/catalog/node-services/n1', ['GET'], handleCatalogNodeServices],
    ['/v1/health/node/n1', ['GET'], handleHealthNode],
    ['/v1/health/checks/web', ['GET'], handleHealthChecks],
    ['/v1/health/service/web', ['GET'], handleHealthService],
    ['/v1/health/state/any', ['GET'], handleHealthState],
  ];
  for (const [path, methods, handle] of expect) {
    const route = findRoute(path);
    t.deepEqual(route?.methods, methods, path);
    t.is(route?.handle, handle, path);
  }
  for (const path of ['/v1/catalog/nodes/x', '/v1/catalog/register/x', '/v1/health/nodes', '/v1/catalog/node']) t.is(findRoute(path), undefined, path);
});
