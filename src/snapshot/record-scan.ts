// The fast path of reading KVS and Tombstone bodies: the DirEntry fields are read straight from the
// msgpack bytes, without building a decoded map, strings or a Decoder per record.
//
// Why: a restore reads every record at least twice (the leader's check of the upload, then every
// server's rebuild of its database), and the general path (measure, decode into a map, parse the map)
// cost about 6 µs a record, most of a 100,000-key restore's time on two cores. This scan costs a fraction.
//
// The contract that keeps it safe: the scan only ever ACCEPTS. It accepts a body when it is a flat map
// whose every key is one of DirEntry's seven field names and whose every value has a shape the
// validating parser (records.ts) accepts and reads the same way; for anything else (an unknown or
// non-string key, a nested or extension value, a float or negative integer, bad UTF-8, a missing
// required field, an empty Key, a body running past the bytes at hand) it declines with undefined, and
// the caller takes the general path, which accepts or refuses with its precise message. (A Flags from
// 2^53 to 2^64-1 is read as a bigint, as the general path reads it; an index from 2^53 is declined.)
// So the scan never accepts what the general path refuses, and never reads a value differently:
// test/unit/snapshot-record-scan.test.ts compares the two on valid and mutated bodies.

import { isUtf8 } from 'node:buffer';
import { isSessionId } from './records.js';
import type { DirEntry } from './types.js';
import type { Uint64 } from './values.js';

export interface ScannedDirEntry {
  readonly entry: DirEntry;
  /** The Key as its UTF-8 bytes (a view into the body). */
  readonly keyBytes: Uint8Array;
  /** Where the body ends: the offset just past the map. */
  readonly end: number;
  /**
   * When the body is byte for byte what encodeKvsRecord(entry) writes (our own snapshots), the offset
   * of the ModifyIndex value, which is then the body's last field; otherwise -1.
   */
  readonly canonicalModifyIndexAt: number;
}

// Field ids, in encodeKvsRecord's order (Go's field order of structs.DirEntry).
const LockIndex = 0;
const Key = 1;
const Flags = 2;
const Value = 3;
const Session = 4;
const CreateIndex = 5;
const ModifyIndex = 6;
const fieldNames = ['LockIndex', 'Key', 'Flags', 'Value', 'Session', 'CreateIndex', 'ModifyIndex'];
const fieldBytes = fieldNames.map((name) => Buffer.from(name, 'latin1'));

const emptyBytes = new Uint8Array(0);
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Scans the DirEntry body starting at `buf[start]`, within `buf[start..limit)`. Returns undefined when
 * the general path must decide (see the header comment). `maxBytes` bounds the body as the general path
 * bounds it.
 */
