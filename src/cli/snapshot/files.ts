// Reading snapshot files for inspect, decode and save's verification, through src/snapshot: an archive
// (gzip of tar [meta.json, state.bin, SHA256SUMS]) verified in full, or, as Consul's inspect and decode
// accept, a raw state.bin (a Raft snapshot directory's) with its meta.json in the same directory.

import { readFile, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { decode as decodeMsgpack } from '@msgpack/msgpack';
import { ArchiveError, parseMetaJson, readArchive, readStateBin, StateBinError, type ArchiveMeta, type StateBinItem } from '../../snapshot/index.js';
import { errorText } from './http-client.js';

/** One state.bin record as inspect and decode see it. */
export interface SnapshotRecord {
  readonly type: number;
  readonly name: string;
  /** The body decoded generically: maps as objects, bin as Uint8Array, 64-bit integers as bigint. */
  readonly body: unknown;
  /** Bytes the record took (type byte + body), the header's counted into the first record, as Consul counts. */
  readonly size: number;
  readonly raw: Uint8Array;
}

/** A failure with the line to print (Consul's prefixes). */
export class SnapshotReadError extends Error {}

/** Save's check: the archive read to its end, both SHA-256 sums verified, nothing after the end. */
export async function verifyArchive(source: AsyncIterable<Uint8Array>, onProgress: (compressedBytes: number) => void): Promise<void> {
  await readArchive(source, { records: 'none', onProgress });
}

/** Consul treats a file named state.bin (any case) as a raw Raft snapshot with meta.json beside it. */
export function isRawStateBin(path: string): boolean {
  return basename(path).toLowerCase() === 'state.bin';
}

export async function readRawMeta(stateBinPath: string): Promise<ArchiveMeta> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(join(dirname(stateBinPath), 'meta.json'));
  } catch (err) {
    throw new SnapshotReadError(`Error reading meta.json from internal snapshot dir: ${errorText(err)}`);
  }
  try {
    return parseMetaJson(bytes);
  } catch (err) {
    throw new SnapshotReadError(`Error parsing meta.json from internal snapshot dir: ${errorText(err)}`);
  }
}

/** The metadata of a verified archive (a full read, records not decoded). */
export async function readVerifiedMeta(handle: FileHandle): Promise<ArchiveMeta> {
  try {
    return (await readArchive(fromStart(handle), { records: 'none' })).meta;
  } catch (err) {
    throw failure(err);
  }
}

/**
 * Every record of the file in order, given to `onRecord`; resolves with the metadata. An archive is
 * verified as it is read (its records may be reported before a bad hash at its end is found).
 */
export async function readRecords(handle: FileHandle, path: string, onRecord: (record: SnapshotRecord) => void): Promise<ArchiveMeta> {
  let headerBytes = 0;
  const onItem = (item: StateBinItem): void => {
    if (item.kind === 'header') {
      headerBytes = item.bytes;
      return;
    }
    if (item.kind !== 'other') return; // 'inspect' yields only 'other' records
    onRecord({ type: item.type, name: item.name, body: item.body, size: item.bytes + headerBytes, raw: item.raw });
    headerBytes = 0;
  };
  if (isRawStateBin(path)) {
    const meta = await readRawMeta(path);
    try {
      for await (const item of readStateBin(fromStart(handle), { records: 'inspect' })) onItem(item);
    } catch (err) {
      throw failure(err);
    }
    return meta;
  }
  try {
    return (await readArchive(fromStart(handle), { records: 'inspect', onRecord: onItem })).meta;
  } catch (err) {
    throw failure(err);
  }
}

function fromStart(handle: FileHandle): AsyncIterable<Uint8Array> {
  return handle.createReadStream({ start: 0, autoClose: false, highWaterMark: 256 * 1024 });
}

/** Consul's prefixes: a damaged archive fails verification, bad records fail extraction. */
function failure(err: unknown): Error {
  if (err instanceof SnapshotReadError) return err;
  if (err instanceof ArchiveError) {
    const records = err.code === 'state-bin' || err.code === 'unsupported-record';
    return new SnapshotReadError(`${records ? 'Error extracting snapshot data' : 'Error verifying snapshot'}: ${err.message}`);
  }
  if (err instanceof StateBinError) return new SnapshotReadError(`Error extracting snapshot data: ${err.message}`);
  return new SnapshotReadError(`Error reading snapshot file: ${errorText(err)}`);
}

/**
 * A KV entry's Value exactly as stored. Consul writes []byte in the old msgpack spec, as a str, which the
 * generic decoder turns into text; decoding the raw body with strings kept raw gives the bytes back.
 */
export function kvsValueBytes(record: SnapshotRecord): Uint8Array | null | undefined {
  const raw = decodeMsgpack(record.raw, { rawStrings: true, useBigInt64: true }) as unknown;
  if (raw === null || typeof raw !== 'object' || !('Value' in raw)) return undefined;
  const value = (raw as { Value: unknown }).Value;
  return value instanceof Uint8Array ? value : value === null ? null : undefined;
}

/** A KV entry's key from a generically decoded body, when it has one. */
export function kvsKey(body: unknown): string | undefined {
  const key = body instanceof Map ? body.get('Key') : body !== null && typeof body === 'object' ? (body as { Key?: unknown }).Key : undefined;
  if (typeof key === 'string') return key;
  if (key instanceof Uint8Array) return Buffer.from(key).toString('utf8');
  return undefined;
}
