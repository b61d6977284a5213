// /v1/agent/service* and /v1/agent/check*: Consul's agent/agent_endpoint.go over this agent's local
// state (agent-api.ts; kept, run and synced to the catalog by src/agent/local-agent.ts).
//
//   GET /v1/agent/services                       {id: service} registered through this agent; ?filter
//   GET /v1/agent/service/<id>                   the service, or 404 "unknown service ID: <id>"
//   GET /v1/agent/checks                         {id: check} with the current status; ?filter
//   PUT /v1/agent/service/register               {ID, Name, Tags, Address, Port, Meta, Weights,
//                                                EnableTagOverride, TaggedAddresses, Check, Checks}
//   PUT /v1/agent/service/deregister/<id>        with its checks
//   PUT /v1/agent/check/register                 {ID|CheckID, Name, ServiceID, Notes, Status, TTL | HTTP
//                                                (Method, Header, TLSSkipVerify) | TCP, Interval, Timeout,
//                                                DeregisterCriticalServiceAfter}
//   PUT /v1/agent/check/deregister/<id>
//   PUT /v1/agent/check/pass|warn|fail/<id>?note= a TTL check's status
//   PUT /v1/agent/check/update/<id>              {Status, Output}
//   PUT /v1/agent/service/maintenance/<id>?enable=true|false&reason=
//   PUT /v1/agent/maintenance?enable=true|false&reason=
//
// As Consul: a service check's ID defaults to "service:<service ID>" (":<n>" from 1 with several), its
// name to "Service '<name>' check"; a check starts critical unless it gives a Status; intervals below 1s
// are 1s; HTTP and TCP checks time out after 10s unless they say otherwise; the methods are PUT only
// (python-consul 0.7's GETs get 405, as from Consul 1.0 on).
// ?filter (filter.ts) keeps the map entries whose values it matches, keys unchanged (Consul's
// bexpr Filter.Execute on a map); a bad one is a 400 `Failed to create boolean expression evaluator: ...`.
// Deliberate differences: script, Docker, gRPC, H2PING, UDP, OS-service and alias checks are refused
// with a 400 naming the field (Consul refuses scripts unless enabled, and runs the rest); every refusal
// is a 400 or 404 with Consul's text where it has one.

import type { CheckStatus, NewService } from '../fsm/index.js';
import { AgentError, type AgentCheckSpec, type LocalAgentApi } from './agent-api.js';
import { checkService, decodeService } from './catalog.js';
import { HttpError, badRequest } from './errors.js';
import { filterMapValues, filterParam, filterSchemas } from './filter.js';
import { decodeBody, decodeFailed, Fields } from './go-json.js';
import { emptyReply, jsonReply, type Reply, type RequestContext } from './reply.js';
import { catalogNameProblem } from '../snapshot/index.js';
import { validateCommand } from '../fsm/index.js';

const bodyMaxBytes = 64 * 1024;
/** Consul's checks.MinInterval. */
const minIntervalMs = 1_000;
/** Consul's default timeout of HTTP and TCP checks. */
const defaultTimeoutMs = 10_000;
/** Check fields of kinds Consul runs and we do not. */
const unsupportedKinds = ['Args', 'ScriptArgs', 'Script', 'DockerContainerID', 'GRPC', 'H2PING', 'UDP', 'OSService', 'AliasNode', 'AliasService'] as const;

function agentOf(ctx: RequestContext): LocalAgentApi {
  if (ctx.agent === undefined) throw new HttpError(501, 'this server runs no local agent');
  return ctx.agent;
}

async function run(f: () => Promise<void>): Promise<void> {
  try {
    await f();
  } catch (error) {
    if (error instanceof AgentError) throw new HttpError(error.status, error.message);
    throw error;
  }
}

function readBody(ctx: RequestContext): Promise<Buffer> {
  return ctx.readBody(bodyMaxBytes, () => new HttpError(413, `Request body too large, max size: ${bodyMaxBytes} bytes`));
}

function argument(ctx: RequestContext, prefix: string, what: string): string {
  const id = ctx.path.slice(prefix.length);
  if (id === '') throw badRequest(`Missing ${what}`);
  return id;
}

export async function handleAgentServices(ctx: RequestContext): Promise<Reply> {
  const agent = agentOf(ctx);
  const filter = filterParam(ctx, filterSchemas.service);
  return jsonReply(ctx, filterMapValues(filter, agent.services()));
}

