// The snapshot archive: round trips through real files, archives built by hand (tar-stream, an
// independent tar implementation) in any member and line order, every hostile archive refused with its
// code and a Consul-style message, gzip bombs stopped early, rewriteForRestore, and bounded memory.

import test, { type ExecutionContext } from 'ava';
import { decode, encode } from '@msgpack/msgpack';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createGzip, gunzipSync, gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import {
  ArchiveError,
  archiveMeta,
  encodeIndexRecord,
  encodeKvsRecord,
  encodeMetaJson,
  encodeStateBinHeader,
  encodeTombstoneRecord,
  readArchive,
  readStateBin,
  rewriteForRestore,
  StateBinError,
  type StateBinItem,
  writeArchive,
  writeArchiveAround,
  stateBinMember,
  type ArchiveErrorCode,
  type ArchiveMeta,
  type ReadArchiveOptions,
} from '../../src/snapshot/index.js';
import { tarOf, type TarMember } from '../support/snapshots.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

function record(type: number, body: Uint8Array): Uint8Array {
  return Buffer.concat([Uint8Array.of(type), body]);
}

function kvs(key: string, index: number, value = 'v'): Uint8Array {
  return record(2, encodeKvsRecord({ Key: key, Flags: 0, Value: text(value), CreateIndex: index, ModifyIndex: index, LockIndex: 0, Session: '' }));
}

function stateBin(lastIndex: number, records: readonly Uint8Array[]): Uint8Array {
  return Buffer.concat([encodeStateBinHeader(lastIndex), ...records]);
}

const sampleState = stateBin(20, [
  kvs('a', 5), kvs('b/c', 7, 'x'.repeat(300)),
  record(5, encodeTombstoneRecord({ Key: 'gone', Index: 9 })),
  record(16, encodeIndexRecord({ Key: 'kvs', Value: 7 })),
  record(16, encodeIndexRecord({ Key: 'tombstones', Value: 9 })),
]);

function metaFor(state: Uint8Array, over: Partial<ArchiveMeta> = {}): ArchiveMeta {
  const base = archiveMeta({
    index: 20, term: 3, configurationIndex: 1, size: state.length, nowMs: 1602222343947, producerVersion: '0.1.0',
    configuration: { servers: [{ id: 'n1', suffrage: 'voter', address: '127.0.0.1:8300' }, { id: 'n2', suffrage: 'nonvoter', address: '127.0.0.1:8301' }] },
  });
  return { ...base, ...over };
}

/** Consul writes no fields of ours. */
function consulMeta(state: Uint8Array, over: Partial<ArchiveMeta> = {}): ArchiveMeta {
  const { Producer: _p, ProducerVersion: _v, FsmFormat: _f, ...rest } = metaFor(state, over);
  return rest;
}

async function* chunked(bytes: Uint8Array, size = 4096): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of source) parts.push(c);
  return Buffer.concat(parts);
}

