// One `conclave agent` process: a server node with its gRPC endpoint (Raft peer traffic and
// server-to-server calls on one port), the Raft node, the Consul HTTP API, cluster discovery
// (bootstrap_expect, retry_join) and the leader's promotion of caught-up non-voters. This is the only
// place that wires the layers together; the limits it sets come from the layers' tables and its own.

import * as grpc from '@grpc/grpc-js';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { childWith, conclaveVersion, unbound } from '../base/index.js';
import type { AgentConfig } from '../config/index.js';
import { startHttpServer } from '../http/index.js';
import { RaftNode } from '../node/index.js';
import type { Configuration } from '../raft/index.js';
import { Server, type Hello } from '../server/index.js';
import { writeFileAtomic } from '../storage/index.js';
import { PeerTransport, ServerRpcClient, ServerRpcServer, transportLimits } from '../transport/index.js';
import { agentLimits } from './limits.js';
import { LocalAgent } from './local-agent.js';

export interface Agent {
  readonly httpAddress: string;
  readonly serverAddress: string;
  /** Resolves when the agent has stopped by close(); rejects when its Raft node stopped on an error. */
  readonly closed: Promise<void>;
  close(): Promise<void>;
}

export async function startAgent(config: AgentConfig, logger: Logger): Promise<Agent> {
  await mkdir(config.dataDir, { recursive: true });
  await claimDataDir(config);
  const id = config.nodeName;
  const address = config.serverAdvertiseAddress;

  const grpcServer = new grpc.Server({ 'grpc.max_receive_message_length': transportLimits.grpcMaxMessageBytes });
  const transport = new PeerTransport({ id, logger: childWith(logger, { component: 'transport' }) });
  transport.addTo(grpcServer);
  const rpcServer = new ServerRpcServer({ logger });
  rpcServer.addTo(grpcServer);
  const bindTo = config.serverBindHost.includes(':') ? `[${config.serverBindHost}]` : config.serverBindHost;
  await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(`${bindTo}:${config.serverPort}`, grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(new Error(`cannot listen for server RPC on ${bindTo}:${config.serverPort}: ${err.message}`)) : resolve(port),
    ),
  );
  const rpcClient = new ServerRpcClient({ id, logger });

  const node = await RaftNode.open({
    id,
    address,
    dataDir: config.dataDir,
    logger: childWith(logger, { component: 'raft' }),
    transport,
    tickMs: config.raft.tickMs,
    electionTimeoutTicks: config.raft.electionTimeoutTicks,
    heartbeatIntervalTicks: config.raft.heartbeatIntervalTicks,
    maxMessageBytes: agentLimits.raftMaxMessageBytes,
    maxInflightMessages: agentLimits.raftMaxInflightMessages,
    snapshotThresholdEntries: config.raft.snapshotThresholdEntries,
    trailingEntries: config.raft.trailingEntries,
    snapshotsRetained: config.raft.snapshotsRetained,
  });
  const server = new Server({
    node,
    rpc: rpcClient,
    nodeName: config.nodeName,
    datacenter: config.datacenter,
    version: conclaveVersion(),
    address,
    logger,
    leaderWaitMs: Math.max(
      agentLimits.leaderWaitMinMs,
      agentLimits.leaderWaitElectionTimeouts * config.raft.tickMs * config.raft.electionTimeoutTicks,
    ),
    acl: { enabled: config.acl.enabled, managementToken: config.acl.initialManagementToken },
    wanJoin: config.retryJoinWan,
  });
  rpcServer.setHandlers(server.rpcHandlers());
  const localAgent = await LocalAgent.start({
    dataDir: config.dataDir,
    nodeName: config.nodeName,
    datacenter: config.datacenter,
    address: () => {
      const colon = address.lastIndexOf(':');
      return colon > 0 ? address.slice(0, colon).replace(/^\[|\]$/g, '') : address;
    },
    apply: (command) => server.apply(command),
    read: async (query) => (await server.catalogRead(query, { consistency: 'default' })).json,
    syncIntervalMs: agentLimits.antiEntropyIntervalMs,
    logger: childWith(logger, { component: 'agent' }),
  });
  const http = await startHttpServer({
    host: config.httpHost,
    port: config.httpPort,
    api: server,
    agent: localAgent,
    logger: childWith(logger, { component: 'http' }),
    limits: { sessionTtlMinMs: config.sessionTtlMinMs },
  });
  const httpAddress = `${http.address.host.includes(':') ? `[${http.address.host}]` : http.address.host}:${http.address.port}`;
  logger.info(unbound(logger, { event: 'agent-started', node: id, http: httpAddress, server: address }), `Conclave agent running: HTTP on ${httpAddress}, server RPC on ${address}`);

  let stopping = false;
  const timers: NodeJS.Timeout[] = [];
  const discover = async (): Promise<void> => {
    if (stopping || !node.isFresh()) return;
    await joinOrBootstrap(config, server, node, logger).catch((e: unknown) =>
      logger.debug({ event: 'discovery-retry', err: (e as Error).message }, 'looking for peers'),
    );
  };
  timers.push(setInterval(() => void discover(), agentLimits.discoveryIntervalMs));
  void discover();
  timers.push(setInterval(() => void promoteCaughtUp(node, logger), agentLimits.promotionIntervalMs));

  let resolveClosed!: () => void;
  let rejectClosed!: (e: Error) => void;
  const closed = new Promise<void>((resolve, reject) => {
    resolveClosed = resolve;
    rejectClosed = reject;
  });
  const close = async (): Promise<void> => {
    if (stopping) return closed;
    stopping = true;
    for (const t of timers) clearInterval(t);
    logger.info({ event: 'agent-stopping' }, 'stopping the agent');
    // A part that fails to close must not keep the others open: log it and close the rest.
    const closePart = (part: string, closing: Promise<void>): Promise<void> =>
      closing.catch((err: unknown) => logger.warn({ event: 'agent-close-failed', part, err }, `closing the ${part} failed; closing the rest`));
    await closePart('HTTP server', http.close());
    await closePart('local agent', localAgent.close());
    server.close();
    await closePart('Raft node', node.close());
    await closePart('server RPC', rpcServer.close());
    await closePart('Raft transport', transport.close());
    rpcClient.close();
    grpcServer.forceShutdown();
    logger.info({ event: 'agent-stopped' }, 'agent stopped');
    const fatal = node.fatal();
    if (fatal === undefined) resolveClosed();
    else rejectClosed(new Error(`the Raft node stopped: ${fatal.message}`, { cause: fatal }));
  };
  void node.closedSignal.then(() => {
    if (!stopping) void close();
  });
  return { httpAddress, serverAddress: address, closed, close };
}

