// Consul KV semantics of the FSM on a real LevelDB: indexes, flags, CAS, deletes and tombstones,
// delete-tree, keys with a separator, X-Consul-Index values, and the applied index across restarts.
// Each test drives the FSM through encoded commands exactly as the Raft runtime would.

import test from 'ava';
import { join } from 'node:path';
import {
  encodeCommand,
  Fsm,
  FsmError,
  MessageType,
  type KvWriteOp,
} from '../../src/fsm/index.js';
import { readStateBin } from '../../src/snapshot/index.js';
import { InvariantError } from '../../src/base/index.js';
import { FsmDriver, tempRoot } from '../support/fsm-driver.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));


/** Feeds the FSM KV commands with consecutive indexes, as the runtime does. */
class Driver extends FsmDriver {
  async kv(op: KvWriteOp): Promise<boolean> {
    const result = await this.run({ type: 'kvs', op });
    if (result.kind !== 'kvs') throw new Error('expected a kvs result');
    return result.ok;
  }
  set(key: string, value: string, flags = 0): Promise<boolean> {
    return this.kv({ verb: 'set', key, value: text(value), flags });
  }
}

test('fsm kv: set creates with CreateIndex = ModifyIndex = entry index and keeps flags', async (t) => {
  const d = await Driver.open(t);
  t.true(await d.set('app/db', 'postgres', 42));
  const { entry, index } = await d.fsm.get('app/db');
  t.deepEqual(entry, { Key: 'app/db', Flags: 42, Value: text('postgres'), CreateIndex: 1, ModifyIndex: 1, LockIndex: 0, Session: '' });
  t.is(index, 1);
  t.is(await d.fsm.kvsIndex(), 1);
  await d.fsm.checkInvariants();
});

test('fsm kv: an update keeps CreateIndex; an identical update writes nothing', async (t) => {
  const d = await Driver.open(t);
  await d.set('k', 'v1', 1); // index 1
  await d.set('other', 'x'); // index 2
  await d.set('k', 'v2', 7); // index 3
  let { entry } = await d.fsm.get('k');
  t.is(entry?.CreateIndex, 1);
  t.is(entry?.ModifyIndex, 3);
  t.is(entry?.Flags, 7);
  t.is(str(entry?.Value), 'v2');
  // Consul's kvsSetTxn skips an unchanged entry: ModifyIndex and the table index stay.
  t.true(await d.set('k', 'v2', 7)); // index 4
  ({ entry } = await d.fsm.get('k'));
  t.is(entry?.ModifyIndex, 3);
  t.is(await d.fsm.kvsIndex(), 3);
  t.is(d.fsm.appliedIndex(), 4);
  // A flags-only change is a change.
  await d.set('k', 'v2', 8); // index 5
  ({ entry } = await d.fsm.get('k'));
  t.is(entry?.ModifyIndex, 5);
});

test('fsm kv: cas with index 0 creates only; otherwise it needs the current ModifyIndex', async (t) => {
  const d = await Driver.open(t);
  t.false(await d.kv({ verb: 'cas', key: 'k', value: text('x'), flags: 0, index: 5 }), 'non-zero cas on a missing key fails'); // 1
  t.true(await d.kv({ verb: 'cas', key: 'k', value: text('a'), flags: 0, index: 0 })); // 2
  t.false(await d.kv({ verb: 'cas', key: 'k', value: text('b'), flags: 0, index: 0 }), 'create-only on an existing key fails'); // 3
  t.false(await d.kv({ verb: 'cas', key: 'k', value: text('c'), flags: 0, index: 1 }), 'stale index fails'); // 4
  t.is(str((await d.fsm.get('k')).entry?.Value), 'a');
  t.is(await d.fsm.kvsIndex(), 2, 'failed CAS leave the table index alone');
  t.is(d.fsm.appliedIndex(), 4, 'failed CAS still consume their log index');
  t.true(await d.kv({ verb: 'cas', key: 'k', value: text('d'), flags: 9, index: 2 })); // 5
  const { entry } = await d.fsm.get('k');
  t.is(str(entry?.Value), 'd');
  t.is(entry?.ModifyIndex, 5);
  t.is(entry?.CreateIndex, 2);
});

