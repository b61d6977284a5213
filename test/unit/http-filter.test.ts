// ?filter (src/http/filter.ts, src/http/go-regexp.ts): go-bexpr's grammar parsed into the tree Consul's
// filter builds, selectors checked against Consul's element types with go-bexpr v0.1.2's texts, values
// converted as Go's strconv does, the evaluation of every operator on every field type (lists gone
// through as ANY, absent map keys, fields the JSON leaves out), Go's RE2 syntax matched in linear time,
// the bounds; then the handlers: each catalog, health and agent list endpoint filtered over a stub
// ServerApi / LocalAgentApi, a bad filter a 400 with Consul's prefix before anything is read, and the
// real FSM's JSON through the HTTP harness.

import test from 'ava';
import type { CatalogQuery } from '../../src/fsm/index.js';
import type { ReadMeta, ReadOptions, ServerApi } from '../../src/server/index.js';
import type { LocalAgentApi } from '../../src/http/agent-api.js';
import { handleAgentChecks, handleAgentServices } from '../../src/http/agent.js';
import { handleCatalogNode, handleCatalogNodes, handleCatalogNodeServices, handleCatalogService, handleCatalogServices } from '../../src/http/catalog.js';
import { HttpError } from '../../src/http/errors.js';
import { compileFilter, filterSchemas, parseFilter, FilterError, type FieldType, type FilterExpression } from '../../src/http/filter.js';
import { compileGoRegexp, GoRegexpError } from '../../src/http/go-regexp.js';
import { handleHealthChecks, handleHealthNode, handleHealthService, handleHealthState } from '../../src/http/health.js';
import { httpLimits } from '../../src/http/limits.js';
import { Query } from '../../src/http/query.js';
import type { Reply, RequestContext } from '../../src/http/reply.js';
import { startHarness } from '../support/http-harness.js';

const prefix = 'Failed to create boolean expression evaluator: ';

/** The FilterError text building `expression` for `schema` gives ('<built>' when it builds). */
function refusal(expression: string, schema: FieldType = filterSchemas.healthService): string {
  try {
    compileFilter(expression, schema);
  } catch (e) {
    if (e instanceof FilterError) return e.message;
    throw e;
  }
  return '<built>';
}

/** Which of `items` pass `expression`. */
function pick<T>(expression: string, items: readonly T[], schema: FieldType): T[] {
  const f = compileFilter(expression, schema);
  return items.filter((i) => f.matches(i));
}

const m = (selector: string, operator: string, value?: string): FilterExpression =>
  ({ type: 'match', selector: selector.split('.'), operator, ...(value === undefined ? {} : { value }) }) as FilterExpression;

// ---------------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------------

test('parse: operators, and their operand order (contains is in, swapped)', (t) => {
  t.deepEqual(parseFilter('Service.ID == web'), m('Service.ID', '==', 'web'));
  t.deepEqual(parseFilter('Service.ID!="web"'), m('Service.ID', '!=', 'web'), '== and != need no spaces');
  t.deepEqual(parseFilter('"v1" in Service.Tags'), m('Service.Tags', 'in', 'v1'));
  t.deepEqual(parseFilter('"v1" not in Service.Tags'), m('Service.Tags', 'not in', 'v1'));
  t.deepEqual(parseFilter('Service.Tags contains "v1"'), m('Service.Tags', 'in', 'v1'));
  t.deepEqual(parseFilter('Service.Tags not contains "v1"'), m('Service.Tags', 'not in', 'v1'));
  t.deepEqual(parseFilter('Checks is empty'), m('Checks', 'is empty'));
  t.deepEqual(parseFilter('Checks is not empty'), m('Checks', 'is not empty'));
  t.deepEqual(parseFilter('Node.Node matches "^web-[0-9]+$"'), m('Node.Node', 'matches', '^web-[0-9]+$'));
  t.deepEqual(parseFilter('Node.Node not matches `^db`'), m('Node.Node', 'not matches', '^db'));
});

test('parse: values: strings with Go\'s escapes, raw strings, bare words and selectors as text, numbers', (t) => {
  const value = (v: string): unknown => (parseFilter(`Service.ID == ${v}`) as { value: string }).value;
  t.is(value('"a\\tb\\u00e9\\x41\\101\\\\"'), 'a\tbéAA\\');
  t.is(value('`a\\tb`'), 'a\\tb', 'no escapes in a raw string');
  t.is(value('`a\r\nb`'), 'a\nb', 'Go drops CR from a raw string');
  t.is(value('"ü😀"'), 'ü😀');
  t.is(value('passing'), 'passing');
  t.is(value('a.b["c d"]'), 'a.b.c d', 'a selector as a value is its parts joined with "."');
  t.is(value('true'), 'true');
  t.is(value('-12'), '-12');
  t.is(value('3.25'), '3.25');
  t.is(value('0'), '0');
  t.deepEqual(parseFilter('Node.Meta["rack id"] == `r1`'), { type: 'match', selector: ['Node', 'Meta', 'rack id'], operator: '==', value: 'r1' });
  t.deepEqual(parseFilter('Node.Meta[ "a" ]["b"] == x'), { type: 'match', selector: ['Node', 'Meta', 'a', 'b'], operator: '==', value: 'x' });
});

test('parse: precedence (not, then and, then or), parentheses, whitespace, not not', (t) => {
  const a = m('a', '==', '1');
  const b = m('b', '==', '2');
  const c = m('c', '==', '3');
  t.deepEqual(parseFilter('a == 1 or b == 2 and c == 3'), { type: 'or', left: a, right: { type: 'and', left: b, right: c } });
  t.deepEqual(parseFilter('(a == 1 or b == 2) and c == 3'), { type: 'and', left: { type: 'or', left: a, right: b }, right: c });
  t.deepEqual(parseFilter('not a == 1 and b == 2'), { type: 'and', left: { type: 'not', operand: a }, right: b });
  t.deepEqual(parseFilter('not (a == 1 and b == 2)'), { type: 'not', operand: { type: 'and', left: a, right: b } });
  t.deepEqual(parseFilter('a == 1 and b == 2 and c == 3'), { type: 'and', left: a, right: { type: 'and', left: b, right: c } }, 'right-associative, as go-bexpr builds it');
  t.deepEqual(parseFilter('not not a == 1'), a, 'go-bexpr folds a double not');
  t.deepEqual(parseFilter(' \t\n( ( a == 1 ) )\r\n '), a);
  t.deepEqual(parseFilter('a==1\nor\tb==2'), { type: 'or', left: a, right: b });
});

