// Loading the agent configuration: defaults, files, flags and their precedence, every key's checks,
// messages that name the source, the key, the value and the expectation, and no disk writes.

import test, { type ExecutionContext } from 'ava';
import { mkdtemp, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { configKeys, loadAgentConfig, type AgentConfig, type ConfigKey, type LoadOptions, type LogLevel } from '../../src/config/index.js';

const stubs: LoadOptions = { hostname: () => 'host-a', privateIpv4Addresses: () => ['10.1.2.3'] };

async function scratch(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function writeJson(dir: string, name: string, value: unknown): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, typeof value === 'string' ? value : JSON.stringify(value));
  return path;
}

async function load(argv: string[], cwd: string, options: LoadOptions = stubs): Promise<AgentConfig> {
  const r = await loadAgentConfig(argv, { ...options, cwd });
  if (!r.ok) throw new Error(`expected a valid configuration, got:\n${r.message}`);
  return r.config;
}

async function failure(argv: string[], cwd: string, options: LoadOptions = stubs): Promise<string> {
  const r = await loadAgentConfig(argv, { ...options, cwd });
  if (r.ok) throw new Error(`expected an error for ${JSON.stringify(argv)}`);
  return r.message;
}

test('defaults fill everything but data_dir', async (t) => {
  const dir = await scratch(t);
  const c = await load(['-data-dir', 'd'], dir);
  t.deepEqual(c, {
    nodeName: 'host-a',
    datacenter: 'dc1',
    dataDir: join(dir, 'd'),
    bootstrapExpect: 0,
    retryJoin: [],
    retryJoinWan: [],
    acl: { enabled: false, defaultPolicy: 'allow', initialManagementToken: undefined },
    sessionTtlMinMs: 10000,
    dev: false,
    dataDirIsTemporary: false,
    httpHost: '127.0.0.1',
    httpPort: 8500,
    serverBindHost: '0.0.0.0',
    serverPort: 8300,
    serverAdvertiseHost: '10.1.2.3',
    serverAdvertiseAddress: '10.1.2.3:8300',
    logLevel: 'info',
    logJson: undefined,
    raft: { tickMs: 100, electionTimeoutTicks: 10, heartbeatIntervalTicks: 1, snapshotThresholdEntries: 16384, trailingEntries: 10240, snapshotsRetained: 2 },
    configFiles: [],
    warnings: [],
  });
});

test('every key from a file, with relative data_dir resolved against the file', async (t) => {
  const dir = await scratch(t);
  await mkdir(join(dir, 'conf'));
  const file = await writeJson(join(dir, 'conf'), 'a.json', {
    node_name: 'n1',
    datacenter: 'East-1',
    data_dir: '../data/n1',
    server: true,
    bootstrap_expect: 3,
    retry_join: ['127.0.0.1:8301', '127.0.0.1', '[::1]:8303', 'server-4.example.com'],
    bind_addr: '127.0.0.1',
    advertise_addr: '127.0.0.2',
    client_addr: '127.0.0.1',
    addresses: { http: '::1' },
    ports: { http: 9500, server: 9300 },
    log_level: 'ERR',
    log_json: false,
    raft_snapshot_threshold: 100,
    raft_trailing_logs: 0,
    performance: { raft_multiplier: 3 },
    conclave: { raft_tick_ms: 50, raft_election_timeout_ticks: 30, raft_heartbeat_interval_ticks: 3, snapshots_retained: 5 },
  });
  const c = await load(['-config-file', file], '/');
  t.is(c.nodeName, 'n1');
  t.is(c.datacenter, 'east-1', 'upper case is folded, as Consul does');
  t.is(c.dataDir, join(dir, 'data', 'n1'));
  t.is(c.bootstrapExpect, 3);
  t.deepEqual(c.retryJoin, ['127.0.0.1:8301', '127.0.0.1:8300', '[::1]:8303', 'server-4.example.com:8300']);
  t.is(c.serverBindHost, '127.0.0.1');
  t.is(c.serverAdvertiseHost, '127.0.0.2');
  t.is(c.serverAdvertiseAddress, '127.0.0.2:9300');
  t.is(c.httpHost, '::1', 'addresses.http overrides client_addr');
  t.is(c.httpPort, 9500);
  t.is(c.serverPort, 9300);
  t.is(c.logLevel, 'error');
  t.is(c.logJson, false);
  t.deepEqual(c.raft, { tickMs: 50, electionTimeoutTicks: 30, heartbeatIntervalTicks: 3, snapshotThresholdEntries: 100, trailingEntries: 0, snapshotsRetained: 5 });
  t.deepEqual(c.configFiles, [file]);
});

