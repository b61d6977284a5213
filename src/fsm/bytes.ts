// Small pure helpers shared by the codecs: UTF-8 with strict checks, byte comparison, integer checks.

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Decodes UTF-8, or returns undefined when the bytes are not valid UTF-8. */
export function utf8DecodeStrict(bytes: Uint8Array): string | undefined {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * True when the string survives a UTF-8 round trip, i.e. holds no lone surrogate. Keys are stored as
 * UTF-8 bytes; a lone surrogate would silently turn into U+FFFD and name a different key.
 */
export function isWellFormedText(text: string): boolean {
  // Fast path: no surrogate code units at all.
  if (!/[\uD800-\uDFFF]/.test(text)) return true;
  return !/(?:[\uD800-\uDBFF](?![\uDC00-\uDFFF]))|(?:(?<![\uD800-\uDBFF])[\uDC00-\uDFFF])/.test(text);
}

/** Byte-wise comparison, the order LevelDB and Go's memdb keep keys in. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A non-negative integer that a JS number holds exactly (Consul's uint64 fields, limited to 2^53-1). */
export function isUint(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Converts a decoded msgpack integer (number, or bigint for 64-bit encodings) to a safe JS number, or
 * returns undefined when it is negative, fractional or above 2^53-1.
 */
export function toUint(value: unknown): number | undefined {
  if (typeof value === 'bigint') {
    if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    return Number(value);
  }
  return isUint(value) ? value : undefined;
}

export function describeValue(value: unknown): string {
  if (value === null) return 'nil';
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'bigint') return `the integer ${value.toString()}`;
  if (typeof value === 'number') return Number.isInteger(value) ? `the integer ${value}` : `the float ${value}`;
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  if (isPlainMap(value)) return 'a map';
  if (typeof value === 'object') return 'a msgpack extension value';
  return typeof value;
}

/** A plain msgpack map as @msgpack/msgpack decodes it (not an array, not bytes, not null). */
export function isPlainMap(value: unknown): value is Record<string, unknown> {
  // Excludes arrays, byte arrays, Dates (msgpack timestamp ext) and ExtData, which are all objects too.
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}