test('parse: the PEG\'s backtracking: keywords are words only where the grammar wants them', (t) => {
  t.deepEqual(parseFilter('not in Tags'), m('Tags', 'in', 'not'), '"not" is the value when no expression follows it');
  t.deepEqual(parseFilter('not == x'), m('not', '==', 'x'), 'and a selector');
  t.deepEqual(parseFilter('Notes == x'), m('Notes', '==', 'x'));
  t.deepEqual(parseFilter('android == x or order == y'), { type: 'or', left: m('android', '==', 'x'), right: m('order', '==', 'y') });
  t.deepEqual(parseFilter('x in inventory'), m('inventory', 'in', 'x'));
});

/** The FilterError text parsing `text` gives. */
function syntax(text: string): string {
  try {
    parseFilter(text);
  } catch (e) {
    if (e instanceof FilterError) return e.message;
    throw e;
  }
  return '<parsed>';
}

test('parse errors name the line:column (offset) and what was expected', (t) => {
  t.is(syntax(''), '1:1 (0): syntax error at the end of the filter; expected a selector, "(" or a value ("text", `text`, a number or a word)');
  t.is(syntax('Status =='), '1:10 (9): syntax error at the end of the filter; expected a value ("text", `text`, a number or a word)');
  t.is(syntax('Status == passing xyz'), '1:19 (18): syntax error at "xyz"; expected "and", "or" or the end');
  t.is(syntax('a == 1 and\n  (b == 2'), '2:10 (20): syntax error at the end of the filter; expected "and", "or" or ")"');
  t.is(syntax('Status = passing'), '1:8 (7): syntax error at "= passing"; expected "==", "!=", "contains", "not", "matches", "is" or "in"');
  t.is(syntax('not(a == 1)'), '1:4 (3): syntax error at "(a == 1)"; expected "==", "!=", "contains", "not", "matches", "is" or "in"',
    'go-bexpr wants a space after not');
  t.is(syntax('a == "1"or b == 2'), '1:9 (8): syntax error at "or b == 2"; expected "and", "or" or the end', 'or needs spaces');
  t.is(syntax('a == 1or b == 2'), '1:6 (5): invalid number literal "1o": a number ends at a space, ")" or the end (quote other values)');
  t.is(syntax('a == 12x'), '1:6 (5): invalid number literal "12x": a number ends at a space, ")" or the end (quote other values)');
  t.is(syntax('a == 0x1F'), '1:6 (5): invalid number literal "0x": a number ends at a space, ")" or the end (quote other values)');
  t.is(syntax('a == "open'), '1:6 (5): unterminated string literal');
  t.is(syntax('a == `open'), '1:6 (5): unterminated string literal');
  t.true(syntax('a == "\\q"').startsWith('1:6 (5): invalid string literal "\\q": invalid syntax'));
  t.true(syntax('a == "\\xff"').startsWith('1:6 (5): invalid string literal "\\xff": its escapes make bytes that are not UTF-8'));
  t.is(syntax('Meta[x] == 1'), '1:6 (5): invalid index: write a map key as ["key"]');
  t.is(syntax('Meta["x" == 1'), '1:10 (9): unclosed index expression: expected "]"');
  t.is(syntax('"x" in "y"'), '1:8 (7): invalid selector: "in" must be followed by a selector (a field name such as ServiceTags)');
  t.is(syntax('Tags is emptyish'), '1:14 (13): syntax error at "ish"; expected "and", "or" or the end');
});

test('parse: nesting is bounded', (t) => {
  const nested = (n: number): string => `${'('.repeat(n)}a == 1${')'.repeat(n)}`;
  t.deepEqual(parseFilter(nested(httpLimits.filterMaxNesting)), m('a', '==', '1'));
  t.is(syntax(nested(httpLimits.filterMaxNesting + 1)), `1:${httpLimits.filterMaxNesting + 1} (${httpLimits.filterMaxNesting}): the expression nests parentheses and "not" more than ${httpLimits.filterMaxNesting} deep`);
  t.regex(syntax(`${'not '.repeat(httpLimits.filterMaxNesting + 1)}a == 1`), /nests parentheses and "not" more than 64 deep/);
  t.deepEqual(parseFilter(`${'not '.repeat(httpLimits.filterMaxNesting)}a == 1`), m('a', '==', '1'), 'an even number of nots folds away');
  // A long flat chain is not nesting: 400 ors parse (iteratively).
  const chain = Array.from({ length: 400 }, (_, i) => `a == ${i}`).join(' or ');
  t.is((parseFilter(chain) as { type: string }).type, 'or');
});

// ---------------------------------------------------------------------------------------------------
// Building: selectors, operators, values
// ---------------------------------------------------------------------------------------------------

test('build: an unknown selector is go-bexpr\'s "Selector ... is not valid", naming what is there', (t) => {
  t.is(refusal('Nope == 1'), 'Selector "Nope" is not valid; the fields here are Node, Service, Checks');
  t.is(refusal('Service.Nope == 1'), 'Selector "Service.Nope" is not valid; the fields of "Service" are Kind, ID, Service, Tags, Address, TaggedAddresses, Meta, Port, Weights, EnableTagOverride, Proxy, Connect');
  t.is(refusal('Checks.Definition.HTTP == x'), 'Selector "Checks.Definition" is not valid; the fields of "Checks" are Node, CheckID, Name, Status, Notes, Output, ServiceID, ServiceName, ServiceTags, Type',
    'Definition is bexpr:"-" in Consul');
  t.is(refusal('Service.Port.x == 1'), 'Selector "Service.Port.x" is not valid; "Service.Port" is a number, with no fields');
  t.is(refusal('Service.Tags.x == 1'), 'Selector "Service.Tags.x" is not valid; "Service.Tags" is a list of strings, with no fields');
  t.is(refusal('Node.Meta.a.b == 1'), 'Selector "Node.Meta.a.b" is not valid; "Node.Meta.a" is a string, with no fields');
  t.is(refusal('CreateIndex == 1', filterSchemas.node), 'Selector "CreateIndex" is not valid; the fields here are ID, Node, Address, Datacenter, TaggedAddresses, Meta',
    'RaftIndex is bexpr:"-" in Consul');
  t.is(refusal('ServiceProxy.Upstreams.DestinationName == db', filterSchemas.catalogService), '<built>', 'a list of objects is gone through');
  t.is(refusal('Node.Meta["any key at all"] == 1'), '<built>', 'any map key');
});

