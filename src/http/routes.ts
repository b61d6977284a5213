// The endpoint table: exact Consul paths and, per path, the methods Consul registers for it
// (agent/http_register.go). Paths are matched after percent-decoding, as Go's mux matches
// req.URL.Path; "/v1/kv/" is a prefix, every other path matches exactly.

import {
  handleAgentSelf,
  handleCatalogDatacenters,
  handleRaftConfiguration,
  handleRaftPeer,
  handleStatusLeader,
  handleStatusPeers,
  handleTransferLeader,
} from './cluster.js';
import { handleKv } from './kv.js';
import { handleSnapshot } from './snapshot.js';
import type { Reply, RequestContext } from './reply.js';
import { handleTxn } from './txn.js';

export interface Route {
  /** Methods other than OPTIONS; anything else gets Consul's 405. */
  readonly methods: readonly string[];
  readonly handle: (ctx: RequestContext) => Promise<Reply>;
}

const exact: ReadonlyMap<string, Route> = new Map<string, Route>([
  ['/v1/txn', { methods: ['PUT'], handle: handleTxn }],
  ['/v1/status/leader', { methods: ['GET'], handle: handleStatusLeader }],
  ['/v1/status/peers', { methods: ['GET'], handle: handleStatusPeers }],
  ['/v1/operator/raft/configuration', { methods: ['GET'], handle: handleRaftConfiguration }],
  ['/v1/operator/raft/transfer-leader', { methods: ['POST'], handle: handleTransferLeader }],
  ['/v1/operator/raft/peer', { methods: ['DELETE'], handle: handleRaftPeer }],
  ['/v1/agent/self', { methods: ['GET'], handle: handleAgentSelf }],
  ['/v1/catalog/datacenters', { methods: ['GET'], handle: handleCatalogDatacenters }],
  ['/v1/snapshot', { methods: ['GET', 'PUT'], handle: handleSnapshot }],
]);

const kv: Route = { methods: ['GET', 'PUT', 'DELETE'], handle: handleKv };

export function findRoute(path: string): Route | undefined {
  if (path.startsWith('/v1/kv/') || path === '/v1/kv') return kv;
  return exact.get(path);
}

/** Consul's Index handler for everything unregistered (note the trailing newline: fmt.Fprintln). */
export function unknownPathBody(path: string): string {
  return path.includes('/v1/')
    ? 'Invalid URL path: not a recognized HTTP API endpoint\n'
    : "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'\n";
}
