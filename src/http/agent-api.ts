// The seam between the /v1/agent/service* and /v1/agent/check* endpoints and the agent's local state
// (src/agent/local-agent.ts): what this agent registered itself, the checks it runs, and their sync to
// the catalog. The HTTP layer parses requests into these shapes; the agent keeps, runs and syncs them.

import type { CheckStatus, NewService } from '../fsm/index.js';

/** How the agent runs a check: Consul's CheckType, the script-free kinds. Durations in milliseconds. */
export interface AgentCheckSpec {
  readonly CheckID: string;
  readonly Name: string;
  /** '' for a node-level check. */
  readonly ServiceID: string;
  readonly Notes: string;
  /** 'maintenance': a service's or the node's maintenance-mode check, always critical. */
  readonly kind: 'ttl' | 'http' | 'tcp' | 'maintenance';
  readonly ttlMs: number;
  readonly http: string;
  readonly method: string;
  readonly header: Readonly<Record<string, readonly string[]>>;
  readonly tlsSkipVerify: boolean;
  readonly tcp: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** 0: never; else the service is deregistered once this check has been critical that long. */
  readonly deregisterCriticalServiceAfterMs: number;
  /** The status before the first run (Consul: critical unless the definition says otherwise). */
  readonly initialStatus: CheckStatus;
}

/** Why an agent call was refused: the HTTP status and Consul's text. */
export class AgentError extends Error {
  override readonly name = 'AgentError';
  constructor(readonly status: 400 | 404 | 500, message: string) {
    super(message);
  }
}

export interface LocalAgentApi {
  /** GET /v1/agent/services: Consul's map of service ID to api.AgentService. */
  services(): Record<string, unknown>;
  /** GET /v1/agent/service/<id>: one api.AgentService, undefined when unknown. */
  service(id: string): unknown;
  /** GET /v1/agent/checks: Consul's map of check ID to api.AgentCheck, with the current status. */
  checks(): Record<string, unknown>;
  /** PUT /v1/agent/service/register: replaces a service of that ID and its checks. */
  registerService(service: NewService, checks: readonly AgentCheckSpec[]): Promise<void>;
  /** PUT /v1/agent/service/deregister/<id>: with its checks. AgentError 404 when unknown. */
  deregisterService(id: string): Promise<void>;
  /** PUT /v1/agent/check/register. AgentError 400 when its ServiceID is not a service of this agent. */
  registerCheck(check: AgentCheckSpec): Promise<void>;
  /** PUT /v1/agent/check/deregister/<id>. AgentError 404 when unknown. */
  deregisterCheck(id: string): Promise<void>;
  /** PUT /v1/agent/check/pass|warn|fail|update/<id>: a TTL check's status. */
  updateTtl(id: string, status: CheckStatus, output: string): Promise<void>;
  /** PUT /v1/agent/service/maintenance/<id>?enable=&reason= */
  serviceMaintenance(id: string, enable: boolean, reason: string): Promise<void>;
  /** PUT /v1/agent/maintenance?enable=&reason= */
  nodeMaintenance(enable: boolean, reason: string): Promise<void>;
}