export async function handleAgentService(ctx: RequestContext): Promise<Reply> {
  const id = argument(ctx, '/v1/agent/service/', 'service ID');
  const service = agentOf(ctx).service(id);
  if (service === undefined) throw new HttpError(404, `unknown service ID: ${id}`);
  return jsonReply(ctx, service);
}

export async function handleAgentChecks(ctx: RequestContext): Promise<Reply> {
  const agent = agentOf(ctx);
  const filter = filterParam(ctx, filterSchemas.check);
  return jsonReply(ctx, filterMapValues(filter, agent.checks()));
}

export async function handleAgentServiceRegister(ctx: RequestContext): Promise<Reply> {
  const agent = agentOf(ctx);
  const { service, checks } = parseServiceRegister(await readBody(ctx));
  await run(() => agent.registerService(service, checks));
  return emptyReply(200);
}

export async function handleAgentServiceDeregister(ctx: RequestContext): Promise<Reply> {
  const agent = agentOf(ctx);
  const id = argument(ctx, '/v1/agent/service/deregister/', 'service ID');
  await run(() => agent.deregisterService(id));
  return emptyReply(200);
}

export async function handleAgentCheckRegister(ctx: RequestContext): Promise<Reply> {
  const agent = agentOf(ctx);
  const check = parseCheckRegister(await readBody(ctx));
  await run(() => agent.registerCheck(check));
  return emptyReply(200);
}

export async function handleAgentCheckDeregister(ctx: RequestContext): Promise<Reply> {
  const agent = agentOf(ctx);
  const id = argument(ctx, '/v1/agent/check/deregister/', 'check ID');
  await run(() => agent.deregisterCheck(id));
  return emptyReply(200);
}

const ttlVerbs: ReadonlyArray<readonly [string, CheckStatus]> = [
  ['/v1/agent/check/pass/', 'passing'], ['/v1/agent/check/warn/', 'warning'], ['/v1/agent/check/fail/', 'critical'],
];

/** PUT /v1/agent/check/pass|warn|fail/<id>?note= */
export async function handleAgentCheckTtl(ctx: RequestContext): Promise<Reply> {
  const agent = agentOf(ctx);
  const [prefix, status] = ttlVerbs.find(([p]) => ctx.path.startsWith(p)) as readonly [string, CheckStatus];
  const id = argument(ctx, prefix, 'check ID');
  await run(() => agent.updateTtl(id, status, ctx.query.get('note')));
  return emptyReply(200);
}

/** PUT /v1/agent/check/update/<id> {Status, Output} */
export async function handleAgentCheckUpdate(ctx: RequestContext): Promise<Reply> {
  const agent = agentOf(ctx);
  const id = argument(ctx, '/v1/agent/check/update/', 'check ID');
  const body = decodeBody(await readBody(ctx));
  const status = body.text('Status');
  if (status !== 'passing' && status !== 'warning' && status !== 'critical') throw badRequest(`Invalid check status: '${status}'`);
  await run(() => agent.updateTtl(id, status, body.text('Output')));
  return emptyReply(200);
}

export async function handleAgentServiceMaintenance(ctx: RequestContext): Promise<Reply> {
  const agent = agentOf(ctx);
  const id = argument(ctx, '/v1/agent/service/maintenance/', 'service ID');
  const enable = enableParam(ctx);
  await run(() => agent.serviceMaintenance(id, enable, ctx.query.get('reason')));
  return emptyReply(200);
}

export async function handleAgentNodeMaintenance(ctx: RequestContext): Promise<Reply> {
  const agent = agentOf(ctx);
  const enable = enableParam(ctx);
  await run(() => agent.nodeMaintenance(enable, ctx.query.get('reason')));
  return emptyReply(200);
}

/** Consul's ?enable: required, a Go boolean. */
function enableParam(ctx: RequestContext): boolean {
  if (!ctx.query.has('enable')) throw badRequest('Missing value for enable');
  const value = ctx.query.get('enable');
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  throw badRequest('Invalid value for enable');
}

// ---------------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------------

