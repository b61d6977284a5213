// `conclave snapshot` through runCli with fake stdout/stderr, over real archives made with src/snapshot's
// writeArchive: the help and dispatch, inspect's layouts and errors (Consul's texts), -kvdetails
// grouping, a raw state.bin beside its meta.json, decode's JSON lines, and save verifying a real
// archive from a fake agent (a damaged one is refused and leaves no file).

import test, { type ExecutionContext } from 'ava';
import { encode } from '@msgpack/msgpack';
import { createServer } from 'node:http';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCliCaptured } from '../support/cli-run.js';
import { byteSize } from '../../src/cli/snapshot/format.js';
import { archiveMeta, encodeIndexRecord, encodeKvsRecord, encodeMetaJson, encodeStateBinHeader, writeArchive } from '../../src/snapshot/index.js';

const cli = runCliCaptured;

async function scratch(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-snapshot-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function kv(key: string, value: string, index: number): Uint8Array {
  return Buffer.concat([Buffer.from([2]), encodeKvsRecord({ Key: key, Value: utf8(value), Flags: 0, CreateIndex: index, ModifyIndex: index, LockIndex: 0, Session: '' })]);
}

/** A state.bin with KV entries under two prefixes, Index records, a Register and an Enterprise (65) record. */
function stateBin(): Buffer {
  return Buffer.concat([
    encodeStateBinHeader(40),
    Buffer.from([0]),
    encode({ Node: 'n1', Address: '127.0.0.1' }),
    kv('vault/core/a', 'x'.repeat(300), 10),
    kv('vault/core/b', 'y'.repeat(100), 11),
    kv('vault/sys/c', 'z', 12),
    kv('app/<cfg>&', 'hello', 13),
    kv('top', '', 14),
    Buffer.from([16]),
    encodeIndexRecord({ Key: 'kvs', Value: 14 }),
    Buffer.from([65]),
    encode({ Partition: 'p1' }),
  ]);
}

function meta(size: number): ReturnType<typeof archiveMeta> {
  return archiveMeta({
    index: 42,
    term: 3,
    configuration: { servers: [{ id: 'node1', address: '127.0.0.1:8300', suffrage: 'voter' }] } as never,
    configurationIndex: 1,
    size,
    nowMs: 1700000000000,
    producerVersion: '0.1.0',
  });
}

async function archiveBytes(state: Buffer = stateBin()): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of writeArchive(meta(state.length), [state] as unknown as AsyncIterable<Uint8Array>)) chunks.push(c);
  return Buffer.concat(chunks);
}

async function archiveFile(t: ExecutionContext): Promise<string> {
  const dir = await scratch(t);
  const file = join(dir, 'backup.snap');
  await writeFile(file, await archiveBytes());
  return file;
}

test('conclave snapshot: no subcommand is help on stderr (1); -h is help on stdout (0); an unknown one is 1', async (t) => {
  const none = await cli(['snapshot']);
  t.is(none.code, 1);
  t.regex(none.stderr, /^Usage: conclave snapshot <subcommand>/);
  t.is(none.stdout, '');
  for (const argv of [['snapshot', '-h'], ['snapshot', '--help'], ['-h', 'snapshot']]) {
    const help = await cli(argv);
    t.is(help.code, 0, argv.join(' '));
    t.regex(help.stdout, /Saves, restores and inspects snapshots of Conclave server state|^Usage: conclave snapshot/);
    for (const sub of ['save', 'restore', 'inspect', 'decode']) t.regex(help.stdout, new RegExp(`^ {4}${sub} +\\S`, 'm'));
  }
  const bogus = await cli(['snapshot', 'bogus']);
  t.is(bogus.code, 1);
  t.regex(bogus.stderr, /^Unknown subcommand: "bogus"/);
  const top = await cli(['--help']);
  t.regex(top.stdout, /^ {4}snapshot {4}Saves, restores and inspects snapshots of Conclave server state$/m);
});