async function written(state: Uint8Array, meta = metaFor(state)): Promise<Buffer> {
  return collect(writeArchive(meta, chunked(state, 100), { mtime: new Date(1_700_000_000_000) }));
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');


function sums(lines: ReadonlyArray<readonly [string, Uint8Array]>): Uint8Array {
  return text(lines.map(([name, data]) => `${sha(data)}  ${name}\n`).join(''));
}

/** The three members, right hashes, in the order given. */
function members(state: Uint8Array, meta: ArchiveMeta, order: readonly string[] = ['meta.json', 'state.bin', 'SHA256SUMS']): TarMember[] {
  const metaBytes = encodeMetaJson(meta);
  const all: Record<string, Uint8Array> = {
    'meta.json': metaBytes,
    'state.bin': state,
    SHA256SUMS: sums([['state.bin', state], ['meta.json', metaBytes]]),
  };
  return order.map((name) => ({ name, data: all[name] as Uint8Array }));
}

async function handArchive(entries: readonly TarMember[]): Promise<Buffer> {
  return gzipSync(await tarOf(entries));
}

async function refused(t: ExecutionContext, archive: Uint8Array, code: ArchiveErrorCode, message: RegExp, options: Partial<ReadArchiveOptions> = {}): Promise<ArchiveError> {
  const error = await t.throwsAsync(readArchive(chunked(archive, 1000), { records: 'restore', ...options }), { instanceOf: ArchiveError });
  t.is(error?.code, code, error?.message);
  t.regex(error?.message ?? '', message);
  return error as ArchiveError;
}

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-archive-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('round trip through a file: meta, hashes, sorted SHA256SUMS, flat names, mode 0600, one mtime, no padding', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'backup.snap');
  const meta = metaFor(sampleState);
  await pipeline(writeArchive(meta, chunked(sampleState, 7), { mtime: new Date(1_700_000_000_000) }), createWriteStream(file));

  const sink: Uint8Array[] = [];
  let progress = 0;
  const got = await readArchive(createReadStream(file), {
    records: 'restore',
    stateBinSink: async (c) => { sink.push(Buffer.from(c)); },
    onProgress: (n) => { progress = n; },
  });
  t.deepEqual(got.meta, meta);
  t.is(got.stateBin.size, sampleState.length);
  t.is(got.stateBin.sha256, sha(sampleState));
  t.is(got.stateBin.lastIndex, 20);
  t.deepEqual(Buffer.concat(sink), Buffer.from(sampleState));
  t.true(progress > 0);
  t.deepEqual([...got.stateBin.types].map(([type, s]) => [type, s.name, s.count]), [[2, 'KVS', 2], [5, 'Tombstone', 1], [16, 'Index', 2]]);
  const total = [...got.stateBin.types.values()].reduce((n, s) => n + s.bytes, 0);
  t.is(total, sampleState.length, 'record bytes (header counted into the first) add up to the file');

  // An independent tar reader sees exactly Consul's layout.
  const tarBytes = gunzipSync(await collect(createReadStream(file)));
  const extract = tar.extract();
  const seen: Array<{ name: string; mode: number | undefined; mtime: number | undefined; type: string | null | undefined; data: Buffer }> = [];
  const done = (async () => {
    for await (const entry of extract) {
      const data = await collect(entry as AsyncIterable<Uint8Array>);
      seen.push({ name: entry.header.name, mode: entry.header.mode, mtime: entry.header.mtime?.getTime(), type: entry.header.type, data });
    }
  })();
  extract.end(tarBytes);
  await done;
  t.deepEqual(seen.map((s) => s.name), ['meta.json', 'state.bin', 'SHA256SUMS']);
  t.true(seen.every((s) => s.mode === 0o600 && s.mtime === 1_700_000_000_000 && s.type === 'file'));
  const metaText = seen[0]!.data.toString();
  t.true(metaText.endsWith('}\n') && !metaText.includes(' '));
  t.regex(metaText, /^\{"Version":1,"ID":"3-20-1602222343947","Index":20,"Term":3,"Peers":"[^"]+","Configuration":\{"Servers":\[\{"Suffrage":0,"ID":"n1","Address":"127\.0\.0\.1:8300"\},\{"Suffrage":1,/);
  t.regex(metaText, /"Size":\d+,"Producer":"conclave","ProducerVersion":"0\.1\.0","FsmFormat":1\}\n$/);
  t.is(seen[2]!.data.toString(), `${sha(seen[0]!.data)}  meta.json\n${sha(sampleState)}  state.bin\n`);
  const padded = (n: number): number => Math.ceil(n / 512) * 512;
  t.is(tarBytes.length, seen.reduce((n, s) => n + 512 + padded(s.data.length), 0) + 1024, 'two end blocks, no record padding');
});

/** The archive a server's save streams: state.bin compressed on its own first, then the archive around it. */
async function writtenAround(state: Uint8Array, meta = metaFor(state), chunk = 100): Promise<{ archive: Buffer; digest: { size: number; sha256: string } }> {
  const compressed = stateBinMember(chunked(state, chunk));
  const member = await collect(compressed.member);
  const digest = compressed.digest();
  const archive = await collect(writeArchiveAround(meta, digest, chunked(member, 999), { mtime: new Date(1_700_000_000_000) }));
  return { archive, digest };
}

test('a save\'s archive (state.bin compressed first, the archive around it) holds the same tar as writeArchive, and reads back whole', async (t) => {
  const { archive, digest } = await writtenAround(sampleState);
  t.deepEqual(digest, { size: sampleState.length, sha256: sha(sampleState) });
  // Three gzip members: the tar head, state.bin, the tar tail; inflated as one stream they are the tar
  // writeArchive writes.
  t.deepEqual(gunzipSync(archive), gunzipSync(await written(sampleState)));
  const sink: Uint8Array[] = [];
  const got = await readArchive(chunked(archive, 1000), { records: 'restore', stateBinSink: async (c) => void sink.push(c.slice()) });
  t.deepEqual(Buffer.concat(sink), Buffer.from(sampleState));
  t.is(got.stateBin.sha256, sha(sampleState));
  t.is(got.meta.Size, sampleState.length);
  t.is(got.stateBin.lastIndex, 20);
});