test('flags override files; both flag forms and two dashes work', async (t) => {
  const dir = await scratch(t);
  const file = await writeJson(dir, 'a.json', { node_name: 'from-file', data_dir: 'file-data', bind_addr: '127.0.0.1', ports: { http: 9000 }, log_level: 'debug' });
  const c = await load(['-config-file', file, '-node=from-flag', '--http-port', '9100', '-data-dir', 'flag-data', '-datacenter=DC2'], dir);
  t.is(c.nodeName, 'from-flag');
  t.is(c.httpPort, 9100);
  t.is(c.dataDir, join(dir, 'flag-data'), 'a -data-dir is relative to the working directory');
  t.is(c.datacenter, 'dc2');
  t.is(c.logLevel, 'debug', 'keys no flag sets keep the file value');
  t.is(c.serverBindHost, '127.0.0.1');
});

test('flags override files even when they come first on the command line', async (t) => {
  const dir = await scratch(t);
  const file = await writeJson(dir, 'a.json', { node_name: 'from-file', data_dir: 'd', bind_addr: '127.0.0.1' });
  t.is((await load(['-node', 'from-flag', '-config-file', file], dir)).nodeName, 'from-flag');
});

test('repeated -config-file: later files win for values, lists are combined, and files are reported in order', async (t) => {
  const dir = await scratch(t);
  const a = await writeJson(dir, 'a.json', { node_name: 'a', data_dir: 'd', bind_addr: '127.0.0.1', ports: { http: 1111, server: 2222 }, retry_join: ['127.0.0.1:9001'] });
  const b = await writeJson(dir, 'b.json', { node_name: 'b', ports: { http: 3333 }, retry_join: ['127.0.0.1:9002', '127.0.0.1:9001'] });
  const c = await load(['-config-file', a, '-config-file', b, '-retry-join', '127.0.0.1:9003'], dir);
  t.is(c.nodeName, 'b');
  t.is(c.httpPort, 3333);
  t.is(c.serverPort, 2222, 'a nested key the later file leaves out keeps the earlier value');
  t.deepEqual(c.retryJoin, ['127.0.0.1:9001', '127.0.0.1:9002', '127.0.0.1:9003'], 'combined from files and flags, without duplicates');
  t.deepEqual(c.configFiles, [a, b]);
  const reversed = await load(['-config-file', b, '-config-file', a], dir);
  t.is(reversed.nodeName, 'a');
  t.is(reversed.httpPort, 1111);
});

test('-config-dir (and -config-file on a directory) reads its .json files in alphabetical order', async (t) => {
  const dir = await scratch(t);
  const conf = join(dir, 'conf.d');
  await mkdir(conf);
  await writeJson(conf, '20-b.json', { node_name: 'second' });
  await writeJson(conf, '10-a.json', { node_name: 'first', data_dir: 'd', bind_addr: '127.0.0.1' });
  await writeFile(join(conf, 'notes.txt'), 'not config');
  const c = await load(['-config-dir', conf], dir);
  t.is(c.nodeName, 'second');
  t.deepEqual(c.configFiles, [join(conf, '10-a.json'), join(conf, '20-b.json')]);
  t.is((await load(['-config-file', 'conf.d'], dir)).nodeName, 'second');
  t.regex(await failure(['-config-dir', join(conf, '10-a.json')], dir), /config directory ".*10-a\.json": not a directory/);
});

test('this server\'s own address is dropped from retry_join', async (t) => {
  const dir = await scratch(t);
  const c = await load(['-data-dir', 'd', '-bind', '127.0.0.1', '-server-port', '8301', '-retry-join', '127.0.0.1:8300', '-retry-join', '127.0.0.1:8301'], dir);
  t.deepEqual(c.retryJoin, ['127.0.0.1:8300']);
});

test('advertise_addr: the bind address, else the one private IPv4 when binding 0.0.0.0; a wildcard is refused', async (t) => {
  const dir = await scratch(t);
  t.is((await load(['-data-dir', 'd', '-bind', '10.0.0.9'], dir)).serverAdvertiseHost, '10.0.0.9');
  t.is((await load(['-data-dir', 'd'], dir)).serverAdvertiseHost, '10.1.2.3');
  t.is((await load(['-data-dir', 'd', '-advertise', '[fd00::1]'], dir)).serverAdvertiseAddress, '[fd00::1]:8300');
  const none = await failure(['-data-dir', 'd'], dir, { ...stubs, privateIpv4Addresses: () => [] });
  t.regex(none, /^No private IPv4 address found\. Please configure one with 'bind' and\/or 'advertise'/);
  const many = await failure(['-data-dir', 'd'], dir, { ...stubs, privateIpv4Addresses: () => ['10.0.0.1', '192.168.1.1'] });
  t.regex(many, /Multiple private IPv4 addresses found \(10\.0\.0\.1, 192\.168\.1\.1\)/);
  t.regex(await failure(['-data-dir', 'd', '-advertise', '0.0.0.0'], dir), /^Advertise address cannot be 0\.0\.0\.0, :: or \[::\] \(set by flag -advertise\)/);
  t.regex(await failure(['-data-dir', 'd', '-bind', '::'], dir), /bind_addr is :: \(set by flag -bind\), so advertise_addr \(-advertise\) must say/);
});

