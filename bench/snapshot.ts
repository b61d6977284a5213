// npm run bench:snapshot: snapshot save and recovery of N KV entries (256-byte values) in a local 3-node
// Conclave cluster of compiled agents, beside this machine's gzip and SHA-256 rates and a local 3-member
// etcd 3.4 doing the same. Figures only: nothing here asserts on speed; the targets are printed beside.
//
//   npm run bench:snapshot -- --sizes 10000 --kinds config       (small, while developing)
//   npm run bench:snapshot                                       (100,000 and 1,000,000 entries, both kinds)
//
// For each size N and value kind (config: JSON-like text, compressible; random: random bytes):
// 1. The N entries are written as a state.bin and archive with src/snapshot's writer (the bench's own
//    fixture, not measured as a save) and loaded into a fresh cluster with PUT /v1/snapshot. That is the
//    fast honest way: the restore path checks every record exactly as for any archive, and loading 1M
//    keys through /v1/txn batches of 64 would take far longer than everything measured here.
// 2. Save: GET /v1/snapshot through the leader (consistent), streamed to a file.
// 3. Recovery: that saved archive is restored into a FRESH 3-node cluster (PUT /v1/snapshot); the time
//    runs until every node serves the last key on a ?stale read. The key count (?keys on one node) is
//    checked after, and timed on its own.
// 4. etcd: the same keys and values loaded with /v3/kv/txn batches of 128 puts, `etcdctl snapshot save`
//    from the leader timed; recovery = `etcdctl snapshot restore` for the three members (in parallel, as
//    three machines would) + starting them, until each serves the last key on a serializable read.
// Peak RSS: idle VmRSS read and VmHWM reset (write 5 to /proc/<pid>/clear_refs) before, VmHWM read after.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { createGunzip, createGzip } from 'node:zlib';
import {
  archiveMeta,
  defaultGzipLevel,
  encodeIndexRecord,
  encodeKvsRecord,
  encodeStateBinHeader,
  RecordType,
  writeArchive,
} from '../src/snapshot/index.js';
import {
  agentsCpuMs,
  buildDist,
  Cleanup,
  endConclave,
  EtcdCluster,
  etcdInstallHint,
  findEtcd,
  PeakRss,
  runBounded,
  startConclave,
  tempDir,
  waitFor,
  within,
  type ProcessCluster,
} from './support.js';

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100000,1000000' },
    kinds: { type: 'string', default: 'config,random' },
    'no-etcd': { type: 'boolean', default: false },
    /** Skip `tsc` (dist/ is already built from this tree). */
    'no-build': { type: 'boolean', default: false },
    /** Bound of every wait, seconds; default 60 s + 1 ms per entry. */
    'timeout-s': { type: 'string' },
    /** Write every Conclave node's log of the recovery into this directory (for a timeline). */
    logs: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log('usage: npm run bench:snapshot -- [--sizes 100000,1000000] [--kinds config,random] [--no-etcd] [--no-build] [--timeout-s S] [--logs DIR]');
  process.exit(0);
}
const sizes = args.sizes.split(',').map((s) => Number(s.replace(/_/g, '')));
const kinds = args.kinds.split(',') as Kind[];
for (const n of sizes) if (!Number.isInteger(n) || n < 1) throw new Error(`--sizes: ${n} is not a positive integer`);
for (const k of kinds) if (k !== 'config' && k !== 'random') throw new Error(`--kinds: ${k} is neither config nor random`);

type Kind = 'config' | 'random';
const valueBytes = 256;
const MB = 1e6;
const MiB = 1024 * 1024;
const targetRssBytes = 64 * MiB;

// ---------------------------------------------------------------------------------------------------
// The data: key i is bench/<i, 7+ digits> (sorted as numbers), its value a pure function of (kind, i).

function keyOf(i: number, n: number): string {
  return `bench/${String(i).padStart(Math.max(7, String(n - 1).length), '0')}`;
}

