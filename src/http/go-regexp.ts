// Go's regexp for ?filter's `matches` (filter.ts): RE2, through Google's own RE2 compiled to WebAssembly
// (npm re2-wasm). Go's regexp package implements RE2's syntax and its guarantee, and that guarantee is
// why: a match runs in time linear in the text whatever the pattern, while Node's RegExp backtracks (a
// hostile `(a|a)*b` or `(a+)+$` would take exponential time on a short string, and a filter runs on the
// server for every entry of an answer). re2-wasm needs no native build and matches with RE2 itself.
//
// Only "does it match anywhere" is asked (Go's regexp.MatchString). RE2's refusals (backreferences,
// lookaround, bad classes, repeat counts over 1000) become Go's texts: `error parsing regexp: <what>:
// \`<where>\``, RE2's wording mapped to Go's where they differ.

import re2 from 're2-wasm';

export class GoRegexpError extends Error {
  override readonly name = 'GoRegexpError';
}

/** A compiled pattern. */
export interface LinearRegexp {
  readonly source: string;
  /** Whether the pattern matches anywhere in `text` (Go's regexp.MatchString). */
  test(text: string): boolean;
}

/** RE2's error codes as Go's regexp/syntax words them. */
const goWording: ReadonlyArray<readonly [string, string]> = [
  ['missing )', 'missing closing )'],
  ['missing ]', 'missing closing ]'],
  ['no argument for repetition operator', 'missing argument to repetition operator'],
  ['bad repetition operator', 'invalid nested repetition operator'],
  ['invalid repetition size', 'invalid repeat count'],
  ['invalid perl operator', 'invalid or unsupported Perl syntax'],
  ['invalid named capture group', 'invalid named capture'],
  ['trailing \\', 'trailing backslash at end of expression'],
];

type Compiled = InstanceType<typeof re2.RE2>;

/**
 * Compiled patterns (and refusals), most recently used last. RE2 objects live in the WebAssembly heap,
 * which is fixed (16 MiB) and never collected: each must be deleted by hand. Keeping the last few and
 * deleting what falls out bounds that memory whatever the clients send; a dashboard polling one filter
 * compiles it once.
 */
const cache = new Map<string, Compiled | GoRegexpError>();
const cacheMaxEntries = 64;

/**
 * Compiles `pattern` with RE2 (Go's syntax); throws GoRegexpError with Go's text. The handle looks the
 * compiled pattern up at each test (compiling it again if it was evicted meanwhile): a filter is built
 * before its read and used after it, and other requests may evict in between, while one test call is
 * synchronous, so no deleted pattern is ever used.
 */
export function compileGoRegexp(pattern: string): LinearRegexp {
  compiled(pattern);
  return { source: pattern, test: (text) => compiled(pattern).test(text) };
}

function compiled(pattern: string): Compiled {
  let entry = cache.get(pattern);
  if (entry !== undefined) cache.delete(pattern);
  else {
    try {
      entry = new re2.RE2(pattern, 'u');
    } catch (error) {
      // (RE2 allocated the refused pattern too, and the library gives no handle on it: caching the
      // refusal at least keeps a repeated bad filter from allocating again.)
      entry = new GoRegexpError(goMessage(pattern, error));
    }
  }
  cache.set(pattern, entry);
  while (cache.size > cacheMaxEntries) {
    const [oldest, evicted] = cache.entries().next().value as [string, Compiled | GoRegexpError];
    cache.delete(oldest);
    if (!(evicted instanceof GoRegexpError)) (evicted as unknown as { wrapper: { delete(): void } }).wrapper.delete();
  }
  if (entry instanceof GoRegexpError) throw entry;
  return entry;
}

/** "Invalid regular expression: /<p>/u: <what>: <where>" -> "error parsing regexp: <what>: `<where>`". */
function goMessage(pattern: string, error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const prefix = `Invalid regular expression: /${pattern}/u: `;
  const detail = message.startsWith(prefix) ? message.slice(prefix.length) : message;
  for (const [re2Words, goWords] of goWording) {
    // Go prints the offending text after every error; RE2 leaves it out when it is empty.
    if (detail === re2Words) return `error parsing regexp: ${goWords}: \`\``;
    if (detail.startsWith(`${re2Words}: `)) return `error parsing regexp: ${goWords}: \`${detail.slice(re2Words.length + 2)}\``;
  }
  const colon = detail.indexOf(': ');
  return colon < 0 ? `error parsing regexp: ${detail}` : `error parsing regexp: ${detail.slice(0, colon)}: \`${detail.slice(colon + 2)}\``;
}
