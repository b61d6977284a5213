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

/** Compiles `pattern` with RE2 (Go's syntax); throws GoRegexpError with Go's text. */
export function compileGoRegexp(pattern: string): LinearRegexp {
  let compiled: InstanceType<typeof re2.RE2>;
  try {
    compiled = new re2.RE2(pattern, 'u');
  } catch (error) {
    throw new GoRegexpError(goMessage(pattern, error));
  }
  return { source: pattern, test: (text) => compiled.test(text) };
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
