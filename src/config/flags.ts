// A small parser for Go-style command-line flags, the style Consul's CLI uses (Go's `flag` package):
//
//   -name value   -name=value   --name value   --name=value
//   -bool         -bool=true    -bool=false    (a bare boolean flag means true; `-bool false` does NOT
//                                               set false: "false" is then the first positional argument)
//
// Parsing stops at the first argument that is not a flag (one not starting with '-', or '-' alone) or
// right after '--'; everything from there on is returned as positional arguments.
//
// Why not node's util.parseArgs: it treats `-node` as the five short options -n -o -d -e, so it
// cannot parse single-dash long flags, which is the whole point of Consul compatibility. No library
// in the dependency tree does Go-style flags, and the rules fit on a screen, so they live here.
//
// Where Go's `flag` package has an error text, the texts below start with it ("flag provided but not
// defined: -foo", "flag needs an argument: -node") and then add what a person needs to fix it.

export type FlagKind = 'string' | 'int' | 'bool' | 'list';

export interface FlagSpec {
  /** The name without dashes: `config-file`. */
  readonly name: string;
  /** `list` flags may repeat and collect every value; other flags may repeat too, and the last wins. */
  readonly kind: FlagKind;
  /** Placeholder for help: `-node=<name>`. Ignored for bool flags. */
  readonly valueName?: string;
  /** One or two sentences for help. */
  readonly usage: string;
  /** What applies when the flag is absent, as shown in help ("dc1", "the host name"). */
  readonly defaultText?: string;
}

/** One use of a flag on the command line. `int` flags carry a number, `bool` flags a boolean. */
export interface FlagUse {
  readonly name: string;
  readonly value: string | number | boolean;
}

export interface ParsedFlags {
  /** Every flag given, in command-line order (a repeated flag appears once per use). */
  readonly uses: readonly FlagUse[];
  /** Positional arguments left after the flags. */
  readonly args: readonly string[];
}

export type FlagParseResult =
  | { readonly ok: true; readonly flags: ParsedFlags }
  | { readonly ok: false; readonly helpRequested: boolean; readonly message: string };

const helpNames: ReadonlySet<string> = new Set(['h', 'help']);

/** Go's strconv.ParseBool spellings. */
const trueWords: ReadonlySet<string> = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const falseWords: ReadonlySet<string> = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

export function parseFlags(specs: readonly FlagSpec[], argv: readonly string[]): FlagParseResult {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const uses: FlagUse[] = [];
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i]!;
    if (arg.length < 2 || !arg.startsWith('-')) break; // first positional argument
    i++;
    if (arg === '--') break;
    const body = arg.startsWith('--') ? arg.slice(2) : arg.slice(1);
    if (body === '' || body.startsWith('-') || body.startsWith('=')) {
      return failure(`bad flag syntax: ${arg}`);
    }
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    const inlineValue = eq === -1 ? undefined : body.slice(eq + 1);
    const spec = byName.get(name);
    if (spec === undefined) {
      if (helpNames.has(name)) return { ok: false, helpRequested: true, message: 'flag: help requested' };
      return failure(`flag provided but not defined: -${name}${suggestion(name, [...byName.keys()])}`);
    }
    if (spec.kind === 'bool') {
      const value = inlineValue === undefined ? true : parseBool(inlineValue);
      if (value === undefined) {
        return failure(`invalid boolean value "${inlineValue}" for -${name}: must be true or false (write -${name}=false, not -${name} false)`);
      }
      uses.push({ name, value });
      continue;
    }
    let raw = inlineValue;
    if (raw === undefined) {
      const next = argv[i];
      // Go's flag package would take the next argument whatever it is; a flag name there is almost
      // always a forgotten value (`-data-dir -server`), so say so instead of swallowing it.
      if (next === undefined || isDefinedFlag(next, byName)) {
        const got = next === undefined ? 'nothing follows it' : `the next argument is the flag ${next}`;
        return failure(`flag needs an argument: -${name} (${got}); write -${name}=<${spec.valueName ?? 'value'}> or -${name} <${spec.valueName ?? 'value'}>`);
      }
      raw = next;
      i++;
    }
    if (spec.kind === 'int') {
      if (!/^[+-]?\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
        return failure(`invalid value "${raw}" for flag -${name}: must be a whole number`);
      }
      uses.push({ name, value: Number(raw) });
      continue;
    }
    uses.push({ name, value: raw });
  }
  return { ok: true, flags: { uses, args: argv.slice(i) } };
}

/** The last value given for a flag (later wins, as in Go), or undefined when it was not given. */
export function lastFlag(flags: ParsedFlags, name: string): string | number | boolean | undefined {
  let value: string | number | boolean | undefined;
  for (const u of flags.uses) if (u.name === name) value = u.value;
  return value;
}

/** Every value given for a flag, in order. */
export function allFlags(flags: ParsedFlags, name: string): Array<string | number | boolean> {
  return flags.uses.filter((u) => u.name === name).map((u) => u.value);
}

/** True when `arg` is any spelling of a help flag (-h, -help, --help, with or without =value). */
export function isHelpFlag(arg: string): boolean {
  const m = /^--?([^=]+)(=.*)?$/.exec(arg);
  return m !== null && helpNames.has(m[1]!);
}

/**
 * Help for a set of flags in Consul's layout (command/flags/usage.go): `  -name=<value>` and the
 * usage indented by five spaces, wrapped at 72 columns, with the default in parentheses.
 */
export function formatFlagHelp(specs: readonly FlagSpec[]): string {
  const out: string[] = [];
  for (const s of [...specs].sort((a, b) => a.name.localeCompare(b.name))) {
    out.push(s.kind === 'bool' ? `  -${s.name}` : `  -${s.name}=<${s.valueName ?? 'value'}>`);
    const usage = s.defaultText === undefined ? s.usage : `${s.usage} (default: ${s.defaultText})`;
    out.push(...wrap(usage, 72 - 5).map((line) => `     ${line}`), '');
  }
  return out.join('\n');
}

/** Greedy word wrap; a word longer than the width gets a line of its own. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line === '') line = word;
    else if (line.length + 1 + word.length <= width) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** `; did you mean -x?` when one known name is close enough to be a likely typo, else ''. */
export function suggestion(name: string, known: readonly string[], prefix = '-'): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  const limit = Math.max(1, Math.min(3, Math.floor(name.length / 3)));
  return best !== undefined && bestDistance <= limit ? `; did you mean ${prefix}${best}?` : '';
}

/** Levenshtein distance; inputs are short flag and key names. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur.push(Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

function parseBool(s: string): boolean | undefined {
  if (trueWords.has(s)) return true;
  if (falseWords.has(s)) return false;
  return undefined;
}

function isDefinedFlag(arg: string, byName: ReadonlyMap<string, FlagSpec>): boolean {
  const m = /^--?([^=-][^=]*)(=.*)?$/.exec(arg);
  return m !== null && (byName.has(m[1]!) || helpNames.has(m[1]!));
}

function failure(message: string): FlagParseResult {
  return { ok: false, helpRequested: false, message };
}
