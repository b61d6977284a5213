// ?filter: Consul's filter expressions (https://developer.hashicorp.com/consul/api-docs/features/filtering)
// on the catalog, health and agent list endpoints. Consul runs them with hashicorp/go-bexpr at v0.1.2 (its
// go.mod pins that version: `bexpr.CreateFilter(args.Filter, nil, reply.Nodes)` is v0.1.2's API, whose
// selectors are checked against the Go type of the answer's elements). This file is our own parser and
// evaluator with the same grammar and semantics, over the JSON answers (already in Consul's shape, so a
// selector is a Go field name: `ServiceTags`, `NodeMeta.env`, `Service.Tags`, `Checks.Status`).
//
// Grammar (go-bexpr's grammar.peg; keywords are lower case, `_` is one or more of space, tab, CR, LF):
//   Input      <- _? Or _? EOF
//   Or         <- And (_ "or" _ And)*            And <- Not (_ "and" _ Not)*
//   Not        <- "not" _ Not / "(" _? Or _? ")" / Match
//   Match      <- Selector _? ("==" / "!=") _? Value
//               / Selector _ ("contains" / "not" _ "contains" / "matches" / "not" _ "matches") _ Value
//               / Selector _ "is" _ ("empty" / "not" _ "empty")
//               / Value _ ("in" / "not" _ "in") _ Selector
//   Selector   <- Identifier ("." Identifier / "[" _? String _? "]")*      Identifier <- [a-zA-Z][a-zA-Z0-9_]*
//   Value      <- Selector (taken as its text, "a.b") / Number / String
//   Number     <- "-"? ("0" / [1-9][0-9]*) ("." [0-9]+)?, followed by whitespace, ")" or the end
//   String     <- "..." (Go's escapes, \n \t \xFF \u00e9 ...; it ends at the first ") / `...` (raw)
// `contains` is `in` with its operands swapped. `or` binds loosest, then `and`, then `not`.
//
// Selectors are checked before anything is read, against the element type of the endpoint's answer
// (`filterSchemas`, Consul's Go structs): an unknown one is `Selector "X" is not valid`; an operator the
// field's type does not take is `Invalid match operator "Is Empty" for selector "X"`. By type:
//   string            == != in (substring) not in matches not matches
//   int, bool         == != (the value is converted as Go's strconv.ParseInt(v, 0, 64) / ParseBool)
//   list of strings   in (an element equals) not in, is empty, is not empty
//   list of objects   is empty, is not empty; a longer selector goes through it (below)
//   map               in (has the key) not in, is empty, is not empty; `M.key` / `M["key"]` selects a value
// Values are converted once, when the filter is built: `Failed to coerce value "x" for selector "Port": ...`.
//
// Evaluation, as go-bexpr v0.1.2's evaluateMatchExpressionRecurse:
// - A selector passing through a list (`Checks.Status`, `Service.Proxy.Upstreams.DestinationName`) is
//   true when the operator, negated ones included, holds for ANY element: `Checks.Status == critical`
//   is "some check is critical", `Checks.Status != passing` is "some check is not passing" (to say
//   "no check is critical", write `not Checks.Status == critical`). With no elements it is false for
//   every operator, `!=` and `not in` too. ("operations on slices are implicity ANY operations".)
// - A map key that is absent (`Meta.env` on a node without it, or a null map): `==`, `in`, `is not empty`
//   and `matches` are false; `!=`, `not in`, `is empty` and `not matches` are true. (v0.1.2 answers
//   `matches` true there, which later go-bexpr releases fixed; we take the fix.)
// - A field the JSON leaves out (Conclave has no Connect proxies, so no `ServiceProxy`) is its Go zero
//   value: "", 0, false, empty.
//
// Errors are a 400 `Failed to create boolean expression evaluator: <reason>` (Consul's text before the
// reason; syntax errors name the line:column (offset) they were found at). Bounds (httpLimits): a filter
// of at most 4 KiB, parentheses and `not` nested at most 64 deep, `matches` patterns of at most 512
// characters (go-regexp.ts: RE2 itself, Go's syntax, matched without backtracking). Evaluation is one
// pass over each answer element per match expression, and RE2 matches in time linear in the value, so
// the work is linear in the answer.

import { assert } from '../base/index.js';
import { badRequest } from './errors.js';
import { compileGoRegexp, GoRegexpError, type LinearRegexp } from './go-regexp.js';
import { goQuote, isJsonObject } from './json.js';
import { httpLimits } from './limits.js';
import type { RequestContext } from './reply.js';

