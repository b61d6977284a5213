// Checks on decoded msgpack values, shared by the state.bin codec and the FSM's command codec.

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
