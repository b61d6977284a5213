// Consul's snapshot archive: gzip of a tar holding meta.json, state.bin and SHA256SUMS (see README.md).
//
// Both directions stream in bounded memory. The writer is a generator: it produces bytes only as fast as
// its consumer pulls them, and pulls state.bin only as fast as gzip takes it. The reader pulls the input
// at its own pace, inflates through a small window, parses tar blocks itself (tar.ts), and never allocates
// from a size it read: every member is checked against its limit before a byte of it is taken, and
// buffers grow with the bytes that actually arrived.

import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream';
import { constants as zlibConstants, crc32, createGunzip, deflateRaw } from 'node:zlib';
import { concatBytes, Feed, KiB, MiB, GiB, utf8, utf8DecodeStrict } from '../base/index.js';
import { ArchiveError, StateBinError } from './errors.js';
import { snapshotLimits } from './limits.js';
import { describeProducer, encodeMetaJson, parseMetaJson, type ArchiveMeta } from './meta.js';
import { messageTypeName, readStateBinBatches, type StateBinItem } from './statebin.js';
import { RecordType } from './records.js';
import type { RegisterRecord } from './catalog-records.js';
import { decodeTarHeader, encodeTarHeader, isZeroBlock, tarBlockBytes, tarEndBytes, tarPadding } from './tar.js';

export const metaJsonName = 'meta.json';
export const stateBinName = 'state.bin';
export const sha256SumsName = 'SHA256SUMS';
const memberNames = [metaJsonName, stateBinName, sha256SumsName] as const;
type MemberName = (typeof memberNames)[number];

/**
 * gzip level 1: a snapshot is streamed while the leader serves traffic, so CPU per byte matters more than
 * the last 10-15% of size. Consul uses Go's default (6); the format is the same, any level reads back.
 */
export const defaultGzipLevel = 1;

export interface WriteArchiveOptions {
  readonly gzipLevel?: number;
  /** The tar entries' ModTime; defaults to now. */
  readonly mtime?: Date;
  /**
   * Stop compressing what does not compress (default true): see `adaptive` below. False keeps
   * `gzipLevel` throughout.
   */
  readonly adaptive?: boolean;
  /** Told of each deflate segment once compressed: its input and output bytes and its level. */
  readonly onSegment?: (inputBytes: number, outputBytes: number, level: number) => void;
}

/**
 * Adaptive compression. Random or already-compressed values (certificates, encrypted blobs) shrink
 * little, and deflate spends most of a save's time on them: state.bin with random 256-byte values
 * compresses to 0.79 of its size at 37 MB/s at level 1, against 0.13 at about 130 MB/s for JSON-like
 * text, and 266 MB/s stored (level 0). So the level is chosen per segment (see gzipMember): a segment
 * after one that shrank below `incompressibleRatio` at `gzipLevel` takes that level at once; any other
 * segment (the first, or one after a segment that did not shrink or was stored) first compresses a
 * sample of its own first `sampleBytes` at `gzipLevel`, and is stored (deflate's stored blocks: a copy) when the
 * sample did not shrink below the ratio. Saving a fifth of the bytes is not worth a save several times
 * slower; saving most of them is. Random data costs one sample per segment (a sixteenth of it
 * compressed), text none after the first, and data that changes kind is noticed within a segment. An
 * earlier version measured 4 MiB windows and compressed one window in eight again to notice a change:
 * at random values that was a quarter of the state compressed at level 1, and half a 100k-key save.
 * The output stays one gzip stream that any reader (Consul's, gunzip) takes.
 */
const incompressibleRatio = 0.6;
const sampleBytes = 64 * KiB;
/** Input bytes per deflate segment (see gzipMember): a bound on what one save holds for compression. */
const segmentBytes = 1 * MiB;

/**
 * The archive's bytes: gzip(tar[meta.json, state.bin, SHA256SUMS]). `stateBin` must yield exactly
 * `meta.Size` bytes; otherwise the stream fails with ArchiveError('size-mismatch') and Consul's text.
 */