/**
 * A fresh server looks for its peers. If any of them already belongs to a cluster, it asks to be
 * added (as a non-voter, promoted once caught up). Otherwise, once bootstrap_expect servers
 * (itself included) are known and all are fresh, it bootstraps them as the founding voters; every
 * founder computes the same sorted set, so they agree.
 */
async function joinOrBootstrap(config: AgentConfig, server: Server, node: RaftNode, logger: Logger): Promise<void> {
  const answers = await Promise.allSettled(config.retryJoin.map((a) => server.hello(a)));
  const peers: Hello[] = [];
  for (const a of answers) {
    if (a.status !== 'fulfilled') continue;
    if (a.value.datacenter !== config.datacenter) {
      logger.warn({ event: 'join-skipped', peer: a.value.id, datacenter: a.value.datacenter }, `${a.value.id} is in datacenter ${a.value.datacenter}, not ${config.datacenter}`);
      continue;
    }
    if (a.value.id === config.nodeName) throw new Error(`another server at ${a.value.address} also calls itself ${a.value.id}; node names must be unique`);
    // A joining server must be able to answer the leader before the configuration naming it arrives.
    node.addPeerAddress(a.value.id, a.value.address);
    peers.push(a.value);
  }
  const member = peers.find((p) => !p.fresh);
  if (member !== undefined) {
    await server.join(member.address, config.nodeName, config.serverAdvertiseAddress);
    logger.info({ event: 'join-requested', via: member.id }, `asked ${member.id} to add this server to its cluster`);
    return;
  }
  if (config.bootstrapExpect > 0 && peers.length + 1 >= config.bootstrapExpect && node.isFresh()) {
    const founders = [{ id: config.nodeName, address: config.serverAdvertiseAddress }, ...peers.map((p) => ({ id: p.id, address: p.address }))]
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .slice(0, Math.max(config.bootstrapExpect, peers.length + 1));
    const configuration: Configuration = { servers: founders.map((f) => ({ id: f.id, suffrage: 'voter' as const, address: f.address })) };
    await node.bootstrap(configuration);
  }
}

/** The leader promotes non-voters whose log has caught up with the commit index (Consul's autopilot). */
async function promoteCaughtUp(node: RaftNode, logger: Logger): Promise<void> {
  const s = node.status();
  if (s.role !== 'leader') return;
  const match = node.replicationMatch();
  for (const srv of s.configuration.servers) {
    if (srv.suffrage !== 'nonvoter') continue;
    if ((match.get(srv.id) ?? 0) < s.commitIndex) continue;
    try {
      await node.changeMembership({ kind: 'addVoter', id: srv.id });
      logger.info({ event: 'server-promoted', id: srv.id }, `${srv.id} caught up and is now a voter`);
    } catch (e) {
      logger.debug({ event: 'promotion-deferred', id: srv.id, err: (e as Error).message }, 'promotion deferred');
    }
    return; // one membership change at a time
  }
}

/** A data directory belongs to one node name for life: reusing it under another name is refused. */
async function claimDataDir(config: AgentConfig): Promise<void> {
  const file = join(config.dataDir, 'node-name');
  const existing = await readFile(file, 'utf8').then(
    (s) => s.trim(),
    () => undefined,
  );
  if (existing === undefined) {
    await writeFileAtomic(file, `${config.nodeName}\n`);
    return;
  }
  if (existing !== config.nodeName) {
    throw new Error(
      `data_dir ${config.dataDir} belongs to node "${existing}", not "${config.nodeName}": ` +
        'use that node_name, or another data_dir for a new server',
    );
  }
}