const hex = (x: number, w: number): string => x.toString(16).padStart(w, '0');

/** 256 bytes of JSON: a service's config, varying per key, padded with spaces to the length. */
function configValue(i: number): Buffer {
  const h = Math.imul(i + 1, 2654435761) >>> 0;
  const s = JSON.stringify({
    service: `api-${i}`,
    datacenter: ['dc1', 'dc2', 'eu-west'][h % 3],
    port: 20000 + (h % 10000),
    tags: ['primary', `v${h % 7}`, `zone-${'abc'[h % 3]}`],
    check: { interval: '10s', timeout: '2s', http: `http://10.${(h >>> 8) & 255}.${(h >>> 16) & 255}.${h >>> 24}:${20000 + (h % 10000)}/health` },
    meta: { owner: `team-${h % 13}`, version: `1.${h % 9}.${h % 50}`, rev: hex(h & 0xffff, 4) },
    enabled: h % 5 !== 0,
  });
  if (s.length > valueBytes - 1) throw new Error(`config value ${i} is ${s.length} bytes`);
  return Buffer.from(s.slice(0, -1) + ' '.repeat(valueBytes - s.length) + '}');
}

/** 256 pseudo-random bytes (xorshift32 seeded by i): incompressible, and reproducible for etcd. */
function randomValue(i: number): Buffer {
  const b = Buffer.allocUnsafe(valueBytes);
  let x = (Math.imul(i + 1, 2654435761) ^ 0x9e3779b9) >>> 0 || 1;
  for (let j = 0; j < valueBytes; j += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, j);
  }
  return b;
}

const valueOf = (kind: Kind, i: number): Buffer => (kind === 'config' ? configValue(i) : randomValue(i));

/** Writes the entries' state.bin (header, N KVS records, the kvs Index record); returns its size. */
async function writeStateBin(path: string, kind: Kind, n: number): Promise<{ size: number; lastIndex: number }> {
  const lastIndex = n + 1;
  async function* records(): AsyncGenerator<Uint8Array> {
    let parts: Uint8Array[] = [encodeStateBinHeader(lastIndex)];
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const body = encodeKvsRecord({ Key: keyOf(i, n), Flags: 0, Value: valueOf(kind, i), CreateIndex: i + 1, ModifyIndex: i + 1, LockIndex: 0, Session: '' });
      parts.push(Uint8Array.of(RecordType.KVS), body);
      bytes += 1 + body.length;
      if (bytes >= 1 * MiB) {
        yield Buffer.concat(parts);
        parts = [];
        bytes = 0;
      }
    }
    parts.push(Uint8Array.of(RecordType.Index), encodeIndexRecord({ Key: 'kvs', Value: n }));
    yield Buffer.concat(parts);
  }
  await pipeline(Readable.from(records()), createWriteStream(path));
  return { size: (await stat(path)).size, lastIndex };
}

async function writeFixtureArchive(stateBinPath: string, size: number, lastIndex: number, archivePath: string): Promise<void> {
  const meta = archiveMeta({
    index: lastIndex,
    term: 1,
    configuration: { servers: [{ id: 'bench-fixture', suffrage: 'voter', address: '127.0.0.1:8300' }] },
    configurationIndex: 1,
    size,
    nowMs: Date.now(),
    producerVersion: 'bench',
  });
  await pipeline(Readable.from(writeArchive(meta, createReadStream(stateBinPath, { highWaterMark: 256 * 1024 }))), createWriteStream(archivePath));
}

/** Bytes per second of gzip (node zlib at src/snapshot's level) and of SHA-256 over the file. */
async function limits(stateBinPath: string, size: number): Promise<{ gzip: number; sha256: number }> {
  let t0 = performance.now();
  await pipeline(createReadStream(stateBinPath, { highWaterMark: 256 * 1024 }), createGzip({ level: defaultGzipLevel }), new Writable({ write: (_c, _e, cb) => cb() }));
  const gzip = size / ((performance.now() - t0) / 1000);
  t0 = performance.now();
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(stateBinPath, { highWaterMark: 256 * 1024 })) hash.update(chunk as Buffer);
  hash.digest();
  const sha256 = size / ((performance.now() - t0) / 1000);
  return { gzip, sha256 };
}