/** A ?filter that cannot be built; its message follows Consul's prefix in the 400. */
export class FilterError extends Error {
  override readonly name = 'FilterError';
}

/** Consul's text before every reason a filter is refused. */
export const filterErrorPrefix = 'Failed to create boolean expression evaluator: ';

// ---------------------------------------------------------------------------------------------------
// The element types of the answers: Consul's Go structs, the fields go-bexpr may select
// ---------------------------------------------------------------------------------------------------

export type FieldType =
  | { readonly kind: 'string' | 'int' | 'bool' }
  | { readonly kind: 'list'; readonly elem: FieldType }
  | { readonly kind: 'map'; readonly elem: FieldType }
  | { readonly kind: 'struct'; readonly fields: ReadonlyMap<string, FieldType> };

const str: FieldType = { kind: 'string' };
const int: FieldType = { kind: 'int' };
const bool: FieldType = { kind: 'bool' };
const list = (elem: FieldType): FieldType => ({ kind: 'list', elem });
const map = (elem: FieldType): FieldType => ({ kind: 'map', elem });
const struct = (fields: Record<string, FieldType>): FieldType => ({ kind: 'struct', fields: new Map(Object.entries(fields)) });

const weights = struct({ Passing: int, Warning: int });
const serviceAddress = struct({ Address: str, Port: int });
const meshGateway = struct({ Mode: str });
/** structs.ConnectProxyConfig, as Consul's filtering tables list it. */
const proxy = struct({
  DestinationServiceName: str, DestinationServiceID: str, LocalServiceAddress: str, LocalServicePort: int, Mode: str,
  TransparentProxy: struct({ OutboundListenerPort: int }),
  MeshGateway: meshGateway,
  Upstreams: list(struct({
    DestinationType: str, DestinationNamespace: str, DestinationName: str, Datacenter: str, LocalBindAddress: str, LocalBindPort: int,
    MeshGateway: meshGateway,
  })),
});
const connect = struct({ Native: bool });

/** structs.Node (RaftIndex is `bexpr:"-"`). */
const node = struct({ ID: str, Node: str, Address: str, Datacenter: str, TaggedAddresses: map(str), Meta: map(str) });
/** structs.NodeService, and api.AgentService (the same selectors). */
const service = struct({
  Kind: str, ID: str, Service: str, Tags: list(str), Address: str, TaggedAddresses: map(serviceAddress), Meta: map(str), Port: int,
  Weights: weights, EnableTagOverride: bool, Proxy: proxy, Connect: connect,
});
/** structs.HealthCheck (Definition, RaftIndex are `bexpr:"-"`). */
const check = struct({
  Node: str, CheckID: str, Name: str, Status: str, Notes: str, Output: str, ServiceID: str, ServiceName: str, ServiceTags: list(str), Type: str,
});

export const filterSchemas = {
  /** /v1/catalog/nodes */
  node,
  /** /v1/catalog/service/<name>: structs.ServiceNode. */
  catalogService: struct({
    ID: str, Node: str, Address: str, Datacenter: str, TaggedAddresses: map(str), NodeMeta: map(str),
    ServiceKind: str, ServiceID: str, ServiceName: str, ServiceTags: list(str), ServiceAddress: str,
    ServiceTaggedAddresses: map(serviceAddress), ServiceWeights: weights, ServiceMeta: map(str), ServicePort: int,
    ServiceEnableTagOverride: bool, ServiceProxy: proxy, ServiceConnect: connect,
  }),
  /** The Services of /v1/catalog/node/<node> and /v1/catalog/node-services/<node>; /v1/agent/services. */
  service,
  /** /v1/health/node, /v1/health/checks, /v1/health/state; /v1/agent/checks. */
  check,
  /** /v1/health/service/<name>: structs.CheckServiceNode. */
  healthService: struct({ Node: node, Service: service, Checks: list(check) }),
} as const;

// ---------------------------------------------------------------------------------------------------
// The syntax tree
// ---------------------------------------------------------------------------------------------------

export type MatchOperator = '==' | '!=' | 'in' | 'not in' | 'is empty' | 'is not empty' | 'matches' | 'not matches';

export type FilterExpression =
  | { readonly type: 'or' | 'and'; readonly left: FilterExpression; readonly right: FilterExpression }
  | { readonly type: 'not'; readonly operand: FilterExpression }
  | {
    readonly type: 'match';
    readonly selector: readonly string[];
    readonly operator: MatchOperator;
    /** The value's text (a string literal unquoted, a bare word or selector as written, a number's digits); absent for is (not) empty. */
    readonly value?: string;
  };

