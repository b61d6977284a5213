// /v1/session/*: Consul's agent/session_endpoint.go, with the checks of agent/consul/session_endpoint.go
// (Session.Apply) that the leader runs before proposing.
//
//   PUT /v1/session/create          body (optional) {LockDelay, Node, Name, Checks|NodeChecks, ServiceChecks,
//                                   Behavior, TTL}, field names in any case -> {"ID": "<uuid>"}
//   PUT /v1/session/destroy/<id>    true (an unknown session too)
//   PUT /v1/session/renew/<id>      [session] (the leader restarts its TTL timer); 404 when gone
//   GET /v1/session/info/<id>       [session] or []; blocking
//   GET /v1/session/node/<node>     sessions of a node; blocking
//   GET /v1/session/list            every session; blocking
//
// Defaults as Consul's: Node is this agent's node, NodeChecks ["serfHealth"], LockDelay 15s, Behavior
// release, no TTL. LockDelay may be a number (below 1000: seconds, else nanoseconds, Consul's
// FixupLockDelay) or a duration string. Deliberate differences, each refusing what Consul refuses:
// - every refusal is a 400 with Consul's text (Consul answers most of them with a 500). The node and the
//   checks a session names are checked where Consul checks them, in the apply: the node must be in the
//   catalog, and each check on it and not critical.

import { randomUUID } from 'node:crypto';
import type { NewSession, Session } from '../fsm/index.js';
import { isWellFormedText } from '../base/index.js';
import { isSessionId, sessionAsGo } from '../snapshot/index.js';
import { badRequest, HttpError } from './errors.js';
import { goDurationString, parseGoDuration } from '../base/index.js';
import { describeJson, foldedFields, isJsonObject } from './json.js';
import { datacenterOf, metaHeaders, parseReadOptions } from './params.js';
import { jsonReply, type Reply, type RequestContext } from './reply.js';

/** Consul's structs.SessionTTLMax (the minimum is the agent's session_ttl_min). */
const ttlMaxNs = 86_400n * 1_000_000_000n;
/** Consul's lockDelayMinThreshold: a bare number below this is seconds. */
const lockDelaySecondsBelow = 1000;
const defaultLockDelayNs = 15e9;
const serfHealth = 'serfHealth';
const createBodyMaxBytes = 64 * 1024;


export async function handleSessionCreate(ctx: RequestContext): Promise<Reply> {
  const body = await ctx.readBody(createBodyMaxBytes, () => new HttpError(413, `Request body too large, max size: ${createBodyMaxBytes} bytes`));
  const session = parseCreateBody(body, ctx.api.nodeName, ctx.limits.sessionTtlMinMs);
  const result = await ctx.api.apply({ type: 'session-create', session }, { dc: datacenterOf(ctx) });
  if (result.kind === 'session' && result.error !== '') throw badRequest(result.error);
  return jsonReply(ctx, { ID: session.ID });
}

export async function handleSessionDestroy(ctx: RequestContext): Promise<Reply> {
  const id = ctx.path.slice('/v1/session/destroy/'.length);
  if (id === '') throw badRequest('Missing session');
  // Nothing to destroy under a name that cannot be a session ID: Consul's answer, true, without a write.
  if (isSessionId(id)) await ctx.api.apply({ type: 'session-destroy', id }, { dc: datacenterOf(ctx) });
  return jsonReply(ctx, true);
}

export async function handleSessionRenew(ctx: RequestContext): Promise<Reply> {
  const id = ctx.path.slice('/v1/session/renew/'.length);
  if (id === '') throw badRequest('Missing session');
  if (!isSessionId(id)) throw new HttpError(404, `Session id '${id}' not found`);
  return jsonReply(ctx, (await ctx.api.sessionRenew(id, { dc: datacenterOf(ctx) })).map(sessionJson));
}

export async function handleSessionInfo(ctx: RequestContext): Promise<Reply> {
  const options = parseReadOptions(ctx);
  const id = ctx.path.slice('/v1/session/info/'.length);
  if (id === '') throw badRequest('Missing session');
  const { meta, sessions } = await ctx.api.sessionInfo(id, options);
  return jsonReply(ctx, sessions.map(sessionJson), 200, metaHeaders(meta));
}

export async function handleSessionNode(ctx: RequestContext): Promise<Reply> {
  const options = parseReadOptions(ctx);
  const node = ctx.path.slice('/v1/session/node/'.length);
  if (node === '') throw badRequest('Missing node name');
  const { meta, sessions } = await ctx.api.sessionList(node, options);
  return jsonReply(ctx, sessions.map(sessionJson), 200, metaHeaders(meta));
}

export async function handleSessionList(ctx: RequestContext): Promise<Reply> {
  const options = parseReadOptions(ctx);
  const { meta, sessions } = await ctx.api.sessionList(undefined, options);
  return jsonReply(ctx, sessions.map(sessionJson), 200, metaHeaders(meta));
}