// ---------------------------------------------------------------------------------------------------
// Conclave over HTTP

/** PUT /v1/snapshot with the archive file as the body; resolves when the server answers 200. */
function putSnapshotOnce(port: number, archivePath: string, size: number, timeoutMs: number): Promise<void> {
  let req: ReturnType<typeof request> | undefined;
  const done = new Promise<void>((resolve, reject) => {
    req = request({ host: '127.0.0.1', port, method: 'PUT', path: '/v1/snapshot', headers: { 'content-length': size, 'content-type': 'application/octet-stream' } }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new PutError(res.statusCode ?? 0, body.slice(0, 500)))));
      res.on('error', reject);
    });
    req.on('error', reject);
    createReadStream(archivePath, { highWaterMark: 256 * 1024 }).pipe(req);
  });
  return within(`PUT /v1/snapshot on port ${port} to answer`, timeoutMs, done).finally(() => req?.destroy());
}

class PutError extends Error {
  constructor(readonly status: number, body: string) {
    super(`PUT /v1/snapshot: ${status} ${body}`);
  }
}

/**
 * PUT /v1/snapshot through the current leader. A 503 (the server says nothing was restored and to retry)
 * is retried through the leader of the moment, at most 3 attempts in all; each failed attempt is returned
 * with the leader's last election log lines, so the figures never hide it.
 */
async function putSnapshot(c: ProcessCluster, archivePath: string, size: number, timeoutMs: number): Promise<string[]> {
  const failures: string[] = [];
  for (let attempt = 1; ; attempt++) {
    const leader = await c.leader(timeoutMs);
    try {
      await putSnapshotOnce(c.node(leader).httpPort, archivePath, size, timeoutMs);
      return failures;
    } catch (e) {
      if (!(e instanceof PutError && e.status === 503) || attempt >= 3) throw e;
      const lines = c.node(leader).output.join('').split('\n').filter((l) => /leader|term|campaign|vote|restore|snapshot/i.test(l)).slice(-12);
      failures.push(`attempt ${attempt} through ${c.node(leader).name}: ${e.message}\n  ${lines.join('\n  ')}`);
      console.log(`RETRY: ${failures[failures.length - 1]}`);
    }
  }
}

/** GET /v1/snapshot (consistent) streamed to `path`; returns the archive's size. */
async function getSnapshot(port: number, path: string, timeoutMs: number): Promise<{ bytes: number; index: string }> {
  // node:http, not fetch: undici's web stream turned into a Node stream read the body at a few MB/s
  // (a 66 MB archive: 17-20 s through Readable.fromWeb into a file, 2.6-4.6 s as one arrayBuffer),
  // which made the client, not the server, the save's figure.
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'GET', path: '/v1/snapshot', timeout: timeoutMs }, (res) => {
      if (res.statusCode !== 200) {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => reject(new Error(`GET /v1/snapshot: ${res.statusCode} ${Buffer.concat(parts).toString()}`)));
        return;
      }
      const index = String(res.headers['x-consul-index'] ?? '');
      pipeline(res, createWriteStream(path)).then(
        async () => resolve({ bytes: (await stat(path)).size, index }),
        (e: Error) => reject(new Error(`GET /v1/snapshot on port ${port}: ${e.message}`)),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on('error', (e) => reject(new Error(`GET /v1/snapshot on port ${port}: ${e.message} (bounded at ${timeoutMs / 1000} s)`)));
    req.end();
  });
}

