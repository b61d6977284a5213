// /v1/session/* and KV ?acquire/?release over real HTTP against a real FSM (LocalServer): Consul's
// defaults, JSON shapes, status codes and texts, blocking queries on the sessions table, lock semantics
// through the KV endpoint and the txn verbs, and bad input that changes nothing.

import test from 'ava';
import { startHarness, type Harness } from '../support/http-harness.js';

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function create(h: Harness, body?: string): Promise<string> {
  const r = await h.request('PUT', '/v1/session/create', body === undefined ? {} : { body });
  if (r.status !== 200) throw new Error(`create answered ${r.status}: ${r.text}`);
  const id = (r.json() as { ID: string }).ID;
  return id;
}

test('session: an empty body creates a session with Consul\'s defaults; info shows Consul\'s JSON', async (t) => {
  const h = await startHarness(t);
  const id = await create(h);
  t.regex(id, uuid);
  const info = await h.request('GET', `/v1/session/info/${id}`);
  t.is(info.status, 200);
  t.is(info.headers['x-consul-index'], '2', 'the node was registered at 1, the session created at 2');
  t.is(info.text, JSON.stringify([{
    ID: id, Name: '', Node: 'node-1', LockDelay: 15_000_000_000, Behavior: 'release', TTL: '',
    NodeChecks: ['serfHealth'], ServiceChecks: null, CreateIndex: 2, ModifyIndex: 2,
  }]));
  const unknown = await h.request('GET', '/v1/session/info/6e2a1d3c-5f4b-4a8e-9c7d-0123456789ab');
  t.is(unknown.status, 200);
  t.is(unknown.text, '[]');
});

test('session: field names in any case (python-consul sends lower case); LockDelay as seconds, ns or a duration', async (t) => {
  const h = await startHarness(t);
  const a = await create(h, '{"name":"web-lock","lockdelay":"5s","behavior":"delete","ttl":"10s","checks":["serfHealth"]}');
  const b = await create(h, '{"LockDelay":30,"Name":"b"}');
  const c = await create(h, '{"LockDelay":2000000000,"NodeChecks":[]}');
  const list = (await h.request('GET', '/v1/session/list')).json() as Array<Record<string, unknown>>;
  const byId = new Map(list.map((s) => [s['ID'], s]));
  t.like(byId.get(a), { Name: 'web-lock', LockDelay: 5e9, Behavior: 'delete', TTL: '10s', NodeChecks: ['serfHealth'] });
  t.like(byId.get(b), { Name: 'b', LockDelay: 30e9, Behavior: 'release' });
  t.like(byId.get(c), { LockDelay: 2e9, NodeChecks: null });
  const node = (await h.request('GET', '/v1/session/node/node-1')).json() as unknown[];
  t.is(node.length, 3);
  t.deepEqual((await h.request('GET', '/v1/session/node/other')).json(), []);
});

test('session: bad input gets Consul\'s texts as 400s and creates nothing', async (t) => {
  const h = await startHarness(t);
  const cases: Array<[string, string]> = [
    ['{"TTL":"5s"}', "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"],
    ['{"TTL":"86401s"}', "Invalid Session TTL '86401000000000', must be between [10s=24h0m0s]"],
    ['{"TTL":"soon"}', "Session TTL 'soon' invalid: "],
    ['{"Behavior":"keep"}', "Invalid Behavior setting 'keep'"],
    ['{"Node":"elsewhere"}', 'Missing node registration'],
    ['{"Checks":["serfHealth","web"]}', "Missing check 'web' registration"],
    ['{"ServiceChecks":[{"ID":"svc"}]}', "Missing check 'svc' registration"],
    ['{"LockDelay":-1}', 'Request decode failed: LockDelay must not be negative'],
    ['{"Name":7}', 'Request decode failed: Name must be a string'],
    ['{"Name":"\\ud800"}', 'Request decode failed: Name holds a lone UTF-16 surrogate'],
    ['{"LockDelay":1e16}', 'Request decode failed: LockDelay the number 10000000000000000 is too large'],
    ['{"LockDelay":"2562047h"}', 'Request decode failed: LockDelay the string "2562047h" is too large'],
    ['[1]', 'Request decode failed: the body must be a JSON object'],
    ['{', 'Request decode failed: '],
  ];
  for (const [body, text] of cases) {
    const r = await h.request('PUT', '/v1/session/create', { body });
    t.is(r.status, 400, body);
    t.true(r.text.startsWith(text), `${body}: ${r.text}`);
  }
  // The catalog checks (node, checks) are made where Consul makes them, in the apply: those entries are
  // in the log, and they change nothing.
  const list = await h.request('GET', '/v1/session/list');
  t.is(list.text, '[]');
  t.is(list.headers['x-consul-index'], '1', 'the sessions table index was never set');
  t.is((await h.request('GET', '/v1/session/create')).status, 405);
});

