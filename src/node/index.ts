export { RaftNode, type RaftNodeOptions, type NodeStatus } from './raft-node.js';
export { NodeError, type NodeErrorCode } from './errors.js';
