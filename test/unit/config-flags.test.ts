// The Go-style flag parser: both value forms, one or two dashes, boolean rules, repeatable flags,
// where parsing stops, and an error text that names the flag for every kind of mistake.

import test from 'ava';
import { allFlags, formatFlagHelp, isHelpFlag, lastFlag, parseFlags, wrap, type FlagSpec } from '../../src/config/index.js';
import { editDistance } from '../../src/config/flags.js';

const specs: FlagSpec[] = [
  { name: 'node', kind: 'string', valueName: 'name', usage: 'Name of this node.' },
  { name: 'http-port', kind: 'int', valueName: 'port', usage: 'HTTP port.', defaultText: '8500' },
  { name: 'server', kind: 'bool', usage: 'Server mode.' },
  { name: 'retry-join', kind: 'list', valueName: 'host:port', usage: 'Join address. Can be specified multiple times.' },
];

function ok(argv: string[]) {
  const r = parseFlags(specs, argv);
  if (!r.ok) throw new Error(`expected success, got: ${r.message}`);
  return r.flags;
}

function fail(argv: string[]): string {
  const r = parseFlags(specs, argv);
  if (r.ok) throw new Error(`expected a failure for ${JSON.stringify(argv)}`);
  return r.message;
}

test('values follow the flag as the next argument or after "=", with one dash or two', (t) => {
  const flags = ok(['-node', 'a', '-http-port=8501', '--node=b', '--http-port', '8502']);
  t.deepEqual(flags.uses, [
    { name: 'node', value: 'a' },
    { name: 'http-port', value: 8501 },
    { name: 'node', value: 'b' },
    { name: 'http-port', value: 8502 },
  ]);
  t.is(lastFlag(flags, 'node'), 'b', 'the later value wins');
  t.is(lastFlag(flags, 'http-port'), 8502);
  t.is(lastFlag(flags, 'server'), undefined);
  t.deepEqual(flags.args, []);
});

test('a value may contain "=" and may be empty after "="', (t) => {
  const flags = ok(['-node=a=b', '-retry-join=']);
  t.is(lastFlag(flags, 'node'), 'a=b');
  t.deepEqual(allFlags(flags, 'retry-join'), ['']);
});

test('a repeatable flag collects every value in order', (t) => {
  const flags = ok(['-retry-join', 'a:1', '--retry-join=b:2', '-retry-join', 'c:3']);
  t.deepEqual(allFlags(flags, 'retry-join'), ['a:1', 'b:2', 'c:3']);
});

test('boolean flags: bare means true, =false and other Go spellings parse, a separate "false" is a positional argument', (t) => {
  t.is(lastFlag(ok(['-server']), 'server'), true);
  t.is(lastFlag(ok(['--server']), 'server'), true);
  t.is(lastFlag(ok(['-server=false']), 'server'), false);
  t.is(lastFlag(ok(['-server=0']), 'server'), false);
  t.is(lastFlag(ok(['-server=T']), 'server'), true);
  const flags = ok(['-server', 'false', '-node', 'x']);
  t.is(lastFlag(flags, 'server'), true);
  t.deepEqual(flags.args, ['false', '-node', 'x'], 'parsing stops at the first positional argument, as in Go');
  t.regex(fail(['-server=maybe']), /^invalid boolean value "maybe" for -server: must be true or false/);
});

test('parsing stops after "--" and at a lone "-"', (t) => {
  t.deepEqual(ok(['-node', 'a', '--', '-server']).args, ['-server']);
  t.is(lastFlag(ok(['-node', 'a', '--', '-server']), 'server'), undefined);
  t.deepEqual(ok(['-', '-node', 'a']).args, ['-', '-node', 'a']);
});

test('a negative number is taken as the value of an int flag', (t) => {
  t.is(lastFlag(ok(['-http-port', '-1']), 'http-port'), -1);
});

test('an unknown flag is named, with a suggestion when one is close', (t) => {
  t.is(fail(['-nod', 'x']), 'flag provided but not defined: -nod; did you mean -node?');
  t.is(fail(['--zzzzzz']), 'flag provided but not defined: -zzzzzz');
});

test('a flag without its value is named, also when the next argument is another flag', (t) => {
  t.regex(fail(['-node']), /^flag needs an argument: -node \(nothing follows it\)/);
  t.regex(fail(['-node', '-server']), /^flag needs an argument: -node \(the next argument is the flag -server\)/);
  t.regex(fail(['-retry-join', '--node=x']), /^flag needs an argument: -retry-join/);
});

test('an int flag rejects anything but a whole number, naming the value and the flag', (t) => {
  t.is(fail(['-http-port', 'abc']), 'invalid value "abc" for flag -http-port: must be a whole number');
  t.is(fail(['-http-port=8.5']), 'invalid value "8.5" for flag -http-port: must be a whole number');
  t.is(fail(['-http-port=99999999999999999999']), 'invalid value "99999999999999999999" for flag -http-port: must be a whole number');
});

test('bad flag syntax is reported as Go reports it', (t) => {
  t.is(fail(['---node', 'x']), 'bad flag syntax: ---node');
  t.is(fail(['-=x']), 'bad flag syntax: -=x');
});

test('-h, -help and --help ask for help wherever they appear among the flags', (t) => {
  for (const arg of ['-h', '-help', '--help', '--h']) {
    const r = parseFlags(specs, ['-node', 'x', arg]);
    t.false(r.ok);
    t.true(!r.ok && r.helpRequested, arg);
  }
  t.true(isHelpFlag('-h'));
  t.true(isHelpFlag('--help'));
  t.false(isHelpFlag('-hh'));
  t.false(isHelpFlag('help'));
});

test('help lists flags sorted, in Consul\'s layout, with defaults, wrapped at 72 columns', (t) => {
  const help = formatFlagHelp(specs);
  const lines = help.split('\n');
  t.deepEqual(
    lines.filter((l) => l.startsWith('  -')),
    ['  -http-port=<port>', '  -node=<name>', '  -retry-join=<host:port>', '  -server'],
  );
  t.true(lines.includes('     HTTP port. (default: 8500)'));
  t.true(lines.every((l) => l.length <= 72), 'no line is longer than 72 columns');
});

test('wrap keeps every word and respects the width', (t) => {
  const text = 'one two three four five six seven eight nine ten eleven twelve';
  const lines = wrap(text, 14);
  t.is(lines.join(' '), text);
  t.true(lines.every((l) => l.length <= 14));
  t.deepEqual(wrap('averyveryverylongword x', 5), ['averyveryverylongword', 'x']);
});

test('edit distance', (t) => {
  t.is(editDistance('node', 'node'), 0);
  t.is(editDistance('nod', 'node'), 1);
  t.is(editDistance('kitten', 'sitting'), 3);
  t.is(editDistance('', 'abc'), 3);
});
