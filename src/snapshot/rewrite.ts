// Re-emitting a state.bin for a user restore, so every index a client sees after the restore is at least
// the restore's Raft index, identically on every server (see README.md, "Restore index").

import { decode } from '@msgpack/msgpack';
import { concatBytes } from '../base/index.js';
import { ArchiveError, StateBinError } from './errors.js';
import { snapshotLimits } from './limits.js';
import { measureMsgpack } from './msgpack-frame.js';
import { encodeStateBinHeader, parseStateBinHeader } from './statebin.js';

/**
 * Yields `stateBin` with its header replaced by {LastIndex: restoreIndex, RestoreIndex: restoreIndex} and
 * every record after it byte for byte. The restore that reads it (fsm/restore.ts) raises every key's
 * ModifyIndex, every tombstone's index and the `kvs` and `tombstones` table indexes to at least
 * `restoreIndex` as it builds the database; keys, values, flags, CreateIndex, LockIndex and Session are
 * kept. Every server restores these same bytes, so the result is the same everywhere.
 *
 * Only the header is read here: the records were checked whole by readArchive before the restore began,
 * and every server's restore checks them again as it builds its database. Throws ArchiveError('state-bin')
 * when `restoreIndex` is below the stream's LastIndex, StateBinError for a bad header.
 */
export async function* rewriteForRestore(stateBin: AsyncIterable<Uint8Array>, restoreIndex: number): AsyncGenerator<Uint8Array> {
  const source = stateBin[Symbol.asyncIterator]();
  let finished = false;
  try {
    let pending: Uint8Array = new Uint8Array(0);
    let headerEnd: number;
    for (;;) {
      const frame = measureMsgpack(pending, 0, pending.length, snapshotLimits.stateBinHeaderMaxBytes);
      if (frame.kind === 'complete') {
        headerEnd = frame.end;
        break;
      }
      if (frame.kind !== 'incomplete') {
        throw new StateBinError('STATE_BIN_BAD_MSGPACK', 0, 0, undefined,
          `state.bin header is not a msgpack value of at most ${snapshotLimits.stateBinHeaderMaxBytes} bytes`);
      }
      const next = await source.next();
      if (next.done === true) {
        finished = true;
        throw new StateBinError(pending.length === 0 ? 'STATE_BIN_EMPTY' : 'STATE_BIN_TRUNCATED', 0, 0, undefined,
          'state.bin ends inside its header {LastIndex}');
      }
      pending = concatBytes([pending, next.value]);
    }
    let body: unknown;
    try {
      body = decode(pending.subarray(0, headerEnd), { useBigInt64: true });
    } catch (cause) {
      throw new StateBinError('STATE_BIN_BAD_MSGPACK', 0, 0, undefined, `state.bin header is not valid msgpack: ${(cause as Error).message}`, { cause });
    }
    const { lastIndex } = parseStateBinHeader(body);
    if (lastIndex > restoreIndex) {
      throw new ArchiveError('state-bin', `cannot restore at index ${restoreIndex}: state.bin's LastIndex ${lastIndex} is above it`);
    }
    yield encodeStateBinHeader(restoreIndex, restoreIndex);
    if (headerEnd < pending.length) yield pending.subarray(headerEnd);
    for (;;) {
      const next = await source.next();
      if (next.done === true) break;
      yield next.value;
    }
    finished = true;
  } finally {
    if (!finished && source.return !== undefined) await source.return();
  }
}
