// Status, operator, agent and catalog endpoints: agent/status_endpoint.go, agent/operator_endpoint.go,
// agent/agent_endpoint.go (AgentSelf) and agent/catalog_endpoint.go (CatalogDatacenters).

import { badRequest } from './errors.js';
import { checkDatacenter, parseReadOptions } from './params.js';
import { emptyReply, jsonReply, type Reply, type RequestContext } from './reply.js';

/** GET /v1/status/leader: the leader's server RPC address as a JSON string, "" when there is none. */
export async function handleStatusLeader(ctx: RequestContext): Promise<Reply> {
  checkDatacenter(ctx);
  return jsonReply(ctx, await ctx.api.leaderAddress());
}

/** GET /v1/status/peers: the voters' server RPC addresses. */
export async function handleStatusPeers(ctx: RequestContext): Promise<Reply> {
  checkDatacenter(ctx);
  return jsonReply(ctx, [...(await ctx.api.peers())]);
}

/**
 * GET /v1/operator/raft/configuration: {Servers: [{ID, Node, Address, Leader, ProtocolVersion, Voter}],
 * Index}. Takes ?stale (the way to look at a cluster without a leader) and ?consistent; not blocking,
 * and like Consul it sets no X-Consul-* headers.
 */
export async function handleRaftConfiguration(ctx: RequestContext): Promise<Reply> {
  const { consistency, dc } = parseReadOptions(ctx);
  return jsonReply(ctx, await ctx.api.raftConfiguration({ consistency, signal: ctx.signal, dc: dc ?? '' }));
}

/** POST /v1/operator/raft/transfer-leader[?id=<server id>]: {"Success": true} once transferred. */
export async function handleTransferLeader(ctx: RequestContext): Promise<Reply> {
  const id = ctx.query.get('id');
  await ctx.api.transferLeadership(id === '' ? undefined : id);
  return jsonReply(ctx, { Success: true });
}

/** DELETE /v1/operator/raft/peer?id=<id> or ?address=<ip:port>: 200 with an empty body. */
export async function handleRaftPeer(ctx: RequestContext): Promise<Reply> {
  checkDatacenter(ctx);
  const hasId = ctx.query.has('id');
  const hasAddress = ctx.query.has('address');
  if (!hasId && !hasAddress) {
    throw badRequest("Must specify either ?id with the server's ID or ?address with IP:port of peer to remove");
  }
  if (hasId && hasAddress) throw badRequest('Must specify only one of ?id or ?address');
  await ctx.api.removePeer(hasId ? { id: ctx.query.get('id') } : { address: ctx.query.get('address') });
  return emptyReply(200);
}

/**
 * GET /v1/agent/self: Consul's Config block (field order of AgentSelf's anonymous struct; NodeID,
 * Revision and BuildDate are left out until the server knows them) and the basics of Member (serf's
 * member: Name, Addr as the address this request reached, Tags, Status 1 = alive).
 */
export async function handleAgentSelf(ctx: RequestContext): Promise<Reply> {
  const { api } = ctx;
  return jsonReply(ctx, {
    Config: {
      Datacenter: api.datacenter,
      PrimaryDatacenter: api.datacenter,
      NodeName: api.nodeName,
      Server: true,
      Version: api.version,
    },
    Member: {
      Name: api.nodeName,
      Addr: ctx.localAddress,
      Tags: { role: 'consul', dc: api.datacenter },
      Status: 1,
    },
  });
}

/** GET /v1/agent/members: Consul's api.AgentMember list, with serf's protocol fields. */
export async function handleAgentMembers(ctx: RequestContext): Promise<Reply> {
  const members = await ctx.api.members();
  return jsonReply(ctx, members.map((m) => ({
    ...m, ProtocolMin: 1, ProtocolMax: 5, ProtocolCur: 2, DelegateMin: 2, DelegateMax: 5, DelegateCur: 4,
  })));
}

/** GET /v1/catalog/datacenters: the datacenters this cluster knows, i.e. its own. */
export async function handleCatalogDatacenters(ctx: RequestContext): Promise<Reply> {
  return jsonReply(ctx, [...ctx.api.knownDatacenters()]);
}
