// Txn commands: all-or-nothing application, Consul-shaped results and errors (OpIndex, What, Consul's
// texts), operations seeing the effects of earlier ones, and read-only txns served without Raft.

import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandError, encodeCommand, Fsm, type ApplyResult, type KvOp, type TxnOp } from '../../src/fsm/index.js';
import { readStateBin } from '../../src/snapshot/index.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const empty = new Uint8Array(0);

async function openFsm(t: ExecutionContext): Promise<Fsm> {
  const root = await mkdtemp(join(tmpdir(), 'conclave-fsm-txn-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const fsm = await Fsm.open(join(root, 'fsm'));
  t.teardown(() => fsm.close());
  return fsm;
}

const kv = (op: KvOp): TxnOp => ({ kind: 'kv', op });

async function txn(fsm: Fsm, index: number, ops: KvOp[]): Promise<Extract<ApplyResult, { kind: 'txn' }>> {
  const result = await fsm.apply(index, 1, encodeCommand({ type: 'txn', ops: ops.map(kv) }));
  if (result.kind !== 'txn') throw new Error('expected a txn result');
  return result;
}

/** Every record of the state (entries, tombstones, table indexes); the header is left out. */
async function records(fsm: Fsm): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const item of readStateBin(await fsm.snapshot())) if (item.kind !== 'header') out.push(item);
  return out;
}

test('fsm txn: a successful txn applies every op; results follow Consul (values blanked except for gets)', async (t) => {
  const fsm = await openFsm(t);
  await fsm.apply(1, 1, encodeCommand({ type: 'kvs', op: { verb: 'set', key: 'old', value: text('o'), flags: 0 } }));
  const result = await txn(fsm, 2, [
    { verb: 'set', key: 'a', value: text('1'), flags: 5 },
    { verb: 'cas', key: 'b', value: text('2'), flags: 0, index: 0 },
    { verb: 'get', key: 'a' },
    { verb: 'check-index', key: 'old', index: 1 },
    { verb: 'check-not-exists', key: 'c' },
    { verb: 'delete', key: 'old' },
    { verb: 'get-tree', prefix: 'a' },
  ]);
  t.deepEqual(result.errors, []);
  t.deepEqual(result.results, [
    { KV: { Key: 'a', Flags: 5, Value: empty, CreateIndex: 2, ModifyIndex: 2, LockIndex: 0, Session: '' } },
    { KV: { Key: 'b', Flags: 0, Value: empty, CreateIndex: 2, ModifyIndex: 2, LockIndex: 0, Session: '' } },
    { KV: { Key: 'a', Flags: 5, Value: text('1'), CreateIndex: 2, ModifyIndex: 2, LockIndex: 0, Session: '' } },
    { KV: { Key: 'old', Flags: 0, Value: empty, CreateIndex: 1, ModifyIndex: 1, LockIndex: 0, Session: '' } },
    { KV: { Key: 'a', Flags: 5, Value: text('1'), CreateIndex: 2, ModifyIndex: 2, LockIndex: 0, Session: '' } },
  ]);
  t.is((await fsm.get('old')).entry, undefined);
  t.deepEqual((await fsm.list('')).entries.map((e) => e.Key), ['a', 'b']);
  t.is(await fsm.kvsIndex(), 2);
  await fsm.checkInvariants();
});

test('fsm txn: one failing op leaves nothing applied, and every error is reported with its OpIndex', async (t) => {
  const fsm = await openFsm(t);
  await fsm.apply(1, 1, encodeCommand({ type: 'kvs', op: { verb: 'set', key: 'k', value: text('v'), flags: 0 } }));
  await fsm.apply(2, 1, encodeCommand({ type: 'kvs', op: { verb: 'set', key: 'z', value: text('v'), flags: 0 } }));
  await fsm.apply(3, 1, encodeCommand({ type: 'kvs', op: { verb: 'delete', key: 'z' } }));
  const before = await records(fsm);
  t.is(before.length, 4, 'one entry, one tombstone and two table indexes before');
  const result = await txn(fsm, 4, [
    { verb: 'set', key: 'new', value: text('n'), flags: 0 },
    { verb: 'delete', key: 'k' },
    { verb: 'cas', key: 'k2', value: text('x'), flags: 0, index: 3 },
    { verb: 'get', key: 'missing' },
    { verb: 'delete-tree', prefix: '' },
    { verb: 'check-index', key: 'nope', index: 1 },
    { verb: 'delete-cas', key: 'new', index: 1 },
    { verb: 'check-not-exists', key: 'new' },
  ]);
  t.deepEqual(result.results, []);
  t.deepEqual(result.errors, [
    { OpIndex: 2, What: 'failed to set key "k2", index is stale' },
    { OpIndex: 3, What: 'key "missing" doesn\'t exist' },
    { OpIndex: 5, What: 'failed to check index, key "nope" doesn\'t exist' },
    // "new" exists inside the txn (op 0) but was deleted by op 4 (delete-tree ''), so delete-cas on a
    // missing key succeeds and check-not-exists passes: later ops see earlier ones.
  ]);
  t.deepEqual(await records(fsm), before, 'no entry, tombstone or table index changed');
  t.is(fsm.appliedIndex(), 4, 'the failed txn still consumed its log index');
  t.is(await fsm.kvsIndex(), 3);
});

