// GET|PUT|DELETE /v1/kv over real HTTP against a real FSM (test/support/local-server.ts): Consul's
// JSON shapes byte for byte, headers, parameters, status codes and texts, blocking queries, and that
// every refused request changes nothing.

import test from 'ava';
import { b64, startHarness, type Harness } from '../support/http-harness.js';

async function put(h: Harness, path: string, body = ''): Promise<void> {
  const r = await h.request('PUT', path, { body });
  if (r.status !== 200 || r.text !== 'true') throw new Error(`PUT ${path}: ${r.status} ${r.text}`);
}

test('kv: PUT then GET gives Consul\'s DirEntry JSON, field for field and in order', async (t) => {
  const h = await startHarness(t);
  const w = await h.request('PUT', '/v1/kv/app/config', { body: 'hello', headers: { 'content-type': 'text/plain; charset=utf-8' } });
  t.is(w.status, 200);
  t.is(w.text, 'true');
  t.is(w.headers['content-type'], 'application/json');
  const r = await h.request('GET', '/v1/kv/app/config');
  t.is(r.status, 200);
  t.is(r.headers['content-type'], 'application/json');
  t.is(r.text, '[{"LockIndex":0,"Key":"app/config","Flags":0,"Value":"aGVsbG8=","CreateIndex":1,"ModifyIndex":1}]');
  t.is(r.headers['x-consul-index'], '1');
  t.is(r.headers['x-consul-knownleader'], 'true');
  t.is(r.headers['x-consul-lastcontact'], '0');
  t.is(r.headers['x-consul-effective-consistency'], 'leader');
});

test('kv: an empty body stores an empty value, shown as null; a second write moves ModifyIndex only', async (t) => {
  const h = await startHarness(t);
  await put(h, '/v1/kv/empty');
  await put(h, '/v1/kv/empty', 'now set');
  const r = await h.request('GET', '/v1/kv/empty');
  t.deepEqual(r.json(), [{ LockIndex: 0, Key: 'empty', Flags: 0, Value: b64('now set'), CreateIndex: 1, ModifyIndex: 2 }]);
  await put(h, '/v1/kv/e2');
  t.is((await h.request('GET', '/v1/kv/e2')).text, '[{"LockIndex":0,"Key":"e2","Flags":0,"Value":null,"CreateIndex":3,"ModifyIndex":3}]');
});

test('kv: a missing key is a 404 with an empty body and the X-Consul-* headers', async (t) => {
  const h = await startHarness(t);
  await put(h, '/v1/kv/a', '1');
  await put(h, '/v1/kv/b', '2');
  const r = await h.request('GET', '/v1/kv/missing');
  t.is(r.status, 404);
  t.is(r.text, '');
  t.is(r.headers['x-consul-index'], '2');
  t.is(r.headers['x-consul-knownleader'], 'true');
  t.is(r.headers['x-consul-lastcontact'], '0');
  const empty = await h.request('GET', '/v1/kv/nothing?recurse');
  t.is(empty.status, 404);
  t.is(empty.headers['x-consul-index'], '2');
});

test('kv: ?raw answers the exact bytes with Consul\'s raw headers', async (t) => {
  const h = await startHarness(t);
  const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  t.is((await h.request('PUT', '/v1/kv/bin', { body: bytes })).text, 'true');
  const r = await h.request('GET', '/v1/kv/bin?raw');
  t.is(r.status, 200);
  t.deepEqual(r.body, bytes);
  t.is(r.headers['content-type'], 'text/plain');
  t.is(r.headers['x-content-type-options'], 'nosniff');
  t.is(r.headers['content-security-policy'], 'sandbox');
  t.is(r.headers['x-consul-index'], '1');
  t.deepEqual((await h.request('GET', '/v1/kv/bin?raw=true')).body, bytes);
  const json = (await h.request('GET', '/v1/kv/bin')).json() as Array<{ Value: string }>;
  t.deepEqual(Buffer.from(json[0]?.Value ?? '', 'base64'), bytes);
});

