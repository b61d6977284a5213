// /v1/health/*: Consul's agent/health_endpoint.go.
//
//   GET /v1/health/node/<node>         the node's checks; blocking
//   GET /v1/health/checks/<service>    the service's checks; blocking
//   GET /v1/health/service/<service>   [{Node, Service, Checks}] (?tag repeatable: every tag must match;
//                                      ?passing: only instances whose checks all pass); blocking
//   GET /v1/health/state/<state>       checks in a state: any, passing, warning or critical; blocking
//
// The FSM shapes the JSON (ServerApi.catalogRead). ?near and ?node-meta are accepted and ignored.
// ?filter (filter.ts, applied by catalogReply) keeps the checks, or the {Node, Service, Checks} entries,
// it matches; a selector through Checks (`Checks.Status == critical`) holds when it holds for any check.
// ?passing is Consul's getBoolQueryParam: present without a value or with a true spelling filters,
// a false spelling does not, anything else is Consul's 400 "Invalid value for ?passing".
// Difference: a state other than the four is a 400 "Invalid check state" (Consul answers an empty list,
// which hides a typo such as "critcal" behind a healthy-looking answer).

import type { CheckStatus } from '../fsm/index.js';
import { badRequest } from './errors.js';
import { catalogReply, nodeArgument, serviceArgument, tagsOf } from './catalog.js';
import { parseReadOptions } from './params.js';
import type { Query } from './query.js';
import type { Reply, RequestContext } from './reply.js';

export async function handleHealthNode(ctx: RequestContext): Promise<Reply> {
  const options = parseReadOptions(ctx);
  const node = nodeArgument(ctx, '/v1/health/node/');
  return catalogReply(ctx, options, { what: 'health-node', node });
}

export async function handleHealthChecks(ctx: RequestContext): Promise<Reply> {
  const options = parseReadOptions(ctx);
  const service = serviceArgument(ctx, '/v1/health/checks/');
  return catalogReply(ctx, options, { what: 'health-checks', service });
}

export async function handleHealthService(ctx: RequestContext): Promise<Reply> {
  const options = parseReadOptions(ctx);
  const service = serviceArgument(ctx, '/v1/health/service/');
  const passing = passingParam(ctx.query);
  return catalogReply(ctx, options, { what: 'health-service', service, tags: tagsOf(ctx), passing });
}

export async function handleHealthState(ctx: RequestContext): Promise<Reply> {
  const options = parseReadOptions(ctx);
  const state = parseCheckState(ctx.path.slice('/v1/health/state/'.length));
  return catalogReply(ctx, options, { what: 'health-state', state });
}

const states: ReadonlySet<string> = new Set(['any', 'passing', 'warning', 'critical']);

/** The <state> of /v1/health/state/<state>: Consul's "Missing check state" when empty. */
export function parseCheckState(state: string): CheckStatus | 'any' {
  if (state === '') throw badRequest('Missing check state');
  if (!states.has(state)) throw badRequest('Invalid check state');
  return state as CheckStatus | 'any';
}

/** Go's strconv.ParseBool spellings. */
const trueSpellings: ReadonlySet<string> = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const falseSpellings: ReadonlySet<string> = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/** Consul's getBoolQueryParam(params, "passing"). */
export function passingParam(query: Query): boolean {
  if (!query.has('passing')) return false;
  const value = query.get('passing');
  if (value === '' || trueSpellings.has(value)) return true;
  if (falseSpellings.has(value)) return false;
  throw badRequest('Invalid value for ?passing');
}
