// The messages servers send each other (src/server/protocol.ts): each operation's message round-trips
// as the same typed value, and a malformed one is refused with an error naming the field, never cast.

import test from 'ava';
import { encode } from '@msgpack/msgpack';
import {
  decodeApplyResult,
  decodeDone,
  decodeForwardedRead,
  decodeHello,
  decodeOperatorCall,
  decodeReadCall,
  decodeReadIndexReply,
  decodeReadReply,
  decodeMembers,
  decodeSessions,
  encodeApplyResult,
  encodeMembers,
  encodeSessions,
  encodeDone,
  encodeForwardedRead,
  encodeHello,
  encodeOperatorCall,
  encodeReadIndexCall,
  encodeReadIndexReply,
  encodeReadReply,
  ProtocolError,
  type ForwardedRead,
  type OperatorCall,
} from '../../src/server/protocol.js';

const options = { consistency: 'default', minIndex: 0, waitMs: 0 } as const;
const entry = { Key: 'k', Flags: 7, Value: new Uint8Array([1, 2]), CreateIndex: 3, ModifyIndex: 4, LockIndex: 0, Session: '' };
const meta = { index: 4, knownLeader: true, lastContactMs: 0, consistency: 'default' } as const;

function refusal<T>(d: { ok: true; value: T } | { ok: false; error: ProtocolError }): string {
  if (d.ok) throw new Error(`accepted: ${JSON.stringify(d.value, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`);
  if (!(d.error instanceof ProtocolError)) throw new Error('not a ProtocolError');
  return d.error.message;
}

test('every forwarded read and operator call round-trips as the same typed message', (t) => {
  const reads: ForwardedRead[] = [
    { query: { op: 'kv-get', key: 'a/b' }, options },
    { query: { op: 'kv-list', prefix: 'a/' }, options: { consistency: 'consistent', minIndex: 9, waitMs: 5000 } },
    { query: { op: 'kv-keys', prefix: '', separator: '/' }, options: { consistency: 'stale', minIndex: 0, waitMs: 0 } },
    {
      query: { op: 'kv-txn', ops: [{ verb: 'get', key: 'a' }, { verb: 'get-tree', prefix: 'p/' }, { verb: 'check-index', key: 'a', index: 3 }] },
      options,
    },
    // A check-index takes Consul's whole uint64 (a bigint from 2^53), forwarded exactly.
    {
      query: { op: 'kv-txn', ops: [{ verb: 'check-index', key: 'a', index: 2n ** 53n }, { verb: 'check-index', key: 'b', index: 2n ** 64n - 1n }] },
      options,
    },
    { query: { op: 'kv-txn', ops: [{ verb: 'check-session', key: 'l', session: '6e2a1d3c-5f4b-4a8e-9c7d-0123456789ab' }] }, options },
    { query: { op: 'session-info', id: '6e2a1d3c-5f4b-4a8e-9c7d-0123456789ab' }, options },
    { query: { op: 'session-list', node: '' }, options: { consistency: 'consistent', minIndex: 3, waitMs: 1000 } },
    { query: { op: 'raft-configuration' }, options },
  ];
  for (const r of reads) t.deepEqual(decodeForwardedRead(encodeForwardedRead(r)), { ok: true, value: r });
  const calls: OperatorCall[] = [{ op: 'hello' }, { op: 'join', id: 'n4', address: '10.0.0.4:8300' }, { op: 'remove', id: 'n2' }, { op: 'transfer', id: '' }, { op: 'session-renew', id: 's' }, { op: 'members' }];
  for (const c of calls) t.deepEqual(decodeOperatorCall(encodeOperatorCall(c)), { ok: true, value: c });
});

