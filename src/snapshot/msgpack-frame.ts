// Finds where one msgpack value ends without decoding it.
//
// Why: a state.bin stream is "type byte, one msgpack value, type byte, ..." with no lengths. Consul reads
// it by taking one type byte, then decoding exactly one msgpack value from the same stream, so a reader
// must never consume bytes past the value it decodes. Measuring first lets the stream reader
// buffer exactly one record, refuse a record above the size limit before buffering it, and hand the
// decoder one complete value (so "insufficient data" and "trailing bytes" never get confused).
// The walk is iterative (a count of values still owed), so hostile nesting cannot overflow the stack.

export type FrameResult =
  | { readonly kind: 'complete'; readonly end: number }
  /** More bytes are needed; `end` is how far the walk got (a lower bound of the value's end). */
  | { readonly kind: 'incomplete'; readonly end: number }
  | { readonly kind: 'invalid'; readonly reason: string }
  /** The value is certainly longer than `maxBytes`. */
  | { readonly kind: 'too-large'; readonly atLeastBytes: number }
  /**
   * The value holds more than `maxValues` values (itself, and every array item, map key and map value
   * within): decoded, it would take far more memory than its bytes (tiny items cost tens of bytes each).
   */
  | { readonly kind: 'too-many-values'; readonly maxValues: number };

/**
 * Measures the msgpack value starting at `start` in `buf[0..length)`.
 * `maxBytes` bounds the value's size: as soon as the header bytes seen so far prove the value is longer
 * (every value owed still takes at least one byte), the walk answers `too-large`. `maxValues` bounds how
 * many values it may hold in all (`too-many-values`).
 */
export function measureMsgpack(buf: Uint8Array, start: number, length: number, maxBytes: number, maxValues = Number.POSITIVE_INFINITY): FrameResult {
  let at = start;
  let owed = 1; // values still to be walked
  let walked = 0;
  while (owed > 0) {
    if (at - start + owed > maxBytes) return { kind: 'too-large', atLeastBytes: at - start + owed };
    if (walked + owed > maxValues) return { kind: 'too-many-values', maxValues };
    if (at >= length) return { kind: 'incomplete', end: at };
    const head = buf[at] as number;
    owed -= 1;
    walked += 1;
    const step = headerStep(buf, at, length, head);
    if (step === undefined) return { kind: 'incomplete', end: at };
    if (step === 'invalid') return { kind: 'invalid', reason: `byte 0x${head.toString(16).padStart(2, '0')} is never used in msgpack` };
    at += step.skip;
    owed += step.children;
  }
  if (at - start > maxBytes) return { kind: 'too-large', atLeastBytes: at - start };
  if (at > length) return { kind: 'incomplete', end: at };
  return { kind: 'complete', end: at };
}

interface Step {
  /** Bytes taken by the header plus any payload (string, binary, extension data, number). */
  readonly skip: number;
  /** Nested values that follow (array items; map keys and values). */
  readonly children: number;
}

/** The size of one value's own bytes and how many nested values follow; undefined: header incomplete. */
function headerStep(buf: Uint8Array, at: number, length: number, head: number): Step | 'invalid' | undefined {
  if (head <= 0x7f || head >= 0xe0) return { skip: 1, children: 0 }; // positive / negative fixint
  if (head <= 0x8f) return { skip: 1, children: 2 * (head & 0x0f) }; // fixmap
  if (head <= 0x9f) return { skip: 1, children: head & 0x0f }; // fixarray
  if (head <= 0xbf) return { skip: 1 + (head & 0x1f), children: 0 }; // fixstr
  switch (head) {
    case 0xc0: case 0xc2: case 0xc3: return { skip: 1, children: 0 }; // nil, false, true
    case 0xc1: return 'invalid';
    case 0xc4: case 0xd9: return sized(buf, at, length, 1, 0); // bin8, str8
    case 0xc5: case 0xda: return sized(buf, at, length, 2, 0); // bin16, str16
    case 0xc6: case 0xdb: return sized(buf, at, length, 4, 0); // bin32, str32
    case 0xc7: return sized(buf, at, length, 1, 1); // ext8: length, type, data
    case 0xc8: return sized(buf, at, length, 2, 1); // ext16
    case 0xc9: return sized(buf, at, length, 4, 1); // ext32
    case 0xca: return { skip: 5, children: 0 }; // float32
    case 0xcb: return { skip: 9, children: 0 }; // float64
    case 0xcc: case 0xd0: return { skip: 2, children: 0 }; // uint8, int8
    case 0xcd: case 0xd1: return { skip: 3, children: 0 }; // uint16, int16
    case 0xce: case 0xd2: return { skip: 5, children: 0 }; // uint32, int32
    case 0xcf: case 0xd3: return { skip: 9, children: 0 }; // uint64, int64
    case 0xd4: return { skip: 3, children: 0 }; // fixext1: type + 1
    case 0xd5: return { skip: 4, children: 0 }; // fixext2
    case 0xd6: return { skip: 6, children: 0 }; // fixext4
    case 0xd7: return { skip: 10, children: 0 }; // fixext8
    case 0xd8: return { skip: 18, children: 0 }; // fixext16
    case 0xdc: return counted(buf, at, length, 2, 1); // array16
    case 0xdd: return counted(buf, at, length, 4, 1); // array32
    case 0xde: return counted(buf, at, length, 2, 2); // map16
    case 0xdf: return counted(buf, at, length, 4, 2); // map32
    default: return 'invalid';
  }
}

function readLength(buf: Uint8Array, at: number, length: number, width: 1 | 2 | 4): number | undefined {
  if (at + width >= length) return undefined; // the length bytes at+1..at+width are not all here yet
  let n = 0;
  for (let i = 1; i <= width; i++) n = n * 256 + (buf[at + i] as number);
  return n;
}

/** str/bin/ext: header byte, `width` length bytes, `extra` bytes (ext type), then `n` data bytes. */
function sized(buf: Uint8Array, at: number, length: number, width: 1 | 2 | 4, extra: number): Step | undefined {
  const n = readLength(buf, at, length, width);
  if (n === undefined) return undefined;
  return { skip: 1 + width + extra + n, children: 0 };
}

/** array/map: header byte, `width` count bytes, then `n * perItem` nested values. */
function counted(buf: Uint8Array, at: number, length: number, width: 2 | 4, perItem: 1 | 2): Step | undefined {
  const n = readLength(buf, at, length, width);
  if (n === undefined) return undefined;
  return { skip: 1 + width, children: n * perItem };
}
