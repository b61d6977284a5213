// Durable storage under a server's Raft core: the log store (entries, term and vote, log base) in
// LevelDB, the snapshot store on the filesystem, and atomic file helpers for the rest of the project.

export { LogStore } from './log-store.js';
export type { CompactOptions, LogState, PersistRound, ReadOptions } from './log-store.js';
export { SnapshotStore, snapshotLimits } from './snapshot-store.js';
export type { OpenedSnapshot, SnapshotInfo, SnapshotSink, SnapshotStoreOptions } from './snapshot-store.js';
export { fsyncDir, writeFileAtomic } from './files.js';
export type { WriteFileAtomicOptions } from './files.js';
export { StorageError } from './errors.js';
export type { StorageErrorCode, StorageErrorDetails } from './errors.js';
