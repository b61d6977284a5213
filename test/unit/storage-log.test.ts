// LogStore on a real LevelDB directory: what one round writes is what a restart reads back, every
// round is validated before anything is written, and damage on disk is reported with the index.

import test, { type ExecutionContext } from 'ava';
import { Level } from 'level';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Configuration, Entry, SnapshotMeta } from '../../src/raft/types.js';
import { LogStore, StorageError } from '../../src/storage/index.js';
import { entryKey, encodeEntry, encodeFormat, encodeStart, formatKey, startKey, decodeFormat } from '../../src/storage/codec.js';
import { InvariantError } from '../../src/base/index.js';

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function openStore(t: ExecutionContext, dir: string): Promise<LogStore> {
  const store = await LogStore.open(dir);
  t.teardown(() => store.close());
  return store;
}

const config3: Configuration = {
  servers: [
    { id: 'a', suffrage: 'voter' },
    { id: 'b', suffrage: 'voter' },
    { id: 'c', suffrage: 'nonvoter' },
  ],
};

const normal = (index: number, term: number, text = `cmd-${index}`): Entry => ({
  index, term, kind: 'normal', data: new TextEncoder().encode(text),
});
const noop = (index: number, term: number): Entry => ({ index, term, kind: 'noop', data: new Uint8Array() });
const configEntry = (index: number, term: number, config: Configuration): Entry => ({
  index, term, kind: 'config', data: new Uint8Array(), config,
});
const range = (lo: number, hi: number, term: number): Entry[] =>
  Array.from({ length: hi - lo + 1 }, (_, i) => normal(lo + i, term));

/** Closes the store and opens the directory again, as a restart does. */
async function reopen(t: ExecutionContext, store: LogStore): Promise<LogStore> {
  await store.close();
  return openStore(t, store.dir);
}

/** Writes raw bytes under the store's keys, standing in for damage on disk. */
async function tamper(dir: string, edit: (db: Level<Buffer, Buffer>) => Promise<void>): Promise<void> {
  const db = new Level<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  await edit(db);
  await db.close();
}

test('a fresh store is empty: term 0, no vote, no base, no entries', async (t) => {
  const store = await openStore(t, await tempDir(t));
  t.deepEqual(await store.load(), { hardState: { term: 0, vote: '' }, entries: [] });
  t.is(store.lastIndex(), 0);
  t.is(store.firstIndex(), 1);
  t.deepEqual(await store.entries(1, 1), []);
});

test('entries of every kind and the hard state round-trip, also across a restart', async (t) => {
  let store = await openStore(t, await tempDir(t));
  const entries = [configEntry(1, 1, config3), noop(2, 1), normal(3, 1), normal(4, 2, ''), normal(5, 2, 'x'.repeat(70_000))];
  await store.persist({ entries, hardState: { term: 2, vote: 'b' }, sync: true });
  t.deepEqual(await store.entries(1, 6), entries);
  t.deepEqual(await store.entries(2, 4), entries.slice(1, 3));
  const expected = { hardState: { term: 2, vote: 'b' }, entries };
  t.deepEqual(await store.load(), expected);
  store = await reopen(t, store);
  t.deepEqual(await store.load(), expected);
  t.is(store.lastIndex(), 5);
  t.deepEqual(store.hardState(), { term: 2, vote: 'b' });
});

test('one round truncates, appends and sets the hard state; a restart sees exactly that', async (t) => {
  let store = await openStore(t, await tempDir(t));
  await store.persist({ entries: range(1, 6, 1), hardState: { term: 1, vote: 'a' }, sync: true });
  const replacement = [normal(4, 3, 'new-4'), normal(5, 3, 'new-5')];
  await store.persist({ truncateFrom: 4, entries: replacement, hardState: { term: 3, vote: '' }, sync: true });
  const expected = { hardState: { term: 3, vote: '' }, entries: [...range(1, 3, 1), ...replacement] };
  t.deepEqual(await store.load(), expected);
  t.is(store.lastIndex(), 5);
  store = await reopen(t, store);
  t.deepEqual(await store.load(), expected);
  await t.throwsAsync(store.entries(1, 7), { code: 'LOG_RANGE_UNAVAILABLE' } as never);
});