test('kv: ?flags is stored and returned; a malformed ?flags is a 400 with strconv\'s text that writes nothing', async (t) => {
  const h = await startHarness(t);
  await put(h, '/v1/kv/f?flags=42', 'x');
  t.like((await h.request('GET', '/v1/kv/f')).json(), [{ Flags: 42 }]);
  const refused: Array<[string, string]> = [
    ['abc', 'strconv.ParseUint: parsing "abc": invalid syntax'],
    ['-1', 'strconv.ParseUint: parsing "-1": invalid syntax'],
    ['%2B1', 'strconv.ParseUint: parsing "+1": invalid syntax'],
    ['1.5', 'strconv.ParseUint: parsing "1.5": invalid syntax'],
    ['1e3', 'strconv.ParseUint: parsing "1e3": invalid syntax'],
    ['', 'strconv.ParseUint: parsing "": invalid syntax'],
    ['18446744073709551616', 'strconv.ParseUint: parsing "18446744073709551616": value out of range'],
    ['99999999999999999999999', 'strconv.ParseUint: parsing "99999999999999999999999": value out of range'],
    // Go reads left to right: the overflow comes before the letter.
    ['99999999999999999999x', 'strconv.ParseUint: parsing "99999999999999999999x": value out of range'],
    ['1x', 'strconv.ParseUint: parsing "1x": invalid syntax'],
  ];
  for (const [bad, text] of refused) {
    const r = await h.request('PUT', `/v1/kv/f?flags=${bad}`, { body: 'y' });
    t.is(r.status, 400, bad);
    t.is(r.text, text);
  }
  t.is(h.appliedIndex(), 1);
  t.like((await h.request('GET', '/v1/kv/f')).json(), [{ Flags: 42, Value: b64('x') }]);
});

test('kv: ?flags takes Consul\'s whole uint64 range, and GET prints every digit as a JSON number', async (t) => {
  const h = await startHarness(t);
  const values = ['0', '9007199254740991', '9007199254740992', '9007199254740993', '9223372036854775808', '18446744073709551615'];
  for (const [i, flags] of values.entries()) {
    await put(h, `/v1/kv/f${i}?flags=${flags}`, 'x');
    t.is((await h.request('GET', `/v1/kv/f${i}`)).text,
      `[{"LockIndex":0,"Key":"f${i}","Flags":${flags},"Value":"eA==","CreateIndex":${i + 1},"ModifyIndex":${i + 1}}]`);
  }
  // Leading zeros are read as Go reads them.
  await put(h, '/v1/kv/z?flags=0018446744073709551615', 'x');
  t.regex((await h.request('GET', '/v1/kv/z')).text, /"Flags":18446744073709551615,/);
  const list = await h.request('GET', '/v1/kv/f?recurse');
  t.deepEqual([...list.text.matchAll(/"Flags":([0-9]+)/g)].map((m) => m[1]), values);
  const pretty = await h.request('GET', '/v1/kv/f5?pretty');
  t.is(pretty.text, [
    '[', '    {', '        "LockIndex": 0,', '        "Key": "f5",', '        "Flags": 18446744073709551615,', '        "Value": "eA==",',
    '        "CreateIndex": 6,', '        "ModifyIndex": 6', '    }', ']', '',
  ].join('\n'));
  // Setting the same flags again is an unchanged set: nothing is written, ModifyIndex stays.
  await put(h, '/v1/kv/f5?flags=18446744073709551615', 'x');
  t.regex((await h.request('GET', '/v1/kv/f5')).text, /"Flags":18446744073709551615,"Value":"eA==","CreateIndex":6,"ModifyIndex":6\}/);
  await put(h, '/v1/kv/f5?flags=18446744073709551614', 'x');
  t.regex((await h.request('GET', '/v1/kv/f5')).text, /"Flags":18446744073709551614,.*"ModifyIndex":9\}/);
});

test('kv: ?cas=0 creates only; ?cas=<ModifyIndex> succeeds once; a stale index answers false and writes nothing', async (t) => {
  const h = await startHarness(t);
  t.is((await h.request('PUT', '/v1/kv/c?cas=0', { body: 'v1' })).text, 'true');
  t.is((await h.request('PUT', '/v1/kv/c?cas=0', { body: 'v2' })).text, 'false');
  t.is((await h.request('PUT', '/v1/kv/c?cas=1', { body: 'v3' })).text, 'true');
  const stale = await h.request('PUT', '/v1/kv/c?cas=1', { body: 'v4' });
  t.is(stale.status, 200);
  t.is(stale.text, 'false');
  t.is(stale.headers['content-type'], 'application/json');
  t.like((await h.request('GET', '/v1/kv/c')).json(), [{ Value: b64('v3'), CreateIndex: 1, ModifyIndex: 3 }]);
});