test('a save\'s archive is read by gunzip and tar, the tools Consul users restore by hand with', async (t) => {
  const dir = await tempDir(t);
  const big = stateBin(20, Array.from({ length: 3000 }, (_, i) => kvs(`k/${i}`, 5, `value ${i} `.repeat(20))));
  const { archive } = await writtenAround(big, metaFor(big), 4096);
  const file = join(dir, 'backup.snap');
  writeFileSync(file, archive);
  t.deepEqual(execFileSync('tar', ['-tzf', file], { encoding: 'utf8' }).split('\n').filter((l) => l !== ''), ['meta.json', 'state.bin', 'SHA256SUMS']);
  t.deepEqual(execFileSync('tar', ['-xzOf', file, 'state.bin']), Buffer.from(big));
  t.is(execFileSync('gzip', ['-t', file], { encoding: 'utf8' }), '');
});

test('a save\'s archive refuses a state.bin digest whose size is not Size, and a digest asked for too early', async (t) => {
  const compressed = stateBinMember(chunked(sampleState));
  t.throws(() => compressed.digest(), { message: /before its member ended/ });
  const member = await collect(compressed.member);
  const error = await t.throwsAsync(collect(writeArchiveAround(metaFor(sampleState, { Size: sampleState.length + 1 }), compressed.digest(), chunked(member))), { instanceOf: ArchiveError });
  t.is(error?.code, 'size-mismatch');
  // A flipped byte in the compressed state.bin is caught by the reader (gzip's CRC or the hashes).
  const { archive } = await writtenAround(sampleState);
  const bad = Buffer.from(archive);
  const at = Math.floor(bad.length / 2);
  bad.writeUInt8(bad.readUInt8(at) ^ 0x40, at);
  await t.throwsAsync(readArchive(chunked(bad, 1000), { records: 'restore' }), { instanceOf: ArchiveError });
});

test('a save\'s archive cut where one gzip member ends and the next begins is refused as truncated, not read as whole', async (t) => {
  const { archive } = await writtenAround(sampleState);
  const starts: number[] = [];
  for (let i = 1; i + 3 < archive.length; i++) {
    if (archive[i] === 0x1f && archive[i + 1] === 0x8b && archive[i + 2] === 8 && archive[i + 3] === 0) starts.push(i);
  }
  t.true(starts.length >= 2, `member boundaries found: ${starts.join(', ')}`);
  for (const cut of starts) {
    // Each prefix is a complete gzip stream of whole members; only the tar inside shows what is missing.
    t.notThrows(() => gunzipSync(archive.subarray(0, cut)));
    await refused(t, archive.subarray(0, cut), 'tar', /unexpected EOF/);
  }
});

test('a consumer that stops at any point of a save, while the compression changes level, ends it cleanly and closes the source', async (t) => {
  // 4 MiB of text, random bytes, text again: the adaptive compression switches to stored blocks and
  // back. Stopping while a zlib stream's level change was pending used to crash the process (Node's
  // zlib asserts when a stream is destroyed during params()); here the consumer stops after every
  // chunk in turn.
  const text4 = Buffer.alloc(4 * 1024 * 1024, 'all work and no play makes a snapshot a dull boy. ');
  const state = Buffer.concat([text4, randomBytes(6 * 1024 * 1024), text4]);
  const run = async (stopAfter: number): Promise<{ chunks: number; closed: boolean }> => {
    let closed = false;
    async function* source(): AsyncGenerator<Uint8Array> {
      try {
        for (let i = 0; i < state.length; i += 64 * 1024) yield state.subarray(i, i + 64 * 1024);
      } finally {
        closed = true;
      }
    }
    let chunks = 0;
    for await (const _ of stateBinMember(source()).member) if (++chunks >= stopAfter) break;
    return { chunks, closed };
  };
  const whole = await run(Infinity);
  t.true(whole.chunks >= 10, `a whole run yields ${whole.chunks} chunks`);
  for (let stopAfter = 1; stopAfter < whole.chunks; stopAfter++) {
    const r = await run(stopAfter);
    t.is(r.chunks, stopAfter);
    t.true(r.closed, `stopped after ${stopAfter} of ${whole.chunks} chunks: the source is closed`);
  }
});

