// Checks on decoded msgpack values, shared by the state.bin codec and the FSM's command codec.

/** A non-negative integer that a JS number holds exactly (Consul's uint64 indexes, limited to 2^53-1; Flags are Uint64). */
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

/**
 * An unsigned 64-bit integer held exactly (KV `Flags`, Consul's uint64): a number from 0 to 2^53-1, a
 * bigint from 2^53 to 2^64-1. The form is canonical (never a bigint below 2^53, never an unsafe number), so
 * `===` compares two values and the common case stays a plain number.
 */
export type Uint64 = number | bigint;

export const maxUint64 = 0xffff_ffff_ffff_ffffn;
const maxSafeBig = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * A decoded integer (number, or bigint for msgpack's 64-bit encodings) as a canonical Uint64, or undefined
 * when it is negative, fractional, unsafe as a number, or above 2^64-1.
 */
export function toUint64(value: unknown): Uint64 | undefined {
  if (typeof value === 'bigint') {
    if (value < 0n || value > maxUint64) return undefined;
    return value <= maxSafeBig ? Number(value) : value;
  }
  return isUint(value) ? value : undefined;
}

/** True when `value` is a Uint64 in its canonical form. */
export function isUint64(value: unknown): value is Uint64 {
  return typeof value === 'bigint' ? value > maxSafeBig && value <= maxUint64 : isUint(value);
}

/**
 * An unsigned integer as an encoder with `useBigInt64` must be given it. Such an encoder writes a bigint
 * as uint64 but a number at or above 2^32 as a float64 (not an integer at all), so every number from 2^32
 * on goes as a bigint; msgpack's smallest encoding of those is uint64 anyway, so the bytes are what an
 * encoder without `useBigInt64` writes for a safe integer.
 */
export function wireUint(value: Uint64): Uint64 {
  return typeof value === 'number' && value >= 0x1_0000_0000 ? BigInt(value) : value;
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
