// One server node wired together: the Raft node, the FSM it applies to, and the server-to-server
// RPCs. It implements ServerApi for the HTTP layer: writes go through the leader (a follower forwards
// them), reads follow Consul's consistency modes, blocking queries wait here (on the leader for
// forwarded reads), and the operator calls (join, remove, transfer) run on the leader.

import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { isPlanted, sleep } from '../base/index.js';
import {
  CommandError,
  decodeCommand,
  encodeCommand,
  goQuote,
  type ApplyResult,
  type CatalogQuery,
  type Command,
  type DirEntry,
  type KvReadOp,
  type Session,
  type WatchTarget,
} from '../fsm/index.js';
import { NodeError, type NodeStatus, type RaftNode } from '../node/index.js';
import type { NodeId } from '../raft/index.js';
import {
  TransportError,
  type CallOptions,
  type RpcContext,
  type RpcError,
  type RpcResult,
  type ServerRpcClient,
  type ServerRpcHandlers,
  type SnapshotSaveAnswer,
} from '../transport/index.js';
import { Acl, type AclSettings } from './acl.js';
import { Datacenters } from './datacenters.js';
import { LeaderDuties } from './leader-duties.js';
import { ServerCatalog } from './server-catalog.js';
import { SessionTimers } from './session-timers.js';
import { restoreLocal, saveLocal } from './snapshot.js';
import {
  ServerError,
  type AgentMember,
  type Consistency,
  type RaftConfigurationReply,
  type ReadMeta,
  type ReadOptions,
  type ReadTxnReply,
  type ServerApi,
  type ApplyOptions,
  type SnapshotOptions,
  type SnapshotSaveReply,
} from './api.js';
import { serverLimits } from './limits.js';
import { ReadRounds } from './read-rounds.js';
import {
  decodeApplyResult,
  decodeDone,
  decodeForwardedRead,
  decodeHello,
  decodeOperatorCall,
  decodeReadCall,
  decodeReadIndexReply,
  decodeReadReply,
  decodeMembers,
  decodeSaveHeader,
  decodeSessions,
  decodeSnapshotCall,
  encodeApplyResult,
  encodeMembers,
  encodeSaveHeader,
  encodeSessions,
  encodeSnapshotCall,
  encodeDone,
  encodeForwardedRead,
  encodeHello,
  encodeOperatorCall,
  encodeReadIndexCall,
  encodeReadIndexReply,
  encodeReadReply,
  type Decoded,
  type Hello,
  type OperatorCall,
  type ProtocolError,
  type ReadAnswers,
  type ReadOp,
  type ReadQuery,
  type ReadReply,
  type SnapshotCall,
} from './protocol.js';

export type { Hello, AclSettings };

export interface ServerOptions {
  readonly node: RaftNode;
  readonly rpc: ServerRpcClient;
  readonly nodeName: string;
  readonly datacenter: string;
  readonly version: string;
  /** This server's RPC address. */
  readonly address: string;
  readonly logger: Logger;
  /** How long a request waits for a leader to appear before Consul's "No cluster leader". */
  readonly leaderWaitMs: number;
  /** ACLs as far as Conclave has them: with `enabled`, snapshots need the management token. */
  readonly acl?: AclSettings;
  /** Server RPC addresses of servers in other datacenters (retry_join_wan), for ?dc. */
  readonly wanJoin?: readonly string[];
}

/** One read served from this server's own state: the index for X-Consul-Index and the answer. */
type LocalRead<Op extends ReadOp> = (query: Extract<ReadQuery, { op: Op }>) => Promise<{ index: number; answer: ReadAnswers[Op] }>;

const protocolVersion = '3';

/** Who leads, as a replaced leader's messages name it; undefined while no leader is known. */
function leaderNow(s: NodeStatus): string | undefined {
  if (s.role === 'leader') return `${s.id}, this server, leads term ${s.term}`;
  return s.leaderAddress !== '' ? `${s.leader} at ${s.leaderAddress} leads term ${s.term}` : undefined;
}

export class Server implements ServerApi {
  readonly nodeName: string;
  readonly datacenter: string;
  readonly version: string;
  /** What only the leader keeps; bounced after a restore. */
  readonly leaderDuties: LeaderDuties;
  private readonly node: RaftNode;
  private readonly o: ServerOptions;
  private readonly acl: Acl;
  private readonly datacenters: Datacenters;
  private readonly offChange: () => void;
  /** The other server this one last saw leading, to which its writes were forwarded ('' when none). */
  private forwardedTo = '';
  /** Per replaced leader: when its unanswered forwarded writes are given up (watchReplacedLeader). */
  private readonly replacedLeaderTimers = new Map<string, NodeJS.Timeout>();
  /** A follower's default and ?consistent reads, batched into leader round trips (read-rounds.ts). */
  private readonly readRounds = new ReadRounds(() => this.fetchReadIndex());
  /** Session TTL timers, a leader duty. */
  readonly sessionTimers: SessionTimers;
  /** Keeps every server in the catalog with its serfHealth check (a leader duty). */
  readonly serverCatalog: ServerCatalog;