/** go-bexpr's names of the operators, as its errors print them. */
const operatorNames: Readonly<Record<MatchOperator, string>> = {
  '==': 'Equal', '!=': 'Not Equal', in: 'In', 'not in': 'Not In', 'is empty': 'Is Empty', 'is not empty': 'Is Not Empty',
  matches: 'Matches', 'not matches': 'Not Matches',
};

// ---------------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------------

/** Parses a filter expression; throws FilterError naming the line:column (offset) of a syntax error. */
export function parseFilter(text: string, maxNesting: number = httpLimits.filterMaxNesting): FilterExpression {
  return new FilterParser(text, maxNesting).parse();
}

const isLetter = (c: string | undefined): boolean => c !== undefined && /^[a-zA-Z]$/.test(c);
const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';
const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n';

/**
 * A recursive-descent reading of go-bexpr's PEG. Where the PEG backtracks (a bare word before `in`
 * is a value, not a selector) this tries the same alternatives in the same order; where it would
 * re-parse the same text (And in `And _ "or" _ Or / And`) the first result is kept, so parsing is linear.
 */
class FilterParser {
  private pos = 0;
  private farthest = -1;
  private expected: string[] = [];
  private depth = 0;

  constructor(private readonly src: string, private readonly maxNesting: number) {}

  parse(): FilterExpression {
    this.ws();
    const expr = this.or();
    if (expr !== undefined) {
      this.ws();
      if (this.pos === this.src.length) return expr;
      this.expect('"and"', '"or"', 'the end');
    }
    throw this.syntaxError();
  }

  // --- errors ---

  private location(at: number): string {
    const before = this.src.slice(0, at);
    const line = before.split('\n').length;
    const column = at - (before.lastIndexOf('\n') + 1) + 1;
    return `${line}:${column} (${at})`;
  }

  private errorAt(at: number, message: string): FilterError {
    return new FilterError(`${this.location(at)}: ${message}`);
  }

  /** Records what would have let the parse go on at the cursor (the farthest such place is reported). */
  private expect(...labels: string[]): void {
    if (this.pos > this.farthest) {
      this.farthest = this.pos;
      this.expected = [];
    }
    if (this.pos === this.farthest) for (const l of labels) if (!this.expected.includes(l)) this.expected.push(l);
  }

  private syntaxError(): FilterError {
    const at = Math.max(this.farthest, 0);
    const rest = this.src.slice(at);
    const found = rest === '' ? 'the end of the filter' : goQuote(rest.length > 20 ? `${rest.slice(0, 20)}...` : rest);
    const wanted = this.expected.length === 0 ? '' : `; expected ${this.expected.slice(0, -1).join(', ')}${this.expected.length > 1 ? ' or ' : ''}${this.expected.at(-1)}`;
    return this.errorAt(at, `syntax error at ${found}${wanted}`);
  }

  private enter(at: number): void {
    if (++this.depth > this.maxNesting) throw this.errorAt(at, `the expression nests parentheses and "not" more than ${this.maxNesting} deep`);
  }

  // --- lexical ---

  /** Skips whitespace; whether there was any. */
  private ws(): boolean {
    const start = this.pos;
    while (isSpace(this.src[this.pos])) this.pos++;
    return this.pos > start;
  }

  /** `_ w1 _ w2 ...` (and a trailing `_` when `trailing`): consumed, or nothing consumed. */
  private words(words: readonly string[], trailing: boolean): boolean {
    const save = this.pos;
    for (const w of words) {
      const hadSpace = this.ws();
      if (!hadSpace || !this.src.startsWith(w, this.pos)) {
        this.expect(`"${w}"`);
        this.pos = save;
        return false;
      }
      this.pos += w.length;
    }
    if (trailing && !isSpace(this.src[this.pos])) {
      this.expect('a space');
      this.pos = save;
      return false;
    }
    if (trailing) this.ws();
    return true;
  }

  // --- expressions ---

  private or(): FilterExpression | undefined {
    return this.binary('or', () => this.and());
  }

  private and(): FilterExpression | undefined {
    return this.binary('and', () => this.not());
  }

