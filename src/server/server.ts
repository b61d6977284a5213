// One server node wired together: the Raft node, the FSM it applies to, and the server-to-server
// RPCs. It implements ServerApi for the HTTP layer: writes go through the leader (a follower forwards
// them), reads follow Consul's consistency modes, blocking queries wait here (on the leader for
// forwarded reads), and the operator calls (join, remove, transfer) run on the leader.

import { decode, encode as msgpackEncode } from '@msgpack/msgpack';

/**
 * Payloads between servers. Absent fields stay absent: msgpack has no `undefined`, and by default an
 * undefined property travels as nil and comes back as null, which reads as present (a forwarded GET of
 * a missing key once answered 500 instead of 404 that way).
 */
const encode = (value: unknown): Uint8Array => msgpackEncode(value, { ignoreUndefined: true });
import type { Logger } from 'pino';
import { decodeCommand, encodeCommand, type ApplyResult, type Command, type DirEntry, type KvReadOp, type WatchTarget } from '../fsm/index.js';
import { NodeError, type RaftNode } from '../node/index.js';
import type { NodeId } from '../raft/index.js';
import { TransportError, type RpcContext, type RpcResult, type ServerRpcClient, type ServerRpcHandlers } from '../transport/index.js';
import {
  ServerError,
  type Consistency,
  type RaftConfigurationReply,
  type ReadMeta,
  type ReadOptions,
  type ReadTxnReply,
  type ServerApi,
} from './api.js';

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
}

/** A read as it travels to the leader (msgpack). */
type ReadRequest =
  | { t: 'get'; key: string; o: WireReadOptions }
  | { t: 'list'; prefix: string; o: WireReadOptions }
  | { t: 'keys'; prefix: string; sep: string; o: WireReadOptions }
  | { t: 'txn'; ops: readonly KvReadOp[]; o: WireReadOptions }
  | { t: 'config'; o: WireReadOptions }
  | { t: 'hello' }
  | { t: 'join'; id: string; address: string }
  | { t: 'remove'; id: string }
  | { t: 'transfer'; id: string };

interface WireReadOptions {
  readonly c: Consistency;
  readonly i: number;
  readonly w: number;
}

/** What a server says about itself to a server looking for peers. */
export interface Hello {
  readonly id: string;
  readonly address: string;
  readonly datacenter: string;
  /** True while it has never been part of a cluster. */
  readonly fresh: boolean;
}

const protocolVersion = '3';

export class Server implements ServerApi {
  readonly nodeName: string;
  readonly datacenter: string;
  readonly version: string;
  private readonly node: RaftNode;
  private readonly o: ServerOptions;

  constructor(o: ServerOptions) {
    this.o = o;
    this.node = o.node;
    this.nodeName = o.nodeName;
    this.datacenter = o.datacenter;
    this.version = o.version;
  }

  // ------------------------------------------------------------------------------------------
  // Writes
  // ------------------------------------------------------------------------------------------

  async apply(command: Command): Promise<ApplyResult> {
    const bytes = encodeCommand(command);
    return this.onLeader(
      () => this.node.propose(bytes),
      async (address) => {
        const r = await this.o.rpc.apply(address, bytes);
        return unwrap<ApplyResult>(r);
      },
      false,
    );
  }

  // ------------------------------------------------------------------------------------------
  // Reads
  // ------------------------------------------------------------------------------------------

  async kvGet(key: string, o: ReadOptions): Promise<{ meta: ReadMeta; entry: DirEntry | undefined }> {
    return this.read({ t: 'get', key, o: wire(o) }, o, async () => {
      const r = await this.node.fsm.get(key);
      return { index: r.index, value: { entry: r.entry } };
    }, { key }).then(({ meta, value }) => ({ meta, entry: value.entry }));
  }

  async kvList(prefix: string, o: ReadOptions): Promise<{ meta: ReadMeta; entries: readonly DirEntry[] }> {
    return this.read({ t: 'list', prefix, o: wire(o) }, o, async () => {
      const r = await this.node.fsm.list(prefix);
      return { index: r.index, value: { entries: r.entries } };
    }, { prefix }).then(({ meta, value }) => ({ meta, entries: value.entries }));
  }

  async kvKeys(prefix: string, separator: string, o: ReadOptions): Promise<{ meta: ReadMeta; keys: readonly string[] }> {
    return this.read({ t: 'keys', prefix, sep: separator, o: wire(o) }, o, async () => {
      const r = await this.node.fsm.keys(prefix, separator);
      return { index: r.index, value: { keys: r.keys } };
    }, { prefix }).then(({ meta, value }) => ({ meta, keys: value.keys }));
  }