/** meta.json's Size (state.bin's bytes) of an archive: only its first member is inflated. */
async function archiveStateBytes(path: string): Promise<number> {
  const parts: Buffer[] = [];
  let have = 0;
  const source = createReadStream(path).pipe(createGunzip());
  try {
    for await (const chunk of source) {
      parts.push(chunk as Buffer);
      have += (chunk as Buffer).length;
      if (have >= 512) {
        const head = Buffer.concat(parts);
        const size = parseInt(head.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim(), 8);
        if (head.length >= 512 + size) return (JSON.parse(head.subarray(512, 512 + size).toString()) as { Size: number }).Size;
      }
    }
  } finally {
    source.destroy();
  }
  throw new Error(`${path}: no meta.json at the start of the archive`);
}

/** Waits until every node answers a ?stale read of `key` with `value`. */
async function everyNodeServes(c: ProcessCluster, key: string, value: Buffer, timeoutMs: number): Promise<void> {
  const pending = new Set([0, 1, 2]);
  await waitFor(`every node to serve ${key} on a ?stale read`, async () => {
    for (const i of [...pending]) {
      const r = await c.http(i, `/v1/kv/${key}?raw&stale`).catch(() => undefined);
      if (r === undefined) continue;
      const body = Buffer.from(await r.arrayBuffer());
      if (r.status === 200 && body.equals(value)) pending.delete(i);
    }
    return pending.size === 0 ? true : undefined;
  }, timeoutMs, () => `still waiting on ${[...pending].map((i) => c.node(i).name).join(', ')}\n${c.describe()}`);
}

async function keyCount(c: ProcessCluster, i: number, timeoutMs: number): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${c.node(i).httpPort}/v1/kv/bench/?keys`, { signal: AbortSignal.timeout(timeoutMs) });
  if (r.status !== 200) throw new Error(`GET /v1/kv/bench/?keys: ${r.status} ${(await r.text()).slice(0, 300)}`);
  return ((await r.json()) as string[]).length;
}

// ---------------------------------------------------------------------------------------------------
// etcd

interface EtcdStatus { header: { member_id: string }; leader: string }

async function etcdLeader(e: EtcdCluster): Promise<number> {
  const s = await e.post<EtcdStatus>(e.members[0] as EtcdCluster['members'][number], '/v3/maintenance/status', {});
  for (let i = 0; i < 3; i++) {
    const si = await e.post<EtcdStatus>(e.members[i] as EtcdCluster['members'][number], '/v3/maintenance/status', {});
    if (si.header.member_id === s.leader) return i;
  }
  throw new Error(`no etcd member has the leader's id ${s.leader}`);
}

const b64 = (b: Buffer | string): string => Buffer.from(b).toString('base64');

async function etcdLoad(e: EtcdCluster, kind: Kind, n: number, timeoutMs: number): Promise<void> {
  const batch = 128; // etcd's default --max-txn-ops
  let next = 0;
  const worker = async (w: number): Promise<void> => {
    const m = e.members[w % 3] as EtcdCluster['members'][number];
    for (;;) {
      const from = next;
      if (from >= n) return;
      next = Math.min(n, from + batch);
      const success = [];
      for (let i = from; i < next; i++) success.push({ request_put: { key: b64(keyOf(i, n)), value: b64(valueOf(kind, i)) } });
      await e.post(m, '/v3/kv/txn', { success }, 60_000);
    }
  };
  await within(`loading ${n} keys into etcd`, timeoutMs, Promise.all([0, 1, 2, 3, 4, 5].map(worker)));
}

interface RangeReply { kvs?: Array<{ value?: string }>; count?: string }

