// PUT /v1/txn over real HTTP against a real FSM: Consul's answers for applied, read-only, failed (409),
// malformed (400) and oversized (413) transactions, case-insensitive field names, and that nothing is
// applied whenever a transaction is refused.

import test from 'ava';
import { b64, startHarness, type Harness } from '../support/http-harness.js';

function txn(h: Harness, ops: unknown, query = ''): ReturnType<Harness['request']> {
  return h.request('PUT', `/v1/txn${query}`, { body: typeof ops === 'string' ? ops : JSON.stringify(ops) });
}

test('txn: a write txn applies atomically and answers 200 {Results, Errors: null} with values blanked', async (t) => {
  const h = await startHarness(t);
  const r = await txn(h, [
    { KV: { Verb: 'set', Key: 'a', Value: b64('1'), Flags: 7 } },
    { KV: { Verb: 'set', Key: 'b', Value: b64('2') } },
    { KV: { Verb: 'delete', Key: 'nothing' } },
  ]);
  t.is(r.status, 200);
  t.is(r.headers['content-type'], 'application/json');
  t.is(r.text,
    '{"Results":[{"KV":{"LockIndex":0,"Key":"a","Flags":7,"Value":null,"CreateIndex":1,"ModifyIndex":1}},' +
    '{"KV":{"LockIndex":0,"Key":"b","Flags":0,"Value":null,"CreateIndex":1,"ModifyIndex":1}}],"Errors":null}');
  t.is(h.appliedIndex(), 1);
  t.like((await h.request('GET', '/v1/kv/a')).json(), [{ Value: b64('1'), Flags: 7 }]);
});

test('txn: a txn of deletes only answers Results: null; delete-tree works', async (t) => {
  const h = await startHarness(t);
  await txn(h, [{ KV: { Verb: 'set', Key: 'p/1', Value: b64('x') } }, { KV: { Verb: 'set', Key: 'p/2', Value: b64('y') } }]);
  const r = await txn(h, [{ KV: { Verb: 'delete-tree', Key: 'p/' } }]);
  t.is(r.status, 200);
  t.is(r.text, '{"Results":null,"Errors":null}');
  t.is((await h.request('GET', '/v1/kv/p/?recurse')).status, 404);
});

test('txn: a read-only txn is served by readTxn (no Raft entry) with values and read headers', async (t) => {
  const h = await startHarness(t);
  await h.request('PUT', '/v1/kv/r/1', { body: 'one' });
  await h.request('PUT', '/v1/kv/r/2', { body: 'two' });
  const before = h.appliedIndex();
  const r = await txn(h, [
    { KV: { Verb: 'get', Key: 'r/1' } },
    { KV: { Verb: 'get-tree', Key: 'r/' } },
    { KV: { Verb: 'check-index', Key: 'r/2', Index: 2 } },
  ], '?stale');
  t.is(r.status, 200);
  const body = r.json() as { Results: Array<{ KV: { Key: string; Value: string | null } }>; Errors: null };
  t.deepEqual(body.Results.map((x) => [x.KV.Key, x.KV.Value]), [['r/1', b64('one')], ['r/1', b64('one')], ['r/2', b64('two')], ['r/2', null]]);
  t.is(body.Errors, null);
  t.is(r.headers['x-consul-knownleader'], 'true');
  t.is(r.headers['x-consul-lastcontact'], '0');
  t.is(r.headers['x-consul-effective-consistency'], 'stale');
  t.is(h.appliedIndex(), before);
  t.is(h.server.applied.length, 2);
});

test('txn: a failing op rolls the whole txn back and answers 409 with Consul\'s errors', async (t) => {
  const h = await startHarness(t);
  await h.request('PUT', '/v1/kv/c', { body: 'v' });
  const r = await txn(h, [
    { KV: { Verb: 'set', Key: 'new', Value: b64('n') } },
    { KV: { Verb: 'cas', Key: 'c', Value: b64('w'), Index: 99 } },
    { KV: { Verb: 'check-not-exists', Key: 'c' } },
  ]);
  t.is(r.status, 409);
  t.is(r.headers['content-type'], 'application/json');
  t.deepEqual(r.json(), {
    Results: null,
    Errors: [
      { OpIndex: 1, What: 'failed to set key "c", index is stale' },
      { OpIndex: 2, What: 'key "c" exists' },
    ],
  });
  t.is((await h.request('GET', '/v1/kv/new')).status, 404);
  t.like((await h.request('GET', '/v1/kv/c')).json(), [{ Value: b64('v') }]);
  const read = await txn(h, [{ KV: { Verb: 'get', Key: 'absent' } }]);
  t.is(read.status, 409);
  t.deepEqual(read.json(), { Results: null, Errors: [{ OpIndex: 0, What: 'key "absent" doesn\'t exist' }] });
});

