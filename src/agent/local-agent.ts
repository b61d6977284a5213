// The agent's local state (Consul's agent/local.State plus its check runners): the services and checks
// clients registered through /v1/agent/*, the checks this agent runs, and their sync to the catalog.
//
// - Kept on disk (<data_dir>/agent-services.json, written atomically) so a server's own registrations
//   survive its restart, as Consul persists them under data_dir/services and data_dir/checks.
// - Checks run here: HTTP (2xx passing, 429 warning, anything else critical) and TCP (connect) on their
//   interval with their timeout; TTL checks turn critical when not refreshed in time ("TTL expired").
//   A service whose check has been critical for DeregisterCriticalServiceAfter is deregistered.
// - Anti-entropy (Consul's agent/ae): whenever local state changes, and every syncIntervalMs, the
//   catalog's view of this node is compared with the local state and brought in line through Raft:
//   missing or different services and checks are registered, ones the agent no longer has are
//   deregistered (but for the server's own `consul` service and `serfHealth`, which the leader keeps).
//   A failed sync (no leader, say) is retried on the next round; nothing is lost, since the local state
//   is the source.

import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { checkJson, type CatalogQuery, type CheckStatus, type Command, type NewCheck, type NewService } from '../fsm/index.js';
import { AgentError, type AgentCheckSpec, type LocalAgentApi } from '../http/index.js';
import { catalogNameProblem, emptyDefinition } from '../snapshot/index.js';
import { writeFileAtomic } from '../storage/index.js';

/** Consul's check output limit (structs.DefaultBufSize). */
const outputMaxChars = 4096;
const fileName = 'agent-services.json';
const fileVersion = 1;
/** The server's own registrations, kept by the leader (server-catalog.ts), never touched by the sync. */
const serverOwnedServices = new Set(['consul']);
const serverOwnedChecks = new Set(['serfHealth']);

export interface LocalAgentOptions {
  readonly dataDir: string;
  readonly nodeName: string;
  readonly datacenter: string;
  /** This node's address, for a register that must create the node. */
  readonly address: () => string;
  readonly apply: (command: Command) => Promise<unknown>;
  readonly read: (q: CatalogQuery) => Promise<unknown>;
  readonly syncIntervalMs: number;
  readonly logger: Logger;
}

interface CheckState {
  spec: AgentCheckSpec;
  status: CheckStatus;
  output: string;
  /** When the check last became critical (ms), 0 when it is not critical. */
  criticalSince: number;
  timer: NodeJS.Timeout | undefined;
}

export class LocalAgent implements LocalAgentApi {
  private readonly serviceDefs = new Map<string, NewService>();
  private readonly checkStates = new Map<string, CheckState>();
  private syncTimer: NodeJS.Timeout | undefined;
  private reapTimer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  private syncAgain = false;
  private closed = false;
  /** Serializes changes to the local state and their persistence. */
  private chain: Promise<void> = Promise.resolve();

  private constructor(private readonly o: LocalAgentOptions) {}