/** PUT /v1/agent/service/register: Consul's ServiceDefinition (Name, not Service). */
export function parseServiceRegister(body: Buffer): { service: NewService; checks: AgentCheckSpec[] } {
  const f = decodeBody(body);
  const decoded = decodeService(f, 'Name');
  if (decoded.value.Service === '') throw badRequest('Missing service name');
  checkService(decoded);
  const service = decoded.value;
  // The same checks a catalog register of it gets (map keys, names), so what is kept can always be synced.
  const problem = validateCommand({
    type: 'catalog-register', node: { ID: '', Node: 'agent', Address: '', Datacenter: '', TaggedAddresses: {}, Meta: {} }, skipNodeUpdate: true, service, checks: [],
  });
  if (problem !== undefined) throw badRequest(problem.message.replace(/^Register command: /, ''));
  const raw = [...(f.struct('Check') === undefined ? [] : [f.struct('Check') as Fields]), ...f.structList('Checks')];
  const checks = raw.map((c, i) => {
    const id = raw.length === 1 ? `service:${service.ID}` : `service:${service.ID}:${i + 1}`;
    return parseCheckFields(c, { id, name: `Service '${service.Service}' check`, serviceId: service.ID });
  });
  return { service, checks };
}

/** PUT /v1/agent/check/register: Consul's CheckDefinition. */
export function parseCheckRegister(body: Buffer): AgentCheckSpec {
  const f = decodeBody(body);
  if (f.text('Name') === '') throw badRequest('Missing check name');
  return parseCheckFields(f, { id: '', name: '', serviceId: '' });
}

function parseCheckFields(c: Fields, defaults: { id: string; name: string; serviceId: string }): AgentCheckSpec {
  for (const kind of unsupportedKinds) {
    if (c.has(kind)) throw badRequest(`${c.path === '' ? '' : `${c.path}: `}${kind} checks are not supported by Conclave: use a TTL, HTTP or TCP check`);
  }
  const name = c.text('Name') || defaults.name;
  const id = c.text('CheckID') || c.text('ID') || defaults.id || name;
  const problem = catalogNameProblem(id);
  if (problem !== undefined) throw badRequest(`check ID ${problem}`);
  const serviceId = c.text('ServiceID') || defaults.serviceId;
  const status = c.text('Status');
  if (status !== '' && status !== 'passing' && status !== 'warning' && status !== 'critical') throw badRequest(`Invalid check status: '${status}'`);
  const ttlMs = durationMs(c, 'TTL');
  const http = c.text('HTTP');
  const tcp = c.text('TCP');
  const intervalMs = durationMs(c, 'Interval');
  const kinds = [ttlMs > 0, http !== '', tcp !== ''].filter(Boolean).length;
  if (kinds !== 1 || (ttlMs === 0 && intervalMs === 0)) {
    throw badRequest('Must provide TTL or HTTP/TCP and Interval!');
  }
  const header = c.map('Header', (v, where) => {
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw decodeFailed(`${where} must be a list of strings`);
    return v as string[];
  });
  const timeoutMs = durationMs(c, 'Timeout');
  if (http !== '' && !/^https?:\/\/[^\s]+$/.test(http)) throw badRequest(`HTTP check URL ${JSON.stringify(http)} must be an http:// or https:// URL`);
  const method = c.text('Method');
  if (method !== '' && !/^[A-Za-z]+$/.test(method)) throw badRequest(`Invalid HTTP method ${JSON.stringify(method)}`);
  for (const [name, values] of Object.entries(header)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || values.some((v) => /[\r\n\0]/.test(v))) throw badRequest(`Invalid HTTP check header ${JSON.stringify(name)}`);
  }
  return {
    CheckID: id,
    Name: name,
    ServiceID: serviceId,
    Notes: c.text('Notes'),
    kind: ttlMs > 0 ? 'ttl' : http !== '' ? 'http' : 'tcp',
    ttlMs,
    http,
    method,
    header,
    tlsSkipVerify: c.bool('TLSSkipVerify'),
    tcp,
    intervalMs: ttlMs > 0 ? 0 : Math.max(minIntervalMs, intervalMs),
    timeoutMs: timeoutMs > 0 ? timeoutMs : defaultTimeoutMs,
    deregisterCriticalServiceAfterMs: durationMs(c, 'DeregisterCriticalServiceAfter'),
    initialStatus: status === '' ? 'critical' : status,
  };
}

/** Longest duration a check takes: what a Node timer can wait (about 24.8 days); longer ones would fire at once. */
const maxDurationMs = 2 ** 31 - 1;

/** A Go duration string ("10s") or whole nanoseconds, in ms. */
function durationMs(c: Fields, name: string): number {
  const ms = Math.floor(c.duration(name) / 1e6);
  if (ms > maxDurationMs) throw badRequest(`${c.path === '' ? '' : `${c.path}.`}${name} is longer than ${maxDurationMs} ms (about 24.8 days), the longest Conclave can wait`);
  return ms;
}
