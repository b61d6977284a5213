// Raft snapshots on the filesystem: a directory holding one directory per snapshot.
//
//   <dir>/<term>-<index>-<ms>/state.bin    the state machine's bytes, as written through the sink
//   <dir>/<term>-<index>-<ms>/meta.json    SnapshotMeta + size + SHA-256 of state.bin
//   <dir>/<id>.tmp/                        a snapshot being written (or left by a crash)
//   <dir>/<id>.del/                        a snapshot being deleted (or left by a crash)
//
// Crash safety. A snapshot is written under `<id>.tmp`, both files are fsynced, the temp directory is
// fsynced, renamed to `<id>` and the parent directory fsynced. The rename is the commit point: before
// it the snapshot does not exist (list() only looks at names without a suffix), after it both files are
// complete on disk. Deletion is the reverse: rename to `<id>.del`, fsync the parent, then remove, so a
// half-deleted snapshot is never listed either. open() on a store removes every `.tmp` and `.del`
// directory, so it must not run while another process writes into the same directory (the server's
// data directory is single-owner: the LevelDB lock of its log store guards it).
//
// Memory. A sink copies writes into one fixed buffer of `sinkBufferBytes` and flushes it to the file
// when full; reads come back in chunks of `readChunkBytes`. Neither ever holds the whole state.

import { createHash, type Hash } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';

import type { Index, SnapshotMeta, Term } from '../raft/index.js';
import {
  decodeSnapshotMetaFile,
  encodeSnapshotMetaFile,
  snapshotFormatVersion,
  snapshotMetaProblem,
} from './codec.js';
import { assert, exists, KiB, MiB } from '../base/index.js';
import { StorageError, describeCause } from './errors.js';
import { fsyncDir } from './files.js';

export const snapshotLimits = {
  /** A sink's write buffer: big enough that tiny record writes cost few syscalls, small next to RAM. */
  sinkBufferBytes: 1 * MiB,
  /** Chunk size of an opened snapshot's stream. */
  readChunkBytes: 256 * KiB,
  /** Default number of snapshots kept; hashicorp/raft's FileSnapshotStore keeps 2 as well. */
  retainDefaultCount: 2,
} as const;

const stateFile = 'state.bin';
const metaFile = 'meta.json';
const tempSuffix = '.tmp';
const trashSuffix = '.del';
const fileMode = 0o600;
const idPattern = /^(\d+)-(\d+)-(\d+)$/;

export interface SnapshotStoreOptions {
  /** Snapshots kept after each successful create, newest first. Default 2, at least 1. */
  readonly retain?: number;
  /** Milliseconds since the epoch, used in snapshot ids. Default Date.now; tests inject their own. */
  readonly now?: () => number;
  /** Told about damaged snapshots list() skips and clean-up that failed; default: ignored. */
  readonly onWarning?: (message: string) => void;
  /**
   * Snapshots retention must never delete, whatever their rank (e.g. the one the log is compacted to,
   * and a pending restore): asked at each retention pass. Retention keeps the newest `retain`
   * snapshots plus these.
   */
  readonly protect?: () => Iterable<{ readonly index: Index; readonly term: Term }>;
}

/** A complete snapshot in the store. */
export interface SnapshotInfo {
  /** `<term>-<index>-<ms>`: the directory name. */
  readonly id: string;
  readonly meta: SnapshotMeta;
  /** Bytes in state.bin. */
  readonly size: number;
  /** SHA-256 of state.bin, lower-case hex. */
  readonly sha256: string;
}

export interface OpenedSnapshot extends SnapshotInfo {
  /**
   * state.bin, verified while read: the stream errors (SNAPSHOT_CORRUPT) after the last chunk if the
   * byte count or SHA-256 differ from meta.json. Trust the data only once it has ended without error.
   * Consume it or destroy() it: either closes the file, which is held open from open() on.
   */
  readonly stream: Readable;
}

/**
 * Receives one snapshot's bytes. write() calls must not overlap (await each one); close() commits the
 * snapshot, cancel() discards it. After close() or cancel() every call but cancel() throws.
 */
export interface SnapshotSink {
  readonly id: string;
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Makes what was written so far durable (flush and fsync of state.bin), so that a close() right
   * after costs little. Optional; close() syncs by itself.
   */
  sync(): Promise<void>;
  /** Makes the snapshot durable and visible, then applies retention. Resolves with what was stored. */
  close(): Promise<SnapshotInfo>;
  /**
   * Discards the snapshot and its temp directory. Safe to call at any time, more than once; a no-op
   * once close() has begun (close() then commits or discards by itself).
   */
  cancel(): Promise<void>;
}

