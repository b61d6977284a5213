// Blocking-query support: waitForChange wakes when the index of the watched key or prefix passes the
// caller's index, stays asleep for unrelated writes, and returns on abort and close.

import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeCommand, Fsm, type KvWriteOp, type WatchOutcome } from '../../src/fsm/index.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

async function openFsm(t: ExecutionContext): Promise<Fsm> {
  const root = await mkdtemp(join(tmpdir(), 'conclave-fsm-watch-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const fsm = await Fsm.open(join(root, 'fsm'));
  t.teardown(() => fsm.close());
  return fsm;
}

function apply(fsm: Fsm, op: KvWriteOp): Promise<unknown> {
  return fsm.apply(fsm.appliedIndex() + 1, 1, encodeCommand({ type: 'kvs', op }));
}

/** Settles `promise` as 'pending' if it has not resolved after the event loop has turned a few times. */
async function state(promise: Promise<WatchOutcome>): Promise<WatchOutcome | 'pending'> {
  const tick = new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), 30));
  return Promise.race([promise, tick]);
}

test('fsm watch: a key watch returns at once when the index is already past, else on its change', async (t) => {
  const fsm = await openFsm(t);
  await apply(fsm, { verb: 'set', key: 'k', value: text('1'), flags: 0 }); // 1
  t.deepEqual(await fsm.waitForChange({ key: 'k' }, 0), { reason: 'changed', index: 1 });
  const waiting = fsm.waitForChange({ key: 'k' }, 1);
  await apply(fsm, { verb: 'set', key: 'other', value: text('x'), flags: 0 }); // 2: unrelated
  await apply(fsm, { verb: 'set', key: 'k/child', value: text('x'), flags: 0 }); // 3: a different key
  t.is(await state(waiting), 'pending');
  await apply(fsm, { verb: 'set', key: 'k', value: text('2'), flags: 0 }); // 4
  t.deepEqual(await waiting, { reason: 'changed', index: 4 });
});

test('fsm watch: a watch on a missing key wakes when it is created, and on its deletion', async (t) => {
  const fsm = await openFsm(t);
  await apply(fsm, { verb: 'set', key: 'a', value: text('1'), flags: 0 }); // 1
  const created = fsm.waitForChange({ key: 'b' }, 1);
  t.is(await state(created), 'pending');
  await apply(fsm, { verb: 'set', key: 'b', value: text('1'), flags: 0 }); // 2
  t.deepEqual(await created, { reason: 'changed', index: 2 });
  const deleted = fsm.waitForChange({ key: 'b' }, 2);
  await apply(fsm, { verb: 'delete-tree', prefix: 'b' }); // 3: a tree delete covering the key
  t.deepEqual(await deleted, { reason: 'changed', index: 3 });
});

test('fsm watch: a prefix watch wakes for writes and tree deletes under it only', async (t) => {
  const fsm = await openFsm(t);
  await apply(fsm, { verb: 'set', key: 'svc/a', value: text('1'), flags: 0 }); // 1
  await apply(fsm, { verb: 'set', key: 'other/a', value: text('1'), flags: 0 }); // 2
  const { index } = await fsm.list('svc/');
  t.is(index, 1);
  const waiting = fsm.waitForChange({ prefix: 'svc/' }, index);
  await apply(fsm, { verb: 'set', key: 'other/b', value: text('1'), flags: 0 }); // 3
  await apply(fsm, { verb: 'delete', key: 'svc/missing' }); // 4: deletes nothing
  t.is(await state(waiting), 'pending');
  await apply(fsm, { verb: 'delete-tree', prefix: 'sv' }); // 5: a tree containing the prefix
  t.deepEqual(await waiting, { reason: 'changed', index: 5 });
  const next = fsm.waitForChange({ prefix: 'svc/' }, 5);
  await apply(fsm, { verb: 'set', key: 'svc/b/c', value: text('1'), flags: 0 }); // 6
  t.deepEqual(await next, { reason: 'changed', index: 6 });
});

test('fsm watch: an abort signal and close end the wait', async (t) => {
  const fsm = await openFsm(t);
  await apply(fsm, { verb: 'set', key: 'k', value: text('1'), flags: 0 }); // 1
  const controller = new AbortController();
  const aborted = fsm.waitForChange({ key: 'k' }, 1, controller.signal);
  t.is(await state(aborted), 'pending');
  controller.abort();
  t.deepEqual(await aborted, { reason: 'aborted', index: 1 });
  t.deepEqual(await fsm.waitForChange({ key: 'k' }, 1, AbortSignal.abort()), { reason: 'aborted', index: 1 });
  const closing = fsm.waitForChange({ prefix: '' }, 1);
  t.is(await state(closing), 'pending');
  await fsm.close();
  t.deepEqual(await closing, { reason: 'closed', index: 1 });
});
