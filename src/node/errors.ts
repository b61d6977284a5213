import type { NodeId } from '../raft/index.js';

/**
 * Why a node operation failed. `not-leader` and `retry` carry the leader to try (when known); the
 * server layer forwards or retries on those and maps the rest to Consul's answers.
 */
export type NodeErrorCode =
  | 'not-leader'
  | 'retry'
  | 'no-leader'
  | 'unknown-outcome'
  | 'aborted-by-restore'
  | 'bad-request'
  | 'unavailable'
  | 'internal';

export class NodeError extends Error {
  override readonly name = 'NodeError';
  readonly code: NodeErrorCode;
  readonly leader: NodeId;
  constructor(code: NodeErrorCode, message: string, leader: NodeId = '') {
    super(message);
    this.code = code;
    this.leader = leader;
  }
}