test('kv: ?cas takes Consul\'s whole uint64 range: above 2^53-1 it matches no entry (false); above 2^64-1 it is strconv\'s 400', async (t) => {
  const h = await startHarness(t);
  await put(h, '/v1/kv/c', 'v1');
  for (const cas of ['9007199254740992', '9223372036854775808', '18446744073709551615']) {
    const p = await h.request('PUT', `/v1/kv/c?cas=${cas}`, { body: 'v2' });
    t.is(p.status, 200, cas);
    t.is(p.text, 'false', cas);
    const d = await h.request('DELETE', `/v1/kv/c?cas=${cas}`);
    t.is(d.status, 200, cas);
    t.is(d.text, 'false', cas);
    // Nor on a missing key: only ?cas=0 creates.
    t.is((await h.request('PUT', `/v1/kv/missing?cas=${cas}`, { body: 'v' })).text, 'false', cas);
  }
  t.like((await h.request('GET', '/v1/kv/c')).json(), [{ Value: b64('v1'), ModifyIndex: 1 }]);
  t.is((await h.request('GET', '/v1/kv/missing')).status, 404);
  const applied = h.appliedIndex();
  for (const [cas, why] of [['18446744073709551616', 'value out of range'], ['-1', 'invalid syntax'], ['1e3', 'invalid syntax'], ['', 'invalid syntax']]) {
    const r = await h.request('PUT', `/v1/kv/c?cas=${cas}`, { body: 'v3' });
    t.is(r.status, 400, cas);
    t.is(r.text, `strconv.ParseUint: parsing "${cas}": ${why}`, cas);
  }
  t.is(h.appliedIndex(), applied, 'a refused ?cas changes nothing');
});

test('kv: ?recurse lists the prefix in key order; X-Consul-Index is the highest ModifyIndex under it', async (t) => {
  const h = await startHarness(t);
  await put(h, '/v1/kv/web/b', 'b');
  await put(h, '/v1/kv/web/a', 'a');
  await put(h, '/v1/kv/other', 'o');
  const r = await h.request('GET', '/v1/kv/web/?recurse');
  t.is(r.status, 200);
  t.deepEqual((r.json() as Array<{ Key: string }>).map((e) => e.Key), ['web/a', 'web/b']);
  t.is(r.headers['x-consul-index'], '2');
  const all = await h.request('GET', '/v1/kv/?recurse=1');
  t.deepEqual((all.json() as Array<{ Key: string }>).map((e) => e.Key), ['other', 'web/a', 'web/b']);
  t.is(all.headers['x-consul-index'], '3');
});

test('kv: ?keys lists keys, ?separator folds them, the misspelt ?seperator works, the empty root is []', async (t) => {
  const h = await startHarness(t);
  const root = await h.request('GET', '/v1/kv/?keys');
  t.is(root.status, 200);
  t.is(root.text, '[]');
  for (const k of ['a/1', 'a/2', 'a/b/3', 'c']) await put(h, `/v1/kv/${k}`, 'v');
  t.deepEqual((await h.request('GET', '/v1/kv/?keys')).json(), ['a/1', 'a/2', 'a/b/3', 'c']);
  t.deepEqual((await h.request('GET', '/v1/kv/?keys&separator=/')).json(), ['a/', 'c']);
  t.deepEqual((await h.request('GET', '/v1/kv/a/?keys=true&separator=%2F')).json(), ['a/1', 'a/2', 'a/b/']);
  t.deepEqual((await h.request('GET', '/v1/kv/a/?keys&seperator=/')).json(), ['a/1', 'a/2', 'a/b/']);
  const none = await h.request('GET', '/v1/kv/zzz?keys');
  t.is(none.status, 404);
  t.is(none.headers['x-consul-index'], '4');
});

