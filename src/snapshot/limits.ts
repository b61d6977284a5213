// Every limit of the snapshot codecs, with its unit last and its reason beside it.

import { KiB, MiB } from '../base/index.js';

export const snapshotLimits = {
  /**
   * Largest single state.bin record (type byte + msgpack body) that a restore buffers. A KV record is
   * its value plus about 100 bytes; Consul's default value limit is 512 KiB, so this leaves room for
   * clusters that raised `kv_max_value_size` while keeping restore memory bounded.
   */
  stateBinRecordMaxBytes: 64 * MiB,
  /**
   * Most msgpack values (the body itself, every list item, map key and map value) in one record. A KVS
   * record holds about 15, a session about 20 plus its checks; decoded, a value costs tens of bytes, so
   * this keeps a hostile record of tiny items (64 MiB of one-byte list items would be ~2 GiB of heap)
   * to a few MiB.
   */
  stateBinRecordMaxValues: 100_000,
  /** Largest state.bin header ({LastIndex}, about 20 bytes) that a user restore's rewrite reads. */
  stateBinHeaderMaxBytes: 4 * KiB,
  /** When a restore's read buffer grows, it grows to at least this many bytes (fewer, tinier copies). */
  stateBinBufferMinBytes: 64 * KiB,
} as const;
