// parseGoDuration against a table of Go's time.ParseDuration results (values and refusals as Go gives
// them; the table follows Go's own parseDurationTests and parseDurationErrorTests).

import test from 'ava';
import { parseGoDuration } from '../../src/http/index.js';

const ns = 1n;
const us = 1000n * ns;
const ms = 1000n * us;
const s = 1000n * ms;
const m = 60n * s;
const h = 60n * m;

const valid: Array<[string, bigint]> = [
  ['0', 0n], ['5s', 5n * s], ['30s', 30n * s], ['1478s', 1478n * s], ['-5s', -5n * s], ['+5s', 5n * s], ['-0', 0n], ['+0', 0n],
  ['5.0s', 5n * s], ['5.6s', 5n * s + 600n * ms], ['5.s', 5n * s], ['.5s', 500n * ms], ['1.0s', s], ['1.00s', s],
  ['1.004s', s + 4n * ms], ['1.0040s', s + 4n * ms], ['100.00100s', 100n * s + 1n * ms],
  ['10ns', 10n], ['11us', 11n * us], ['12µs', 12n * us], ['12μs', 12n * us], ['13ms', 13n * ms], ['14s', 14n * s],
  ['15m', 15n * m], ['16h', 16n * h], ['3h30m', 3n * h + 30n * m], ['10.5s4m', 4n * m + 10n * s + 500n * ms],
  ['-2m3.4s', -(2n * m + 3n * s + 400n * ms)], ['1h2m3s4ms5us6ns', h + 2n * m + 3n * s + 4n * ms + 5n * us + 6n],
  ['39h9m14.425s', 39n * h + 9n * m + 14n * s + 425n * ms], ['52763797000ns', 52763797000n],
  ['0.3333333333333333333h', 20n * m], ['9007199254740993ns', 9007199254740993n],
  ['9223372036854775807ns', 9223372036854775807n], ['-9223372036854775808ns', -9223372036854775808n],
];

const invalid: Array<[string, string]> = [
  ['', 'time: invalid duration ""'],
  ['3', 'time: missing unit in duration "3"'],
  ['-', 'time: invalid duration "-"'],
  ['s', 'time: invalid duration "s"'],
  ['.', 'time: invalid duration "."'],
  ['-.', 'time: invalid duration "-."'],
  ['.s', 'time: invalid duration ".s"'],
  ['+.s', 'time: invalid duration "+.s"'],
  ['1d', 'time: unknown unit "d" in duration "1d"'],
  ['5 s', 'time: unknown unit " s" in duration "5 s"'],
  ['10S', 'time: unknown unit "S" in duration "10S"'],
  ['9223372036854775808ns', 'time: invalid duration "9223372036854775808ns"'],
  ['9223372036854775.808us', 'time: invalid duration "9223372036854775.808us"'],
];

test('parseGoDuration: accepts what Go accepts, to the nanosecond', (t) => {
  for (const [text, expected] of valid) {
    const parsed = parseGoDuration(text);
    t.deepEqual(parsed, { ok: true, nanoseconds: expected }, text);
  }
});

test('parseGoDuration: refuses what Go refuses, with Go\'s message', (t) => {
  for (const [text, error] of invalid) t.deepEqual(parseGoDuration(text), { ok: false, error }, text);
});
