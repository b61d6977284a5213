// -dev: Consul's dev defaults (one self-bootstrapping server on 127.0.0.1, debug logs) under whatever
// flags and files say, and a fresh temporary data directory, made only when the load is otherwise valid
// and never when a data_dir is given.

import test, { type ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { loadAgentConfig, type AgentConfig, type LoadOptions } from '../../src/config/index.js';

async function scratch(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-config-dev-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Stubs, with a temp-dir maker that records its calls and makes its directory inside `dir`. */
function stubs(dir: string): LoadOptions & { made: string[] } {
  const made: string[] = [];
  return {
    made,
    cwd: dir,
    hostname: () => 'host-a',
    privateIpv4Addresses: () => [],
    makeTempDataDir: async () => {
      const path = join(dir, `conclave-dev-${made.length}`);
      await mkdir(path);
      made.push(path);
      return path;
    },
  };
}

async function load(argv: string[], options: LoadOptions): Promise<AgentConfig> {
  const r = await loadAgentConfig(argv, options);
  if (!r.ok) throw new Error(`expected a valid configuration, got:\n${r.message}`);
  return r.config;
}

const devWarning = (dir: string) =>
  `Dev mode is enabled: all data lives in the temporary directory ${dir}, which is removed when the agent stops; nothing is kept. Never run -dev in production.`;

test('-dev alone: one server on 127.0.0.1:8300 that bootstraps itself, HTTP on 127.0.0.1:8500, debug logs, a temporary data dir', async (t) => {
  const dir = await scratch(t);
  const o = stubs(dir);
  const c = await load(['-dev'], o);
  t.is(o.made.length, 1);
  t.like(c, {
    dev: true,
    dataDir: o.made[0],
    dataDirIsTemporary: true,
    nodeName: 'host-a',
    datacenter: 'dc1',
    bootstrapExpect: 1,
    retryJoin: [],
    retryJoinWan: [],
    httpHost: '127.0.0.1',
    httpPort: 8500,
    serverBindHost: '127.0.0.1',
    serverPort: 8300,
    serverAdvertiseAddress: '127.0.0.1:8300',
    logLevel: 'debug',
  });
  t.deepEqual(c.warnings, [devWarning(o.made[0]!)]);
});

test('flags and files override the dev defaults, wherever they stand on the line', async (t) => {
  const dir = await scratch(t);
  const file = join(dir, 'a.json');
  await writeFile(file, JSON.stringify({ log_level: 'warn', bind_addr: '127.0.0.2', ports: { server: 9300 } }));
  const o = stubs(dir);
  const c = await load(['-http-port', '8600', '-dev', '-node', 'laptop', '-config-file', file, '-bootstrap-expect=0', '-retry-join', '127.0.0.1:9301'], o);
  t.like(c, { dev: true, dataDirIsTemporary: true, nodeName: 'laptop', httpPort: 8600, logLevel: 'warn', serverAdvertiseAddress: '127.0.0.2:9300', bootstrapExpect: 0 });
  t.deepEqual(c.retryJoin, ['127.0.0.1:9301']);
  t.false((await load(['-dev', '-dev=false', '-data-dir', 'd', '-bind', '127.0.0.1'], o)).dev, 'the last -dev wins, as for every flag');
});

test('-dev with -data-dir or a data_dir in a file: that directory, never temporary, nothing made', async (t) => {
  const dir = await scratch(t);
  const o = stubs(dir);
  const byFlag = await load(['-dev', '-data-dir', 'kept'], o);
  t.like(byFlag, { dev: true, dataDir: join(dir, 'kept'), dataDirIsTemporary: false });
  t.deepEqual(byFlag.warnings, ['Dev mode is enabled: one server that bootstraps itself, with Consul\'s dev settings. Never run -dev in production.']);
  const file = join(dir, 'a.json');
  await writeFile(file, JSON.stringify({ data_dir: 'from-file' }));
  t.like(await load(['-dev', '-config-file', file], o), { dataDir: join(dir, 'from-file'), dataDirIsTemporary: false });
  t.deepEqual(o.made, []);
  t.false(existsSync(join(dir, 'kept')), 'loading still creates a given data_dir never');
});

test('-dev with a bad flag or value makes no temporary directory', async (t) => {
  const dir = await scratch(t);
  const o = stubs(dir);
  const r1 = await loadAgentConfig(['-dev', '-http-port', '70000'], o);
  t.false(r1.ok);
  const r2 = await loadAgentConfig(['-dev', '-datacenter', 'no spaces'], o);
  t.false(r2.ok);
  const r3 = await loadAgentConfig(['-dev', '-nope'], o);
  t.false(r3.ok);
  t.deepEqual(o.made, []);
});

test('without -dev, data_dir is still required and the message points at -dev', async (t) => {
  const dir = await scratch(t);
  const r = await loadAgentConfig(['-bind', '127.0.0.1'], stubs(dir));
  t.false(r.ok);
  if (!r.ok) t.is(r.message, 'data_dir cannot be empty: set "data_dir" in a config file or pass -data-dir <path> (or run -dev for a throwaway server)');
});

test('a temporary directory that cannot be made is an error that says so', async (t) => {
  const dir = await scratch(t);
  const r = await loadAgentConfig(['-dev'], { ...stubs(dir), makeTempDataDir: async () => Promise.reject(Object.assign(new Error('EACCES'), { code: 'EACCES' })) });
  t.false(r.ok);
  if (!r.ok) t.is(r.message, `-dev: cannot create a temporary data directory in ${tmpdir()}: permission denied (EACCES); pass -data-dir <path>`);
});

test('by default the temporary directory is a fresh conclave-dev-* in os.tmpdir()', async (t) => {
  const a = await load(['-dev'], { hostname: () => 'h' });
  const b = await load(['-dev'], { hostname: () => 'h' });
  t.teardown(() => Promise.all([rm(a.dataDir, { recursive: true, force: true }), rm(b.dataDir, { recursive: true, force: true })]));
  for (const c of [a, b]) {
    t.is(dirname(c.dataDir), tmpdir());
    t.true(basename(c.dataDir).startsWith('conclave-dev-'));
    t.true(existsSync(c.dataDir));
  }
  t.not(a.dataDir, b.dataDir);
});
