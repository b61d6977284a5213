// JSON as Consul writes and reads it (Go's encoding/json).
//
// Writing: field order of the Go structs; []byte as standard base64 with padding, nil/empty as null;
// Go's HTML-safe escaping of '<', '>', '&', U+2028 and U+2029 (so our bytes equal Consul's); `?pretty`
// indents by four spaces and ends with a newline (Consul's marshalJSON).
// Reading: field names match case-insensitively, as Go's decoder matches them (python-consul sends
// `{"node": ..., "ttl": ...}`); when one object names a field twice in different cases, the later wins,
// as in Go.

import type { DirEntry, TxnError, TxnResult } from '../fsm/index.js';

/** Go's json.Marshal / MarshalIndent(obj, "", "    ") + "\n". */
export function encodeJson(value: unknown, pretty: boolean): string {
  const text = pretty ? `${JSON.stringify(value, null, 4)}\n` : JSON.stringify(value);
  return text.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Consul's structs.DirEntry in JSON: LockIndex, Key, Flags, Value, Session (omitempty), CreateIndex, ModifyIndex. */
export interface DirEntryJson {
  readonly LockIndex: number;
  readonly Key: string;
  readonly Flags: number;
  readonly Value: string | null;
  readonly Session?: string;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

export function dirEntryJson(e: DirEntry): DirEntryJson {
  return {
    LockIndex: e.LockIndex,
    Key: e.Key,
    Flags: e.Flags,
    Value: e.Value.length === 0 ? null : Buffer.from(e.Value.buffer, e.Value.byteOffset, e.Value.length).toString('base64'),
    ...(e.Session !== '' ? { Session: e.Session } : {}),
    CreateIndex: e.CreateIndex,
    ModifyIndex: e.ModifyIndex,
  };
}

/** Consul's structs.TxnResponse: a nil slice marshals as null, so empty Results or Errors are null. */
export function txnResponseJson(results: readonly TxnResult[], errors: readonly TxnError[]): unknown {
  return {
    Results: results.length === 0 ? null : results.map((r) => ({ KV: dirEntryJson(r.KV) })),
    Errors: errors.length === 0 ? null : errors.map((e) => ({ OpIndex: e.OpIndex, What: e.What })),
  };
}

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The object's fields keyed by lower-cased name; a later spelling of the same name wins (Go's rule). */
export function foldedFields(object: Record<string, unknown>): ReadonlyMap<string, { readonly name: string; readonly value: unknown }> {
  const fields = new Map<string, { name: string; value: unknown }>();
  for (const [name, value] of Object.entries(object)) fields.set(name.toLowerCase(), { name, value });
  return fields;
}

/** What a JSON value is, for error messages ("a string", "an object", "the number 1.5"). */
export function describeJson(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string':
      return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
    case 'number':
      return `the number ${String(value)}`;
    case 'boolean':
      return `the boolean ${String(value)}`;
    case 'object':
      return 'an object';
    default:
      return typeof value;
  }
}

/** Go's strconv.Quote, shared with the FSM's error texts (one implementation). */
export { goQuote } from '../fsm/index.js';
