// writeOps: one atomic LevelDB write, straight to classic-level's _batch. It must behave as
// db.batch(ops) does (all or none, puts and deletes, sync), refuse a database that is not open
// without touching the native side, and free its native copy of the bytes when the write completes.

import test, { type ExecutionContext } from 'ava';
import { Level } from 'level';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeOps } from '../../src/base/index.js';

async function freshDb(t: ExecutionContext): Promise<Level<Uint8Array, Uint8Array>> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-level-batch-'));
  const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  t.teardown(async () => {
    if (db.status === 'open') await db.close();
    await rm(dir, { recursive: true, force: true });
  });
  return db;
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));

test('puts and deletes land together, synced or not, and an empty list writes nothing', async (t) => {
  const db = await freshDb(t);
  await writeOps(db, [{ type: 'put', key: bytes('a'), value: bytes('1') }, { type: 'put', key: bytes('b'), value: bytes('2') }], true);
  await writeOps(db, [{ type: 'del', key: bytes('a') }, { type: 'put', key: bytes('c'), value: bytes('3') }], false);
  await writeOps(db, [], true);
  t.is(text(await db.get(bytes('a'))), undefined);
  t.is(text(await db.get(bytes('b'))), '2');
  t.is(text(await db.get(bytes('c'))), '3');
});

test('a database that is not open is refused with a clear error, and nothing is written', async (t) => {
  const db = await freshDb(t);
  await db.close();
  const error = await t.throwsAsync(writeOps(db, [{ type: 'put', key: bytes('a'), value: bytes('1') }], true));
  t.regex(error?.message ?? '', /cannot write to the database: it is closed, not open/);
  await db.open();
  t.is(text(await db.get(bytes('a'))), undefined);
});

test('the native copy of a write is freed when it completes, not when V8 gets round to collecting', async (t) => {
  // The same 1 MiB value 200 times: JavaScript allocates almost nothing, so V8 collects rarely. A write
  // whose native copy lived until its JS wrapper was collected (classic-level's chained batch) held all
  // 200 MiB at once; freed at completion, RSS rises by LevelDB's memtables and caches, a few tens of MiB.
  const db = await freshDb(t);
  const value = new Uint8Array(1024 * 1024).fill(7);
  const before = process.memoryUsage.rss();
  let peak = before;
  for (let i = 0; i < 200; i++) {
    await writeOps(db, [{ type: 'put', key: bytes(`k${i}`), value }], false);
    peak = Math.max(peak, process.memoryUsage.rss());
  }
  t.log(`RSS rose by ${((peak - before) / 1048576).toFixed(0)} MiB`);
  t.true(peak - before < 96 * 1024 * 1024, `RSS rose by ${((peak - before) / 1048576).toFixed(0)} MiB over 200 MiB of writes`);
  t.is((await db.get(bytes('k199')))?.length, value.length);
});