test('truncating without new entries shortens the log; entries overwrite in place without a truncation', async (t) => {
  let store = await openStore(t, await tempDir(t));
  await store.persist({ entries: range(1, 5, 1), sync: true });
  await store.persist({ truncateFrom: 3, entries: [], sync: false });
  t.is(store.lastIndex(), 2);
  await store.persist({ entries: [normal(2, 1, 'same index, same term'), normal(3, 2)], sync: true });
  store = await reopen(t, store);
  t.deepEqual((await store.load()).entries, [normal(1, 1), normal(2, 1, 'same index, same term'), normal(3, 2)]);
});

test('a snapshot base replaces the whole log, in one batch with the entries after it', async (t) => {
  let store = await openStore(t, await tempDir(t));
  await store.persist({ entries: range(1, 8, 1), hardState: { term: 1, vote: 'a' }, sync: true });
  const base: SnapshotMeta = { index: 20, term: 3, configuration: config3, configurationIndex: 15 };
  await store.persist({ snapshotBase: base, entries: [noop(21, 4)], hardState: { term: 4, vote: 'c' }, sync: true });
  const expected = { hardState: { term: 4, vote: 'c' }, snapshot: base, entries: [noop(21, 4)] };
  t.deepEqual(await store.load(), expected);
  t.is(store.firstIndex(), 21);
  store = await reopen(t, store);
  t.deepEqual(await store.load(), expected);
  const err = await t.throwsAsync(store.entries(5, 6));
  t.is((err as StorageError).code, 'LOG_RANGE_UNAVAILABLE');
  t.regex(err!.message, /compacted: the log in .* starts at 21/);
});

test('a snapshot base below the stored log also drops every entry (the log restarts after it)', async (t) => {
  let store = await openStore(t, await tempDir(t));
  const high: SnapshotMeta = { index: 50, term: 5, configuration: config3, configurationIndex: 0 };
  await store.persist({ snapshotBase: high, entries: range(51, 55, 5), sync: true });
  const low: SnapshotMeta = { index: 30, term: 4, configuration: config3, configurationIndex: 0 };
  await store.persist({ snapshotBase: low, entries: [], sync: true });
  store = await reopen(t, store);
  t.deepEqual(await store.load(), { hardState: { term: 0, vote: '' }, snapshot: low, entries: [] });
  t.is(store.lastIndex(), 30);
});

test('compact drops the entries up to the new base and keeps the rest, across a restart', async (t) => {
  let store = await openStore(t, await tempDir(t));
  await store.persist({ entries: [normal(1, 1), normal(2, 1), configEntry(3, 1, config3), ...range(4, 10, 2)], sync: true });
  const base: SnapshotMeta = { index: 6, term: 2, configuration: config3, configurationIndex: 3 };
  await store.compact(base);
  t.is(store.firstIndex(), 7);
  t.deepEqual(await store.entries(7, 9), range(7, 8, 2));
  await t.throwsAsync(store.entries(6, 8), { code: 'LOG_RANGE_UNAVAILABLE' } as never);
  store = await reopen(t, store);
  t.deepEqual(await store.load(), { hardState: { term: 0, vote: '' }, snapshot: base, entries: range(7, 10, 2) });
  await store.compact({ ...base, index: 4 }); // at or below the base: nothing to do
  t.is(store.firstIndex(), 7);
});

test('compact keeps trailing entries from keepFrom, on disk and across a restart', async (t) => {
  let store = await openStore(t, await tempDir(t));
  await store.persist({ entries: [configEntry(1, 1, config3), ...range(2, 20, 2)], hardState: { term: 2, vote: 'a' }, sync: true });
  const base: SnapshotMeta = { index: 15, term: 2, configuration: config3, configurationIndex: 1 };
  await store.compact(base, { keepFrom: 11 });
  t.is(store.firstIndex(), 11);
  t.deepEqual(await store.entries(11, 14), range(11, 13, 2));
  await t.throwsAsync(store.entries(10, 12), { code: 'LOG_RANGE_UNAVAILABLE', message: /starts at 11/ } as never);
  store = await reopen(t, store);
  t.is(store.firstIndex(), 11);
  t.deepEqual(await store.load(), { hardState: { term: 2, vote: 'a' }, snapshot: base, entries: range(11, 20, 2) });

  // A later compaction moves the start forward; a keepFrom below the start brings nothing back.
  const base2: SnapshotMeta = { ...base, index: 18 };
  await store.compact(base2, { keepFrom: 5 });
  t.is(store.firstIndex(), 11);
  const base3: SnapshotMeta = { ...base, index: 19 };
  await store.compact(base3, { keepFrom: 17 });
  t.is(store.firstIndex(), 17);
  store = await reopen(t, store);
  t.deepEqual((await store.load()).entries, range(17, 20, 2));

  // Truncating right after the base keeps the trailing entries; appending continues from there.
  await store.persist({ truncateFrom: 20, entries: [noop(20, 3)], sync: true });
  store = await reopen(t, store);
  t.deepEqual((await store.load()).entries, [...range(17, 19, 2), noop(20, 3)]);

  // Compacting with the default keeps nothing at or below the base, and drops the start record.
  await store.compact({ ...base, index: 20, term: 3 });
  t.is(store.firstIndex(), 21);
  store = await reopen(t, store);
  t.deepEqual((await store.load()).entries, []);
  t.is(store.lastIndex(), 20);
});

