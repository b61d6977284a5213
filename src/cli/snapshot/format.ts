// Output formatting for `conclave snapshot inspect` and `decode`, matching what Consul prints, so scripts
// written against `consul snapshot inspect` read ours the same way:
//
// - byteSize: Consul's ByteSize (command/snapshot/inspect/formatter.go): 1024-based units B, KB, MB, GB,
//   TB, one decimal rounded as Go's strconv.FormatFloat rounds (to nearest, ties to even), a trailing
//   ".0" removed, and "0" for zero.
// - tabwrite: Go's text/tabwriter (left-aligned, space padding, no flags): a cell ended by a tab belongs
//   to a column; the column's width over a block of consecutive lines that have that cell is
//   max(minwidth, widest cell + padding); the last cell of a line is never padded.
// - goJson: Go's encoding/json output: objects keep their key order, []byte values (Uint8Array) are
//   base64, big integers print as digits, and <, >, & and U+2028/U+2029 are escaped as Go escapes them.

/** Consul's ByteSize. `bytes` may be a bigint for sizes beyond 2^53. */
export function byteSize(bytes: number | bigint): string {
  const b = BigInt(bytes);
  if (b < 0n) throw new RangeError(`byteSize of a negative size: ${b}`);
  if (b === 0n) return '0';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'] as const;
  let power = 0;
  while (power < units.length - 1 && b >= 1n << BigInt(10 * (power + 1))) power++;
  const divisor = 1n << BigInt(10 * power);
  // value = b / divisor exactly (a power of two); round value*10 to an integer, ties to even.
  const scaled = b * 10n;
  let tenths = scaled / divisor;
  const rest = scaled % divisor;
  if (rest * 2n > divisor || (rest * 2n === divisor && tenths % 2n === 1n)) tenths++;
  const whole = tenths / 10n;
  const fraction = tenths % 10n;
  return `${whole}${fraction === 0n ? '' : `.${fraction}`}${units[power]}`;
}

/** byteSize with a space before the unit, for progress lines: "12.3 MB". */
export function humanBytes(bytes: number): string {
  const s = byteSize(Math.max(0, Math.floor(bytes)));
  return s === '0' ? '0 B' : s.replace(/([A-Z]+)$/, ' $1');
}

export interface TabwriterOptions {
  readonly minwidth: number;
  readonly padding: number;
}

/** Go's tabwriter.NewWriter(w, minwidth, tabwidth, padding, ' ', 0) over `text`, flushed. */
export function tabwrite(text: string, opts: TabwriterOptions): string {
  const lines = text.split('\n').map((line) => line.split('\t'));
  const widths: number[] = [];
  const out: string[] = [];
  const width = (s: string): number => Array.from(s).length;

  const writeLines = (line0: number, line1: number): void => {
    for (let i = line0; i < line1; i++) {
      const cells = lines[i]!;
      let s = '';
      cells.forEach((cell, j) => {
        s += cell;
        // Every cell but the last is tab-terminated, and is padded when its column has a width here.
        if (j < cells.length - 1 && j < widths.length) s += ' '.repeat(Math.max(0, widths[j]! - width(cell)));
      });
      out.push(s);
    }
  };

  const format = (line0: number, line1: number): void => {
    const column = widths.length;
    let start = line0;
    for (let row = line0; row < line1; row++) {
      if (column >= lines[row]!.length - 1) continue;
      // A block of lines with a tab-terminated cell in this column starts here.
      writeLines(start, row);
      start = row;
      let w = opts.minwidth;
      for (; row < line1; row++) {
        const cells = lines[row]!;
        if (column >= cells.length - 1) break;
        w = Math.max(w, width(cells[column]!) + opts.padding);
      }
      widths.push(w);
      format(start, row);
      widths.pop();
      start = row;
      row--; // the loop's row++ must look at the line that ended the block
    }
    writeLines(start, line1);
  };

  format(0, lines.length);
  return out.join('\n');
}

/** One statistics row of `inspect`: a record type, or a KV key prefix. */
export interface TypeStats {
  readonly Name: string;
  readonly Sum: number;
  readonly Count: number;
}