test('Raft timing: Consul\'s raft_multiplier scales the defaults; explicit tick keys win; heartbeat must stay below the election timeout', async (t) => {
  const dir = await scratch(t);
  const base = ['-data-dir', 'd', '-bind', '127.0.0.1'];
  const m5 = await writeJson(dir, 'm5.json', { performance: { raft_multiplier: 5 } });
  t.like((await load([...base, '-config-file', m5], dir)).raft, { tickMs: 100, electionTimeoutTicks: 50, heartbeatIntervalTicks: 5 });
  const fast = await writeJson(dir, 'fast.json', { conclave: { raft_tick_ms: 50 } });
  t.like((await load([...base, '-config-file', fast], dir)).raft, { tickMs: 50, electionTimeoutTicks: 20, heartbeatIntervalTicks: 2 }, 'defaults are 1000 ms and 100 ms, in ticks');
  const explicit = await writeJson(dir, 'explicit.json', { performance: { raft_multiplier: 5 }, conclave: { raft_election_timeout_ticks: 12 } });
  t.like((await load([...base, '-config-file', explicit], dir)).raft, { electionTimeoutTicks: 12, heartbeatIntervalTicks: 5 });
  const bad = await writeJson(dir, 'bad.json', { conclave: { raft_election_timeout_ticks: 4, raft_heartbeat_interval_ticks: 4 } });
  const message = await failure([...base, '-config-file', bad], dir);
  t.regex(message, /conclave\.raft_heartbeat_interval_ticks is 4 \(set by config file ".*bad\.json"\) but must be less than conclave\.raft_election_timeout_ticks, 4/);
});

test('log_level takes Consul\'s levels in any case', async (t) => {
  const dir = await scratch(t);
  const base = ['-data-dir', 'd', '-bind', '127.0.0.1'];
  const cases: Array<[string, LogLevel]> = [['TRACE', 'trace'], ['debug', 'debug'], ['Info', 'info'], ['WARN', 'warn'], ['err', 'error'], ['ERROR', 'error']];
  for (const [given, level] of cases) t.is((await load([...base, '-log-level', given], dir)).logLevel, level, given);
});

test('warnings: two servers, an even count, and too few retry_join entries for bootstrap_expect', async (t) => {
  const dir = await scratch(t);
  const base = ['-data-dir', 'd', '-bind', '127.0.0.1'];
  t.deepEqual((await load([...base, '-bootstrap-expect', '1'], dir)).warnings, []);
  const two = (await load([...base, '-bootstrap-expect', '2', '-retry-join', '127.0.0.1:9000'], dir)).warnings;
  t.is(two.length, 1);
  t.regex(two[0]!, /^bootstrap_expect = 2: A cluster with 2 servers will provide no failure tolerance/);
  const four = (await load([...base, '-bootstrap-expect', '4'], dir)).warnings;
  t.true(four.some((w) => w.startsWith('bootstrap_expect is even number')));
  t.true(four.some((w) => w.includes('retry_join lists 0 other servers')));
  const tight = await writeJson(dir, 'tight.json', { conclave: { raft_tick_ms: 10, raft_election_timeout_ticks: 20, raft_heartbeat_interval_ticks: 10 } });
  const timing = (await load([...base, '-config-file', tight], dir)).warnings;
  t.true(timing.some((w) => w.includes('more than a third of the election timeout')));
  t.true(timing.some((w) => w.includes('the election timeout is 200 ms')));
});