test('a save stores what does not compress and compresses the rest, segment by segment', async (t) => {
  // 4 MiB of text, 6 MiB of random bytes, 4 MiB of text, in 64 KiB chunks: 1 MiB segments.
  const MiB = 1024 * 1024;
  const text4 = Buffer.alloc(4 * MiB, 'all work and no play makes a snapshot a dull boy. ');
  const state = Buffer.concat([text4, randomBytes(6 * MiB), text4]);
  async function* source(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < state.length; i += 64 * 1024) yield state.subarray(i, i + 64 * 1024);
  }
  const segments: Array<{ inBytes: number; outBytes: number; level: number }> = [];
  const parts: Uint8Array[] = [];
  const m = stateBinMember(source(), { onSegment: (inBytes, outBytes, level) => segments.push({ inBytes, outBytes, level }) });
  for await (const chunk of m.member) parts.push(chunk);
  t.true(gunzipSync(Buffer.concat(parts)).equals(state), "the member inflates to the state");
  t.is(segments.length, 14);
  t.true(segments.every((s) => s.inBytes === MiB));
  const levels = segments.map((s) => s.level).join('');
  // Text compresses at level 1; the first random segment follows text that paid, so it is compressed
  // too, and did not shrink: every later random segment is sampled and stored; text after random is
  // sampled and compressed again at once.
  t.is(levels, '11111000001111', levels);
  for (const s of segments) {
    if (s.level === 0) t.true(s.outBytes >= s.inBytes, 'stored');
    else t.true(s.outBytes < s.inBytes / 10 || segments.indexOf(s) === 4, `compressed: ${s.outBytes} of ${s.inBytes}`);
  }
  t.true(Buffer.concat(parts).length < 7.2 * MiB);
});

test('Peers is the msgpack array of voter addresses as Consul writes it', (t) => {
  const meta = archiveMeta({
    index: 13, term: 2, configurationIndex: 1, size: 5141, nowMs: 1602222343947, producerVersion: '0.1.0',
    configuration: { servers: [{ id: 'a577b288-b354-770e-e909-da0972eb20e8', suffrage: 'voter', address: '127.0.0.1:8300' }] },
  });
  t.is(meta.Peers, 'ka4xMjcuMC4wLjE6ODMwMA==');
  t.is(meta.ID, '2-13-1602222343947');
});

test('members and hash lines in any order, hand-built with tar-stream, with or without our meta fields', async (t) => {
  for (const order of [['SHA256SUMS', 'state.bin', 'meta.json'], ['state.bin', 'meta.json', 'SHA256SUMS'], ['meta.json', 'SHA256SUMS', 'state.bin']]) {
    const got = await readArchive(chunked(await handArchive(members(sampleState, consulMeta(sampleState), order)), 333), { records: 'restore' });
    t.is(got.meta.Producer, undefined);
    t.is(got.stateBin.sha256, sha(sampleState), order.join(','));
  }
});

test('inspect frames every record type and names it; onRecord sees the header first', async (t) => {
  const state = stateBin(20, [record(0, encode({ Node: 'n1', Address: '10.0.0.1' })), kvs('a', 5), record(70, encode({ X: 1 }))]);
  const archive = await written(state);
  const items: string[] = [];
  const got = await readArchive(chunked(archive), { records: 'inspect', onRecord: (i) => items.push(i.kind === 'other' ? i.name : i.kind) });
  t.deepEqual(items, ['header', 'Register', 'KVS', 'Unknown(70)']);
  t.deepEqual([...got.stateBin.types.keys()], [0, 2, 70]);
  const none = await readArchive(chunked(archive), { records: 'none' });
  t.is(none.stateBin.lastIndex, undefined);
  t.is(none.stateBin.types.size, 0);
});

