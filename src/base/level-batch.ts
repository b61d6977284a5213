// One atomic LevelDB write of a list of operations, the way the hot paths (the Raft log's appends,
// the state machine's applies) write.

import type { Level } from 'level';

/** One operation of an atomic write. */
export type LevelOp<K> = { readonly type: 'put'; readonly key: K; readonly value: K } | { readonly type: 'del'; readonly key: K };

/**
 * Writes `ops` as one atomic batch (all or none), fsynced first when `sync`.
 *
 * Through a chained batch, not `db.batch(ops)`: abstract-level clones every operation of an array
 * batch into a new object, with the options spread into it, and runs its encoders and checks on each,
 * in JavaScript on the event loop. Measured on this machine (tmp script, 20,000 batches of 3 puts of
 * up to 300 bytes): 42 us of CPU per array batch, 21 us per chained batch, of which 21 and 7 us on the
 * event loop. The bytes LevelDB writes are the same: both end in one leveldb::WriteBatch.
 */
export function writeOps<K extends Uint8Array>(db: Level<K, K>, ops: readonly LevelOp<K>[], sync: boolean): Promise<void> {
  const batch = db.batch();
  for (const op of ops) {
    if (op.type === 'put') batch.put(op.key, op.value);
    else batch.del(op.key);
  }
  return batch.write({ sync });
}