  /** Loads the persisted registrations (if any), starts their checks and the sync. */
  static async start(o: LocalAgentOptions): Promise<LocalAgent> {
    const agent = new LocalAgent(o);
    await agent.load();
    agent.syncTimer = setInterval(() => agent.requestSync(), o.syncIntervalMs);
    agent.syncTimer.unref();
    agent.reapTimer = setInterval(() => agent.reapCritical(), 1_000);
    agent.reapTimer.unref();
    agent.requestSync();
    return agent;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.syncTimer !== undefined) clearInterval(this.syncTimer);
    if (this.reapTimer !== undefined) clearInterval(this.reapTimer);
    for (const c of this.checkStates.values()) if (c.timer !== undefined) clearTimeout(c.timer);
    await this.chain;
    await this.syncing;
  }

  // ---------------------------------------------------------------------------------------------
  // LocalAgentApi
  // ---------------------------------------------------------------------------------------------

  services(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [id, s] of [...this.serviceDefs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) out[id] = this.serviceJson(s);
    return out;
  }

  service(id: string): unknown {
    const s = this.serviceDefs.get(id);
    return s === undefined ? undefined : this.serviceJson(s);
  }

  checks(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [id, c] of [...this.checkStates].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const svc = c.spec.ServiceID === '' ? undefined : this.serviceDefs.get(c.spec.ServiceID);
      out[id] = {
        Node: this.o.nodeName, CheckID: id, Name: c.spec.Name, Status: c.status, Notes: c.spec.Notes, Output: c.output,
        ServiceID: c.spec.ServiceID, ServiceName: svc?.Service ?? '', ServiceTags: svc === undefined ? [] : [...svc.Tags],
        Type: c.spec.kind === 'maintenance' ? '' : c.spec.kind, Definition: {}, CreateIndex: 0, ModifyIndex: 0,
      };
    }
    return out;
  }

  registerService(service: NewService, checks: readonly AgentCheckSpec[]): Promise<void> {
    return this.change(() => {
      // Re-registering replaces the service and the checks it had (Consul's AddService with replace).
      for (const [id, c] of this.checkStates) if (c.spec.ServiceID === service.ID && c.spec.kind !== 'maintenance') this.dropCheck(id);
      this.serviceDefs.set(service.ID, service);
      for (const spec of checks) this.addCheck(spec);
    });
  }

  deregisterService(id: string): Promise<void> {
    return this.change(() => {
      if (!this.serviceDefs.has(id)) throw new AgentError(404, `Unknown service ID ${JSON.stringify(id)}. Ensure that the service ID is passed, not the service name.`);
      this.serviceDefs.delete(id);
      for (const [checkId, c] of this.checkStates) if (c.spec.ServiceID === id) this.dropCheck(checkId);
    });
  }

  registerCheck(check: AgentCheckSpec): Promise<void> {
    return this.change(() => {
      if (check.ServiceID !== '' && !this.serviceDefs.has(check.ServiceID)) {
        throw new AgentError(400, `ServiceID ${JSON.stringify(check.ServiceID)} does not exist`);
      }
      if (this.checkStates.has(check.CheckID)) this.dropCheck(check.CheckID);
      this.addCheck(check);
    });
  }

  deregisterCheck(id: string): Promise<void> {
    return this.change(() => {
      if (!this.checkStates.has(id)) throw new AgentError(404, `Unknown check ID ${JSON.stringify(id)}. Ensure that the check ID is passed, not the check name.`);
      this.dropCheck(id);
    });
  }

  async updateTtl(id: string, status: CheckStatus, output: string): Promise<void> {
    const c = this.checkStates.get(id);
    if (c === undefined) throw new AgentError(404, `Unknown check ID ${JSON.stringify(id)}. Ensure that the check ID is passed, not the check name.`);
    if (c.spec.kind !== 'ttl') throw new AgentError(400, `CheckID ${JSON.stringify(id)} does not have associated TTL`);
    this.setStatus(c, status, truncate(output));
    this.armTtl(c);
  }

  serviceMaintenance(id: string, enable: boolean, reason: string): Promise<void> {
    return this.change(() => {
      if (!this.serviceDefs.has(id)) throw new AgentError(404, `No service registered with ID ${JSON.stringify(id)}`);
      const checkId = `_service_maintenance:${id}`;
      if (enable && catalogNameProblem(checkId) !== undefined) throw new AgentError(400, `the maintenance check ID ${JSON.stringify(checkId)} ${catalogNameProblem(checkId)}`);
      if (!enable) {
        if (this.checkStates.has(checkId)) this.dropCheck(checkId);
        return;
      }
      this.addCheck(maintenanceSpec(checkId, 'Service Maintenance Mode', id,
        reason === '' ? 'Maintenance mode is enabled for this service, but no reason was provided. This is a default message.' : reason));
    });
  }

  nodeMaintenance(enable: boolean, reason: string): Promise<void> {
    return this.change(() => {
      const checkId = '_node_maintenance';
      if (!enable) {
        if (this.checkStates.has(checkId)) this.dropCheck(checkId);
        return;
      }
      this.addCheck(maintenanceSpec(checkId, 'Node Maintenance Mode', '',
        reason === '' ? 'Maintenance mode is enabled for this node, but no reason was provided. This is a default message.' : reason));
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Local state
  // ---------------------------------------------------------------------------------------------

  /** Runs a change of the local state, persists it, and asks for a sync; changes run one at a time. */
  private change(f: () => void): Promise<void> {
    const run = this.chain.then(async () => {
      if (this.closed) throw new AgentError(500, 'the agent is shutting down');
      f();
      await this.persist();
      this.requestSync();
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  private addCheck(spec: AgentCheckSpec): void {
    const existing = this.checkStates.get(spec.CheckID);
    if (existing?.timer !== undefined) clearTimeout(existing.timer);
    const c: CheckState = {
      spec,
      status: spec.kind === 'maintenance' ? 'critical' : existing?.status ?? spec.initialStatus,
      output: existing?.output ?? '',
      criticalSince: 0,
      timer: undefined,
    };
    if (c.status === 'critical') c.criticalSince = performance.now();
    this.checkStates.set(spec.CheckID, c);
    if (spec.kind === 'ttl') this.armTtl(c);
    else if (spec.kind === 'http' || spec.kind === 'tcp') this.schedule(c, 0);
  }

  private dropCheck(id: string): void {
    const c = this.checkStates.get(id);
    if (c?.timer !== undefined) clearTimeout(c.timer);
    this.checkStates.delete(id);
  }

  private setStatus(c: CheckState, status: CheckStatus, output: string): void {
    if (status === 'critical' && c.status !== 'critical') c.criticalSince = performance.now();
    if (status !== 'critical') c.criticalSince = 0;
    const changed = c.status !== status || c.output !== output;
    c.status = status;
    c.output = output;
    if (changed) this.requestSync();
  }

  private armTtl(c: CheckState): void {
    if (c.timer !== undefined) clearTimeout(c.timer);
    c.timer = setTimeout(() => {
      if (this.checkStates.get(c.spec.CheckID) !== c) return;
      this.setStatus(c, 'critical', 'TTL expired');
    }, c.spec.ttlMs);
    c.timer.unref();
  }

  private schedule(c: CheckState, delayMs: number): void {
    c.timer = setTimeout(() => {
      if (this.closed || this.checkStates.get(c.spec.CheckID) !== c) return;
      void this.runCheck(c.spec)
        .catch((error: unknown) => ({ status: 'critical' as const, output: `check failed: ${(error as Error).message}` }))
        .then(({ status, output }) => {
          if (this.checkStates.get(c.spec.CheckID) !== c) return;
          this.setStatus(c, status, truncate(output));
          if (!this.closed) this.schedule(c, c.spec.intervalMs);
        });
    }, delayMs);
    c.timer.unref();
  }

  private runCheck(spec: AgentCheckSpec): Promise<{ status: CheckStatus; output: string }> {
    return spec.kind === 'http' ? runHttpCheck(spec) : runTcpCheck(spec);
  }

  /** Deregisters services whose check has been critical longer than its DeregisterCriticalServiceAfter. */
  private reapCritical(): void {
    const now = performance.now();
    for (const c of this.checkStates.values()) {
      const after = c.spec.deregisterCriticalServiceAfterMs;
      if (after <= 0 || c.spec.ServiceID === '' || c.criticalSince === 0 || now - c.criticalSince < after) continue;
      const id = c.spec.ServiceID;
      this.o.logger.info({ event: 'agent-service-reaped', service: id, check: c.spec.CheckID }, 'deregistering a service whose check stayed critical');
      this.deregisterService(id).catch(() => undefined);
      return;
    }
  }

  private async persist(): Promise<void> {
    const body = {
      Version: fileVersion,
      Services: [...this.serviceDefs.values()],
      Checks: [...this.checkStates.values()].map((c) => c.spec),
    };
    await writeFileAtomic(join(this.o.dataDir, fileName), `${JSON.stringify(body, null, 2)}\n`);
  }

  private async load(): Promise<void> {
    const file = join(this.o.dataDir, fileName);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      return;
    }
    let body: { Version?: unknown; Services?: unknown; Checks?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch (e) {
      throw new Error(`${file} is not valid JSON (${(e as Error).message}); fix or remove it to start this agent`);
    }
    if (body.Version !== fileVersion || !Array.isArray(body.Services) || !Array.isArray(body.Checks)) {
      throw new Error(`${file} is not an agent services file of version ${fileVersion}; fix or remove it to start this agent`);
    }
    const bad = (what: string): Error => new Error(`${file} holds ${what}; fix or remove it to start this agent`);
    for (const [i, s] of (body.Services as unknown[]).entries()) {
      const problem = serviceProblem(s);
      if (problem !== undefined) throw bad(`a malformed service (Services[${i}]: ${problem})`);
      const service = s as NewService;
      this.serviceDefs.set(service.ID, service);
    }
    for (const [i, c] of (body.Checks as unknown[]).entries()) {
      const problem = checkSpecProblem(c);
      if (problem !== undefined) throw bad(`a malformed check (Checks[${i}]: ${problem})`);
      const spec = c as AgentCheckSpec;
      if (spec.ServiceID !== '' && !this.serviceDefs.has(spec.ServiceID)) throw bad(`check ${JSON.stringify(spec.CheckID)} of a service it does not hold`);
      this.addCheck(spec);
    }
    this.o.logger.info({ event: 'agent-services-loaded', services: this.serviceDefs.size, checks: this.checkStates.size }, 'loaded the agent\'s own registrations');
  }

  private serviceJson(s: NewService): Record<string, unknown> {
    return {
      ...(s.Kind === '' ? {} : { Kind: s.Kind }),
      ID: s.ID, Service: s.Service, Tags: [...s.Tags], Meta: { ...s.Meta }, Port: s.Port, Address: s.Address,
      ...(Object.keys(s.TaggedAddresses).length === 0 ? {} : { TaggedAddresses: s.TaggedAddresses }),
      Weights: s.Weights, EnableTagOverride: s.EnableTagOverride, Datacenter: this.o.datacenter,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Anti-entropy
  // ---------------------------------------------------------------------------------------------

  /** Syncs soon; a request during a sync makes one more round after it. */
  requestSync(): void {
    if (this.closed) return;
    if (this.syncing !== undefined) {
      this.syncAgain = true;
      return;
    }
    this.syncing = (async () => {
      do {
        this.syncAgain = false;
        try {
          await this.syncOnce();
        } catch (error) {
          this.o.logger.debug({ event: 'agent-sync-failed', err: (error as Error).message }, 'syncing the agent\'s registrations failed; retrying later');
          break;
        }
      } while (this.syncAgain && !this.closed);
    })().finally(() => {
      this.syncing = undefined;
    });
  }

  /** Resolves once the local state and the catalog agree (a test hook); rejects after `timeoutMs`. */
  async synced(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      await this.syncing;
      if (await this.inSync()) return;
      this.requestSync();
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('the agent\'s registrations did not reach the catalog in time');
  }

  private async catalogView(): Promise<{ services: Map<string, Record<string, unknown>>; checks: Map<string, Record<string, unknown>> }> {
    const node = (await this.o.read({ what: 'node', node: this.o.nodeName })) as { Services?: Record<string, Record<string, unknown>> } | null;
    const checks = (await this.o.read({ what: 'health-node', node: this.o.nodeName })) as Array<Record<string, unknown>>;
    return {
      services: new Map(Object.entries(node?.Services ?? {})),
      checks: new Map(checks.map((c) => [String(c['CheckID']), c])),
    };
  }

  private async inSync(): Promise<boolean> {
    const view = await this.catalogView();
    return this.plan(view).length === 0;
  }

  private async syncOnce(): Promise<void> {
    const view = await this.catalogView();
    let failed: unknown;
    for (const command of this.plan(view)) {
      if (this.closed) return;
      // One refused command must not keep the others from the catalog.
      await this.o.apply(command).catch((error: unknown) => {
        failed ??= error;
      });
    }
    if (failed !== undefined) throw failed;
  }

  /** The commands that bring the catalog's view of this node in line with the local state. */
  private plan(view: { services: Map<string, Record<string, unknown>>; checks: Map<string, Record<string, unknown>> }): Command[] {
    const commands: Command[] = [];
    const node = { ID: '', Node: this.o.nodeName, Address: this.o.address(), Datacenter: this.o.datacenter, TaggedAddresses: {}, Meta: {} };
    for (const s of this.serviceDefs.values()) {
      const have = view.services.get(s.ID);
      const checks = [...this.checkStates.values()].filter((c) => c.spec.ServiceID === s.ID);
      const serviceDiffers = have === undefined || !sameService(have, s);
      const checksDiffer = checks.some((c) => !sameCheck(view.checks.get(c.spec.CheckID), c));
      if (serviceDiffers || checksDiffer) {
        commands.push({ type: 'catalog-register', node, skipNodeUpdate: true, service: s, checks: checks.map(toNewCheck) });
      }
    }
    const nodeChecks = [...this.checkStates.values()].filter((c) => c.spec.ServiceID === '' && !sameCheck(view.checks.get(c.spec.CheckID), c));
    if (nodeChecks.length > 0) commands.push({ type: 'catalog-register', node, skipNodeUpdate: true, checks: nodeChecks.map(toNewCheck) });
    for (const id of view.services.keys()) {
      if (!this.serviceDefs.has(id) && !serverOwnedServices.has(id)) commands.push({ type: 'catalog-deregister', node: this.o.nodeName, serviceId: id, checkId: '' });
    }
    for (const [id, c] of view.checks) {
      const ownedByServer = serverOwnedChecks.has(id) || serverOwnedServices.has(String(c['ServiceID']));
      const goesWithService = c['ServiceID'] !== '' && !this.serviceDefs.has(String(c['ServiceID']));
      if (!this.checkStates.has(id) && !ownedByServer && !goesWithService) {
        commands.push({ type: 'catalog-deregister', node: this.o.nodeName, serviceId: '', checkId: id });
      }
    }
    return commands;
  }
}

function maintenanceSpec(checkId: string, name: string, serviceId: string, notes: string): AgentCheckSpec {
  return {
    CheckID: checkId, Name: name, ServiceID: serviceId, Notes: notes, kind: 'maintenance', ttlMs: 0, http: '', method: '', header: {},
    tlsSkipVerify: false, tcp: '', intervalMs: 0, timeoutMs: 0, deregisterCriticalServiceAfterMs: 0, initialStatus: 'critical',
  };
}

function toNewCheck(c: CheckState): NewCheck {
  const s = c.spec;
  const ns = (ms: number): number => ms * 1_000_000;
  return {
    CheckID: s.CheckID, Name: s.Name, Status: c.status, Notes: s.Notes, Output: c.output, ServiceID: s.ServiceID,
    Type: s.kind === 'maintenance' ? '' : s.kind,
    Definition: s.kind === 'http' || s.kind === 'tcp'
      ? { ...emptyDefinition, HTTP: s.http, Method: s.method, TLSSkipVerify: s.tlsSkipVerify, TCP: s.tcp, Interval: ns(s.intervalMs), Timeout: ns(s.timeoutMs), DeregisterCriticalServiceAfter: ns(s.deregisterCriticalServiceAfterMs) }
      : { ...emptyDefinition, DeregisterCriticalServiceAfter: ns(s.deregisterCriticalServiceAfterMs) },
  };
}

function sameService(have: Record<string, unknown>, s: NewService): boolean {
  const same = (a: unknown, b: unknown): boolean => JSON.stringify(a ?? null) === JSON.stringify(b);
  return have['Service'] === s.Service && have['Port'] === s.Port && have['Address'] === s.Address
    && have['EnableTagOverride'] === s.EnableTagOverride && (have['Kind'] ?? '') === s.Kind
    && same(have['Tags'] ?? [], s.Tags) && same(have['Meta'] ?? {}, s.Meta)
    && same(have['TaggedAddresses'] ?? {}, s.TaggedAddresses) && same(have['Weights'], s.Weights);
}

function sameCheck(have: Record<string, unknown> | undefined, c: CheckState): boolean {
  if (have === undefined) return false;
  // How the catalog would show this check (its JSON Definition and Type), to compare like with like.
  const want = checkJson({ ...toNewCheck(c), Node: '', ServiceName: '', ServiceTags: [], CreateIndex: 0, ModifyIndex: 0 });
  return have['Status'] === c.status && have['Output'] === c.output && have['Name'] === c.spec.Name
    && have['Notes'] === c.spec.Notes && have['ServiceID'] === c.spec.ServiceID && have['Type'] === want['Type']
    && JSON.stringify(have['Definition'] ?? {}) === JSON.stringify(want['Definition']);
}

function runHttpCheck(spec: AgentCheckSpec): Promise<{ status: CheckStatus; output: string }> {
  return new Promise((resolve) => {
    const method = spec.method === '' ? 'GET' : spec.method;
    let url: URL;
    try {
      url = new URL(spec.http);
    } catch {
      resolve({ status: 'critical', output: `invalid HTTP check URL ${JSON.stringify(spec.http)}` });
      return;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      resolve({ status: 'critical', output: `HTTP check URL ${JSON.stringify(spec.http)} is not http:// or https://` });
      return;
    }
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const headers: Record<string, string[]> = { 'User-Agent': ['Consul Health Check'], Accept: ['text/plain, text/*, */*'] };
    for (const [k, v] of Object.entries(spec.header)) headers[k] = [...v];
    const req = send(url, { method, headers, timeout: spec.timeoutMs, ...(url.protocol === 'https:' ? { rejectUnauthorized: !spec.tlsSkipVerify } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < outputMaxChars) body += chunk;
      });
      res.on('end', () => {
        const code = res.statusCode ?? 0;
        const output = `HTTP ${method} ${spec.http}: ${code} ${res.statusMessage ?? ''} Output: ${body}`;
        resolve({ status: code >= 200 && code < 300 ? 'passing' : code === 429 ? 'warning' : 'critical', output });
      });
      res.on('error', (e) => resolve({ status: 'critical', output: `HTTP ${method} ${spec.http}: ${e.message}` }));
    });
    req.on('timeout', () => req.destroy(new Error(`request timed out after ${spec.timeoutMs} ms`)));
    // The timeout above is per socket read; this one bounds the whole exchange, as Go's Client.Timeout.
    const deadline = setTimeout(() => req.destroy(new Error(`no complete answer within ${spec.timeoutMs} ms`)), spec.timeoutMs);
    deadline.unref();
    req.on('close', () => clearTimeout(deadline));
    req.on('error', (e) => resolve({ status: 'critical', output: `HTTP ${method} ${spec.http}: ${e.message}` }));
    req.end();
  });
}

function runTcpCheck(spec: AgentCheckSpec): Promise<{ status: CheckStatus; output: string }> {
  return new Promise((resolve) => {
    const colon = spec.tcp.lastIndexOf(':');
    const host = colon > 0 ? spec.tcp.slice(0, colon).replace(/^\[|\]$/g, '') : spec.tcp;
    const port = Number(spec.tcp.slice(colon + 1));
    if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
      resolve({ status: 'critical', output: `invalid TCP check address ${JSON.stringify(spec.tcp)}` });
      return;
    }
    const socket = connect({ host, port });
    const done = (status: CheckStatus, output: string): void => {
      socket.destroy();
      resolve({ status, output });
    };
    socket.setTimeout(spec.timeoutMs, () => done('critical', `dial tcp ${spec.tcp}: i/o timeout`));
    socket.once('connect', () => done('passing', `TCP connect ${spec.tcp}: Success`));
    socket.once('error', (e) => done('critical', `dial tcp ${spec.tcp}: ${e.message}`));
  });
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isText = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isTextMap = (v: unknown): boolean => isRecord(v) && Object.values(v).every(isText);

/** What is wrong with a persisted service (the shape registerService keeps), or undefined. */
function serviceProblem(v: unknown): string | undefined {
  if (!isRecord(v)) return 'not an object';
  for (const f of ['Kind', 'ID', 'Service', 'Address'] as const) if (!isText(v[f])) return `${f} is not a string`;
  if (catalogNameProblem(v['ID'] as string) !== undefined) return 'ID is not a valid service ID';
  if (!Array.isArray(v['Tags']) || !v['Tags'].every(isText)) return 'Tags is not a list of strings';
  if (!isTextMap(v['Meta'])) return 'Meta is not a map of strings';
  if (!isRecord(v['TaggedAddresses']) || !Object.values(v['TaggedAddresses']).every((a) => isRecord(a) && isText(a['Address']) && isCount(a['Port']))) {
    return 'TaggedAddresses is not a map of {Address, Port}';
  }
  if (!isCount(v['Port'])) return 'Port is not a count';
  const w = v['Weights'];
  if (!isRecord(w) || !isCount(w['Passing']) || !isCount(w['Warning'])) return 'Weights is not {Passing, Warning}';
  if (typeof v['EnableTagOverride'] !== 'boolean') return 'EnableTagOverride is not a boolean';
  return undefined;
}

/** What is wrong with a persisted check spec, or undefined. */
function checkSpecProblem(v: unknown): string | undefined {
  if (!isRecord(v)) return 'not an object';
  for (const f of ['CheckID', 'Name', 'ServiceID', 'Notes', 'http', 'method', 'tcp'] as const) if (!isText(v[f])) return `${f} is not a string`;
  if (catalogNameProblem(v['CheckID'] as string) !== undefined) return 'CheckID is not a valid check ID';
  if (!['ttl', 'http', 'tcp', 'maintenance'].includes(v['kind'] as string)) return 'kind is not ttl, http, tcp or maintenance';
  for (const f of ['ttlMs', 'intervalMs', 'timeoutMs', 'deregisterCriticalServiceAfterMs'] as const) if (!isCount(v[f])) return `${f} is not a count`;
  if (v['kind'] === 'ttl' && (v['ttlMs'] as number) === 0) return 'a TTL check has no TTL';
  if ((v['kind'] === 'http' || v['kind'] === 'tcp') && (v['intervalMs'] as number) === 0) return 'an HTTP or TCP check has no interval';
  if (typeof v['tlsSkipVerify'] !== 'boolean') return 'tlsSkipVerify is not a boolean';
  if (!isRecord(v['header']) || !Object.values(v['header']).every((h) => Array.isArray(h) && h.every(isText))) return 'header is not a map of string lists';
  if (!['passing', 'warning', 'critical'].includes(v['initialStatus'] as string)) return 'initialStatus is not passing, warning or critical';
  return undefined;
}

/** Output cut to Consul's limit, never inside a surrogate pair (which would not survive UTF-8). */
function truncate(output: string): string {
  if (output.length <= outputMaxChars) return output;
  const end = /[\uD800-\uDBFF]/.test(output[outputMaxChars - 1] ?? '') ? outputMaxChars - 1 : outputMaxChars;
  return output.slice(0, end);
}