test('hostile: not gzip, empty, and truncated at many offsets', async (t) => {
  await refused(t, text('{"not":"gzip"}'), 'not-gzip', /^failed to decompress snapshot: gzip: invalid header \(.*curl --data-binary @file\)$/);
  await refused(t, new Uint8Array(0), 'not-gzip', /gzip: invalid header \(the body is empty/);
  const archive = await written(sampleState);
  const offsets = new Set<number>();
  for (let i = 0; i < 20; i++) offsets.add(10 + Math.floor(((archive.length - 11) * i) / 19));
  for (const at of offsets) {
    const error = await t.throwsAsync(readArchive(chunked(archive.subarray(0, at), 64), { records: 'restore' }), { instanceOf: ArchiveError });
    t.is(error?.code, 'decompress', `cut at ${at}: ${error?.message}`);
    t.regex(error?.message ?? '', /^failed to decompress snapshot: /);
  }
});

test('hostile: a flipped byte in each member fails the integrity check', async (t) => {
  const archive = await written(sampleState);
  const tarBytes = gunzipSync(archive);
  const metaLen = encodeMetaJson(metaFor(sampleState)).length;
  const stateAt = 512 + Math.ceil(metaLen / 512) * 512 + 512;
  const sumsAt = stateAt + Math.ceil(sampleState.length / 512) * 512 + 512;
  for (const [name, at] of [['meta.json', 512 + 5], ['state.bin', stateAt + 40], ['SHA256SUMS', sumsAt + 3]] as const) {
    const bad = Buffer.from(tarBytes);
    bad[at] = (bad[at] as number) ^ 0x01;
    await refused(t, gzipSync(bad), 'integrity', new RegExp(`^failed checking integrity of snapshot: hash check failed for "${name === 'SHA256SUMS' ? 'meta.json' : name}"$`));
  }
});

test('hostile: wrong, unknown and missing hash lines', async (t) => {
  const meta = metaFor(sampleState);
  const metaBytes = encodeMetaJson(meta);
  const build = (s: Uint8Array): Promise<Buffer> => handArchive([{ name: 'meta.json', data: metaBytes }, { name: 'state.bin', data: sampleState }, { name: 'SHA256SUMS', data: s }]);
  await refused(t, await build(sums([['meta.json', metaBytes], ['state.bin', text('other')]])), 'integrity', /hash check failed for "state.bin"/);
  await refused(t, await build(sums([['meta.json', metaBytes]])), 'integrity', /file missing for "state.bin"/);
  await refused(t, await build(sums([['meta.json', metaBytes], ['state.bin', sampleState], ['extra', sampleState]])), 'integrity', /list missing hash for "extra"/);
  await refused(t, await build(text('nonsense\n')), 'integrity', /SHA256SUMS line 1 is not/);
});

test('hostile: missing, duplicate, extra, path-trick and non-regular members', async (t) => {
  const m = members(sampleState, metaFor(sampleState));
  await refused(t, await handArchive(m.filter((e) => e.name !== 'state.bin')), 'missing-file', /file missing for "state.bin"/);
  await refused(t, await handArchive(m.filter((e) => e.name !== 'SHA256SUMS')), 'missing-file', /file missing for "SHA256SUMS"/);
  await refused(t, await handArchive([...m, m[1]!]), 'duplicate-file', /^duplicate file "state.bin" in snapshot$/);
  await refused(t, await handArchive([...m, { name: 'notes.txt', data: text('hi') }]), 'unexpected-file', /^unexpected file "notes.txt" in snapshot$/);
  for (const name of ['../meta.json', '/state.bin', 'dir/state.bin', './meta.json']) {
    const tricked = m.map((e) => (e.name === 'state.bin' ? { ...e, name } : e));
    await refused(t, await handArchive(tricked), 'unexpected-file', new RegExp(`^unexpected file "${name.replace(/[./]/g, '\\$&')}" in snapshot`));
  }
  const symlinked = m.map((e) => (e.name === 'state.bin' ? { name: 'state.bin', type: 'symlink' as const, linkname: '/etc/passwd' } : e));
  await refused(t, await handArchive(symlinked), 'unexpected-file', /"state.bin" in snapshot: it is a symbolic link, not a regular file/);
  await refused(t, await handArchive([{ name: 'meta.json', type: 'directory' }, ...m]), 'unexpected-file', /it is a directory/);
});

/** gzip of a tar whose state.bin member announces `zeros` bytes and holds that many zeros, streamed. */
async function zeroBomb(before: readonly TarMember[], zeros: number, trailing = 0): Promise<Buffer> {
  const head = await tarOf([...before, { name: 'state.bin', data: new Uint8Array(0) }]);
  // Patch the last member's size field: re-encode its header by hand-building with tar-stream is too eager
  // (it wants the data), so take the header block tar-stream wrote and fix size and checksum.
  const headerAt = head.length - 1024 - 512;
  const header = Buffer.from(head.subarray(headerAt, headerAt + 512));
  header.write(zeros.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  async function* body(): AsyncGenerator<Uint8Array> {
    yield head.subarray(0, headerAt);
    yield header;
    const block = new Uint8Array(1024 * 1024);
    for (let left = zeros + trailing; left > 0; left -= block.length) yield block.subarray(0, Math.min(block.length, left));
  }
  return collect(await pipelineToBuffer(body()));
}

async function pipelineToBuffer(source: AsyncIterable<Uint8Array>): Promise<AsyncIterable<Uint8Array>> {
  const gzip = createGzip({ level: 1 });
  const out = collect(gzip as AsyncIterable<Uint8Array>);
  await pipeline(source, gzip);
  return chunked(await out, 1 << 20);
}

test('hostile: gzip bombs stop early, before inflating what they hold', async (t) => {
  const bombBytes = 200 * 1024 * 1024;
  const small = metaFor(sampleState);
  // A 200 MiB state.bin after a meta.json announcing a small Size: refused at the member's header.
  const bomb = await zeroBomb([{ name: 'meta.json', data: encodeMetaJson(small) }], bombBytes);
  t.true(bomb.length < bombBytes / 100, `the bomb is small compressed (${bomb.length})`);
  let read = 0;
  const error = await refused(t, bomb, 'size-mismatch', /announces Size \d+ but state.bin holds 209715200 bytes/, { onProgress: (n) => { read = n; } });
  t.true(read < bomb.length / 4, `stopped after ${read} of ${bomb.length} compressed bytes: ${error.message}`);

  // The same bomb first in the archive: refused by the state.bin limit.
  await refused(t, await zeroBomb([], bombBytes), 'too-large', /state.bin in snapshot is 209715200 bytes, above the limit of 1048576/, { limits: { stateBinMaxBytes: 1024 * 1024 } });

  // A valid archive followed by 200 MiB of zeros inside the gzip stream.
  const tarBytes = gunzipSync(await written(sampleState));
  async function* trailing(): AsyncGenerator<Uint8Array> {
    yield tarBytes;
    const block = new Uint8Array(1024 * 1024);
    for (let i = 0; i < 200; i++) yield block;
  }
  const trailingBomb = await collect(await pipelineToBuffer(trailing()));
  let read2 = 0;
  await refused(t, trailingBomb, 'trailing-data', /^at least \d+ unread uncompressed bytes remain$/, { onProgress: (n) => { read2 = n; } });
  t.true(read2 < trailingBomb.length / 4, `stopped after ${read2} of ${trailingBomb.length} compressed bytes`);
});

// Serial: it runs alone in this worker, so other tests' allocations do not move the RSS it watches.
test.serial('hostile: a gzip bomb handed over in one piece is inflated only as far as the reader asks (bounded memory)', async (t) => {
  // zlib inflates on the thread pool and stops at the stream's backpressure: however large an input
  // chunk (here the whole compressed archive at once), only about one output chunk runs ahead of the
  // reader. meta.json announces the 200 MiB of zeros, so the reader goes through all of them (hashing,
  // at the pace of a slow sink) before it refuses the archive; were they inflated ahead of it, they
  // would be held at once.
  const bombBytes = 200 * 1024 * 1024;
  const bomb = await zeroBomb([{ name: 'meta.json', data: encodeMetaJson({ ...metaFor(sampleState), Size: bombBytes }) }], bombBytes);
  t.true(bomb.length < bombBytes / 100, `the bomb is small compressed (${bomb.length})`);
  const before = process.memoryUsage.rss();
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 1);
  let sunk = 0;
  try {
    const slowSink = async (chunk: Uint8Array): Promise<void> => {
      sunk += chunk.length;
      await new Promise((resolve) => setImmediate(resolve));
    };
    await t.throwsAsync(readArchive(chunked(bomb, bomb.length), { records: 'restore', stateBinSink: slowSink }), { instanceOf: ArchiveError });
  } finally {
    clearInterval(sampler);
  }
  peak = Math.max(peak, process.memoryUsage.rss());
  t.is(sunk, bombBytes, 'the reader went through every announced byte');
  t.log(`RSS rose by ${((peak - before) / 1048576).toFixed(1)} MiB`);
  t.true(peak - before < 96 * 1024 * 1024, `RSS rose by ${((peak - before) / 1048576).toFixed(1)} MiB while the bomb was read`);
});

test('trailing bytes after the tar: garbage refused, zero padding to a 10 KiB record accepted', async (t) => {
  const tarBytes = gunzipSync(await written(sampleState));
  await refused(t, gzipSync(Buffer.concat([tarBytes, text('garbage')])), 'trailing-data', /^7 unread uncompressed bytes remain$/);
  const record = Math.ceil(tarBytes.length / 10240) * 10240;
  const padded = Buffer.concat([tarBytes, new Uint8Array(record - tarBytes.length)]);
  await t.notThrowsAsync(readArchive(chunked(gzipSync(padded)), { records: 'restore' }));
  const over = Buffer.concat([padded, new Uint8Array(512)]);
  await refused(t, gzipSync(over), 'trailing-data', /unread uncompressed bytes remain/);
  await refused(t, Buffer.concat([gzipSync(tarBytes), text('junk after the gzip stream')]), 'decompress', /failed to decompress snapshot/);
});

test('hostile: Size, member limits and meta.json contents', async (t) => {
  await refused(t, await handArchive(members(sampleState, metaFor(sampleState, { Size: 2 ** 40 }))), 'size-mismatch', /announces Size 1099511627776 but state.bin holds/);
  await refused(t, await handArchive(members(sampleState, metaFor(sampleState, { Size: 3 }), ['state.bin', 'meta.json', 'SHA256SUMS'])), 'size-mismatch', /Size 3/);
  await refused(t, await written(sampleState), 'too-large', /meta.json in snapshot is \d+ bytes, above the limit of 10$/, { limits: { metaJsonMaxBytes: 10 } });
  const metaCases: Array<[string, RegExp]> = [
    ['{"Version":1}', /field "ID" is missing/],
    ['[1,2]', /must be a JSON object/],
    ['{"Version":2', /failed to decode snapshot metadata: /],
    [JSON.stringify({ ...metaFor(sampleState), Version: 2 }), /unsupported snapshot version 2/],
    [JSON.stringify({ ...metaFor(sampleState), Index: '20' }), /field "Index" must be an integer/],
    [JSON.stringify({ ...metaFor(sampleState), Configuration: { Servers: [{ Suffrage: 5, ID: 'x', Address: 'y' }] } }), /Suffrage" must be 0, 1 or 2/],
  ];
  for (const [json, message] of metaCases) {
    const metaBytes = text(json + '\n');
    const archive = await handArchive([
      { name: 'meta.json', data: metaBytes }, { name: 'state.bin', data: sampleState },
      { name: 'SHA256SUMS', data: sums([['meta.json', metaBytes], ['state.bin', sampleState]]) },
    ]);
    const error = await refused(t, archive, 'metadata', message);
    t.regex(error.message, /^failed to decode snapshot metadata: /);
  }
});

test('hostile: records refused by type name and producer, malformed state.bin, indexes above Index', async (t) => {
  const query = stateBin(20, [kvs('a', 5), record(7, encode({ ID: 'q1' }))]);
  await refused(t, await handArchive(members(query, consulMeta(query))), 'unsupported-record', /type 7 \(PreparedQuery\).*cannot restore.*written by consul \(version unknown\)$/);
  await refused(t, await written(query), 'unsupported-record', /\(PreparedQuery\).*written by conclave 0\.1\.0$/);
  const badRegister = stateBin(20, [record(0, encode({ Address: '10.0.0.1' }))]);
  await refused(t, await written(badRegister), 'state-bin', /record 1 \(Register.*field "Node" is missing/);
  const enterprise = stateBin(20, [record(70, encode({ X: 1 }))]);
  await refused(t, await written(enterprise), 'unsupported-record', /msg type 70 is a Consul Enterprise log entry\. Consul CE cannot restore it, and Conclave cannot restore it yet .*written by conclave/);
  const unknown = stateBin(20, [record(60, encode({ X: 1 }))]);
  await refused(t, await written(unknown), 'unsupported-record', /^Unrecognized msg type 60 /);

  const malformed = Buffer.concat([encodeStateBinHeader(20), Uint8Array.of(2), encode({ Key: 7 })]);
  await refused(t, await written(malformed), 'state-bin', /state.bin record 1 \(KVS, byte offset \d+\): field "Key"/);
  const cut = sampleState.subarray(0, sampleState.length - 3);
  await refused(t, await written(cut), 'state-bin', /cut short/);
  await refused(t, await written(stateBin(30, [kvs('a', 5)])), 'state-bin', /LastIndex 30 is above the snapshot's Index 20/);
  await refused(t, await written(stateBin(20, [kvs('a', 25)])), 'state-bin', /record 1 \(KVS, byte offset \d+\) has index 25, above the snapshot's Index 20/);
  // Integrity comes first: a corrupt archive whose state.bin is also malformed is reported as corrupt.
  const metaBytes = encodeMetaJson(metaFor(malformed));
  const both = await handArchive([{ name: 'meta.json', data: metaBytes }, { name: 'state.bin', data: malformed }, { name: 'SHA256SUMS', data: sums([['meta.json', metaBytes], ['state.bin', sampleState]]) }]);
  await refused(t, both, 'integrity', /hash check failed for "state.bin"/);
});

test('errors of the source and of the sink propagate unchanged', async (t) => {
  const archive = await written(sampleState);
  const boom = new Error('disk full');
  const fromSink = await t.throwsAsync(readArchive(chunked(archive), { records: 'restore', stateBinSink: async () => { throw boom; } }));
  t.is(fromSink, boom);
  const lost = new Error('connection reset');
  async function* failing(): AsyncGenerator<Uint8Array> {
    yield archive.subarray(0, 100);
    throw lost;
  }
  const fromSource = await t.throwsAsync(readArchive(failing(), { records: 'restore' }));
  t.is(fromSource, lost);
});

test('the writer refuses a state.bin that is not exactly Size bytes, with Consul\'s write-side text', async (t) => {
  for (const size of [sampleState.length - 1, sampleState.length + 1]) {
    const error = await t.throwsAsync(collect(writeArchive(metaFor(sampleState, { Size: size }), chunked(sampleState, 10))), { instanceOf: ArchiveError });
    t.is(error?.code, 'size-mismatch');
    t.regex(error?.message ?? '', /^failed to write snapshot metadata: state.bin /);
  }
});

test('rewriteForRestore replaces only the header, with {LastIndex, RestoreIndex} at the restore index; records pass byte for byte', async (t) => {
  for (const size of [1, 5, 4096]) {
    const out = await collect(rewriteForRestore(chunked(sampleState, size), 100));
    const header = encodeStateBinHeader(100, 100);
    t.deepEqual(decode(header), { LastIndex: 100, RestoreIndex: 100 });
    t.deepEqual(Buffer.from(out.subarray(0, header.length)), Buffer.from(header));
    t.deepEqual(Buffer.from(out.subarray(header.length)), Buffer.from(sampleState.subarray(encodeStateBinHeader(20).length)));
    const items: StateBinItem[] = [];
    for await (const item of readStateBin(chunked(out))) items.push(item);
    t.like(items[0], { kind: 'header', lastIndex: 100, restoreIndex: 100 });
  }
  // A restore index equal to LastIndex is fine; below it is refused; a bad or missing header is refused.
  t.true((await collect(rewriteForRestore(chunked(stateBin(9, [])), 9))).length > 0);
  await t.throwsAsync(collect(rewriteForRestore(chunked(stateBin(9, [])), 5)), { instanceOf: ArchiveError, message: /LastIndex 9 is above it/ });
  await t.throwsAsync(collect(rewriteForRestore(chunked(new Uint8Array(0)), 5)), { instanceOf: StateBinError, message: /ends inside its header/ });
  await t.throwsAsync(collect(rewriteForRestore(chunked(encode({ Last: 1 })), 5)), { instanceOf: StateBinError, message: /"LastIndex" is missing/ });
  await t.throwsAsync(collect(rewriteForRestore(chunked(Uint8Array.of(0xc1)), 5)), { instanceOf: StateBinError, message: /header is not a msgpack value/ });
  // A RestoreIndex above LastIndex is refused by the reader (only rewriteForRestore writes the field).
  const bad = Buffer.concat([encode({ LastIndex: 5, RestoreIndex: 6 })]);
  await t.throwsAsync(async () => { for await (const item of readStateBin(chunked(bad))) void item; }, { instanceOf: StateBinError, message: /"RestoreIndex" must be an integer in 0..LastIndex \(5\)/ });
});
