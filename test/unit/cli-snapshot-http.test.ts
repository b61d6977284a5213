// `conclave snapshot save` and `restore` against a fake agent (a node:http server on loopback): argument
// errors, the address and token from flags and environment in Consul's precedence, the query string,
// the exact stdout and stderr lines and exit statuses, the .unverified file's fate, and a body that ends
// early. The archive check is a stand-in here (cli-snapshot-command.test.ts uses real archives).

import test, { type ExecutionContext } from 'ava';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SnapshotDeps } from '../../src/cli/snapshot/common.js';
import { runRestore } from '../../src/cli/snapshot/restore.js';
import { runSave, type VerifyArchive } from '../../src/cli/snapshot/save.js';

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

async function fakeAgent(t: ExecutionContext, handler: Handler): Promise<{ addr: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { addr: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const archiveBytes = Buffer.from('pretend this is a gzipped tar archive');

function serveSnapshot(index = '42'): Handler {
  return (req, res) => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'X-Consul-Index': index, 'X-Consul-KnownLeader': 'true', 'X-Consul-LastContact': '0' });
      res.end(archiveBytes);
    } else {
      res.writeHead(200);
      res.end();
    }
  };
}

/** Accepts exactly archiveBytes. */
const verifyOk: VerifyArchive = async (source) => {
  const chunks: Buffer[] = [];
  for await (const c of source) chunks.push(Buffer.from(c));
  if (!Buffer.concat(chunks).equals(archiveBytes)) throw new Error('failed checking integrity of snapshot: hash check failed for "state.bin"');
};

interface Io {
  readonly deps: SnapshotDeps;
  readonly out: () => string;
  readonly err: () => string;
}

function io(env: Record<string, string> = {}): Io {
  const out: string[] = [];
  const err: string[] = [];
  return {
    deps: { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, env, timeouts: { connectMs: 2000, idleMs: 2000 } },
    out: () => out.join(''),
    err: () => err.join(''),
  };
}

