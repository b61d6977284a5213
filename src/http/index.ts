// Consul's HTTP API for Conclave: KV, txn, status, operator Raft, agent self and catalog datacenters,
// served over node:http against a ServerApi. Other folders import from here only.

export { startHttpServer, type HttpServer, type HttpServerOptions } from './server.js';
export type { HttpServerLimits } from './reply.js';
export { httpLimits } from './limits.js';
export { parseGoDuration, type DurationParse } from '../base/index.js';
export { AgentError, type AgentCheckSpec, type LocalAgentApi } from './agent-api.js';