export async function* writeArchive(
  meta: ArchiveMeta,
  stateBin: AsyncIterable<Uint8Array>,
  options: WriteArchiveOptions = {},
): AsyncGenerator<Uint8Array> {
  yield* gzipMember(tarStream(meta, stateBin, options.mtime ?? new Date()), options);
}

/** What `stateBinMember` counted and hashed of the state.bin it compressed. */
export interface StateBinDigest {
  readonly size: number;
  /** SHA-256 of state.bin, 64 lowercase hex characters. */
  readonly sha256: string;
}

/**
 * state.bin compressed on its own, as one gzip member, for `writeArchiveAround`: a save compresses the
 * state while it reads it (deflate runs on the thread pool, beside the iteration), then streams the
 * archive as a copy of the compressed bytes, instead of compressing everything in a second pass.
 * `digest()` is available once `member` has ended.
 */
export function stateBinMember(
  stateBin: AsyncIterable<Uint8Array>,
  options: WriteArchiveOptions = {},
): { readonly member: AsyncGenerator<Uint8Array>; digest(): StateBinDigest } {
  const hash = createHash('sha256');
  let size = 0;
  let digest: StateBinDigest | undefined;
  async function* counted(): AsyncGenerator<Uint8Array> {
    for await (const chunk of stateBin) {
      hash.update(chunk);
      size += chunk.length;
      yield chunk;
    }
    digest = { size, sha256: hash.digest('hex') };
  }
  return {
    member: gzipMember(counted(), options),
    digest(): StateBinDigest {
      if (digest === undefined) throw new Error('state.bin digest asked for before its member ended');
      return digest;
    },
  };
}

/**
 * The archive around a state.bin member from `stateBinMember`: gzip(tar up to state.bin's data), the
 * member's bytes as they are, gzip(the rest of the tar). A gzip file may hold several members, which
 * every reader inflates as one stream (RFC 1952 section 2.2; Go's gzip.Reader, so Consul's, and
 * gunzip do). The tar inside is the one `writeArchive` writes for the same state.bin.
 */
export async function* writeArchiveAround(
  meta: ArchiveMeta,
  stateBin: StateBinDigest,
  stateBinGzip: AsyncIterable<Uint8Array>,
  options: WriteArchiveOptions = {},
): AsyncGenerator<Uint8Array> {
  if (stateBin.size !== meta.Size) {
    throw new ArchiveError('size-mismatch',
      `failed to write snapshot metadata: state.bin holds ${stateBin.size} bytes but meta.json announces ${meta.Size}`);
  }
  const mtime = options.mtime ?? new Date();
  const { onSegment: _, ...rest } = options;
  const small = { ...rest, adaptive: false };
  const metaBytes = encodeMetaJson(meta);
  yield* gzipMember([...member(metaJsonName, metaBytes, mtime), encodeTarHeader(stateBinName, meta.Size, mtime)], small);
  yield* stateBinGzip;
  const sums = sha256Sums(new Map([[metaJsonName, sha256Hex(metaBytes)], [stateBinName, stateBin.sha256]]));
  yield* gzipMember([new Uint8Array(tarPadding(meta.Size)), ...member(sha256SumsName, sums, mtime), new Uint8Array(tarEndBytes)], small);
}

/**
 * One gzip member (RFC 1952) of `source`'s bytes, compressed as `options` say (see `adaptive` above).
 *
 * The deflate stream is written in segments of `segmentBytes` of input, each compressed on its own by
 * zlib's one-shot deflateRaw (on the thread pool) and ended with a sync flush, so segments join into
 * one stream; an empty final block closes it. While one segment compresses, the source fills the
 * next, so reading the state and compressing it overlap. The level is chosen per segment (the adaptive
 * switch), with no zlib stream to reconfigure: Node's zlib asserts, and the process exits, when a
 * stream is destroyed while a params() change is pending, which a consumer that stops midway (an HTTP
 * client that goes away, a disk that fills) did. A segment starts with an empty history, which costs
 * a fraction of a percent of the size.
 */