export class SnapshotStore {
  readonly dir: string;
  private readonly retain: number;
  private readonly now: () => number;
  private readonly warn: (message: string) => void;
  private readonly protect: () => Iterable<{ readonly index: Index; readonly term: Term }>;
  /** Ids handed to sinks that are still open, so two sinks never share a directory. */
  private readonly pending = new Set<string>();
  /** The last retention pass; passes run one after another so two closing sinks do not race. */
  private retention: Promise<void> = Promise.resolve();

  private constructor(dir: string, options: SnapshotStoreOptions) {
    this.dir = dir;
    this.retain = options.retain ?? snapshotLimits.retainDefaultCount;
    this.now = options.now ?? Date.now;
    this.warn = options.onWarning ?? (() => undefined);
    this.protect = options.protect ?? (() => []);
    assert(Number.isSafeInteger(this.retain), `retain ${this.retain} is an integer`);
    assert(this.retain >= 1, `retain ${this.retain} >= 1`);
  }

  /**
   * Opens the snapshot directory `dir`, creating it if missing, and removes what crashed writes and
   * deletions left behind (`*.tmp`, `*.del`).
   */
  static async open(dir: string, options: SnapshotStoreOptions = {}): Promise<SnapshotStore> {
    const store = new SnapshotStore(resolve(dir), options);
    try {
      const created = await mkdir(store.dir, { recursive: true });
      if (created !== undefined) await fsyncDir(dirname(created));
      const names = await readdir(store.dir);
      const leftovers = names.filter((n) => n.endsWith(tempSuffix) || n.endsWith(trashSuffix));
      for (const name of leftovers) await rm(join(store.dir, name), { recursive: true, force: true });
      if (leftovers.length > 0) await fsyncDir(store.dir);
    } catch (cause) {
      if (cause instanceof StorageError) throw cause;
      throw new StorageError('SNAPSHOT_READ_FAILED',
        `cannot open the snapshot directory ${store.dir} (${describeCause(cause)}); check that it is a ` +
          'directory this user can read and write', { path: store.dir, cause });
    }
    return store;
  }

  /** Starts a snapshot described by `meta`; nothing is visible until the sink's close() resolves. */
  async create(meta: SnapshotMeta): Promise<SnapshotSink> {
    assert(snapshotMetaProblem(meta) === undefined, `snapshot meta is valid: ${snapshotMetaProblem(meta)}`);
    const names = new Set(await this.readNames());
    let ms = this.now();
    let id = snapshotId(meta.term, meta.index, ms);
    while (names.has(id) || names.has(id + tempSuffix) || this.pending.has(id)) id = snapshotId(meta.term, meta.index, ++ms);
    this.pending.add(id);
    const temp = join(this.dir, id + tempSuffix);
    try {
      await mkdir(temp);
      const file = await open(join(temp, stateFile), 'wx', fileMode);
      const owner: SinkOwner = {
        dir: this.dir,
        release: (done) => this.pending.delete(done),
        applyRetention: () => this.applyRetention(),
      };
      return new FileSink(owner, id, meta, temp, file);
    } catch (cause) {
      this.pending.delete(id);
      // Safe to drop: the error below reports the failure; a leftover *.tmp is removed by the next open().
      await rm(temp, { recursive: true, force: true }).catch(() => undefined);
      throw new StorageError('SNAPSHOT_WRITE_FAILED',
        `cannot start snapshot ${id} in ${this.dir} (${describeCause(cause)}); nothing was written. ` +
          'Check free space and permissions.', { path: temp, cause });
    }
  }

  /** Complete snapshots, newest first (by index, then term, then creation time). Damaged ones are skipped. */
  async list(): Promise<SnapshotInfo[]> {
    const out: SnapshotInfo[] = [];
    for (const name of await this.readNames()) {
      if (!idPattern.test(name)) {
        if (!name.endsWith(tempSuffix) && !name.endsWith(trashSuffix)) {
          this.warn(`snapshot directory ${this.dir} holds ${JSON.stringify(name)}, which is not a snapshot; ignored`);
        }
        continue;
      }
      try {
        out.push(await this.readInfo(name));
      } catch (err) {
        if (!(err instanceof StorageError)) throw err;
        // Deleted since readdir: skip quietly. A stat that fails otherwise (EACCES, EIO) counts as
        // present, so the warning below reports the snapshot instead of list() failing on it.
        if (err.code === 'SNAPSHOT_NOT_FOUND' && !(await exists(join(this.dir, name)).catch(() => true))) continue;
        this.warn(`${err.message}; skipped`);
      }
    }
    return out.sort(newestFirst);
  }

