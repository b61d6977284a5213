export { Server, type ServerOptions, type Hello } from './server.js';
export { serverLimits } from './limits.js';
export { ServerError, type ServerApi, type ReadOptions, type ReadMeta, type Consistency, type ServerErrorCode } from './api.js';
