// Commands: round trips, byte-exact canonical encoding, and hostile bytes.
// Goal: every proposed command survives encode/decode unchanged, and no byte string makes the decoder
// throw or accept garbage. Method: hand-picked cases per rule, then a seeded mutation fuzz.

import test from 'ava';
import { encode } from '@msgpack/msgpack';
import { inspect } from 'node:util';
import { CommandError, decodeCommand, encodeCommand, MessageType, type Command, type CommandErrorCode } from '../../src/fsm/index.js';
import { prng } from '../support/prng.js';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

const samples: Command[] = [
  { type: 'kvs', op: { verb: 'set', key: 'app/config', value: bytes('{"a":1}'), flags: 42 } },
  { type: 'kvs', op: { verb: 'set', key: 'empty', value: new Uint8Array(0), flags: 0 } },
  { type: 'kvs', op: { verb: 'cas', key: 'k', value: bytes('v'), flags: 2 ** 40, index: 0 } },
  { type: 'kvs', op: { verb: 'cas', key: 'k', value: bytes('v'), flags: 1, index: 17 } },
  { type: 'kvs', op: { verb: 'delete', key: 'k' } },
  { type: 'kvs', op: { verb: 'delete-cas', key: 'k', index: 9 } },
  { type: 'kvs', op: { verb: 'delete-tree', prefix: '' } },
  { type: 'kvs', op: { verb: 'delete-tree', prefix: 'ünïcødé/😀/' } },
  { type: 'tombstone-reap', reapIndex: 123 },
  {
    type: 'txn',
    ops: [
      { kind: 'kv', op: { verb: 'set', key: 'a', value: bytes('1'), flags: 0 } },
      { kind: 'kv', op: { verb: 'cas', key: 'b', value: bytes('2'), flags: 3, index: 5 } },
      { kind: 'kv', op: { verb: 'get', key: 'a' } },
      { kind: 'kv', op: { verb: 'get-or-empty', key: 'zz' } },
      { kind: 'kv', op: { verb: 'get-tree', prefix: 'a' } },
      { kind: 'kv', op: { verb: 'check-index', key: 'a', index: 4 } },
      { kind: 'kv', op: { verb: 'check-not-exists', key: 'c' } },
      { kind: 'kv', op: { verb: 'delete', key: 'd' } },
      { kind: 'kv', op: { verb: 'delete-tree', prefix: 'e/' } },
      { kind: 'kv', op: { verb: 'delete-cas', key: 'f', index: 0 } },
    ],
  },
];

test('fsm command: every sample survives encode and decode unchanged', (t) => {
  for (const command of samples) {
    const decoded = decodeCommand(encodeCommand(command));
    t.true(decoded.ok, JSON.stringify(command));
    if (decoded.ok) t.deepEqual(decoded.command, command);
  }
});

test('fsm command: encoding is canonical (Consul type byte, fixed field order)', (t) => {
  const encoded = encodeCommand({ type: 'kvs', op: { verb: 'set', key: 'k', value: bytes('v'), flags: 1 } });
  t.is(encoded[0], MessageType.KVS);
  const expected = new Uint8Array([MessageType.KVS, ...encode({ Op: 'set', DirEnt: { Key: 'k', Flags: 1, Value: bytes('v') } })]);
  t.deepEqual(encoded, expected);
  const txn = encodeCommand({ type: 'txn', ops: [{ kind: 'kv', op: { verb: 'check-index', key: 'k', index: 3 } }] });
  t.deepEqual(txn, new Uint8Array([MessageType.Txn, ...encode({ Ops: [{ KV: { Verb: 'check-index', DirEnt: { Key: 'k', ModifyIndex: 3 } } }] })]));
});

// Flags take Consul's whole uint64 range: a number below 2^53, a bigint from there, exact both ways.
const flagBoundaries: Array<[number | bigint, string]> = [
  [0, '00'],
  [2 ** 53 - 1, 'cf001fffffffffffff'],
  [2n ** 53n, 'cf0020000000000000'],
  [2n ** 53n + 1n, 'cf0020000000000001'],
  [2n ** 63n, 'cf8000000000000000'],
  [2n ** 64n - 1n, 'cfffffffffffffffff'],
];