test('each subcommand\'s -h prints its usage and flags, wherever the flag is', async (t) => {
  const cases: Array<[string, string[]]> = [
    ['save', ['-http-addr', '-token', '-token-file', '-datacenter', '-stale']],
    ['restore', ['-http-addr', '-token', '-token-file', '-datacenter', '-stale']],
    ['inspect', ['-kvdetails', '-kvdepth', '-kvfilter', '-format']],
    ['decode', []],
  ];
  for (const [sub, flags] of cases) {
    const r = await cli(['snapshot', sub, 'FILE', '-h']);
    t.is(r.code, 0);
    t.true(r.stdout.startsWith(`Usage: conclave snapshot ${sub} [options] FILE\n`), sub);
    for (const f of flags) t.regex(r.stdout, new RegExp(`^  ${f}(=<[^>]+>)?$`, 'm'), `${sub} ${f}`);
  }
});

test('inspect: Consul\'s pretty layout, records by size then name, the header counted into the first record', async (t) => {
  const file = await archiveFile(t);
  const r = await cli(['snapshot', 'inspect', file]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, '');
  const lines = r.stdout.split('\n');
  t.deepEqual(lines.slice(0, 6), [' ID           3-42-1700000000000', ` Size         ${stateBin().length}`, ' Index        42', ' Term         3', ' Version      1', '']);
  t.regex(lines[6]!, /^ Type +Count +Size$/);
  const rows = lines.slice(8, lines.indexOf(lines.slice(8).find((l) => l.startsWith(' ----'))!, 8)).map((l) => l.trim().split(/\s+/));
  t.deepEqual(rows.map((r) => r[0]).sort(), ['Index', 'KVS', 'Register', 'Unknown(65)']);
  t.is(rows[0]![0], 'KVS', 'largest first');
  t.is(rows.find((r) => r[0] === 'KVS')?.[1], '5');
  t.is(lines.at(-2), ` Total${' '.repeat(lines[6]!.indexOf('Size') - 6)}${byteSize(stateBin().length)}`);
  t.is(lines.at(-1), '', 'one newline at the end');
});

test('inspect -format json: Consul\'s object with every byte counted, and our producer under one extra key', async (t) => {
  const file = await archiveFile(t);
  const r = await cli(['snapshot', 'inspect', '-format', 'json', '-kvdetails', file]);
  t.is(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout) as {
    Meta: Record<string, unknown>;
    Stats: Array<{ Name: string; Sum: number; Count: number }>;
    StatsKV: Array<{ Name: string; Sum: number; Count: number }>;
    TotalSize: number;
    TotalSizeKV: number;
    Producer: unknown;
  };
  t.deepEqual(Object.keys(info), ['Meta', 'Stats', 'StatsKV', 'TotalSize', 'TotalSizeKV', 'Producer']);
  t.deepEqual(info.Meta, { ID: '3-42-1700000000000', Size: stateBin().length, Index: 42, Term: 3, Version: 1 });
  t.is(info.TotalSize, stateBin().length);
  t.is(info.Stats.reduce((n, s) => n + s.Sum, 0), stateBin().length);
  t.deepEqual(info.Stats.map((s) => s.Name).sort(), ['Index', 'KVS', 'Register', 'Unknown(65)']);
  for (let i = 1; i < info.Stats.length; i++) t.true(info.Stats[i - 1]!.Sum >= info.Stats[i]!.Sum);
  t.deepEqual(info.StatsKV.map((s) => [s.Name, s.Count]).sort(), [['app/<cfg>&', 1], ['top', 1], ['vault/core', 2], ['vault/sys', 1]]);
  t.is(info.StatsKV[0]!.Name, 'vault/core', 'largest first');
  for (let i = 1; i < info.StatsKV.length; i++) t.true(info.StatsKV[i - 1]!.Sum >= info.StatsKV[i]!.Sum);
  t.true(r.stdout.includes('"app/\\u003ccfg\\u003e\\u0026"'), 'HTML characters escaped as Go does');
  t.is(info.TotalSizeKV, info.Stats.find((s) => s.Name === 'KVS')!.Sum);
  t.deepEqual(info.Producer, { Name: 'conclave', Version: '0.1.0', FsmFormat: 1 });
  t.true(r.stdout.startsWith('{\n   "Meta": {\n      "ID": '), 'three-space indent');
});