  /** `operand (_ keyword _ operand)*`, right-associative as go-bexpr builds it. */
  private binary(keyword: 'or' | 'and', operand: () => FilterExpression | undefined): FilterExpression | undefined {
    const first = operand();
    if (first === undefined) return undefined;
    const items = [first];
    for (;;) {
      const save = this.pos;
      if (!this.words([keyword], true)) break;
      const next = operand();
      if (next === undefined) {
        this.pos = save;
        break;
      }
      items.push(next);
    }
    let tree = items.pop() as FilterExpression;
    while (items.length > 0) tree = { type: keyword, left: items.pop() as FilterExpression, right: tree };
    return tree;
  }

  private not(): FilterExpression | undefined {
    const save = this.pos;
    if (this.src.startsWith('not', this.pos) && isSpace(this.src[this.pos + 3])) {
      this.enter(this.pos);
      this.pos += 3;
      this.ws();
      const operand = this.not();
      this.depth--;
      // go-bexpr folds `not not X` to X.
      if (operand !== undefined) return operand.type === 'not' ? operand.operand : { type: 'not', operand };
      this.pos = save; // `not` may be a selector or a value: `not == x`, `not in Tags`
    }
    return this.group();
  }

  private group(): FilterExpression | undefined {
    if (this.src[this.pos] !== '(') {
      this.expect('a selector', '"("');
      return this.match();
    }
    const open = this.pos;
    this.enter(open);
    this.pos++;
    this.ws();
    const inner = this.or();
    this.depth--;
    if (inner === undefined) {
      this.pos = open;
      return undefined;
    }
    this.ws();
    if (this.src[this.pos] === ')') {
      this.pos++;
      return inner;
    }
    this.expect('"and"', '"or"', '")"');
    throw this.syntaxError();
  }

  private match(): FilterExpression | undefined {
    const start = this.pos;
    if (isLetter(this.src[start])) {
      const selector = this.selector();
      const afterSelector = this.pos;
      const operator = this.valueOperator();
      if (operator !== undefined) {
        const value = this.value();
        if (value !== undefined) return { type: 'match', selector, operator, value };
      }
      this.pos = afterSelector;
      if (this.words(['is', 'empty'], false)) return { type: 'match', selector, operator: 'is empty' };
      if (this.words(['is', 'not', 'empty'], false)) return { type: 'match', selector, operator: 'is not empty' };
      this.pos = start;
    }
    // Value _ ("in" / "not" _ "in") _ Selector
    const value = this.value();
    if (value === undefined) return undefined;
    const operator = this.words(['in'], true) ? 'in' : this.words(['not', 'in'], true) ? 'not in' : undefined;
    if (operator === undefined) {
      this.pos = start;
      return undefined;
    }
    if (!isLetter(this.src[this.pos])) {
      throw this.errorAt(this.pos, `invalid selector: "${operator}" must be followed by a selector (a field name such as ServiceTags)`);
    }
    return { type: 'match', selector: this.selector(), operator, value };
  }

  /** `_? "==" _?`, `_? "!=" _?`, `_ "contains" _`, `_ "not" _ "contains" _`, `_ "matches" _`, `_ "not" _ "matches" _`. */
  private valueOperator(): MatchOperator | undefined {
    for (const [symbol, operator] of [['==', '=='], ['!=', '!=']] as const) {
      const save = this.pos;
      this.ws();
      if (this.src.startsWith(symbol, this.pos)) {
        this.pos += symbol.length;
        this.ws();
        return operator;
      }
      this.expect(`"${symbol}"`);
      this.pos = save;
    }
    if (this.words(['contains'], true)) return 'in';
    if (this.words(['not', 'contains'], true)) return 'not in';
    if (this.words(['matches'], true)) return 'matches';
    if (this.words(['not', 'matches'], true)) return 'not matches';
    this.expect('"is"');
    return undefined;
  }

  private selector(): string[] {
    const path = [this.identifier()];
    for (;;) {
      const c = this.src[this.pos];
      if (c === '.' && isLetter(this.src[this.pos + 1])) {
        this.pos++;
        path.push(this.identifier());
      } else if (c === '[') {
        this.pos++;
        this.ws();
        const q = this.src[this.pos];
        if (q !== '"' && q !== '`') throw this.errorAt(this.pos, 'invalid index: write a map key as ["key"]');
        path.push(this.string());
        this.ws();
        if (this.src[this.pos] !== ']') throw this.errorAt(this.pos, 'unclosed index expression: expected "]"');
        this.pos++;
      } else {
        return path;
      }
    }
  }

  private identifier(): string {
    const start = this.pos;
    assert(isLetter(this.src[start]), 'an identifier starts with a letter');
    this.pos++;
    while (/^[a-zA-Z0-9_]$/.test(this.src[this.pos] ?? '')) this.pos++;
    return this.src.slice(start, this.pos);
  }

