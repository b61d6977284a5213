// Consul's snapshot formats: the state.bin record stream (reader, record bodies, header) and the
// snapshot archive (gzip of tar [meta.json, state.bin, SHA256SUMS]). Other folders import from here only.

export {
  readStateBin,
  readStateBinBatches,
  encodeStateBinHeader,
  consulMessageTypeNames,
  messageTypeName,
  type StateBinItem,
  type ReadStateBinOptions,
  type RecordPolicy,
} from './statebin.js';
export {
  RecordType,
  encodeKvsRecord,
  encodeTombstoneRecord,
  encodeIndexRecord,
  encodeSessionRecord,
  sessionAsGo,
  withModifyIndex,
  parseKvsRecord,
  parseTombstoneRecord,
  parseIndexRecord,
  parseSessionRecord,
  isSessionId,
  dirEntryBodyHead,
  indexBodyHead,
  sessionBodyHead,
  type IndexRecord,
  type Parsed,
  type ParseFailure,
} from './records.js';
export {
  encodeNodeBody,
  encodeServiceBody,
  encodeCheckBody,
  serviceAsGo,
  checkAsGo,
  registerRecordWith,
  parseRegisterRecord,
  parseNodeBody,
  parseServiceBody,
  parseCheckBody,
  catalogNameProblem,
  catalogNameMaxBytes,
  emptyDefinition,
  nodeBodyHead,
  serviceBodyHead,
  checkBodyHead,
  type RegisterRecord,
} from './catalog-records.js';
export { measureMsgpack, type FrameResult } from './msgpack-frame.js';
export { isUint, toUint, isUint64, toUint64, wireUint, maxUint64, describeValue, isPlainMap, type Uint64 } from './values.js';
export type {
  DirEntry,
  Tombstone,
  Session,
  SessionBehavior,
  ServiceCheck,
  CatalogNode,
  NodeService,
  HealthCheck,
  CheckStatus,
  CheckDefinition,
  ServiceWeights,
  ServiceAddress,
} from './types.js';
export { StateBinError, type StateBinErrorCode } from './errors.js';
export { snapshotLimits } from './limits.js';
export { ArchiveError, type ArchiveErrorCode } from './errors.js';
export {
  archiveMeta,
  archiveProducer,
  stateBinFormat,
  encodeMetaJson,
  parseMetaJson,
  type ArchiveMeta,
  type ArchiveMetaArgs,
  type ArchiveServer,
  type ArchiveSuffrage,
} from './meta.js';
export {
  writeArchive,
  writeArchiveAround,
  stateBinMember,
  readArchive,
  defaultGzipLevel,
  defaultArchiveLimits,
  metaJsonName,
  stateBinName,
  sha256SumsName,
  type WriteArchiveOptions,
  type StateBinDigest,
  type ReadArchiveOptions,
  type ArchiveContents,
  type ArchiveLimits,
  type RecordTypeStats,
} from './archive.js';
export { rewriteForRestore } from './rewrite.js';
