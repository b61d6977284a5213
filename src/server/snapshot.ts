// Snapshot save and restore on the server that runs them (the leader, or any server for a stale
// save). Forwarding, ACLs and datacenters are the Server's business (server.ts); this file turns the
// state machine into an archive and an archive into a Raft user restore.
//
// Save: one LevelDB iterator gives a point-in-time state.bin (fsm/snapshot.ts). It is compressed as it
// is read (a gzip member of its own, hashed and counted on the way) into a scratch file, because
// meta.json, which comes first in the archive, records state.bin's size. The archive is then streamed
// as a small gzip member for the tar head, a copy of that file, and a small member for the tar tail:
// compressing while reading overlaps deflate (thread pool) with the iteration (main thread), and the
// second pass is a copy. The file goes when the stream ends or is destroyed.
// Concurrent saves each have their own file and touch neither the snapshot store nor the log.
//
// Restore: the upload is read once, in bounded memory: state.bin goes to a scratch file while the
// reader checks gzip, tar, members, both hashes, Size and every record (src/snapshot). Only a whole,
// valid archive reaches the node's user restore, which rewrites the table indexes to the restore's
// Raft index as it stores the bytes (so no X-Consul-Index goes backwards, identically everywhere).

import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { KiB } from '../base/index.js';
import type { RaftNode } from '../node/index.js';
import { ArchiveError, archiveMeta, readArchive, rewriteForRestore, stateBinMember, writeArchiveAround, type StateBinDigest } from '../snapshot/index.js';
import { ServerError } from './api.js';

const scratchReadChunkBytes = 256 * KiB;

export interface LocalSnapshot {
  /** The snapshot's Raft index. */
  readonly index: number;
  readonly body: Readable;
}

/**
 * A scratch file's bytes, opened only when they are first pulled, and closed when the consumer stops.
 * createReadStream opens its file at once: a save's body destroyed before its first read (the client
 * gone after the headers) left that descriptor open, and the deleted file's space held, for good.
 */
export async function* scratchBytes(path: string): AsyncGenerator<Uint8Array> {
  yield* createReadStream(path, { highWaterMark: scratchReadChunkBytes });
}

/** Takes a point-in-time snapshot of this server's state machine and streams it as an archive. */
export async function saveLocal(node: RaftNode, producerVersion: string, logger: Logger): Promise<LocalSnapshot> {
  const started = Date.now();
  const snap = await node.fsm.snapshot();
  const scratch = join(node.scratchDir, `save-${randomUUID()}.state.bin.gz`);
  let stateBin: StateBinDigest;
  try {
    const file = await open(scratch, 'wx', 0o600);
    try {
      const compressed = stateBinMember(snap);
      for await (const chunk of compressed.member) await writeAll(file, chunk);
      stateBin = compressed.digest();
    } finally {
      await file.close();
    }
  } catch (e) {
    await snap.close();
    await rm(scratch, { force: true });
    throw new ServerError('internal', `Raft error when taking snapshot: ${(e as Error).message}`, { cause: e });
  }
  const s = node.status();
  const meta = archiveMeta({
    index: snap.index,
    term: snap.term,
    configuration: s.configuration,
    configurationIndex: s.configurationIndex,
    size: stateBin.size,
    nowMs: Date.now(),
    producerVersion,
  });
  const body = Readable.from(writeArchiveAround(meta, stateBin, scratchBytes(scratch)), { objectMode: false });
  let sent = 0;
  body.on('data', (chunk: Buffer) => (sent += chunk.length));
  body.once('close', () => {
    // Safe to drop: the scratch directory is emptied at every start.
    void rm(scratch, { force: true }).catch(() => undefined);
    const ms = Date.now() - started;
    if (body.readableEnded) logger.info({ event: 'snapshot-saved', index: snap.index, stateBytes: stateBin.size, archiveBytes: sent, ms }, 'snapshot saved');
    else logger.warn({ event: 'snapshot-save-stopped', index: snap.index, archiveBytes: sent, ms }, 'snapshot save stopped before its end');
  });
  return { index: Math.max(1, snap.index), body };
}

/**
 * Checks `archive` whole, then restores it through Raft on this server (the leader). A bad archive
 * rejects with `bad-request` ("failed to read snapshot file: ...") and nothing has changed.
 */
export async function restoreLocal(node: RaftNode, archive: AsyncIterable<Uint8Array>, logger: Logger): Promise<{ index: number }> {
  const started = Date.now();
  const scratch = join(node.scratchDir, `restore-${randomUUID()}.state.bin`);
  try {
    let file: FileHandle | undefined = await open(scratch, 'wx', 0o600);
    let contents;
    try {
      const f = file;
      contents = await readArchive(archive, { records: 'restore', stateBinSink: (chunk) => writeAll(f, chunk) });
    } catch (e) {
      if (e instanceof ArchiveError) {
        logger.warn({ event: 'restore-refused', code: e.code, reason: e.message }, 'snapshot restore refused: the archive is not valid; nothing changed');
        throw new ServerError('bad-request', `failed to read snapshot file: ${e.message}`, { cause: e });
      }
      throw e;
    } finally {
      await file.close();
      file = undefined;
    }
    const { meta, stateBin } = contents;
    logger.info(
      { event: 'restore-verified', index: meta.Index, term: meta.Term, stateBytes: stateBin.size, producer: meta.Producer ?? 'consul', ms: Date.now() - started },
      'snapshot archive verified; restoring it through Raft',
    );
    const placed = await node.userRestore((restoreIndex) => rewriteForRestore(createReadStream(scratch, { highWaterMark: scratchReadChunkBytes }), restoreIndex), meta.Index);
    logger.info({ event: 'restored', index: placed.index, archiveIndex: meta.Index, ms: Date.now() - started }, 'snapshot restored');
    return { index: placed.index };
  } finally {
    // Safe to drop: the scratch directory is emptied at every start.
    await rm(scratch, { force: true }).catch(() => undefined);
  }
}

async function writeAll(file: FileHandle, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.byteLength) {
    const { bytesWritten } = await file.write(bytes, at, bytes.byteLength - at);
    at += bytesWritten;
  }
}