async function* gzipMember(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: WriteArchiveOptions): AsyncGenerator<Uint8Array> {
  const level = options.gzipLevel ?? defaultGzipLevel;
  const adaptive = (options.adaptive ?? true) && level > 0;
  let crc = 0;
  let inflatedBytes = 0;
  /** The last segment shrank well at `level`: the next one takes it without a sample. */
  let levelPays = false;
  let parts: Uint8Array[] = [];
  let partsBytes = 0;
  let inFlight: { readonly out: Promise<{ readonly out: Buffer; readonly level: number }>; readonly inBytes: number } | undefined;
  const compress = (input: Buffer, segmentLevel: number): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      deflateRaw(input, { level: segmentLevel, finishFlush: zlibConstants.Z_SYNC_FLUSH }, (error, out) => (error === null ? resolve(out) : reject(error)));
    });
  const shrinks = (out: Buffer, inBytes: number): boolean => out.length <= inBytes * incompressibleRatio;
  /** The segment's level (see `adaptive` above), then the segment compressed at it. */
  const compressSegment = async (input: Buffer, trusted: boolean): Promise<{ readonly out: Buffer; readonly level: number }> => {
    let segmentLevel = level;
    if (adaptive && !trusted) {
      const sample = input.subarray(0, Math.min(sampleBytes, input.length));
      if (!shrinks(await compress(sample, level), sample.length)) segmentLevel = 0;
    }
    return { out: await compress(input, segmentLevel), level: segmentLevel };
  };
  /** The segment in flight, once compressed; it also decides whether the next one needs a sample. */
  const finished = async (): Promise<Buffer | undefined> => {
    if (inFlight === undefined) return undefined;
    const segment = inFlight;
    inFlight = undefined;
    const { out, level: segmentLevel } = await segment.out;
    levelPays = segmentLevel > 0 && shrinks(out, segment.inBytes);
    options.onSegment?.(segment.inBytes, out.length, segmentLevel);
    return out;
  };
  /** Hands out the segment in flight once compressed, then starts compressing the gathered input. */
  async function* rotate(): AsyncGenerator<Uint8Array> {
    const out = await finished();
    if (out !== undefined && out.length > 0) yield out;
    const input = parts.length === 1 ? Buffer.from((parts[0] as Uint8Array).buffer, (parts[0] as Uint8Array).byteOffset, partsBytes) : Buffer.concat(parts, partsBytes);
    inFlight = { out: compressSegment(input, levelPays), inBytes: partsBytes };
    parts = [];
    partsBytes = 0;
  }
  // The header goes out once the source has yielded (or ended): a consumer that stops at the header
  // then stops inside the loop below, which closes the source.
  let headerSent = false;
  try {
    for await (const chunk of source) {
      if (!headerSent) {
        headerSent = true;
        yield gzipHeader();
      }
      crc = crc32(chunk, crc);
      inflatedBytes += chunk.length;
      parts.push(chunk);
      partsBytes += chunk.length;
      if (partsBytes >= segmentBytes) yield* rotate();
    }
    if (!headerSent) yield gzipHeader();
    if (partsBytes > 0) yield* rotate();
    const last = await finished();
    if (last !== undefined && last.length > 0) yield last;
    // The final block: fixed Huffman, BFINAL set, only the end-of-block code (what zlib ends a stream with).
    yield Uint8Array.of(0x03, 0x00);
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(crc >>> 0, 0);
    trailer.writeUInt32LE(inflatedBytes % 2 ** 32, 4);
    yield trailer;
  } finally {
    // Abandoned (the consumer stopped, or the source failed): the segment still compressing finishes on
    // the thread pool and is dropped.
    inFlight?.out.catch(() => undefined);
  }
}

/** A gzip member header (RFC 1952): deflate, no flags, no mtime, OS unknown (as Go writes it). */
function gzipHeader(): Uint8Array {
  return Uint8Array.of(0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff);
}

