// Go's encoding/json as Consul's handlers decode request bodies into its structs: field names match in
// any case (python-consul sends lower-case ones), unknown fields are ignored, null leaves a field at its
// zero value, a value of the wrong JSON type is "Request decode failed: <field> must be ...".

import { isWellFormedText, parseGoDuration } from '../base/index.js';
import { badRequest, type HttpError } from './errors.js';
import { describeJson, foldedFields, isJsonObject, JsonFraction, parseJsonExact } from './json.js';

export function decodeFailed(what: string): HttpError {
  return badRequest(`Request decode failed: ${what}`);
}

export function decodeBody(body: Buffer): Fields {
  if (body.length === 0) throw decodeFailed('the body is empty; expected a JSON object');
  let parsed: unknown;
  try {
    parsed = parseJsonExact(body.toString('utf8'));
  } catch (e) {
    throw decodeFailed((e as Error).message);
  }
  // Go decodes `null` into the request as nothing at all: every field stays empty.
  if (parsed === null) return new Fields({}, '');
  if (!isJsonObject(parsed)) throw decodeFailed(`the body must be a JSON object, got ${describeJson(parsed)}`);
  return new Fields(parsed, '');
}

/** Sets an own field, also one named "__proto__" (a map key is data, never a prototype). */
function setField<T>(object: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}

/** One JSON object read as a Go struct; `path` names it in messages ("Service", "Checks[1].Definition"). */
export class Fields {
  private readonly fields: ReadonlyMap<string, { readonly name: string; readonly value: unknown }>;

  constructor(
    object: Record<string, unknown>,
    readonly path: string,
  ) {
    this.fields = foldedFields(object);
  }

  /** A nested struct: undefined for absent or null, else it must be an object. */
  static of(value: unknown, path: string): Fields | undefined {
    if (value === undefined || value === null) return undefined;
    if (!isJsonObject(value)) throw decodeFailed(`${path} must be an object, got ${describeJson(value)}`);
    return new Fields(value, path);
  }

  private where(name: string): string {
    return this.path === '' ? name : `${this.path}.${name}`;
  }

  private value(name: string): unknown {
    const v = this.fields.get(name.toLowerCase())?.value;
    return v === null ? undefined : v;
  }

  /** Whether the field is present and not null. */
  has(name: string): boolean {
    return this.value(name) !== undefined;
  }

  text(name: string): string {
    return textValue(this.value(name), this.where(name));
  }

  bool(name: string): boolean {
    const v = this.value(name);
    if (v === undefined) return false;
    if (typeof v !== 'boolean') throw decodeFailed(`${this.where(name)} must be a boolean, got ${describeJson(v)}`);
    return v;
  }

  /** A Go int that we store as 0..2^53-1 (ports, weights). */
  uint(name: string): number {
    const v = this.value(name);
    if (v === undefined) return 0;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw decodeFailed(`${this.where(name)} must be an integer in 0..${Number.MAX_SAFE_INTEGER}, got ${describeJson(v)}`);
    }
    return v;
  }

  /** A time.Duration as Consul's HealthCheckDefinition.UnmarshalJSON reads it: "10s", or nanoseconds. */
  duration(name: string): number {
    const v = this.value(name);
    const where = this.where(name);
    if (v === undefined) return 0;
    let ns: number | bigint | undefined;
    if (typeof v === 'string') {
      const d = parseGoDuration(v);
      if (!d.ok) throw decodeFailed(`${where}: ${d.error}`);
      ns = d.nanoseconds;
    } else if (typeof v === 'number' || typeof v === 'bigint') {
      ns = v;
    } else if (v instanceof JsonFraction && Number.isInteger(v.value)) {
      ns = v.value; // 1e9: Go reads a float64 and converts it
    }
    if (ns === undefined) throw decodeFailed(`${where} must be a duration ("10s") or whole nanoseconds, got ${describeJson(v)}`);
    if (ns < 0 || ns > Number.MAX_SAFE_INTEGER) {
      throw decodeFailed(`${where} must be between 0 and ${Number.MAX_SAFE_INTEGER} nanoseconds, got ${describeJson(v)}`);
    }
    return Number(ns);
  }

  texts(name: string): string[] {
    const v = this.value(name);
    const where = this.where(name);
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw decodeFailed(`${where} must be a list of strings, got ${describeJson(v)}`);
    return v.map((item: unknown, i) => textValue(item, `${where}[${i}]`));
  }

  /** A Go map[string]string: absent or null is empty. */
  stringMap(name: string): Record<string, string> {
    return this.map(name, (v, where) => textValue(v, where));
  }

  /** A Go map[string]T, each value read by `read`. */
  map<T>(name: string, read: (value: unknown, where: string) => T): Record<string, T> {
    const v = this.value(name);
    const where = this.where(name);
    const out: Record<string, T> = {};
    if (v === undefined) return out;
    if (!isJsonObject(v)) throw decodeFailed(`${where} must be an object, got ${describeJson(v)}`);
    for (const [key, item] of Object.entries(v)) {
      if (!isWellFormedText(key)) throw decodeFailed(`${where} has a key holding a lone UTF-16 surrogate, which has no UTF-8 form`);
      setField(out, key, read(item, `${where}[${JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}...` : key)}]`));
    }
    return out;
  }

  struct(name: string): Fields | undefined {
    return Fields.of(this.value(name), this.where(name));
  }

  /** A Go []*T: absent or null is empty; every item must be an object. */
  structList(name: string): Fields[] {
    const v = this.value(name);
    const where = this.where(name);
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw decodeFailed(`${where} must be a list of objects, got ${describeJson(v)}`);
    return v.map((item: unknown, i) => {
      const f = Fields.of(item, `${where}[${i}]`);
      if (f === undefined) throw decodeFailed(`${where}[${i}] must be an object, got null`);
      return f;
    });
  }
}

/** A Go string: null is '' (Go leaves the zero value); anything else must be well-formed text. */
export function textValue(v: unknown, where: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw decodeFailed(`${where} must be a string, got ${describeJson(v)}`);
  if (!isWellFormedText(v)) throw decodeFailed(`${where} holds a lone UTF-16 surrogate, which has no UTF-8 form`);
  return v;
}