  constructor(o: ServerOptions) {
    this.o = o;
    this.node = o.node;
    this.nodeName = o.nodeName;
    this.datacenter = o.datacenter;
    this.version = o.version;
    this.acl = new Acl(o.acl);
    this.leaderDuties = new LeaderDuties(o.logger);
    this.sessionTimers = new SessionTimers(
      () => this.node.fsm,
      (command) => this.node.propose(encodeCommand(command)),
      () => this.node.leaderCaughtUp(),
      o.logger,
    );
    this.serverCatalog = new ServerCatalog({
      datacenter: o.datacenter,
      servers: () => this.localMembers().map((m) => ({ id: m.Name, address: this.serverAddress(m.Name), alive: m.Status === 1 })),
      read: (q) => this.node.fsm.catalogQuery(q),
      propose: (command) => this.node.propose(encodeCommand(command)),
      caughtUp: () => this.node.leaderCaughtUp(),
      intervalMs: serverLimits.catalogReconcileMs,
      graceMs: () => Math.max(serverLimits.memberAliveMinMs, 3 * this.node.electionTimeoutMs()),
      logger: o.logger,
    });
    this.leaderDuties.register(this.serverCatalog);
    this.leaderDuties.register(this.sessionTimers);
    this.offChange = this.node.onChange((s) => {
      this.leaderDuties.noteLeading(s.role === 'leader');
      this.watchReplacedLeader(s);
    });
    this.leaderDuties.noteLeading(this.node.status().role === 'leader');
    this.watchReplacedLeader(this.node.status());
    this.datacenters = new Datacenters(o.datacenter, o.wanJoin ?? [], (address) => this.hello(address), o.logger);
    this.datacenters.start();
  }

  /** Stops background work (WAN discovery, leader duties); the node is closed by its owner. */
  close(): void {
    this.offChange();
    for (const timer of this.replacedLeaderTimers.values()) clearTimeout(timer);
    this.replacedLeaderTimers.clear();
    this.datacenters.close();
    this.leaderDuties.noteLeading(false);
  }

  /** Datacenters this server knows a route to, its own included. */
  knownDatacenters(): string[] {
    return this.datacenters.names();
  }

  // ------------------------------------------------------------------------------------------
  // Snapshots: GET and PUT /v1/snapshot (Consul's agent/consul/snapshot_endpoint.go dispatch:
  // datacenter first, then the token, then the leader unless stale).
  // ------------------------------------------------------------------------------------------

  snapshotSave(o: SnapshotOptions): Promise<SnapshotSaveReply> {
    return this.snapshotSaveHop(o, 0);
  }

  snapshotRestore(archive: Readable, o: SnapshotOptions): Promise<void> {
    return this.snapshotRestoreHop(archive, o, 0);
  }

  private async snapshotSaveHop(o: SnapshotOptions, hops: number): Promise<SnapshotSaveReply> {
    const call = this.snapshotCall(o, hops);
    if (call.dc !== this.datacenter) return this.inDatacenter(call.dc, (address) => this.remoteSave(address, call, o.signal));
    this.acl.requireManagement(o.token);
    const here = async (): Promise<SnapshotSaveReply> => {
      const r = await saveLocal(this.node, this.version, this.o.logger);
      return { meta: this.saveMeta(r.index), body: r.body };
    };
    if (o.stale) return here();
    return this.onLeader(
      async () => {
        await this.node.readBarrier(); // Consul's ConsistentRead: a quorum confirms this server leads
        return here();
      },
      // Idempotent: a leader replaced while the answer's headers are awaited is asked no more, and
      // onLeader asks the new one.
      (address) => this.whileItLeads(address, o.signal, (signal) => this.remoteSave(address, call, signal), (by) =>
        new ServerError('no-leader', `the leader at ${address} was replaced (${by}) before it answered the save`)),
    );
  }

  private async snapshotRestoreHop(archive: Readable, o: SnapshotOptions, hops: number): Promise<void> {
    if (o.stale) throw new ServerError('bad-request', 'stale not allowed for restore');
    const call = this.snapshotCall(o, hops);
    if (call.dc !== this.datacenter) {
      return this.inDatacenter(call.dc, (address) => this.remoteRestore(address, archive, call, o.signal));
    }
    this.acl.requireManagement(o.token);
    // The archive can be read once: after a refusal that comes once it was (partly) read, no retry.
    let read = false;
    const once = (): void => {
      if (read) {
        throw new ServerError('unavailable', 'the leader changed while the archive was being sent to it; nothing was restored. Retry the restore');
      }
      read = true;
    };
    await this.onLeader(
      async () => {
        once();
        await this.restoreHere(archive);
      },
      async (address) => {
        once();
        await this.whileItLeads(address, o.signal, (signal) => this.remoteRestore(address, archive, call, signal), (by) =>
          new ServerError('unknown-outcome',
            `the leader at ${address} was replaced (${by}) while the restore was with it, before it answered: the restore may or may not take effect; check the state, and restore again if needed`));
      },
      false,
      'the restore',
    );
  }

  /**
   * Forwarded writes follow the leadership as saves and restores do (whileItLeads), but per leader
   * rather than per call, so the write path pays nothing: once this server has seen another leader (or
   * become the leader) for serverLimits.forwardReplacedGraceMs, the writes still waiting on the leader
   * it forwarded them to are given up (ServerRpcClient.abandonApplies). A sent one answers with an
   * unknown outcome, an unsent one is retried on the new leader. A leader that stopped answering
   * (SIGSTOP, a hung machine) would otherwise hold them until the Forward stream's keepalive finds it
   * dead, about 20 s; a deposed leader that is alive answers within the grace. Reads, blocking queries
   * among them, are left to run.
   */
  private watchReplacedLeader(s: NodeStatus): void {
    const by = leaderNow(s);
    if (by === undefined) return; // no leader known yet: keep the one we forwarded to
    const remote = s.role === 'leader' ? '' : s.leaderAddress;
    // A server that leads again keeps its calls.
    const again = this.replacedLeaderTimers.get(remote);
    if (again !== undefined) {
      clearTimeout(again);
      this.replacedLeaderTimers.delete(remote);
    }
    const old = this.forwardedTo;
    this.forwardedTo = remote;
    if (old === '' || old === remote || this.replacedLeaderTimers.has(old)) return;
    const graceMs = serverLimits.forwardReplacedGraceMs;
    const timer = setTimeout(() => {
      this.replacedLeaderTimers.delete(old);
      const why = `the leader at ${old} was replaced (${by}) and had not answered within ${graceMs} ms of it`;
      const n = this.o.rpc.abandonApplies(old, why);
      if (n > 0) this.o.logger.warn({ event: 'forwarded-writes-abandoned', address: old, count: n }, `gave up on ${n} write(s) forwarded to a replaced leader`);
    }, graceMs);
    timer.unref?.();
    this.replacedLeaderTimers.set(old, timer);
  }

