// The query string, read as Go's net/url reads it (Consul's handlers see url.Values): pairs split on
// '&', name and value split at the first '=', '+' is a space, %XX escapes decode to bytes. Differences,
// all on input Go would also refuse: a bad escape or bytes that are not UTF-8 give a 400 naming the
// parameter (Consul's wrap() answers such queries with an empty 500), and so does a ';' separator
// (Go >= 1.17 refuses it too).

import { badRequest } from './errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Percent-decodes `text` (with '+' as space when `plusIsSpace`); undefined for a bad escape or non-UTF-8. */
export function percentDecode(text: string, plusIsSpace: boolean): string | undefined {
  if (!text.includes('%') && !(plusIsSpace && text.includes('+'))) return text;
  const bytes: number[] = [];
  const raw = Buffer.from(text, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i] as number;
    if (b === 0x25 /* % */) {
      const hex = raw.subarray(i + 1, i + 3).toString('latin1');
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (b === 0x2b /* + */ && plusIsSpace) {
      bytes.push(0x20);
    } else {
      bytes.push(b);
    }
  }
  try {
    return utf8.decode(Uint8Array.from(bytes));
  } catch {
    return undefined;
  }
}

/** Go's url.QueryEscape: unreserved bytes stay, space becomes '+', the rest %XX (upper case). */
export function goQueryEscape(text: string): string {
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c)) out += c;
    else if (c === ' ') out += '+';
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export class Query {
  private constructor(readonly pairs: ReadonlyArray<readonly [string, string]>) {}

  static readonly empty = new Query([]);

  /** Parses the part of the request target after '?'. Throws HttpError 400 on malformed input. */
  static parse(raw: string): Query {
    if (raw === '') return Query.empty;
    const pairs: Array<readonly [string, string]> = [];
    for (const part of raw.split('&')) {
      if (part === '') continue;
      if (part.includes(';')) {
        throw badRequest(`Invalid query string: ${JSON.stringify(part)} contains ';'; separate parameters with '&' and write ';' as %3B`);
      }
      const eq = part.indexOf('=');
      const rawName = eq === -1 ? part : part.slice(0, eq);
      const rawValue = eq === -1 ? '' : part.slice(eq + 1);
      const name = percentDecode(rawName, true);
      const value = percentDecode(rawValue, true);
      if (name === undefined || value === undefined) {
        throw badRequest(`Invalid query string: ${JSON.stringify(part)} has a malformed %-escape or bytes that are not UTF-8`);
      }
      pairs.push([name, value]);
    }
    return new Query(pairs);
  }

  /** Whether the parameter appears at all, with or without a value (Consul's `_, ok := params[name]`). */
  has(name: string): boolean {
    return this.pairs.some(([n]) => n === name);
  }

  /** The first value of the parameter, '' when absent (Go's Values.Get). */
  get(name: string): string {
    return this.pairs.find(([n]) => n === name)?.[1] ?? '';
  }

  /** Go's url.Values.Encode(): names sorted bytewise, each name's values in order, all query-escaped. */
  encode(): string {
    const byName = new Map<string, string[]>();
    for (const [n, v] of this.pairs) {
      const values = byName.get(n);
      if (values === undefined) byName.set(n, [v]);
      else values.push(v);
    }
    const names = [...byName.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const parts: string[] = [];
    for (const n of names) for (const v of byName.get(n) ?? []) parts.push(`${goQueryEscape(n)}=${goQueryEscape(v)}`);
    return parts.join('&');
  }
}