test('answers round-trip; a missing key stays absent, not nil', (t) => {
  const missing = decodeReadReply('kv-get', encodeReadReply<'kv-get'>({ meta, entry: undefined }));
  t.deepEqual(missing, { ok: true, value: { meta, entry: undefined } });
  t.deepEqual(decodeReadReply('kv-get', encodeReadReply<'kv-get'>({ meta, entry })), { ok: true, value: { meta, entry } });
  t.deepEqual(decodeReadReply('kv-list', encodeReadReply<'kv-list'>({ meta, entries: [entry] })), { ok: true, value: { meta, entries: [entry] } });
  const reply = { results: [{ KV: entry }], errors: [{ OpIndex: 1, What: 'failed' }] };
  t.deepEqual(decodeReadReply('kv-txn', encodeReadReply<'kv-txn'>({ meta, reply })), { ok: true, value: { meta, reply } });
  const config = { Servers: [{ ID: 'a', Node: 'a', Address: '127.0.0.1:1', Leader: true, ProtocolVersion: '3', Voter: true }], Index: 1 };
  t.deepEqual(decodeReadReply('raft-configuration', encodeReadReply<'raft-configuration'>({ meta, reply: config })), {
    ok: true,
    value: { meta, reply: config },
  });
  const session = {
    ID: '6e2a1d3c-5f4b-4a8e-9c7d-0123456789ab', Name: 'n', Node: 'node1', LockDelay: 15e9, Behavior: 'delete', TTL: '10s',
    NodeChecks: ['serfHealth'], ServiceChecks: [{ ID: 'web', Namespace: '' }], CreateIndex: 5, ModifyIndex: 6,
  } as const;
  t.deepEqual(decodeReadReply('session-list', encodeReadReply<'session-list'>({ meta, sessions: [session] })), { ok: true, value: { meta, sessions: [session] } });
  t.deepEqual(decodeSessions(encodeSessions([session])), { ok: true, value: [session] });
  const member = { Name: 'node1', Addr: '127.0.0.1', Port: 8300, Tags: { role: 'consul', dc: 'dc1' }, Status: 4 };
  t.deepEqual(decodeMembers(encodeMembers([member])), { ok: true, value: [member] });
  for (const r of [
    { kind: 'kvs', ok: false }, { kind: 'kvs', ok: false, error: 'missing session' }, { kind: 'session', error: '' },
    { kind: 'txn', results: [{ KV: entry }], errors: [] }, { kind: 'noop' },
  ] as const) {
    t.deepEqual(decodeApplyResult(encodeApplyResult(r)), { ok: true, value: r });
  }
  const hello = { id: 'n1', address: '127.0.0.1:8300', datacenter: 'dc1', fresh: true };
  t.deepEqual(decodeHello(encodeHello(hello)), { ok: true, value: hello });
  t.deepEqual(decodeDone(encodeDone()), { ok: true, value: true });
});

test('a forwarded answer keeps Flags exact up to 2^64-1, and every index as it was', (t) => {
  for (const flags of [0, 2 ** 53 - 1, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n]) {
    // Indexes from 2^32 on, and a lastContactMs that is not an integer, survive the bigint-aware encoding.
    const big = { ...entry, Flags: flags, CreateIndex: 2 ** 32, ModifyIndex: 2 ** 53 - 1 };
    const bigMeta = { ...meta, index: 2 ** 40, lastContactMs: 12.5 };
    t.deepEqual(decodeReadReply('kv-get', encodeReadReply<'kv-get'>({ meta: bigMeta, entry: big })), { ok: true, value: { meta: bigMeta, entry: big } });
    const r = { kind: 'txn', results: [{ KV: big }], errors: [] } as const;
    t.deepEqual(decodeApplyResult(encodeApplyResult(r)), { ok: true, value: r });
  }
  // A sender that writes integers as uint64 (as an older encoder did from 2^32) is read the same way.
  const wide = encode({ meta: { ...meta, index: 5n }, entry: { ...entry, Flags: 9n, CreateIndex: 2n ** 40n } }, { useBigInt64: true });
  t.deepEqual(decodeReadReply('kv-get', wide), { ok: true, value: { meta: { ...meta, index: 5 }, entry: { ...entry, Flags: 9, CreateIndex: 2 ** 40 } } });
  const negative = encode({ meta, entry: { ...entry, Flags: -1n } }, { useBigInt64: true });
  t.regex(refusal(decodeReadReply('kv-get', negative)), /entry\.Flags: expected an integer in 0\.\.2\^64-1/);
});