/** What inspect prints: Consul's OutputFormat (field order as Go's JSON emits it). */
export interface InspectOutput {
  readonly Meta: { readonly ID: string; readonly Size: number; readonly Index: number; readonly Term: number; readonly Version: number };
  readonly Stats: readonly TypeStats[];
  /** null unless -kvdetails found at least one KV entry (Go's nil slice). */
  readonly StatsKV: readonly TypeStats[] | null;
  readonly TotalSize: number;
  readonly TotalSizeKV: number;
}

/** Consul's order: by size descending, then by name ascending (byte order, as Go compares strings). */
export function sortStats(stats: Iterable<TypeStats>): TypeStats[] {
  return [...stats].sort((a, b) => (a.Sum !== b.Sum ? b.Sum - a.Sum : compareBytes(a.Name, b.Name)));
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The pretty layout of `consul snapshot inspect` (formatter.go), without the final newline. */
export function formatInspectPretty(info: InspectOutput): string {
  let t = '';
  t += ` ID\t${info.Meta.ID}`;
  t += `\n Size\t${info.Meta.Size}`;
  t += `\n Index\t${info.Meta.Index}`;
  t += `\n Term\t${info.Meta.Term}`;
  t += `\n Version\t${info.Meta.Version}`;
  t += '\n';
  t += '\n Type\tCount\tSize\n';
  t += ' ----\t----\t----';
  for (const s of info.Stats) t += `\n ${s.Name}\t${s.Count}\t${byteSize(s.Sum)}`;
  t += '\n ----\t----\t----';
  t += `\n Total\t\t${byteSize(info.TotalSize)}`;
  if (info.StatsKV !== null) {
    t += '\n';
    t += '\n Key Name\tCount\tSize\n';
    t += ' ----\t----\t----';
    for (const s of info.StatsKV) t += `\n ${s.Name}\t${s.Count}\t${byteSize(s.Sum)}`;
    t += '\n ----\t----\t----';
    t += `\n Total\t\t${byteSize(info.TotalSizeKV)}`;
  }
  return tabwrite(t, { minwidth: 8, padding: 6 });
}

/** The JSON layout of `consul snapshot inspect -format json`: json.MarshalIndent(info, "", "   "). */
export function formatInspectJson(info: InspectOutput, extra: Readonly<Record<string, unknown>> = {}): string {
  return goJson({ ...info, ...extra }, '   ');
}

const goEscapes: Readonly<Record<string, string>> = { '<': '\\u003c', '>': '\\u003e', '&': '\\u0026', '\u2028': '\\u2028', '\u2029': '\\u2029' };

function goString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => goEscapes[c]!);
}

/**
 * Go's encoding/json for decoded snapshot values: compact without `indent` (json.Encoder / Marshal),
 * else MarshalIndent's layout. Keys keep insertion order (a Map's keys print as strings), Uint8Array is
 * base64 as Go prints []byte, bigint prints as its digits, undefined as null.
 */
export function goJson(value: unknown, indent = ''): string {
  const nl = indent === '' ? '' : '\n';
  const sep = indent === '' ? ':' : ': ';
  const walk = (v: unknown, depth: string): string => {
    if (v === null || v === undefined) return 'null';
    if (typeof v === 'string') return goString(v);
    if (typeof v === 'bigint') return v.toString();
    if (typeof v === 'number') return Number.isFinite(v) ? String(v) : 'null';
    if (typeof v === 'boolean') return v ? 'true' : 'false';
    if (v instanceof Uint8Array) return goString(Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64'));
    const inner = depth + indent;
    if (Array.isArray(v)) {
      if (v.length === 0) return '[]';
      return `[${nl}${v.map((x) => inner + walk(x, inner)).join(`,${nl}`)}${nl}${depth}]`;
    }
    if (v instanceof Date) return goString(v.toISOString());
    const entries: Array<[string, unknown]> = v instanceof Map ? [...v.entries()].map(([k, x]) => [String(k), x]) : Object.entries(v as object);
    if (entries.length === 0) return '{}';
    return `{${nl}${entries.map(([k, x]) => `${inner}${goString(k)}${sep}${walk(x, inner)}`).join(`,${nl}`)}${nl}${depth}}`;
  };
  return walk(value, '');
}