test('fsm kv: delete leaves a tombstone and moves both table indexes; deleting nothing changes nothing', async (t) => {
  const d = await Driver.open(t);
  await d.set('a/1', 'x'); // 1
  await d.set('a/2', 'y'); // 2
  t.true(await d.kv({ verb: 'delete', key: 'a/1' })); // 3
  t.is((await d.fsm.get('a/1')).entry, undefined);
  t.is((await d.fsm.get('a/1')).index, 3, 'a missing key reports the KV table index');
  t.is((await d.fsm.list('a/')).index, 3, 'the tombstone keeps the prefix index from going back to 2');
  t.true(await d.kv({ verb: 'delete', key: 'never' })); // 4
  t.is(await d.fsm.kvsIndex(), 3);
  t.is((await d.fsm.list('never')).index, 3);
  // The snapshot shows exactly one tombstone, for a/1 at 3.
  const records = await snapshotRecords(d.fsm);
  t.deepEqual(records.filter((r) => r.type === 5).map((r) => r.key), ['a/1']);
  t.deepEqual(records.filter((r) => r.type === 16).map((r) => [r.key, r.index]), [['kvs', 3], ['tombstones', 3]]);
  await d.fsm.checkInvariants();
});

test('fsm kv: delete-cas needs the current ModifyIndex; a missing key counts as deleted (Consul)', async (t) => {
  const d = await Driver.open(t);
  await d.set('k', 'v'); // 1
  t.false(await d.kv({ verb: 'delete-cas', key: 'k', index: 7 })); // 2
  t.truthy((await d.fsm.get('k')).entry);
  t.true(await d.kv({ verb: 'delete-cas', key: 'k', index: 1 })); // 3
  t.is((await d.fsm.get('k')).entry, undefined);
  t.true(await d.kv({ verb: 'delete-cas', key: 'k', index: 1 }), 'Consul answers true for a key that is already gone'); // 4
  t.is(await d.fsm.kvsIndex(), 3);
});

test('fsm kv: delete-tree removes the subtree only and leaves one tombstone keyed by the prefix', async (t) => {
  const d = await Driver.open(t);
  for (const key of ['a/x', 'a/y/z', 'ab', 'b']) await d.set(key, key); // 1..4
  t.true(await d.kv({ verb: 'delete-tree', prefix: 'a/' })); // 5
  t.deepEqual((await d.fsm.list('')).entries.map((e) => e.Key), ['ab', 'b']);
  const records = await snapshotRecords(d.fsm);
  t.deepEqual(records.filter((r) => r.type === 5).map((r) => [r.key, r.index]), [['a/', 5]]);
  t.is((await d.fsm.list('a/')).index, 5);
  t.is((await d.fsm.get('a/x')).index, 5);
  // Nothing under the prefix: nothing changes.
  t.true(await d.kv({ verb: 'delete-tree', prefix: 'zzz' })); // 6
  t.is(await d.fsm.kvsIndex(), 5);
  // '' deletes everything and leaves no tombstone (Consul: the table index carries the change).
  t.true(await d.kv({ verb: 'delete-tree', prefix: '' })); // 7
  t.deepEqual((await d.fsm.list('')).entries, []);
  t.is((await d.fsm.list('')).index, 7);
  t.deepEqual((await snapshotRecords(d.fsm)).filter((r) => r.type === 5).map((r) => r.key), ['a/']);
  await d.fsm.checkInvariants();
});

