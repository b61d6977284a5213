// KV Flags over Consul's whole uint64 range through real agent processes (issue 9): a `-dev` agent takes
// ?flags=18446744073709551615 and a txn set with such Flags, prints them with every digit, refuses 2^64
// with Consul's text and changes nothing, saves them in a snapshot exactly (decoded here, and by
// `conclave snapshot decode`), and a restore brings them back. Then a 3-server cluster, where a
// follower forwards the write and the read to the leader (the server-to-server messages carry them).

import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDev } from '../support/dev-agent.js';
import { ProcessCluster, waitFor } from '../support/process-cluster.js';
import { decodeArchive } from '../support/snapshots.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const max = '18446744073709551615';
const half = '9223372036854775808';

async function scratch(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-flags-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function conclave(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import=tsx', 'src/cli/main.ts', ...args], { cwd: root, timeout: 120_000, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
    });
  });
}

test.serial('a -dev agent keeps Flags up to 2^64-1 exact through PUT, GET, txn, a snapshot save and a restore', async (t) => {
  const tmp = await scratch(t);
  const { output, httpPort, serverPort } = await startDev(t, tmp);
  const tail = (): string => output.join('').split('\n').slice(-20).join('\n');
  const http = (path: string, init: RequestInit = {}): Promise<Response> =>
    fetch(`http://127.0.0.1:${httpPort}${path}`, { ...init, signal: AbortSignal.timeout(60_000) });
  await waitFor('the dev agent to elect itself', async () => {
    const r = await http('/v1/status/leader');
    return r.status === 200 && String(await r.json()) === `127.0.0.1:${serverPort}` ? true : undefined;
  }, 60_000, tail);

  const put = await http(`/v1/kv/big?flags=${max}`, { method: 'PUT', body: 'v' });
  t.is(put.status, 200);
  t.is(await put.text(), 'true');
  t.is((await http('/v1/kv/safe?flags=9007199254740991', { method: 'PUT', body: 's' })).status, 200);
  const got = await http('/v1/kv/big');
  t.is(got.status, 200);
  const index = Number(got.headers.get('x-consul-index'));
  t.is(await got.text(), `[{"LockIndex":0,"Key":"big","Flags":${max},"Value":"dg==","CreateIndex":${index},"ModifyIndex":${index}}]`);

  // 2^64 is refused with strconv's text, and nothing changes.
  const refused = await http('/v1/kv/big?flags=18446744073709551616', { method: 'PUT', body: 'w' });
  t.is(refused.status, 400);
  t.is(await refused.text(), 'strconv.ParseUint: parsing "18446744073709551616": value out of range');
  const after = await http('/v1/kv/big');
  t.is(after.headers.get('x-consul-index'), String(index));
  t.regex(await after.text(), new RegExp(`"Flags":${max},"Value":"dg=="`));

  // A txn set with a big Flags: the result and a later GET show it exactly.
  const txn = await http('/v1/txn', { method: 'PUT', body: `[{"KV":{"Verb":"set","Key":"txn/big","Value":"dA==","Flags":${half}}},{"KV":{"Verb":"get","Key":"big"}}]` });
  const txnText = await txn.text();
  t.is(txn.status, 200, txnText);
  t.regex(txnText, new RegExp(`^\\{"Results":\\[\\{"KV":\\{"LockIndex":0,"Key":"txn/big","Flags":${half},"Value":null,`));
  t.regex(txnText, new RegExp(`\\{"KV":\\{"LockIndex":0,"Key":"big","Flags":${max},"Value":"dg=="`));
  t.regex(await (await http('/v1/kv/txn/big')).text(), new RegExp(`"Key":"txn/big","Flags":${half},"Value":"dA=="`));
  const badTxn = await http('/v1/txn', { method: 'PUT', body: '[{"KV":{"Verb":"set","Key":"txn/big","Flags":18446744073709551616}}]' });
  t.is(badTxn.status, 400);
  t.is(await badTxn.text(), 'Failed to parse body: json: cannot unmarshal number 18446744073709551616 into Go struct field KVTxnOp.KV.Flags of type uint64');

  // The snapshot carries them as uint64, exactly.
  const saved = await http('/v1/snapshot');
  t.is(saved.status, 200);
  const archive = Buffer.from(await saved.arrayBuffer());
  const decoded = await decodeArchive(archive);
  t.is(decoded.kv.get('big')?.flags, 2n ** 64n - 1n);
  t.is(decoded.kv.get('txn/big')?.flags, 2n ** 63n);
  t.is(decoded.kv.get('safe')?.flags, 2 ** 53 - 1);

  // `conclave snapshot decode` and `inspect` read the file and print the digits.
  const file = join(tmp, 'flags.snap');
  await writeFile(file, archive);
  const lines = await conclave(['snapshot', 'decode', file]);
  t.is(lines.code, 0, lines.stderr);
  t.regex(lines.stdout, new RegExp(`\\{"Data":\\{"LockIndex":0,"Key":"big","Flags":${max},"Value":"dg==",`));
  t.regex(lines.stdout, new RegExp(`"Key":"txn/big","Flags":${half},`));
  const inspected = await conclave(['snapshot', 'inspect', file]);
  t.is(inspected.code, 0, inspected.stderr);
  t.regex(inspected.stdout, /KVS\s+3\s/);

  // Change the state, restore the archive: the flags are back, and a save after the restore keeps them
  // (the restore stores the scanned records; the save copies them).
  t.is((await http('/v1/kv/big?flags=1', { method: 'PUT', body: 'changed' })).status, 200);
  t.is((await http('/v1/kv/txn/big', { method: 'DELETE' })).status, 200);
  const restored = await http('/v1/snapshot', { method: 'PUT', body: new Uint8Array(archive) });
  t.is(restored.status, 200, await restored.clone().text());
  t.regex(await (await http('/v1/kv/big')).text(), new RegExp(`"Key":"big","Flags":${max},"Value":"dg=="`));
  t.regex(await (await http('/v1/kv/txn/big?stale')).text(), new RegExp(`"Key":"txn/big","Flags":${half},"Value":"dA=="`));
  const again = await decodeArchive(Buffer.from(await (await http('/v1/snapshot')).arrayBuffer()));
  t.is(again.kv.get('big')?.flags, 2n ** 64n - 1n);
  t.is(again.kv.get('txn/big')?.flags, 2n ** 63n);
  t.is(again.kv.get('safe')?.flags, 2 ** 53 - 1);
});