test('txn: an empty key is Consul\'s pre-check 409 "Must provide key" (delete-tree excepted); nothing applied', async (t) => {
  const h = await startHarness(t);
  const r = await txn(h, [
    { KV: { Verb: 'set', Key: 'ok', Value: b64('v') } },
    { KV: { Verb: 'set', Key: '', Value: b64('v') } },
    { KV: { Verb: 'get-tree' } },
  ]);
  t.is(r.status, 409);
  t.deepEqual(r.json(), { Results: null, Errors: [{ OpIndex: 1, What: 'Must provide key' }, { OpIndex: 2, What: 'Must provide key' }] });
  t.is(h.appliedIndex(), 0);
  t.deepEqual(h.server.applied, []);
});

test('txn: field names match in any case, as Go\'s decoder matches them; unknown fields are ignored', async (t) => {
  const h = await startHarness(t);
  const r = await txn(h, '[{"kv":{"verb":"set","key":"lower","value":"' + b64('l') + '","flags":3,"namespace":"x"}},' +
    '{"Kv":{"VERB":"set","KEY":"upper","VALUE":"' + b64('u') + '"}}]');
  t.is(r.status, 200, r.text);
  t.like((await h.request('GET', '/v1/kv/lower')).json(), [{ Value: b64('l'), Flags: 3 }]);
  t.like((await h.request('GET', '/v1/kv/upper')).json(), [{ Value: b64('u') }]);
  const later = await txn(h, '[{"KV":{"Verb":"set","Key":"first","key":"second","Value":null}}]');
  t.is(later.status, 200);
  t.is((await h.request('GET', '/v1/kv/second')).status, 200);
});

test('txn: malformed bodies are 400 "Failed to parse body: ..." and apply nothing', async (t) => {
  const h = await startHarness(t);
  const cases: Array<[string, RegExp]> = [
    ['', /^Failed to parse body: EOF$/],
    ['[{"KV":', /^Failed to parse body: /],
    ['{"KV":{}}', /^Failed to parse body: expected a JSON array of operations/],
    ['[null]', /^Failed to parse body: operation 0 must be an object/],
    ['[{}]', /^Failed to parse body: operation 0 has no KV member/],
    ['[{"KV":{"Verb":"set","Key":"k","Value":"not base64!"}}]', /^Failed to parse body: operation 0: KV.Value is not valid standard base64/],
    ['[{"KV":{"Verb":"set","Key":"k","Value":"YQ"}}]', /^Failed to parse body: operation 0: KV.Value is not valid standard base64/],
    // Go's texts for a uint64 field (Consul's api.KVTxnOp.Flags).
    ['[{"KV":{"Verb":"set","Key":"k","Flags":-1}}]', /^Failed to parse body: json: cannot unmarshal number -1 into Go struct field KVTxnOp.KV.Flags of type uint64$/],
    ['[{"KV":{"Verb":"set","Key":"k","Flags":18446744073709551616}}]', /^Failed to parse body: json: cannot unmarshal number 18446744073709551616 into Go struct field KVTxnOp.KV.Flags of type uint64$/],
    ['[{"KV":{"Verb":"set","Key":"k","Flags":-18446744073709551615}}]', /^Failed to parse body: json: cannot unmarshal number -18446744073709551615 into Go struct field KVTxnOp.KV.Flags of type uint64$/],
    ['[{"KV":{"Verb":"set","Key":"k","Flags":1.5}}]', /^Failed to parse body: json: cannot unmarshal number 1.5 into Go struct field KVTxnOp.KV.Flags of type uint64$/],
    // Integral values written with a fraction or an exponent: Go refuses them for a uint64 too.
    ['[{"KV":{"Verb":"set","Key":"k","Flags":5.0}}]', /^Failed to parse body: json: cannot unmarshal number 5.0 into Go struct field KVTxnOp.KV.Flags of type uint64$/],
    ['[{"KV":{"Verb":"set","Key":"k","Flags":1e2}}]', /^Failed to parse body: json: cannot unmarshal number 1e2 into Go struct field KVTxnOp.KV.Flags of type uint64$/],
    ['[{"KV":{"Verb":"cas","Key":"k","Index":3.0}}]', /^Failed to parse body: json: cannot unmarshal number 3.0 into Go struct field KVTxnOp.KV.Index of type uint64$/],
    ['[{"KV":{"Verb":1.5,"Key":"k"}}]', /^Failed to parse body: operation 0: KV.Verb must be a string, got the number 1.5$/],
    ['[{"KV":{"Verb":"set","Key":"k","Flags":"5"}}]', /^Failed to parse body: json: cannot unmarshal string into Go struct field KVTxnOp.KV.Flags of type uint64$/],
    // Index is a uint64 too (Consul's api.KVTxnOp.Index), with Go's texts.
    ['[{"KV":{"Verb":"cas","Key":"k","Index":18446744073709551616}}]', /^Failed to parse body: json: cannot unmarshal number 18446744073709551616 into Go struct field KVTxnOp.KV.Index of type uint64$/],
    ['[{"KV":{"Verb":"cas","Key":"k","Index":-1}}]', /^Failed to parse body: json: cannot unmarshal number -1 into Go struct field KVTxnOp.KV.Index of type uint64$/],
    ['[{"KV":{"Verb":"cas","Key":"k","Index":-0}}]', /^Failed to parse body: json: cannot unmarshal number -0 into Go struct field KVTxnOp.KV.Index of type uint64$/],
    ['[{"KV":{"Verb":"set","Key":"k","Flags":-0}}]', /^Failed to parse body: json: cannot unmarshal number -0 into Go struct field KVTxnOp.KV.Flags of type uint64$/],
    ['[{"KV":{"Verb":"cas","Key":"k","Index":"3"}}]', /^Failed to parse body: json: cannot unmarshal string into Go struct field KVTxnOp.KV.Index of type uint64$/],
    ['[{"KV":{"Verb":"set","Key":7}}]', /^Failed to parse body: operation 0: KV.Key must be a string/],
    ['[{"KV":{"Verb":"set","Key":"\\ud800"}}]', /lone UTF-16 surrogate/],
    ['[{"KV":{"Verb":"set","Key":"a"}},{"KV":{"Verb":"frob","Key":"k"}}]', /^Failed to parse body: operation 1: unknown KV verb "frob"/],
    ['[{"KV":{"Verb":"set","Key":"a"}}] trailing', /^Failed to parse body: /],
    ['[{"Node":{"Verb":"set","Node":{"Node":"n"}}}]', /^operation 0: Node operations are not implemented in Conclave yet/],
    ['[{"KV":{"Verb":"lock","Key":"k","Session":"s1"}}]', /^invalid session "s1": operation 0 \(lock on key "k"\) names no session ID \(a UUID\); nothing was written$/],
    ['[{"KV":{"Verb":"check-session","Key":"k","Session":"x"}}]', /^invalid session "x": operation 0 \(check-session on key "k"\) names no session ID/],
  ];
  for (const [body, expected] of cases) {
    const r = await txn(h, body);
    t.is(r.status, 400, body);
    t.regex(r.text, expected, body);
  }
  t.is(h.appliedIndex(), 0);
  t.deepEqual(h.server.applied, []);
});