test('a snapshot base replaces trailing entries too', async (t) => {
  let store = await openStore(t, await tempDir(t));
  await store.persist({ entries: range(1, 10, 1), sync: true });
  await store.compact({ index: 8, term: 1, configuration: config3, configurationIndex: 0 }, { keepFrom: 4 });
  const installed: SnapshotMeta = { index: 30, term: 4, configuration: config3, configurationIndex: 0 };
  await store.persist({ snapshotBase: installed, entries: [noop(31, 4)], sync: true });
  t.is(store.firstIndex(), 31);
  store = await reopen(t, store);
  t.deepEqual(await store.load(), { hardState: { term: 0, vote: '' }, snapshot: installed, entries: [noop(31, 4)] });
});

test('damage to trailing entries or their start record is reported', async (t) => {
  const base: SnapshotMeta = { index: 10, term: 2, configuration: config3, configurationIndex: 0 };
  const make = async (): Promise<string> => {
    const dir = await tempDir(t);
    const store = await LogStore.open(dir);
    await store.persist({ entries: [...range(1, 5, 1), ...range(6, 12, 2)], sync: true });
    await store.compact(base, { keepFrom: 6 });
    await store.close();
    return dir;
  };
  const expectCorrupt = async (edit: (db: Level<Buffer, Buffer>) => Promise<void>, message: RegExp) => {
    const dir = await make();
    await tamper(dir, edit);
    await t.throwsAsync(LogStore.open(dir), { code: 'LOG_CORRUPT', message } as never);
  };
  await expectCorrupt((db) => db.del(entryKey(6)), /the first entry is 7 but the log starts at 6: entry 6 is missing/);
  await expectCorrupt((db) => db.put(entryKey(5), encodeEntry(normal(5, 1))), /entry 5 is below the log's first index 6/);
  await expectCorrupt((db) => db.put(startKey, encodeStart(11)), /start record says the log starts at 11, which is not at or below its base 10/);
  await expectCorrupt((db) => db.put(entryKey(10), encodeEntry(normal(10, 1))), /entry 10 has term 1 but the log base at 10 has term 2/);
  await expectCorrupt(async (db) => {
    for (const i of [9, 10, 11, 12]) await db.del(entryKey(i));
  }, /trailing entries from 6 end at 8, below the log base 10/);
  // Undamaged, the same store opens.
  const store = await openStore(t, await make());
  t.is(store.firstIndex(), 6);
});

test('a format-1 store is read and upgraded to format 2; an unknown format is refused', async (t) => {
  const dir = await tempDir(t);
  let store = await LogStore.open(dir);
  await store.persist({ entries: range(1, 3, 1), sync: true });
  await store.close();
  await tamper(dir, (db) => db.put(formatKey, encodeFormat(1)));
  store = await LogStore.open(dir);
  t.deepEqual((await store.load()).entries, range(1, 3, 1));
  await store.close();
  let format: number | undefined;
  await tamper(dir, async (db) => {
    const d = decodeFormat((await db.get(formatKey)) as Buffer);
    format = d.ok ? d.value : undefined;
  });
  t.is(format, 2);
  await tamper(dir, (db) => db.put(formatKey, encodeFormat(3)));
  await t.throwsAsync(LogStore.open(dir), { code: 'LOG_CORRUPT', message: /has format 3; this version of Conclave reads formats 1 and 2/ } as never);
});

test('compact refuses a base that disagrees with the stored log, and changes nothing', async (t) => {
  const store = await openStore(t, await tempDir(t));
  await store.persist({ entries: [configEntry(1, 1, config3), ...range(2, 5, 2)], sync: true });
  const good: SnapshotMeta = { index: 4, term: 2, configuration: config3, configurationIndex: 1 };
  await t.throwsAsync(store.compact({ ...good, term: 1 }), { instanceOf: InvariantError, message: /term 1 = stored term 2 at 4/ });
  await t.throwsAsync(store.compact({ ...good, configurationIndex: 0 }), { instanceOf: InvariantError });
  await t.throwsAsync(store.compact({ ...good, configuration: { servers: [] } }), { instanceOf: InvariantError });
  await t.throwsAsync(store.compact({ ...good, index: 9 }), { instanceOf: InvariantError, message: /<= last stored index 5/ });
  t.is(store.firstIndex(), 1);
  t.is((await store.load()).entries.length, 5);
});

test('rounds that would break the log are refused before anything is written', async (t) => {
  const store = await openStore(t, await tempDir(t));
  await store.persist({ entries: range(1, 3, 2), hardState: { term: 2, vote: 'a' }, sync: true });
  const refuse = async (round: Parameters<LogStore['persist']>[0], message: RegExp) =>
    t.throwsAsync(store.persist(round), { instanceOf: InvariantError, message });
  await refuse({ entries: [normal(5, 2)], sync: true }, /first entry 5 <= last index 3 \+ 1/);
  await refuse({ entries: [normal(4, 2), normal(6, 2)], sync: true }, /entry 6 follows 4/);
  await refuse({ entries: [normal(4, 1)], sync: true }, /term 1 >= term 2 of entry 3/);
  await refuse({ entries: [normal(2, 3)], sync: true }, /kept entry 3 term 2 >= term 3/);
  await refuse({ hardState: { term: 1, vote: '' }, entries: [], sync: true }, /term 1 >= stored term 2/);
  await refuse({ hardState: { term: 2, vote: 'b' }, entries: [], sync: true }, /vote in term 2 stays "a"/);
  await refuse({ entries: [{ index: 4, term: 2, kind: 'noop', data: new Uint8Array([1]) }], sync: true }, /noop entry has 1 data bytes/);
  await refuse({ truncateFrom: 3, entries: [normal(3, 2), normal(9, 2)], hardState: { term: 5, vote: '' }, sync: true }, /entry 9 follows 3/);
  t.deepEqual(await store.load(), { hardState: { term: 2, vote: 'a' }, entries: range(1, 3, 2) });
});

test('overlapping calls are applied one at a time, in call order', async (t) => {
  const store = await openStore(t, await tempDir(t));
  const writes = range(1, 50, 1).map((e) => store.persist({ entries: [e], sync: false }));
  writes.push(store.persist({ truncateFrom: 41, entries: [normal(41, 2, 'late')], hardState: { term: 2, vote: '' }, sync: true }));
  await Promise.all(writes);
  const { entries } = await store.load();
  t.is(entries.length, 41);
  t.deepEqual(entries.at(-1), normal(41, 2, 'late'));
});

test('entries() stops at maxBytes but always returns one entry', async (t) => {
  const store = await openStore(t, await tempDir(t));
  await store.persist({ entries: range(1, 10, 1).map((e) => normal(e.index, 1, 'x'.repeat(100))), sync: true });
  t.is((await store.entries(1, 11, { maxBytes: 350 })).length, 3);
  t.is((await store.entries(1, 11, { maxBytes: 10 })).length, 1);
  t.is((await store.entries(4, 11)).length, 7);
});

test('a damaged entry value is reported with its index and directory', async (t) => {
  const dir = await tempDir(t);
  const store = await LogStore.open(dir);
  await store.persist({ entries: range(1, 5, 1), sync: true });
  await store.close();
  await tamper(dir, async (db) => {
    const value = (await db.get(entryKey(3))) as Buffer;
    const last = value.length - 1;
    value.writeUInt8(value.readUInt8(last) ^ 0x01, last); // one flipped bit in the data
    await db.put(entryKey(3), value);
  });
  const err = await t.throwsAsync(LogStore.open(dir), { instanceOf: StorageError });
  t.is(err!.code, 'LOG_CORRUPT');
  t.is(err!.index, 3);
  t.true(err!.message.includes(dir));
  t.regex(err!.message, /entry 3 is invalid: CRC-32 mismatch/);
});

test('a value that is not a record at all is reported as corruption, not a crash', async (t) => {
  const dir = await tempDir(t);
  const store = await LogStore.open(dir);
  await store.persist({ entries: range(1, 2, 1), sync: true });
  await store.close();
  await tamper(dir, (db) => db.put(entryKey(2), Buffer.from('garbage')));
  await t.throwsAsync(LogStore.open(dir), { code: 'LOG_CORRUPT', message: /entry 2 is invalid/ } as never);
});

test('an entry stored under the wrong key is reported', async (t) => {
  const dir = await tempDir(t);
  const store = await LogStore.open(dir);
  await store.persist({ entries: range(1, 3, 1), sync: true });
  await store.close();
  await tamper(dir, (db) => db.put(entryKey(3), encodeEntry(normal(7, 1))));
  await t.throwsAsync(LogStore.open(dir), { code: 'LOG_CORRUPT', message: /entry 3 is invalid: the value holds entry 7/ } as never);
});

test('a gap in the log is reported with the missing indexes', async (t) => {
  const dir = await tempDir(t);
  const store = await LogStore.open(dir);
  await store.persist({ entries: range(1, 6, 1), sync: true });
  await store.close();
  await tamper(dir, async (db) => {
    await db.del(entryKey(3));
    await db.del(entryKey(4));
  });
  const err = await t.throwsAsync(LogStore.open(dir), { instanceOf: StorageError });
  t.is(err!.code, 'LOG_CORRUPT');
  t.is(err!.index, 3);
  t.regex(err!.message, /entry 5 follows entry 2: entries 3\.\.4 are missing/);
});

test('an entry at or below the log base is reported', async (t) => {
  const dir = await tempDir(t);
  const store = await LogStore.open(dir);
  const base: SnapshotMeta = { index: 10, term: 2, configuration: config3, configurationIndex: 0 };
  await store.persist({ snapshotBase: base, entries: range(11, 12, 2), sync: true });
  await store.close();
  await tamper(dir, (db) => db.put(entryKey(9), encodeEntry(normal(9, 2))));
  await t.throwsAsync(LogStore.open(dir), { code: 'LOG_CORRUPT', message: /entry 9 is at or below the log base 10/ } as never);
});

test('a log that does not start right after its base is reported', async (t) => {
  const dir = await tempDir(t);
  const store = await LogStore.open(dir);
  await store.persist({ entries: range(1, 4, 1), sync: true });
  await store.close();
  await tamper(dir, (db) => db.del(entryKey(1)));
  await t.throwsAsync(LogStore.open(dir), { code: 'LOG_CORRUPT', message: /first entry is 2 but the log base is 0/ } as never);
});

test('terms that decrease along the log are reported', async (t) => {
  const dir = await tempDir(t);
  const store = await LogStore.open(dir);
  await store.persist({ entries: range(1, 4, 3), sync: true });
  await store.close();
  await tamper(dir, (db) => db.put(entryKey(4), encodeEntry(normal(4, 2))));
  await t.throwsAsync(LogStore.open(dir), { code: 'LOG_CORRUPT', message: /entry 4 has term 2 but entry 3 has term 3/ } as never);
});

test('a directory held by another store is refused with a clear error', async (t) => {
  const dir = await tempDir(t);
  await openStore(t, dir);
  const err = await t.throwsAsync(LogStore.open(dir), { instanceOf: StorageError });
  t.is(err!.code, 'LOG_OPEN_FAILED');
  t.regex(err!.message, /another process/);
});

test('a closed store refuses further calls', async (t) => {
  const store = await LogStore.open(await tempDir(t));
  await store.close();
  await t.throwsAsync(store.persist({ entries: [normal(1, 1)], sync: true }), { code: 'LOG_UNUSABLE' } as never);
  await t.throwsAsync(store.entries(1, 1), { code: 'LOG_UNUSABLE' } as never);
  await t.notThrowsAsync(store.close());
});

test('server addresses in configurations survive entries and the base, and stay optional', async (t) => {
  const dir = await tempDir(t);
  const withAddresses: Configuration = {
    servers: [
      { id: 'a', suffrage: 'voter', address: '127.0.0.1:8300' },
      { id: 'b', suffrage: 'nonvoter', address: '127.0.0.1:8301' },
      { id: 'c', suffrage: 'voter' },
    ],
  };
  let store = await LogStore.open(dir);
  await store.persist({ entries: [configEntry(1, 1, withAddresses)], hardState: { term: 1, vote: '' }, sync: true });
  await store.compact({ index: 1, term: 1, configuration: withAddresses, configurationIndex: 1 });
  await store.persist({ entries: [configEntry(2, 1, withAddresses)], sync: true });
  await store.close();
  store = await openStore(t, dir);
  const loaded = await store.load();
  t.deepEqual(loaded.snapshot?.configuration, withAddresses);
  t.deepEqual(loaded.entries[0]?.config, withAddresses);
});
