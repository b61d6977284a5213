export { startAgent, type Agent } from './agent.js';
export { Server, type ServerOptions, type Hello } from './server.js';
export { ServerError, type ServerApi, type ReadOptions, type ReadMeta, type Consistency, type ServerErrorCode } from './api.js';
