// Every limit of the state machine, with its unit last and its reason beside it.

import { assert, KiB, MiB } from '../base/index.js';
import { snapshotLimits } from '../snapshot/index.js';

export const fsmLimits = {
  /**
   * Largest command the decoder accepts. A guard against hostile bytes only: the Raft layer and the HTTP
   * layer enforce the real (smaller) entry and value limits, e.g. Consul's 512 KiB `kv_max_value_size`.
   */
  commandMaxBytes: 64 * MiB,
  /**
   * Most operations in one txn command. Consul's HTTP endpoint stops at 128 (`maxTxnOps`,
   * agent/txn_endpoint.go; 64 in Consul 0.x); this is only a ceiling against hostile bytes, the HTTP
   * layer keeps Consul's.
   */
  txnOpsMaxCount: 4096,
  /**
   * How many bytes of entries the snapshot's LevelDB iterator reads ahead in one trip to the thread
   * pool (classic-level's default is 16 KiB, about 50 KV rows; each trip costs a thread-pool round).
   */
  snapshotReadAheadBytes: 1 * MiB,
  /** Snapshot output is coalesced into chunks of about this size (one record may exceed it). */
  snapshotChunkBytes: 64 * KiB,
  /**
   * LevelDB's memtable while a restore fills a fresh database: LevelDB's default. 16 MiB was tried and
   * was no faster (1,000,000 keys in one process: 5.96 s against 5.51 s), while every server building a
   * restore held the larger memtable.
   */
  restoreWriteBufferBytes: 4 * MiB,
  /** A restore writes its fresh database in batches of at most this many records... */
  restoreBatchMaxCount: 1000,
  /** ...or of at most this many bytes, whichever comes first. */
  restoreBatchMaxBytes: 4 * MiB,
} as const;

assert(fsmLimits.snapshotChunkBytes < snapshotLimits.stateBinRecordMaxBytes, 'a snapshot chunk is smaller than the record limit');
