// The acl block, its deprecated Consul aliases, retry_join_wan, and the rule that an ACL token never
// appears in a message: not in a value error, not in a JSON syntax error, not in a nested-object error.

import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAgentConfig, redactConfig, type AgentConfig, type LoadOptions } from '../../src/config/index.js';

const stubs: LoadOptions = { hostname: () => 'host-a', privateIpv4Addresses: () => ['10.1.2.3'] };
const token = 'b1gs3cret-0000-4c1e-9d1b-6d1f0a1b2c3d';

async function scratch(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-config-acl-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function file(dir: string, value: unknown, name = 'a.json'): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, typeof value === 'string' ? value : JSON.stringify(value));
  return path;
}

async function load(argv: string[], cwd: string): Promise<AgentConfig> {
  const r = await loadAgentConfig(argv, { ...stubs, cwd });
  if (!r.ok) throw new Error(`expected a valid configuration, got:\n${r.message}`);
  return r.config;
}

async function failure(argv: string[], cwd: string): Promise<string> {
  const r = await loadAgentConfig(argv, { ...stubs, cwd });
  if (r.ok) throw new Error(`expected an error for ${JSON.stringify(argv)}`);
  return r.message;
}

const base = { data_dir: 'd', bind_addr: '127.0.0.1' };

test('the acl block: enabled, default_policy and tokens.initial_management', async (t) => {
  const dir = await scratch(t);
  const c = await load(['-config-file', await file(dir, { ...base, acl: { enabled: true, default_policy: 'deny', tokens: { initial_management: token } } })], dir);
  t.deepEqual(c.acl, { enabled: true, defaultPolicy: 'deny', initialManagementToken: token });
  t.deepEqual(c.warnings, []);
});

test('acl defaults: disabled, allow, no token (Consul\'s)', async (t) => {
  const dir = await scratch(t);
  t.deepEqual((await load(['-data-dir', 'd', '-bind', '127.0.0.1'], dir)).acl, { enabled: false, defaultPolicy: 'allow', initialManagementToken: undefined });
});

test('acl keys merge across files like every other key: later files win', async (t) => {
  const dir = await scratch(t);
  const a = await file(dir, { ...base, acl: { enabled: true, tokens: { initial_management: token } } }, 'a.json');
  const b = await file(dir, { acl: { default_policy: 'deny' } }, 'b.json');
  t.deepEqual((await load(['-config-file', a, '-config-file', b], dir)).acl, { enabled: true, defaultPolicy: 'deny', initialManagementToken: token });
});

test('deprecated aliases are accepted with Consul\'s warnings; the new key wins when both are set', async (t) => {
  const dir = await scratch(t);
  const top = await load(['-config-file', await file(dir, { ...base, acl_master_token: token, acl_default_policy: 'deny', acl: { enabled: true } })], dir);
  t.deepEqual(top.acl, { enabled: true, defaultPolicy: 'deny', initialManagementToken: token });
  t.deepEqual(top.warnings, [
    "The 'acl_master_token' field is deprecated. Use the 'acl.tokens.initial_management' field instead.",
    "The 'acl_default_policy' field is deprecated. Use the 'acl.default_policy' field instead.",
  ]);
  const nested = await load(['-config-file', await file(dir, { ...base, acl: { enabled: true, tokens: { master: token } } }, 'b.json')], dir);
  t.is(nested.acl.initialManagementToken, token);
  t.deepEqual(nested.warnings, ["The 'acl.tokens.master' field is deprecated. Use the 'acl.tokens.initial_management' field instead."]);
  const both = await load(['-config-file', await file(dir, { ...base, acl_master_token: 'old', acl_default_policy: 'allow', acl: { enabled: true, default_policy: 'deny', tokens: { master: 'older', initial_management: token } } }, 'c.json')], dir);
  t.deepEqual(both.acl, { enabled: true, defaultPolicy: 'deny', initialManagementToken: token });
  t.is(both.warnings.length, 3, 'each deprecated key still gets its warning');
});

test('ACLs enabled without an initial management token load, with a warning about the snapshot endpoints', async (t) => {
  const dir = await scratch(t);
  const c = await load(['-config-file', await file(dir, { ...base, acl: { enabled: true, default_policy: 'deny' } })], dir);
  t.deepEqual(c.acl, { enabled: true, defaultPolicy: 'deny', initialManagementToken: undefined });
  t.deepEqual(c.warnings, [
    'acl.enabled is true but acl.tokens.initial_management is not set: no token can use the snapshot endpoints (saving and restoring need a management token) until one is configured',
  ]);
  const off = await load(['-config-file', await file(dir, { ...base, acl: { tokens: { initial_management: token } } }, 'b.json')], dir);
  t.deepEqual(off.warnings, ['acl.tokens.initial_management is set but acl.enabled is not true: ACLs are off, the token is not used and every request is allowed']);
  t.false(off.warnings.join('\n').includes(token));
});