async function scratch(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-snapshot-http-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('save and restore: a missing or extra FILE argument is Consul\'s error, exit 1, nothing sent', async (t) => {
  const agent = await fakeAgent(t, serveSnapshot());
  for (const run of [(a: string[], d: SnapshotDeps) => runSave(a, d, verifyOk), runRestore]) {
    const none = io();
    t.is(await run(['-http-addr', agent.addr], none.deps), 1);
    t.is(none.err(), 'Missing FILE argument\n');
    t.is(none.out(), '');
    const two = io();
    t.is(await run(['-http-addr', agent.addr, 'a', 'b'], two.deps), 1);
    t.is(two.err(), 'Too many arguments (expected 1, got 2)\n');
    const bad = io();
    t.is(await run(['-nope', 'a'], bad.deps), 1);
    t.regex(bad.err(), /^flag provided but not defined: -nope/);
  }
  t.is(agent.seen.length, 0);
});

test('save: streams the body to FILE (0600) through FILE.unverified and prints Consul\'s line', async (t) => {
  const agent = await fakeAgent(t, serveSnapshot('12345'));
  const dir = await scratch(t);
  const file = join(dir, 'backup.snap');
  const r = io();
  t.is(await runSave(['-http-addr', agent.addr, file], r.deps, verifyOk), 0, r.err());
  t.is(r.out(), 'Saved and verified snapshot to index 12345\n');
  t.deepEqual(await readFile(file), archiveBytes);
  t.is(statSync(file).mode & 0o777, 0o600);
  t.false(existsSync(`${file}.unverified`));
  t.is(agent.seen[0]?.method, 'GET');
  t.is(agent.seen[0]?.url, '/v1/snapshot');
  t.is(agent.seen[0]?.headers['x-consul-token'], undefined, 'no token configured: no header');
  t.regex(r.err(), /^Saving snapshot: 37 B received in [\d.]+ s \(.*\/s\)\nVerifying snapshot: .* read in [\d.]+ s/, 'progress off a terminal: one final line each, on stderr');
});

test('save: -datacenter and -stale go in the query as the Go client sends them; restore ignores -stale', async (t) => {
  const agent = await fakeAgent(t, serveSnapshot());
  const dir = await scratch(t);
  t.is(await runSave(['-http-addr', `http://${agent.addr}`, '-datacenter', 'dc 2', '-stale', join(dir, 's')], io().deps, verifyOk), 0);
  t.is(agent.seen[0]?.url, '/v1/snapshot?dc=dc%202&stale=');
  await writeFile(join(dir, 'in'), archiveBytes);
  t.is(await runRestore(['-http-addr', agent.addr, '-stale', '-datacenter=dc3', join(dir, 'in')], io().deps), 0);
  t.is(agent.seen[1]?.url, '/v1/snapshot?dc=dc3');
});

test('the address: -http-addr wins over CONSUL_HTTP_ADDR, which wins over the default; a bad scheme is an error', async (t) => {
  const agent = await fakeAgent(t, serveSnapshot());
  const dir = await scratch(t);
  const viaEnv = io({ CONSUL_HTTP_ADDR: agent.addr });
  t.is(await runSave([join(dir, 'a')], viaEnv.deps, verifyOk), 0, viaEnv.err());
  const flagWins = io({ CONSUL_HTTP_ADDR: '127.0.0.1:1' });
  t.is(await runSave(['-http-addr', `http://${agent.addr}/`, join(dir, 'b')], flagWins.deps, verifyOk), 0, flagWins.err());
  t.is(agent.seen.length, 2);
  const ftp = io();
  t.is(await runSave(['-http-addr', 'ftp://x:1', join(dir, 'c')], ftp.deps, verifyOk), 1);
  t.is(ftp.err(), 'Error connecting to Conclave agent: Unknown protocol scheme: ftp\n');
});

test('the token: -token-file, then -token, then CONSUL_HTTP_TOKEN_FILE, then CONSUL_HTTP_TOKEN; X-Consul-Token only', async (t) => {
  const agent = await fakeAgent(t, serveSnapshot());
  const dir = await scratch(t);
  await writeFile(join(dir, 'flag-token'), '  from-flag-file\n');
  await writeFile(join(dir, 'env-token'), 'from-env-file\n');
  await writeFile(join(dir, 'empty-token'), '\n');
  const env = { CONSUL_HTTP_TOKEN_FILE: join(dir, 'env-token'), CONSUL_HTTP_TOKEN: 'from-env' };
  const cases: Array<[string[], Record<string, string>, string | undefined]> = [
    [['-token-file', join(dir, 'flag-token'), '-token', 'from-flag'], env, 'from-flag-file'],
    [['-token', 'from-flag'], env, 'from-flag'],
    [[], env, 'from-env-file'],
    [[], { CONSUL_HTTP_TOKEN: 'from-env' }, 'from-env'],
    [['-token-file', join(dir, 'empty-token')], { CONSUL_HTTP_TOKEN: 'from-env' }, 'from-env'],
    [[], {}, undefined],
  ];
  for (const [i, [flags, e, want]] of cases.entries()) {
    const r = io(e);
    t.is(await runSave(['-http-addr', agent.addr, ...flags, join(dir, `s${i}`)], r.deps, verifyOk), 0, r.err());
    t.is(agent.seen[i]?.headers['x-consul-token'], want, `case ${i}`);
    t.false(agent.seen[i]?.url.includes('token') ?? true);
  }
  const missing = io();
  t.is(await runSave(['-http-addr', agent.addr, '-token-file', join(dir, 'nope'), join(dir, 'x')], missing.deps, verifyOk), 1);
  t.regex(missing.err(), /^Error connecting to Conclave agent: Error loading token file: .*ENOENT/);
});

test('save: a 403 is Consul\'s StatusError text; the token is never printed; no file is left', async (t) => {
  const agent = await fakeAgent(t, (_req, res) => {
    res.writeHead(403);
    res.end("Permission denied: token with AccessorID 'abc' lacks permission 'acl:write'\n");
  });
  const dir = await scratch(t);
  const file = join(dir, 'backup.snap');
  const r = io();
  t.is(await runSave(['-http-addr', agent.addr, '-token', 'secret-token-value', file], r.deps, verifyOk), 1);
  t.is(r.err(), "Error saving snapshot: Unexpected response code: 403 (Permission denied: token with AccessorID 'abc' lacks permission 'acl:write')\n");
  t.is(r.out(), '');
  t.false(existsSync(file));
  t.false(existsSync(`${file}.unverified`));
  t.false(r.err().includes('secret-token-value'));
});

test('save: a body cut off midway is an error and leaves neither FILE nor FILE.unverified', async (t) => {
  const agent = await fakeAgent(t, (_req, res) => {
    res.writeHead(200, { 'X-Consul-Index': '7' });
    res.write(Buffer.alloc(4096, 1));
    setTimeout(() => res.socket?.destroy(), 50);
  });
  const dir = await scratch(t);
  const file = join(dir, 'backup.snap');
  const r = io();
  t.is(await runSave(['-http-addr', agent.addr, file], r.deps, verifyOk), 1);
  t.regex(r.err(), /Error saving snapshot: GET http:\/\/127\.0\.0\.1:\d+\/v1\/snapshot: the connection closed before the snapshot was complete \(4096 bytes received\)\n/);
  t.is(r.out(), '');
  t.false(existsSync(file));
  t.false(existsSync(`${file}.unverified`));
});

test('save: an archive that fails verification is reported and removed', async (t) => {
  const agent = await fakeAgent(t, (_req, res) => {
    res.writeHead(200, { 'X-Consul-Index': '7' });
    res.end('not the archive');
  });
  const dir = await scratch(t);
  const file = join(dir, 'backup.snap');
  const r = io();
  t.is(await runSave(['-http-addr', agent.addr, file], r.deps, verifyOk), 1);
  t.true(r.err().endsWith('Error verifying snapshot file: failed checking integrity of snapshot: hash check failed for "state.bin"\n'), r.err());
  t.false(existsSync(file));
  t.false(existsSync(`${file}.unverified`));
});

test('save and restore: nobody listening is "Error connecting to Conclave agent"', async (t) => {
  const dir = await scratch(t);
  const agent = await fakeAgent(t, serveSnapshot());
  const port = Number(agent.addr.split(':')[1]);
  const closed = `127.0.0.1:${port === 65535 ? port - 1 : port + 1}`; // most likely free; the check below says if not
  const r = io();
  const code = await runSave(['-http-addr', closed, join(dir, 'x')], r.deps, verifyOk);
  t.is(code, 1);
  t.regex(r.err(), /^Error connecting to Conclave agent: GET http:\/\/127\.0\.0\.1:\d+\/v1\/snapshot: .*ECONNREFUSED/);
  await writeFile(join(dir, 'in'), archiveBytes);
  const rr = io();
  t.is(await runRestore(['-http-addr', closed, join(dir, 'in')], rr.deps), 1);
  t.regex(rr.err(), /^Error connecting to Conclave agent: PUT http:\/\/127\.0\.0\.1:\d+\/v1\/snapshot: .*ECONNREFUSED/);
});

test('restore: streams the file with Content-Type and Content-Length and prints Consul\'s line', async (t) => {
  const agent = await fakeAgent(t, serveSnapshot());
  const dir = await scratch(t);
  const big = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
  await writeFile(join(dir, 'in'), big);
  const r = io({ CONSUL_HTTP_TOKEN: 'tok' });
  t.is(await runRestore(['-http-addr', agent.addr, join(dir, 'in')], r.deps), 0, r.err());
  t.is(r.out(), 'Restored snapshot\n');
  const seen = agent.seen[0]!;
  t.is(seen.method, 'PUT');
  t.is(seen.headers['content-type'], 'application/octet-stream');
  t.is(seen.headers['content-length'], String(big.length));
  t.is(seen.headers['x-consul-token'], 'tok');
  t.true(seen.body.equals(big));
});

test('restore: a missing file and an agent error are Consul\'s lines', async (t) => {
  const agent = await fakeAgent(t, (_req, res) => {
    res.writeHead(500);
    res.end('failed to read snapshot file: failed checking integrity of snapshot: hash check failed for "meta.json"');
  });
  const dir = await scratch(t);
  const missing = io();
  t.is(await runRestore(['-http-addr', agent.addr, join(dir, 'nope')], missing.deps), 1);
  t.regex(missing.err(), /^Error opening snapshot file: .*ENOENT/);
  t.is(agent.seen.length, 0);
  await writeFile(join(dir, 'in'), archiveBytes);
  const r = io();
  t.is(await runRestore(['-http-addr', agent.addr, join(dir, 'in')], r.deps), 1);
  t.true(r.err().endsWith('Error restoring snapshot: Unexpected response code: 500 (failed to read snapshot file: failed checking integrity of snapshot: hash check failed for "meta.json")\n'), r.err());
  t.is(r.out(), '');
});