test.serial('a follower forwards Flags up to 2^64-1 to the leader and back, exactly', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3 });
  c.startAll();
  const leader = await c.leader();
  const follower = [0, 1, 2].find((i) => i !== leader) as number;
  const put = await c.http(follower, `/v1/kv/fwd?flags=${max}`, { method: 'PUT', body: 'f' });
  t.is(put.status, 200, await put.clone().text());
  // A default read on a follower is forwarded to the leader, whose answer travels back.
  t.regex(await (await c.http(follower, '/v1/kv/fwd')).text(), new RegExp(`"Key":"fwd","Flags":${max},"Value":"Zg=="`));
  const txn = await c.http(follower, '/v1/txn', { method: 'PUT', body: `[{"KV":{"Verb":"cas","Key":"fwd","Index":0,"Flags":${half}}},{"KV":{"Verb":"set","Key":"fwd2","Flags":${half}}}]` });
  // cas with Index 0 on an existing key fails: a 409 naming the op, and nothing applied.
  t.is(txn.status, 409);
  const ok = await c.http(follower, '/v1/txn', { method: 'PUT', body: `[{"KV":{"Verb":"set","Key":"fwd2","Flags":${half}}},{"KV":{"Verb":"get","Key":"fwd"}}]` });
  const okText = await ok.text();
  t.is(ok.status, 200, okText);
  t.regex(okText, new RegExp(`"Key":"fwd2","Flags":${half},.*"Key":"fwd","Flags":${max},`));
  // Every server applied the same bytes: each one's own (?stale) answer shows them.
  for (const i of [0, 1, 2]) {
    await waitFor(`server ${i} to apply fwd2`, async () => ((await c.http(i, '/v1/kv/fwd2?stale')).status === 200 ? true : undefined));
    t.regex(await (await c.http(i, '/v1/kv/fwd?stale')).text(), new RegExp(`"Flags":${max},`));
    t.regex(await (await c.http(i, '/v1/kv/fwd2?stale')).text(), new RegExp(`"Flags":${half},`));
  }
});