test('build: the operators each field type takes, with go-bexpr\'s names', (t) => {
  t.is(refusal('Service.Address is empty'), 'Invalid match operator "Is Empty" for selector "Service.Address"; it takes Equal, Not Equal, In, Not In, Matches, Not Matches');
  t.is(refusal('"8" in Service.Port'), 'Invalid match operator "In" for selector "Service.Port"; it takes Equal, Not Equal');
  t.is(refusal('Service.EnableTagOverride matches x'), 'Invalid match operator "Matches" for selector "Service.EnableTagOverride"; it takes Equal, Not Equal');
  t.is(refusal('Service.Tags == v1'), 'Invalid match operator "Equal" for selector "Service.Tags"; it takes In, Not In, Is Empty, Is Not Empty');
  t.is(refusal('"x" in Checks'), 'Invalid match operator "In" for selector "Checks"; it takes Is Empty, Is Not Empty');
  t.is(refusal('Node.Meta == x'), 'Invalid match operator "Equal" for selector "Node.Meta"; it takes Is Empty, Is Not Empty, In, Not In');
  t.is(refusal('Service.Weights == 1'), 'Invalid match operator "Equal" for selector "Service.Weights"; it is an object: select one of its fields');
  for (const ok of ['Service.Address != x', '"a" in Service.Address', 'Service.Address not matches x', 'Service.Port != 1', 'Service.Tags is not empty',
    '"a" not in Service.Tags', 'Checks is not empty', 'Node.Meta is empty', '"k" in Node.Meta', 'Service.Connect.Native == true']) {
    t.is(refusal(ok), '<built>', ok);
  }
});

test('build: values are converted to the field\'s type as Go\'s strconv does', (t) => {
  t.is(refusal('Service.Port == abc'), 'Failed to coerce value "abc" for selector "Service.Port": strconv.ParseInt: parsing "abc": invalid syntax');
  t.is(refusal('Service.Port == 1.5'), 'Failed to coerce value "1.5" for selector "Service.Port": strconv.ParseInt: parsing "1.5": invalid syntax');
  t.is(refusal('Service.Port == "9223372036854775808"'), 'Failed to coerce value "9223372036854775808" for selector "Service.Port": strconv.ParseInt: parsing "9223372036854775808": value out of range');
  t.is(refusal('Service.Port == "1__0"'), 'Failed to coerce value "1__0" for selector "Service.Port": strconv.ParseInt: parsing "1__0": invalid syntax');
  t.is(refusal('Service.EnableTagOverride == yes'), 'Failed to coerce value "yes" for selector "Service.EnableTagOverride": strconv.ParseBool: parsing "yes": invalid syntax');
  const ports = [{ Service: { Port: 80 } }, { Service: { Port: 8080 } }, { Service: { Port: -1 } }];
  const port = (v: string): number[] => pick(`Service.Port == ${v}`, ports, filterSchemas.healthService).map((e) => e.Service.Port);
  t.deepEqual(port('80'), [80]);
  t.deepEqual(port('"0x50"'), [80], 'base prefixes (ParseInt base 0)');
  t.deepEqual(port('"0120"'), [80], 'a leading 0 is octal');
  t.deepEqual(port('"0b1010000"'), [80]);
  t.deepEqual(port('"8_080"'), [8080]);
  t.deepEqual(port('-1'), [-1]);
  t.deepEqual(port('"+80"'), [80]);
  const flags = [{ Service: { EnableTagOverride: true } }, { Service: { EnableTagOverride: false } }, { Service: {} }];
  for (const [v, expect] of [['true', [0]], ['T', [0]], ['1', [0]], ['false', [1, 2]], ['"F"', [1, 2]], ['0', [1, 2]]] as const) {
    t.deepEqual(pick(`Service.EnableTagOverride == ${v}`, flags, filterSchemas.healthService).map((e) => flags.indexOf(e)), expect, v);
  }
  t.deepEqual(pick('Node == 5', [{ Node: '5' }, { Node: '05' }], filterSchemas.node), [{ Node: '5' }], 'a number compared with a string field is its text');
});

test('build: patterns are Go\'s (errors with Go\'s texts) and bounded', (t) => {
  t.is(refusal('Node.Node matches "("'), 'Failed to compile regular expression "(": error parsing regexp: missing closing ): `(`');
  t.is(refusal('Node.Node matches `(a)\\1`'), 'Failed to compile regular expression "(a)\\\\1": error parsing regexp: invalid escape sequence: `\\1`', 'no backreferences');
  t.is(refusal('Node.Node matches "(?=a)"'), 'Failed to compile regular expression "(?=a)": error parsing regexp: invalid or unsupported Perl syntax: `(?=`', 'no lookahead');
  const long = 'a'.repeat(httpLimits.filterRegexpMaxChars + 1);
  t.is(refusal(`Node.Node matches "${long}"`), `the regular expression for selector "Node.Node" is ${long.length} characters long; at most ${httpLimits.filterRegexpMaxChars} are accepted`);
  t.is(refusal(`Node.Node matches "${'a'.repeat(httpLimits.filterRegexpMaxChars)}"`), '<built>');
  // RE2 bounds a repetition of a repetition by the total count (Go says "expression too large").
  t.is(refusal('Node.Node matches "((a{1000}){1000})"'), 'Failed to compile regular expression "((a{1000}){1000})": error parsing regexp: invalid repeat count: `{1000}`');
  t.is(refusal('Node.Node == "(" and "[" in Node.Node'), '<built>', 'only matches compiles its value');
});

test('build: the filter is at most 4 KiB', (t) => {
  const pad = (n: number): string => `Node.Node == "${'x'.repeat(n - 'Node.Node == ""'.length)}"`;
  t.is(refusal(pad(4096)), '<built>');
  t.is(refusal(pad(4097)), 'the filter is 4097 bytes long; at most 4096 are accepted');
  t.is(refusal(`Node.Node == "${'é'.repeat(2041)}"`), 'the filter is 4097 bytes long; at most 4096 are accepted', 'UTF-8 bytes');
});

// ---------------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------------

