// `conclave kv` through runCli against a real HTTP server over a real FSM (the HTTP harness): Consul's
// output lines and error texts for get, put, delete, export and import, flags above 2^53 kept exact,
// check-and-set, locks with a session, and an export that imports back to the same tree.

import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCliCaptured, type CliRun } from '../support/cli-run.js';
import { startHarness, type Harness } from '../support/http-harness.js';

function kv(h: Harness, argv: string[]): Promise<CliRun> {
  return runCliCaptured(['kv', ...argv], { CONSUL_HTTP_ADDR: `127.0.0.1:${h.http.address.port}` });
}

test('kv: put, get, get -detailed, -recurse, -keys with Consul\'s lines', async (t) => {
  const h = await startHarness(t);
  t.deepEqual(await kv(h, ['put', 'app/db', 'postgres']), { code: 0, stdout: 'Success! Data written to: app/db\n', stderr: '' });
  t.is((await kv(h, ['put', '-flags=18446744073709551615', 'app/web/port', '8080'])).code, 0);
  t.deepEqual(await kv(h, ['get', 'app/db']), { code: 0, stdout: 'postgres\n', stderr: '' });
  const detailed = await kv(h, ['get', '-detailed', 'app/web/port']);
  t.regex(detailed.stdout, /^CreateIndex +2\nFlags +18446744073709551615\nKey +app\/web\/port\nLockIndex +0\nModifyIndex +2\nSession +-\nValue +8080\n$/);
  t.is((await kv(h, ['get', '-recurse', 'app/'])).stdout, 'app/db:postgres\napp/web/port:8080\n');
  t.is((await kv(h, ['get', '-keys', 'app/'])).stdout, 'app/db\napp/web/\n');
  t.is((await kv(h, ['get', '-base64', 'app/db'])).stdout, `${Buffer.from('postgres').toString('base64')}\n`);
  const missing = await kv(h, ['get', 'nope']);
  t.deepEqual(missing, { code: 1, stdout: '', stderr: 'Error! No key exists at: nope\n' });
  t.is((await kv(h, ['get'])).stderr, 'Error! Missing KEY argument\n');
  t.is((await kv(h, ['get', 'a', 'b'])).stderr, 'Too many arguments (expected 1, got 2)\n');
});

test('kv: put from a file, base64, check-and-set; delete and delete -recurse', async (t) => {
  const h = await startHarness(t);
  const dir = await mkdtemp(join(tmpdir(), 'conclave-kv-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'v.json'), '{"a":1}');
  t.is((await kv(h, ['put', 'cfg', `@${join(dir, 'v.json')}`])).code, 0);
  t.is((await kv(h, ['get', 'cfg'])).stdout, '{"a":1}\n');
  t.is((await kv(h, ['put', '-base64', 'b64', Buffer.from('hi').toString('base64')])).code, 0);
  t.is((await kv(h, ['get', 'b64'])).stdout, 'hi\n');
  t.is((await kv(h, ['put', '-base64', 'b64', 'not base64!'])).stderr, 'Error! Cannot base 64 decode data: illegal base64 data\n');
  t.is((await kv(h, ['put', '-cas', 'cfg', 'x'])).stderr, 'Must specify -modify-index with -cas!\n');
  const stale = await kv(h, ['put', '-cas', '-modify-index=99', 'cfg', 'x']);
  t.deepEqual(stale, { code: 1, stdout: '', stderr: 'Error! Did not write to cfg: CAS failed\n' });
  t.is((await kv(h, ['put', '-cas', '-modify-index=1', 'cfg', 'x'])).stdout, 'Success! Data written to: cfg\n');
  await kv(h, ['put', 'tree/a', '1']);
  await kv(h, ['put', 'tree/b', '2']);
  t.is((await kv(h, ['delete', 'cfg'])).stdout, 'Success! Deleted key: cfg\n');
  t.is((await kv(h, ['delete', '-recurse', 'tree/'])).stdout, 'Success! Deleted keys with prefix: tree/\n');
  t.is((await kv(h, ['get', '-recurse', 'tree/'])).stdout, '');
  t.is((await kv(h, ['delete', '-cas', '-modify-index=1', 'b64'])).stderr, 'Error! Did not delete key b64: CAS failed\n');
});

test('kv: -acquire and -release with a session', async (t) => {
  const h = await startHarness(t);
  const id = (JSON.parse((await h.request('PUT', '/v1/session/create')).text) as { ID: string }).ID;
  t.is((await kv(h, ['put', '-acquire', `-session=${id}`, 'leader', 'me'])).stdout, 'Success! Lock acquired on: leader\n');
  t.regex((await kv(h, ['get', '-detailed', 'leader'])).stdout, new RegExp(`Session +${id}\\n`));
  t.is((await kv(h, ['put', '-acquire', 'leader', 'me'])).stderr, 'Error! Missing -session (required with -acquire and -release)\n');
  t.is((await kv(h, ['put', '-release', `-session=${id}`, 'leader', 'me'])).stdout, 'Success! Lock released on: leader\n');
});

test('kv: export writes Consul\'s JSON; import puts it back under a prefix, flags exact', async (t) => {
  const h = await startHarness(t);
  await kv(h, ['put', '-flags=9007199254740993', 'svc/a', 'one']);
  await kv(h, ['put', 'svc/b', '']);
  const exported = await kv(h, ['export', 'svc/']);
  t.is(exported.code, 0);
  t.is(exported.stdout, `[\n\t{\n\t\t"key": "svc/a",\n\t\t"flags": 9007199254740993,\n\t\t"value": "${Buffer.from('one').toString('base64')}"\n\t},\n\t{\n\t\t"key": "svc/b",\n\t\t"flags": 0,\n\t\t"value": ""\n\t}\n]\n`);
  const imported = await kv(h, ['import', '-prefix=copy/', exported.stdout]);
  t.is(imported.stdout, 'Imported: copy/svc/a\nImported: copy/svc/b\n');
  t.regex((await kv(h, ['get', '-detailed', 'copy/svc/a'])).stdout, /Flags +9007199254740993\n/);
  t.is((await kv(h, ['get', 'copy/svc/a'])).stdout, 'one\n');
  // A string where Consul has a number is refused: it must never reach the txn body as JSON text.
  const injected = await kv(h, ['import', '[{"key":"k","value":"","flags":"0,\\"Verb\\":\\"delete-tree\\",\\"Key\\":\\"\\""}]']);
  t.is(injected.code, 1);
  t.regex(injected.stderr, /^Cannot unmarshal data: entry 0 \("k"\): "flags" is not an unsigned 64-bit integer/);
  t.is((await kv(h, ['get', 'svc/a'])).stdout, 'one\n', 'nothing was deleted');
  t.regex((await kv(h, ['import', '[{"key":"big","flags":18446744073709551616}]'])).stderr, /"flags" is not an unsigned 64-bit integer/);
  const bad = await kv(h, ['import', '[{"key":"x","value":"%%"}]']);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /^Cannot unmarshal data: entry 0 \("x"\): "value" is not base64/);
  t.is((await kv(h, ['get', 'x'])).code, 1, 'nothing imported from bad data');
});

test('kv: help and unknown subcommands', async (t) => {
  const h = await startHarness(t);
  const none = await kv(h, []);
  t.is(none.code, 1);
  t.regex(none.stderr, /^Usage: conclave kv <subcommand>/);
  t.is((await kv(h, ['frob'])).code, 1);
  const help = await kv(h, ['put', '-h']);
  t.is(help.code, 0);
  t.regex(help.stdout, /^Usage: conclave kv put \[options\] KEY \[DATA\]/);
});