test('kv: DELETE, DELETE ?cas and DELETE ?recurse answer as Consul and delete what they name', async (t) => {
  const h = await startHarness(t);
  for (const k of ['t/a', 't/b', 'tx', 'u']) await put(h, `/v1/kv/${k}`, 'v');
  t.is((await h.request('DELETE', '/v1/kv/u?cas=1')).text, 'false');
  t.is((await h.request('GET', '/v1/kv/u')).status, 200);
  t.is((await h.request('DELETE', '/v1/kv/u?cas=4')).text, 'true');
  t.is((await h.request('GET', '/v1/kv/u')).status, 404);
  t.is((await h.request('DELETE', '/v1/kv/missing')).text, 'true');
  const tree = await h.request('DELETE', '/v1/kv/t/?recurse');
  t.is(tree.status, 200);
  t.is(tree.text, 'true');
  t.deepEqual((await h.request('GET', '/v1/kv/?keys')).json(), ['tx']);
});

test('kv: keys are percent-decoded once, whichever way the client encoded them', async (t) => {
  const h = await startHarness(t);
  await put(h, '/v1/kv/app%2Fconfig%20one', 'node-consul style');
  const r = await h.request('GET', '/v1/kv/app/config%20one');
  t.like(r.json(), [{ Key: 'app/config one', Value: b64('node-consul style') }]);
  await put(h, '/v1/kv/caf%C3%A9/%E2%9C%93+plus', 'utf8');
  t.like((await h.request('GET', '/v1/kv/caf%C3%A9%2F%E2%9C%93%2Bplus')).json(), [{ Key: 'café/✓+plus' }]);
  t.is((await h.request('GET', '/v1/kv/%25literal')).status, 404);
  for (const bad of ['/v1/kv/bad%zz', '/v1/kv/bad%C3', '/v1/kv/x?flags=%zz']) {
    const b = await h.request('PUT', bad, { body: 'v' });
    t.is(b.status, 400, bad);
  }
  t.is(h.appliedIndex(), 2);
});

test('kv: an empty key is Consul\'s 400 "Missing key name" for GET, PUT and DELETE', async (t) => {
  const h = await startHarness(t);
  for (const [method, path] of [['GET', '/v1/kv/'], ['PUT', '/v1/kv/'], ['DELETE', '/v1/kv/']] as const) {
    const r = await h.request(method, path, { body: 'v' });
    t.is(r.status, 400, `${method} ${path}`);
    t.is(r.text, 'Missing key name');
    t.is(r.headers['content-type'], 'text/plain; charset=utf-8');
  }
  // "/v1/kv" is not registered, "/v1/kv/" is: Go's ServeMux redirects to it, query kept.
  const r = await h.request('PUT', '/v1/kv?cas=0', { body: 'v' });
  t.is(r.status, 301);
  t.is(r.headers['location'], '/v1/kv/?cas=0');
  t.is(h.appliedIndex(), 0);
});

test('kv: conflicting flags answer Consul\'s 400 with the encoded query, and change nothing', async (t) => {
  const h = await startHarness(t);
  await put(h, '/v1/kv/k', 'v');
  const p = await h.request('PUT', '/v1/kv/k?cas=0&acquire=abc', { body: 'x' });
  t.is(p.status, 400);
  t.is(p.text, 'Conflicting flags: acquire=abc&cas=0\n');
  const d = await h.request('DELETE', '/v1/kv/k?recurse&cas=1&token=a%20b');
  t.is(d.status, 400);
  t.is(d.text, 'Conflicting flags: cas=1&recurse=&token=a+b\n');
  t.is(h.appliedIndex(), 1);
  t.is((await h.request('GET', '/v1/kv/k')).status, 200);
});

test('kv: ?acquire and ?release of a missing or malformed session are Consul\'s texts as 400s, before anything is proposed', async (t) => {
  const h = await startHarness(t);
  const a = await h.request('PUT', '/v1/kv/lock?acquire=abc', { body: 'v' });
  t.is(a.status, 400);
  t.is(a.text, 'invalid session "abc": ?acquire on key "lock" names no session ID (a UUID); nothing was written');
  const r = await h.request('PUT', '/v1/kv/lock?release=', { body: 'v' });
  t.is(r.status, 400);
  t.true(r.text.startsWith('missing session: '), r.text);
  t.is(h.appliedIndex(), 0);
  t.deepEqual(h.server.applied, []);
});