async function* tarStream(meta: ArchiveMeta, stateBin: AsyncIterable<Uint8Array>, mtime: Date): AsyncGenerator<Uint8Array> {
  const metaBytes = encodeMetaJson(meta);
  const hashes = new Map<string, string>([[metaJsonName, sha256Hex(metaBytes)]]);
  yield* member(metaJsonName, metaBytes, mtime);

  yield encodeTarHeader(stateBinName, meta.Size, mtime);
  const hash = createHash('sha256');
  let written = 0;
  for await (const chunk of stateBin) {
    written += chunk.length;
    if (written > meta.Size) {
      throw new ArchiveError('size-mismatch',
        `failed to write snapshot metadata: state.bin is longer than the ${meta.Size} bytes meta.json announces`);
    }
    hash.update(chunk);
    yield chunk;
  }
  if (written < meta.Size) {
    throw new ArchiveError('size-mismatch',
      `failed to write snapshot metadata: state.bin ended after ${written} of the ${meta.Size} bytes meta.json announces (EOF)`);
  }
  yield new Uint8Array(tarPadding(written));
  hashes.set(stateBinName, hash.digest('hex'));

  yield* member(sha256SumsName, sha256Sums(hashes), mtime);
  yield new Uint8Array(tarEndBytes);
}

const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** SHA256SUMS in sha256sum's layout, sorted by name. */
function sha256Sums(hashes: ReadonlyMap<string, string>): Uint8Array {
  return utf8([...hashes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, hex]) => `${hex}  ${name}\n`).join(''));
}

function* member(name: string, bytes: Uint8Array, mtime: Date): Generator<Uint8Array> {
  yield encodeTarHeader(name, bytes.length, mtime);
  yield bytes;
  yield new Uint8Array(tarPadding(bytes.length));
}

// ---------------------------------------------------------------------------------------------------
// Reading

export interface ArchiveLimits {
  readonly metaJsonMaxBytes: number;
  readonly sha256SumsMaxBytes: number;
  readonly stateBinMaxBytes: number;
  /** Largest state.bin record (type byte + body) buffered while checking records. */
  readonly recordMaxBytes: number;
}

export const defaultArchiveLimits: ArchiveLimits = {
  metaJsonMaxBytes: 1 * MiB,
  sha256SumsMaxBytes: 4 * KiB,
  stateBinMaxBytes: 64 * GiB,
  recordMaxBytes: snapshotLimits.stateBinRecordMaxBytes,
};

/**
 * gunzip's output chunk: what it inflates ahead of the reader (see InflatedInput). zlib's default, 16 KiB,
 * made a trip from the event loop to the thread pool and back for every 16 KiB of state.bin. With that
 * and the input cut into 4 KiB slices, verifying an upload of 100,000 random 256-byte values took
 * 0.55-0.70 s; with this and the input as it comes, 0.29-0.37 s (scratch script on this machine;
 * JSON-like values: 0.34-0.58 against 0.19-0.31 s).
 */
const gunzipChunkBytes = 256 * KiB;
/** GNU tar pads an archive to a 10 KiB record with zeros; that much zero padding is accepted. */
const tarRecordBytes = 10 * KiB;
/** Past the accepted padding, trailing bytes are counted up to here for the message, then reading stops. */
const trailingCountMaxBytes = 1 * MiB;

export interface ReadArchiveOptions {
  /** How state.bin is checked while it streams by: fully ('restore'), framed ('inspect'), or not at all. */
  readonly records: 'restore' | 'inspect' | 'none';
  /** Receives state.bin's bytes in order (e.g. into a scratch file); its errors propagate unchanged. */
  readonly stateBinSink?: (chunk: Uint8Array) => Promise<void>;
  /** Each state.bin item (header first), for inspect and decode; not called with records 'none'. */
  readonly onRecord?: (item: StateBinItem) => void;
  readonly limits?: Partial<ArchiveLimits>;
  /** Compressed bytes read so far. */
  readonly onProgress?: (compressedBytes: number) => void;
}

export interface RecordTypeStats {
  readonly name: string;
  count: number;
  /** As Consul's inspect counts: type byte + body, the header's bytes counted into the first record. */
  bytes: number;
}