test('fsm command: Flags from 0 to 2^64-1 encode as msgpack uint64 and decode exactly', (t) => {
  for (const [flags, wire] of flagBoundaries) {
    for (const command of [
      { type: 'kvs', op: { verb: 'set', key: 'k', value: bytes('v'), flags } },
      { type: 'kvs', op: { verb: 'cas', key: 'k', value: bytes('v'), flags, index: 2 ** 40 } },
      { type: 'txn', ops: [{ kind: 'kv', op: { verb: 'set', key: 'k', value: bytes('v'), flags } }] },
    ] as Command[]) {
      const encoded = encodeCommand(command);
      t.true(Buffer.from(encoded).toString('hex').includes(`a5466c616773${wire}`), `${String(flags)} is written as ${wire}`);
      const decoded = decodeCommand(encoded);
      t.true(decoded.ok, String(flags));
      if (decoded.ok) t.deepEqual(decoded.command, command);
    }
  }
  // A cas, delete-cas or check-index ModifyIndex takes the same range (Consul's uint64), exactly.
  for (const [index, wire] of flagBoundaries) {
    for (const command of [
      { type: 'kvs', op: { verb: 'cas', key: 'k', value: bytes('v'), flags: 0, index } },
      { type: 'kvs', op: { verb: 'delete-cas', key: 'k', index } },
      { type: 'txn', ops: [{ kind: 'kv', op: { verb: 'check-index', key: 'k', index } }] },
    ] as Command[]) {
      const encoded = encodeCommand(command);
      t.true(Buffer.from(encoded).toString('hex').includes(`ab4d6f64696679496e646578${wire}`), `index ${String(index)} is written as ${wire}`);
      const decoded = decodeCommand(encoded);
      t.true(decoded.ok, String(index));
      if (decoded.ok) t.deepEqual(decoded.command, command);
    }
  }
  // The other integers keep their bytes: 2^40 is still a uint64, not a float.
  const cas = encodeCommand({ type: 'kvs', op: { verb: 'cas', key: 'k', value: bytes('v'), flags: 2n ** 64n - 1n, index: 2 ** 40 } });
  t.true(Buffer.from(cas).toString('hex').endsWith('ab4d6f64696679496e646578cf0000010000000000'));
  // Whatever width the sender chose, the decoded value is canonical (a number below 2^53).
  const wide = decodeCommand(raw(MessageType.KVS, { Op: 'set', DirEnt: { Key: 'k', Flags: 7n, Value: bytes('v') } }));
  t.true(wide.ok);
  if (wide.ok && wide.command.type === 'kvs' && wide.command.op.verb === 'set') t.is(wide.command.op.flags, 7);
});

test('fsm command: the encoder refuses what the decoder would refuse', (t) => {
  const cases: Array<[Command, string]> = [
    [{ type: 'kvs', op: { verb: 'set', key: '', value: bytes('v'), flags: 0 } }, 'DirEnt.Key'],
    [{ type: 'kvs', op: { verb: 'set', key: 'bad\uD800', value: bytes('v'), flags: 0 } }, 'DirEnt.Key'],
    [{ type: 'kvs', op: { verb: 'set', key: 'k', value: bytes('v'), flags: -1 } }, 'DirEnt.Flags'],
    [{ type: 'kvs', op: { verb: 'set', key: 'k', value: bytes('v'), flags: 2 ** 53 } }, 'DirEnt.Flags'],
    [{ type: 'kvs', op: { verb: 'set', key: 'k', value: bytes('v'), flags: 2n ** 64n } }, 'DirEnt.Flags'],
    [{ type: 'kvs', op: { verb: 'set', key: 'k', value: bytes('v'), flags: -1n } }, 'DirEnt.Flags'],
    // Not canonical: below 2^53 Flags is a number, so that === compares.
    [{ type: 'kvs', op: { verb: 'set', key: 'k', value: bytes('v'), flags: 5n } }, 'DirEnt.Flags'],
    [{ type: 'kvs', op: { verb: 'cas', key: 'k', value: bytes('v'), flags: 0, index: 1.5 } }, 'DirEnt.ModifyIndex'],
    [{ type: 'kvs', op: { verb: 'get', key: 'k' } } as unknown as Command, 'Op'],
    [{ type: 'txn', ops: [] }, 'Ops'],
    [{ type: 'txn', ops: [{ kind: 'kv', op: { verb: 'get-tree', prefix: '' } }] }, 'Ops[0].KV.DirEnt.Key'],
  ];
  for (const [command, path] of cases) {
    const error = t.throws(() => encodeCommand(command), { instanceOf: CommandError });
    t.is(error?.path, path, inspect(command));
  }
});

