// The agent configuration: Consul-style JSON files and Go-style flags in, a checked AgentConfig out.
// Other folders import from here only.

export { loadAgentConfig, redactConfig, hiddenSecret, type LoadOptions } from './load.js';
export type { AclPolicy, AclSettings, AgentConfig, LoadResult, LogLevel, RaftSettings } from './types.js';
export { agentFlags, devFlag, configKeys, keySpecs, defaultHttpPort, defaultServerPort, type ConfigKey, type KeySpec } from './schema.js';
export { parseFlags, lastFlag, allFlags, isHelpFlag, formatFlagHelp, wrap, type FlagSpec, type FlagKind, type FlagUse, type ParsedFlags, type FlagParseResult } from './flags.js';
export { joinHostPort } from './network.js';