  /** The newest complete snapshot, or undefined when there is none. */
  async latest(): Promise<SnapshotInfo | undefined> {
    return (await this.list())[0];
  }

  /**
   * Opens snapshot `id` for reading. Rejects with SNAPSHOT_NOT_FOUND when there is no such snapshot and
   * SNAPSHOT_CORRUPT when meta.json is invalid or state.bin's size differs from it; the stream checks
   * the SHA-256 (and the size again) as it is read.
   */
  async open(id: string): Promise<OpenedSnapshot> {
    if (!idPattern.test(id)) {
      throw new StorageError('SNAPSHOT_NOT_FOUND',
        `${JSON.stringify(id)} is not a snapshot id (expected <term>-<index>-<ms>)`, { path: this.dir });
    }
    const info = await this.readInfo(id);
    const path = join(this.dir, id, stateFile);
    // Opened now, not on the first read: once open, retention deleting the snapshot cannot break it.
    let file: FileHandle;
    let size: number;
    try {
      file = await open(path, 'r');
    } catch (cause) {
      throw this.fileError(id, path, cause);
    }
    try {
      size = (await file.stat()).size;
    } catch (cause) {
      await file.close();
      throw this.fileError(id, path, cause);
    }
    if (size !== info.size) {
      await file.close();
      throw corruptSnapshot(id, path, `state.bin is ${size} bytes but meta.json records ${info.size}`);
    }
    return { ...info, stream: new VerifiedStateStream(file, path, info) };
  }

  /**
   * Deletes snapshot `id` (rename to `<id>.del`, fsync the directory, remove): a snapshot that will
   * never be used, such as an abandoned restore's. A missing one is not an error. Runs after any
   * retention pass in progress, so the two never race on one snapshot.
   */
  async remove(id: string): Promise<void> {
    if (!idPattern.test(id)) {
      throw new StorageError('SNAPSHOT_NOT_FOUND', `${JSON.stringify(id)} is not a snapshot id (expected <term>-<index>-<ms>)`, { path: this.dir });
    }
    const pass = this.retention.then(() => this.delete(id));
    this.retention = pass.catch(() => undefined);
    await pass;
  }

  // -------------------------------------------------------------------------------------------

  private async delete(id: string): Promise<void> {
    const trash = join(this.dir, id + trashSuffix);
    try {
      await rename(join(this.dir, id), trash);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new StorageError('SNAPSHOT_WRITE_FAILED', `cannot delete snapshot ${id} in ${this.dir} (${describeCause(cause)})`, { path: this.dir, cause });
    }
    await fsyncDir(this.dir);
    await rm(trash, { recursive: true, force: true });
  }

  /** Deletes the oldest complete snapshots beyond `retain`, one pass at a time. Never rejects. */
  private applyRetention(): Promise<void> {
    const pass = this.retention.then(() => this.retentionPass());
    this.retention = pass;
    return pass;
  }

  private async retentionPass(): Promise<void> {
    let excess: SnapshotInfo[];
    try {
      const kept = [...this.protect()];
      const isKept = (s: SnapshotInfo): boolean => kept.some((k) => k.index === s.meta.index && k.term === s.meta.term);
      excess = (await this.list()).slice(this.retain).filter((s) => !isKept(s));
    } catch (err) {
      this.warn(`could not list ${this.dir} to delete old snapshots (${describeCause(err)}); retried after the next snapshot`);
      return;
    }
    for (const { id } of excess) {
      const trash = join(this.dir, id + trashSuffix);
      try {
        await rename(join(this.dir, id), trash);
        await fsyncDir(this.dir);
        await rm(trash, { recursive: true, force: true });
      } catch (cause) {
        this.warn(`could not delete old snapshot ${id} in ${this.dir} (${describeCause(cause)}); it will be retried after the next snapshot`);
      }
    }
  }

  private async readNames(): Promise<string[]> {
    try {
      return await readdir(this.dir);
    } catch (cause) {
      throw new StorageError('SNAPSHOT_READ_FAILED',
        `cannot read the snapshot directory ${this.dir} (${describeCause(cause)})`, { path: this.dir, cause });
    }
  }