export interface ArchiveContents {
  readonly meta: ArchiveMeta;
  readonly stateBin: {
    readonly size: number;
    readonly sha256: string;
    /** The state.bin header's LastIndex; undefined with records 'none'. */
    readonly lastIndex: number | undefined;
    /** Per record type; empty with records 'none'. */
    readonly types: Map<number, RecordTypeStats>;
  };
}

/**
 * Reads and verifies a whole archive. Throws ArchiveError; errors of `source`, `stateBinSink` and
 * `onRecord` propagate unchanged. Problems that make further reading pointless or unsafe (bad gzip or tar,
 * a member too large, a name we refuse, trailing data) stop at once; the others are collected while the
 * archive is read to its end and reported in this order: missing member, integrity, metadata, Size,
 * records. A corrupt archive is reported as corrupt, whatever else is wrong with it.
 */
export async function readArchive(source: AsyncIterable<Uint8Array>, options: ReadArchiveOptions): Promise<ArchiveContents> {
  const limits = { ...defaultArchiveLimits, ...options.limits };
  const input = new InflatedInput(source, options.onProgress);
  const seen = new Set<MemberName>();
  const hashes = new Map<MemberName, string>();
  let metaBytes: Uint8Array | undefined;
  let sumsBytes: Uint8Array | undefined;
  let meta: ArchiveMeta | undefined;
  let metaError: ArchiveError | undefined;
  let stateBinSize = 0;
  let checker: RecordChecker | undefined;
  try {
    for (;;) {
      const block = await input.readExact(tarBlockBytes, 'a tar header');
      if (isZeroBlock(block)) {
        const second = await input.readExact(tarBlockBytes, 'the end of the tar archive');
        if (!isZeroBlock(second)) throw new ArchiveError('tar', 'failed reading snapshot: archive/tar: invalid tar header (a zero block followed by a non-zero block)');
        await checkTrailing(input);
        break;
      }
      const header = decodeTarHeader(block);
      const name = header.name;
      if (!(memberNames as readonly string[]).includes(name)) {
        const hint = name.includes('/') ? ' (member names must be flat: meta.json, state.bin, SHA256SUMS)' : '';
        throw new ArchiveError('unexpected-file', `unexpected file ${goQuote(name)} in snapshot${hint}`);
      }
      const memberName = name as MemberName;
      if (header.type !== 'file') {
        throw new ArchiveError('unexpected-file', `unexpected file ${goQuote(name)} in snapshot: it is a ${header.type}, not a regular file`);
      }
      if (seen.has(memberName)) throw new ArchiveError('duplicate-file', `duplicate file ${goQuote(name)} in snapshot`);
      seen.add(memberName);
      const limit = memberName === metaJsonName ? limits.metaJsonMaxBytes
        : memberName === sha256SumsName ? limits.sha256SumsMaxBytes : limits.stateBinMaxBytes;
      if (header.size > limit) {
        throw new ArchiveError('too-large', `${name} in snapshot is ${header.size} bytes, above the limit of ${limit}`);
      }
      const hash = createHash('sha256');
      if (memberName === stateBinName) {
        if (meta !== undefined && header.size !== meta.Size) throw sizeMismatch(meta.Size, header.size);
        stateBinSize = header.size;
        if (options.records !== 'none') checker = new RecordChecker(options.records, limits.recordMaxBytes, options.onRecord);
        for await (const chunk of input.readBody(header.size, name)) {
          hash.update(chunk);
          if (options.stateBinSink !== undefined) await options.stateBinSink(chunk);
          if (checker !== undefined) await checker.push(chunk);
        }
        if (checker !== undefined) await checker.end();
      } else {
        const parts: Uint8Array[] = [];
        for await (const chunk of input.readBody(header.size, name)) {
          hash.update(chunk);
          parts.push(chunk.slice());
        }
        const bytes = concatBytes(parts);
        if (memberName === metaJsonName) {
          // Read whole and hashed before parsing (Consul's fix for false hash failures, #4738).
          metaBytes = bytes;
          try {
            meta = parseMetaJson(bytes);
          } catch (error) {
            if (!(error instanceof ArchiveError)) throw error;
            metaError = error;
          }
          if (meta !== undefined && seen.has(stateBinName) && stateBinSize !== meta.Size) {
            metaError ??= sizeMismatch(meta.Size, stateBinSize);
          }
        } else {
          sumsBytes = bytes;
        }
      }
      hashes.set(memberName, hash.digest('hex'));
      await input.skip(tarPadding(header.size), name);
    }
  } finally {
    await checker?.abandon();
    input.close();
  }

  for (const name of memberNames) {
    if (!seen.has(name)) {
      throw new ArchiveError('missing-file', `failed checking integrity of snapshot: file missing for ${goQuote(name)} (the archive has no ${name})`);
    }
  }
  verifyHashes(sumsBytes as Uint8Array, hashes);
  void metaBytes;
  if (metaError !== undefined) throw metaError;
  const m = meta as ArchiveMeta;
  const records = checker?.finish(m);
  return {
    meta: m,
    stateBin: {
      size: stateBinSize,
      sha256: hashes.get(stateBinName) as string,
      lastIndex: records?.lastIndex,
      types: records?.types ?? new Map(),
    },
  };
}