function raw(type: number, body: unknown): Uint8Array {
  return new Uint8Array([type, ...encode(body, { useBigInt64: true })]);
}

test('fsm command: hostile bytes give a typed error naming the problem', (t) => {
  const sid = '6e2a1d3c-5f4b-4a8e-9c7d-0123456789ab';
  const newSession = { ID: sid, Name: '', Node: 'n1', LockDelay: 15e9, Behavior: 'release', TTL: '', NodeChecks: ['serfHealth'], ServiceChecks: [] };
  const cases: Array<[Uint8Array, CommandErrorCode, string]> = [
    [new Uint8Array(0), 'COMMAND_EMPTY', ''],
    [raw(99, {}), 'COMMAND_UNKNOWN_TYPE', ''],
    [raw(0x80 | 99, {}), 'COMMAND_UNKNOWN_TYPE', ''],
    [new Uint8Array([MessageType.KVS]), 'COMMAND_BAD_MSGPACK', ''],
    [new Uint8Array([MessageType.KVS, 0xc1]), 'COMMAND_BAD_MSGPACK', ''],
    [new Uint8Array([...raw(MessageType.KVS, { Op: 'delete', DirEnt: { Key: 'k' } }), 0x00]), 'COMMAND_TRAILING_BYTES', ''],
    [raw(MessageType.KVS, { Op: 'delete', DirEnt: { Key: 'k' } }).subarray(0, 10), 'COMMAND_BAD_MSGPACK', ''],
    [raw(MessageType.KVS, [1, 2]), 'COMMAND_BAD_FIELD', 'body'],
    [raw(MessageType.KVS, { Op: 'get', DirEnt: { Key: 'k' } }), 'COMMAND_BAD_FIELD', 'Op'],
    [raw(MessageType.KVS, { Op: 'check-session', DirEnt: { Key: 'k', Session: sid } }), 'COMMAND_BAD_FIELD', 'Op'],
    [raw(MessageType.KVS, { Op: 'lock', DirEnt: { Key: 'k' } }), 'COMMAND_BAD_FIELD', 'DirEnt.Flags'],
    [raw(MessageType.KVS, { Op: 'lock', DirEnt: { Key: 'k', Flags: 0, Value: bytes('v'), Session: 'not-a-uuid' } }), 'COMMAND_BAD_FIELD', 'DirEnt.Session'],
    [raw(MessageType.KVS, { Op: 'unlock', DirEnt: { Key: 'k', Flags: 0, Value: bytes('v'), Session: sid, ModifyIndex: 1 } }), 'COMMAND_UNKNOWN_FIELD', 'DirEnt.ModifyIndex'],
    [raw(MessageType.Session, { Op: 'renew', Session: { ID: sid } }), 'COMMAND_BAD_FIELD', 'Op'],
    [raw(MessageType.Session, { Op: 'destroy' }), 'COMMAND_BAD_FIELD', 'Session'],
    [raw(MessageType.Session, { Op: 'destroy', Session: { ID: 'x' } }), 'COMMAND_BAD_FIELD', 'Session.ID'],
    [raw(MessageType.Session, { Op: 'destroy', Session: { ID: sid, Node: 'n' } }), 'COMMAND_UNKNOWN_FIELD', 'Session.Node'],
    [raw(MessageType.Session, { Op: 'create', Session: { ...newSession, Behavior: 'keep' } }), 'COMMAND_BAD_FIELD', 'Session.Behavior'],
    [raw(MessageType.Session, { Op: 'create', Session: { ...newSession, Node: '' } }), 'COMMAND_BAD_FIELD', 'Session.Node'],
    [raw(MessageType.Session, { Op: 'create', Session: { ...newSession, LockDelay: -1 } }), 'COMMAND_BAD_FIELD', 'Session.LockDelay'],
    [raw(MessageType.Session, { Op: 'create', Session: { ...newSession, NodeChecks: 'serfHealth' } }), 'COMMAND_BAD_FIELD', 'Session.NodeChecks'],
    [raw(MessageType.Session, { Op: 'create', Session: { ...newSession, ServiceChecks: [{ ID: 'c' }] } }), 'COMMAND_BAD_FIELD', 'Session.ServiceChecks[0].Namespace'],
    [raw(MessageType.Session, { Op: 'create', Session: { ...newSession, TTL: undefined } }), 'COMMAND_BAD_FIELD', 'Session.TTL'],
    [raw(MessageType.KVS, { Op: 'set', DirEnt: { Key: 'k', Value: bytes('v') } }), 'COMMAND_BAD_FIELD', 'DirEnt.Flags'],
    [raw(MessageType.KVS, { Op: 'set', DirEnt: { Key: 'k', Flags: 0, Value: bytes('v'), Session: 's' } }), 'COMMAND_UNKNOWN_FIELD', 'DirEnt.Session'],
    [raw(MessageType.KVS, { Op: 'set', DirEnt: { Key: 'k', Flags: 'x', Value: bytes('v') } }), 'COMMAND_BAD_FIELD', 'DirEnt.Flags'],
    [raw(MessageType.KVS, { Op: 'set', DirEnt: { Key: 'k', Flags: -3, Value: bytes('v') } }), 'COMMAND_BAD_FIELD', 'DirEnt.Flags'],
    [raw(MessageType.KVS, { Op: 'set', DirEnt: { Key: 'k', Flags: -(2n ** 63n), Value: bytes('v') } }), 'COMMAND_BAD_FIELD', 'DirEnt.Flags'],
    [raw(MessageType.KVS, { Op: 'set', DirEnt: { Key: 'k', Flags: 2 ** 64, Value: bytes('v') } }), 'COMMAND_BAD_FIELD', 'DirEnt.Flags'],
    [raw(MessageType.KVS, { Op: 'cas', DirEnt: { Key: 'k', Flags: 0, Value: bytes('v'), ModifyIndex: -1 } }), 'COMMAND_BAD_FIELD', 'DirEnt.ModifyIndex'],
    [raw(MessageType.KVS, { Op: 'cas', DirEnt: { Key: 'k', Flags: 0, Value: bytes('v'), ModifyIndex: 2.5 } }), 'COMMAND_BAD_FIELD', 'DirEnt.ModifyIndex'],
    [raw(MessageType.KVS, { Op: 'set', DirEnt: { Key: 'k', Flags: 0.5, Value: bytes('v') } }), 'COMMAND_BAD_FIELD', 'DirEnt.Flags'],
    [raw(MessageType.KVS, { Op: 'set', DirEnt: { Key: 7, Flags: 0, Value: bytes('v') } }), 'COMMAND_BAD_FIELD', 'DirEnt.Key'],
    [raw(MessageType.KVS, { Op: 'set', DirEnt: { Key: new Uint8Array([0xff, 0xfe]), Flags: 0, Value: bytes('v') } }), 'COMMAND_BAD_FIELD', 'DirEnt.Key'],
    [raw(MessageType.KVS, { Op: 'set', DirEnt: { Key: 'k', Flags: 0, Value: 5 } }), 'COMMAND_BAD_FIELD', 'DirEnt.Value'],
    [raw(MessageType.KVS, { Op: 'delete', DirEnt: { Key: '' } }), 'COMMAND_BAD_FIELD', 'DirEnt.Key'],
    [raw(MessageType.Txn, { Ops: 'x' }), 'COMMAND_BAD_FIELD', 'Ops'],
    [raw(MessageType.Txn, { Ops: [] }), 'COMMAND_BAD_FIELD', 'Ops'],
    [raw(MessageType.Txn, { Ops: [{ KV: { Verb: 'frob', DirEnt: { Key: 'k' } } }] }), 'COMMAND_BAD_FIELD', 'Ops[0].KV.Verb'],
    [raw(MessageType.Txn, { Ops: [{ Node: {} }] }), 'COMMAND_BAD_FIELD', 'Ops[0].KV'],
    [raw(MessageType.Tombstone, { Op: 'bury', ReapIndex: 1 }), 'COMMAND_BAD_FIELD', 'Op'],
  ];
  for (const [input, code, path] of cases) {
    const decoded = decodeCommand(input);
    t.false(decoded.ok, `accepted ${Buffer.from(input).toString('hex')}`);
    if (!decoded.ok) {
      t.true(decoded.error instanceof CommandError);
      t.is(decoded.error.code, code, decoded.error.message);
      t.is(decoded.error.path, path, decoded.error.message);
    }
  }
});

