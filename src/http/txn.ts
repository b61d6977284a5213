// PUT /v1/txn: Consul's agent/txn_endpoint.go (convertOps, Txn) and the pre-checks of
// agent/consul/txn_endpoint.go, for KV operations.
//
// Steps, in Consul's order: body size (413) -> JSON decode (400 "Failed to parse body: ...") -> op count
// (413) -> each op's value size (413) -> read-only txns go to readTxn (no Raft; ?stale/?consistent apply),
// others to apply (through Raft) -> "Must provide key" pre-checks and failed ops answer 409 with
// {Results: null, Errors: [...]}; success is 200 with {Results, Errors: null}.
//
// Field names match in any case, as Go's decoder matches them; unknown fields are ignored as Go ignores
// them. Deliberate differences (all refuse input Consul would also not apply, and change nothing):
// - an unknown verb is a 400 (Consul: a 409 TxnError "unknown KV verb");
// - Node, Service and Check operations are a 400 saying they are not implemented yet;
// - a session verb naming a session that is not a session ID (a UUID) is a 400 `invalid session "..."`
//   (Consul: the same text as a 409 TxnError);
// - an operation that is null or has no KV member is a 400 (Consul skips it silently, or panics on null);
// - trailing bytes after the JSON array are a 400 (Go's decoder ignores them).
// A read-only txn's answer carries X-Consul-Index as well as Consul's KnownLeader and LastContact.

import type { KvOp, KvReadOp, TxnOp, Uint64 } from '../fsm/index.js';
import { isWriteOp, toUint64 } from '../fsm/index.js';
import type { ReadOptions } from '../server/index.js';
import { assert } from '../base/index.js';
import { badRequest, HttpError } from './errors.js';
import { describeJson, foldedFields, goQuote, isJsonObject, JsonFraction, parseJsonExact, txnResponseJson } from './json.js';
import { sessionArgument } from './kv.js';
import { datacenterOf, metaHeaders, parseReadOptions } from './params.js';
import { jsonReply, type Reply, type RequestContext } from './reply.js';

const txnMaxReqLenDocs = 'https://www.consul.io/docs/agent/config/config-files#txn_max_req_len';

const knownVerbs: readonly string[] = [
  'set', 'cas', 'lock', 'unlock', 'delete', 'delete-cas', 'delete-tree', 'get', 'get-or-empty', 'get-tree', 'check-index',
  'check-not-exists', 'check-session',
];
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** One KV operation as sent, after type checks (Consul's api.KVTxnOp). */
interface WireKvOp {
  readonly verb: string;
  readonly key: string;
  readonly value: Uint8Array;
  readonly flags: Uint64;
  readonly index: Uint64;
  readonly session: string;
}

export async function handleTxn(ctx: RequestContext): Promise<Reply> {
  // Consul uses the larger of txn_max_req_len and kv_max_value_size as the body limit.
  const limit = Math.max(ctx.limits.txnMaxRequestBytes, ctx.limits.kvMaxValueBytes);
  const body = await ctx.readBody(limit, (declared) => new HttpError(413, declared === undefined
    ? `Request body too large, max size: ${limit} bytes. See ${txnMaxReqLenDocs}.`
    : `Request body(${declared} bytes) too large, max size: ${limit} bytes. See ${txnMaxReqLenDocs}.`));
  const wire = decodeBody(body);
  if (wire.length > ctx.limits.txnMaxOpsCount) {
    throw new HttpError(413, `Transaction contains too many operations (${wire.length} > ${ctx.limits.txnMaxOpsCount})`);
  }
  for (const op of wire) {
    if (op.value.length > ctx.limits.kvMaxValueBytes) {
      throw new HttpError(413, `Value for key ${goQuote(op.key)} is too large (${op.value.length} > ${ctx.limits.kvMaxValueBytes} bytes)`);
    }
  }
  const ops = wire.map(toKvOp);
  const writes = ops.some(isWriteOp);
  // Consul parses ?dc for both kinds, and consistency and ?wait/?index (ignored: no blocking) for reads.
  let options: ReadOptions | undefined;
  if (!writes) options = parseReadOptions(ctx);
  // Consul's preCheck (kvsPreApply): every verb but delete-tree needs a key; reported per op as a 409.
  const missingKeys = wire.flatMap((op, i) => (op.key === '' && op.verb !== 'delete-tree' ? [{ OpIndex: i, What: 'Must provide key' }] : []));
  if (missingKeys.length > 0) return jsonReply(ctx, txnResponseJson([], missingKeys), 409);
  if (ops.length === 0) return jsonReply(ctx, txnResponseJson([], []));
  if (options === undefined) {
    const txnOps: TxnOp[] = ops.map((op) => ({ kind: 'kv', op }));
    const result = await ctx.api.apply({ type: 'txn', ops: txnOps }, { dc: datacenterOf(ctx) });
    assert(result.kind === 'txn', 'a txn command applies to a txn result');
    return jsonReply(ctx, txnResponseJson(result.results, result.errors), result.errors.length > 0 ? 409 : 200);
  }
  // Read-only txns do not block (Consul's Txn.Read ignores ?index).
  const { meta, reply } = await ctx.api.readTxn(ops as KvReadOp[], { consistency: options.consistency, signal: ctx.signal, dc: options.dc ?? '' });
  return jsonReply(ctx, txnResponseJson(reply.results, reply.errors), reply.errors.length > 0 ? 409 : 200, metaHeaders(meta));
}

function parseFailure(detail: string): HttpError {
  return badRequest(`Failed to parse body: ${detail}`);
}

function decodeBody(body: Buffer): WireKvOp[] {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw parseFailure('the body is not valid UTF-8 JSON');
  }
  if (text.trim() === '') throw parseFailure('EOF');
  let parsed: unknown;
  try {
    parsed = parseJsonExact(text);
  } catch (error) {
    throw parseFailure(error instanceof Error ? error.message : String(error));
  }
  if (parsed === null) return []; // Go decodes null into an empty list
  if (!Array.isArray(parsed)) {
    throw parseFailure(
      `expected a JSON array of operations like [{"KV": {"Verb": "set", "Key": "k", "Value": "<base64>"}}], got ${describeJson(parsed)}`,
    );
  }
  return parsed.map((raw, i) => decodeOp(raw, i));
}