// One bad value for every key: the message names the source, the key, the value and what is expected.
const badValues: { readonly [K in ConfigKey]: unknown } = {
  node_name: '  ',
  datacenter: 'dc 1',
  data_dir: '',
  server: 'yes',
  bootstrap_expect: -1,
  retry_join: ['127.0.0.1:99999'],
  retry_join_wan: '127.0.0.1:8300',
  bind_addr: '{{ GetPrivateIP }}',
  advertise_addr: 'example.com',
  client_addr: '127.0.0.1 10.0.0.1',
  'addresses.http': 8500,
  'ports.http': '8500',
  'ports.server': 0,
  log_level: 'verbose',
  log_json: 'true',
  raft_snapshot_threshold: 0,
  raft_trailing_logs: 1.5,
  'performance.raft_multiplier': 11,
  'conclave.raft_tick_ms': 5,
  'conclave.raft_election_timeout_ticks': 1,
  'conclave.raft_heartbeat_interval_ticks': 0,
  'conclave.snapshots_retained': 0,
  session_ttl_min: '0s',
  'acl.enabled': 'yes',
  'acl.default_policy': 'Deny',
  'acl.tokens.initial_management': 'has a space',
  'acl.tokens.master': '',
  acl_master_token: 42,
  acl_default_policy: 'permit',
};

const secretKeys: ReadonlySet<ConfigKey> = new Set(['acl.tokens.initial_management', 'acl.tokens.master', 'acl_master_token']);

function nest(key: string, value: unknown): Record<string, unknown> {
  return key
    .split('.')
    .reverse()
    .reduce<unknown>((inner, name) => ({ [name]: inner }), value) as Record<string, unknown>;
}

for (const key of configKeys) {
  test(`an invalid ${key} is refused with a message naming the file, the key and the value`, async (t) => {
    const dir = await scratch(t);
    const value = badValues[key];
    const file = await writeJson(dir, 'bad.json', { data_dir: 'd', bind_addr: '127.0.0.1', ...nest(key, value) });
    const message = await failure(['-config-file', file], dir);
    const shown = secretKeys.has(key) ? '<hidden>' : JSON.stringify(value);
    t.true(message.startsWith(`config file "${file}": ${key} cannot be ${shown}`), message);
    t.regex(message, /\. Must be .{10,}/, 'says what is expected');
    t.false(existsSync(join(dir, 'd')), 'nothing created');
  });
}

test('a value of the wrong JSON type says which type it got', async (t) => {
  const dir = await scratch(t);
  const file = await writeJson(dir, 'a.json', { ports: { http: '8500' } });
  t.regex(await failure(['-config-file', file], dir), /ports\.http cannot be "8500" \(a string\)\. Must be a port number from 0 to 65535/);
});

test('flag values go through the same checks and the message names the flag', async (t) => {
  const dir = await scratch(t);
  t.is(await failure(['-data-dir', 'd', '-http-port', '70000'], dir), 'flag -http-port: invalid value 70000 for ports.http. Must be a port number from 0 to 65535');
  t.regex(await failure(['-data-dir', 'd', '-retry-join', 'provider=aws tag_key=x'], dir), /^flag -retry-join: .*cloud auto-join \("provider=\.\.\."\) is not supported/);
  t.is(
    await failure(['-data-dir', 'd', '-datacenter', 'd c'], dir),
    'flag -datacenter: invalid value "d c" for datacenter. Must be a name of only [a-z0-9-_], upper case folded to lower case (datacenter can only contain lowercase alphanumeric, - or _ characters)',
  );
  t.is(
    await failure(['-data-dir', 'd', '-datacenter='], dir),
    'flag -datacenter: invalid value "" for datacenter. Must be a name of only [a-z0-9-_], upper case folded to lower case (datacenter cannot be empty)',
  );
});

test('unknown keys are rejected by name, top-level and nested, with a hint when one is likely meant', async (t) => {
  const dir = await scratch(t);
  const file = await writeJson(dir, 'a.json', { data_dir: 'd', nodename: 'x', nodeName: 'y', ports: { htpp: 1 }, conclave: { tick_ms: 100 }, ui_config: { enabled: true }, ports_dns: 1 });
  const lines = (await failure(['-config-file', file], dir)).split('\n');
  const at = `config file "${file}": `;
  t.true(lines.includes(`${at}invalid config key nodename; did you mean node_name?`), lines.join('\n'));
  t.true(lines.includes(`${at}invalid config key nodeName; did you mean node_name?`));
  t.true(lines.includes(`${at}invalid config key ports.htpp; did you mean ports.http?`));
  t.true(lines.some((l) => l.startsWith(`${at}invalid config key conclave.tick_ms`)));
  t.true(lines.includes(`${at}invalid config key ui_config: Consul has this setting but Conclave does not support it; remove it`));
  t.true(lines.some((l) => l.startsWith(`${at}invalid config key ports_dns`)));
  t.is(lines.length, 6, 'every problem is reported at once');
});

