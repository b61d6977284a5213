// A single-node stand-in for ServerApi, for the HTTP layer's own tests (test/unit/http-*.test.ts) until
// the Raft-backed server in src/server replaces it there.
//
// It is a REAL Fsm on a temp dir, driven directly: `apply` encodes the command and applies it at the
// next index (term 1), exactly as the node runtime would once the entry commits; reads are the FSM's
// reads; blocking queries wait on fsm.waitForChange, bounded by waitMs and the request's signal.
// There is no Raft, no forwarding and no consistency difference between modes: every read is "on the
// leader" (KnownLeader true, LastContact 0) unless a test makes the node leaderless, in which case
// writes and non-stale reads fail with ServerError('no-leader') and stale reads still answer.
// Test-only; never import it from src/.

import type { ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandError, emptyCheckDefinition, encodeCommand, Fsm, type ApplyResult, type CatalogQuery, type Command, type KvReadOp, type WatchTarget } from '../../src/fsm/index.js';
import {
  ServerError,
  type RaftConfigurationReply,
  type ReadMeta,
  type ReadOptions,
  type ReadTxnReply,
  type ApplyOptions,
  type ServerApi,
  type SnapshotSaveReply,
} from '../../src/server/api.js';

export interface LocalServerOptions {
  readonly nodeName?: string;
  readonly datacenter?: string;
  readonly version?: string;
}

export class LocalServer implements ServerApi {
  readonly nodeName: string;
  readonly datacenter: string;
  readonly version: string;
  /** Address this node reports for itself (its "server RPC address"). */
  readonly selfAddress = '127.0.0.1:8300';
  /** When true: no leader is known (writes and non-stale reads fail as Consul's do). */
  leaderless = false;
  /** Every command handed to apply (including ones that failed validation), for "changed nothing" checks. */
  readonly applied: Command[] = [];
  /** Calls of transferLeadership / removePeer, for assertions. */
  readonly operatorCalls: Array<{ readonly op: string; readonly arg: unknown }> = [];
  /** Blocking queries now waiting inside the FSM. */
  blockingNow = 0;
  /** Blocking queries that ended because their signal aborted (client gone or shutdown). */
  blockingAborted = 0;

  private lastIndex: number;
  private registered = false;

  private constructor(readonly fsm: Fsm, options: LocalServerOptions) {
    this.nodeName = options.nodeName ?? 'node-1';
    this.datacenter = options.datacenter ?? 'dc1';
    this.version = options.version ?? '0.1.0';
    this.lastIndex = fsm.appliedIndex();
  }

  /** Opens a fresh FSM in a temp dir; the test's teardown closes it and removes the dir. */
  static async open(t: ExecutionContext, options: LocalServerOptions = {}): Promise<LocalServer> {
    const root = await mkdtemp(join(tmpdir(), 'conclave-http-'));
    const fsm = await Fsm.open(join(root, 'fsm'));
    t.teardown(async () => {
      await fsm.close();
      await rm(root, { recursive: true, force: true });
    });
    return new LocalServer(fsm, options);
  }