  async readTxn(ops: readonly KvReadOp[], o: ReadOptions): Promise<{ meta: ReadMeta; reply: ReadTxnReply }> {
    return this.read({ t: 'txn', ops, o: wire(o) }, o, async () => {
      const r = await this.node.fsm.readTxn(ops.map((op) => ({ kind: 'kv' as const, op })));
      const index = await this.node.fsm.kvsIndex();
      return { index, value: { reply: { results: r.results, errors: r.errors } as ReadTxnReply } };
    }, undefined).then(({ meta, value }) => ({ meta, reply: value.reply }));
  }

  async raftConfiguration(o: ReadOptions): Promise<RaftConfigurationReply> {
    const { value } = await this.read({ t: 'config', o: wire(o) }, o, async () => ({
      index: this.node.status().configurationIndex,
      value: { reply: this.localConfiguration() },
    }), undefined);
    return value.reply;
  }

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
        unwrap<unknown>(await this.o.rpc.read(address, encode({ t: 'transfer', id: targetId ?? '' })));
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
        unwrap<unknown>(await this.o.rpc.read(address, encode({ t: 'remove', id: target.id })));
      },
    );
  }

  /** Asks the cluster (through any member) to add `id` at `address`; a member already in it is left alone. */
  async join(viaAddress: string, id: string, address: string): Promise<void> {
    unwrap<unknown>(await this.o.rpc.read(viaAddress, encode({ t: 'join', id, address })));
  }

  async hello(address: string): Promise<Hello> {
    return unwrap<Hello>(await this.o.rpc.read(address, encode({ t: 'hello' }), { timeoutMs: 2000 }));
  }

  // ------------------------------------------------------------------------------------------
  // Server-to-server handlers
  // ------------------------------------------------------------------------------------------

  rpcHandlers(): Partial<ServerRpcHandlers> {
    return {
      apply: async (bytes: Uint8Array): Promise<RpcResult> => {
        const d = decodeCommand(bytes);
        if (!d.ok) return { ok: false, error: { code: 'bad-request', message: d.error.message } };
        return this.answer(async () => encode(await this.node.propose(bytes)));
      },
      read: async (bytes: Uint8Array, ctx: RpcContext): Promise<RpcResult> => {
        let req: ReadRequest;
        try {
          req = decode(bytes) as ReadRequest;
        } catch (e) {
          return { ok: false, error: { code: 'bad-request', message: `undecodable request: ${(e as Error).message}` } };
        }
        return this.answer(async () => encode(await this.serveRemote(req, ctx.signal)));
      },
    };
  }

  private async serveRemote(req: ReadRequest, signal: AbortSignal): Promise<unknown> {
    const status = this.node.status();
    switch (req.t) {
      case 'hello':
        return { id: this.node.id, address: this.o.address, datacenter: this.datacenter, fresh: this.node.isFresh() } satisfies Hello;
      case 'join':
        return this.joinLocal(req.id, req.address);
      case 'remove':
        this.requireLeader();
        await this.node.changeMembership({ kind: 'removeServer', id: req.id });
        return true;
      case 'transfer':
        this.requireLeader();
        this.transferLocal(req.id);
        return true;
      default: {
        if (req.o.c !== 'stale' && status.role !== 'leader') {
          throw new NodeError('not-leader', `${this.node.id} is not the leader`, status.leader);
        }
        const local = { consistency: req.o.c, minIndex: req.o.i, waitMs: req.o.w, signal };
        switch (req.t) {
          case 'get':
            return this.kvGet(req.key, local);
          case 'list':
            return this.kvList(req.prefix, local);
          case 'keys':
            return this.kvKeys(req.prefix, req.sep, local);
          case 'txn':
            return this.readTxn(req.ops, local);
          case 'config':
            // Shaped as the forwarding side unpacks every read: { meta, ...value }.
            return { meta: this.meta(this.node.status().configurationIndex, req.o.c), reply: await this.raftConfiguration(local) };
        }
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // Helpers
  // ------------------------------------------------------------------------------------------

  /** Runs a read where its consistency mode says, blocking as asked. */
  private async read<T>(
    request: ReadRequest,
    o: ReadOptions,
    local: () => Promise<{ index: number; value: T }>,
    watch: WatchTarget | undefined,
  ): Promise<{ meta: ReadMeta; value: T }> {
    const serveHere = o.consistency === 'stale' || this.node.status().role === 'leader';
    if (!serveHere) {
      return this.onLeader(
        () => this.read(request, o, local, watch),
        async (address) => {
          const waitMs = o.minIndex ? o.waitMs ?? 0 : 0;
          // The signal fires when the HTTP client goes away: the leader stops the blocking query too.
          const r = await this.o.rpc.read(address, encode(request), { timeoutMs: waitMs + 15_000, ...(o.signal ? { signal: o.signal } : {}) });
          const reply = unwrap<{ meta: ReadMeta } & Record<string, unknown>>(r);
          const { meta, ...rest } = reply;
          return { meta: { ...meta, consistency: o.consistency }, value: rest as unknown as T };
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
      if (lostLeadership) return this.read(request, o, local, watch);
    }
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
      await sleep(Math.min(o.waitMs ?? 0, 1000));
      r = await local();
    }
    return { meta: this.meta(r.index, o.consistency), value: r.value };
  }

  private meta(index: number, consistency: Consistency): ReadMeta {
    const s = this.node.status();
    return {
      index: Math.max(1, index),
      knownLeader: s.leader !== '',
      lastContactMs: s.role === 'leader' ? 0 : Math.max(0, s.lastContactMs),
      consistency,
    };
  }

  /**
   * Runs `here` when this server leads, `remote(leaderAddress)` when another does; waits a bounded
   * time for a leader when there is none (Consul's "No cluster leader" after that).
   */
  private async onLeader<T>(here: () => Promise<T>, remote: (address: string) => Promise<T>, idempotent = true): Promise<T> {
    const deadline = Date.now() + this.o.leaderWaitMs;
    for (let attempt = 0; ; attempt++) {
      const s = this.node.status();
      let pauseMs = Math.min(50 * (attempt + 1), 250);
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
              `forwarding the write to the leader failed after it was sent (${e.message}); it may or may not have been applied`, { cause: e });
          }
          if (Date.now() > deadline) throw new ServerError('no-leader', 'No cluster leader', { cause: e });
        } else {
          const retry = e instanceof NodeError && (e.code === 'not-leader' || e.code === 'retry' || e.code === 'no-leader');
          // 'retry' is mostly a new leader that has not committed its first entry: ready within a
          // round trip or two, so look again soon.
          if (e instanceof NodeError && e.code === 'retry') pauseMs = Math.min(10 * (attempt + 1), 100);
          const rpcRetry = e instanceof ServerError && e.code === 'no-leader';
          if (!(retry || rpcRetry) || Date.now() > deadline) this.mapError(e);
        }
      }
      if (Date.now() > deadline) throw new ServerError('no-leader', 'No cluster leader');
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

  private async joinLocal(id: string, address: string): Promise<boolean> {
    const s = this.node.status();
    if (s.configuration.servers.some((x) => x.id === id)) return true;
    if (s.role !== 'leader') {
      if (s.leaderAddress === '') throw new NodeError('no-leader', 'No cluster leader', '');
      await this.join(s.leaderAddress, id, address);
      return true;
    }
    this.node.addPeerAddress(id, address);
    await this.node.changeMembership({ kind: 'addNonvoter', id, address });
    this.o.logger.info({ event: 'server-joining', id, address }, `${id} joins as a non-voter until it catches up`);
    return true;
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
      const s = this.node.status();
      const leader = { id: s.leader, address: s.leaderAddress };
      if (e instanceof NodeError) return { ok: false, error: { code: e.code, message: e.message, leader } };
      if (e instanceof ServerError) return { ok: false, error: { code: e.code, message: e.message, leader } };
      throw e;
    }
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

/** An RPC answer from another server, as a value or the ServerError it stands for. */
function unwrap<T>(r: RpcResult): T {
  if (r.ok) return decode(r.result) as T;
  const code = r.error.code;
  switch (code) {
    case 'retry':
      throw new NodeError('retry', r.error.message, r.error.leader?.id ?? '');
    case 'not-leader':
    case 'no-leader':
      throw new NodeError('not-leader', r.error.message, r.error.leader?.id ?? '');
    case 'unknown-outcome':
    case 'aborted-by-restore':
    case 'bad-request':
    case 'not-found':
    case 'unavailable':
    case 'internal':
      throw new ServerError(code, r.error.message);
    default:
      throw new ServerError('internal', `${code}: ${r.error.message}`);
  }
}

function wire(o: ReadOptions): WireReadOptions {
  return { c: o.consistency, i: o.minIndex ?? 0, w: o.waitMs ?? 0 };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export type { NodeId };
