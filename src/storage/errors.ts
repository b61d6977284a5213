// Errors of the storage layer. Every failure is one of three kinds, each with one treatment: a bug
// (assert and crash), the environment (a typed error naming what to do), or an expected condition
// (a typed result the caller handles). Storage has only the first two:
//
//  - InvariantError (src/base, through assert()): a bug in the caller or in this module (a round that
//    would leave a gap in the log, a write on a sink that was closed). Never caught; the process should crash.
//  - StorageError: the environment (a file that cannot be written, a directory held by another process,
//    bytes on disk that fail validation). Carries a stable code, the path involved, the log index when
//    one applies, what was expected and what to do next. A failed write of the log, term or vote is
//    fatal to the node: the caller stops the server instead of retrying.

export type StorageErrorCode =
  /** The LevelDB log store could not be opened (locked by another process, unreadable, not a store). */
  | 'LOG_OPEN_FAILED'
  /** Bytes in the log store fail validation: a bad value, a gap, an entry below the log base. */
  | 'LOG_CORRUPT'
  /** A write to the log store failed; the store refuses every later call. */
  | 'LOG_WRITE_FAILED'
  /** A read from the log store failed below the validation layer (LevelDB reported an error). */
  | 'LOG_READ_FAILED'
  /** The log store was closed, or an earlier write failed and left its state unknown. */
  | 'LOG_UNUSABLE'
  /** The requested entries are not stored: compacted into the base, or beyond the last entry. */
  | 'LOG_RANGE_UNAVAILABLE'
  /** No snapshot with that id in the snapshot directory. */
  | 'SNAPSHOT_NOT_FOUND'
  /** A snapshot's meta.json or state.bin fails validation (size, SHA-256, fields). */
  | 'SNAPSHOT_CORRUPT'
  /** Writing a snapshot (state.bin, meta.json, the rename) failed; nothing was added. */
  | 'SNAPSHOT_WRITE_FAILED'
  /** Reading the snapshot directory or a snapshot's files failed. */
  | 'SNAPSHOT_READ_FAILED'
  /** writeFileAtomic or fsyncDir failed; the target file is unchanged. */
  | 'FILE_WRITE_FAILED';

export interface StorageErrorDetails {
  /** The file or directory the error is about. */
  readonly path: string;
  /** The log index the error is about, when there is one. */
  readonly index?: number;
  readonly cause?: unknown;
}

/** A failure of the environment or of data read from disk. `message` says what to do next. */
export class StorageError extends Error {
  override readonly name = 'StorageError';
  readonly code: StorageErrorCode;
  readonly path: string;
  readonly index: number | undefined;

  constructor(code: StorageErrorCode, message: string, details: StorageErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.path = details.path;
    this.index = details.index;
  }
}

/** The message of an unknown thrown value, for chaining into a sentence. */
export function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code === undefined ? cause.message : `${code}: ${cause.message}`;
  }
  return String(cause);
}
