// Field readers for the decode boundary. Every value that arrives from the network passes through a
// decoder built from these; past the decoder the rest of the code trusts its types. The readers throw
// `Invalid` (never seen outside this folder); decoders catch it and return a typed result.

/** Why an incoming value was refused: where (a dotted path) and what was wrong with it. */
export interface DecodeError {
  readonly code: 'INVALID_MESSAGE';
  /** Dotted path of the offending field, e.g. `append.entries[3].term`. */
  readonly path: string;
  readonly problem: string;
  /** `path: problem`, for logs and error texts. */
  readonly message: string;
}

export type Decoded<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: DecodeError };

export class Invalid extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
  }
}

export function decodeWith<T>(raw: unknown, root: string, decode: (raw: unknown, path: string) => T): Decoded<T> {
  try {
    return { ok: true, value: decode(raw, root) };
  } catch (err) {
    if (err instanceof Invalid) {
      return { ok: false, error: { code: 'INVALID_MESSAGE', path: err.path, problem: err.problem, message: err.message } };
    }
    throw err;
  }
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return `${v.byteLength} bytes`;
  if (typeof v === 'string') return v.length > 40 ? `a string of ${v.length} characters` : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return `${typeof v} ${String(v)}`;
  return typeof v;
}

export type Rec = Record<string, unknown>;

export function rec(v: unknown, path: string): Rec {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
    throw new Invalid(path, v === undefined ? 'missing' : `expected an object, got ${describe(v)}`);
  }
  return v as Rec;
}

/** A nested message that may be absent (null or undefined on the decoded object). */
export function optRec(o: Rec, key: string, path: string): Rec | undefined {
  const v = o[key];
  return v === null || v === undefined ? undefined : rec(v, `${path}.${key}`);
}

export function reqRec(o: Rec, key: string, path: string): Rec {
  const v = o[key];
  if (v === null || v === undefined) throw new Invalid(`${path}.${key}`, 'missing');
  return rec(v, `${path}.${key}`);
}

/** A uint64 decoded as a number: it must be a safe, non-negative integer. */
export function u64(o: Rec, key: string, path: string): number {
  const v = o[key];
  const p = `${path}.${key}`;
  if (v === undefined) throw new Invalid(p, 'missing');
  if (typeof v !== 'number') throw new Invalid(p, `expected an unsigned integer, got ${describe(v)}`);
  if (!Number.isInteger(v) || v < 0) throw new Invalid(p, `expected an unsigned integer, got ${v}`);
  if (!Number.isSafeInteger(v)) {
    throw new Invalid(p, `${v} is above ${Number.MAX_SAFE_INTEGER} (Number.MAX_SAFE_INTEGER) and cannot be represented exactly`);
  }
  return v;
}

export function bool(o: Rec, key: string, path: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean') throw new Invalid(`${path}.${key}`, v === undefined ? 'missing' : `expected a boolean, got ${describe(v)}`);
  return v;
}

export function str(o: Rec, key: string, path: string, rule: { nonEmpty?: boolean; maxLength?: number } = {}): string {
  const v = o[key];
  const p = `${path}.${key}`;
  if (typeof v !== 'string') throw new Invalid(p, v === undefined ? 'missing' : `expected a string, got ${describe(v)}`);
  if (rule.nonEmpty === true && v.length === 0) throw new Invalid(p, 'must not be empty');
  if (rule.maxLength !== undefined && v.length > rule.maxLength) {
    throw new Invalid(p, `is ${v.length} characters long; the limit is ${rule.maxLength}`);
  }
  return v;
}

/** Bytes, returned as a plain Uint8Array view (no copy) so values compare equal to what was sent. */
export function bytes(o: Rec, key: string, path: string): Uint8Array {
  const v = o[key];
  if (!(v instanceof Uint8Array)) {
    throw new Invalid(`${path}.${key}`, v === undefined ? 'missing' : `expected bytes, got ${describe(v)}`);
  }
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

export function list(o: Rec, key: string, path: string): readonly unknown[] {
  const v = o[key];
  if (!Array.isArray(v)) throw new Invalid(`${path}.${key}`, v === undefined ? 'missing' : `expected a list, got ${describe(v)}`);
  return v;
}

/** A proto enum decoded as its name; `table` maps accepted wire names to our values. */
export function enumOf<T>(o: Rec, key: string, path: string, table: ReadonlyMap<string, T>): T {
  const v = o[key];
  const found = typeof v === 'string' ? table.get(v) : undefined;
  if (found === undefined) {
    throw new Invalid(
      `${path}.${key}`,
      v === undefined ? 'missing' : `unknown value ${describe(v)}; expected one of ${[...table.keys()].join(', ')}`,
    );
  }
  return found;
}

/** The name of the member set in a oneof (proto-loader's `oneofs: true` virtual field). */
export function oneofMember(o: Rec, oneof: string, path: string, members: readonly string[]): string {
  const v = o[oneof];
  if (v === undefined || v === null || v === '') throw new Invalid(`${path}.${oneof}`, 'missing: no member of the oneof is set');
  if (typeof v !== 'string' || !members.includes(v)) {
    throw new Invalid(`${path}.${oneof}`, `unknown member ${describe(v)}; expected one of ${members.join(', ')}`);
  }
  return v;
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}