function sizeMismatch(size: number, actual: number): ArchiveError {
  return new ArchiveError('size-mismatch', `snapshot metadata announces Size ${size} but state.bin holds ${actual} bytes`);
}

/** Go's %q for the names we print (ASCII names print as JSON strings do). */
function goQuote(name: string): string {
  return JSON.stringify(name);
}

function verifyHashes(sums: Uint8Array, hashes: Map<MemberName, string>): void {
  const fail = (detail: string): ArchiveError => new ArchiveError('integrity', `failed checking integrity of snapshot: ${detail}`);
  const text = utf8DecodeStrict(sums);
  if (text === undefined) throw fail('SHA256SUMS is not valid UTF-8');
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const expected = new Map<string, string>([[metaJsonName, hashes.get(metaJsonName) as string], [stateBinName, hashes.get(stateBinName) as string]]);
  const listed = new Set<string>();
  lines.forEach((line, i) => {
    const m = /^([0-9a-fA-F]{64})[ \t]+(\S+)$/.exec(line);
    if (m === null) throw fail(`SHA256SUMS line ${i + 1} is not "<sha256 hex>  <name>"`);
    const name = m[2] as string;
    const want = expected.get(name);
    if (want === undefined) throw fail(`list missing hash for ${goQuote(name)}`);
    if ((m[1] as string).toLowerCase() !== want) throw fail(`hash check failed for ${goQuote(name)}`);
    listed.add(name);
  });
  for (const name of expected.keys()) if (!listed.has(name)) throw fail(`file missing for ${goQuote(name)}`);
}

/** After the end blocks: zero padding up to GNU tar's 10 KiB record, nothing else. */
async function checkTrailing(input: InflatedInput): Promise<void> {
  const tarEnd = input.position;
  const allowedEnd = Math.ceil(tarEnd / tarRecordBytes) * tarRecordBytes;
  let extra = 0;
  let bad = false;
  for (;;) {
    const chunk = await input.next(64 * KiB);
    if (chunk === undefined) break;
    if (!bad) {
      const fits = tarEnd + extra + chunk.length <= allowedEnd;
      if (!fits || !isZeroBlock(chunk)) bad = true;
    }
    extra += chunk.length;
    if (bad && extra >= trailingCountMaxBytes) {
      throw new ArchiveError('trailing-data', `at least ${extra} unread uncompressed bytes remain`);
    }
  }
  if (bad) throw new ArchiveError('trailing-data', `${extra} unread uncompressed bytes remain`);
}

/**
 * The inflated bytes of the input, pulled on demand. zlib honours the backpressure of its readable side:
 * once an output chunk is waiting unread, it inflates no further, however large the input chunk it was
 * given. So a gzip bomb costs only as much inflating as the reader asks for (plus one output chunk)
 * before it stops (a test hands a 200 MiB bomb over in one piece and watches RSS).
 */
