// The real `conclave` executable as a child process (`node --import=tsx src/cli/main.ts ...`, and once
// through bin/conclave.js): help, version, bad flags, bad configuration and unknown commands, checked
// on stdout, stderr and the exit status. A bad configuration must fail before the server module is
// loaded, so these tests need no running server.

import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentFlags, configKeys } from '../../src/config/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(args: readonly string[], entry: readonly string[] = ['--import=tsx', 'src/cli/main.ts']): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...entry, ...args], { cwd: root, timeout: 20_000, env: { ...process.env, NO_COLOR: '1' } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

async function scratch(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-cli-process-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('conclave --help lists the commands on stdout and exits 0', async (t) => {
  const r = await run(['--help']);
  t.is(r.code, 0, r.stderr);
  t.true(r.stdout.startsWith('Usage: conclave [--version] [--help] <command> [<args>]\n'));
  t.regex(r.stdout, /^ {4}agent {7}Runs a Conclave server agent$/m);
  t.regex(r.stdout, /^ {4}snapshot {4}Saves, restores and inspects snapshots of Conclave server state$/m);
  t.regex(r.stdout, /^ {4}version {5}Prints the Conclave version$/m);
  t.is(r.stderr, '');
});

test('conclave agent -h documents every flag, every config key and an example, and exits 0', async (t) => {
  const r = await run(['agent', '-h']);
  t.is(r.code, 0, r.stderr);
  t.true(r.stdout.startsWith('Usage: conclave agent [options]\n'));
  for (const flag of agentFlags) t.regex(r.stdout, new RegExp(`^  -${flag.name}(=<[^>]+>)?$`, 'm'), `flag -${flag.name}`);
  for (const key of configKeys) t.true(r.stdout.includes(`\n  ${key} (`), `key ${key}`);
  t.regex(r.stdout, /conclave agent -config-file cluster-config\/local-3\/node1\.json/);
  t.deepEqual(r.stdout.split('\n').filter((l) => l.length > 72), [], 'lines fit in 72 columns, as Consul\'s help does');
  t.is(r.stderr, '');
  const viaHelp = await run(['agent', '--help', '-node', 'x']);
  t.is(viaHelp.code, 0);
  t.is(viaHelp.stdout, r.stdout, '--help anywhere among the flags shows the same help');
});

test('conclave version and --version print the package version', async (t) => {
  const [a, b] = await Promise.all([run(['version']), run(['--version'])]);
  t.is(a.code, 0);
  t.is(a.stdout, `Conclave v${version}\n`);
  t.is(b.code, 0);
  t.is(b.stdout, a.stdout);
});

test('a bad configuration exits 1 with ==> lines on stderr, nothing on stdout, and no data dir', async (t) => {
  const dir = await scratch(t);
  const file = join(dir, 'bad.json');
  await writeFile(file, JSON.stringify({ node_name: 'n1', data_dir: 'data', ports: { http: 70000 }, colour: 'blue' }));
  const r = await run(['agent', '-config-file', file, '-bind', '127.0.0.1']);
  t.is(r.code, 1);
  t.is(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  t.deepEqual(lines, [
    `==> config file "${file}": ports.http cannot be 70000. Must be a port number from 0 to 65535`,
    `==> config file "${file}": invalid config key colour`,
  ]);
  t.false(existsSync(join(dir, 'data')), 'nothing was created');
});

test('a bad flag exits 1 and names the flag', async (t) => {
  const r = await run(['agent', '-nde', 'n1']);
  t.is(r.code, 1);
  t.is(r.stderr, '==> flag provided but not defined: -nde; did you mean -node?\n');
  t.is(r.stdout, '');
});

test('no command or an unknown command prints the usage to stderr and exits 1', async (t) => {
  const [none, unknown] = await Promise.all([run([]), run(['snapshotz'])]);
  t.is(none.code, 1);
  t.is(none.stdout, '');
  t.true(none.stderr.startsWith('Usage: conclave'));
  t.is(unknown.code, 1);
  t.true(unknown.stderr.startsWith('Unknown command: "snapshotz"'));
  t.regex(unknown.stderr, /Usage: conclave/);
});

test('bin/conclave.js runs the CLI (compiled if built, else the source through tsx)', async (t) => {
  const r = await run(['version'], ['bin/conclave.js']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, `Conclave v${version}\n`);
});