test('kv: ?stale with ?consistent, a bad ?wait or a bad ?index are Consul\'s 400s, on reads and writes alike', async (t) => {
  const h = await startHarness(t);
  const cases: Array<[string, string, string]> = [
    ['GET', '/v1/kv/k?stale&consistent', 'Cannot specify ?stale with ?consistent, conflicting semantics.'],
    ['PUT', '/v1/kv/k?stale=1&consistent=1', 'Cannot specify ?stale with ?consistent, conflicting semantics.'],
    ['GET', '/v1/kv/k?index=1&wait=10', 'Invalid wait time'],
    ['GET', '/v1/kv/k?index=1&wait=abc', 'Invalid wait time'],
    ['PUT', '/v1/kv/k?wait=5x', 'Invalid wait time'],
    ['GET', '/v1/kv/k?index=-1', 'Invalid index'],
    ['GET', '/v1/kv/k?index=1e3', 'Invalid index'],
    ['DELETE', '/v1/kv/k?index=99999999999999999999', 'Invalid index'],
    ['GET', '/v1/kv/k?max_stale=soon', 'Invalid max_stale value "soon"'],
  ];
  for (const [method, path, text] of cases) {
    const r = await h.request(method, path, { body: 'v' });
    t.is(r.status, 400, `${method} ${path}`);
    t.is(r.text, text, `${method} ${path}`);
  }
  t.is(h.appliedIndex(), 0);
});

test('kv: ?stale and ?consistent are passed on and reported in X-Consul-Effective-Consistency', async (t) => {
  const h = await startHarness(t);
  await put(h, '/v1/kv/k', 'v');
  t.is((await h.request('GET', '/v1/kv/k?stale')).headers['x-consul-effective-consistency'], 'stale');
  t.is((await h.request('GET', '/v1/kv/k?consistent=')).headers['x-consul-effective-consistency'], 'consistent');
  t.is((await h.request('GET', '/v1/kv/k?max_stale=5s')).headers['x-consul-effective-consistency'], 'stale');
  t.is((await h.request('GET', '/v1/kv/k?leader')).headers['x-consul-effective-consistency'], 'leader');
});

test('kv: an explicit false on a presence flag is refused rather than read as true; nothing is deleted', async (t) => {
  const h = await startHarness(t);
  await put(h, '/v1/kv/tree/a', 'v');
  await put(h, '/v1/kv/tree/b', 'v');
  const r = await h.request('DELETE', '/v1/kv/tree/?recurse=false');
  t.is(r.status, 400);
  t.regex(r.text, /^\?recurse=false is ambiguous/);
  t.is((await h.request('GET', '/v1/kv/tree/a?raw=0')).status, 400);
  t.deepEqual((await h.request('GET', '/v1/kv/?keys')).json(), ['tree/a', 'tree/b']);
});

test('kv: ?dc names the local datacenter or gets Consul\'s unknown-datacenter text; tokens are accepted', async (t) => {
  const h = await startHarness(t);
  await put(h, '/v1/kv/k?dc=dc1&token=secret', 'v');
  t.is((await h.request('GET', '/v1/kv/k', { headers: { 'X-Consul-Token': 'secret' } })).status, 200);
  const other = await h.request('PUT', '/v1/kv/k?dc=dc2', { body: 'changed' });
  t.is(other.status, 400);
  t.is(other.text, 'No path to datacenter');
  t.is((await h.request('GET', '/v1/kv/k?dc=DC1')).text, 'No path to datacenter');
  t.like((await h.request('GET', '/v1/kv/k')).json(), [{ Value: b64('v'), ModifyIndex: 1 }]);
});

