import type { Configuration, InitialState } from './types.js';

/**
 * The state a brand-new cluster starts from, as hashicorp/raft's BootstrapCluster writes it: term 1
 * and a single configuration entry at index 1 naming the initial servers. Every initial server must
 * start from the same configuration; a server joining an existing cluster starts from `joinState()`.
 */
export function bootstrapState(configuration: Configuration): InitialState {
  return {
    hardState: { term: 1, vote: '' },
    entries: [{ index: 1, term: 1, kind: 'config', data: new Uint8Array(0), config: configuration }],
    applied: 0,
  };
}

/** A server with no state that waits to be added by the leader (it never campaigns on its own). */
export function joinState(): InitialState {
  return { hardState: { term: 0, vote: '' }, entries: [], applied: 0 };
}