const instances = [
  {
    Node: { ID: 'i1', Node: 'web-1', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: { lan: '10.0.0.1' }, Meta: { env: 'prod', rack: 'r1' } },
    Service: { ID: 'web-a', Service: 'web', Tags: ['v1', 'primary'], Address: '', Meta: { version: '1.2' }, Port: 8080, Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false, TaggedAddresses: { wan: { Address: '198.18.0.1', Port: 80 } } },
    Checks: [{ CheckID: 'serfHealth', Status: 'passing', ServiceTags: [] }, { CheckID: 'service:web-a', Status: 'critical', ServiceTags: ['v1', 'primary'] }],
  },
  {
    Node: { ID: 'i2', Node: 'web-2', Address: '10.0.0.2', Datacenter: 'dc1', TaggedAddresses: null, Meta: { env: 'staging' } },
    Service: { ID: 'web-b', Service: 'web', Tags: ['v2'], Address: '10.0.1.2', Meta: null, Port: 8081, Weights: { Passing: 3, Warning: 0 }, EnableTagOverride: true },
    Checks: [{ CheckID: 'serfHealth', Status: 'passing', ServiceTags: [] }],
  },
  {
    Node: { ID: 'i3', Node: 'db-1', Address: '10.0.0.3', Datacenter: 'dc1', TaggedAddresses: null, Meta: null },
    Service: { ID: 'db', Service: 'db', Tags: null, Address: '', Meta: {}, Port: 5432, Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false },
    Checks: [],
  },
];
const which = (expression: string): string[] => pick(expression, instances, filterSchemas.healthService).map((i) => i.Node.Node);

test('evaluate: every operator on strings, numbers, booleans, lists of strings, maps', (t) => {
  t.deepEqual(which('Service.Service == web'), ['web-1', 'web-2']);
  t.deepEqual(which('Service.Service != web'), ['db-1']);
  t.deepEqual(which('"eb" in Service.Service'), ['web-1', 'web-2'], 'in on a string is a substring');
  t.deepEqual(which('Node.Node not contains "web"'), ['db-1']);
  t.deepEqual(which('Service.Address == ""'), ['web-1', 'db-1']);
  t.deepEqual(which('Service.Port == 8081'), ['web-2']);
  t.deepEqual(which('Service.Port != 8081'), ['web-1', 'db-1']);
  t.deepEqual(which('Service.Weights.Passing == 3'), ['web-2']);
  t.deepEqual(which('Service.EnableTagOverride == true'), ['web-2']);
  t.deepEqual(which('Service.EnableTagOverride != true'), ['web-1', 'db-1']);
  t.deepEqual(which('v1 in Service.Tags'), ['web-1'], 'in on a list: an element equals');
  t.deepEqual(which('"v" in Service.Tags'), [], 'not a substring of an element');
  t.deepEqual(which('"v1" not in Service.Tags'), ['web-2', 'db-1']);
  t.deepEqual(which('Service.Tags contains primary'), ['web-1']);
  t.deepEqual(which('Service.Tags is empty'), ['db-1'], 'null is an empty list');
  t.deepEqual(which('Service.Tags is not empty'), ['web-1', 'web-2']);
  t.deepEqual(which('"rack" in Node.Meta'), ['web-1'], 'in on a map: has the key');
  t.deepEqual(which('"rack" not in Node.Meta'), ['web-2', 'db-1']);
  t.deepEqual(which('Node.Meta is empty'), ['db-1']);
  t.deepEqual(which('Service.Meta is empty'), ['web-2', 'db-1'], 'null and {} are empty maps');
  t.deepEqual(which('Service.Meta is not empty'), ['web-1']);
  t.deepEqual(which('Node.Meta.env == prod'), ['web-1']);
  t.deepEqual(which('Node.Meta["env"] == `staging`'), ['web-2']);
  t.deepEqual(which('Service.TaggedAddresses.wan.Port == 80'), ['web-1']);
  t.deepEqual(which('Node.TaggedAddresses.lan == "10.0.0.1"'), ['web-1']);
  t.deepEqual(which('Node.Node matches "^web-[0-9]+$"'), ['web-1', 'web-2']);
  t.deepEqual(which('Node.Node not matches "^web"'), ['db-1']);
  t.deepEqual(which('Service.Meta.version matches `^1\\.`'), ['web-1']);
});

test('evaluate: an absent map key: nothing equals, contains or matches it, and it is empty (null maps too)', (t) => {
  // web-1 has env=prod, web-2 env=staging, db-1 has no Meta at all.
  t.deepEqual(which('Node.Meta.env == prod'), ['web-1']);
  t.deepEqual(which('Node.Meta.env != prod'), ['web-2', 'db-1']);
  t.deepEqual(which('"o" in Node.Meta.env'), ['web-1']);
  t.deepEqual(which('"o" not in Node.Meta.env'), ['web-2', 'db-1']);
  t.deepEqual(which('Node.Meta.env matches "."'), ['web-1', 'web-2'], 'v0.1.2 says true for db-1 here; later go-bexpr and we say false');
  t.deepEqual(which('Node.Meta.env not matches "."'), ['db-1']);
  t.deepEqual(which('Node.Meta.rack != r1'), ['web-2', 'db-1']);
  t.deepEqual(which('Service.TaggedAddresses.wan.Port == 80'), ['web-1']);
  t.deepEqual(which('Service.TaggedAddresses.wan.Port != 80'), ['web-2', 'db-1'], 'an absent key part-way');
});

test('evaluate: through a list of objects a match holds when it holds for ANY element; none is false for every operator', (t) => {
  // web-1: passing + critical; web-2: passing; db-1: no checks.
  t.deepEqual(which('Checks.Status == critical'), ['web-1']);
  t.deepEqual(which('Checks.Status == passing'), ['web-1', 'web-2']);
  t.deepEqual(which('Checks.Status != passing'), ['web-1'], 'some check is not passing (db-1, no checks: false)');
  t.deepEqual(which('Checks.Status != critical'), ['web-1', 'web-2'], 'web-1 has a check that is not critical');
  t.deepEqual(which('not Checks.Status == critical'), ['web-2', 'db-1'], 'no check is critical');
  t.deepEqual(which('not Checks.Status != passing'), ['web-2', 'db-1'], 'every check passes');
  t.deepEqual(which('Checks.Status not matches "^pass"'), ['web-1']);
  t.deepEqual(which('"crit" not in Checks.Status'), ['web-1', 'web-2']);
  t.deepEqual(which('primary in Checks.ServiceTags'), ['web-1'], 'a list inside a list');
  t.deepEqual(which('Checks.ServiceTags is empty'), ['web-1', 'web-2'], 'some check has no tags');
  t.deepEqual(which('"x" not in Checks.ServiceTags'), ['web-1', 'web-2']);
  t.deepEqual(which('Checks is empty'), ['db-1'], 'the list itself');
  t.deepEqual(which('Checks.CheckID == serfHealth and Checks.Status == critical'), ['web-1'], 'each match goes through the list on its own');
});

