// SnapshotStore on a real directory: a snapshot is visible only once complete, retention keeps the
// newest, damage is caught on open or while reading, and a sink streams in bounded memory.

import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import { mkdtemp, open as openFile, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

import type { SnapshotMeta } from '../../src/raft/types.js';
import { SnapshotStore, StorageError, type SnapshotSink } from '../../src/storage/index.js';
import { InvariantError } from '../../src/base/index.js';

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-snap-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A clock that moves 1 ms per reading, so ids are predictable and distinct. */
function fakeClock(start = 1_700_000_000_000): () => number {
  let now = start;
  return () => now++;
}

const meta = (index: number, term: number): SnapshotMeta => ({
  index,
  term,
  configuration: { servers: [{ id: 'a', suffrage: 'voter' }, { id: 'b', suffrage: 'nonvoter' }] },
  configurationIndex: Math.min(index, 3),
});

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function save(store: SnapshotStore, m: SnapshotMeta, data: Uint8Array) {
  const sink = await store.create(m);
  await sink.write(data);
  return sink.close();
}

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

test('a snapshot written through a sink is listed and reads back verified', async (t) => {
  const dir = await tempDir(t);
  const store = await SnapshotStore.open(dir, { now: fakeClock() });
  const sink = await store.create(meta(42, 3));
  // The sink copies what it is given: the caller may reuse its buffer once write() resolves.
  const chunk = Buffer.alloc(3000);
  const expected: Buffer[] = [];
  for (let i = 0; i < 1000; i++) {
    chunk.fill(i % 251);
    await sink.write(chunk);
    expected.push(Buffer.from(chunk));
  }
  const whole = Buffer.concat(expected);
  const info = await sink.close();
  t.is(info.id, '3-42-1700000000000');
  t.is(info.size, whole.length);
  t.is(info.sha256, sha256(whole));
  t.deepEqual(info.meta, meta(42, 3));
  t.deepEqual(await store.list(), [info]);
  t.deepEqual(await store.latest(), info);
  const opened = await store.open(info.id);
  t.deepEqual({ ...opened, stream: undefined }, { ...info, stream: undefined });
  t.true((await readAll(opened.stream)).equals(whole));
  t.deepEqual(await readdir(join(dir, info.id)), ['meta.json', 'state.bin']);
  const metaJson = JSON.parse(await readFile(join(dir, info.id, 'meta.json'), 'utf8'));
  t.like(metaJson, { index: 42, term: 3, configurationIndex: 3, size: whole.length, sha256: info.sha256 });
});

test('an empty snapshot is valid', async (t) => {
  const store = await SnapshotStore.open(await tempDir(t));
  const info = await (await store.create(meta(0, 0))).close();
  t.is(info.size, 0);
  t.is((await readAll((await store.open(info.id)).stream)).length, 0);
});

test('list() is newest first by index, then term; a new snapshot survives a reopen', async (t) => {
  const dir = await tempDir(t);
  const store = await SnapshotStore.open(dir, { retain: 10, now: fakeClock() });
  await save(store, meta(10, 2), Buffer.from('a'));
  await save(store, meta(30, 1), Buffer.from('b'));
  await save(store, meta(20, 5), Buffer.from('c'));
  await save(store, meta(30, 2), Buffer.from('d'));
  const reopened = await SnapshotStore.open(dir);
  t.deepEqual((await reopened.list()).map((s) => [s.meta.index, s.meta.term]), [[30, 2], [30, 1], [20, 5], [10, 2]]);
});

test('retention keeps the 2 newest after each create', async (t) => {
  const dir = await tempDir(t);
  const store = await SnapshotStore.open(dir, { now: fakeClock() });
  for (let i = 1; i <= 4; i++) await save(store, meta(i * 10, 1), Buffer.from(`state ${i}`));
  const listed = await store.list();
  t.deepEqual(listed.map((s) => s.meta.index), [40, 30]);
  t.deepEqual((await readdir(dir)).sort(), listed.map((s) => s.id).sort());
  t.is((await readAll((await store.open(listed[1]!.id)).stream)).toString(), 'state 3');
});

test('a cancelled write is never listed and leaves nothing behind', async (t) => {
  const dir = await tempDir(t);
  const store = await SnapshotStore.open(dir, { now: fakeClock() });
  const kept = await save(store, meta(5, 1), Buffer.from('kept'));
  const sink = await store.create(meta(9, 1));
  await sink.write(Buffer.from('partial'));
  await sink.cancel();
  await sink.cancel();
  t.deepEqual(await store.list(), [kept]);
  t.deepEqual(await readdir(dir), [kept.id]);
  await t.throwsAsync(sink.write(Buffer.from('more')), { instanceOf: InvariantError });
});

test('a write interrupted by a crash is never listed and is removed by the next open', async (t) => {
  const dir = await tempDir(t);
  const store = await SnapshotStore.open(dir, { now: fakeClock() });
  const kept = await save(store, meta(5, 1), Buffer.from('kept'));
  const crashed: SnapshotSink = await store.create(meta(9, 1)); // never closed: the "process" dies here
  t.teardown(() => crashed.cancel()); // only to release its file handle after the test
  await crashed.write(Buffer.alloc(10_000, 7));
  t.deepEqual(await store.list(), [kept]);
  t.true((await readdir(dir)).includes(`${crashed.id}.tmp`));
  // A deletion interrupted by a crash looks like this:
  await writeFile(join(dir, 'stale.del'), 'x');
  const restarted = await SnapshotStore.open(dir);
  t.deepEqual(await readdir(dir), [kept.id]);
  t.deepEqual(await restarted.list(), [kept]);
});

test('a flipped byte in state.bin makes the stream fail at the end with the SHA-256 mismatch', async (t) => {
  const dir = await tempDir(t);
  const store = await SnapshotStore.open(dir, { now: fakeClock() });
  const info = await save(store, meta(7, 2), Buffer.alloc(600_000, 1));
  const file = await openFile(join(dir, info.id, 'state.bin'), 'r+');
  await file.write(Buffer.from([2]), 0, 1, 300_000);
  await file.close();
  const opened = await store.open(info.id); // the size is right, so open succeeds
  const err = await t.throwsAsync(readAll(opened.stream), { instanceOf: StorageError });
  t.is(err!.code, 'SNAPSHOT_CORRUPT');
  t.regex(err!.message, new RegExp(`snapshot ${info.id} is damaged: state.bin has SHA-256 [0-9a-f]{64} but meta.json records ${info.sha256}`));
});

test('a truncated state.bin is refused on open with the sizes', async (t) => {
  const dir = await tempDir(t);
  const store = await SnapshotStore.open(dir, { now: fakeClock() });
  const info = await save(store, meta(7, 2), Buffer.alloc(5000, 1));
  await truncate(join(dir, info.id, 'state.bin'), 4000);
  const err = await t.throwsAsync(store.open(info.id), { instanceOf: StorageError });
  t.is(err!.code, 'SNAPSHOT_CORRUPT');
  t.regex(err!.message, /state\.bin is 4000 bytes but meta\.json records 5000/);
});

test('a damaged meta.json is skipped by list() with a warning and refused by open()', async (t) => {
  const dir = await tempDir(t);
  const warnings: string[] = [];
  const store = await SnapshotStore.open(dir, { now: fakeClock(), onWarning: (m) => warnings.push(m) });
  const good = await save(store, meta(5, 1), Buffer.from('good'));
  const bad = await save(store, meta(6, 1), Buffer.from('bad'));
  await writeFile(join(dir, bad.id, 'meta.json'), '{"format": 1, "id": "');
  t.deepEqual(await store.list(), [good]);
  t.is(warnings.length, 1);
  t.regex(warnings[0]!, new RegExp(`snapshot ${bad.id} is damaged: meta.json is invalid: not JSON`));
  await t.throwsAsync(store.open(bad.id), { code: 'SNAPSHOT_CORRUPT' } as never);
});

test('two sinks for the same snapshot in the same millisecond get distinct ids', async (t) => {
  const store = await SnapshotStore.open(await tempDir(t), { retain: 5, now: () => 1000 });
  const first = await store.create(meta(8, 2));
  const second = await store.create(meta(8, 2));
  t.not(first.id, second.id);
  await first.write(Buffer.from('one'));
  await second.write(Buffer.from('two'));
  await second.close();
  await first.close();
  t.deepEqual((await store.list()).map((s) => s.id), ['2-8-1001', '2-8-1000']);
});

test('a sink refuses overlapping writes and use after close', async (t) => {
  const store = await SnapshotStore.open(await tempDir(t));
  const sink = await store.create(meta(3, 1));
  const pending = sink.write(Buffer.alloc(2 * 1024 * 1024)); // bigger than the buffer: goes to disk
  await t.throwsAsync(sink.write(Buffer.from('x')), { instanceOf: InvariantError, message: /waits for the previous write/ });
  await pending;
  await sink.close();
  await t.throwsAsync(sink.write(Buffer.from('x')), { instanceOf: InvariantError, message: /only while open/ });
  await t.throwsAsync(sink.close(), { instanceOf: InvariantError });
  await sink.cancel(); // a no-op once closed
  t.is((await store.list()).length, 1);
});

test('open() of an unknown or malformed id is SNAPSHOT_NOT_FOUND', async (t) => {
  const store = await SnapshotStore.open(await tempDir(t));
  await t.throwsAsync(store.open('1-2-3'), { code: 'SNAPSHOT_NOT_FOUND', message: /snapshot 1-2-3 does not exist/ } as never);
  await t.throwsAsync(store.open('../etc'), { code: 'SNAPSHOT_NOT_FOUND', message: /not a snapshot id/ } as never);
});

// Serial: ava runs serial tests before the concurrent ones, so the others' buffers do not blur the rss.
test.serial('a 50 MiB snapshot streams through the sink without being held in memory', async (t) => {
  const store = await SnapshotStore.open(await tempDir(t));
  const chunk = Buffer.alloc(64 * 1024);
  const chunks = 800; // 50 MiB
  const expectedHash = createHash('sha256');
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sink = await store.create(meta(100, 4));
  for (let i = 0; i < chunks; i++) {
    chunk.fill(i & 0xff);
    expectedHash.update(chunk);
    await sink.write(chunk);
    if (i % 16 === 0) peak = Math.max(peak, process.memoryUsage().rss);
  }
  const info = await sink.close();
  const growthMiB = (peak - baseline) / 1024 / 1024;
  t.log(`rss growth ${growthMiB.toFixed(1)} MiB while writing 50 MiB`);
  t.true(growthMiB < 40, `rss grew by ${growthMiB.toFixed(1)} MiB`);
  t.is(info.size, chunks * chunk.length);
  t.is(info.sha256, expectedHash.digest('hex'));

  // Reading: rss is no measure here (every chunk is a fresh buffer the consumer may keep, and V8
  // collects them lazily), so check the stream's own buffer instead: a paused reader holds at most
  // about one high-water mark of data, not the file.
  const { stream } = await store.open(info.id);
  const first = (await stream[Symbol.asyncIterator]().next()).value as Buffer;
  t.true(first.length > 0);
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.true(stream.readableLength <= 2 * 256 * 1024, `a paused stream buffered ${stream.readableLength} bytes`);
  stream.destroy();
  const readHash = createHash('sha256');
  for await (const piece of (await store.open(info.id)).stream) readHash.update(piece as Buffer);
  t.is(readHash.digest('hex'), info.sha256);
});
