// Helpers for tests of snapshots through the product itself: save over HTTP, decode an archive into
// comparable state, build archives from chosen records. Test-only.

import { encode } from '@msgpack/msgpack';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import {
  archiveMeta,
  encodeMetaJson,
  encodeIndexRecord,
  encodeKvsRecord,
  encodeStateBinHeader,
  readArchive,
  writeArchive,
  type ArchiveMeta,
  type DirEntry,
} from '../../src/snapshot/index.js';

export interface DecodedState {
  readonly meta: ArchiveMeta;
  readonly lastIndex: number;
  /** KV entries by key: value as text, flags, and their indexes. */
  readonly kv: ReadonlyMap<string, { value: string; flags: number | bigint; createIndex: number; modifyIndex: number }>;
  readonly tombstones: readonly string[];
  readonly indexes: ReadonlyMap<string, number>;
  /** Who holds each locked key (session ID), by key. */
  readonly locks: ReadonlyMap<string, string>;
  /** Sessions as `<ID> <Node> <Behavior> <TTL>`, sorted. */
  readonly sessions: readonly string[];
  /**
   * The catalog, sorted: `<node> <address>` per node, `<node> service <ID> <name> <port> <tags>` per
   * service, `<node> check <ID> <status> <service ID>` per check (indexes left out: a restore raises them).
   */
  readonly catalog: readonly string[];
}

export async function decodeArchive(bytes: Uint8Array): Promise<DecodedState> {
  const kv = new Map<string, { value: string; flags: number | bigint; createIndex: number; modifyIndex: number }>();
  const tombstones: string[] = [];
  const indexes = new Map<string, number>();
  const locks = new Map<string, string>();
  const sessions: string[] = [];
  const catalog = new Set<string>();
  let lastIndex = 0;
  const c = await readArchive(chunks(bytes), {
    records: 'restore',
    onRecord: (item) => {
      if (item.kind === 'header') lastIndex = item.lastIndex;
      else if (item.kind === 'kvs') {
        const e = item.entry;
        kv.set(e.Key, { value: Buffer.from(e.Value).toString('utf8'), flags: e.Flags, createIndex: e.CreateIndex, modifyIndex: e.ModifyIndex });
        if (e.Session !== '') locks.set(e.Key, e.Session);
      } else if (item.kind === 'tombstone') tombstones.push(item.stone.Key);
      else if (item.kind === 'index') indexes.set(item.index.Key, item.index.Value);
      else if (item.kind === 'session') sessions.push(`${item.session.ID} ${item.session.Node} ${item.session.Behavior} ${item.session.TTL}`);
      else if (item.kind === 'register') {
        const { node, service, checks } = item.register;
        catalog.add(`${node.Node} ${node.Address}`);
        if (service !== undefined) catalog.add(`${node.Node} service ${service.ID} ${service.Service} ${service.Port} ${service.Tags.join(',')}`);
        for (const k of checks) catalog.add(`${node.Node} check ${k.CheckID} ${k.Status} ${k.ServiceID}`);
      }
    },
  });
  return { meta: c.meta, lastIndex, kv, tombstones, indexes, locks, sessions: sessions.sort(), catalog: [...catalog].sort() };
}

/** The KV data of a state, as one comparable value (what a user would call "the same state"). */
export function kvData(s: DecodedState): Record<string, string> {
  return Object.fromEntries([...s.kv].map(([k, v]) => [k, `${v.flags}:${v.value}`]).sort(([a], [b]) => (a! < b! ? -1 : 1)));
}

export async function* chunks(bytes: Uint8Array, size = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

export async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of source) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/** An archive of `entries` (key -> value) at `index`, as a Conclave save would write it. */
export async function buildArchive(entries: Record<string, string | Uint8Array>, index: number, extraStateBin?: Uint8Array): Promise<Buffer> {
  const parts: Uint8Array[] = [encodeStateBinHeader(index)];
  let i = 1;
  for (const [key, value] of Object.entries(entries)) {
    const e: DirEntry = { LockIndex: 0, Key: key, Flags: 0, Value: typeof value === 'string' ? Buffer.from(value) : value, Session: '', CreateIndex: i, ModifyIndex: i };
    parts.push(Uint8Array.of(2), encodeKvsRecord(e));
    i = Math.min(index, i + 1);
  }
  parts.push(Uint8Array.of(16), encodeIndexRecord({ Key: 'kvs', Value: index }));
  if (extraStateBin !== undefined) parts.push(extraStateBin);
  const stateBin = Buffer.concat(parts);
  const meta = archiveMeta({
    index,
    term: 1,
    configuration: { servers: [{ id: 'x', address: '127.0.0.1:8300', suffrage: 'voter' }] },
    configurationIndex: 1,
    size: stateBin.length,
    nowMs: Date.now(),
    producerVersion: 'test',
  });
  return collect(writeArchive(meta, chunks(stateBin)));
}