test('evaluate: a field the JSON leaves out is Go\'s zero value', (t) => {
  const catalog = [{ ServiceName: 'web', ServiceKind: '' }, { ServiceName: 'db' }];
  const names = (e: string): string[] => pick(e, catalog, filterSchemas.catalogService).map((s) => s.ServiceName);
  t.deepEqual(names('ServiceProxy.DestinationServiceName == ""'), ['web', 'db']);
  t.deepEqual(names('ServiceProxy.LocalServicePort == 0'), ['web', 'db']);
  t.deepEqual(names('ServiceConnect.Native == false'), ['web', 'db']);
  t.deepEqual(names('ServiceProxy.Upstreams is empty'), ['web', 'db']);
  t.deepEqual(names('ServiceProxy.Upstreams.DestinationName != x'), [], 'no upstreams: false');
  t.deepEqual(names('ServiceKind == ""'), ['web', 'db']);
  t.deepEqual(names('ServiceTags is empty and ServiceMeta is empty and NodeMeta is empty'), ['web', 'db']);
});

test('evaluate: and, or, not', (t) => {
  t.deepEqual(which('Service.Service == web and Node.Meta.env == prod'), ['web-1']);
  t.deepEqual(which('Service.Service == db or Node.Meta.env == staging'), ['web-2', 'db-1']);
  t.deepEqual(which('not Service.Service == web'), ['db-1']);
  t.deepEqual(which('Service.Service == web and not (v1 in Service.Tags or Service.Port == 8080)'), ['web-2']);
  t.deepEqual(which('Service.Port == 1 or Service.Port == 8080 and Service.Service == db'), [], 'and binds tighter than or');
  t.deepEqual(which('(Service.Port == 1 or Service.Port == 8080) and Service.Service == web'), ['web-1']);
});

test('evaluate: map keys that are Object.prototype names are data', (t) => {
  const parsed = JSON.parse('[{"Node":"a","Meta":{"constructor":"x","__proto__":"y"}},{"Node":"b","Meta":{}}]') as Array<{ Node: string }>;
  const names = (e: string): string[] => pick(e, parsed, filterSchemas.node).map((n) => n.Node);
  t.deepEqual(names('"__proto__" in Meta'), ['a']);
  t.deepEqual(names('Meta.__proto__ == y'.replace('Meta.__proto__', 'Meta["__proto__"]')), ['a']);
  t.deepEqual(names('"constructor" in Meta'), ['a']);
  t.deepEqual(names('"toString" in Meta'), []);
  t.deepEqual(names('Meta.toString == ""'), [], 'an absent key, not the prototype\'s function');
  t.deepEqual(names('Meta.constructor == x'), ['a']);
});

// ---------------------------------------------------------------------------------------------------
// Go's regexp, linear
// ---------------------------------------------------------------------------------------------------

const re = (pattern: string): ((text: string) => boolean) => {
  const r = compileGoRegexp(pattern);
  return (text) => r.test(text);
};

test('regexp: Go\'s syntax and matching (unanchored; ^ $ at the ends unless (?m); . not \\n unless (?s))', (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['b', 'abc', true], ['^b', 'abc', false], ['c$', 'abc', true], ['^abc$', 'abc', true], ['', '', true],
    ['^a$', 'a\n', false], ['(?m)^b$', 'a\nb\nc', true], ['^b$', 'a\nb\nc', false], ['\\Aa', 'ba', false], ['a\\z', 'ba', true],
    ['a.c', 'a\nc', false], ['(?s)a.c', 'a\nc', true], ['[^x]', '\n', true], ['a\\Cc', 'a\nc', true],
    ['\\bfoo\\b', 'a foo b', true], ['\\bfoo\\b', 'afoo', false], ['\\Boo', 'foo', true],
    ['^[a-c]+$', 'abcab', true], ['^[a-c]+$', 'abcd', false], ['[]a]', ']', true], ['[^]a]', 'b', true], ['[a-]', '-', true],
    ['^\\d{3}$', '123', true], ['^\\d{3}$', '12', false], ['^\\w+$', 'ab_9', true], ['^\\W$', '-', true], ['^\\s$', '\t', true], ['\\S', ' ', false],
    ['^[[:alpha:]]+$', 'abcXYZ', true], ['^[[:^digit:]]$', '5', false], ['[[:xdigit:]]', 'g', false],
    ['^\\pL+$', 'héllo', true], ['^\\p{Greek}+$', 'αβγ', true], ['\\p{Greek}', 'abc', false], ['^\\PL$', '1', true], ['^\\p{^L}$', 'a', false], ['^\\p{Lu}', 'Ab', true],
    ['(?i)^WEB$', 'web', true], ['(?i)^[a-c]$', 'B', true], ['(?i)^[^a]$', 'A', false], ['^(?i:a)b$', 'Ab', true], ['^(?i:a)b$', 'AB', false], ['(?i)a(?-i)b', 'Ab', true], ['(?i)a(?-i)b', 'AB', false],
    ['^a{2,3}$', 'aaa', true], ['^a{2,3}$', 'aaaa', false], ['^a{2,}$', 'aaaaa', true], ['^a{2}$', 'a', false], ['^a{,2}$', 'a{,2}', true], ['^x{0}$', '', true],
    ['^a+?b*?$', 'aabb', true], ['^(ab|cd)+$', 'abcdab', true], ['^(ab|cd)+$', 'abc', false], ['^(?:a|)b$', 'b', true], ['^(?P<x>a)(?<y>b)$', 'ab', true],
    ['^\\Q.*\\E$', '.*', true], ['^\\Q.*\\E$', 'ab', false], ['^\\x41\\x{1F600}\\101\\n$', 'A😀A\n', true], ['^\\.\\*\\+$', '.*+', true],
    ['^ü.$', 'üé', true], ['^.$', '😀', true], ['(a*)*b', 'aab', true], ['(a|ab)(c|bcd)(d*)', 'abcd', true], ['^(a*)+$', '', true],
  ];
  for (const [pattern, text, expected] of cases) t.is(re(pattern)(text), expected, `${pattern} on ${JSON.stringify(text)}`);
});