test('txn: an empty list (or null) answers 200 with nothing in it', async (t) => {
  const h = await startHarness(t);
  for (const body of ['[]', 'null']) {
    const r = await txn(h, body);
    t.is(r.status, 200);
    t.is(r.text, '{"Results":null,"Errors":null}');
  }
});

test('txn: 128 operations are accepted, 129 are Consul\'s 413', async (t) => {
  const h = await startHarness(t);
  const ops = (n: number): unknown[] => Array.from({ length: n }, (_, i) => ({ KV: { Verb: 'set', Key: `k${i}`, Value: b64('v') } }));
  const tooMany = await txn(h, ops(129));
  t.is(tooMany.status, 413);
  t.is(tooMany.text, 'Transaction contains too many operations (129 > 128)');
  t.is(h.appliedIndex(), 0);
  const ok = await txn(h, ops(128));
  t.is(ok.status, 200);
  t.is((ok.json() as { Results: unknown[] }).Results.length, 128);
});

test('txn: a body over the limit and a value over kv_max_value_size are Consul\'s 413s', async (t) => {
  const h = await startHarness(t, { limits: { kvMaxValueBytes: 16 } });
  const limit = 512 * 1024;
  const huge = JSON.stringify([{ KV: { Verb: 'set', Key: 'k', Value: b64('x'.repeat(limit)) } }]);
  const big = await txn(h, huge);
  t.is(big.status, 413);
  t.is(big.text, `Request body(${Buffer.byteLength(huge)} bytes) too large, max size: ${limit} bytes. ` +
    'See https://www.consul.io/docs/agent/config/config-files#txn_max_req_len.');
  const value = await txn(h, [{ KV: { Verb: 'set', Key: 'k"q', Value: b64('x'.repeat(17)) } }]);
  t.is(value.status, 413);
  t.is(value.text, 'Value for key "k\\"q" is too large (17 > 16 bytes)');
  t.is(h.appliedIndex(), 0);
});