class InflatedInput {
  /** Inflated bytes handed out so far. */
  position = 0;
  private compressed = 0;
  private head: number[] = [];
  private sourceError: { error: unknown } | undefined;
  private readonly gunzip = createGunzip({ chunkSize: gunzipChunkBytes });
  private readonly chunks: AsyncIterator<Uint8Array>;
  private pending: Uint8Array | undefined;
  private ended = false;

  constructor(source: AsyncIterable<Uint8Array>, onProgress: ((compressedBytes: number) => void) | undefined) {
    const self = this;
    async function* counted(): AsyncGenerator<Uint8Array> {
      try {
        for await (const chunk of source) {
          if (!(chunk instanceof Uint8Array)) throw new TypeError('snapshot source yielded something other than bytes');
          for (let i = 0; i < chunk.length && self.head.length < 2; i++) self.head.push(chunk[i] as number);
          self.compressed += chunk.length;
          onProgress?.(self.compressed);
          yield chunk;
        }
      } catch (error) {
        self.sourceError = { error };
        throw error;
      }
    }
    pipeline(counted(), this.gunzip, () => undefined);
    this.chunks = (this.gunzip as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  }

  private notGzip(): ArchiveError {
    const why = this.compressed === 0 ? 'the body is empty' : 'the body is not a gzip archive';
    return new ArchiveError('not-gzip',
      `failed to decompress snapshot: gzip: invalid header (${why}; upload the file as binary, e.g. curl --data-binary @file)`);
  }

  private isGzip(): boolean {
    return this.head.length === 2 && this.head[0] === 0x1f && this.head[1] === 0x8b;
  }

  /** Up to `max` bytes, or undefined at the end of the inflated stream. */
  async next(max: number): Promise<Uint8Array | undefined> {
    while (this.pending === undefined || this.pending.length === 0) {
      if (this.ended) return undefined;
      let result: IteratorResult<Uint8Array>;
      try {
        result = await this.chunks.next();
      } catch (error) {
        if (this.sourceError !== undefined) throw this.sourceError.error;
        if (!this.isGzip()) throw this.notGzip();
        const message = error instanceof Error ? error.message : String(error);
        throw new ArchiveError('decompress',
          `failed to decompress snapshot: ${message === 'unexpected end of file' ? 'unexpected EOF (the archive is truncated)' : message}`,
          { cause: error });
      }
      if (result.done === true) {
        if (this.sourceError !== undefined) throw this.sourceError.error;
        if (!this.isGzip()) throw this.notGzip();
        this.ended = true;
        return undefined;
      }
      this.pending = result.value;
    }
    const out = this.pending.length <= max ? this.pending : this.pending.subarray(0, max);
    this.pending = this.pending.length <= max ? undefined : this.pending.subarray(max);
    this.position += out.length;
    return out;
  }

  async readExact(n: number, what: string): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let got = 0;
    while (got < n) {
      const chunk = await this.next(n - got);
      if (chunk === undefined) {
        throw new ArchiveError('tar', `failed reading snapshot: unexpected EOF (the tar archive ends inside ${what})`);
      }
      parts.push(chunk);
      got += chunk.length;
    }
    return parts.length === 1 ? (parts[0] as Uint8Array) : concatBytes(parts);
  }

  async *readBody(size: number, name: string): AsyncGenerator<Uint8Array> {
    let left = size;
    while (left > 0) {
      const chunk = await this.next(left);
      if (chunk === undefined) throw new ArchiveError('tar', `failed reading snapshot: unexpected EOF (the tar archive ends inside ${name})`);
      left -= chunk.length;
      yield chunk;
    }
  }

  async skip(n: number, name: string): Promise<void> {
    for await (const chunk of this.readBody(n, `the padding after ${name}`)) void chunk;
  }

  close(): void {
    this.gunzip.destroy();
  }
}

/**
 * Runs the state.bin reader beside the archive loop: `push` hands it one chunk and resolves once it has
 * taken that chunk and asks for the next (or has stopped). After its first error the reader is stopped
 * and later chunks pass by unchecked; the error is reported by `finish`, after the integrity checks.
 */