function decodeOp(raw: unknown, i: number): WireKvOp {
  const at = `operation ${i}`;
  if (!isJsonObject(raw)) throw parseFailure(`${at} must be an object like {"KV": {...}}, got ${describeJson(raw)}`);
  const fields = foldedFields(raw);
  for (const other of ['Node', 'Service', 'Check']) {
    const f = fields.get(other.toLowerCase());
    if (f !== undefined && f.value !== null) {
      throw badRequest(`${at}: ${other} operations are not implemented in Conclave yet, only KV operations are; nothing was applied.`);
    }
  }
  const kv = fields.get('kv');
  if (kv === undefined || kv.value === null) throw parseFailure(`${at} has no KV member; each operation must be {"KV": {"Verb": ..., "Key": ...}}`);
  if (!isJsonObject(kv.value)) throw parseFailure(`${at}: KV must be an object, got ${describeJson(kv.value)}`);
  const kvFields = foldedFields(kv.value);
  const field = (name: string): unknown => kvFields.get(name.toLowerCase())?.value;
  return {
    verb: stringField(field('Verb'), `${at}: KV.Verb`),
    key: keyField(field('Key'), `${at}: KV.Key`),
    value: valueField(field('Value'), `${at}: KV.Value`),
    flags: uint64Field(field('Flags'), 'Flags'),
    index: uint64Field(field('Index'), 'Index'),
    session: stringField(field('Session'), `${at}: KV.Session`),
  };
}

function stringField(value: unknown, at: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw parseFailure(`${at} must be a string, got ${describeJson(value)}`);
  return value;
}

function keyField(value: unknown, at: string): string {
  const key = stringField(value, at);
  // JSON can carry "\ud800", which has no UTF-8 form and cannot be a key.
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(key)) throw parseFailure(`${at} holds a lone UTF-16 surrogate escape and is not valid text`);
  return key;
}

/**
 * KV.Flags or KV.Index, a uint64 as Go decodes it: an integer literal from 0 to 2^64-1, exact. Anything
 * else is refused with Go's text, which Consul answers with (400 "Failed to parse body: ..."). An Index
 * above 2^53-1 is taken as Consul takes it: it matches no entry (none of ours gets that high).
 */
function uint64Field(value: unknown, name: 'Flags' | 'Index'): Uint64 {
  if (value === undefined || value === null) return 0;
  const refuse = (what: string): never => {
    throw parseFailure(`json: cannot unmarshal ${what} into Go struct field KVTxnOp.KV.${name} of type uint64`);
  };
  if (value instanceof JsonFraction) return refuse(`number ${value.literal}`);
  if (Object.is(value, -0)) return refuse('number -0'); // Go refuses the literal -0 for a uint64
  const n = toUint64(value);
  if (n !== undefined) return n;
  return refuse(typeof value === 'number' || typeof value === 'bigint' ? `number ${String(value)}` : jsonKind(value));
}

/** Go's name for a JSON value's kind in an UnmarshalTypeError. */
function jsonKind(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'boolean') return 'bool';
  return typeof value === 'string' ? 'string' : 'object';
}

/** Go decodes a JSON string into []byte with base64.StdEncoding (padding required; \r and \n skipped). */
function valueField(value: unknown, at: string): Uint8Array {
  if (value === undefined || value === null) return new Uint8Array(0);
  if (typeof value !== 'string') throw parseFailure(`${at} must be a base64 string or null, got ${describeJson(value)}`);
  const text = value.replace(/[\r\n]/g, '');
  const bad = text.search(/[^A-Za-z0-9+/=]/);
  const padding = text.indexOf('=');
  const wellPadded = padding === -1 || /^={1,2}$/.test(text.slice(padding));
  if (bad !== -1 || text.length % 4 !== 0 || !wellPadded) {
    const where = bad !== -1 ? bad : padding !== -1 && !wellPadded ? padding : text.length;
    throw parseFailure(`${at} is not valid standard base64 (illegal base64 data at input byte ${where})`);
  }
  return new Uint8Array(Buffer.from(text, 'base64'));
}

function toKvOp(op: WireKvOp, i: number): KvOp {
  const { verb, key, value, flags, index } = op;
  switch (verb) {
    case 'set': return { verb, key, value, flags };
    case 'cas': return { verb, key, value, flags, index };
    case 'delete': return { verb, key };
    case 'delete-cas': return { verb, key, index };
    case 'delete-tree': return { verb, prefix: key };
    case 'get': return { verb, key };
    case 'get-or-empty': return { verb, key };
    case 'get-tree': return { verb, prefix: key };
    case 'check-index': return { verb, key, index };
    case 'check-not-exists': return { verb, key };
    case 'lock':
    case 'unlock':
      return { verb, key, value, flags, session: sessionArgument(op.session, `operation ${i} (${verb} on key ${goQuote(key)})`) };
    case 'check-session':
      // An empty session checks that the key is not locked (Consul compares the strings).
      return { verb, key, session: op.session === '' ? '' : sessionArgument(op.session, `operation ${i} (${verb} on key ${goQuote(key)})`) };
    default:
      throw parseFailure(`operation ${i}: unknown KV verb ${goQuote(verb)}; expected one of ${knownVerbs.join(', ')}`);
  }
}
