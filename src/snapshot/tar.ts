// The few tar header blocks a snapshot archive needs: writing USTAR headers as Go's archive/tar writes
// them for Consul's three files, and reading USTAR, GNU and V7 headers strictly.
//
// Why not tar-stream here: the reader must know exactly where the archive's end marker is (Consul rejects
// bytes after it), must pull bytes at its own pace through bounded buffers, and must refuse links and
// extension headers with its own texts; the writer is a plain generator so backpressure is the consumer's
// pull. Both are ~100 lines over 512-byte blocks. The tests cross-check both against tar-stream.

import { utf8, utf8DecodeStrict } from '../base/index.js';
import { ArchiveError } from './errors.js';

export const tarBlockBytes = 512;
/** Go's writer ends an archive with two zero blocks and no record padding. */
export const tarEndBytes = 2 * tarBlockBytes;
/** The largest size an 11-digit octal field holds (8 GiB - 1); above it the size is written in base-256. */
const octalSizeMax = 8 ** 11 - 1;

export function tarPadding(size: number): number {
  return (tarBlockBytes - (size % tarBlockBytes)) % tarBlockBytes;
}

function putString(block: Uint8Array, at: number, width: number, text: string): void {
  const bytes = utf8(text);
  if (bytes.length > width) throw new RangeError(`tar field too long: ${text}`);
  block.set(bytes, at);
}

/** `width - 1` octal digits and a NUL, as Go writes them. */
function putOctal(block: Uint8Array, at: number, width: number, value: number): void {
  putString(block, at, width, value.toString(8).padStart(width - 1, '0'));
}

/** A regular file's USTAR header: mode 0600, uid/gid 0, the given size and mtime (whole seconds). */
export function encodeTarHeader(name: string, size: number, mtime: Date): Uint8Array {
  const block = new Uint8Array(tarBlockBytes);
  putString(block, 0, 100, name);
  putOctal(block, 100, 8, 0o600);
  putOctal(block, 108, 8, 0);
  putOctal(block, 116, 8, 0);
  if (size <= octalSizeMax) {
    putOctal(block, 124, 12, size);
  } else {
    // GNU base-256: high bit set, big-endian value in the remaining 11 bytes (Go reads it).
    block[124] = 0x80;
    let v = BigInt(size);
    for (let i = 135; i > 124; i--) {
      block[i] = Number(v & 0xffn);
      v >>= 8n;
    }
  }
  putOctal(block, 136, 12, Math.floor(mtime.getTime() / 1000));
  block[156] = 0x30; // '0': regular file
  putString(block, 257, 6, 'ustar\0');
  putString(block, 263, 2, '00');
  putOctal(block, 329, 8, 0);
  putOctal(block, 337, 8, 0);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  putString(block, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return block;
}

export type TarEntryType = 'file' | 'hard link' | 'symbolic link' | 'character device' | 'block device' | 'directory' | 'fifo' | 'other';

export interface TarHeader {
  readonly name: string;
  readonly type: TarEntryType;
  /** The raw type flag, for messages. */
  readonly flag: string;
  readonly size: number;
}

function tarError(detail: string): ArchiveError {
  return new ArchiveError('tar', `failed reading snapshot: archive/tar: invalid tar header (${detail})`);
}

function cString(block: Uint8Array, at: number, width: number): Uint8Array {
  const field = block.subarray(at, at + width);
  const nul = field.indexOf(0);
  return nul === -1 ? field : field.subarray(0, nul);
}

function parseNumber(block: Uint8Array, at: number, width: number, name: string): number {
  const field = block.subarray(at, at + width);
  if (((field[0] as number) & 0x80) !== 0) {
    if (field[0] === 0xff) throw tarError(`negative ${name}`);
    let v = BigInt((field[0] as number) & 0x7f);
    for (let i = 1; i < width; i++) v = (v << 8n) | BigInt(field[i] as number);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw tarError(`${name} too large`);
    return Number(v);
  }
  const text = String.fromCharCode(...field).replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw tarError(`${name} is not an octal number`);
  const n = parseInt(text, 8);
  if (!Number.isSafeInteger(n)) throw tarError(`${name} too large`);
  return n;
}

export function isZeroBlock(block: Uint8Array): boolean {
  for (const b of block) if (b !== 0) return false;
  return true;
}

/** Decodes one non-zero header block; throws ArchiveError('tar') for a bad checksum or field. */
export function decodeTarHeader(block: Uint8Array): TarHeader {
  const stored = parseNumber(block, 148, 8, 'checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < tarBlockBytes; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    unsigned += b;
    signed += b >= 0x80 ? b - 256 : b;
  }
  if (stored !== unsigned && stored !== signed) throw tarError('checksum mismatch');
  const magic = String.fromCharCode(...block.subarray(257, 265));
  let nameBytes = cString(block, 0, 100);
  if (magic === 'ustar\u000000') {
    const prefix = cString(block, 345, 155);
    if (prefix.length > 0) nameBytes = Uint8Array.from([...prefix, 0x2f, ...nameBytes]);
  }
  const name = utf8DecodeStrict(nameBytes);
  if (name === undefined) throw tarError('the file name is not valid UTF-8');
  const flag = String.fromCharCode(block[156] as number);
  const size = parseNumber(block, 124, 12, 'size');
  const types: Record<string, TarEntryType> = {
    '0': 'file', '\0': 'file', '1': 'hard link', '2': 'symbolic link', '3': 'character device',
    '4': 'block device', '5': 'directory', '6': 'fifo',
  };
  if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
    throw new ArchiveError('tar',
      `failed reading snapshot: tar extension header (type '${flag}': pax or GNU long name) is not supported; ` +
        'a snapshot holds three plain files');
  }
  return { name, type: types[flag] ?? 'other', flag, size };
}