  /** Selector (its text) / Number / String; undefined (nothing consumed) when none starts here. */
  private value(): string | undefined {
    const c = this.src[this.pos];
    if (isLetter(c)) return this.selector().join('.');
    if (c === '"' || c === '`') return this.string();
    if (c === '-' || isDigit(c)) {
      const n = this.number();
      if (n !== undefined) return n;
    }
    this.expect('a value ("text", `text`, a number or a word)');
    return undefined;
  }

  private number(): string | undefined {
    const start = this.pos;
    let i = start;
    if (this.src[i] === '-') i++;
    if (this.src[i] === '0') i++;
    else if (isDigit(this.src[i])) while (isDigit(this.src[i])) i++;
    else return undefined;
    if (this.src[i] === '.' && isDigit(this.src[i + 1])) {
      i++;
      while (isDigit(this.src[i])) i++;
    }
    const after = this.src[i];
    if (after !== undefined && !isSpace(after) && after !== ')') {
      throw this.errorAt(start, `invalid number literal ${goQuote(this.src.slice(start, i + 1))}: a number ends at a space, ")" or the end (quote other values)`);
    }
    this.pos = i;
    return this.src.slice(start, i);
  }

  /** A "double-quoted" (Go's strconv.Unquote) or `raw` string at the cursor. */
  private string(): string {
    const start = this.pos;
    const quote = this.src[start] as '"' | '`';
    const end = this.src.indexOf(quote, start + 1);
    if (end === -1) throw this.errorAt(start, 'unterminated string literal');
    this.pos = end + 1;
    const body = this.src.slice(start + 1, end);
    if (quote === '`') return body.replaceAll('\r', '');
    const text = unquoteGo(body);
    if (text === undefined) {
      throw this.errorAt(start, `invalid string literal ${this.src.slice(start, end + 1)}: invalid syntax (Go's escapes: \\n \\t \\\\ \\xFF \\u00e9 ...; a " cannot be escaped: use \`...\`)`);
    }
    if (text === null) throw this.errorAt(start, `invalid string literal ${this.src.slice(start, end + 1)}: its escapes make bytes that are not UTF-8`);
    return text;
  }
}