test('regexp: Go\'s refusals, with Go\'s texts', (t) => {
  const error = (pattern: string): string => {
    try {
      compileGoRegexp(pattern);
    } catch (e) {
      if (e instanceof GoRegexpError) return e.message;
      throw e;
    }
    return '<compiled>';
  };
  t.is(error('a(b'), 'error parsing regexp: missing closing ): `a(b`');
  t.is(error('a)b'), 'error parsing regexp: unexpected ): `a)b`');
  t.is(error('[a-z'), 'error parsing regexp: missing closing ]: `[a-z`');
  t.is(error('[z-a]'), 'error parsing regexp: invalid character class range: `z-a`');
  t.is(error('[[:foo:]]'), 'error parsing regexp: invalid character class range: `[:foo:]`');
  t.is(error('\\p{Klingon}'), 'error parsing regexp: invalid character class range: `\\p{Klingon}`');
  t.is(error('*a'), 'error parsing regexp: missing argument to repetition operator: `*`');
  t.is(error('a**'), 'error parsing regexp: invalid nested repetition operator: `**`');
  t.is(error('a*{2}'), 'error parsing regexp: invalid nested repetition operator: `*{2}`');
  t.is(error('a{1001}'), 'error parsing regexp: invalid repeat count: `{1001}`');
  t.is(error('a{3,2}'), 'error parsing regexp: invalid repeat count: `{3,2}`');
  t.is(error('a\\'), 'error parsing regexp: trailing backslash at end of expression: ``');
  t.is(error('\\q'), 'error parsing regexp: invalid escape sequence: `\\q`');
  t.is(error('(a)\\1'), 'error parsing regexp: invalid escape sequence: `\\1`');
  t.is(error('(?=a)'), 'error parsing regexp: invalid or unsupported Perl syntax: `(?=`');
  t.is(error('(?<!a)'), 'error parsing regexp: invalid or unsupported Perl syntax: `(?<`', 'no lookbehind (RE2\'s wording; Go 1.22+ says "invalid named capture")');
  t.is(error('(?P<a-b>x)'), 'error parsing regexp: invalid named capture: `(?P<a-b>`');
  t.is(error('\\x{110000}'), 'error parsing regexp: invalid escape sequence: `\\x{110000`', 'RE2 quotes up to the bad digit');
  t.is(error('(?i)(?:a)(?)'), '<compiled>');
  t.is(error('a{1000}'), '<compiled>');
});

test('regexp: matching is linear: patterns that make a backtracking engine explode run in one pass', (t) => {
  // Each of these takes exponential (or high-polynomial) time in Node's RegExp on such texts.
  const hostile: Array<[string, string]> = [
    ['(a|a)*b', 'a'.repeat(100_000)],
    ['(a+)+$', `${'a'.repeat(100_000)}!`],
    ['^(\\w+\\s?)*$', `${'word '.repeat(20_000)}!`],
    ['a*a*a*a*a*a*a*a*b', 'a'.repeat(50_000)],
  ];
  for (const [pattern, text] of hostile) {
    const started = Date.now();
    t.false(re(pattern)(text), pattern);
    t.true(Date.now() - started < 5_000, `${pattern} took ${Date.now() - started} ms`);
  }
});

// ---------------------------------------------------------------------------------------------------
// The handlers
// ---------------------------------------------------------------------------------------------------

const meta: ReadMeta = { index: 42, knownLeader: true, lastContactMs: 0, consistency: 'default' };

function stub(answer: (q: CatalogQuery) => unknown, agent?: LocalAgentApi): {
  reads: CatalogQuery[];
  ctx(target: string): RequestContext;
} {
  const reads: CatalogQuery[] = [];
  const api = {
    datacenter: 'dc1',
    catalogRead: async (query: CatalogQuery, _options: ReadOptions) => {
      reads.push(query);
      return { meta, json: answer(query) };
    },
  } as unknown as ServerApi;
  const ctx = (target: string): RequestContext => {
    const q = target.indexOf('?');
    return {
      method: 'GET',
      path: q === -1 ? target : target.slice(0, q),
      query: Query.parse(q === -1 ? '' : target.slice(q + 1)),
      headers: {},
      agent,
      api,
      limits: httpLimits,
      signal: new AbortController().signal,
      random: () => 0,
      localAddress: '127.0.0.1',
      pretty: false,
      readBody: async () => Buffer.alloc(0),
      bodyStream: () => {
        throw new Error('not used');
      },
    };
  };
  return { reads, ctx };
}

const q = (filter: string): string => `filter=${encodeURIComponent(filter)}`;

async function refused(p: Promise<Reply>): Promise<{ status: number; body: string }> {
  try {
    const r = await p;
    return { status: r.status, body: `answered ${String(r.body)}` };
  } catch (e) {
    if (!(e instanceof HttpError)) throw e;
    return { status: e.status, body: e.body };
  }
}

const checks = [
  { Node: 'web-1', CheckID: 'serfHealth', Name: 'Serf', Status: 'passing', ServiceID: '', ServiceName: '', ServiceTags: [], Type: '' },
  { Node: 'web-1', CheckID: 'service:web', Name: 'web', Status: 'critical', ServiceID: 'web', ServiceName: 'web', ServiceTags: ['v1'], Type: 'ttl' },
];