async function etcdEveryMemberServes(e: EtcdCluster, key: string, value: Buffer, timeoutMs: number): Promise<void> {
  const pending = new Set([0, 1, 2]);
  const want = b64(value);
  await waitFor(`every etcd member to serve ${key} on a serializable read`, async () => {
    for (const i of [...pending]) {
      const r = await e.post<RangeReply>(e.members[i] as EtcdCluster['members'][number], '/v3/kv/range', { key: b64(key), serializable: true }, 5000).catch(() => undefined);
      if (r?.kvs?.[0]?.value === want) pending.delete(i);
    }
    return pending.size === 0 ? true : undefined;
  }, timeoutMs, () => `still waiting on ${[...pending].map((i) => e.members[i]?.name).join(', ')}\n${e.describe()}`);
}

async function etcdCount(e: EtcdCluster): Promise<number> {
  const r = await e.post<RangeReply>(e.members[0] as EtcdCluster['members'][number], '/v3/kv/range', { key: b64('bench/'), range_end: b64('bench0'), count_only: true });
  return Number(r.count ?? 0);
}

// ---------------------------------------------------------------------------------------------------

interface Row {
  n: number;
  kind: Kind;
  stateBytes: number;
  archiveBytes: number;
  loadS: number;
  saveS: number;
  savePeak: number;
  startS: number;
  recoveryS: number;
  restorePeakLeader: number;
  restorePeakFollowers: number;
  countS: number;
  gzip: number;
  sha256: number;
  /** Refused PUT /v1/snapshot attempts (503), with the leader's log lines. */
  retries: string[];
  etcd?: { loadS: number; dbBytes: number; saveS: number; savePeak: number; recoveryS: number; restoreS: number };
}

const s = (ms: number): number => ms / 1000;

/** Sampled peaks of anonymous and file-backed memory above idle, for the log lines. */
const parts = (p: { anon: number; file: number } | undefined): string =>
  p === undefined ? 'parts unknown' : `sampled: anonymous +${(p.anon / MiB).toFixed(0)}, file-backed +${(p.file / MiB).toFixed(0)} MiB`;

