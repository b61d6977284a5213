// encodeJson with bigints (a KV entry's Flags from 2^53): Go writes a uint64 as a JSON number with all
// its digits; JSON.stringify cannot, so such values go through encodeJson's own writer, which must write
// exactly what JSON.stringify writes for everything else. And parseJsonExact, which reads big integer
// literals exactly where JSON.parse rounds them.

import test from 'ava';
import { dirEntryJson, encodeJson, JsonFraction, parseJsonExact } from '../../src/http/json.js';
import { prng } from '../support/prng.js';

test('encodeJson prints a bigint Flags with every digit, compact and ?pretty', (t) => {
  for (const [flags, digits] of [
    [0, '0'], [2 ** 53 - 1, '9007199254740991'], [2n ** 53n, '9007199254740992'], [2n ** 53n + 1n, '9007199254740993'],
    [2n ** 63n, '9223372036854775808'], [2n ** 64n - 1n, '18446744073709551615'],
  ] as const) {
    const entry = dirEntryJson({ Key: 'k<', Flags: flags, Value: Uint8Array.of(1), Session: '', LockIndex: 0, CreateIndex: 1, ModifyIndex: 2 });
    t.is(encodeJson([entry], false), `[{"LockIndex":0,"Key":"k\\u003c","Flags":${digits},"Value":"AQ==","CreateIndex":1,"ModifyIndex":2}]`);
    t.is(encodeJson([entry], true), `${JSON.stringify([{ ...entry, Flags: 0 }], null, 4).replace('"Flags": 0', `"Flags": ${digits}`).replace('<', '\\u003c')}\n`);
  }
});

test('encodeJson with a bigint writes what JSON.stringify writes for the rest of the value', (t) => {
  const next = prng(9);
  const marker = 123456789;
  const make = (depth: number): unknown => {
    switch (next() % (depth > 3 ? 5 : 8)) {
      case 0: return next() % 2 === 0 ? null : next() % 2 === 0;
      case 1: return ['', 'a"b\\c', 'ü😀\u2028', '<&>'][next() % 4];
      case 2: return [0, -1.5, 1e21, 2 ** 53 - 1, Number.NaN][next() % 5];
      case 3: return 2n ** 64n - 1n;
      case 4: return undefined;
      case 5: return Array.from({ length: next() % 4 }, () => make(depth + 1));
      default: return Object.fromEntries(Array.from({ length: next() % 4 }, (_, i) => [`f${i}`, make(depth + 1)]));
    }
  };
  for (let i = 0; i < 500; i++) {
    const value = [make(0), 2n ** 64n - 1n];
    for (const pretty of [false, true]) {
      const expected = encodeJson(JSON.parse(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? marker : v))), pretty)
        .replaceAll(String(marker), '18446744073709551615');
      t.is(encodeJson(value, pretty), expected);
    }
  }
});

test('parseJsonExact reads integer literals beyond 2^53-1 as bigints, fractions and exponents as JsonFraction, everything else as JSON.parse does', (t) => {
  t.deepEqual(parseJsonExact('[{"Flags":18446744073709551615,"Key":"1234567890123456789","n":9007199254740991,"m":-9007199254740993,"f":12345678901234567.5,"e":1e300}]'),
    [{ Flags: 18446744073709551615n, Key: '1234567890123456789', n: 9007199254740991, m: -9007199254740993n, f: new JsonFraction('12345678901234567.5', 12345678901234567.5), e: new JsonFraction('1e300', 1e300) }]);
  // Go refuses 5.0 and 1e2 for a uint64 field: the literal is kept to say so. Strings are untouched.
  t.deepEqual(parseJsonExact('{"a":5.0,"b":1E2,"c":-0.5e-3,"d":"v1.2 5e3","n":7}'),
    { a: new JsonFraction('5.0', 5), b: new JsonFraction('1E2', 100), c: new JsonFraction('-0.5e-3', -0.0005), d: 'v1.2 5e3', n: 7 });
  t.deepEqual(parseJsonExact('{"d":"v1.2 5e3","n":7}'), { d: 'v1.2 5e3', n: 7 });
  const text = '{"__proto__":{"a":1},"s":"\\"q\\\\\\u00e9 12345678901234567890","x":[ 1 , {"y" : [] , "z":{}} , true,false,null ],"dup":1,"dup":99999999999999999999}';
  const exact = parseJsonExact(text) as Record<string, unknown>;
  t.deepEqual(Object.keys(exact), Object.keys(JSON.parse(text) as object));
  t.deepEqual(exact['__proto__'], { a: 1 });
  t.is(Object.getPrototypeOf(exact), Object.prototype);
  t.is(exact['s'], '"q\\é 12345678901234567890');
  t.deepEqual(exact['x'], [1, { y: [], z: {} }, true, false, null]);
  t.is(exact['dup'], 99999999999999999999n);
  t.throws(() => parseJsonExact('[12345678901234567890'), { instanceOf: SyntaxError });
});
