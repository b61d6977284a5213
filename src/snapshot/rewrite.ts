// Re-emitting a state.bin for a user restore, so every index a client sees after the restore is at least
// the restore's Raft index, identically on every server (see README.md, "Restore index").

import { unreachable } from '../base/index.js';
import { ArchiveError } from './errors.js';
import { encodeIndexRecord, RecordType } from './records.js';
import { encodeStateBinHeader, readStateBin } from './statebin.js';

/** The KV tables whose Index records are raised to the restore index. */
const raisedTables = ['kvs', 'tombstones'] as const;

/**
 * Validates `stateBin` ('restore' record policy; throws StateBinError) and yields it again with the header's
 * LastIndex set to `restoreIndex` and the `kvs` and `tombstones` Index records set to
 * max(value, restoreIndex); a missing one is added after the last record (Consul writes Index records
 * last). Every other record is copied byte for byte, in order. Throws ArchiveError('state-bin') when
 * `restoreIndex` is below the stream's LastIndex.
 */
export async function* rewriteForRestore(stateBin: AsyncIterable<Uint8Array>, restoreIndex: number): AsyncGenerator<Uint8Array> {
  const seen = new Set<string>();
  for await (const item of readStateBin(stateBin, { records: 'restore' })) {
    switch (item.kind) {
      case 'header':
        if (item.lastIndex > restoreIndex) {
          throw new ArchiveError('state-bin',
            `cannot restore at index ${restoreIndex}: state.bin's LastIndex ${item.lastIndex} is above it`);
        }
        yield encodeStateBinHeader(restoreIndex);
        break;
      case 'index':
        if ((raisedTables as readonly string[]).includes(item.index.Key)) {
          seen.add(item.index.Key);
          yield Uint8Array.of(RecordType.Index);
          yield encodeIndexRecord({ Key: item.index.Key, Value: Math.max(item.index.Value, restoreIndex) });
          break;
        }
        yield Uint8Array.of(RecordType.Index);
        yield item.raw.slice();
        break;
      case 'kvs':
      case 'tombstone':
        yield Uint8Array.of(item.kind === 'kvs' ? RecordType.KVS : RecordType.Tombstone);
        yield item.raw.slice();
        break;
      case 'other':
        unreachable(item as never);
    }
  }
  for (const table of raisedTables) {
    if (seen.has(table)) continue;
    yield Uint8Array.of(RecordType.Index);
    yield encodeIndexRecord({ Key: table, Value: restoreIndex });
  }
}