test('fsm kv: keys with a separator fold at the first separator after the prefix', async (t) => {
  const d = await Driver.open(t);
  for (const key of ['a/b', 'a/c/d', 'a/c/e', 'a/f/', 'ab', 'b', 'b//c']) await d.set(key, '');
  t.deepEqual((await d.fsm.keys('a/', '/')).keys, ['a/b', 'a/c/', 'a/f/']);
  t.deepEqual((await d.fsm.keys('', '/')).keys, ['a/', 'ab', 'b', 'b/']);
  t.deepEqual((await d.fsm.keys('a')).keys, ['a/b', 'a/c/d', 'a/c/e', 'a/f/', 'ab']);
  t.deepEqual((await d.fsm.keys('a/c', '/')).keys, ['a/c/']);
  t.deepEqual((await d.fsm.keys('a/', 'c/')).keys, ['a/b', 'a/c/', 'a/f/']);
  t.is((await d.fsm.keys('a/', '/')).index, 4, 'index = max ModifyIndex under the prefix');
  t.deepEqual((await d.fsm.keys('zz', '/')).keys, []);
});

test('fsm kv: list and keys report Consul indexes and never 0', async (t) => {
  const d = await Driver.open(t);
  t.is((await d.fsm.list('x/')).index, 1, 'a fresh FSM reports 1, not 0');
  t.is((await d.fsm.get('x')).index, 1);
  await d.set('x/1', 'a'); // 1
  await d.set('y/1', 'b'); // 2
  await d.set('x/2', 'c'); // 3
  await d.set('y/2', 'd'); // 4
  t.is((await d.fsm.list('x/')).index, 3, 'highest ModifyIndex under x/');
  t.is((await d.fsm.list('y/')).index, 4);
  t.is((await d.fsm.list('')).index, 4, "prefix '' uses the table index");
  t.is((await d.fsm.list('nothing/')).index, 4, 'no match falls back to the table index');
  t.is((await d.fsm.get('x/1')).index, 1, 'an existing key reports its own ModifyIndex');
});

test('fsm kv: keys are kept and listed in UTF-8 byte order, as Consul orders them', async (t) => {
  const d = await Driver.open(t);
  // U+E000 is EE 80 80 in UTF-8; U+1F600 is F0 9F 98 80. UTF-16 order would put the emoji first.
  const keys = ['k/\u{1F600}', 'k/\uE000', 'k/z', 'k/é'];
  for (const key of keys) await d.set(key, key);
  t.deepEqual((await d.fsm.list('k/')).entries.map((e) => e.Key), ['k/z', 'k/é', 'k/\uE000', 'k/\u{1F600}']);
  t.is(str((await d.fsm.get('k/\u{1F600}')).entry?.Value), 'k/\u{1F600}');
});

test('fsm kv: returned values are copies', async (t) => {
  const d = await Driver.open(t);
  await d.set('k', 'abc');
  const first = await d.fsm.get('k');
  first.entry?.Value.fill(0);
  t.is(str((await d.fsm.get('k')).entry?.Value), 'abc');
  t.is(Object.getPrototypeOf(first.entry?.Value), Uint8Array.prototype);
});

test('fsm kv: the applied index and term survive close and reopen, including noop entries', async (t) => {
  const dir = join(await tempRoot(t), 'fsm');
  let fsm = await Fsm.open(dir);
  await fsm.apply(1, 1, encodeCommand({ type: 'kvs', op: { verb: 'set', key: 'k', value: text('v'), flags: 0 } }));
  await fsm.applyNoop(2, 2);
  await fsm.apply(3, 2, encodeCommand({ type: 'kvs', op: { verb: 'cas', key: 'k', value: text('w'), flags: 0, index: 99 } }));
  t.is(fsm.appliedIndex(), 3);
  await fsm.close();
  fsm = await Fsm.open(dir);
  t.teardown(() => fsm.close());
  t.is(fsm.appliedIndex(), 3);
  t.is(fsm.appliedTerm(), 2);
  t.is(str((await fsm.get('k')).entry?.Value), 'v');
  t.throws(() => fsm.apply(3, 2, encodeCommand({ type: 'kvs', op: { verb: 'delete', key: 'k' } })), { instanceOf: InvariantError });
  await fsm.applyNoop(4, 3);
  t.is(fsm.appliedIndex(), 4);
  await t.throwsAsync(fsm.get('k').then(() => fsm.close()).then(() => fsm.get('k')), { instanceOf: FsmError, message: /closed/ });
});

