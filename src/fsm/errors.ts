// Errors of the state machine, sorted into three kinds, each with its own treatment:
//
// - bugs: `InvariantError` through `assert()` (both from src/base). Never caught; the process stops.
// - bad input at a boundary: `CommandError` (proposed command bytes) and `StateBinError` (a state.bin
//   stream being restored; defined in src/snapshot). Decoders return or throw them; nothing has been
//   changed when they appear.
// - the environment and misuse of the API: `FsmError` with a stable code (disk failure while writing,
//   a directory in an unknown format, an operation on a closed or poisoned FSM).

export type CommandErrorCode =
  | 'COMMAND_EMPTY'
  | 'COMMAND_UNKNOWN_TYPE'
  | 'COMMAND_BAD_MSGPACK'
  | 'COMMAND_TRAILING_BYTES'
  | 'COMMAND_BAD_FIELD'
  | 'COMMAND_UNKNOWN_FIELD'
  | 'COMMAND_TOO_LARGE';

/**
 * A command that cannot be proposed or applied: raised by `encodeCommand` for an invalid command object
 * and returned by `decodeCommand` for hostile or corrupt bytes. `path` names the offending field in
 * Consul's spelling (`Ops[2].KV.DirEnt.Key`), empty for problems with the whole message.
 */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly code: CommandErrorCode,
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type FsmErrorCode =
  | 'FSM_OPEN_FAILED'
  | 'FSM_DIR_UNKNOWN_FORMAT'
  | 'FSM_CORRUPT'
  | 'FSM_CLOSED'
  | 'FSM_POISONED'
  | 'FSM_WRITE_FAILED'
  | 'FSM_COMMAND_UNDECODABLE'
  | 'FSM_SNAPSHOT_ABORTED'
  | 'FSM_RESTORE_TARGET_EXISTS'
  | 'FSM_RESTORE_INCOMPLETE'
  | 'FSM_SWAP_FAILED';

export class FsmError extends Error {
  override readonly name = 'FsmError';
  constructor(
    readonly code: FsmErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
