// The output formatting of `conclave snapshot inspect` and `decode` against Consul's: ByteSize's units
// and rounding (Go rounds ties to even), Go's tabwriter alignment, the pretty layout of Consul's golden
// files, Consul's sort order, and Go's JSON (MarshalIndent with three spaces, []byte as base64, HTML
// characters escaped).

import test from 'ava';
import { byteSize, formatInspectJson, formatInspectPretty, goJson, humanBytes, sortStats, tabwrite, type InspectOutput } from '../../src/cli/snapshot/format.js';

test('byteSize: units, one decimal, trailing .0 dropped, zero is "0"', (t) => {
  const cases: Array<[number | bigint, string]> = [
    [0, '0'],
    [1, '1B'],
    [12, '12B'],
    [1023, '1023B'],
    [1024, '1KB'],
    [1075, '1KB'], // 1.0498 → 1.0 → 1
    [1076, '1.1KB'],
    [1740, '1.7KB'],
    [5141, '5KB'], // Consul's golden: Total 5KB for a 5141-byte state
    [12595, '12.3KB'],
    [1024 * 1024 - 1, '1024KB'], // 1023.999 rounds up within the KB unit, as Go does
    [1024 * 1024, '1MB'],
    [Math.round(45.6 * 1024 * 1024), '45.6MB'],
    [1024 ** 3, '1GB'],
    [1024 ** 4, '1TB'],
    [1024 ** 4 * 2048, '2048TB'],
    [2n ** 60n, '1048576TB'],
  ];
  for (const [n, s] of cases) t.is(byteSize(n), s, String(n));
});

test('byteSize rounds exact ties to even as strconv.FormatFloat does (JavaScript toFixed rounds them up)', (t) => {
  t.is(byteSize(1280), '1.2KB'); // 1.25 → 1.2
  t.is(byteSize(1536), '1.5KB');
  t.is(byteSize(1024 + 384), '1.4KB'); // 1.375 is not a tie at one decimal: 1.4
  t.is(byteSize(3 * 1024 + 256 + 64), '3.3KB'); // 3.3125
  t.is(byteSize(1024 * 3 + 256), '3.2KB'); // 3.25 → 3.2
  t.is(byteSize(1024 * 3 + 1024 * 3 / 4), '3.8KB'); // 3.75 → 3.8 (7 is odd, so up to 8)
  t.is(byteSize(1024 * 1024 * 2 + 1024 * 1024 / 4), '2.2MB'); // 2.25 → 2.2
});

test('humanBytes puts a space before the unit', (t) => {
  t.is(humanBytes(0), '0 B');
  t.is(humanBytes(512), '512 B');
  t.is(humanBytes(Math.round(12.3 * 1024 * 1024)), '12.3 MB');
});

test('tabwrite: column widths per block, minwidth, padding, last cell unpadded', (t) => {
  t.is(tabwrite(' ID\tx\n Version\t1', { minwidth: 8, padding: 6 }), ' ID           x\n Version      1');
  t.is(tabwrite('a\tb\n\nlonger\tc', { minwidth: 0, padding: 1 }), 'a b\n\nlonger c', 'an empty line ends a column block');
  t.is(tabwrite('a\tb\tc\nxx\t\tz', { minwidth: 2, padding: 1 }), 'a  b c\nxx   z', 'an empty cell is padded too');
  t.is(tabwrite('a\tb\t\nc', { minwidth: 2, padding: 1 }), 'a b \nc', 'a tab-terminated last cell is padded');
  t.is(tabwrite('é\tx\nab\ty', { minwidth: 0, padding: 1 }), 'é  x\nab y', 'width counts characters, not bytes');
});