  /**
   * Runs `call`, forwarded to the leader at `address`, and gives up on it when this server has seen
   * another leader (or become the leader) for serverLimits.forwardReplacedGraceMs without an answer,
   * throwing `replaced(who)`. A leader that stopped answering (SIGSTOP, a hung machine, a partition
   * that drops packets) would otherwise hold a snapshot stream until its deadline, an hour; its
   * replacement is known within an election timeout. A deposed leader that is alive answers within the
   * grace, with what it knows. `signal` (the client going away) still cancels as before.
   */
  private async whileItLeads<T>(
    address: string,
    signal: AbortSignal | undefined,
    call: (signal: AbortSignal) => Promise<T>,
    replaced: (by: string) => ServerError,
  ): Promise<T> {
    const ac = new AbortController();
    const cancel = (): void => ac.abort(signal?.reason);
    if (signal?.aborted === true) cancel();
    signal?.addEventListener('abort', cancel, { once: true });
    let seen: string | undefined;
    let by: string | undefined;
    let grace: NodeJS.Timeout | undefined;
    const check = (s: NodeStatus): void => {
      if (seen !== undefined || (s.role !== 'leader' && s.leaderAddress === address)) return;
      seen = leaderNow(s);
      if (seen === undefined) return;
      grace = setTimeout(() => {
        by = seen;
        ac.abort(new Error('the leader was replaced'));
      }, serverLimits.forwardReplacedGraceMs);
    };
    const off = this.node.onChange(check);
    check(this.node.status());
    try {
      return await call(ac.signal);
    } catch (e) {
      if (by !== undefined && signal?.aborted !== true) throw replaced(by);
      throw e;
    } finally {
      clearTimeout(grace);
      off();
      signal?.removeEventListener('abort', cancel);
    }
  }

  private async restoreHere(archive: Readable): Promise<void> {
    try {
      await restoreLocal(this.node, archive, this.o.logger);
    } catch (e) {
      if (e instanceof NodeError && e.code === 'unknown-outcome') {
        throw new ServerError('unknown-outcome',
          'leadership was lost before the restore committed: it may or may not take effect; check the state and restore again if needed', { cause: e });
      }
      if (e instanceof NodeError && (e.code === 'not-leader' || e.code === 'no-leader')) {
        throw new ServerError('unavailable', `this server stopped leading before the restore was placed; nothing was restored. Retry the restore (${e.message})`, { cause: e });
      }
      throw e;
    }
    // Consul's reassertLeaderCh: whatever the leader built from the old state is rebuilt.
    await this.leaderDuties.reestablish('snapshot restored');
  }

  private snapshotCall(o: SnapshotOptions, hops: number): SnapshotCall {
    // Two servers that each believe the other leads would pass a call back and forth until the
    // leader wait ends; a few hops are all a real route needs (a server, its leader, another DC).
    if (hops > 4) throw new ServerError('no-leader', 'No cluster leader');
    return { stale: o.stale, token: o.token ?? '', dc: o.dc === undefined || o.dc === '' ? this.datacenter : o.dc, hops: hops + 1 };
  }

  /** Runs `call` against a server of `dc`; a write whose call may have reached it has an unknown outcome. */
  private async inDatacenter<T>(dc: string, call: (address: string) => Promise<T>, write = false): Promise<T> {
    const address = await this.datacenters.route(dc);
    try {
      return await call(address);
    } catch (e) {
      if (!(e instanceof TransportError)) throw e;
      this.datacenters.demote(dc, address);
      if (e.code === 'CANCELLED') throw e;
      if (write && e.code !== 'NOT_SENT') {
        throw new ServerError('unknown-outcome', `forwarding the write to datacenter ${dc} (${address}) failed after it was sent (${e.message}); it may or may not have been applied`, { cause: e });
      }
      throw new ServerError('unavailable', `datacenter ${dc} could not be reached through ${address}: ${e.message}; nothing was done`, { cause: e });
    }
  }

  private saveMeta(index: number): SnapshotSaveReply['meta'] {
    const m = this.meta(index, 'consistent');
    return { index: m.index, knownLeader: m.knownLeader, lastContactMs: m.lastContactMs };
  }

  private async remoteSave(address: string, call: SnapshotCall, signal: AbortSignal | undefined): Promise<SnapshotSaveReply> {
    const r = await this.o.rpc.snapshotSave(address, encodeSnapshotCall(call), signal !== undefined ? { signal } : {});
    if (!r.ok) throw remoteError(r.error);
    const h = decodeSaveHeader(r.header);
    if (!h.ok) {
      r.body.destroy();
      throw new ServerError('internal', `snapshot save: the answer from ${address} is malformed: ${h.error.message}`);
    }
    return { meta: h.value, body: r.body };
  }

  private async remoteRestore(address: string, archive: Readable, call: SnapshotCall, signal: AbortSignal | undefined): Promise<void> {
    const r = await this.o.rpc.snapshotRestore(address, encodeSnapshotCall(call), archive, signal !== undefined ? { signal } : {});
    answerOf(r, decodeDone, 'snapshot restore', address);
  }

  // ------------------------------------------------------------------------------------------
  // Writes
  // ------------------------------------------------------------------------------------------

  async apply(command: Command, o: ApplyOptions = {}): Promise<ApplyResult> {
    let bytes: Uint8Array;
    try {
      bytes = encodeCommand(command);
    } catch (e) {
      // The HTTP layer checks what it builds; anything still refused here is the request's fault.
      if (e instanceof CommandError) throw new ServerError('bad-request', `${e.message}; nothing was written`, { cause: e });
      throw e;
    }
    if (o.dc !== undefined && o.dc !== '' && o.dc !== this.datacenter) {
      return this.inDatacenter(o.dc, (address) => this.operator(address, { op: 'dc-apply', command: bytes }, decodeApplyResult), true);
    }
    return this.onLeader(
      () => this.proposeOnLeader(command, bytes),
      async (address) => answerOf(await this.o.rpc.apply(address, bytes), decodeApplyResult, 'forwarded apply', address),
      false,
    );
  }