test('txn: ?dc other than the local one is refused; ?stale with ?consistent is refused for read-only txns', async (t) => {
  const h = await startHarness(t);
  const w = await txn(h, [{ KV: { Verb: 'set', Key: 'k', Value: b64('v') } }], '?dc=elsewhere');
  t.is(w.status, 400);
  t.is(w.text, 'No path to datacenter');
  const r = await txn(h, [{ KV: { Verb: 'get', Key: 'k' } }], '?stale&consistent');
  t.is(r.status, 400);
  t.is(r.text, 'Cannot specify ?stale with ?consistent, conflicting semantics.');
  t.is(h.appliedIndex(), 0);
});

test('txn: without a leader a write txn is Consul\'s 500 "No cluster leader"', async (t) => {
  const h = await startHarness(t);
  h.server.leaderless = true;
  const r = await txn(h, [{ KV: { Verb: 'set', Key: 'k', Value: b64('v') } }]);
  t.is(r.status, 500);
  t.is(r.text, 'No cluster leader');
  t.is(h.appliedIndex(), 0);
});

test('txn: Flags take Consul\'s whole uint64 range, exact in set, cas, get and get-tree results', async (t) => {
  const h = await startHarness(t);
  const values = ['0', '9007199254740991', '9007199254740992', '9007199254740993', '9223372036854775808', '18446744073709551615'];
  const body = `[${values.map((f, i) => `{"KV":{"Verb":"set","Key":"t/${i}","Value":null,"Flags":${f}}}`).join(',')}]`;
  const w = await txn(h, body);
  t.is(w.status, 200, w.text);
  t.is(w.text, `{"Results":[${values.map((f, i) => `{"KV":{"LockIndex":0,"Key":"t/${i}","Flags":${f},"Value":null,"CreateIndex":1,"ModifyIndex":1}}`).join(',')}],"Errors":null}`);
  for (const [i, f] of values.entries()) t.regex((await h.request('GET', `/v1/kv/t/${i}`)).text, new RegExp(`"Flags":${f},`));
  // A read-only txn prints them exactly too.
  const read = await txn(h, '[{"KV":{"Verb":"get-tree","Key":"t/"}},{"KV":{"Verb":"get","Key":"t/5"}}]');
  t.is(read.status, 200);
  t.deepEqual([...read.text.matchAll(/"Flags":([0-9]+)/g)].map((m) => m[1]), [...values, '18446744073709551615']);
  // cas with a big Flags, Index and Flags in any case; a ?pretty answer keeps the digits too.
  const cas = await txn(h, '[{"KV":{"Verb":"cas","Key":"t/5","Index":1,"flags":18446744073709551614,"Value":"eQ=="}}]', '?pretty');
  t.is(cas.status, 200, cas.text);
  t.regex(cas.text, /\n {16}"Flags": 18446744073709551614,\n/);
  t.regex((await h.request('GET', '/v1/kv/t/5')).text, /"Flags":18446744073709551614,"Value":"eQ==","CreateIndex":1,"ModifyIndex":2\}/);
  // A string holding 16 digits is still a string (the exact reader runs, and must read strings as strings).
  const key = await txn(h, '[{"KV":{"Verb":"set","Key":"1234567890123456789","Value":"eg==","Flags":100}}]');
  t.is(key.status, 200, key.text);
  t.regex((await h.request('GET', '/v1/kv/1234567890123456789')).text, /"Key":"1234567890123456789","Flags":100,/);
});

test('txn: an Index above 2^53-1 is taken whole and matches no entry: cas, delete-cas and check-index fail as stale, with the digits in the error', async (t) => {
  const h = await startHarness(t);
  t.is((await txn(h, [{ KV: { Verb: 'set', Key: 'k', Value: b64('v') } }])).status, 200);
  const big = '18446744073709551615';
  const cases: Array<[string, string]> = [
    [`{"KV":{"Verb":"cas","Key":"k","Index":${big},"Value":"eA=="}}`, 'failed to set key \\"k\\", index is stale'],
    [`{"KV":{"Verb":"delete-cas","Key":"k","Index":${big}}}`, 'failed to delete key \\"k\\", index is stale'],
    [`{"KV":{"Verb":"check-index","Key":"k","Index":${big}}}`, `failed index check for key \\"k\\", current modify index 1 != ${big}`],
    ['{"KV":{"Verb":"check-index","Key":"k","Index":9007199254740992}}', 'failed index check for key \\"k\\", current modify index 1 != 9007199254740992'],
  ];
  for (const [op, what] of cases) {
    const r = await txn(h, `[${op}]`);
    t.is(r.status, 409, op);
    t.is(r.text, `{"Results":null,"Errors":[{"OpIndex":0,"What":"${what}"}]}`, op);
  }
  // Nothing was written: the entry is as the first set left it.
  t.regex((await h.request('GET', '/v1/kv/k')).text, /"Value":"dg==","CreateIndex":1,"ModifyIndex":1\}/);
});