function sample(kv: boolean): InspectOutput {
  return {
    Meta: { ID: '2-12426-1604593650375', Size: 17228, Index: 12426, Term: 2, Version: 1 },
    Stats: sortStats([
      { Name: 'Register', Sum: 3482, Count: 5 },
      { Name: 'KVS', Sum: 12595, Count: 27 },
      { Name: 'Index', Sum: 285, Count: 11 },
      { Name: 'Session', Sum: 199, Count: 1 },
      { Name: 'Autopilot', Sum: 199, Count: 1 },
      { Name: 'CoordinateBatchUpdate', Sum: 166, Count: 1 },
      { Name: 'Tombstone', Sum: 146, Count: 2 },
      { Name: 'FederationState', Sum: 139, Count: 1 },
      { Name: 'ChunkingState', Sum: 12, Count: 1 },
    ]),
    StatsKV: kv
      ? sortStats([
          { Name: 'vault/logical', Sum: 2048, Count: 4 },
          { Name: 'vault/core', Sum: 6042, Count: 16 },
          { Name: 'vault/sys', Sum: 4505, Count: 7 },
        ])
      : null,
    TotalSize: 17203,
    TotalSizeKV: 12595,
  };
}

test('the pretty layout is the one of Consul\'s golden file TestSnapshotInspectKVDetailsCommand', (t) => {
  const golden = [
    ' ID           2-12426-1604593650375',
    ' Size         17228',
    ' Index        12426',
    ' Term         2',
    ' Version      1',
    '',
    ' Type                       Count      Size',
    ' ----                       ----       ----',
    ' KVS                        27         12.3KB',
    ' Register                   5          3.4KB',
    ' Index                      11         285B',
    ' Autopilot                  1          199B',
    ' Session                    1          199B',
    ' CoordinateBatchUpdate      1          166B',
    ' Tombstone                  2          146B',
    ' FederationState            1          139B',
    ' ChunkingState              1          12B',
    ' ----                       ----       ----',
    ' Total                                 16.8KB',
  ];
  const kv = [
    '',
    ' Key Name           Count      Size',
    ' ----               ----       ----',
    ' vault/core         16         5.9KB',
    ' vault/sys          7          4.4KB',
    ' vault/logical      4          2KB',
    ' ----               ----       ----',
    ' Total                         12.3KB',
  ];
  t.is(formatInspectPretty(sample(false)), golden.join('\n'));
  t.is(formatInspectPretty(sample(true)), [...golden, ...kv].join('\n'));
});

test('sortStats: size descending, then name in byte order', (t) => {
  const sorted = sortStats([
    { Name: 'b', Sum: 1, Count: 1 },
    { Name: 'a', Sum: 1, Count: 1 },
    { Name: 'Z', Sum: 1, Count: 1 },
    { Name: 'c', Sum: 9, Count: 1 },
  ]);
  t.deepEqual(sorted.map((s) => s.Name), ['c', 'Z', 'a', 'b']);
});

test('the JSON layout is MarshalIndent with three spaces, StatsKV null without -kvdetails', (t) => {
  const info: InspectOutput = { Meta: { ID: 'one', Size: 2, Index: 3, Term: 4, Version: 1 }, Stats: [{ Name: 'msg', Sum: 1, Count: 2 }], StatsKV: null, TotalSize: 1, TotalSizeKV: 0 };
  t.is(
    formatInspectJson(info),
    '{\n   "Meta": {\n      "ID": "one",\n      "Size": 2,\n      "Index": 3,\n      "Term": 4,\n      "Version": 1\n   },\n   "Stats": [\n      {\n         "Name": "msg",\n         "Sum": 1,\n         "Count": 2\n      }\n   ],\n   "StatsKV": null,\n   "TotalSize": 1,\n   "TotalSizeKV": 0\n}',
  );
  t.is(JSON.parse(formatInspectJson({ ...info, Stats: [] })).Stats.length, 0, 'no records: an empty list, not null');
});

test('goJson: compact, []byte as base64, bigint digits, HTML characters escaped as Go does', (t) => {
  t.is(goJson({ Key: 'a<b>&c', Value: new Uint8Array([104, 105]), Big: 2n ** 64n - 1n, N: null, L: [], M: new Map([['k', 1]]) }), '{"Key":"a\\u003cb\\u003e\\u0026c","Value":"aGk=","Big":18446744073709551615,"N":null,"L":[],"M":{"k":1}}');
  t.is(goJson('line\u2028sep'), '"line\\u2028sep"');
});