  /**
   * Proposes a write on this server, the leader, with what Consul's leader does around it: a lock on a
   * key under lock-delay is refused before Raft (kvsPreApply), and a session's TTL timer follows its
   * create and destroy.
   */
  private async proposeOnLeader(command: Command, bytes: Uint8Array): Promise<ApplyResult> {
    if (command.type === 'kvs' && command.op.verb === 'lock' && this.node.fsm.lockDelayUntil(command.op.key) > 0) {
      this.o.logger.warn({ event: 'lock-delay', key: command.op.key }, 'refused a lock: the key is under lock-delay');
      return { kind: 'kvs', ok: false };
    }
    if (command.type === 'txn') {
      const errors = command.ops.flatMap((o, i) => (o.op.verb === 'lock' && this.node.fsm.lockDelayUntil(o.op.key) > 0
        ? [{ OpIndex: i, What: `failed to lock key ${goQuote(o.op.key)} due to lock delay` }] : []));
      if (errors.length > 0) return { kind: 'txn', results: [], errors };
    }
    if (command.type === 'session-create') {
      // A session names a catalog node (by default this server, with its serfHealth): on a new leader, wait
      // for its first pass of putting the servers in the catalog, bounded.
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, serverLimits.catalogReadyWaitMs);
      });
      await Promise.race([this.serverCatalog.ready(), bound]).finally(() => clearTimeout(timer));
    }
    const result = await this.node.propose(bytes);
    if (command.type === 'session-create' && result.kind === 'session' && result.error === '') this.sessionTimers.arm(command.session);
    if (command.type === 'session-destroy') this.sessionTimers.clear(command.id);
    return result;
  }

  /**
   * PUT /v1/session/renew: on the leader, restarts the session's TTL timer and answers the session;
   * a session that is gone is Consul's 404 "Session id '<id>' not found".
   */
  async sessionRenew(id: string, o: ApplyOptions = {}): Promise<readonly Session[]> {
    if (o.dc !== undefined && o.dc !== '' && o.dc !== this.datacenter) {
      // The other datacenter's server renews it there, through its own leader.
      return this.inDatacenter(o.dc, (address) => this.operator(address, { op: 'session-renew', id }, decodeSessions));
    }
    return this.onLeader(
      () => this.renewLocal(id),
      async (address) => this.operator(address, { op: 'session-renew', id }, decodeSessions),
    );
  }

  private async renewLocal(id: string): Promise<readonly Session[]> {
    this.requireLeader();
    const { sessions } = await this.node.fsm.sessionInfo(id);
    const session = sessions[0];
    if (session === undefined) throw new ServerError('not-found', `Session id '${id}' not found`);
    this.sessionTimers.arm(session);
    return sessions;
  }

  async sessionInfo(id: string, o: ReadOptions): Promise<{ meta: ReadMeta; sessions: readonly Session[] }> {
    return this.read({ op: 'session-info', id }, o);
  }

  async sessionList(node: string | undefined, o: ReadOptions): Promise<{ meta: ReadMeta; sessions: readonly Session[] }> {
    return this.read({ op: 'session-list', node: node ?? '' }, o);
  }

  async catalogRead(query: CatalogQuery, o: ReadOptions): Promise<{ meta: ReadMeta; json: unknown }> {
    return this.read({ op: 'catalog', query }, o);
  }

  async members(): Promise<readonly AgentMember[]> {
    const s = this.node.status();
    if (s.role !== 'leader' && s.leaderAddress !== '') {
      try {
        return await this.operator(s.leaderAddress, { op: 'members' }, decodeMembers);
      } catch {
        // The leader cannot be asked: this server's own view, below.
      }
    }
    return this.localMembers();
  }

  /**
   * Every server of the configuration, alive when heard from within three election timeouts (a leader
   * hears each follower every heartbeat; a follower without a leader hears almost no one).
   */
  private localMembers(): AgentMember[] {
    const silence = this.node.peerSilenceMs();
    const aliveWithinMs = Math.max(serverLimits.memberAliveMinMs, 3 * this.node.electionTimeoutMs());
    return this.node.status().configuration.servers.map((srv) => {
      const address = srv.address ?? '';
      const colon = address.lastIndexOf(':');
      const alive = srv.id === this.node.id || (silence.get(srv.id) ?? Number.POSITIVE_INFINITY) <= aliveWithinMs;
      return {
        Name: srv.id,
        Addr: colon > 0 ? address.slice(0, colon).replace(/^\[|\]$/g, '') : address,
        Port: colon > 0 ? Number(address.slice(colon + 1)) : 0,
        Tags: { role: 'consul', dc: this.datacenter, port: colon > 0 ? address.slice(colon + 1) : '', build: this.version, id: srv.id, voter: srv.suffrage === 'voter' ? 'true' : 'false' },
        Status: alive ? 1 : 4,
      };
    });
  }

  /** The RPC address of server `id` in the configuration, '' when unknown. */
  private serverAddress(id: string): string {
    return this.node.status().configuration.servers.find((s) => s.id === id)?.address ?? '';
  }

  // ------------------------------------------------------------------------------------------
  // Reads: each is one ReadQuery, served by `read` here or on the leader alike.
  // ------------------------------------------------------------------------------------------

  async kvGet(key: string, o: ReadOptions): Promise<{ meta: ReadMeta; entry: DirEntry | undefined }> {
    return this.read({ op: 'kv-get', key }, o);
  }

  async kvList(prefix: string, o: ReadOptions): Promise<{ meta: ReadMeta; entries: readonly DirEntry[] }> {
    return this.read({ op: 'kv-list', prefix }, o);
  }

  async kvKeys(prefix: string, separator: string, o: ReadOptions): Promise<{ meta: ReadMeta; keys: readonly string[] }> {
    return this.read({ op: 'kv-keys', prefix, separator }, o);
  }

  async readTxn(ops: readonly KvReadOp[], o: ReadOptions): Promise<{ meta: ReadMeta; reply: ReadTxnReply }> {
    return this.read({ op: 'kv-txn', ops }, o);
  }

  async raftConfiguration(o: ReadOptions): Promise<RaftConfigurationReply> {
    return (await this.read({ op: 'raft-configuration' }, o)).reply;
  }

  /** How each read is answered from local state. */
  private readonly local: { readonly [Op in ReadOp]: LocalRead<Op> } = {
    'kv-get': async (q) => {
      const r = await this.node.fsm.get(q.key);
      return { index: r.index, answer: { entry: r.entry } };
    },
    'kv-list': async (q) => {
      const r = await this.node.fsm.list(q.prefix);
      return { index: r.index, answer: { entries: r.entries } };
    },
    'kv-keys': async (q) => {
      const r = await this.node.fsm.keys(q.prefix, q.separator);
      return { index: r.index, answer: { keys: r.keys } };
    },
    'kv-txn': async (q) => {
      const r = await this.node.fsm.readTxn(q.ops.map((op) => ({ kind: 'kv' as const, op })));
      const index = await this.node.fsm.kvsIndex();
      return { index, answer: { reply: { results: r.results, errors: r.errors } as ReadTxnReply } };
    },
    'session-info': async (q) => {
      const r = await this.node.fsm.sessionInfo(q.id);
      return { index: r.index, answer: { sessions: r.sessions } };
    },
    'session-list': async (q) => {
      const r = await this.node.fsm.sessionList(q.node === '' ? undefined : q.node);
      return { index: r.index, answer: { sessions: r.sessions } };
    },
    'raft-configuration': async () => ({ index: this.node.status().configurationIndex, answer: { reply: this.localConfiguration() } }),
    catalog: async (q) => {
      const r = await this.node.fsm.catalogQuery(q.query);
      return { index: r.index, answer: { json: r.json } };
    },
  };

  async leaderAddress(): Promise<string> {
    return this.node.status().leaderAddress;
  }

  async peers(): Promise<readonly string[]> {
    return this.node
      .status()
      .configuration.servers.filter((s) => s.suffrage === 'voter')
      .map((s) => s.address ?? '')
      .filter((a) => a !== '');
  }

  async transferLeadership(targetId?: string): Promise<void> {
    await this.onLeader(
      async () => this.transferLocal(targetId ?? ''),
      async (address) => {
        await this.operator(address, { op: 'transfer', id: targetId ?? '' }, decodeDone);
      },
    );
  }

  async removePeer(by: { readonly id?: string; readonly address?: string }): Promise<void> {
    const servers = this.node.status().configuration.servers;
    const target = servers.find((s) => (by.id !== undefined && s.id === by.id) || (by.address !== undefined && s.address === by.address));
    if (target === undefined) {
      throw new ServerError('bad-request', `no server with ${by.id !== undefined ? `id ${by.id}` : `address ${by.address}`} in the Raft configuration`);
    }
    await this.onLeader(
      async () => {
        await this.node.changeMembership({ kind: 'removeServer', id: target.id });
      },
      async (address) => {
        await this.operator(address, { op: 'remove', id: target.id }, decodeDone);
      },
    );
  }

  /** Asks the cluster (through any member) to add `id` at `address`; a member already in it is left alone. */
  async join(viaAddress: string, id: string, address: string): Promise<void> {
    await this.operator(viaAddress, { op: 'join', id, address }, decodeDone);
  }

  async hello(address: string): Promise<Hello> {
    return this.operator(address, { op: 'hello' }, decodeHello, { timeoutMs: serverLimits.helloTimeoutMs });
  }

  /**
   * One read round's leader round trip (read-rounds.ts); throws when there is no other server to ask.
   * The call carries this server's id and term, read now, after every read of the round began; the
   * answer says how to know the index is committed here without waiting for the leader's next message.
   */
  private async fetchReadIndex(): Promise<number> {
    const s = this.node.status();
    if (s.role === 'leader' || s.leaderAddress === '') throw new ServerError('no-leader', 'no other server leads: the read is forwarded instead');
    const call = encodeReadIndexCall({ op: 'read-index', from: this.node.id, term: s.term });
    const r = await this.o.rpc.read(s.leaderAddress, call, { timeoutMs: serverLimits.readIndexTimeoutMs });
    const reply = answerOf(r, decodeReadIndexReply, 'read-index', s.leaderAddress);
    if (reply.term !== undefined && reply.indexTerm !== undefined) this.node.learnCommit(reply.term, reply.index, reply.indexTerm);
    return reply.index;
  }

  /**
   * The leader's side of a read round: its ReadIndex, the index a follower must have applied to serve
   * the round's reads, for default reads too, so a follower's default read is linearizable (stronger
   * than Consul's default). A quorum round, unless this leader and the asking follower are a quorum by
   * themselves (RaftNode.readIndexFor). The answer carries this term and the term of the entry at the
   * index, so the follower learns that the index is committed from the answer itself (otherwise it
   * learns commits at the leader's next message, and a read right after a write would wait for it).
   */
  private async leaderReadIndex(caller: { readonly from: string; readonly term: number } | undefined): Promise<Uint8Array> {
    this.requireLeader();
    return encodeReadIndexReply(await this.node.readIndexFor(caller).catch((e: unknown) => this.mapError(e)));
  }

  private async operator<T>(address: string, call: OperatorCall, decode: (bytes: Uint8Array) => Decoded<T>, options?: CallOptions): Promise<T> {
    return answerOf(await this.o.rpc.operator(address, encodeOperatorCall(call), options), decode, `operator ${call.op}`, address);
  }

  // ------------------------------------------------------------------------------------------
  // Server-to-server handlers: each message is decoded and validated here, where it arrives.
  // ------------------------------------------------------------------------------------------

  rpcHandlers(): Partial<ServerRpcHandlers> {
    return {
      snapshotSave: async (bytes: Uint8Array, ctx: RpcContext): Promise<SnapshotSaveAnswer> => {
        const d = decodeSnapshotCall(bytes);
        if (!d.ok) return { ok: false, error: malformedError('snapshot save', d.error) };
        const c = d.value;
        try {
          const reply = await this.snapshotSaveHop({ stale: c.stale, dc: c.dc, token: c.token, signal: ctx.signal }, c.hops);
          return { ok: true, header: encodeSaveHeader(reply.meta), body: reply.body };
        } catch (e) {
          return { ok: false, error: this.refusalOf(e) };
        }
      },
      snapshotRestore: async (header: Uint8Array, body: Readable, ctx: RpcContext): Promise<RpcResult> => {
        const d = decodeSnapshotCall(header);
        if (!d.ok) return malformed('snapshot restore', d.error);
        const c = d.value;
        return this.answer(async () => {
          await this.snapshotRestoreHop(body, { stale: c.stale, dc: c.dc, token: c.token, signal: ctx.signal }, c.hops);
          return encodeDone();
        });
      },
      apply: async (bytes: Uint8Array): Promise<RpcResult> => {
        const d = decodeCommand(bytes);
        if (!d.ok) return { ok: false, error: { code: 'bad-request', message: d.error.message } };
        return this.answer(async () => encodeApplyResult(await this.proposeOnLeader(d.command, bytes)));
      },
      read: async (bytes: Uint8Array, ctx: RpcContext): Promise<RpcResult> => {
        const d = decodeReadCall(bytes);
        if (!d.ok) return malformed('forwarded read', d.error);
        if ('op' in d.value) {
          const { from, term } = d.value;
          return this.answer(() => this.leaderReadIndex(from !== undefined && term !== undefined ? { from, term } : undefined));
        }
        const { query, options } = d.value;
        return this.answer(async () => {
          // A follower forwards only to the leader; were this one deposed since, the follower asks again.
          if (options.consistency !== 'stale') this.requireLeader();
          const reply = await this.read(query, { ...options, signal: ctx.signal });
          return encodeReadReply(reply);
        });
      },
      operator: async (bytes: Uint8Array): Promise<RpcResult> => {
        const d = decodeOperatorCall(bytes);
        if (!d.ok) return malformed('operator call', d.error);
        return this.answer(() => this.serveOperator(d.value));
      },
    };
  }

  private async serveOperator(call: OperatorCall): Promise<Uint8Array> {
    switch (call.op) {
      case 'hello':
        return encodeHello({ id: this.node.id, address: this.o.address, datacenter: this.datacenter, fresh: this.node.isFresh() });
      case 'join':
        await this.joinLocal(call.id, call.address);
        return encodeDone();
      case 'remove':
        this.requireLeader();
        await this.node.changeMembership({ kind: 'removeServer', id: call.id });
        return encodeDone();
      case 'transfer':
        this.transferLocal(call.id);
        return encodeDone();
      case 'dc-apply': {
        const d = decodeCommand(call.command);
        if (!d.ok) throw new ServerError('bad-request', `malformed command from another datacenter: ${d.error.message}; nothing was done`);
        return encodeApplyResult(await this.apply(d.command));
      }
      case 'dc-read': {
        const d = decodeForwardedRead(call.read);
        if (!d.ok) throw new ServerError('bad-request', `malformed read from another datacenter: ${d.error.message}`);
        return encodeReadReply(await this.read(d.value.query, d.value.options));
      }
      case 'members':
        return encodeMembers(this.localMembers());
      case 'session-renew':
        // From a follower of this datacenter (this server leads) or from another datacenter's server.
        return encodeSessions(await this.sessionRenew(call.id));
    }
  }

  // ------------------------------------------------------------------------------------------
  // Helpers
  // ------------------------------------------------------------------------------------------

  /**
   * Runs a read where its consistency mode says, blocking as asked: here (the leader, or any server
   * for ?stale), or forwarded to the leader, which serves it through this same function.
   */
  private async read<Op extends ReadOp>(query: Extract<ReadQuery, { op: Op }>, o: ReadOptions): Promise<ReadReply<Op>> {
    if (o.dc !== undefined && o.dc !== '' && o.dc !== this.datacenter) {
      const waitMs = o.minIndex ? o.waitMs ?? 0 : 0;
      const read = encodeForwardedRead({ query, options: { consistency: o.consistency, minIndex: o.minIndex ?? 0, waitMs: o.waitMs ?? 0 } });
      const options = { timeoutMs: waitMs + serverLimits.forwardedReadMarginMs, ...(o.signal ? { signal: o.signal } : {}) };
      return this.inDatacenter(o.dc, (address) => this.operator(address, { op: 'dc-read', read }, (b) => decodeReadReply<Op>(query.op as Op, b), options));
    }
    const local = (): ReturnType<LocalRead<Op>> => (this.local[query.op] as LocalRead<Op>)(query);
    if (isPlanted('stale-default-read') && o.consistency === 'default' && this.node.status().role !== 'leader') {
      // The chaos suite's planted defect (test/chaos): a follower answers default reads from its own state.
      const r = await local();
      return { ...r.answer, meta: this.meta(r.index, o.consistency) };
    }
    const serveHere = o.consistency === 'stale' || this.node.status().role === 'leader';
    if (!serveHere) {
      // A follower serves a non-blocking read itself once it has applied the leader's read index for a
      // round that started after the read arrived: as fresh as the leader's answer, and many reads share
      // one round trip. Anything that goes wrong on that path (no leader, a leader change, a follower
      // far behind) falls back to forwarding the read, which knows how to wait for a leader.
      if (!(o.minIndex !== undefined && o.minIndex > 0)) {
        // Safe to drop: the read is forwarded below instead, and that path reports its own errors.
        const index = await this.readRounds.next().catch(() => undefined);
        if (index !== undefined && (await this.node.appliedThrough(index, serverLimits.followerReadApplyWaitMs))) {
          const r = await local();
          return { ...r.answer, meta: this.meta(r.index, o.consistency, true) };
        }
      }
      return this.onLeader(
        () => this.read(query, o),
        async (address) => {
          const waitMs = o.minIndex ? o.waitMs ?? 0 : 0;
          const request = encodeForwardedRead({ query, options: { consistency: o.consistency, minIndex: o.minIndex ?? 0, waitMs: o.waitMs ?? 0 } });
          // The signal fires when the HTTP client goes away: the leader stops the blocking query too.
          const r = await this.o.rpc.read(address, request, { timeoutMs: waitMs + serverLimits.forwardedReadMarginMs, ...(o.signal ? { signal: o.signal } : {}) });
          return answerOf(r, (bytes) => decodeReadReply<Op>(query.op as Op, bytes), `forwarded ${query.op}`, address);
        },
      );
    }
    if (o.consistency === 'consistent') await this.node.readBarrier().catch((e: unknown) => this.mapError(e));
    else if (o.consistency === 'default') {
      const lostLeadership = await this.node.leaderCaughtUp().then(
        () => false,
        (e: unknown) => (e instanceof NodeError && e.code === 'not-leader' ? true : this.mapError(e)),
      );
      // Deposed while catching up: ask whoever leads now, as a follower would have.
      if (lostLeadership) return this.read(query, o);
    }
    const watch = watchOf(query);
    let r = await local();
    if (o.minIndex !== undefined && o.minIndex > 0 && r.index <= o.minIndex && watch !== undefined) {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), Math.max(0, o.waitMs ?? 0));
      const onAbort = (): void => controller.abort();
      o.signal?.addEventListener('abort', onAbort);
      try {
        await this.node.fsm.waitForChange(watch, o.minIndex, controller.signal);
      } finally {
        clearTimeout(timer);
        o.signal?.removeEventListener('abort', onAbort);
      }
      r = await local();
    } else if (o.minIndex !== undefined && o.minIndex > 0 && r.index <= o.minIndex && (o.waitMs ?? 0) > 0) {
      await sleep(Math.min(o.waitMs ?? 0, serverLimits.unwatchedBlockMaxMs));
      r = await local();
    }
    return { ...r.answer, meta: this.meta(r.index, o.consistency) };
  }

  /** `confirmed`: the leader vouched for this read (a follower's read round), as if it had answered it. */
  private meta(index: number, consistency: Consistency, confirmed = false): ReadMeta {
    const s = this.node.status();
    return {
      index: Math.max(1, index),
      knownLeader: confirmed || s.leader !== '',
      lastContactMs: confirmed || s.role === 'leader' ? 0 : Math.max(0, s.lastContactMs),
      consistency,
    };
  }

  /**
   * Runs `here` when this server leads, `remote(leaderAddress)` when another does; waits a bounded
   * time for a leader when there is none (Consul's "No cluster leader" after that).
   */
  private async onLeader<T>(here: () => Promise<T>, remote: (address: string) => Promise<T>, idempotent = true, what = 'the write'): Promise<T> {
    const deadline = performance.now() + this.o.leaderWaitMs;
    // The last failure that was retried: the cause of "No cluster leader" when the wait runs out at a
    // moment when no leader is known (the leader that refused the call may be gone from our view).
    let lastFailure: unknown;
    for (let attempt = 0; ; attempt++) {
      const s = this.node.status();
      let pauseMs = Math.min(serverLimits.leaderPollStepMs * (attempt + 1), serverLimits.leaderPollMaxMs);
      try {
        if (s.role === 'leader') return await here();
        if (s.leaderAddress !== '') return await remote(s.leaderAddress);
      } catch (e) {
        // Our caller gave up (client gone, server shutting down): nothing to retry.
        if (e instanceof TransportError && e.code === 'CANCELLED') throw e;
        // The leader refused the call before running it: say so rather than "unknown outcome".
        if (e instanceof TransportError && e.remoteCode === 'FORWARD_BUSY') {
          throw new ServerError('unavailable', `the leader refused the request: ${e.message}; nothing was done, retry later`, { cause: e });
        }
        if (e instanceof TransportError) {
          // The leader we believed in is unreachable (often: it just died). A call the transport
          // knows it never sent may be retried, as may any read; a write that may have reached it
          // has an unknown outcome. NO_HANDLER: the server answered before it was ready to run
          // anything (just started).
          const neverRan = e.code === 'NOT_SENT' || e.remoteCode === 'NO_HANDLER';
          if (!idempotent && !neverRan) {
            throw new ServerError('unknown-outcome',
              `forwarding ${what} to the leader failed after it was sent (${e.message}); it may or may not have been applied`, { cause: e });
          }
          if (performance.now() > deadline) throw new ServerError('no-leader', 'No cluster leader', { cause: e });
          lastFailure = e;
        } else {
          const retry = e instanceof NodeError && (e.code === 'not-leader' || e.code === 'retry' || e.code === 'no-leader');
          // 'retry' is mostly a new leader that has not committed its first entry: ready within a
          // round trip or two, so look again soon.
          if (e instanceof NodeError && e.code === 'retry') pauseMs = Math.min(serverLimits.retryPollStepMs * (attempt + 1), serverLimits.retryPollMaxMs);
          const rpcRetry = e instanceof ServerError && e.code === 'no-leader';
          if (!(retry || rpcRetry) || performance.now() > deadline) this.mapError(e);
          lastFailure = e;
        }
      }
      if (performance.now() > deadline) throw new ServerError('no-leader', 'No cluster leader', lastFailure === undefined ? undefined : { cause: lastFailure });
      await this.leaderChangeOrTimeout(s, pauseMs);
    }
  }

  /**
   * Waits until the node sees a different leader, role or term than `seen`, or `ms` pass: a request
   * waiting out an election goes on as soon as the new leader is known, not at the next poll.
   */
  private leaderChangeOrTimeout(seen: { readonly leader: string; readonly role: string; readonly term: number }, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        off();
        resolve();
      };
      const timer = setTimeout(done, ms);
      const off = this.node.onChange((s) => {
        if (s.leader !== seen.leader || s.role !== seen.role || s.term !== seen.term) done();
      });
    });
  }

  private requireLeader(): void {
    const s = this.node.status();
    if (s.role !== 'leader') throw new NodeError('not-leader', `${this.node.id} is not the leader`, s.leader);
  }

  private transferLocal(targetId: string): void {
    this.requireLeader();
    let target = targetId;
    if (target === '') {
      const s = this.node.status();
      const other = s.configuration.servers.find((x) => x.suffrage === 'voter' && x.id !== this.node.id);
      if (other === undefined) throw new ServerError('bad-request', 'there is no other voter to transfer leadership to');
      target = other.id;
    }
    this.node.transferLeadership(target);
  }

  private async joinLocal(id: string, address: string): Promise<void> {
    const s = this.node.status();
    if (s.configuration.servers.some((x) => x.id === id)) return;
    if (s.role !== 'leader') {
      if (s.leaderAddress === '') throw new NodeError('no-leader', 'No cluster leader', '');
      await this.join(s.leaderAddress, id, address);
      return;
    }
    this.node.addPeerAddress(id, address);
    await this.node.changeMembership({ kind: 'addNonvoter', id, address });
    this.o.logger.info({ event: 'server-joining', id, address }, `${id} joins as a non-voter until it catches up`);
  }

  private localConfiguration(): RaftConfigurationReply {
    const s = this.node.status();
    return {
      Servers: s.configuration.servers.map((x) => ({
        ID: x.id,
        Node: x.id,
        Address: x.address ?? '',
        Leader: x.id === s.leader,
        ProtocolVersion: protocolVersion,
        Voter: x.suffrage === 'voter',
      })),
      Index: s.configurationIndex,
    };
  }

  /** Turns a handler's outcome into an RPC answer: typed errors travel as RpcErrors with a leader hint. */
  private async answer(f: () => Promise<Uint8Array>): Promise<RpcResult> {
    try {
      return { ok: true, result: await f() };
    } catch (e) {
      return { ok: false, error: this.refusalOf(e) };
    }
  }

  /** A typed error as the RpcError it travels as; anything else is rethrown (a bug, or the environment). */
  private refusalOf(e: unknown): RpcError {
    const s = this.node.status();
    const leader = { id: s.leader, address: s.leaderAddress };
    if (e instanceof NodeError || e instanceof ServerError) return { code: e.code, message: e.message, leader };
    throw e;
  }

  private mapError(e: unknown): never {
    if (e instanceof ServerError) throw e;
    if (e instanceof NodeError) {
      switch (e.code) {
        case 'not-leader':
        case 'retry':
        case 'no-leader':
          throw new ServerError('no-leader', 'No cluster leader', { cause: e });
        case 'unknown-outcome':
          throw new ServerError('unknown-outcome', e.message, { cause: e });
        case 'aborted-by-restore':
          throw new ServerError('aborted-by-restore', e.message, { cause: e });
        case 'bad-request':
          throw new ServerError('bad-request', e.message, { cause: e });
        case 'unavailable':
          throw new ServerError('unavailable', e.message, { cause: e });
        case 'internal':
          throw new ServerError('internal', e.message, { cause: e });
      }
    }
    throw new ServerError('internal', (e as Error)?.message ?? String(e), { cause: e });
  }
}

