// The cluster's servers in the catalog: a leader duty (leader-duties.ts), as Consul's leader reconciles
// serf members into the catalog (agent/consul/leader.go, reconcileMember / handleAliveMember /
// handleFailedMember / handleReapMember).
//
// Every server of the Raft configuration is a catalog node with the `consul` service and a `serfHealth`
// check: passing while the leader hears from it ("Agent alive and reachable"), critical when it does not
// ("Agent not live or unreachable"). Conclave has no gossip layer; "hears from" is the Raft leader's
// contact with each follower, the same view /v1/agent/members shows. A node that carries a serfHealth
// check but is no server of the configuration (a removed server, or the servers of a restored archive
// from another cluster) is deregistered, as Consul reaps members that left.
//
// The leader reconciles when it takes office (after catching up), after every restore, and then every
// reconcileIntervalMs; it proposes a register only where the catalog differs from what it sees, so a
// steady cluster writes nothing. A critical serfHealth invalidates the sessions tied to it (the FSM
// does that in the same apply).

import type { Logger } from 'pino';
import type { CatalogQuery, CatalogRead, Command, NewCheck, NewNode, NewService } from '../fsm/index.js';
import { emptyDefinition } from '../snapshot/index.js';
import type { LeaderDuty } from './leader-duties.js';

export const serfHealthCheckId = 'serfHealth';
const serfHealthName = 'Serf Health Status';
const aliveOutput = 'Agent alive and reachable';
const failedOutput = 'Agent not live or unreachable';

/** One server as the leader sees it. */
export interface ServerView {
  readonly id: string;
  /** Its RPC address, "host:port" ('' when unknown). */
  readonly address: string;
  readonly alive: boolean;
}

export interface ServerCatalogOptions {
  readonly datacenter: string;
  /** Every server of the configuration, as the leader sees it now. */
  readonly servers: () => readonly ServerView[];
  readonly read: (q: CatalogQuery) => Promise<CatalogRead>;
  readonly propose: (command: Command) => Promise<unknown>;
  readonly caughtUp: () => Promise<void>;
  readonly intervalMs: number;
  /**
   * A new leader has heard from nobody yet: for this long after taking office it counts every server
   * as alive, so a leader change never marks a live server critical (which would kill its sessions).
   */
  readonly graceMs: () => number;
  readonly logger: Logger;
}

export class ServerCatalog implements LeaderDuty {
  readonly name = 'server-catalog';
  private timer: NodeJS.Timeout | undefined;
  private term = 0;
  private running: Promise<void> | undefined;
  // Pending from the start and again from each loss of leadership until the next leadership's first
  // reconcile ends: a session create that reaches a new leader before its duties even started waits too.
  private readyNow!: Promise<void>;
  private markReady: () => void = () => undefined;
  private isReady = false;
  private since = 0;

  constructor(private readonly o: ServerCatalogOptions) {
    this.notReady();
  }

  private notReady(): void {
    if (!this.isReady && this.readyNow !== undefined) return;
    this.isReady = false;
    this.readyNow = new Promise<void>((resolve) => {
      this.markReady = () => {
        this.isReady = true;
        resolve();
      };
    });
  }

  async establish(): Promise<void> {
    this.stop();
    const term = ++this.term;
    this.since = performance.now();
    this.notReady();
    const done = this.markReady;
    try {
      await this.o.caughtUp();
      if (term !== this.term) return;
      await this.reconcile(term);
    } finally {
      done();
    }
    if (term !== this.term) return;
    this.timer = setInterval(() => {
      if (this.running !== undefined) return;
      this.running = this.reconcile(term).finally(() => {
        this.running = undefined;
      });
    }, this.o.intervalMs);
    this.timer.unref();
  }

  revoke(): void {
    this.term++;
    this.stop();
    this.notReady();
  }

  /** Resolves once this leader's first reconcile is done (or failed): sessions may then name servers. */
  ready(): Promise<void> {
    return this.readyNow;
  }