test('inspect -kvdetails: -kvdepth and -kvfilter group the keys as Consul does', async (t) => {
  const file = await archiveFile(t);
  const r = await cli(['snapshot', 'inspect', '-kvdetails', '-kvdepth', '1', '-kvfilter', 'vault/', file]);
  t.is(r.code, 0, r.stderr);
  const block = r.stdout.split('\n\n')[2]!.split('\n');
  t.regex(block[0]!, /^ Key Name +Count +Size$/);
  t.regex(block[2]!, /^ vault +3 +\S+$/);
  t.regex(block[3]!, /^ -{4}/);
  const deep = await cli(['snapshot', 'inspect', '-kvdetails', '-kvdepth=5', file]);
  t.regex(deep.stdout, /^ vault\/core\/a +1 /m);
  t.regex(deep.stdout, /^ top +1 /m);
  const none = await cli(['snapshot', 'inspect', '-kvdetails', '-kvfilter', 'nothing/', file]);
  t.false(none.stdout.includes('Key Name'), 'no KV entry matched: no block, as Consul (nil StatsKV)');
  const ignored = await cli(['snapshot', 'inspect', '-kvdepth', '3', file]);
  t.is(ignored.code, 0);
  t.false(ignored.stdout.includes('Key Name'));
  t.regex(ignored.stderr, /apply only with -kvdetails/);
});

test('inspect: Consul\'s error texts, exit 1, nothing on stdout', async (t) => {
  const file = await archiveFile(t);
  const dir = await scratch(t);
  const cases: Array<[string[], RegExp]> = [
    [['snapshot', 'inspect'], /^Missing FILE argument\n$/],
    [['snapshot', 'inspect', 'a', 'b', 'c'], /^Too many arguments \(expected 1, got 3\)\n$/],
    [['snapshot', 'inspect', join(dir, 'missing.snap')], /^Error opening snapshot file: .*ENOENT/],
    [['snapshot', 'inspect', '-format', 'yaml', file], /^Error outputting enhanced snapshot data: Unknown format: yaml\n$/],
  ];
  const damaged = Buffer.from(await readFile(file));
  damaged[damaged.length - 12]! ^= 0xff; // inside gzip's CRC trailer or the last deflate block
  await writeFile(join(dir, 'damaged.snap'), damaged);
  cases.push([['snapshot', 'inspect', join(dir, 'damaged.snap')], /^Error verifying snapshot: /]);
  await writeFile(join(dir, 'plain.txt'), 'not gzip at all');
  cases.push([['snapshot', 'inspect', join(dir, 'plain.txt')], /^Error verifying snapshot: failed to decompress snapshot/]);
  for (const [argv, want] of cases) {
    const r = await cli(argv);
    t.is(r.code, 1, argv.join(' '));
    t.regex(r.stderr, want, argv.join(' '));
    t.is(r.stdout, '');
  }
});