/** An answer from another server: its value, validated, or the error it stands for. */
function answerOf<T>(r: RpcResult, decode: (bytes: Uint8Array) => Decoded<T>, what: string, address: string): T {
  if (!r.ok) throw remoteError(r.error);
  const d = decode(r.result);
  if (!d.ok) throw new ServerError('internal', `${what}: the answer from ${address} is malformed: ${d.error.message}`);
  return d.value;
}

/** A refusal from another server as the error it stands for: NodeError for those `onLeader` retries. */
function remoteError(e: RpcError): Error {
  switch (e.code) {
    case 'retry':
      return new NodeError('retry', e.message, e.leader?.id ?? '');
    case 'not-leader':
    case 'no-leader':
      return new NodeError('not-leader', e.message, e.leader?.id ?? '');
    case 'unknown-outcome':
    case 'aborted-by-restore':
    case 'bad-request':
    case 'not-found':
    case 'unavailable':
    case 'permission-denied':
    case 'acl-not-found':
    case 'no-path-to-dc':
    case 'internal':
      return new ServerError(e.code, e.message);
    default:
      return new ServerError('internal', `${e.code}: ${e.message}`);
  }
}

/** A message that does not decode is refused, and nothing is done. */
function malformed(what: string, e: ProtocolError): RpcResult {
  return { ok: false, error: malformedError(what, e) };
}

function malformedError(what: string, e: ProtocolError): RpcError {
  return { code: 'bad-request', message: `malformed ${what}: ${e.message}; nothing was done` };
}

/** What a blocking query waits on; undefined: it cannot block (it waits out its time instead). */
function watchOf(q: ReadQuery): WatchTarget | undefined {
  switch (q.op) {
    case 'kv-get':
      return { key: q.key };
    case 'kv-list':
    case 'kv-keys':
      return { prefix: q.prefix };
    case 'session-info':
    case 'session-list':
      return { sessions: true };
    case 'catalog':
      return { catalog: q.query };
    default:
      return undefined;
  }
}

export type { NodeId };