export { encode as msgpackEncode };

// ---------------------------------------------------------------------------------------------
// Hostile archives: each one a way an upload can be wrong, with the reason a restore must give.
// ---------------------------------------------------------------------------------------------


export interface TarMember {
  readonly name: string;
  readonly data?: Uint8Array;
  readonly type?: 'file' | 'symlink' | 'directory' | 'link';
  readonly linkname?: string;
}

/** A tar built by tar-stream (not by our writer), for archives made wrong on purpose. */
export async function tarOf(members: readonly TarMember[]): Promise<Buffer> {
  const pack = tar.pack();
  const out = collect(pack as AsyncIterable<Uint8Array>);
  for (const m of members) {
    await new Promise<void>((resolve, reject) => {
      const header = { name: m.name, mode: 0o600, type: m.type ?? 'file', linkname: m.linkname, size: m.data?.length ?? 0 };
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (m.data === undefined) pack.entry(header, done);
      else pack.entry(header, Buffer.from(m.data), done);
    });
  }
  pack.finalize();
  return out;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function stateBinOf(entries: Record<string, string>, lastIndex: number): Buffer {
  const parts: Uint8Array[] = [encodeStateBinHeader(lastIndex)];
  for (const [key, value] of Object.entries(entries)) {
    parts.push(Uint8Array.of(2), encodeKvsRecord({ LockIndex: 0, Key: key, Flags: 0, Value: Buffer.from(value), Session: '', CreateIndex: 1, ModifyIndex: 1 }));
  }
  return Buffer.concat(parts);
}

function membersOf(stateBin: Uint8Array, meta: ArchiveMeta): { meta: Uint8Array; state: Uint8Array; sums: Uint8Array } {
  const metaBytes = encodeMetaJson(meta);
  return { meta: metaBytes, state: stateBin, sums: Buffer.from(`${sha(metaBytes)}  meta.json\n${sha(stateBin)}  state.bin\n`) };
}

function metaOf(stateBin: Uint8Array, index: number, over: Partial<ArchiveMeta> = {}): ArchiveMeta {
  return {
    ...archiveMeta({
      index,
      term: 1,
      configuration: { servers: [{ id: 'x', address: '127.0.0.1:8300', suffrage: 'voter' }] },
      configurationIndex: 1,
      size: stateBin.length,
      nowMs: 1_700_000_000_000,
      producerVersion: 'test',
    }),
    ...over,
  };
}

/** [what, archive bytes, what the 400's body must say]. Every one must be refused and change nothing. */
export async function hostileArchives(): Promise<Array<[string, Uint8Array, RegExp]>> {
  const state = stateBinOf({ 'hostile/a': 'x', 'hostile/b': 'y' }, 10);
  const meta = metaOf(state, 10);
  const m = membersOf(state, meta);
  const good = [
    { name: 'meta.json', data: m.meta },
    { name: 'state.bin', data: m.state },
    { name: 'SHA256SUMS', data: m.sums },
  ];
  const goodTar = await tarOf(good);
  const goodGz = gzipSync(goodTar);
  const out: Array<[string, Uint8Array, RegExp]> = [];
  out.push(['not gzip (curl -d)', Buffer.from('hostile/a=x&hostile/b=y'), /failed to decompress snapshot: .*gzip/]);
  for (const at of [1, 10, 30, Math.floor(goodGz.length / 3), Math.floor(goodGz.length / 2), goodGz.length - 20, goodGz.length - 1]) {
    out.push([`truncated at ${at} of ${goodGz.length}`, goodGz.subarray(0, at), /failed (to decompress|reading) snapshot|unexpected end|truncated/]);
  }
  // A flipped byte inside each member's data (found in the tar by content).
  for (const [name, data] of [['meta.json', m.meta], ['state.bin', m.state], ['SHA256SUMS', m.sums]] as const) {
    const t = Buffer.from(goodTar);
    const at = t.indexOf(Buffer.from(data)) + Math.floor(data.length / 2);
    t[at] = (t[at] as number) ^ 0x01;
    out.push([`a flipped byte in ${name}`, gzipSync(t), /hash check failed|failed to decode snapshot metadata|failed checking integrity|list missing hash/]);
  }
  const wrongSums = Buffer.from(`${'0'.repeat(64)}  meta.json\n${sha(m.state)}  state.bin\n`);
  out.push(['a wrong hash', gzipSync(await tarOf([good[0]!, good[1]!, { name: 'SHA256SUMS', data: wrongSums }])), /hash check failed for "meta.json"/]);
  out.push(['no SHA256SUMS', gzipSync(await tarOf([good[0]!, good[1]!])), /missing|SHA256SUMS/]);
  out.push(['no state.bin', gzipSync(await tarOf([good[0]!, good[2]!])), /state\.bin/]);
  out.push(['state.bin twice', gzipSync(await tarOf([...good, good[1]!])), /state\.bin/]);
  out.push(['an extra member', gzipSync(await tarOf([...good, { name: 'extra.txt', data: Buffer.from('hi') }])), /unexpected file "extra.txt" in snapshot/]);
  out.push(['a ../ name', gzipSync(await tarOf([good[0]!, { name: '../state.bin', data: m.state }, good[2]!])), /unexpected file "\.\.\/state\.bin"/]);
  out.push(['a symlink', gzipSync(await tarOf([good[0]!, { name: 'state.bin', type: 'symlink', linkname: '/etc/passwd' }, good[2]!])), /state\.bin/]);
  // 64 MiB of zeros in about 64 KiB of gzip, declared as a small state.bin.
  const bombState = Buffer.alloc(64 * 1024 * 1024);
  out.push(['a gzip bomb', gzipSync(await tarOf([good[0]!, { name: 'state.bin', data: bombState }, good[2]!]), { level: 9 }), /state\.bin|Size|too large|bytes/]);
  const huge = membersOf(state, metaOf(state, 10, { Size: 2 ** 50 }));
  out.push(['a huge Size', gzipSync(await tarOf([{ name: 'meta.json', data: huge.meta }, good[1]!, { name: 'SHA256SUMS', data: huge.sums }])), /Size|size/]);
  const unknown = Buffer.concat([state, Uint8Array.of(7), Buffer.from(encode({ ID: 'q1', Name: 'query' }))]);
  const u = membersOf(unknown, metaOf(unknown, 10));
  out.push(['a record type not restorable yet (PreparedQuery)', gzipSync(await tarOf([{ name: 'meta.json', data: u.meta }, { name: 'state.bin', data: u.state }, { name: 'SHA256SUMS', data: u.sums }])), /PreparedQuery/]);
  const badRegister = Buffer.concat([state, Uint8Array.of(0), Buffer.from(encode({ Node: 'n1', Service: { ID: 'web' } }))]);
  const br = membersOf(badRegister, metaOf(badRegister, 10));
  out.push(['a Register whose service has no name', gzipSync(await tarOf([{ name: 'meta.json', data: br.meta }, { name: 'state.bin', data: br.state }, { name: 'SHA256SUMS', data: br.sums }])), /Register.*Service: field "Service" is missing/]);
  const badSession = Buffer.concat([state, Uint8Array.of(3), Buffer.from(encode({ ID: 'session', Node: 'n1', CreateIndex: 1, ModifyIndex: 1 }))]);
  const bs = membersOf(badSession, metaOf(badSession, 10));
  out.push(['a Session whose ID is not a UUID', gzipSync(await tarOf([{ name: 'meta.json', data: bs.meta }, { name: 'state.bin', data: bs.state }, { name: 'SHA256SUMS', data: bs.sums }])), /Session.*"ID" must be a session UUID/]);
  const garbage = Buffer.concat([state, Buffer.from([2, 0xc1, 0xc1, 0xc1])]);
  const g = membersOf(garbage, metaOf(garbage, 10));
  out.push(['a malformed state.bin with valid hashes', gzipSync(await tarOf([{ name: 'meta.json', data: g.meta }, { name: 'state.bin', data: g.state }, { name: 'SHA256SUMS', data: g.sums }])), /state\.bin|record/]);
  const above = stateBinOf({ 'hostile/a': 'x' }, 99);
  const a = membersOf(above, metaOf(above, 10));
  out.push(['LastIndex above Index', gzipSync(await tarOf([{ name: 'meta.json', data: a.meta }, { name: 'state.bin', data: a.state }, { name: 'SHA256SUMS', data: a.sums }])), /LastIndex/]);
  out.push(['trailing garbage after the tar', gzipSync(Buffer.concat([goodTar, Buffer.alloc(20 * 1024, 7)])), /unread uncompressed bytes remain/]);
  return out;
}