test('a malformed forwarded read is refused with the field and what is wrong with it', (t) => {
  const bad = (v: unknown): string => refusal(decodeForwardedRead(encode(v)));
  t.is(refusal(decodeForwardedRead(new Uint8Array([0xc1]))), 'read: not a msgpack value: Unrecognized type byte: 0xc1');
  t.regex(refusal(decodeForwardedRead(new Uint8Array([0x01, 0x02]))), /^read: not a msgpack value: Extra 1 of 2 byte\(s\) found/);
  // The shape before typed messages ({ t, o }) is refused, not misread.
  t.is(bad({ t: 'get', key: 'k', o: { c: 'default', i: 0, w: 0 } }), 'read.options: missing');
  t.is(bad({ query: { op: 'kv-get' }, options }), 'read.query.key: missing');
  t.is(bad({ query: { op: 'kv-get', key: 7 }, options }), 'read.query.key: expected a string, got number 7');
  t.is(bad({ query: { op: 'kv-scan', key: 'k' }, options }), 'read.query.op: unknown value "kv-scan"; expected one of kv-get, kv-list, kv-keys, kv-txn, session-info, session-list, raft-configuration, catalog');
  t.is(bad({ query: { op: 'kv-get', key: 'k' }, options: { ...options, consistency: 'eventual' } }),
    'read.options.consistency: unknown value "eventual"; expected one of default, consistent, stale');
  t.is(bad({ query: { op: 'kv-get', key: 'k' }, options: { ...options, minIndex: -1 } }), 'read.options.minIndex: expected an integer in 0..2^53-1, got number -1');
  t.is(bad({ query: { op: 'kv-txn', ops: [{ verb: 'get', key: 'a' }, { verb: 'set', key: 'b' }] }, options }),
    'read.query.ops[1].verb: unknown value "set"; expected one of get, get-or-empty, get-tree, check-index, check-not-exists, check-session');
  t.is(bad({ query: { op: 'kv-txn', ops: [{ verb: 'check-index', key: 'a' }] }, options }), 'read.query.ops[0].index: missing');
  t.is(bad([1, 2]), 'read: expected a map, got an array');
});

test('a malformed operator call or answer is refused the same way', (t) => {
  const bad = (v: unknown): string => refusal(decodeOperatorCall(encode(v)));
  t.is(bad({ op: 'join', id: 'n4' }), 'operator.address: missing');
  t.is(bad({ op: 'remove', id: 2 }), 'operator.id: expected a string, got number 2');
  t.is(bad({ t: 'remove', id: 'n2' }), 'operator.op: missing');
  t.is(bad({ op: 'shutdown' }), 'operator.op: unknown value "shutdown"; expected one of hello, join, remove, transfer, dc-apply, dc-read, session-renew, members');
  t.is(refusal(decodeReadReply('kv-get', encode({ meta, entry: null }))), 'kv-get reply.entry: expected a map, got nil');
  t.is(refusal(decodeReadReply('kv-get', encode({ meta: { ...meta, index: 0 } }))), 'kv-get reply.meta.index: must be at least 1');
  t.is(refusal(decodeReadReply('kv-list', encode({ meta, entries: [{ ...entry, Value: 'x' }] }))), 'kv-list reply.entries[0].Value: expected bytes, got "x"');
  t.is(refusal(decodeApplyResult(encode({ kind: 'kvs' }))), 'apply result.ok: missing');
  t.is(refusal(decodeHello(encode({ id: 'n1', address: 'a', datacenter: 'dc1' }))), 'hello.fresh: missing');
  t.is(refusal(decodeDone(encode(false))), 'operator reply: expected true, got boolean false');
});

test('a read round\'s read-index call and answer round-trip with and without the fields an older server leaves out', (t) => {
  t.deepEqual(decodeReadCall(encodeReadIndexCall({ op: 'read-index' })), { ok: true, value: { op: 'read-index' } });
  t.deepEqual(decodeReadCall(encodeReadIndexCall({ op: 'read-index', from: 'n2', term: 7 })), { ok: true, value: { op: 'read-index', from: 'n2', term: 7 } });
  t.regex(refusal(decodeReadCall(encode({ op: 'read-index', from: 'n2' }))), /read\.term: missing/);
  t.regex(refusal(decodeReadCall(encode({ op: 'read-index', from: 2, term: 7 }))), /read\.from: expected a string/);
  t.regex(refusal(decodeReadCall(encode({ op: 'read-index', from: 'n2', term: -1 }))), /read\.term/);
  t.deepEqual(decodeReadIndexReply(encodeReadIndexReply({ index: 12 })), { ok: true, value: { index: 12 } });
  t.deepEqual(decodeReadIndexReply(encodeReadIndexReply({ index: 12, term: 3, indexTerm: 2 })), { ok: true, value: { index: 12, term: 3, indexTerm: 2 } });
  t.regex(refusal(decodeReadIndexReply(encode({ index: 12, term: 'x', indexTerm: 2 }))), /read-index reply\.term: expected/);
  t.regex(refusal(decodeReadIndexReply(encode({ index: 12, term: 3, indexTerm: -2 }))), /read-index reply\.indexTerm/);
});