test('a bad token is refused without showing it: empty, with a space, a newline or a control character, not a string', async (t) => {
  const dir = await scratch(t);
  const expected = 'Must be a non-empty token without spaces or control characters, such as a UUID from uuidgen';
  for (const [i, bad] of [`${token} `, `${token}\n`, `a\u0007${token}`, ''].entries()) {
    const path = await file(dir, { ...base, acl: { enabled: true, tokens: { initial_management: bad } } }, `bad${i}.json`);
    t.is(await failure(['-config-file', path], dir), `config file "${path}": acl.tokens.initial_management cannot be <hidden>. ${expected}`);
  }
  const number = await file(dir, { ...base, acl_master_token: 12345678 }, 'number.json');
  const message = await failure(['-config-file', number], dir);
  t.is(message, `config file "${number}": acl_master_token cannot be <hidden> (a number). ${expected}`);
  t.false(message.includes('12345678'));
});

test('acl.tokens that is not an object, and a JSON syntax error next to a token, do not show the token', async (t) => {
  const dir = await scratch(t);
  const flat = await file(dir, { ...base, acl: { tokens: token } });
  t.is(await failure(['-config-file', flat], dir), `config file "${flat}": acl.tokens cannot be <hidden>. Must be an object with the keys initial_management, master`);
  const acl = await file(dir, { ...base, acl: 'on' }, 'acl.json');
  t.is(await failure(['-config-file', acl], dir), `config file "${acl}": acl cannot be <hidden>. Must be an object with the keys enabled, default_policy, tokens`);
  // Unquoted token, and a trailing comma after a quoted one: V8 would quote the text around the error.
  const unquoted = await file(dir, `{"data_dir": "d",\n "acl": {"tokens": {"initial_management": ${token}}}}`, 'unquoted.json');
  const m1 = await failure(['-config-file', unquoted], dir);
  t.regex(m1, /^config file ".*unquoted\.json": not valid JSON: /);
  t.false(m1.includes(token), m1);
  t.false(m1.includes('s3cret'), m1);
  const trailing = await file(dir, `{"data_dir": "d",\n "acl": {"tokens": {"initial_management": "${token}",}}}`, 'trailing.json');
  const m2 = await failure(['-config-file', trailing], dir);
  t.regex(m2, /^config file ".*trailing\.json": not valid JSON: .* \(line 2, column \d+\)$/);
  t.false(m2.includes(token), m2);
});

test('ACL settings Consul has and Conclave does not are named as such; unknown acl keys get a hint', async (t) => {
  const dir = await scratch(t);
  const path = await file(dir, { ...base, acl: { enabled: true, down_policy: 'extend-cache', enable: true, tokens: { agent: token, inital_management: token } }, acl_token: token });
  const lines = (await failure(['-config-file', path], dir)).split('\n');
  const at = `config file "${path}": `;
  t.deepEqual(lines.sort(), [
    `${at}invalid config key acl.down_policy: Consul has this setting but Conclave does not support it; remove it`,
    `${at}invalid config key acl.enable; did you mean acl.enabled?`,
    `${at}invalid config key acl.tokens.agent: Consul has this setting but Conclave does not support it; remove it`,
    `${at}invalid config key acl.tokens.inital_management; did you mean acl.tokens.initial_management?`,
    `${at}invalid config key acl_token: Consul has this setting but Conclave does not support it; remove it`,
  ].sort());
  t.false(lines.join('\n').includes(token));
});

test('redactConfig hides the token and changes nothing else', async (t) => {
  const dir = await scratch(t);
  const c = await load(['-config-file', await file(dir, { ...base, acl: { enabled: true, tokens: { initial_management: token } } })], dir);
  const r = redactConfig(c);
  t.is(r.acl.initialManagementToken, '<hidden>');
  t.false(JSON.stringify(r).includes(token));
  t.deepEqual({ ...r, acl: c.acl }, c);
  t.is(c.acl.initialManagementToken, token, 'the configuration itself is untouched');
  const none = await load(['-data-dir', 'd', '-bind', '127.0.0.1'], dir);
  t.is(redactConfig(none).acl.initialManagementToken, undefined, 'no token: nothing to hide');
});

test('retry_join_wan: from files and -retry-join-wan flags, combined, port 8300 by default, no duplicates, not this server', async (t) => {
  const dir = await scratch(t);
  const path = await file(dir, { ...base, ports: { server: 8300 }, retry_join_wan: ['127.0.0.1:9300', '127.0.0.1', '[::1]:9302', '127.0.0.1:8300'] });
  const c = await load(['-config-file', path, '-retry-join-wan', '127.0.0.1:9300', '-retry-join-wan=dc2-server.example.com:9301'], dir);
  t.deepEqual(c.retryJoinWan, ['127.0.0.1:9300', '[::1]:9302', 'dc2-server.example.com:9301']);
  t.deepEqual(c.retryJoin, [], 'retry_join is separate');
  t.is(
    await failure(['-data-dir', 'd', '-retry-join-wan', '127.0.0.1:70000'], dir),
    'flag -retry-join-wan: invalid value "127.0.0.1:70000" for retry_join_wan. Must be an array of server addresses; entry 0 ("127.0.0.1:70000") is not a server address "host:port" (IPv6 as "[addr]:port"; the port defaults to 8300), with a port from 1 to 65535',
  );
  const notList = await file(dir, { ...base, retry_join_wan: '127.0.0.1:9300' }, 'b.json');
  t.is(await failure(['-config-file', notList], dir), `config file "${notList}": retry_join_wan cannot be "127.0.0.1:9300" (a string). Must be an array of server addresses, such as ["10.0.0.2:8300", "10.0.0.3:8300"]`);
});