export function scanDirEntry(buf: Uint8Array, start: number, limit: number, maxBytes: number): ScannedDirEntry | undefined {
  if (limit - start > maxBytes) limit = start + maxBytes;
  let at = start;
  if (at >= limit) return undefined;
  const head = buf[at] as number;
  let count: number;
  if (head >= 0x80 && head <= 0x8f) {
    count = head & 0x0f;
    at += 1;
  } else if (head === 0xde) {
    if (at + 3 > limit) return undefined;
    count = ((buf[at + 1] as number) << 8) | (buf[at + 2] as number);
    at += 3;
  } else {
    return undefined;
  }
  let canonical = head === 0x87;
  let lockIndex = -1;
  let flags: Uint64 = 0;
  let hasFlags = false;
  let createIndex = -1;
  let modifyIndex = -1;
  let modifyIndexAt = -1;
  let keyStart = -1;
  let keyEnd = -1;
  let sessionStart = -1;
  let sessionEnd = -1;
  let value: Uint8Array = emptyBytes;

  for (let i = 0; i < count; i++) {
    // The field name: a fixstr naming a DirEntry field (Go and we write field names as fixstr).
    if (at >= limit) return undefined;
    const nameHead = buf[at] as number;
    if (nameHead < 0xa0 || nameHead > 0xbf) return undefined;
    const nameLength = nameHead & 0x1f;
    const nameStart = at + 1;
    at = nameStart + nameLength;
    if (at > limit) return undefined;
    const field = fieldOf(buf, nameStart, nameLength);
    if (field < 0) return undefined;
    if (field !== i) canonical = false;

    if (at >= limit) return undefined;
    const vHead = buf[at] as number;
    switch (field) {
      case LockIndex:
      case Flags:
      case CreateIndex:
      case ModifyIndex: {
        const valueAt = at;
        let n: number;
        let big: bigint | undefined;
        let minimal: boolean;
        if (vHead <= 0x7f) {
          n = vHead;
          at += 1;
          minimal = true;
        } else if (vHead === 0xcc) {
          if (at + 2 > limit) return undefined;
          n = buf[at + 1] as number;
          at += 2;
          minimal = n >= 0x80;
        } else if (vHead === 0xcd) {
          if (at + 3 > limit) return undefined;
          n = ((buf[at + 1] as number) << 8) | (buf[at + 2] as number);
          at += 3;
          minimal = n > 0xff;
        } else if (vHead === 0xce) {
          if (at + 5 > limit) return undefined;
          n = readUint32(buf, at + 1);
          at += 5;
          minimal = n > 0xffff;
        } else if (vHead === 0xcf) {
          if (at + 9 > limit) return undefined;
          const high = readUint32(buf, at + 1);
          if (high > 0x1fffff) {
            // From 2^53 a bigint (Uint64), for Flags only: the general path refuses such an index, and
            // gives the message.
            if (field !== Flags) return undefined;
            big = (BigInt(high) << 32n) | BigInt(readUint32(buf, at + 5));
            n = 0;
          } else {
            n = high * 0x1_0000_0000 + readUint32(buf, at + 5);
          }
          at += 9;
          minimal = big !== undefined || n > 0xffffffff;
        } else {
          return undefined;
        }
        if (!minimal) canonical = false;
        if (field === LockIndex) lockIndex = n;
        else if (field === Flags) {
          flags = big ?? n;
          hasFlags = true;
        } else if (field === CreateIndex) createIndex = n;
        else {
          modifyIndex = n;
          modifyIndexAt = valueAt;
        }
        break;
      }
      case Key:
      case Session:
      case Value: {
        if (field === Value && vHead === 0xc0) {
          at += 1;
          value = emptyBytes;
          break;
        }
        // str (fixstr, str8/16/32) or bin (bin8/16/32): the general path reads both as bytes.
        let length: number;
        let headerBytes: number;
        let isStr = true;
        let minimalHeader: boolean;
        if (vHead >= 0xa0 && vHead <= 0xbf) {
          length = vHead & 0x1f;
          headerBytes = 1;
          minimalHeader = true;
        } else if (vHead === 0xd9 || vHead === 0xc4) {
          if (at + 2 > limit) return undefined;
          length = buf[at + 1] as number;
          headerBytes = 2;
          isStr = vHead === 0xd9;
          minimalHeader = isStr ? length >= 32 : true;
        } else if (vHead === 0xda || vHead === 0xc5) {
          if (at + 3 > limit) return undefined;
          length = ((buf[at + 1] as number) << 8) | (buf[at + 2] as number);
          headerBytes = 3;
          isStr = vHead === 0xda;
          minimalHeader = length > 0xff;
        } else if (vHead === 0xdb || vHead === 0xc6) {
          if (at + 5 > limit) return undefined;
          length = readUint32(buf, at + 1);
          headerBytes = 5;
          isStr = vHead === 0xdb;
          minimalHeader = length > 0xffff;
        } else {
          return undefined;
        }
        const bodyStart = at + headerBytes;
        const bodyEnd = bodyStart + length;
        if (bodyEnd > limit) return undefined;
        at = bodyEnd;
        if (field === Value) {
          // encodeKvsRecord writes bytes as bin, and no value as nil.
          if (isStr || length === 0 || !minimalHeader) canonical = false;
          value = buf.subarray(bodyStart, bodyEnd);
        } else {
          if (!isStr || !minimalHeader) canonical = false;
          if (field === Key) {
            keyStart = bodyStart;
            keyEnd = bodyEnd;
          } else {
            sessionStart = bodyStart;
            sessionEnd = bodyEnd;
          }
        }
        break;
      }
    }
  }

  // Required by the general path: Key (not empty), Flags, LockIndex, CreateIndex, ModifyIndex.
  if (keyStart < 0 || keyEnd === keyStart || !hasFlags || lockIndex < 0 || createIndex < 0 || modifyIndex < 0) return undefined;
  const keyBytes = buf.subarray(keyStart, keyEnd);
  const key = utf8Text(keyBytes);
  if (key === undefined) return undefined;
  let session = '';
  if (sessionStart >= 0) {
    const decoded = utf8Text(buf.subarray(sessionStart, sessionEnd));
    // A lock holder must be a session ID: the general path says so precisely.
    if (decoded === undefined || (decoded !== '' && !isSessionId(decoded))) return undefined;
    session = decoded;
  } else {
    canonical = false;
  }
  if (count !== 7) canonical = false;
  return {
    entry: { Key: key, Flags: flags, Value: value, Session: session, LockIndex: lockIndex, CreateIndex: createIndex, ModifyIndex: modifyIndex },
    keyBytes,
    end: at,
    canonicalModifyIndexAt: canonical ? modifyIndexAt - start : -1,
  };
}

function readUint32(buf: Uint8Array, at: number): number {
  return (((buf[at] as number) << 24) >>> 0) + (((buf[at + 1] as number) << 16) | ((buf[at + 2] as number) << 8) | (buf[at + 3] as number));
}

/** Which DirEntry field `buf[start..start+length)` names, or -1. */
function fieldOf(buf: Uint8Array, start: number, length: number): number {
  // The lengths tell most names apart: 9 LockIndex, 3 Key, 5 Flags/Value, 7 Session, 11 CreateIndex/ModifyIndex.
  let candidate: number;
  switch (length) {
    case 9: candidate = LockIndex; break;
    case 3: candidate = Key; break;
    case 5: candidate = buf[start] === 0x46 /* F */ ? Flags : Value; break;
    case 7: candidate = Session; break;
    case 11: candidate = buf[start] === 0x43 /* C */ ? CreateIndex : ModifyIndex; break;
    default: return -1;
  }
  const name = fieldBytes[candidate] as Buffer;
  for (let i = 0; i < length; i++) if (buf[start + i] !== name[i]) return -1;
  return candidate;
}

/** Strict UTF-8 decoding (undefined for invalid bytes); ASCII, the common case, without a decoder call. */
function utf8Text(bytes: Uint8Array): string | undefined {
  let ascii = true;
  for (let i = 0; i < bytes.length; i++) {
    if ((bytes[i] as number) > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (ascii) return bytes.length <= 64 ? String.fromCharCode.apply(null, bytes as unknown as number[]) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
  if (!isUtf8(bytes)) return undefined;
  return utf8Decoder.decode(bytes);
}
