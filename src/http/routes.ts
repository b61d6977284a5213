// The endpoint table: exact Consul paths and, per path, the methods Consul registers for it
// (agent/http_register.go). Paths are matched after percent-decoding, as Go's mux matches
// req.URL.Path; "/v1/kv/" and the session, catalog and health paths that take an argument are
// prefixes, every other path matches exactly.

import {
  handleCatalogDeregister,
  handleCatalogNode,
  handleCatalogNodes,
  handleCatalogNodeServices,
  handleCatalogRegister,
  handleCatalogService,
  handleCatalogServices,
} from './catalog.js';
import {
  handleAgentMembers,
  handleAgentSelf,
  handleCatalogDatacenters,
  handleRaftConfiguration,
  handleRaftPeer,
  handleStatusLeader,
  handleStatusPeers,
  handleTransferLeader,
} from './cluster.js';
import { handleHealthChecks, handleHealthNode, handleHealthService, handleHealthState } from './health.js';
import {
  handleAgentCheckDeregister,
  handleAgentCheckRegister,
  handleAgentChecks,
  handleAgentCheckTtl,
  handleAgentCheckUpdate,
  handleAgentNodeMaintenance,
  handleAgentService,
  handleAgentServiceDeregister,
  handleAgentServiceMaintenance,
  handleAgentServiceRegister,
  handleAgentServices,
} from './agent.js';
import { handleKv } from './kv.js';
import { handleSnapshot } from './snapshot.js';
import {
  handleSessionCreate,
  handleSessionDestroy,
  handleSessionInfo,
  handleSessionList,
  handleSessionNode,
  handleSessionRenew,
} from './session.js';
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
  ['/v1/agent/members', { methods: ['GET'], handle: handleAgentMembers }],
  ['/v1/agent/services', { methods: ['GET'], handle: handleAgentServices }],
  ['/v1/agent/checks', { methods: ['GET'], handle: handleAgentChecks }],
  ['/v1/agent/service/register', { methods: ['PUT'], handle: handleAgentServiceRegister }],
  ['/v1/agent/check/register', { methods: ['PUT'], handle: handleAgentCheckRegister }],
  ['/v1/agent/maintenance', { methods: ['PUT'], handle: handleAgentNodeMaintenance }],
  ['/v1/catalog/datacenters', { methods: ['GET'], handle: handleCatalogDatacenters }],
  ['/v1/catalog/register', { methods: ['PUT'], handle: handleCatalogRegister }],
  ['/v1/catalog/deregister', { methods: ['PUT'], handle: handleCatalogDeregister }],
  ['/v1/catalog/nodes', { methods: ['GET'], handle: handleCatalogNodes }],
  ['/v1/catalog/services', { methods: ['GET'], handle: handleCatalogServices }],
  ['/v1/snapshot', { methods: ['GET', 'PUT'], handle: handleSnapshot }],
  ['/v1/session/create', { methods: ['PUT'], handle: handleSessionCreate }],
  ['/v1/session/list', { methods: ['GET'], handle: handleSessionList }],
]);

/** Consul registers these as subtrees: the rest of the path is the argument. */
const prefixed: ReadonlyArray<readonly [string, Route]> = [
  ['/v1/session/destroy/', { methods: ['PUT'], handle: handleSessionDestroy }],
  ['/v1/session/renew/', { methods: ['PUT'], handle: handleSessionRenew }],
  ['/v1/session/info/', { methods: ['GET'], handle: handleSessionInfo }],
  ['/v1/session/node/', { methods: ['GET'], handle: handleSessionNode }],
  ['/v1/catalog/service/', { methods: ['GET'], handle: handleCatalogService }],
  ['/v1/catalog/node/', { methods: ['GET'], handle: handleCatalogNode }],
  ['/v1/catalog/node-services/', { methods: ['GET'], handle: handleCatalogNodeServices }],
  ['/v1/health/node/', { methods: ['GET'], handle: handleHealthNode }],
  ['/v1/health/checks/', { methods: ['GET'], handle: handleHealthChecks }],
  ['/v1/health/service/', { methods: ['GET'], handle: handleHealthService }],
  ['/v1/health/state/', { methods: ['GET'], handle: handleHealthState }],
  // Before '/v1/agent/service/', which would take them as a service ID.
  ['/v1/agent/service/deregister/', { methods: ['PUT'], handle: handleAgentServiceDeregister }],
  ['/v1/agent/service/maintenance/', { methods: ['PUT'], handle: handleAgentServiceMaintenance }],
  ['/v1/agent/service/', { methods: ['GET'], handle: handleAgentService }],
  ['/v1/agent/check/deregister/', { methods: ['PUT'], handle: handleAgentCheckDeregister }],
  ['/v1/agent/check/pass/', { methods: ['PUT'], handle: handleAgentCheckTtl }],
  ['/v1/agent/check/warn/', { methods: ['PUT'], handle: handleAgentCheckTtl }],
  ['/v1/agent/check/fail/', { methods: ['PUT'], handle: handleAgentCheckTtl }],
  ['/v1/agent/check/update/', { methods: ['PUT'], handle: handleAgentCheckUpdate }],
];

const kv: Route = { methods: ['GET', 'PUT', 'DELETE'], handle: handleKv };

export function findRoute(path: string): Route | undefined {
  if (path.startsWith('/v1/kv/') || path === '/v1/kv') return kv;
  const route = exact.get(path);
  if (route !== undefined) return route;
  for (const [prefix, r] of prefixed) if (path.startsWith(prefix)) return r;
  return undefined;
}

/** Consul's Index handler for everything unregistered (note the trailing newline: fmt.Fprintln). */
export function unknownPathBody(path: string): string {
  return path.includes('/v1/')
    ? 'Invalid URL path: not a recognized HTTP API endpoint\n'
    : "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'\n";
}