test('session: acquire and release through /v1/kv follow Consul\'s lock semantics', async (t) => {
  const h = await startHarness(t);
  const s1 = await create(h);
  const s2 = await create(h);
  t.is((await h.request('PUT', `/v1/kv/service/leader?acquire=${s1}`, { body: 'me' })).text, 'true');
  t.is((await h.request('PUT', `/v1/kv/service/leader?acquire=${s2}`, { body: 'you' })).text, 'false');
  const held = ((await h.request('GET', '/v1/kv/service/leader')).json() as Array<Record<string, unknown>>)[0];
  t.like(held, { LockIndex: 1, Session: s1, Value: Buffer.from('me').toString('base64') });
  t.is((await h.request('PUT', `/v1/kv/service/leader?release=${s2}`, { body: '' })).text, 'false');
  t.is((await h.request('PUT', `/v1/kv/service/leader?release=${s1}`, { body: 'bye' })).text, 'true');
  const released = ((await h.request('GET', '/v1/kv/service/leader')).json() as Array<Record<string, unknown>>)[0];
  t.like(released, { LockIndex: 1, Value: Buffer.from('bye').toString('base64') });
  t.false(released !== undefined && 'Session' in released, 'an unheld key shows no Session, as Consul omits it');
  const gone = '6e2a1d3c-5f4b-4a8e-9c7d-0123456789ab';
  const bad = await h.request('PUT', `/v1/kv/other?acquire=${gone}`, { body: 'x' });
  t.is(bad.status, 400);
  t.is(bad.text, `invalid session "${gone}"; nothing was written`);
  t.is((await h.request('GET', '/v1/kv/other')).status, 404);
});

test('session: destroy releases its locks (or deletes them) and is idempotent; renew answers the session or 404', async (t) => {
  const h = await startHarness(t);
  const keep = await create(h);
  const drop = await create(h, '{"Behavior":"delete"}');
  await h.request('PUT', `/v1/kv/a?acquire=${keep}`, { body: '1' });
  await h.request('PUT', `/v1/kv/b?acquire=${drop}`, { body: '2' });
  const renewed = await h.request('PUT', `/v1/session/renew/${keep}`);
  t.is(renewed.status, 200);
  t.is((renewed.json() as Array<{ ID: string }>)[0]?.ID, keep);
  for (const id of [keep, drop, keep]) {
    const d = await h.request('PUT', `/v1/session/destroy/${id}`);
    t.is(d.status, 200);
    t.is(d.text, 'true');
  }
  t.like(((await h.request('GET', '/v1/kv/a')).json() as unknown[])[0], { Key: 'a', LockIndex: 1 });
  t.is((await h.request('GET', '/v1/kv/b')).status, 404, 'the delete session took its key');
  const r = await h.request('PUT', `/v1/session/renew/${keep}`);
  t.is(r.status, 404);
  t.is(r.text, `Session id '${keep}' not found`);
  t.is((await h.request('PUT', '/v1/session/renew/')).status, 400);
  t.is((await h.request('PUT', '/v1/session/destroy/')).text, 'Missing session');
  const before = h.appliedIndex();
  t.is((await h.request('PUT', '/v1/session/destroy/not-a-session')).text, 'true');
  t.is(h.appliedIndex(), before, 'nothing to destroy under a name that is not a session ID');
});

test('session: txn lock, unlock and check-session run with Consul\'s answers', async (t) => {
  const h = await startHarness(t);
  const s1 = await create(h);
  const s2 = await create(h);
  const txn = (ops: unknown[]): ReturnType<Harness['request']> => h.request('PUT', '/v1/txn', { body: JSON.stringify(ops) });
  const ok = await txn([{ KV: { Verb: 'lock', Key: 'l', Value: 'eA==', Session: s1 } }]);
  t.is(ok.status, 200, ok.text);
  const conflict = await txn([{ KV: { Verb: 'lock', Key: 'l', Session: s2 } }]);
  t.is(conflict.status, 409);
  t.deepEqual((conflict.json() as { Errors: unknown }).Errors, [{ OpIndex: 0, What: 'failed to lock key "l", lock is already held' }]);
  const unlocked = await txn([{ KV: { Verb: 'check-session', Key: 'l', Session: '' } }]);
  t.is(unlocked.status, 409, 'an empty session checks that the key is unlocked, as Consul compares them');
  t.deepEqual((unlocked.json() as { Errors: unknown }).Errors, [{ OpIndex: 0, What: `failed session check for key "l", current session "${s1}" != ""` }]);
  const check = await txn([{ KV: { Verb: 'check-session', Key: 'l', Session: s1 } }]);
  t.is(check.status, 200, check.text);
  t.like((check.json() as { Results: Array<{ KV: unknown }> }).Results[0]?.KV, { Key: 'l', Session: s1, LockIndex: 1 });
  t.is((await txn([{ KV: { Verb: 'unlock', Key: 'l', Session: s1 } }])).status, 200);
});

test('session: a blocking list wakes when a session is created, with a higher X-Consul-Index', async (t) => {
  const h = await startHarness(t);
  await create(h);
  const first = await h.request('GET', '/v1/session/list');
  const index = Number(first.headers['x-consul-index']);
  // ?wait=10m: an answer within the bound below can only come from a wake-up, not from the wait ending.
  const blocked = h.request('GET', `/v1/session/list?index=${index}&wait=10m`);
  while (h.server.blockingNow === 0) await new Promise((r) => setTimeout(r, 5));
  await h.request('PUT', '/v1/kv/unrelated', { body: 'x' });
  await new Promise((r) => setTimeout(r, 50));
  t.is(h.server.blockingNow, 1, 'a KV write does not wake a session query');
  const id = await create(h);
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('the blocking list did not wake within 20 s of the create')), 20_000);
  });
  const r = await Promise.race([blocked, bound]).finally(() => clearTimeout(timer));
  t.true(Number(r.headers['x-consul-index']) > index);
  t.true((r.json() as Array<{ ID: string }>).some((s) => s.ID === id));
});