class RecordChecker {
  private readonly feed = new Feed();
  private readonly task: Promise<void>;
  private error: unknown;
  private lastIndex: number | undefined;
  private headerBytes = 0;
  private maxIndex = 0;
  private maxIndexWhere = '';
  readonly types = new Map<number, { name: string; count: number; bytes: number }>();

  constructor(policy: 'restore' | 'inspect', recordMaxBytes: number, private readonly onRecord: ((item: StateBinItem) => void) | undefined) {
    this.task = (async () => {
      try {
        for await (const batch of readStateBinBatches(this.feed, { records: policy, recordMaxBytes })) {
          for (const item of batch) {
            this.see(item);
            this.onRecord?.(item);
          }
        }
      } catch (error) {
        this.error = error;
      } finally {
        this.feed.stop();
      }
    })();
  }

  private see(item: StateBinItem): void {
    if (item.kind === 'header') {
      this.lastIndex = item.lastIndex;
      this.headerBytes = item.bytes;
      return;
    }
    const type = item.kind === 'kvs' ? RecordType.KVS : item.kind === 'tombstone' ? RecordType.Tombstone
      : item.kind === 'index' ? RecordType.Index : item.kind === 'session' ? RecordType.Session
        : item.kind === 'register' ? RecordType.Register : item.type;
    const stats = this.types.get(type) ?? { name: messageTypeName(type), count: 0, bytes: 0 };
    stats.count += 1;
    stats.bytes += item.bytes + (item.record === 1 ? this.headerBytes : 0);
    this.types.set(type, stats);
    const index = item.kind === 'kvs' ? Math.max(item.entry.ModifyIndex, item.entry.CreateIndex)
      : item.kind === 'tombstone' ? item.stone.Index : item.kind === 'index' ? item.index.Value
        : item.kind === 'session' ? Math.max(item.session.ModifyIndex, item.session.CreateIndex)
          : item.kind === 'register' ? registerMaxIndex(item.register) : 0;
    if (index > this.maxIndex) {
      this.maxIndex = index;
      this.maxIndexWhere = `state.bin record ${item.record} (${stats.name}, byte offset ${item.offset})`;
    }
  }

  push(chunk: Uint8Array): Promise<void> {
    // The reader keeps views of chunks it has not consumed; the archive loop's chunks are gunzip's own
    // buffers, which are never reused, so no copy is needed.
    return this.feed.push(chunk);
  }

  async end(): Promise<void> {
    await this.feed.end();
    await this.task;
  }

  /** When reading stopped early: let the reader finish, so nothing runs on after readArchive returns. */
  async abandon(): Promise<void> {
    this.feed.stop();
    await this.task;
  }

  /** Throws the first record problem as an ArchiveError, naming the producer for a refused type. */
  finish(meta: ArchiveMeta): { lastIndex: number | undefined; types: Map<number, RecordTypeStats> } {
    const error = this.error;
    if (error instanceof StateBinError) {
      if (error.type !== undefined) {
        throw new ArchiveError('unsupported-record',
          `${error.message}; the snapshot was written by ${describeProducer(meta)}`, { cause: error });
      }
      throw new ArchiveError('state-bin', error.message, { cause: error });
    }
    if (error !== undefined) throw error; // onRecord's own error, unchanged
    if (this.lastIndex !== undefined && this.lastIndex > meta.Index) {
      throw new ArchiveError('state-bin', `state.bin header: LastIndex ${this.lastIndex} is above the snapshot's Index ${meta.Index}`);
    }
    if (this.maxIndex > meta.Index) {
      throw new ArchiveError('state-bin', `${this.maxIndexWhere} has index ${this.maxIndex}, above the snapshot's Index ${meta.Index}`);
    }
    return { lastIndex: this.lastIndex, types: this.types };
  }
}

/** The highest index a Register record carries: its node's, its service's, its checks'. */
function registerMaxIndex(r: RegisterRecord): number {
  let max = Math.max(r.node.CreateIndex, r.node.ModifyIndex);
  if (r.service !== undefined) max = Math.max(max, r.service.CreateIndex, r.service.ModifyIndex);
  for (const c of r.checks) max = Math.max(max, c.CreateIndex, c.ModifyIndex);
  return max;
}