test('fsm txn: check-index mismatch and check-not-exists on an existing key use Consul texts', async (t) => {
  const fsm = await openFsm(t);
  await fsm.apply(1, 1, encodeCommand({ type: 'kvs', op: { verb: 'set', key: 'we"ird\n', value: text('v'), flags: 0 } }));
  const result = await txn(fsm, 2, [
    { verb: 'check-index', key: 'we"ird\n', index: 9 },
    { verb: 'check-not-exists', key: 'we"ird\n' },
    { verb: 'delete-cas', key: 'we"ird\n', index: 9 },
  ]);
  t.deepEqual(result.errors, [
    { OpIndex: 0, What: 'failed index check for key "we\\"ird\\n", current modify index 1 != 9' },
    { OpIndex: 1, What: 'key "we\\"ird\\n" exists' },
    { OpIndex: 2, What: 'failed to delete key "we\\"ird\\n", index is stale' },
  ]);
});

test('fsm txn: ops see the effects of earlier ops in the same txn', async (t) => {
  const fsm = await openFsm(t);
  const result = await txn(fsm, 1, [
    { verb: 'set', key: 'dir/a', value: text('1'), flags: 0 },
    { verb: 'set', key: 'dir/b', value: text('2'), flags: 0 },
    { verb: 'check-index', key: 'dir/a', index: 1 },
    { verb: 'delete', key: 'dir/a' },
    { verb: 'get-tree', prefix: 'dir/' },
    { verb: 'cas', key: 'dir/a', value: text('3'), flags: 0, index: 0 },
    { verb: 'get', key: 'dir/a' },
  ]);
  t.deepEqual(result.errors, []);
  t.deepEqual(result.results.map((r) => [r.KV.Key, new TextDecoder().decode(r.KV.Value)]), [
    ['dir/a', ''],
    ['dir/b', ''],
    ['dir/a', ''],
    ['dir/b', '2'],
    ['dir/a', ''],
    ['dir/a', '3'],
  ]);
  // Recreated within the same entry: CreateIndex is that entry's index; the tombstone stays, as in Consul.
  const { entry } = await fsm.get('dir/a');
  t.is(entry?.CreateIndex, 1);
  t.is((await fsm.list('dir/')).index, 1);
  await fsm.checkInvariants();
});

test('fsm txn: get-or-empty answers a missing key with an empty entry', async (t) => {
  const fsm = await openFsm(t);
  const result = await txn(fsm, 1, [{ verb: 'get-or-empty', key: 'ghost' }]);
  t.deepEqual(result.results, [{ KV: { Key: 'ghost', Flags: 0, Value: empty, CreateIndex: 0, ModifyIndex: 0, LockIndex: 0, Session: '' } }]);
});

test('fsm txn: read-only txns run without Raft and refuse write verbs', async (t) => {
  const fsm = await openFsm(t);
  await fsm.apply(1, 1, encodeCommand({ type: 'kvs', op: { verb: 'set', key: 'r', value: text('v'), flags: 1 } }));
  const ok = await fsm.readTxn([kv({ verb: 'get', key: 'r' }), kv({ verb: 'check-index', key: 'r', index: 1 })]);
  t.deepEqual(ok.errors, []);
  t.is(ok.results.length, 2);
  const failed = await fsm.readTxn([kv({ verb: 'get', key: 'r' }), kv({ verb: 'get', key: 'nope' })]);
  t.deepEqual(failed, { results: [], errors: [{ OpIndex: 1, What: 'key "nope" doesn\'t exist' }] });
  await t.throwsAsync(fsm.readTxn([kv({ verb: 'delete', key: 'r' })]), { instanceOf: CommandError });
  t.is(fsm.appliedIndex(), 1);
});