async function runCase(cleanup: Cleanup, n: number, kind: Kind, timeoutMs: number, etcdBins: ReturnType<typeof findEtcd>): Promise<Row> {
  const dir = await tempDir(cleanup, 'conclave-bench-snapshot-');
  const say = (what: string): void => console.log(`[${n} ${kind}] ${what}`);
  const lastKey = keyOf(n - 1, n);
  const lastValue = valueOf(kind, n - 1);

  const stateBinPath = join(dir, 'fixture.state.bin');
  const fixturePath = join(dir, 'fixture.snap');
  const { size: fixtureStateBytes, lastIndex } = await writeStateBin(stateBinPath, kind, n);
  await writeFixtureArchive(stateBinPath, fixtureStateBytes, lastIndex, fixturePath);
  const fixtureBytes = (await stat(fixturePath)).size;
  const lim = await limits(stateBinPath, fixtureStateBytes);
  say(`fixture: state.bin ${(fixtureStateBytes / MB).toFixed(1)} MB, archive ${(fixtureBytes / MB).toFixed(1)} MB; gzip-${defaultGzipLevel} ${(lim.gzip / MB).toFixed(0)} MB/s, sha256 ${(lim.sha256 / MB).toFixed(0)} MB/s`);

  // Load, then save through the leader.
  const a = await startConclave(cleanup);
  let t0 = performance.now();
  const loadRetries = await putSnapshot(a.cluster, fixturePath, fixtureBytes, timeoutMs);
  await everyNodeServes(a.cluster, lastKey, lastValue, timeoutMs);
  const loadS = s(performance.now() - t0);
  say(`loaded by PUT /v1/snapshot in ${loadS.toFixed(1)} s${loadRetries.length > 0 ? ` after ${loadRetries.length} refused attempt(s)` : ''}`);
  const leader = await a.cluster.leader();
  const leaderPid = a.pids[leader] as number;
  const savedPath = join(dir, 'saved.snap');
  const savePeak = new PeakRss([leaderPid]);
  t0 = performance.now();
  const saved = await getSnapshot(a.cluster.node(leader).httpPort, savedPath, timeoutMs);
  const saveS = s(performance.now() - t0);
  const [saveAbove] = savePeak.aboveIdle();
  const stateBytes = await archiveStateBytes(savedPath);
  say(`saved ${(saved.bytes / MB).toFixed(1)} MB in ${saveS.toFixed(2)} s (index ${saved.index}); leader idle RSS ${(savePeak.idleOf(leaderPid) / MiB).toFixed(0)} MiB, peak +${((saveAbove ?? NaN) / MiB).toFixed(0)} MiB (${parts(savePeak.partsAboveIdle()[0])})`);
  await endConclave(a.cluster);

  // Recovery into a fresh cluster.
  t0 = performance.now();
  const b = await startConclave(cleanup);
  const startS = s(performance.now() - t0);
  const restorePeak = new PeakRss(b.pids);
  const cpuBefore = b.pids.map((pid) => agentsCpuMs([pid]));
  t0 = performance.now();
  const restoreRetries = await putSnapshot(b.cluster, savedPath, saved.bytes, timeoutMs);
  const answeredS = s(performance.now() - t0);
  await everyNodeServes(b.cluster, lastKey, lastValue, timeoutMs);
  const recoveryS = s(performance.now() - t0);
  // Main thread and LevelDB's and libuv's threads alike: whether the recovery is bound by this machine's cores.
  const cpuS = b.pids.map((pid, i) => (agentsCpuMs([pid]) - (cpuBefore[i] as number)) / 1000);
  const peaks = restorePeak.aboveIdle();
  const bLeader = await b.cluster.leader(); // the restore's leader (b.leader unless a retry went elsewhere)
  const restorePeakLeader = peaks[bLeader] ?? NaN;
  const restorePeakFollowers = Math.max(...peaks.filter((_, i) => i !== bLeader));
  t0 = performance.now();
  const count = await keyCount(b.cluster, bLeader, timeoutMs);
  const countS = s(performance.now() - t0);
  if (count !== n) throw new Error(`after the restore, ?keys on the leader lists ${count} keys, not ${n}`);
  // The leader logs when the upload is verified (gunzip, tar, hashes, every record) and before Raft sees it.
  const verifiedMs = /"event":"restore-verified"[^\n]*?"ms":(\d+)/.exec(b.cluster.node(bLeader).output.join(''))?.[1];
  const verified = verifiedMs === undefined ? '' : `archive verified after ${(Number(verifiedMs) / 1000).toFixed(2)} s, `;
  const retried = restoreRetries.length > 0 ? `${restoreRetries.length} refused attempt(s) first, timed from the first; ` : '';
  const restoreParts = restorePeak.partsAboveIdle();
  say(`recovered in ${recoveryS.toFixed(2)} s (${retried}${verified}PUT answered after ${answeredS.toFixed(2)} s); leader idle RSS ${(restorePeak.idleOf(b.pids[bLeader] as number) / MiB).toFixed(0)} MiB, peak +${(restorePeakLeader / MiB).toFixed(0)} MiB (${parts(restoreParts[bLeader])}); ` +
    `followers peak +${peaks.filter((_, i) => i !== bLeader).map((p) => (p / MiB).toFixed(0)).join(', ')} MiB (${restoreParts.filter((_, i) => i !== bLeader).map(parts).join('; ')}); ?keys listed ${count} in ${countS.toFixed(2)} s; ` +
    `CPU (user + system, all threads) while recovering: leader ${(cpuS[bLeader] ?? NaN).toFixed(2)} s, followers ${cpuS.filter((_, i) => i !== bLeader).map((c) => c.toFixed(2)).join(', ')} s`);
  if (args.logs !== undefined) {
    await mkdir(args.logs, { recursive: true });
    for (const i of [0, 1, 2]) {
      const role = i === bLeader ? 'leader' : 'follower';
      await writeFile(join(args.logs, `${n}-${kind}-recovery-node${i}-${role}.log`), b.cluster.node(i).output.join(''));
    }
    say(`recovery logs written to ${args.logs}`);
  }
  await endConclave(b.cluster);

  const row: Row = {
    n, kind, stateBytes, archiveBytes: saved.bytes, loadS, saveS, savePeak: saveAbove ?? NaN, startS, recoveryS,
    restorePeakLeader, restorePeakFollowers, countS, gzip: lim.gzip, sha256: lim.sha256, retries: [...loadRetries.map((r) => `load ${r}`), ...restoreRetries.map((r) => `recovery ${r}`)],
  };

  if (etcdBins !== undefined) {
    const e = await EtcdCluster.create(cleanup, etcdBins);
    await e.startAll(60_000);
    t0 = performance.now();
    await etcdLoad(e, kind, n, timeoutMs);
    const eLoadS = s(performance.now() - t0);
    await etcdEveryMemberServes(e, lastKey, lastValue, timeoutMs);
    const el = await etcdLeader(e);
    const elm = e.members[el] as EtcdCluster['members'][number];
    const dbPath = join(dir, 'etcd.db');
    const ePeak = new PeakRss([e.pids()[el] as number]);
    t0 = performance.now();
    await e.etcdctl(['--endpoints', elm.clientUrl, '--command-timeout', `${Math.ceil(timeoutMs / 1000)}s`, 'snapshot', 'save', dbPath], timeoutMs);
    const eSaveS = s(performance.now() - t0);
    const [eSaveAbove] = ePeak.aboveIdle();
    const dbBytes = (await stat(dbPath)).size;
    say(`etcd: loaded in ${eLoadS.toFixed(1)} s; snapshot save ${(dbBytes / MB).toFixed(1)} MB in ${eSaveS.toFixed(2)} s, leader peak +${((eSaveAbove ?? NaN) / MiB).toFixed(0)} MiB`);
    await e.killAll();

    const r = await EtcdCluster.create(cleanup, etcdBins);
    t0 = performance.now();
    await Promise.all(r.members.map((m) => r.etcdctl(['snapshot', 'restore', dbPath,
      '--name', m.name, '--initial-cluster', r.initialCluster, '--initial-cluster-token', r.token,
      '--initial-advertise-peer-urls', m.peerUrl, '--data-dir', m.dataDir], timeoutMs)));
    const eRestoreS = s(performance.now() - t0);
    await r.startAll(timeoutMs);
    await etcdEveryMemberServes(r, lastKey, lastValue, timeoutMs);
    const eRecoveryS = s(performance.now() - t0);
    const eCount = await etcdCount(r);
    if (eCount !== n) throw new Error(`after the etcd restore, the range count is ${eCount}, not ${n}`);
    say(`etcd: recovered in ${eRecoveryS.toFixed(2)} s (snapshot restore x3 ${eRestoreS.toFixed(2)} s)`);
    await r.killAll();
    row.etcd = { loadS: eLoadS, dbBytes, saveS: eSaveS, savePeak: eSaveAbove ?? NaN, recoveryS: eRecoveryS, restoreS: eRestoreS };
  }
  return row;
}