  private async readInfo(id: string): Promise<SnapshotInfo> {
    const path = join(this.dir, id, metaFile);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (cause) {
      throw this.fileError(id, path, cause);
    }
    const decoded = decodeSnapshotMetaFile(text);
    if (!decoded.ok) throw corruptSnapshot(id, path, `meta.json is invalid: ${decoded.problem}`);
    const file = decoded.value;
    if (file.id !== id) throw corruptSnapshot(id, path, `meta.json names snapshot ${file.id}`);
    const [, term, index] = idPattern.exec(id)!;
    if (Number(term) !== file.meta.term || Number(index) !== file.meta.index) {
      throw corruptSnapshot(id, path, `meta.json holds term ${file.meta.term} index ${file.meta.index}, which the name contradicts`);
    }
    return { id, meta: file.meta, size: file.size, sha256: file.sha256 };
  }

  private fileError(id: string, path: string, cause: unknown): StorageError {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
      return new StorageError('SNAPSHOT_NOT_FOUND', `snapshot ${id} does not exist in ${this.dir} (no ${path})`,
        { path, cause });
    }
    return new StorageError('SNAPSHOT_READ_FAILED', `cannot read ${path} (${describeCause(cause)})`, { path, cause });
  }
}

/** What a sink needs from its store. */
interface SinkOwner {
  readonly dir: string;
  /** The sink is done with its id (committed or discarded). */
  release(id: string): void;
  applyRetention(): Promise<void>;
}

class FileSink implements SnapshotSink {
  private state: 'open' | 'writing' | 'closing' | 'done' | 'failed' = 'open';
  private readonly hash: Hash = createHash('sha256');
  private size = 0;
  private readonly buffer = Buffer.allocUnsafe(snapshotLimits.sinkBufferBytes);
  private buffered = 0;
  private file: FileHandle | undefined;

  constructor(
    private readonly store: SinkOwner,
    readonly id: string,
    private readonly meta: SnapshotMeta,
    private readonly temp: string,
    file: FileHandle,
  ) {
    this.file = file;
  }

  async write(chunk: Uint8Array): Promise<void> {
    assert(this.state !== 'writing', `snapshot ${this.id}: write() waits for the previous write()`);
    assert(this.state === 'open', `snapshot ${this.id}: write() only while open (sink is ${this.state})`);
    assert(chunk instanceof Uint8Array, 'a snapshot chunk is a Uint8Array');
    this.state = 'writing';
    try {
      this.hash.update(chunk);
      this.size += chunk.byteLength;
      if (this.buffered + chunk.byteLength <= this.buffer.length) {
        this.buffer.set(chunk, this.buffered);
        this.buffered += chunk.byteLength;
        if (this.buffered === this.buffer.length) await this.flush();
      } else {
        await this.flush();
        if (chunk.byteLength >= this.buffer.length) {
          await writeAll(this.file!, chunk);
        } else {
          this.buffer.set(chunk, 0);
          this.buffered = chunk.byteLength;
        }
      }
      if (this.state === 'writing') this.state = 'open'; // unless cancel() ran meanwhile
    } catch (cause) {
      if (this.state === 'writing') this.state = 'failed';
      throw this.writeError('writing state.bin', cause);
    }
  }

  async sync(): Promise<void> {
    assert(this.state === 'open', `snapshot ${this.id}: sync() only while open (sink is ${this.state})`);
    this.state = 'writing';
    try {
      await this.flush();
      await this.file!.sync();
      if (this.state === 'writing') this.state = 'open';
    } catch (cause) {
      if (this.state === 'writing') this.state = 'failed';
      throw this.writeError('syncing state.bin', cause);
    }
  }

  async close(): Promise<SnapshotInfo> {
    assert(this.state === 'open', `snapshot ${this.id}: close() only while open (sink is ${this.state})`);
    this.state = 'closing';
    const dir = this.store.dir;
    const info: SnapshotInfo = { id: this.id, meta: this.meta, size: this.size, sha256: this.hash.digest('hex') };
    let renamed = false;
    try {
      await this.flush();
      await this.file!.sync();
      await this.closeFile();
      const metaText = encodeSnapshotMetaFile({ format: snapshotFormatVersion, ...info });
      const metaHandle = await open(join(this.temp, metaFile), 'wx', fileMode);
      try {
        await metaHandle.writeFile(metaText);
        await metaHandle.sync();
      } finally {
        await metaHandle.close();
      }
      await fsyncDir(this.temp);
      await rename(this.temp, join(dir, this.id));
      renamed = true;
      await fsyncDir(dir);
    } catch (cause) {
      this.state = 'failed';
      if (!renamed) {
        await this.discard();
        throw this.writeError('committing the snapshot', cause);
      }
      this.store.release(this.id);
      throw new StorageError('SNAPSHOT_WRITE_FAILED',
        `snapshot ${this.id} is complete in ${dir} but fsyncing that directory failed (${describeCause(cause)}), ` +
          'so it may vanish in a crash. Check the disk; take the snapshot again before relying on it.',
        { path: dir, cause });
    }
    this.state = 'done';
    this.store.release(this.id);
    await this.store.applyRetention();
    return info;
  }

