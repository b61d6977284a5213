// The FSM: Conclave's deterministic KV state machine in its own LevelDB, with Consul's KV semantics,
// point-in-time state.bin snapshots, and restore into a fresh database swapped in atomically.
// Other folders import from here only.

export { Fsm, type FsmOptions, type WatchOutcome } from './fsm.js';
export { StateBinSnapshot } from './snapshot.js';
export { restoreInto, type RestoreOptions, type RestoreSummary } from './restore.js';
export { newDirFor, oldDirFor, recoverFsmDir, restoreCompleteMarker, type RecoveryAction } from './dirs.js';
export {
  decodeCommand,
  encodeCommand,
  validateCommand,
  isWriteOp,
  MessageType,
  ignoreUnknownTypeFlag,
  type Command,
  type DecodeResult,
  type KvOp,
  type KvReadOp,
  type KvVerb,
  type KvWriteOp,
  type NewSession,
  type NewNode,
  type NewService,
  type NewCheck,
  type TxnOp,
} from './command.js';
export { goQuote, maxLockDelayMs, type TxnOutcome } from './kv-logic.js';
export { checkJson } from './catalog-read.js';
export type { WakeReason, WatchTarget } from './watch.js';
export type {
  ApplyResult,
  CatalogQuery,
  CatalogRead,
  CatalogNode,
  NodeService,
  HealthCheck,
  CheckStatus,
  CheckDefinition,
  ServiceWeights,
  ServiceAddress,
  DirEntry,
  KeyRead,
  KeysRead,
  KvTableName,
  ListRead,
  LogIndex,
  LogTerm,
  ServiceCheck,
  Session,
  SessionBehavior,
  SessionRead,
  Tombstone,
  TxnError,
  TxnResult,
} from './types.js';
export {
  CommandError,
  FsmError,
  type CommandErrorCode,
  type FsmErrorCode,
} from './errors.js';
export { fsmLimits } from './limits.js';
export { maxUint64, toUint64, emptyDefinition as emptyCheckDefinition, type Uint64 } from '../snapshot/index.js';