/** Go's strconv.Unquote of `"body"`: the text; undefined for invalid syntax; null when the bytes are not UTF-8. */
function unquoteGo(body: string): string | undefined | null {
  if (!body.includes('\\')) return body.includes('\n') ? undefined : body;
  const bytes: number[] = [];
  const chars = Array.from(body);
  const hex = (from: number, count: number): number | undefined => {
    const digits = chars.slice(from, from + count).join('');
    return digits.length === count && /^[0-9a-fA-F]+$/.test(digits) ? parseInt(digits, 16) : undefined;
  };
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i] as string;
    if (c === '\n') return undefined;
    if (c !== '\\') {
      bytes.push(...Buffer.from(c, 'utf8'));
      continue;
    }
    const e = chars[++i];
    const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, '"': 34 };
    if (e === undefined) return undefined;
    if (e in simple) {
      bytes.push(simple[e] as number);
    } else if (e === 'x') {
      const v = hex(i + 1, 2);
      if (v === undefined) return undefined;
      bytes.push(v);
      i += 2;
    } else if (e >= '0' && e <= '7') {
      const digits = chars.slice(i, i + 3).join('');
      if (!/^[0-7]{3}$/.test(digits) || parseInt(digits, 8) > 255) return undefined;
      bytes.push(parseInt(digits, 8));
      i += 2;
    } else if (e === 'u' || e === 'U') {
      const n = e === 'u' ? 4 : 8;
      const v = hex(i + 1, n);
      if (v === undefined || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return undefined;
      bytes.push(...Buffer.from(String.fromCodePoint(v), 'utf8'));
      i += n;
    } else {
      return undefined;
    }
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------------
// Building: selectors checked against the element type, values converted, patterns compiled
// ---------------------------------------------------------------------------------------------------

/** A built filter: whether one element of an answer passes. */
export interface Filter {
  readonly expression: string;
  matches(element: unknown): boolean;
}

type Compiled =
  | { readonly type: 'or' | 'and'; readonly left: Compiled; readonly right: Compiled }
  | { readonly type: 'not'; readonly operand: Compiled }
  | CompiledMatch;

interface CompiledMatch {
  readonly type: 'match';
  readonly path: readonly string[];
  readonly operator: MatchOperator;
  /** The value converted to the compared type; a compiled pattern for matches. */
  readonly value: string | bigint | boolean | LinearRegexp | undefined;
}

export interface FilterLimits {
  readonly maxBytes: number;
  readonly maxNesting: number;
  readonly regexpMaxChars: number;
}

const defaultLimits: FilterLimits = {
  maxBytes: httpLimits.filterMaxBytes,
  maxNesting: httpLimits.filterMaxNesting,
  regexpMaxChars: httpLimits.filterRegexpMaxChars,
};

/**
 * Parses `expression` and checks it against `schema` (the element type) as go-bexpr's CreateFilter does.
 * Throws FilterError with the reason (without Consul's prefix).
 */
export function compileFilter(expression: string, schema: FieldType, limits: FilterLimits = defaultLimits): Filter {
  const bytes = Buffer.byteLength(expression, 'utf8');
  if (bytes > limits.maxBytes) throw new FilterError(`the filter is ${bytes} bytes long; at most ${limits.maxBytes} are accepted`);
  const tree = compile(parseFilter(expression, limits.maxNesting), schema, limits);
  return { expression, matches: (element) => evaluate(tree, element, schema) };
}

function compile(e: FilterExpression, schema: FieldType, limits: FilterLimits): Compiled {
  switch (e.type) {
    case 'or':
    case 'and':
      return { type: e.type, left: compile(e.left, schema, limits), right: compile(e.right, schema, limits) };
    case 'not':
      return { type: 'not', operand: compile(e.operand, schema, limits) };
    case 'match':
      return compileMatch(e, schema, limits);
  }
}

/** The type a selector segment leads to from `type`: a struct's field, a map's value, a list element's. */
function descend(type: FieldType, segment: string): FieldType | undefined {
  switch (type.kind) {
    case 'struct':
      return type.fields.get(segment);
    case 'map':
      return type.elem;
    case 'list':
      return type.elem.kind === 'list' || type.elem.kind === 'map' || type.elem.kind === 'struct' ? descend(type.elem, segment) : undefined;
    default:
      return undefined;
  }
}

function describe(type: FieldType): string {
  switch (type.kind) {
    case 'string': return 'a string';
    case 'int': return 'a number';
    case 'bool': return 'a boolean';
    case 'map': return 'a map';
    case 'struct': return 'an object';
    case 'list': return `a list of ${describe(type.elem).replace(/^an? /, '')}s`;
  }
}

/** Why `segment` is not a field of `type`, for the error. */
function fieldsHint(type: FieldType, parent: readonly string[]): string {
  const where = parent.length === 0 ? 'here' : `of ${goQuote(parent.join('.'))}`;
  let t = type;
  while (t.kind === 'list') t = t.elem;
  if (t.kind === 'struct') return `; the fields ${where} are ${[...t.fields.keys()].join(', ')}`;
  return `; ${goQuote(parent.join('.'))} is ${describe(type)}, with no fields`;
}

function supportedOperators(type: FieldType): readonly MatchOperator[] {
  switch (type.kind) {
    case 'string': return ['==', '!=', 'in', 'not in', 'matches', 'not matches'];
    case 'int':
    case 'bool': return ['==', '!='];
    case 'list': return type.elem.kind === 'string' || type.elem.kind === 'int' || type.elem.kind === 'bool'
      ? ['in', 'not in', 'is empty', 'is not empty']
      : ['is empty', 'is not empty'];
    case 'map': return ['is empty', 'is not empty', 'in', 'not in'];
    case 'struct': return [];
  }
}

function compileMatch(e: Extract<FilterExpression, { type: 'match' }>, schema: FieldType, limits: FilterLimits): CompiledMatch {
  const selector = goQuote(e.selector.join('.'));
  let type = schema;
  for (let i = 0; i < e.selector.length; i++) {
    const next = descend(type, e.selector[i] as string);
    if (next === undefined) {
      throw new FilterError(`Selector ${goQuote(e.selector.slice(0, i + 1).join('.'))} is not valid${fieldsHint(type, e.selector.slice(0, i))}`);
    }
    type = next;
  }
  const supported = supportedOperators(type);
  if (!supported.includes(e.operator)) {
    const which = supported.length === 0 ? `it is ${describe(type)}: select one of its fields` : `it takes ${supported.map((o) => operatorNames[o]).join(', ')}`;
    throw new FilterError(`Invalid match operator ${goQuote(operatorNames[e.operator])} for selector ${selector}; ${which}`);
  }
  const base = { type: 'match', path: e.selector, operator: e.operator } as const;
  if (e.operator === 'is empty' || e.operator === 'is not empty') return { ...base, value: undefined };
  const raw = e.value as string;
  // The type the value is converted to: the field's, a list's element's, a map's key (a string).
  const target = type.kind === 'list' ? type.elem.kind : type.kind === 'map' ? 'string' : type.kind;
  const converted = coerce(raw, target);
  if (typeof converted === 'string' && target !== 'string') {
    throw new FilterError(`Failed to coerce value ${goQuote(raw)} for selector ${selector}: ${converted}`);
  }
  if (e.operator === 'matches' || e.operator === 'not matches') {
    const chars = Array.from(raw).length;
    if (chars > limits.regexpMaxChars) {
      throw new FilterError(`the regular expression for selector ${selector} is ${chars} characters long; at most ${limits.regexpMaxChars} are accepted`);
    }
    try {
      return { ...base, value: compileGoRegexp(raw) };
    } catch (error) {
      if (error instanceof GoRegexpError) throw new FilterError(`Failed to compile regular expression ${goQuote(raw)}: ${error.message}`);
      throw error;
    }
  }
  return { ...base, value: converted };
}

/** Go's strconv conversions of a value: the value, or (for a number or boolean field) strconv's error text. */
function coerce(raw: string, kind: FieldType['kind']): string | bigint | boolean {
  if (kind === 'int') return parseGoInt(raw);
  if (kind === 'bool') {
    if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(raw)) return true;
    if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(raw)) return false;
    return `strconv.ParseBool: parsing ${goQuote(raw)}: invalid syntax`;
  }
  return raw;
}

