// Helpers for tests of snapshots through the product itself: save over HTTP, decode an archive into
// comparable state, build archives from chosen records. Test-only.

import { encode } from '@msgpack/msgpack';
import {
  archiveMeta,
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
  readonly kv: ReadonlyMap<string, { value: string; flags: number; createIndex: number; modifyIndex: number }>;
  readonly tombstones: readonly string[];
  readonly indexes: ReadonlyMap<string, number>;
}

export async function decodeArchive(bytes: Uint8Array): Promise<DecodedState> {
  const kv = new Map<string, { value: string; flags: number; createIndex: number; modifyIndex: number }>();
  const tombstones: string[] = [];
  const indexes = new Map<string, number>();
  let lastIndex = 0;
  const c = await readArchive(chunks(bytes), {
    records: 'restore',
    onRecord: (item) => {
      if (item.kind === 'header') lastIndex = item.lastIndex;
      else if (item.kind === 'kvs') {
        const e = item.entry;
        kv.set(e.Key, { value: Buffer.from(e.Value).toString('utf8'), flags: e.Flags, createIndex: e.CreateIndex, modifyIndex: e.ModifyIndex });
      } else if (item.kind === 'tombstone') tombstones.push(item.stone.Key);
      else if (item.kind === 'index') indexes.set(item.index.Key, item.index.Value);
    },
  });
  return { meta: c.meta, lastIndex, kv, tombstones, indexes };
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