test('fsm kv: an undecodable entry poisons the FSM; an ignorable one is a noop', async (t) => {
  const d = await Driver.open(t);
  await d.set('k', 'v'); // 1
  const ignorable = new Uint8Array([0x80 | 60, 0x80]);
  t.deepEqual(await d.fsm.apply(2, 1, ignorable), { kind: 'noop' });
  t.is(d.fsm.appliedIndex(), 2);
  const garbage = new Uint8Array([MessageType.KVS, 0xc1]);
  const error = await t.throwsAsync(d.fsm.apply(3, 1, garbage), { instanceOf: FsmError });
  t.is(error?.code, 'FSM_COMMAND_UNDECODABLE');
  t.is(d.fsm.appliedIndex(), 2, 'the undecodable entry was not recorded as applied');
  const next = await t.throwsAsync(d.fsm.apply(4, 1, encodeCommand({ type: 'kvs', op: { verb: 'delete', key: 'k' } })), { instanceOf: FsmError });
  t.is(next?.code, 'FSM_POISONED');
  t.truthy((await d.fsm.get('k')).entry, 'reads still work; nothing after the failure was applied');
});

test('fsm kv: tombstone reap drops tombstones up to the index and keeps table indexes', async (t) => {
  const d = await Driver.open(t);
  await d.set('a', '1'); // 1
  await d.set('b', '2'); // 2
  await d.kv({ verb: 'delete', key: 'a' }); // 3
  await d.kv({ verb: 'delete', key: 'b' }); // 4
  t.deepEqual(await d.run({ type: 'tombstone-reap', reapIndex: 3 }), { kind: 'tombstone-reap' }); // 5
  const records = await snapshotRecords(d.fsm);
  t.deepEqual(records.filter((r) => r.type === 5).map((r) => r.key), ['b']);
  t.is(await d.fsm.kvsIndex(), 4);
  await d.fsm.checkInvariants();
});

test('fsm kv: overlapping apply calls are applied in call order', async (t) => {
  const d = await Driver.open(t);
  const results = await Promise.all([
    d.fsm.apply(1, 1, encodeCommand({ type: 'kvs', op: { verb: 'cas', key: 'k', value: text('first'), flags: 0, index: 0 } })),
    d.fsm.apply(2, 1, encodeCommand({ type: 'kvs', op: { verb: 'cas', key: 'k', value: text('second'), flags: 0, index: 0 } })),
    d.fsm.apply(3, 1, encodeCommand({ type: 'kvs', op: { verb: 'cas', key: 'k', value: text('third'), flags: 0, index: 1 } })),
  ]);
  t.deepEqual(results, [{ kind: 'kvs', ok: true }, { kind: 'kvs', ok: false }, { kind: 'kvs', ok: true }]);
  t.is(str((await d.fsm.get('k')).entry?.Value), 'third');
});

/** The records of a snapshot of `fsm`, in stream order (type 2 KVS, 5 Tombstone, 16 Index). */
async function snapshotRecords(fsm: Fsm): Promise<Array<{ type: number; key: string; index: number }>> {
  const out: Array<{ type: number; key: string; index: number }> = [];
  for await (const item of readStateBin(await fsm.snapshot())) {
    if (item.kind === 'kvs') out.push({ type: 2, key: item.entry.Key, index: item.entry.ModifyIndex });
    if (item.kind === 'tombstone') out.push({ type: 5, key: item.stone.Key, index: item.stone.Index });
    if (item.kind === 'index') out.push({ type: 16, key: item.index.Key, index: item.index.Value });
  }
  return out;
}
