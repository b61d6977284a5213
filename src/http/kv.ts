// GET|PUT|DELETE /v1/kv/<key>: Consul's agent/kvs_endpoint.go, step for step.
//
// Order of checks (each refuses before anything is read from the body or proposed):
//   all methods: dc, consistency (?stale&?consistent), ?wait/?index, as Consul's parse() runs first;
//   GET:    ?keys -> key list; else ?recurse -> list; else "Missing key name" for an empty key;
//   PUT:    "Missing key name", conflicting cas/acquire/release, ?flags, ?cas, acquire/release, size;
//   DELETE: conflicting recurse/cas, "Missing key name" unless ?recurse, ?cas.
//
// Deliberate differences from Consul (each answers where Consul answers a 500 or does a surprising
// thing; the request changes nothing):
// - a malformed ?flags or ?cas (not a decimal in 0..2^64-1) is a 400 with strconv's text (Consul: the
//   same text as a 500); a ?cas above 2^53-1 is taken as Consul takes it and matches no entry (false);
// - ?recurse=false (and the other spellings of false on presence flags) is a 400 (see params.ts flag());
// - ?acquire/?release of a session that is not a session ID (a UUID), or of a session that does not
//   exist, is a 400 with Consul's text (`invalid session "<id>"`; Consul: a 500); an empty one is
//   Consul's `missing session`, also a 400;
// - a body of unknown length (chunked) is also held to kv_max_value_size (Consul reads it whole).
// Keys are not restricted beyond being valid UTF-8 (recent Consul releases refuse many characters and
// file-like suffixes such as ".json" in keys; older releases and both reference clients do not).

import type { KvWriteOp } from '../fsm/index.js';
import { isSessionId } from '../snapshot/index.js';
import { assert } from '../base/index.js';
import { badRequest, HttpError } from './errors.js';
import { dirEntryJson, goQuote } from './json.js';
import type { ReadOptions } from '../server/index.js';
import { conflictingFlags, datacenterOf, flag, metaHeaders, parseReadOptions, uint64Param } from './params.js';
import { emptyReply, jsonReply, type Reply, type RequestContext } from './reply.js';

const kvMaxValueSizeDocs = 'https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size';

export async function handleKv(ctx: RequestContext): Promise<Reply> {
  const options = parseReadOptions(ctx);
  // Consul: strings.TrimPrefix(req.URL.Path, "/v1/kv/") on the decoded path. "/v1/kv" never gets here:
  // mux.ts redirects it to "/v1/kv/", as Go's ServeMux does.
  const key = ctx.path.slice('/v1/kv/'.length);
  switch (ctx.method) {
    case 'GET':
      return flag(ctx.query, 'keys') ? getKeys(ctx, key, options) : get(ctx, key, options);
    case 'PUT':
      return put(ctx, key);
    case 'DELETE':
      return remove(ctx, key);
    default:
      // The router answers 405 before a handler runs.
      throw new HttpError(405, `method ${ctx.method} not allowed`);
  }
}

async function get(ctx: RequestContext, key: string, options: ReadOptions): Promise<Reply> {
  const recurse = flag(ctx.query, 'recurse');
  const raw = flag(ctx.query, 'raw');
  if (!recurse && key === '') throw badRequest('Missing key name');
  if (recurse) {
    const { meta, entries } = await ctx.api.kvList(key, options);
    const headers = metaHeaders(meta);
    if (entries.length === 0) return emptyReply(404, headers);
    return jsonReply(ctx, entries.map(dirEntryJson), 200, headers);
  }
  const { meta, entry } = await ctx.api.kvGet(key, options);
  const headers = metaHeaders(meta);
  if (entry === undefined) return emptyReply(404, headers);
  if (raw) {
    // Consul's headers for raw values, so a browser never runs a stored value as a page.
    return {
      status: 200,
      headers: { ...headers, 'Content-Type': 'text/plain', 'X-Content-Type-Options': 'nosniff', 'Content-Security-Policy': 'sandbox' },
      body: Buffer.from(entry.Value.buffer, entry.Value.byteOffset, entry.Value.length),
    };
  }
  return jsonReply(ctx, [dirEntryJson(entry)], 200, headers);
}

