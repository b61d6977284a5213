// JSON as Consul writes and reads it (Go's encoding/json).
//
// Writing: field order of the Go structs; []byte as standard base64 with padding, nil/empty as null;
// Go's HTML-safe escaping of '<', '>', '&', U+2028 and U+2029 (so our bytes equal Consul's); `?pretty`
// indents by four spaces and ends with a newline (Consul's marshalJSON).
// Reading: field names match case-insensitively, as Go's decoder matches them (python-consul sends
// `{"node": ..., "ttl": ...}`); when one object names a field twice in different cases, the later wins,
// as in Go.

import type { DirEntry, TxnError, TxnResult, Uint64 } from '../fsm/index.js';

/**
 * Go's json.Marshal / MarshalIndent(obj, "", "    ") + "\n". A bigint (a uint64 from 2^53, such as a
 * KV entry's Flags) is written as a JSON number with all its digits, as Go writes a uint64; JSON.stringify
 * cannot, so a value holding one is written by `stringifyExact` instead.
 */
export function encodeJson(value: unknown, pretty: boolean): string {
  let text: string;
  try {
    text = pretty ? `${JSON.stringify(value, null, 4)}\n` : JSON.stringify(value);
  } catch (error) {
    if (!(error instanceof TypeError) || !/BigInt/.test(error.message)) throw error;
    text = pretty ? `${stringifyExact(value, '    ', '')}\n` : stringifyExact(value, '', '');
  }
  return text.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * JSON.stringify(value, null, indent) for the values handlers answer with (plain objects, arrays, strings,
 * numbers, booleans, null, toJSON), writing a bigint as its decimal digits.
 */
function stringifyExact(value: unknown, indent: string, at: string, key = ''): string {
  let v = value;
  if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') {
    v = (v as { toJSON: (key: string) => unknown }).toJSON(key);
  }
  switch (typeof v) {
    case 'bigint':
      return v.toString();
    case 'string':
    case 'number':
    case 'boolean':
      return JSON.stringify(v);
    case 'object': {
      if (v === null) return 'null';
      const inner = at + indent;
      const open = indent === '' ? '' : `\n${inner}`;
      const close = indent === '' ? '' : `\n${at}`;
      const separator = indent === '' ? ',' : `,\n${inner}`;
      if (Array.isArray(v)) {
        if (v.length === 0) return '[]';
        const items = v.map((item, i) => stringifyExact(item === undefined || typeof item === 'function' || typeof item === 'symbol' ? null : item, indent, inner, String(i)));
        return `[${open}${items.join(separator)}${close}]`;
      }
      const fields: string[] = [];
      for (const [name, field] of Object.entries(v)) {
        if (field === undefined || typeof field === 'function' || typeof field === 'symbol') continue;
        fields.push(`${JSON.stringify(name)}:${indent === '' ? '' : ' '}${stringifyExact(field, indent, inner, name)}`);
      }
      return fields.length === 0 ? '{}' : `{${open}${fields.join(separator)}${close}}`;
    }
    default:
      return 'null';
  }
}

/** Consul's structs.DirEntry in JSON: LockIndex, Key, Flags, Value, Session (omitempty), CreateIndex, ModifyIndex. */
export interface DirEntryJson {
  readonly LockIndex: number;
  readonly Key: string;
  /** A bigint from 2^53; encodeJson writes its digits. */
  readonly Flags: Uint64;
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

/**
 * A number literal with a fraction or an exponent ("5.0", "1e2"), kept as written: Go refuses it for
 * an integer field (`json: cannot unmarshal number 5.0 into Go struct field ... of type uint64`)
 * although JavaScript reads it as the integer 5.
 */
export class JsonFraction {
  constructor(
    readonly literal: string,
    readonly value: number,
  ) {}
}

/**
 * JSON.parse, except that an integer literal beyond 2^53-1 (in magnitude) is a bigint with its exact
 * value, as Go's decoder reads digits into a uint64 (a KV op's Flags up to 2^64-1), and a literal with
 * a fraction or an exponent is a JsonFraction. Throws JSON.parse's SyntaxError for malformed text.
 */
export function parseJsonExact(text: string): unknown {
  const value: unknown = JSON.parse(text);
  // A number literal that JSON.parse may have rounded has at least 16 digits in a row; one with a
  // fraction or an exponent has a digit beside '.', 'e' or 'E'. (Strings may hold either too: then
  // the slower reader below gives the same strings.)
  if (!/[0-9]{16}|[0-9][.eE]/.test(text)) return value;
  return new ExactJsonReader(text).read();
}

const numberLiteral = /-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;

/** Reads JSON that JSON.parse accepted, keeping big integer literals exact. */
class ExactJsonReader {
  private at = 0;
  constructor(private readonly text: string) {}

  read(): unknown {
    this.space();
    const c = this.text[this.at];
    if (c === '{') {
      this.at += 1;
      const object: Record<string, unknown> = {};
      this.space();
      if (this.text[this.at] === '}') {
        this.at += 1;
        return object;
      }
      for (;;) {
        this.space();
        const name = this.string();
        this.space();
        this.at += 1; // ':'
        // defineProperty: a "__proto__" member is an own field, as JSON.parse makes it.
        Object.defineProperty(object, name, { value: this.read(), enumerable: true, writable: true, configurable: true });
        this.space();
        if (this.text[this.at++] === '}') return object;
      }
    }
    if (c === '[') {
      this.at += 1;
      const array: unknown[] = [];
      this.space();
      if (this.text[this.at] === ']') {
        this.at += 1;
        return array;
      }
      for (;;) {
        array.push(this.read());
        this.space();
        if (this.text[this.at++] === ']') return array;
      }
    }
    if (c === '"') return this.string();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.text.startsWith(word, this.at)) {
        this.at += word.length;
        return value;
      }
    }
    numberLiteral.lastIndex = this.at;
    const literal = numberLiteral.exec(this.text)?.[0] ?? '';
    this.at += literal.length;
    const number = Number(literal);
    if (/[.eE]/.test(literal)) return new JsonFraction(literal, number);
    if (!Number.isSafeInteger(number)) return BigInt(literal);
    return number;
  }

  private string(): string {
    const start = this.at;
    this.at += 1;
    while (this.text[this.at] !== '"') this.at += this.text[this.at] === '\\' ? 2 : 1;
    this.at += 1;
    return JSON.parse(this.text.slice(start, this.at)) as string;
  }

  private space(): void {
    while (this.at < this.text.length && ' \t\n\r'.includes(this.text[this.at] as string)) this.at += 1;
  }
}

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof JsonFraction);
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
  if (value instanceof JsonFraction) return `the number ${value.literal}`;
  switch (typeof value) {
    case 'string':
      return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
    case 'number':
    case 'bigint':
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