/** Go's strconv.ParseInt(raw, 0, 64): base prefixes 0x 0o 0b and a leading 0 (octal), underscores between digits. */
function parseGoInt(raw: string): bigint | string {
  const error = (why: string): string => `strconv.ParseInt: parsing ${goQuote(raw)}: ${why}`;
  let s = raw;
  let negative = false;
  if (s.startsWith('+') || s.startsWith('-')) {
    negative = s[0] === '-';
    s = s.slice(1);
  }
  let base = 10;
  let digits = s;
  const prefix = s.slice(0, 2).toLowerCase();
  if (prefix === '0x' || prefix === '0o' || prefix === '0b') {
    base = prefix === '0x' ? 16 : prefix === '0o' ? 8 : 2;
    digits = s.slice(2);
  } else if (s.length > 1 && s[0] === '0') {
    base = 8;
    digits = s.slice(1);
  }
  if (digits === '') return error('invalid syntax');
  let value = 0n;
  let underscores = false;
  for (const c of digits) {
    if (c === '_') {
      underscores = true;
      continue;
    }
    const d = parseInt(c, 36);
    if (Number.isNaN(d) || d >= base) return error('invalid syntax');
    value = value * BigInt(base) + BigInt(d);
    if (value > 2n ** 64n - 1n) return error('value out of range');
  }
  if (underscores && !underscoreOK(raw)) return error('invalid syntax');
  if (negative ? value > 2n ** 63n : value >= 2n ** 63n) return error('value out of range');
  return negative ? -value : value;
}

/** Go's strconv.underscoreOK: underscores only between digits (a base prefix counts as one). */
function underscoreOK(raw: string): boolean {
  let s = raw.startsWith('+') || raw.startsWith('-') ? raw.slice(1) : raw;
  let saw = '^';
  let hex = false;
  const p = s.slice(0, 2).toLowerCase();
  if (p === '0b' || p === '0o' || p === '0x') {
    saw = '0';
    hex = p === '0x';
    s = s.slice(2);
  }
  for (const c of s) {
    if ((c >= '0' && c <= '9') || (hex && /^[a-fA-F]$/.test(c))) {
      saw = '0';
    } else if (c === '_') {
      if (saw !== '0') return false;
      saw = '_';
    } else {
      if (saw === '_') return false;
      saw = '!';
    }
  }
  return saw !== '_';
}

// ---------------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------------

function evaluate(e: Compiled, element: unknown, schema: FieldType): boolean {
  switch (e.type) {
    case 'and': return evaluate(e.left, element, schema) && evaluate(e.right, element, schema);
    case 'or': return evaluate(e.left, element, schema) || evaluate(e.right, element, schema);
    case 'not': return !evaluate(e.operand, element, schema);
    case 'match': return matchAt(e, element, schema, 0);
  }
}

const objectOf = (value: unknown): Record<string, unknown> | undefined => (isJsonObject(value) ? value : undefined);
const listOf = (value: unknown): readonly unknown[] => (Array.isArray(value) ? value : []);
const textOf = (value: unknown): string => (typeof value === 'string' ? value : '');

