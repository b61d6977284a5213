// The composition root: one `conclave agent` process wired together from every layer (config,
// storage, Raft node, transport, server, HTTP). Nothing below src/cli imports this folder.

export { startAgent, type Agent } from './agent.js';
export { agentLimits } from './limits.js';