async function getKeys(ctx: RequestContext, prefix: string, options: ReadOptions): Promise<Reply> {
  // The historic misspelling is accepted too; the right spelling wins when both are given.
  let separator = '';
  if (ctx.query.has('seperator')) separator = ctx.query.get('seperator');
  if (ctx.query.has('separator')) separator = ctx.query.get('separator');
  const { meta, keys } = await ctx.api.kvKeys(prefix, separator, options);
  const headers = metaHeaders(meta);
  // No 404 for the root: an empty store lists as [].
  if (keys.length === 0 && prefix !== '') return emptyReply(404, headers);
  return jsonReply(ctx, keys, 200, headers);
}

async function put(ctx: RequestContext, key: string): Promise<Reply> {
  if (key === '') throw badRequest('Missing key name');
  const conflict = conflictingFlags(ctx.query, 'cas', 'acquire', 'release');
  if (conflict !== undefined) throw conflict;
  const flags = uint64Param(ctx.query, 'flags') ?? 0;
  const cas = uint64Param(ctx.query, 'cas');
  const lockVerb = ctx.query.has('acquire') ? 'acquire' : ctx.query.has('release') ? 'release' : undefined;
  const session = lockVerb === undefined ? '' : sessionArgument(ctx.query.get(lockVerb), `?${lockVerb} on key ${goQuote(key)}`);
  const limit = ctx.limits.kvMaxValueBytes;
  const value = await ctx.readBody(limit, (declared) => new HttpError(413, declared === undefined
    ? `Request body too large, max size: ${limit} bytes. See ${kvMaxValueSizeDocs}.`
    : `Request body(${declared} bytes) too large, max size: ${limit} bytes. See ${kvMaxValueSizeDocs}.`));
  let op: KvWriteOp;
  if (lockVerb !== undefined) op = { verb: lockVerb === 'acquire' ? 'lock' : 'unlock', key, value, flags, session };
  else if (cas !== undefined) op = { verb: 'cas', key, value, flags, index: cas };
  else op = { verb: 'set', key, value, flags };
  const ok = await applyKvs(ctx, op);
  // Consul: a plain set always answers true; the CAS, acquire and release variants report the outcome.
  return jsonReply(ctx, op.verb === 'set' ? true : ok);
}

async function remove(ctx: RequestContext, key: string): Promise<Reply> {
  const conflict = conflictingFlags(ctx.query, 'recurse', 'cas');
  if (conflict !== undefined) throw conflict;
  const recurse = flag(ctx.query, 'recurse');
  if (!recurse && key === '') throw badRequest('Missing key name');
  const cas = uint64Param(ctx.query, 'cas');
  let op: KvWriteOp;
  if (recurse) op = { verb: 'delete-tree', prefix: key };
  else if (cas !== undefined) op = { verb: 'delete-cas', key, index: cas };
  else op = { verb: 'delete', key };
  const ok = await applyKvs(ctx, op);
  return jsonReply(ctx, op.verb === 'delete-cas' ? ok : true);
}

async function applyKvs(ctx: RequestContext, op: KvWriteOp): Promise<boolean> {
  const result = await ctx.api.apply({ type: 'kvs', op }, { dc: datacenterOf(ctx) });
  assert(result.kind === 'kvs', 'a kvs command applies to a kvs result');
  // A lock or unlock by a missing or unknown session: Consul's state-store text (Consul answers 500).
  if (result.error !== undefined) throw badRequest(`${result.error}; nothing was written`);
  return result.ok;
}

/**
 * A session named by a lock request: '' (Consul's "missing session") or a session ID. Anything else
 * cannot be a session: Consul's `invalid session "<id>"`, as a 400, before anything is proposed.
 */
export function sessionArgument(session: string, where: string): string {
  if (session === '') throw badRequest(`missing session: ${where} names no session; nothing was written`);
  if (!isSessionId(session)) throw badRequest(`invalid session ${goQuote(session)}: ${where} names no session ID (a UUID); nothing was written`);
  return session;
}