test('handlers: every catalog and health list is filtered, X-Consul-Index kept', async (t) => {
  const nodes = [{ Node: 'web-1', Meta: { env: 'prod' } }, { Node: 'db-1', Meta: null }];
  const serviceNodes = [{ Node: 'web-1', ServiceID: 'web', ServiceTags: ['v1'] }, { Node: 'web-2', ServiceID: 'web', ServiceTags: null }];
  const nodeServices = [{ ID: 'web', Service: 'web', Tags: ['v1'] }, { ID: 'db', Service: 'db', Tags: null }];
  const s = stub((query) => {
    switch (query.what) {
      case 'nodes': return nodes;
      case 'service': return serviceNodes;
      case 'node': return { Node: { Node: 'web-1' }, Services: { web: nodeServices[0], db: nodeServices[1] } };
      case 'node-services': return { Node: { Node: 'web-1' }, Services: nodeServices };
      case 'health-service': return instances;
      default: return checks;
    }
  });
  const body = (r: Reply): unknown => JSON.parse(String(r.body));

  const n = await handleCatalogNodes(s.ctx(`/v1/catalog/nodes?${q('Meta.env == prod')}`));
  t.deepEqual([n.status, body(n), n.headers['X-Consul-Index']], [200, [nodes[0]], '42']);
  t.deepEqual(body(await handleCatalogService(s.ctx(`/v1/catalog/service/web?${q('ServiceTags is empty')}`))), [serviceNodes[1]]);
  t.deepEqual(body(await handleCatalogNode(s.ctx(`/v1/catalog/node/web-1?${q('Service == db')}`))), { Node: { Node: 'web-1' }, Services: { db: nodeServices[1] } },
    'the Services map: values filtered, keys kept');
  t.deepEqual(body(await handleCatalogNodeServices(s.ctx(`/v1/catalog/node-services/web-1?${q('v1 in Tags')}`))), { Node: { Node: 'web-1' }, Services: [nodeServices[0]] },
    'the Services list; Node untouched');
  t.deepEqual(body(await handleHealthNode(s.ctx(`/v1/health/node/web-1?${q('ServiceName != ""')}`))), [checks[1]]);
  t.deepEqual(body(await handleHealthChecks(s.ctx(`/v1/health/checks/web?${q('Type == ttl')}`))), [checks[1]]);
  t.deepEqual(body(await handleHealthState(s.ctx(`/v1/health/state/any?${q('Status == passing')}`))), [checks[0]]);
  const hs = await handleHealthService(s.ctx(`/v1/health/service/web?${q('Checks.Status == critical')}`));
  t.deepEqual((body(hs) as Array<{ Node: { Node: string } }>).map((i) => i.Node.Node), ['web-1']);
  t.is(hs.headers['X-Consul-Index'], '42');
  t.deepEqual(body(await handleHealthState(s.ctx('/v1/health/state/any?filter='))), checks, 'an empty ?filter is no filter');
  t.deepEqual(body(await handleHealthState(s.ctx('/v1/health/state/any'))), checks);
});

test('handlers: a bad filter is a 400 with Consul\'s prefix, and nothing is read', async (t) => {
  const s = stub(() => []);
  const cases: Array<[(ctx: RequestContext) => Promise<Reply>, string, string, string]> = [
    [handleCatalogNodes, '/v1/catalog/nodes', 'ServiceName == web', 'Selector "ServiceName" is not valid; the fields here are ID, Node, Address, Datacenter, TaggedAddresses, Meta'],
    [handleCatalogService, '/v1/catalog/service/web', 'Service.Tags is empty', 'Selector "Service" is not valid; the fields here are ID, Node, Address, Datacenter, TaggedAddresses, NodeMeta, ServiceKind, ServiceID, ServiceName, ServiceTags, ServiceAddress, ServiceTaggedAddresses, ServiceWeights, ServiceMeta, ServicePort, ServiceEnableTagOverride, ServiceProxy, ServiceConnect'],
    [handleCatalogNode, '/v1/catalog/node/web-1', 'ServiceName == x', 'Selector "ServiceName" is not valid; the fields here are Kind, ID, Service, Tags, Address, TaggedAddresses, Meta, Port, Weights, EnableTagOverride, Proxy, Connect'],
    [handleCatalogNodeServices, '/v1/catalog/node-services/ghost', 'Port == http', 'Failed to coerce value "http" for selector "Port": strconv.ParseInt: parsing "http": invalid syntax'],
    [handleHealthNode, '/v1/health/node/web-1', 'Status ==', '1:10 (9): syntax error at the end of the filter; expected a value ("text", `text`, a number or a word)'],
    [handleHealthChecks, '/v1/health/checks/web', 'Checks.Status == x', 'Selector "Checks" is not valid; the fields here are Node, CheckID, Name, Status, Notes, Output, ServiceID, ServiceName, ServiceTags, Type'],
    [handleHealthState, '/v1/health/state/any', 'Output matches "a("', 'Failed to compile regular expression "a(": error parsing regexp: missing closing ): `a(`'],
    [handleHealthService, '/v1/health/service/web', 'Status == passing', 'Selector "Status" is not valid; the fields here are Node, Service, Checks'],
  ];
  for (const [handle, path, filter, reason] of cases) {
    t.deepEqual(await refused(handle(s.ctx(`${path}?${q(filter)}`))), { status: 400, body: `${prefix}${reason}` }, path);
  }
  const long = await refused(handleCatalogNodes(s.ctx(`/v1/catalog/nodes?${q(`Node == "${'x'.repeat(5000)}"`)}`)));
  t.deepEqual(long, { status: 400, body: `${prefix}the filter is 5010 bytes long; at most 4096 are accepted` });
  t.is(s.reads.length, 0, 'the filter is built before the read, as Consul builds it before its blocking query');
  // Consul's parameter checks still come first.
  t.deepEqual(await refused(handleHealthService(s.ctx(`/v1/health/service/web?passing=maybe&${q('(')}`))), { status: 400, body: 'Invalid value for ?passing' });
  t.deepEqual(await refused(handleHealthNode(s.ctx(`/v1/health/node/?${q('(')}`))), { status: 400, body: 'Missing node name' });
});

test('handlers: /v1/catalog/services refuses a filter it cannot apply; node-services still 404s an unknown node', async (t) => {
  const s = stub((query) => (query.what === 'services' ? { web: ['v1'] } : null));
  const r = await refused(handleCatalogServices(s.ctx(`/v1/catalog/services?${q('ServiceName == web')}`)));
  t.is(r.status, 400);
  t.regex(r.body, /^\?filter is not supported on \/v1\/catalog\/services by Conclave/);
  t.is((await handleCatalogServices(s.ctx('/v1/catalog/services?filter='))).body, '{"web":["v1"]}', 'an empty filter is none');
  const missing = await handleCatalogNodeServices(s.ctx(`/v1/catalog/node-services/ghost?${q('Port == 80')}`));
  t.deepEqual([missing.status, missing.body], [404, 'Node not found']);
  const node = await handleCatalogNode(s.ctx(`/v1/catalog/node/ghost?${q('Port == 80')}`));
  t.deepEqual([node.status, node.body], [200, 'null'], 'Consul\'s 200 null for an unknown node, filter or not');
});