function printTables(rows: readonly Row[], etcdNote: string | undefined): void {
  const pad = (v: string, w: number): string => v.padStart(w);
  const f = (x: number, d: number): string => (Number.isFinite(x) ? x.toFixed(d) : '-');
  const mib = (b: number): string => f(b / MiB, 0);
  console.log('');
  console.log(`Conclave snapshot save and recovery: 3 compiled agents on this machine, 256-byte values, gzip level ${defaultGzipLevel}. MB = 10^6 bytes; RSS+ = peak RSS above idle (MiB).`);
  console.log('  entries  values  state MB  archive MB   save s  archive MB/s  state MB/s  save RSS+  recovery s  restore RSS+ leader/followers  load s');
  for (const r of rows) {
    console.log(
      `${pad(String(r.n), 9)}  ${r.kind.padEnd(6)}  ${pad(f(r.stateBytes / MB, 1), 8)}  ${pad(f(r.archiveBytes / MB, 1), 10)}  ${pad(f(r.saveS, 2), 7)}  ` +
        `${pad(f(r.archiveBytes / MB / r.saveS, 1), 12)}  ${pad(f(r.stateBytes / MB / r.saveS, 1), 10)}  ${pad(mib(r.savePeak), 9)}  ${pad(f(r.recoveryS, 2), 10)}  ` +
        `${pad(`${mib(r.restorePeakLeader)} / ${mib(r.restorePeakFollowers)}`, 30)}  ${pad(f(r.loadS, 1), 6)}`,
    );
  }
  console.log('');
  console.log(`Limits and etcd 3.4 (3 members on this machine). gzip/sha256: node zlib level ${defaultGzipLevel} and SHA-256 over the same state.bin, MB/s; floor = state bytes / gzip rate.`);
  console.log('  entries  values  gzip MB/s  sha256 MB/s  floor s  etcd db MB  etcd save s  etcd recovery s  save ratio  recovery ratio  targets (save <= etcd; recovery <= 0.5 x etcd; RSS+ <= 64 MiB)');
  for (const r of rows) {
    const e = r.etcd;
    const saveRatio = e ? r.saveS / e.saveS : NaN;
    const recRatio = e ? r.recoveryS / e.recoveryS : NaN;
    const ok = (b: boolean): string => (b ? 'met' : 'MISSED');
    const targets = [
      e ? `save ${ok(saveRatio <= 1)}` : 'save -',
      e ? `recovery ${ok(recRatio <= 0.5)}` : 'recovery -',
      `save RSS ${ok(r.savePeak <= targetRssBytes)}`,
      `restore RSS ${ok(Math.max(r.restorePeakLeader, r.restorePeakFollowers) <= targetRssBytes)}`,
    ].join(', ');
    console.log(
      `${pad(String(r.n), 9)}  ${r.kind.padEnd(6)}  ${pad(f(r.gzip / MB, 0), 9)}  ${pad(f(r.sha256 / MB, 0), 11)}  ${pad(f(r.stateBytes / r.gzip, 2), 7)}  ` +
        `${pad(e ? f(e.dbBytes / MB, 1) : '-', 10)}  ${pad(e ? f(e.saveS, 2) : '-', 11)}  ${pad(e ? f(e.recoveryS, 2) : '-', 15)}  ` +
        `${pad(f(saveRatio, 2), 10)}  ${pad(f(recRatio, 2), 14)}  ${targets}`,
    );
  }
  if (etcdNote !== undefined) console.log(etcdNote);
  for (const r of rows) for (const x of r.retries) console.log(`NOTE ${r.n} ${r.kind}: PUT /v1/snapshot refused on the ${x.split('\n')[0]}`);
}

async function main(): Promise<void> {
  const started = performance.now();
  const cleanup = new Cleanup();
  const etcdBins = args['no-etcd'] ? undefined : findEtcd();
  const etcdNote = args['no-etcd'] ? 'etcd skipped (--no-etcd)' : etcdBins === undefined ? etcdInstallHint : undefined;
  if (etcdNote !== undefined) console.log(etcdNote);
  if (!args['no-build']) buildDist();
  const rows: Row[] = [];
  try {
    for (const n of sizes) {
      for (const kind of kinds) {
        const timeoutMs = args['timeout-s'] !== undefined ? Number(args['timeout-s']) * 1000 : 60_000 + n;
        rows.push(await runCase(cleanup, n, kind, timeoutMs, etcdBins));
        await cleanup.run(); // this case's processes and files, before the next case
      }
    }
  } finally {
    await cleanup.run();
    if (rows.length > 0) printTables(rows, etcdNote);
    console.log(`\nbench:snapshot took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  }
}

await main();
