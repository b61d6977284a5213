// An apply answers before its LevelDB batch has landed (fsm.ts, the contract): these tests hold the FSM
// to the promises that make that safe. Every read, list and snapshot started after an answer sees the
// write; and a batch that fails to land after its answer went out fails every later read and apply
// instead of serving a state without the answered write.

import test from 'ava';
import { join } from 'node:path';
import { encodeCommand, Fsm, FsmError, newDirFor, restoreInto, type ApplyResult } from '../../src/fsm/index.js';
import { readStateBin } from '../../src/snapshot/index.js';
import { tempRoot } from '../support/fsm-driver.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));
const set = (key: string, value: string): Uint8Array => encodeCommand({ type: 'kvs', op: { verb: 'set', key, value: text(value), flags: 0 } });
const cas = (key: string, value: string, index: number): Uint8Array =>
  encodeCommand({ type: 'kvs', op: { verb: 'cas', key, value: text(value), flags: 0, index } });

async function* oneChunk(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

async function bytesOf(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of stream) parts.push(chunk);
  return Buffer.concat(parts);
}

test('fsm landing: a read, a list, a batch apply and a snapshot started right after an answer all see the write', async (t) => {
  const fsm = await Fsm.open(join(await tempRoot(t), 'fsm'));
  t.teardown(() => fsm.close());
  let index = 0;
  // Many rounds: each read starts in the same tick as the answer, while the write may still be on
  // LevelDB's thread pool; a read that did not wait for it would miss it in some of them.
  for (let i = 0; i < 300; i += 1) {
    index += 1;
    await fsm.apply(index, 1, set(`k/${i}`, `v${i}`));
    const read = await fsm.get(`k/${i}`);
    t.is(str(read.entry?.Value), `v${i}`, `get after answer ${i}`);
    t.is(read.index, index);
    index += 1;
    const results: ApplyResult[] = await fsm.applyBatch([{ index, term: 1, data: set(`k/${i}`, `w${i}`) }]);
    t.deepEqual(results, [{ kind: 'kvs', ok: true }]);
    const listed = await fsm.list('k/');
    t.is(str(listed.entries.find((e) => e.Key === `k/${i}`)?.Value), `w${i}`, `list after batch answer ${i}`);
    t.is(listed.index, index);
    index += 1;
    await fsm.apply(index, 1, set(`s/${i}`, 'x'));
    const snapshot = await fsm.snapshot();
    t.is(snapshot.index, index, `snapshot after answer ${i}`);
    await snapshot.close();
  }
  index += 1;
  await fsm.apply(index, 1, set('last', 'x'));
  const snapshot = await fsm.snapshot();
  t.is(snapshot.index, index, 'the snapshot holds the last answered write');
  const keys: string[] = [];
  for await (const item of readStateBin(snapshot)) if (item.kind === 'kvs') keys.push(item.entry.Key);
  t.true(keys.includes('last'));
  t.is(keys.length, 601);
  t.is(fsm.appliedIndex(), index);
});

test('fsm landing: applies queued without waiting each read what the one before wrote (one batch in the air at a time)', async (t) => {
  const fsm = await Fsm.open(join(await tempRoot(t), 'fsm'));
  t.teardown(() => fsm.close());
  // Each cas expects the ModifyIndex the previous entry gave the key: it succeeds only if the apply
  // reads the previous batch, landed. None is awaited before the next is queued, as a round's are not.
  const pending: Array<Promise<ApplyResult>> = [fsm.apply(1, 1, cas('k', 'v1', 0))];
  for (let i = 2; i <= 400; i += 1) pending.push(fsm.apply(i, 1, cas('k', `v${i}`, i - 1)));
  const results = await Promise.all(pending);
  t.deepEqual(results.filter((r) => !(r.kind === 'kvs' && r.ok)), [], 'every cas saw the entry before it');
  const read = await fsm.get('k');
  t.is(str(read.entry?.Value), 'v400');
  t.is(read.entry?.ModifyIndex, 400);
});

test('fsm landing: a batch that fails to land after its answer stops reads and applies and calls the listener', async (t) => {
  const dir = join(await tempRoot(t), 'fsm');
  let fsm = await Fsm.open(dir);
  t.teardown(() => fsm.close());
  await fsm.apply(1, 1, set('k', 'old'));
  const failures: FsmError[] = [];
  fsm.whenWriteFails((e) => failures.push(e));
  // The disk refuses the next write (the injected fault); the LevelDB under it is real.
  const db = (fsm as unknown as { db: { _batch: (...a: unknown[]) => Promise<void> } }).db;
  const real = db._batch.bind(db);
  db._batch = () => Promise.reject(new Error('EIO: the disk refused the write'));
  const answer = await fsm.apply(2, 1, set('k', 'new'));
  t.deepEqual(answer, { kind: 'kvs', ok: true }, 'answered before the batch landed');
  const readError = await t.throwsAsync(fsm.get('k'), { instanceOf: FsmError });
  t.is(readError?.code, 'FSM_WRITE_FAILED', 'a read does not serve the state without the answered write');
  t.regex(readError?.message ?? '', /log entry 2.*EIO/);
  t.is(failures.length, 1);
  t.is(failures[0]?.code, 'FSM_WRITE_FAILED');
  await t.throwsAsync(fsm.snapshot(), { instanceOf: FsmError, message: /cannot be read/ });
  db._batch = real;
  const next = await t.throwsAsync(fsm.apply(3, 1, set('k', 'newer')), { instanceOf: FsmError });
  t.is(next?.code, 'FSM_POISONED');
  // After a restart the FSM holds the last landed entry; the runtime applies entry 2 again from its log.
  await fsm.close();
  fsm = await Fsm.open(dir);
  t.is(fsm.appliedIndex(), 1);
  t.is(str((await fsm.get('k')).entry?.Value), 'old');
});

test('fsm landing: a restore swapped in after a failed write serves reads and applies again', async (t) => {
  const root = await tempRoot(t);
  const source = await Fsm.open(join(root, 'source'));
  t.teardown(() => source.close());
  await source.apply(1, 1, set('restored', 'yes'));
  const stateBin = await bytesOf(await source.snapshot());

  const dir = join(root, 'fsm');
  const fsm = await Fsm.open(dir);
  t.teardown(() => fsm.close());
  const failures: FsmError[] = [];
  fsm.whenWriteFails((e) => failures.push(e));
  const db = (fsm as unknown as { db: { _batch: (...a: unknown[]) => Promise<void> } }).db;
  const real = db._batch.bind(db);
  db._batch = () => Promise.reject(new Error('EIO: the disk refused the write'));
  await fsm.apply(1, 1, set('k', 'lost'));
  await t.throwsAsync(fsm.get('k'), { instanceOf: FsmError, message: /cannot be read/ });
  db._batch = real;
  t.is(failures.length, 1);

  await restoreInto(newDirFor(dir), oneChunk(stateBin), { appliedIndex: 5, appliedTerm: 2, expectedBytes: stateBin.length });
  await fsm.swapIn(newDirFor(dir));
  t.is(str((await fsm.get('restored')).entry?.Value), 'yes', 'reads work again on the restored state');
  t.is((await fsm.get('k')).entry, undefined);
  t.deepEqual(await fsm.apply(6, 2, set('after', 'x')), { kind: 'kvs', ok: true });
  t.is(str((await fsm.get('after')).entry?.Value), 'x');
  t.is(fsm.appliedIndex(), 6);
});