test('handlers: /v1/agent/services and /v1/agent/checks filter the map\'s values and keep its keys', async (t) => {
  const services = {
    'redis-1': { ID: 'redis-1', Service: 'redis', Tags: ['primary'], Meta: { env: 'production' }, Port: 1234, Weights: { Passing: 1, Warning: 1 } },
    'redis-2': { ID: 'redis-2', Service: 'redis', Tags: ['secondary'], Meta: { env: 'qa' }, Port: 1235, Weights: { Passing: 1, Warning: 1 } },
  };
  const agentChecks = { 'service:redis-1': checks[0], 'service:redis-2': checks[1] };
  const agent = { services: () => services, checks: () => agentChecks } as unknown as LocalAgentApi;
  const s = stub(() => [], agent);
  const body = (r: Reply): unknown => JSON.parse(String(r.body));
  t.deepEqual(body(await handleAgentServices(s.ctx(`/v1/agent/services?${q('Meta.env == "qa"')}`))), { 'redis-2': services['redis-2'] });
  t.deepEqual(body(await handleAgentServices(s.ctx(`/v1/agent/services?${q('primary in Tags or Port == 1235')}`))), services);
  t.deepEqual(body(await handleAgentServices(s.ctx(`/v1/agent/services?${q('Port != 1234 and Port != 1235')}`))), {});
  t.deepEqual(body(await handleAgentServices(s.ctx('/v1/agent/services'))), services);
  t.deepEqual(body(await handleAgentChecks(s.ctx(`/v1/agent/checks?${q('Status != passing')}`))), { 'service:redis-2': checks[1] });
  t.deepEqual(await refused(handleAgentChecks(s.ctx(`/v1/agent/checks?${q('Checks.Status == passing')}`))),
    { status: 400, body: `${prefix}Selector "Checks" is not valid; the fields here are Node, CheckID, Name, Status, Notes, Output, ServiceID, ServiceName, ServiceTags, Type` });
  const noAgent = stub(() => []);
  t.is((await refused(handleAgentServices(noAgent.ctx(`/v1/agent/services?${q('(')}`)))).status, 501, 'no local agent comes before the filter');
});

// ---------------------------------------------------------------------------------------------------
// Through the real FSM's JSON
// ---------------------------------------------------------------------------------------------------

test('harness: filters over the JSON the FSM writes (nulls for empty maps and lists, nested checks)', async (t) => {
  const h = await startHarness(t);
  const register = async (body: unknown): Promise<void> => {
    const r = await h.request('PUT', '/v1/catalog/register', { body: JSON.stringify(body) });
    t.is(r.status, 200, r.text);
  };
  await register({
    Node: 'web-1', Address: '10.0.0.1', NodeMeta: { env: 'prod', rack: 'r1' },
    Service: { ID: 'web-a', Service: 'web', Tags: ['v1', 'primary'], Port: 8080, Meta: { version: '1.2' } },
    Checks: [{ CheckID: 'web-a-ttl', Name: 'ttl', ServiceID: 'web-a', Status: 'critical' }, { CheckID: 'disk', Name: 'disk', Status: 'passing' }],
  });
  await register({
    Node: 'web-2', Address: '10.0.0.2', NodeMeta: { env: 'staging' },
    Service: { ID: 'web-b', Service: 'web', Port: 8081 },
    Checks: [{ CheckID: 'web-b-ttl', Name: 'ttl', ServiceID: 'web-b', Status: 'passing' }],
  });
  await register({ Node: 'db-1', Address: '10.0.0.3', Service: { ID: 'db', Service: 'db', Port: 5432 } });

  const get = async (path: string, filter: string): Promise<unknown> => {
    const r = await h.request('GET', `${path}?${q(filter)}`);
    t.is(r.status, 200, `${path} ${filter}: ${r.text}`);
    t.truthy(r.headers['x-consul-index']);
    return r.json();
  };
  const names = (list: unknown, f: (x: never) => string): string[] => (list as never[]).map(f);

  t.deepEqual(names(await get('/v1/catalog/nodes', 'Meta.env == prod or Meta is empty'), (n: { Node: string }) => n.Node).filter((x) => x !== h.server.nodeName), ['db-1', 'web-1']);
  t.deepEqual(names(await get('/v1/catalog/nodes', 'Node matches "^web-" and "rack" not in Meta'), (n: { Node: string }) => n.Node), ['web-2']);
  t.deepEqual(names(await get('/v1/catalog/service/web', 'ServiceTags is empty'), (s: { Node: string }) => s.Node), ['web-2'], 'ServiceTags null in the JSON');
  t.deepEqual(names(await get('/v1/catalog/service/web', 'NodeMeta.env == prod and ServicePort == 8080'), (s: { Node: string }) => s.Node), ['web-1']);
  t.deepEqual(names(await get('/v1/health/service/web', 'Checks.Status == critical'), (s: { Node: { Node: string } }) => s.Node.Node), ['web-1']);
  t.deepEqual(names(await get('/v1/health/service/web', 'not Checks.Status != passing'), (s: { Node: { Node: string } }) => s.Node.Node), ['web-2']);
  t.deepEqual(names(await get('/v1/health/service/web', 'Node.Meta["env"] == staging and Service.Weights.Passing == 1'), (s: { Node: { Node: string } }) => s.Node.Node), ['web-2']);
  t.deepEqual(names(await get('/v1/health/state/any', 'ServiceName == web and Status == passing'), (c: { CheckID: string }) => c.CheckID), ['web-b-ttl']);
  t.deepEqual(names(await get('/v1/health/node/web-1', 'ServiceID == ""'), (c: { CheckID: string }) => c.CheckID), ['disk']);
  t.deepEqual(names(await get('/v1/health/checks/web', 'v1 in ServiceTags'), (c: { CheckID: string }) => c.CheckID), ['web-a-ttl']);
  const dbServices = (await h.request('GET', '/v1/catalog/node-services/db-1')).json() as { Node: unknown; Services: unknown[] };
  t.is(dbServices.Services.length, 1);
  t.deepEqual(await get('/v1/catalog/node-services/db-1', 'Port == 1'), { Node: dbServices.Node, Services: [] });
  t.deepEqual(await get('/v1/catalog/node-services/db-1', 'Port == 5432 and Tags is empty and Meta is empty'), dbServices);
  t.deepEqual(Object.keys((await get('/v1/catalog/node/web-1', 'Service == web') as { Services: object }).Services), ['web-a']);

  const bad = await h.request('GET', `/v1/health/service/web?${q('Checks.Status = critical')}`);
  t.is(bad.status, 400);
  t.is(bad.text, `${prefix}1:15 (14): syntax error at "= critical"; expected "==", "!=", "contains", "not", "matches", "is" or "in"`);
});