test('a Consul key Conclave does not implement is named as such, also nested', async (t) => {
  const dir = await scratch(t);
  const file = await writeJson(dir, 'a.json', { ports: { dns: 8600 }, raft_snapshot_interval: '5s' });
  const message = await failure(['-config-file', file], dir);
  t.regex(message, /invalid config key ports\.dns: Consul has this setting but Conclave does not support it/);
  t.regex(message, /invalid config key raft_snapshot_interval: Consul has this setting/);
});

test('a nested object that is not an object is refused, listing its keys', async (t) => {
  const dir = await scratch(t);
  const file = await writeJson(dir, 'a.json', { ports: 8500 });
  t.regex(await failure(['-config-file', file], dir), /ports cannot be 8500\. Must be an object with the keys http, server/);
});

test('files that are missing, not JSON, not an object, or HCL are refused by name', async (t) => {
  const dir = await scratch(t);
  t.regex(await failure(['-config-file', 'missing.json'], dir), /^config file "missing\.json": cannot read it: no such file or directory \(ENOENT\)/);
  const broken = await writeJson(dir, 'broken.json', '{"node_name": "a",}');
  t.regex(await failure(['-config-file', broken], dir), /^config file ".*broken\.json": not valid JSON: /);
  const array = await writeJson(dir, 'array.json', '[1, 2]');
  t.regex(await failure(['-config-file', array], dir), /must hold one JSON object .* not an array/);
  const hcl = await writeJson(dir, 'a.hcl', 'node_name = "a"');
  t.regex(await failure(['-config-file', hcl], dir), /HCL config files are not supported by Conclave; write it as JSON/);
});

test('server = false is refused: Conclave runs servers only', async (t) => {
  const dir = await scratch(t);
  t.regex(await failure(['-data-dir', 'd', '-bind', '127.0.0.1', '-server=false'], dir), /^server cannot be false \(set by flag -server\): Conclave runs servers only/);
  const file = await writeJson(dir, 'a.json', { server: false, data_dir: 'd', bind_addr: '127.0.0.1' });
  t.regex(await failure(['-config-file', file], dir), /^server cannot be false \(set by config file ".*a\.json"\)/);
  t.true((await load(['-data-dir', 'd', '-bind', '127.0.0.1', '-server'], dir)).dataDir.endsWith('/d'), '-server alone is accepted');
});

test('data_dir is required and must be a directory if it exists', async (t) => {
  const dir = await scratch(t);
  t.regex(await failure(['-bind', '127.0.0.1'], dir), /^data_dir cannot be empty: set "data_dir" in a config file or pass -data-dir <path>/);
  await writeFile(join(dir, 'a-file'), '');
  t.regex(await failure(['-bind', '127.0.0.1', '-data-dir', 'a-file'], dir), /^data_dir ".*a-file" is not a directory \(set by flag -data-dir\)/);
  await mkdir(join(dir, 'existing'));
  t.is((await load(['-bind', '127.0.0.1', '-data-dir', 'existing'], dir)).dataDir, join(dir, 'existing'));
});

test('the HTTP and server ports cannot collide on overlapping addresses', async (t) => {
  const dir = await scratch(t);
  t.regex(await failure(['-data-dir', 'd', '-bind', '127.0.0.1', '-http-port', '8300'], dir), /ports\.http \(set by flag -http-port\) and ports\.server are both 8300/);
  t.is((await load(['-data-dir', 'd', '-bind', '127.0.0.2', '-http-port', '8300'], dir)).httpPort, 8300, 'different addresses may share a port');
});

test('positional arguments are refused, with a hint for "-server false"', async (t) => {
  const dir = await scratch(t);
  t.regex(await failure(['-data-dir', 'd', 'extra'], dir), /^Unknown extra arguments: "extra"\. conclave agent takes only flags/);
  t.regex(await failure(['-server', 'false'], dir), /a boolean flag takes its value after "=": -server=false/);
  t.regex(await failure(['-config', 'x'], dir), /^flag provided but not defined: -config/);
});

test('loading writes nothing: no data dir, not even its parent, after a successful or a failed load', async (t) => {
  const dir = await scratch(t);
  const before = await readdir(dir);
  const ok = await load(['-data-dir', 'deep/data/dir', '-bind', '127.0.0.1'], dir);
  t.is(ok.dataDir, join(dir, 'deep', 'data', 'dir'));
  t.false(existsSync(join(dir, 'deep')), 'not even the parent directory');
  await failure(['-data-dir', 'deep/data/dir', '-bind', '127.0.0.1', '-http-port', 'x'], dir);
  await failure(['-data-dir', 'deep/data/dir', '-bind', '127.0.0.1', '-server=false'], dir);
  t.false(existsSync(join(dir, 'deep')));
  t.deepEqual(await readdir(dir), before);
});
