// Errors of the snapshot codecs: bad input at a boundary (a state.bin stream, an archive). Nothing has
// been changed when they appear; the caller decides what to tell its user.

export type StateBinErrorCode =
  | 'STATE_BIN_EMPTY'
  | 'STATE_BIN_TRUNCATED'
  | 'STATE_BIN_BAD_MSGPACK'
  | 'STATE_BIN_RECORD_TOO_LARGE'
  | 'STATE_BIN_UNKNOWN_TYPE'
  | 'STATE_BIN_UNSUPPORTED_TYPE'
  | 'STATE_BIN_ENTERPRISE_TYPE'
  | 'STATE_BIN_MISSING_FIELD'
  | 'STATE_BIN_BAD_FIELD'
  | 'STATE_BIN_SIZE_MISMATCH';

/**
 * A `state.bin` stream that cannot be restored. `record` is 0 for the header, counts records from 1, and
 * is -1 for a problem of the stream as a whole (its length); `byteOffset` is where that record starts in
 * the stream (or the stream length); `field` names the offending field when there is one.
 */
export class StateBinError extends Error {
  override readonly name = 'StateBinError';
  constructor(
    readonly code: StateBinErrorCode,
    readonly record: number,
    readonly byteOffset: number,
    readonly field: string | undefined,
    message: string,
    options?: { cause?: unknown; type?: number },
  ) {
    super(message, options);
    this.type = options?.type;
  }
  /** The record's type byte, for a refused record type (STATE_BIN_*_TYPE). */
  readonly type: number | undefined;
}

export type ArchiveErrorCode =
  /** The body is not gzip at all (Consul: `failed to decompress snapshot: gzip: invalid header`). */
  | 'not-gzip'
  /** The gzip stream is corrupt or cut short. */
  | 'decompress'
  /** The tar inside is malformed, truncated, or uses a feature we refuse (links, extension headers). */
  | 'tar'
  /** A member other than meta.json, state.bin, SHA256SUMS, a path with a directory, or a non-regular entry. */
  | 'unexpected-file'
  | 'duplicate-file'
  | 'missing-file'
  /** A member above its size limit. */
  | 'too-large'
  /** SHA256SUMS does not vouch for the members (Consul: `failed checking integrity of snapshot: ...`). */
  | 'integrity'
  /** meta.json is not the expected JSON (Consul: `failed to decode snapshot metadata: ...`). */
  | 'metadata'
  /** state.bin's length is not meta.json's Size (read side), or the stream given to the writer is not. */
  | 'size-mismatch'
  /** state.bin does not decode or validate, or its indexes are above the snapshot's. */
  | 'state-bin'
  /** state.bin holds a record type this version cannot restore. */
  | 'unsupported-record'
  /** Bytes after the tar's end (Consul: `<n> unread uncompressed bytes remain`). */
  | 'trailing-data';

/**
 * A snapshot archive that cannot be read or written. `message` is the inner Consul-style text; callers add
 * their own prefix (`failed to read snapshot file: `, `Error verifying snapshot: `).
 */
export class ArchiveError extends Error {
  override readonly name = 'ArchiveError';
  constructor(
    readonly code: ArchiveErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
