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