/** A session as Consul's JSON shows it: the same Go-shaped map its state.bin record holds. */
const sessionJson = (s: Session): Record<string, unknown> => sessionAsGo(s);

/** The create body over Consul's defaults; an empty body is the defaults. */
export function parseCreateBody(body: Buffer, agentNode: string, ttlMinMs: number): NewSession {
  const session = {
    ID: randomUUID(),
    Name: '',
    Node: agentNode,
    LockDelay: defaultLockDelayNs,
    Behavior: 'release' as Session['Behavior'],
    TTL: '',
    NodeChecks: [serfHealth] as readonly string[],
    ServiceChecks: [] as Session['ServiceChecks'],
  };
  if (body.length === 0) return session;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw badRequest(`Request decode failed: ${(e as Error).message}`);
  }
  if (parsed === null) return session;
  if (!isJsonObject(parsed)) throw badRequest(`Request decode failed: the body must be a JSON object, got ${describeJson(parsed)}`);
  const fields = foldedFields(parsed);
  const field = (name: string): unknown => fields.get(name.toLowerCase())?.value;
  const text = (name: string): string | undefined => {
    const v = field(name);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw badRequest(`Request decode failed: ${name} must be a string, got ${describeJson(v)}`);
    if (!isWellFormedText(v)) throw badRequest(`Request decode failed: ${name} holds a lone UTF-16 surrogate, which has no UTF-8 form`);
    return v;
  };
  const texts = (name: string): string[] | undefined => {
    const v = field(name);
    if (v === undefined) return undefined;
    if (v === null) return [];
    if (!Array.isArray(v) || !v.every((c) => typeof c === 'string' && isWellFormedText(c))) {
      throw badRequest(`Request decode failed: ${name} must be a list of strings, got ${describeJson(v)}`);
    }
    return v as string[];
  };
  session.Name = text('Name') ?? session.Name;
  session.Node = text('Node') ?? session.Node;
  if (session.Node === '') session.Node = agentNode;
  const behavior = text('Behavior') ?? '';
  if (behavior !== '' && behavior !== 'release' && behavior !== 'delete') throw badRequest(`Invalid Behavior setting '${behavior}'`);
  if (behavior !== '') session.Behavior = behavior;
  session.NodeChecks = texts('NodeChecks') ?? texts('Checks') ?? session.NodeChecks;
  const serviceChecks = field('ServiceChecks');
  if (serviceChecks !== undefined && serviceChecks !== null) {
    if (!Array.isArray(serviceChecks)) throw badRequest(`Request decode failed: ServiceChecks must be a list, got ${describeJson(serviceChecks)}`);
    session.ServiceChecks = serviceChecks.map((c: unknown) => {
      const m = isJsonObject(c) ? foldedFields(c) : undefined;
      const id = m?.get('id')?.value;
      const ns = m?.get('namespace')?.value ?? '';
      if (typeof id !== 'string' || typeof ns !== 'string' || !isWellFormedText(id) || !isWellFormedText(ns)) throw badRequest(`Request decode failed: ServiceChecks items must be {ID, Namespace}, got ${describeJson(c)}`);
      return { ID: id, Namespace: ns };
    });
  }
  session.LockDelay = lockDelay(field('LockDelay'));
  const ttl = text('TTL') ?? '';
  if (ttl !== '') {
    const d = parseGoDuration(ttl);
    if (!d.ok) throw badRequest(`Session TTL '${ttl}' invalid: ${d.error}`);
    if (d.nanoseconds !== 0n && (d.nanoseconds < BigInt(ttlMinMs) * 1_000_000n || d.nanoseconds > ttlMaxNs)) {
      throw badRequest(`Invalid Session TTL '${d.nanoseconds}', must be between [${goDurationString(ttlMinMs)}=24h0m0s]`);
    }
  }
  session.TTL = ttl;
  return session;
}

/** Consul's FixupLockDelay: a number below 1000 is seconds, a larger one nanoseconds; a string is a duration. */
function lockDelay(v: unknown): number {
  const ns = lockDelayNs(v);
  // Consul applies at most 60 s; anything that does not fit an exact integer is refused, not rounded.
  if (!Number.isSafeInteger(ns)) throw badRequest(`Request decode failed: LockDelay ${describeJson(v)} is too large`);
  return ns;
}

function lockDelayNs(v: unknown): number {
  if (v === undefined || v === null) return defaultLockDelayNs;
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0) throw badRequest(`Request decode failed: LockDelay must not be negative, got ${describeJson(v)}`);
    return v < lockDelaySecondsBelow ? Math.floor(v * 1e9) : Math.floor(v);
  }
  if (typeof v === 'string') {
    const d = parseGoDuration(v);
    if (!d.ok) throw badRequest(`Request decode failed: LockDelay: ${d.error}`);
    if (d.nanoseconds < 0n) throw badRequest(`Request decode failed: LockDelay must not be negative, got ${JSON.stringify(v)}`);
    return Number(d.nanoseconds);
  }
  throw badRequest(`Request decode failed: LockDelay must be a duration, got ${describeJson(v)}`);
}
