export { RaftNode, type RaftNodeOptions, type NodeStatus } from './raft-node.js';
export { NodeError, type NodeErrorCode } from './errors.js';
export { ReadyLoop, loopBugs } from './ready-loop.js';
export type { LoopBug, LogPort, ReadyLoopOptions, RoundWrite, StateMachinePort, TransportPort } from './ready-loop.js';