/** go-bexpr v0.1.2's evaluateMatchExpressionRecurse over JSON: `depth` segments of the selector are used up. */
function matchAt(m: CompiledMatch, value: unknown, type: FieldType, depth: number): boolean {
  if (depth === m.path.length) return leaf(m, value, type);
  const segment = m.path[depth] as string;
  switch (type.kind) {
    case 'struct': {
      const fields = objectOf(value);
      const field = fields !== undefined && Object.hasOwn(fields, segment) ? fields[segment] : undefined;
      return matchAt(m, field, type.fields.get(segment) as FieldType, depth + 1);
    }
    case 'map': {
      const entries = objectOf(value);
      if (entries === undefined || !Object.hasOwn(entries, segment)) return absentKey(m.operator);
      return matchAt(m, entries[segment], type.elem, depth + 1);
    }
    case 'list':
      // Through a list: true when the match holds for any element (none: false).
      for (const item of listOf(value)) if (matchAt(m, item, type.elem, depth)) return true;
      return false;
    default:
      throw new Error(`unreachable: a selector checked at build time goes through ${type.kind}`);
  }
}

/** A map lacking the selected key: nothing equals, contains or matches it; it is empty. */
function absentKey(operator: MatchOperator): boolean {
  return operator === '!=' || operator === 'not in' || operator === 'is empty' || operator === 'not matches';
}

function leaf(m: CompiledMatch, value: unknown, type: FieldType): boolean {
  switch (m.operator) {
    case '==': return equals(value, type, m.value);
    case '!=': return !equals(value, type, m.value);
    case 'in': return contains(value, type, m.value);
    case 'not in': return !contains(value, type, m.value);
    case 'is empty': return isEmpty(value, type);
    case 'is not empty': return !isEmpty(value, type);
    case 'matches': return (m.value as LinearRegexp).test(textOf(value));
    case 'not matches': return !(m.value as LinearRegexp).test(textOf(value));
  }
}

function equals(value: unknown, type: FieldType, wanted: CompiledMatch['value']): boolean {
  switch (type.kind) {
    case 'string': return textOf(value) === wanted;
    case 'int': return (typeof value === 'number' && Number.isSafeInteger(value) ? BigInt(value) : typeof value === 'bigint' ? value : 0n) === wanted;
    case 'bool': return (value === true) === wanted;
    default: throw new Error(`unreachable: == on ${type.kind}`);
  }
}

function contains(value: unknown, type: FieldType, wanted: CompiledMatch['value']): boolean {
  switch (type.kind) {
    case 'string': return textOf(value).includes(wanted as string);
    case 'list': return listOf(value).some((item) => equals(item, type.elem, wanted));
    case 'map': {
      const entries = objectOf(value);
      return entries !== undefined && Object.hasOwn(entries, wanted as string);
    }
    default: throw new Error(`unreachable: in on ${type.kind}`);
  }
}

function isEmpty(value: unknown, type: FieldType): boolean {
  if (type.kind === 'list') return listOf(value).length === 0;
  const entries = objectOf(value);
  return entries === undefined || Object.keys(entries).length === 0;
}

// ---------------------------------------------------------------------------------------------------
// The handlers' side
// ---------------------------------------------------------------------------------------------------

/**
 * The request's ?filter built for elements of `schema`, or undefined when there is none (absent or
 * empty, as Consul's parseFilter). A bad one is a 400 with Consul's prefix.
 */
export function filterParam(ctx: RequestContext, schema: FieldType): Filter | undefined {
  const expression = ctx.query.get('filter');
  if (expression === '') return undefined;
  try {
    return compileFilter(expression, schema);
  } catch (error) {
    if (error instanceof FilterError) throw badRequest(`${filterErrorPrefix}${error.message}`);
    throw error;
  }
}

/** The elements of a JSON list that pass (a non-list, e.g. null, is kept as it is). */
export function filterList(filter: Filter | undefined, items: unknown): unknown {
  if (filter === undefined || !Array.isArray(items)) return items;
  return items.filter((item) => filter.matches(item));
}

/** The entries of a JSON map whose values pass, keys kept (a non-map is kept as it is). */
export function filterMapValues(filter: Filter | undefined, entries: unknown): unknown {
  if (filter === undefined || !isJsonObject(entries)) return entries;
  return Object.fromEntries(Object.entries(entries).filter(([, value]) => filter.matches(value)));
}