test('kv: a value over 512 KiB is Consul\'s 413, by Content-Length or by counting a chunked body; 512 KiB fits', async (t) => {
  const h = await startHarness(t);
  const limit = 512 * 1024;
  const big = Buffer.alloc(limit + 1, 0x61);
  const declared = await h.request('PUT', '/v1/kv/big', { body: big });
  t.is(declared.status, 413);
  t.is(declared.text,
    'Request body(524289 bytes) too large, max size: 524288 bytes. See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.');
  t.is(declared.headers['connection'], 'close');
  const chunked = await h.request('PUT', '/v1/kv/big', { body: big, chunkedPieceBytes: 64 * 1024 });
  t.is(chunked.status, 413);
  t.is(chunked.text, 'Request body too large, max size: 524288 bytes. See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.');
  t.is(h.appliedIndex(), 0);
  t.is((await h.request('GET', '/v1/kv/big')).status, 404);
  t.is((await h.request('PUT', '/v1/kv/big', { body: big.subarray(0, limit) })).text, 'true');
  t.is((await h.request('GET', '/v1/kv/big?raw')).body.length, limit);
});

test('kv: a blocking GET returns when the key changes, with a higher X-Consul-Index', async (t) => {
  const h = await startHarness(t);
  await put(h, '/v1/kv/watched', 'v1');
  const first = await h.request('GET', '/v1/kv/watched');
  const index = first.headers['x-consul-index'];
  t.is(index, '1');
  const blocked = h.request('GET', `/v1/kv/watched?index=${index}&wait=30s`);
  while (h.server.blockingNow === 0) await new Promise((r) => setTimeout(r, 5));
  await put(h, '/v1/kv/unrelated', 'x');
  await put(h, '/v1/kv/watched', 'v2');
  const r = await blocked;
  t.is(r.status, 200);
  t.is(r.headers['x-consul-index'], '3');
  t.like(r.json(), [{ Value: b64('v2') }]);
});

test('kv: a blocking GET with nothing changing answers at ?wait with the same index; ?recurse and ?keys block too', async (t) => {
  const h = await startHarness(t);
  await put(h, '/v1/kv/dir/a', 'v');
  const timedOut = await h.request('GET', '/v1/kv/dir/a?index=1&wait=200ms');
  t.is(timedOut.status, 200);
  t.is(timedOut.headers['x-consul-index'], '1');
  const missing = await h.request('GET', '/v1/kv/nope?index=1&wait=100ms');
  t.is(missing.status, 404);
  t.is(missing.headers['x-consul-index'], '1');
  const list = h.request('GET', '/v1/kv/dir/?recurse&index=1&wait=30s');
  const keys = h.request('GET', '/v1/kv/dir/?keys&index=1&wait=30s');
  while (h.server.blockingNow < 2) await new Promise((r) => setTimeout(r, 5));
  await put(h, '/v1/kv/dir/b', 'v');
  t.is((await list).headers['x-consul-index'], '2');
  t.deepEqual((await keys).json(), ['dir/a', 'dir/b']);
});

test('kv: without a leader, writes and default reads are Consul\'s 500 "No cluster leader"; ?stale still answers', async (t) => {
  const h = await startHarness(t);
  await put(h, '/v1/kv/k', 'v');
  h.server.leaderless = true;
  const w = await h.request('PUT', '/v1/kv/k', { body: 'x' });
  t.is(w.status, 500);
  t.is(w.text, 'No cluster leader');
  const r = await h.request('GET', '/v1/kv/k');
  t.is(r.status, 500);
  t.is(r.text, 'No cluster leader');
  const s = await h.request('GET', '/v1/kv/k?stale');
  t.is(s.status, 200);
  t.is(s.headers['x-consul-knownleader'], 'false');
  t.like(s.json(), [{ Value: b64('v') }]);
});

test('kv: ?pretty indents like Consul, and JSON escapes <, > and & as Go does', async (t) => {
  const h = await startHarness(t);
  await put(h, '/v1/kv/a%3Cb%3E%26c', 'v');
  const compact = await h.request('GET', '/v1/kv/a%3Cb%3E%26c');
  t.is(compact.text, '[{"LockIndex":0,"Key":"a\\u003cb\\u003e\\u0026c","Flags":0,"Value":"dg==","CreateIndex":1,"ModifyIndex":1}]');
  const pretty = await h.request('GET', '/v1/kv/a%3Cb%3E%26c?pretty');
  t.is(pretty.text, '[\n    {\n        "LockIndex": 0,\n        "Key": "a\\u003cb\\u003e\\u0026c",\n        "Flags": 0,\n' +
    '        "Value": "dg==",\n        "CreateIndex": 1,\n        "ModifyIndex": 1\n    }\n]\n');
});