test('fsm command: size bombs are refused without allocating what they claim', (t) => {
  // array32 claiming 4 billion items, map32 claiming 4 billion pairs, str32 claiming 4 GiB.
  for (const body of [
    [0xdd, 0xff, 0xff, 0xff, 0xff, 0x00],
    [0xdf, 0xff, 0xff, 0xff, 0xff, 0x00],
    [0x81, 0xa3, 0x4b, 0x65, 0x79, 0xdb, 0xff, 0xff, 0xff, 0xff, 0x61],
  ]) {
    const decoded = decodeCommand(new Uint8Array([MessageType.Txn, ...body]));
    t.false(decoded.ok);
    if (!decoded.ok) t.is(decoded.error.code, 'COMMAND_BAD_MSGPACK');
  }
  // 100k nested arrays: no stack overflow.
  const deep = new Uint8Array(1 + 100_000 + 1);
  deep[0] = MessageType.Txn;
  deep.fill(0x91, 1, 100_001);
  deep[100_001] = 0x00;
  const decoded = decodeCommand(deep);
  t.false(decoded.ok);
});


test('fsm command: seeded mutation fuzz never throws and never accepts an invalid command', (t) => {
  const next = prng(20240611);
  const valid = samples.map((c) => encodeCommand(c));
  let accepted = 0;
  for (let round = 0; round < 4000; round++) {
    const base = valid[next() % valid.length] as Uint8Array;
    const input = base.slice();
    const mutations = 1 + (next() % 4);
    for (let m = 0; m < mutations; m++) input[next() % input.length] = next() & 0xff;
    const cut = round % 5 === 0 ? input.subarray(0, next() % input.length) : input;
    const decoded = decodeCommand(cut); // must not throw
    if (decoded.ok) {
      accepted += 1;
      // Whatever is accepted is a valid command: it re-encodes, and decodes back to itself.
      t.deepEqual(decodeCommand(encodeCommand(decoded.command)), decoded);
    }
  }
  // Random bytes alone.
  for (let round = 0; round < 2000; round++) {
    const input = new Uint8Array(next() % 64);
    for (let i = 0; i < input.length; i++) input[i] = next() & 0xff;
    const decoded = decodeCommand(input);
    if (decoded.ok) t.deepEqual(decodeCommand(encodeCommand(decoded.command)), decoded);
  }
  t.log(`mutants accepted as other valid commands: ${accepted}`);
  t.pass();
});