  async apply(command: Command, o: ApplyOptions = {}): Promise<ApplyResult> {
    if (command.type === 'session-create' && !this.registered) {
      // What a real server's leader does first: this node in the catalog, with a passing serfHealth.
      this.registered = true;
      await this.apply({
        type: 'catalog-register',
        node: { ID: '', Node: this.nodeName, Address: '127.0.0.1', Datacenter: this.datacenter, TaggedAddresses: {}, Meta: {} },
        skipNodeUpdate: false,
        checks: [{ CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing', Notes: '', Output: '', ServiceID: '', Type: '', Definition: emptyCheckDefinition }],
      });
    }
    this.applied.push(command);
    noOtherDatacenter(o.dc);
    if (this.leaderless) throw new ServerError('no-leader', 'no leader is known');
    let bytes: Uint8Array;
    try {
      bytes = encodeCommand(command);
    } catch (error) {
      if (error instanceof CommandError) throw new ServerError('bad-request', error.message, { cause: error });
      throw error;
    }
    this.lastIndex += 1;
    return this.fsm.apply(this.lastIndex, 1, bytes);
  }

  async kvGet(key: string, o: ReadOptions): ReturnType<ServerApi['kvGet']> {
    this.checkLeader(o);
    await this.block({ key }, o);
    const { index, entry } = await this.fsm.get(key);
    return { meta: this.meta(index, o), entry };
  }

  async kvList(prefix: string, o: ReadOptions): ReturnType<ServerApi['kvList']> {
    this.checkLeader(o);
    await this.block({ prefix }, o);
    const { index, entries } = await this.fsm.list(prefix);
    return { meta: this.meta(index, o), entries };
  }

  async kvKeys(prefix: string, separator: string, o: ReadOptions): ReturnType<ServerApi['kvKeys']> {
    this.checkLeader(o);
    await this.block({ prefix }, o);
    const { index, keys } = await this.fsm.keys(prefix, separator);
    return { meta: this.meta(index, o), keys };
  }

  async sessionInfo(id: string, o: ReadOptions): ReturnType<ServerApi['sessionInfo']> {
    this.checkLeader(o);
    await this.block({ sessions: true }, o);
    const { index, sessions } = await this.fsm.sessionInfo(id);
    return { meta: this.meta(index, o), sessions };
  }

  async sessionList(node: string | undefined, o: ReadOptions): ReturnType<ServerApi['sessionList']> {
    this.checkLeader(o);
    await this.block({ sessions: true }, o);
    const { index, sessions } = await this.fsm.sessionList(node);
    return { meta: this.meta(index, o), sessions };
  }

  /** No TTL timers here: a renew only finds the session. */
  async sessionRenew(id: string, o: ApplyOptions = {}): ReturnType<ServerApi['sessionRenew']> {
    noOtherDatacenter(o.dc);
    if (this.leaderless) throw new ServerError('no-leader', 'no leader is known');
    const { sessions } = await this.fsm.sessionInfo(id);
    if (sessions.length === 0) throw new ServerError('not-found', `Session id '${id}' not found`);
    return sessions;
  }

  async members(): ReturnType<ServerApi['members']> {
    return [{ Name: this.nodeName, Addr: '127.0.0.1', Port: 8300, Tags: { role: 'consul', dc: this.datacenter, port: '8300', build: this.version }, Status: 1 }];
  }

  async catalogRead(query: CatalogQuery, o: ReadOptions): ReturnType<ServerApi['catalogRead']> {
    this.checkLeader(o);
    await this.block({ catalog: query }, o);
    const { index, json } = await this.fsm.catalogQuery(query);
    return { meta: this.meta(index, o), json };
  }

  async readTxn(ops: readonly KvReadOp[], o: ReadOptions): Promise<{ meta: ReadMeta; reply: ReadTxnReply }> {
    this.checkLeader(o);
    try {
      const outcome = await this.fsm.readTxn(ops.map((op) => ({ kind: 'kv', op })));
      return { meta: this.meta(await this.fsm.kvsIndex(), o), reply: outcome };
    } catch (error) {
      if (error instanceof CommandError) throw new ServerError('bad-request', error.message, { cause: error });
      throw error;
    }
  }

  async leaderAddress(): Promise<string> {
    return this.leaderless ? '' : this.selfAddress;
  }

  knownDatacenters(): readonly string[] {
    return [this.datacenter];
  }

  async peers(): Promise<readonly string[]> {
    return [this.selfAddress];
  }

  async raftConfiguration(o: ReadOptions): Promise<RaftConfigurationReply> {
    this.checkLeader(o);
    return {
      Servers: [{ ID: `${this.nodeName}-id`, Node: this.nodeName, Address: this.selfAddress, Leader: !this.leaderless, ProtocolVersion: '3', Voter: true }],
      Index: 1,
    };
  }

  async transferLeadership(targetId?: string): Promise<void> {
    this.operatorCalls.push({ op: 'transfer-leader', arg: targetId });
    if (this.leaderless) throw new ServerError('no-leader', 'no leader is known');
    throw new ServerError('bad-request', 'cannot transfer leadership: this single-node cluster has no other voter');
  }

  /** Snapshots need a Raft node: tests of the HTTP route replace these with their own. */
  async snapshotSave(): Promise<SnapshotSaveReply> {
    throw new ServerError('internal', 'LocalServer has no snapshots; the test replaces snapshotSave');
  }

  async snapshotRestore(): Promise<void> {
    throw new ServerError('internal', 'LocalServer has no snapshots; the test replaces snapshotRestore');
  }

  async removePeer(by: { readonly id?: string; readonly address?: string }): Promise<void> {
    this.operatorCalls.push({ op: 'remove-peer', arg: by });
    if (by.address !== undefined && by.address !== this.selfAddress) {
      throw new ServerError('bad-request', `address ${JSON.stringify(by.address)} was not found in the Raft configuration`);
    }
    if (by.id !== undefined && by.id !== `${this.nodeName}-id`) {
      throw new ServerError('bad-request', `id ${JSON.stringify(by.id)} was not found in the Raft configuration`);
    }
  }

  private checkLeader(o: ReadOptions): void {
    noOtherDatacenter(o.dc);
    if (this.leaderless && o.consistency !== 'stale') throw new ServerError('no-leader', 'no leader is known');
  }

  private meta(index: number, o: ReadOptions): ReadMeta {
    return { index: Math.max(1, index), knownLeader: !this.leaderless, lastContactMs: 0, consistency: o.consistency };
  }

  /** Consul's blocking query: wait until the target's index passes minIndex, waitMs passes, or abort. */
  private async block(target: WatchTarget, o: ReadOptions): Promise<void> {
    if (o.minIndex === undefined || o.minIndex === 0) return;
    const timeout = AbortSignal.timeout(o.waitMs ?? 5 * 60_000);
    const signal = o.signal === undefined ? timeout : AbortSignal.any([timeout, o.signal]);
    this.blockingNow += 1;
    try {
      const outcome = await this.fsm.waitForChange(target, o.minIndex, signal);
      if (outcome.reason === 'aborted' && o.signal?.aborted === true) this.blockingAborted += 1;
    } finally {
      this.blockingNow -= 1;
    }
  }
}

/** This stand-in knows no other datacenter: the Server's answer for one it has no route to. */
function noOtherDatacenter(dc: string | undefined): void {
  if (dc !== undefined && dc !== '') throw new ServerError('no-path-to-dc', 'No path to datacenter');
}