  private stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One pass: registers what differs, reaps what left. Never throws (a failure waits for the next pass). */
  private async reconcile(term: number): Promise<void> {
    try {
      const inGrace = performance.now() - this.since < this.o.graceMs();
      const servers = this.o.servers().map((s) => (inGrace && !s.alive ? { ...s, alive: true } : s));
      const ids = new Set(servers.map((s) => s.id));
      for (const server of servers) {
        if (term !== this.term) return;
        const want = this.registration(server);
        const have = await this.o.read({ what: 'health-node', node: server.id });
        const node = await this.o.read({ what: 'node', node: server.id });
        if (!differs(want, node.json, have.json)) continue;
        this.o.logger.info({ event: 'server-catalog', server: server.id, alive: server.alive }, 'registering a server in the catalog');
        await this.o.propose(want);
      }
      const checks = await this.o.read({ what: 'health-state', state: 'any' });
      for (const c of checks.json as Array<{ Node: string; CheckID: string }>) {
        if (term !== this.term) return;
        if (c.CheckID !== serfHealthCheckId || ids.has(c.Node)) continue;
        this.o.logger.info({ event: 'server-catalog-reap', server: c.Node }, 'deregistering a node that is no server of this cluster');
        await this.o.propose({ type: 'catalog-deregister', node: c.Node, serviceId: '', checkId: '' });
      }
    } catch (error) {
      this.o.logger.warn({ event: 'server-catalog-failed', err: (error as Error).message }, 'reconciling the servers into the catalog failed; retrying later');
    }
  }

  private registration(server: ServerView): Extract<Command, { type: 'catalog-register' }> {
    const colon = server.address.lastIndexOf(':');
    const host = colon > 0 ? server.address.slice(0, colon).replace(/^\[|\]$/g, '') : server.address;
    const port = colon > 0 ? Number(server.address.slice(colon + 1)) : 0;
    const node: NewNode = {
      ID: '', Node: server.id, Address: host, Datacenter: this.o.datacenter,
      TaggedAddresses: host === '' ? {} : { lan: host, lan_ipv4: host, wan: host, wan_ipv4: host }, Meta: { 'consul-network-segment': '' },
    };
    const service: NewService = {
      Kind: '', ID: 'consul', Service: 'consul', Tags: [], Address: '', TaggedAddresses: {}, Meta: {}, Port: Number.isSafeInteger(port) && port > 0 ? port : 0,
      Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false,
    };
    const check: NewCheck = {
      CheckID: serfHealthCheckId, Name: serfHealthName, Status: server.alive ? 'passing' : 'critical', Notes: '',
      Output: server.alive ? aliveOutput : failedOutput, ServiceID: '', Type: '', Definition: emptyDefinition,
    };
    return { type: 'catalog-register', node, skipNodeUpdate: false, service, checks: [check] };
  }
}

/** Whether the catalog's view of a server (node JSON, its checks) differs from the registration. */
function differs(want: Extract<Command, { type: 'catalog-register' }>, nodeJson: unknown, checksJson: unknown): boolean {
  if (nodeJson === null || typeof nodeJson !== 'object') return true;
  const n = (nodeJson as { Node: Record<string, unknown>; Services: Record<string, Record<string, unknown>> });
  if (n.Node['Address'] !== want.node.Address || n.Node['Datacenter'] !== want.node.Datacenter) return true;
  if (JSON.stringify(n.Node['TaggedAddresses'] ?? {}) !== JSON.stringify(want.node.TaggedAddresses)) return true;
  const svc = n.Services['consul'];
  if (svc === undefined || svc['Port'] !== want.service?.Port) return true;
  const check = (checksJson as Array<Record<string, unknown>>).find((c) => c['CheckID'] === serfHealthCheckId);
  const wantCheck = want.checks[0];
  return check === undefined || check['Status'] !== wantCheck?.Status || check['Output'] !== wantCheck?.Output;
}