  async cancel(): Promise<void> {
    // While closing, close() itself either commits the snapshot or discards it.
    if (this.state === 'done' || this.state === 'closing') return;
    this.state = 'failed';
    await this.discard();
  }

  private async flush(): Promise<void> {
    if (this.buffered === 0) return;
    await writeAll(this.file!, this.buffer.subarray(0, this.buffered));
    this.buffered = 0;
  }

  private async closeFile(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    await file?.close();
  }

  private async discard(): Promise<void> {
    // Safe to drop: discarding follows a failure or a cancel that the caller already has; the snapshot
    // never became visible, and a leftover *.tmp is removed by the next open().
    await this.closeFile().catch(() => undefined);
    await rm(this.temp, { recursive: true, force: true }).catch(() => undefined);
    this.store.release(this.id);
  }

  private writeError(what: string, cause: unknown): StorageError {
    if (cause instanceof StorageError) return cause;
    return new StorageError('SNAPSHOT_WRITE_FAILED',
      `snapshot ${this.id}: ${what} in ${this.temp} failed (${describeCause(cause)}); the snapshot was not ` +
        'stored and earlier snapshots are untouched. Cancel the sink, check free space and retry.',
      { path: this.temp, cause });
  }
}

async function writeAll(file: FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) {
    const { bytesWritten } = await file.write(bytes, offset, bytes.byteLength - offset, null);
    offset += bytesWritten;
  }
}

/**
 * state.bin as a stream of fresh chunks (a consumer may keep them), hashed and counted on the way; after
 * the last chunk it errors instead of ending if the size or SHA-256 differ from meta.json. Owns `file`.
 */
class VerifiedStateStream extends Readable {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;

  constructor(
    private readonly file: FileHandle,
    private readonly path: string,
    private readonly expected: SnapshotInfo,
  ) {
    super({ highWaterMark: snapshotLimits.readChunkBytes });
  }

  // Node calls _read again only after push(), so reads never overlap.
  override _read(): void {
    this.nextChunk().then(
      (chunk) => this.push(chunk),
      (err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))),
    );
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.file.close().then(() => callback(err), (closeErr: Error) => callback(err ?? closeErr));
  }

  private async nextChunk(): Promise<Buffer | null> {
    const { id, size, sha256 } = this.expected;
    const chunk = Buffer.allocUnsafe(snapshotLimits.readChunkBytes);
    let bytesRead: number;
    try {
      ({ bytesRead } = await this.file.read(chunk, 0, chunk.length, null));
    } catch (cause) {
      throw new StorageError('SNAPSHOT_READ_FAILED', `reading ${this.path} failed (${describeCause(cause)})`,
        { path: this.path, cause });
    }
    if (bytesRead === 0) {
      if (this.bytes !== size) throw corruptSnapshot(id, this.path, `state.bin ended after ${this.bytes} bytes but meta.json records ${size}`);
      const actual = this.hash.digest('hex');
      if (actual !== sha256) throw corruptSnapshot(id, this.path, `state.bin has SHA-256 ${actual} but meta.json records ${sha256}`);
      return null;
    }
    this.bytes += bytesRead;
    if (this.bytes > size) throw corruptSnapshot(id, this.path, `state.bin is longer than the ${size} bytes meta.json records`);
    const data = bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead);
    this.hash.update(data);
    return data;
  }
}

function corruptSnapshot(id: string, path: string, what: string): StorageError {
  return new StorageError('SNAPSHOT_CORRUPT',
    `snapshot ${id} is damaged: ${what} (${path}). Do not use it: take a new snapshot (or let the leader ` +
      'send one), and move the damaged directory out of the snapshot directory.',
    { path });
}

function snapshotId(term: Term, index: Index, ms: number): string {
  return `${term}-${index}-${ms}`;
}

function parseId(id: string): [term: number, index: number, ms: number] {
  const m = idPattern.exec(id)!;
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

function newestFirst(a: SnapshotInfo, b: SnapshotInfo): number {
  const [, , aMs] = parseId(a.id);
  const [, , bMs] = parseId(b.id);
  return b.meta.index - a.meta.index || b.meta.term - a.meta.term || bMs - aMs || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}