test('inspect and decode accept a raw state.bin with meta.json beside it, as Consul does', async (t) => {
  const dir = await scratch(t);
  const raw = join(dir, 'raft', '3-42-1700000000000');
  await mkdir(raw, { recursive: true });
  const state = stateBin();
  await writeFile(join(raw, 'state.bin'), state);
  const missing = await cli(['snapshot', 'inspect', join(raw, 'state.bin')]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /^Error reading meta.json from internal snapshot dir: .*ENOENT/);
  await writeFile(join(raw, 'meta.json'), '{not json');
  t.regex((await cli(['snapshot', 'inspect', join(raw, 'state.bin')])).stderr, /^Error parsing meta.json from internal snapshot dir: /);
  await writeFile(join(raw, 'meta.json'), encodeMetaJson(meta(state.length)));
  const r = await cli(['snapshot', 'inspect', join(raw, 'state.bin')]);
  t.is(r.code, 0, r.stderr);
  t.true(r.stdout.startsWith(' ID           3-42-1700000000000\n'));
  const archived = await cli(['snapshot', 'inspect', await archiveFile(t)]);
  t.is(r.stdout, archived.stdout, 'the same numbers as from the archive');
  const d = await cli(['snapshot', 'decode', join(raw, 'state.bin')]);
  t.is(d.code, 0, d.stderr);
  t.is(d.stdout.split('\n').length, 1 + 8 + 1, 'header, 8 records, final newline');
});

test('decode: the header line, then one line per record; KV values base64; unknown types Unknown(n)', async (t) => {
  const file = await archiveFile(t);
  const r = await cli(['snapshot', 'decode', file]);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  t.is(lines.length, 9);
  const header = JSON.parse(lines[0]!) as { Data: Record<string, unknown>; Type: string };
  t.is(header.Type, 'SnapshotHeader');
  t.true(lines[0]!.startsWith('{"Data":{"Version":1,"ID":"3-42-1700000000000","Index":42,"Term":3,'), 'Data first, Go\'s meta field order');
  t.is(header.Data.Size, stateBin().length);
  const records = lines.slice(1).map((l) => JSON.parse(l) as { Data: Record<string, unknown>; Type: string });
  t.deepEqual(records.map((x) => x.Type), ['Register', 'KVS', 'KVS', 'KVS', 'KVS', 'KVS', 'Index', 'Unknown(65)']);
  const first = records.find((x) => x.Type === 'KVS' && x.Data.Key === 'vault/core/a')!;
  t.is(first.Data.Value, Buffer.from('x'.repeat(300)).toString('base64'));
  t.is(records.find((x) => x.Data.Key === 'top')!.Data.Value, null, 'an empty value is null, as Consul stores it');
  t.deepEqual(records.find((x) => x.Type === 'Unknown(65)')!.Data, { Partition: 'p1' });
  t.deepEqual(records.find((x) => x.Type === 'Index')!.Data, { Key: 'kvs', Value: 14 });
  t.true(lines.every((l) => l.endsWith(`"Type":${JSON.stringify(JSON.parse(l).Type)}}`)), 'Type last, as Go sorts map keys');
});

test('decode: a damaged archive prints nothing on stdout', async (t) => {
  const file = await archiveFile(t);
  const damaged = Buffer.from(await readFile(file));
  damaged[damaged.length - 12]! ^= 0xff;
  await writeFile(file, damaged);
  const r = await cli(['snapshot', 'decode', file]);
  t.is(r.code, 1);
  t.is(r.stdout, '');
  t.regex(r.stderr, /^Error verifying snapshot: /);
});

test('save verifies a real archive from the agent; a damaged one is refused and no file is left', async (t) => {
  const good = await archiveBytes();
  const bad = Buffer.from(good);
  bad[bad.length - 12]! ^= 0xff;
  let body = good;
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'X-Consul-Index': '42' });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const dir = await scratch(t);
  const ok = await cli(['snapshot', 'save', join(dir, 'good.snap')], { CONSUL_HTTP_ADDR: addr });
  t.is(ok.code, 0, ok.stderr);
  t.is(ok.stdout, 'Saved and verified snapshot to index 42\n');
  t.deepEqual(await readFile(join(dir, 'good.snap')), good);
  body = bad;
  const refused = await cli(['snapshot', 'save', join(dir, 'bad.snap')], { CONSUL_HTTP_ADDR: addr });
  t.is(refused.code, 1);
  t.regex(refused.stderr, /Error verifying snapshot file: /);
  t.false(existsSync(join(dir, 'bad.snap')));
  t.false(existsSync(join(dir, 'bad.snap.unverified')));
});
