// `conclave agent` with a fake server and fake signals: a bad configuration stops before the server is
// loaded; the first SIGINT/SIGTERM closes the agent and exits 0; a second exits at once with 1; start
// failures, agent errors and a close that hangs exit 1; the banner appears only for human-readable logs.

import test, { type ExecutionContext } from 'ava';
import { EventEmitter } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { runAgentCommand, type AgentCommandDeps, type RunningAgent, type ShutdownSignal, type StartAgent } from '../../src/cli/agent.js';
import { loadAgentConfig, type AgentConfig } from '../../src/config/index.js';

class FakeSignals extends EventEmitter {
  send(signal: ShutdownSignal | 'SIGHUP'): void {
    this.emit(signal);
  }
}

interface Harness {
  readonly deps: AgentCommandDeps;
  readonly signals: FakeSignals;
  readonly stdout: string[];
  readonly stderr: string[];
  readonly logs: Array<{ level: string; msg: string }>;
  readonly exits: number[];
  readonly started: AgentConfig[];
  loadCount: number;
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A controllable agent: `close()` resolves `closed`, unless the test holds it with `closeGate`. */
function fakeAgent(opts: { closeGate?: Promise<void>; closeError?: Error } = {}): RunningAgent & { closeCalls: number; stop: (err?: Error) => void } {
  const closed = deferred();
  const agent = {
    httpAddress: '127.0.0.1:8500',
    serverAddress: '127.0.0.1:8300',
    closed: closed.promise,
    closeCalls: 0,
    async close() {
      agent.closeCalls++;
      await opts.closeGate;
      if (opts.closeError !== undefined) throw opts.closeError;
      closed.resolve();
    },
    stop(err?: Error) {
      if (err === undefined) closed.resolve();
      else closed.reject(err);
    },
  };
  return agent;
}

function harness(t: ExecutionContext, startAgent: StartAgent | (() => Promise<never>), overrides: Partial<AgentCommandDeps> = {}): Harness {
  const h: Harness = {
    signals: new FakeSignals(),
    stdout: [],
    stderr: [],
    logs: [],
    exits: [],
    started: [],
    loadCount: 0,
    deps: undefined as unknown as AgentCommandDeps,
  };
  const logStream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter((l) => l !== '')) h.logs.push(JSON.parse(line) as { level: string; msg: string });
      done();
    },
  });
  (h as { deps: AgentCommandDeps }).deps = {
    stdout: { write: (s: string) => h.stdout.push(s) },
    stderr: { write: (s: string) => h.stderr.push(s) },
    stdoutIsTty: false,
    loadStartAgent: async () => {
      h.loadCount++;
      return async (config, logger) => {
        h.started.push(config);
        return (startAgent as StartAgent)(config, logger);
      };
    },
    signals: h.signals,
    exitNow: (code) => h.exits.push(code),
    createLogger: async (config) => ({
      logger: pino({ level: config.logLevel, formatters: { level: (label) => ({ level: label }) } }, logStream),
      json: true,
    }),
    ...overrides,
  };
  return h;
}

/** The command's exit status, once it has also removed its signal listeners. */
async function settle(t: ExecutionContext, h: Harness, run: Promise<number>): Promise<number> {
  const code = await run;
  t.is(h.signals.listenerCount('SIGINT') + h.signals.listenerCount('SIGTERM') + h.signals.listenerCount('SIGHUP'), 0, 'signal listeners are removed');
  return code;
}

async function dataDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return join(dir, 'data');
}

const argv = (dir: string) => ['-node', 'n1', '-data-dir', dir, '-bind', '127.0.0.1', '-bootstrap-expect', '1'];

/** Waits until `cond` holds, polling the event loop (the command runs in the same process). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 2));
  if (!cond()) throw new Error('condition not reached');
}

test('a bad configuration prints ==> lines to stderr, exits 1, and never loads the server', async (t) => {
  const dir = await dataDir(t);
  const h = harness(t, async () => fakeAgent());
  const code = await runAgentCommand([...argv(dir), '-http-port', '99999'], h.deps);
  t.is(code, 1);
  t.is(h.stderr.join(''), '==> flag -http-port: invalid value 99999 for ports.http. Must be a port number from 0 to 65535\n');
  t.is(h.loadCount, 0);
  t.deepEqual(h.stdout, []);
  t.false(existsSync(dir));
});

test('every line of a multi-line configuration error is prefixed', async (t) => {
  const h = harness(t, async () => fakeAgent());
  const code = await runAgentCommand(['-bind', '127.0.0.1', '-server=false'], h.deps);
  t.is(code, 1);
  const lines = h.stderr.join('').trimEnd().split('\n');
  t.is(lines.length, 2);
  t.true(lines.every((l) => l.startsWith('==> ')));
  t.regex(lines[0]!, /server cannot be false/);
  t.regex(lines[1]!, /data_dir cannot be empty/);
});

test('the agent starts with the loaded configuration; SIGINT closes it and the command exits 0', async (t) => {
  const dir = await dataDir(t);
  const agent = fakeAgent();
  const h = harness(t, async () => agent);
  const run = runAgentCommand(argv(dir), h.deps);
  await until(() => h.started.length === 1);
  t.is(h.started[0]!.nodeName, 'n1');
  t.is(h.started[0]!.dataDir, dir);
  await until(() => h.signals.listenerCount('SIGINT') === 1);
  h.signals.send('SIGINT');
  t.is(await settle(t, h, run), 0);
  t.is(agent.closeCalls, 1);
  t.deepEqual(h.exits, []);
  t.true(h.logs.some((l) => l.msg === 'Graceful exit completed'));
  t.deepEqual(h.stdout, [], 'no banner when logs are JSON');
});

test('SIGHUP is logged and ignored (Node would otherwise kill the agent without a clean shutdown)', async (t) => {
  const dir = await dataDir(t);
  const agent = fakeAgent();
  const h = harness(t, async () => agent);
  const run = runAgentCommand(argv(dir), h.deps);
  await until(() => h.started.length === 1);
  h.signals.send('SIGHUP');
  t.true(h.logs.some((l) => l.level === 'warn' && l.msg.startsWith('SIGHUP ignored')));
  t.is(agent.closeCalls, 0);
  h.signals.send('SIGINT');
  t.is(await settle(t, h, run), 0);
  t.deepEqual(h.exits, [], 'SIGINT after SIGHUP is the first shutdown signal, not the second');
});

test('SIGTERM works like SIGINT', async (t) => {
  const dir = await dataDir(t);
  const agent = fakeAgent();
  const h = harness(t, async () => agent);
  const run = runAgentCommand(argv(dir), h.deps);
  await until(() => h.started.length === 1);
  await new Promise((r) => setImmediate(r));
  h.signals.send('SIGTERM');
  t.is(await settle(t, h, run), 0);
  t.is(agent.closeCalls, 1);
});

test('a second signal during shutdown exits at once with 1', async (t) => {
  const dir = await dataDir(t);
  const gate = deferred();
  const agent = fakeAgent({ closeGate: gate.promise });
  const h = harness(t, async () => agent);
  const run = runAgentCommand(argv(dir), h.deps);
  await until(() => h.started.length === 1);
  await new Promise((r) => setImmediate(r));
  h.signals.send('SIGINT');
  await until(() => agent.closeCalls === 1);
  h.signals.send('SIGTERM');
  t.deepEqual(h.exits, [1]);
  t.true(h.logs.some((l) => l.msg === 'Caught second signal, Exiting'));
  gate.resolve();
  t.is(await settle(t, h, run), 0);
});

test('a signal while the agent is starting closes it as soon as it has started', async (t) => {
  const dir = await dataDir(t);
  const agent = fakeAgent();
  const startGate = deferred();
  const h = harness(t, async () => {
    await startGate.promise;
    return agent;
  });
  const run = runAgentCommand(argv(dir), h.deps);
  await until(() => h.started.length === 1);
  h.signals.send('SIGINT');
  startGate.resolve();
  t.is(await settle(t, h, run), 0);
  t.is(agent.closeCalls, 1);
});

test('a failed start exits 1 and logs why', async (t) => {
  const dir = await dataDir(t);
  const h = harness(t, async () => {
    throw new Error('cannot listen on 127.0.0.1:8300: EADDRINUSE');
  });
  t.is(await settle(t, h, runAgentCommand(argv(dir), h.deps)), 1);
  const line = h.logs.find((l) => l.msg === 'Error starting agent') as { err?: { message?: string } } | undefined;
  t.is(line?.err?.message, 'cannot listen on 127.0.0.1:8300: EADDRINUSE');
});

test('a server module that cannot be loaded exits 1', async (t) => {
  const dir = await dataDir(t);
  const h = harness(t, async () => fakeAgent(), {
    loadStartAgent: async () => {
      throw new Error("Cannot find module '../agent/index.js'");
    },
  });
  t.is(await settle(t, h, runAgentCommand(argv(dir), h.deps)), 1);
  t.true(h.logs.some((l) => l.msg.startsWith('cannot load the server module')));
});

test('an agent that stops by itself exits 0, or 1 when it stopped on an error', async (t) => {
  const dir = await dataDir(t);
  const quiet = fakeAgent();
  const h1 = harness(t, async () => quiet);
  const run1 = runAgentCommand(argv(dir), h1.deps);
  await until(() => h1.started.length === 1);
  quiet.stop();
  t.is(await settle(t, h1, run1), 0);
  t.is(quiet.closeCalls, 0);

  const broken = fakeAgent();
  const h2 = harness(t, async () => broken);
  const run2 = runAgentCommand(argv(dir), h2.deps);
  await until(() => h2.started.length === 1);
  broken.stop(new Error('raft log write failed'));
  t.is(await settle(t, h2, run2), 1);
  t.true(h2.logs.some((l) => l.msg === 'agent stopped on an error'));
});

test('a close that fails, or takes longer than the shutdown timeout, exits 1', async (t) => {
  const dir = await dataDir(t);
  const failing = fakeAgent({ closeError: new Error('fsync failed') });
  const h1 = harness(t, async () => failing);
  const run1 = runAgentCommand(argv(dir), h1.deps);
  await until(() => h1.started.length === 1);
  await new Promise((r) => setImmediate(r));
  h1.signals.send('SIGINT');
  t.is(await settle(t, h1, run1), 1);

  const hanging = fakeAgent({ closeGate: new Promise(() => {}) });
  const h2 = harness(t, async () => hanging, { shutdownTimeoutMs: 20 });
  const run2 = runAgentCommand(argv(dir), h2.deps);
  await until(() => h2.started.length === 1);
  await new Promise((r) => setImmediate(r));
  h2.signals.send('SIGINT');
  t.is(await settle(t, h2, run2), 1);
  t.true(h2.logs.some((l) => l.msg === 'Timeout on graceful shutdown. Exiting'));
});

test('human-readable logs get Consul\'s start banner on stdout; config warnings are logged', async (t) => {
  const dir = await dataDir(t);
  const agent = fakeAgent();
  const h = harness(t, async () => agent);
  const json = h.deps.createLogger!;
  const deps: AgentCommandDeps = { ...h.deps, createLogger: async (c, tty) => ({ ...(await json(c, tty)), json: false }) };
  const run = runAgentCommand([...argv(dir), '-bootstrap-expect', '2'], deps);
  await until(() => h.started.length === 1);
  await new Promise((r) => setImmediate(r));
  h.signals.send('SIGINT');
  t.is(await settle(t, h, run), 0);
  const out = h.stdout.join('');
  t.true(out.startsWith('==> Starting Conclave agent...\n'));
  t.regex(out, /Node name: 'n1'/);
  t.regex(out, /==> Log data will now stream in as it occurs:/);
  t.regex(out, /==> Conclave agent running! HTTP API on http:\/\/127\.0\.0\.1:8500/);
  t.true(h.logs.some((l) => l.level === 'warn' && l.msg.startsWith('bootstrap_expect = 2')));
});

const secret = 'c0ffee00-dead-4bee-8f00-5ecre7t0ken1';

test('the ACL token never reaches the log or the banner: the configuration is logged and printed redacted', async (t) => {
  const dir = await dataDir(t);
  const configFile = join(dir, '..', 'acl.json');
  await writeFile(configFile, JSON.stringify({ acl: { enabled: true, default_policy: 'deny', tokens: { initial_management: secret } } }));
  for (const json of [true, false]) {
    const agent = fakeAgent();
    const h = harness(t, async () => agent);
    const make = h.deps.createLogger!;
    // Every log line lands in h.logs (parsed JSON); json=false adds the banner on stdout.
    const deps: AgentCommandDeps = { ...h.deps, createLogger: async (c, tty) => ({ ...(await make(c, tty)), json }) };
    const run = runAgentCommand([...argv(dir), '-config-file', configFile], deps);
    await until(() => h.started.length === 1);
    t.is(h.started[0]!.acl.initialManagementToken, secret, 'the agent itself gets the token');
    await new Promise((r) => setImmediate(r));
    h.signals.send('SIGINT');
    t.is(await settle(t, h, run), 0);
    const everything = [...h.stdout, ...h.stderr, JSON.stringify(h.logs)].join('\n');
    t.false(everything.includes(secret), `json=${json}: the token was printed`);
    if (json) {
      const first = h.logs.find((l) => l.msg === 'starting Conclave agent') as unknown as { config: { acl: unknown } };
      t.deepEqual(first.config.acl, { enabled: true, defaultPolicy: 'deny', initialManagementToken: '<hidden>' });
    } else {
      t.regex(h.stdout.join(''), /ACL: enabled \(default policy: deny; initial management token: set, <hidden>\)/);
    }
  }
});

test('the agent\'s own logger hides the token even if the raw configuration were logged', async (t) => {
  const dir = await dataDir(t);
  const r = await loadAgentConfig([...argv(dir), '-config-file', await (async () => {
    const f = join(dir, '..', 'acl2.json');
    await writeFile(f, JSON.stringify({ acl: { enabled: true, tokens: { initial_management: secret } } }));
    return f;
  })()]);
  if (!r.ok) throw new Error(r.message);
  // createAgentLogger writes to fd 1; run it in a child so its output can be read.
  const { execFile } = await import('node:child_process');
  const script = `
    import { createAgentLogger } from './src/cli/logger.ts';
    const config = JSON.parse(process.argv[1]);
    const { logger } = await createAgentLogger(config, false);
    logger.info({ config }, 'raw configuration');
    logger.info(config.acl, 'raw acl');
  `;
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ['--import=tsx', '--input-type=module', '-e', script, JSON.stringify(r.config)], { cwd: join(import.meta.dirname, '..', '..') }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  t.is(out.trim().split('\n').length, 2, out);
  t.false(out.includes(secret), out);
  t.true(out.includes('<hidden>'));
});

test('-dev: the temporary data directory is removed after a clean shutdown and after a failed start', async (t) => {
  const started: string[] = [];
  for (const outcome of ['clean', 'failed-start'] as const) {
    const agent = fakeAgent();
    // Looked at when the agent starts: after a failed start the directory may be gone before the
    // test gets to run again.
    let existedAtStart = false;
    const h = harness(t, async (config) => {
      existedAtStart = existsSync(config.dataDir);
      if (outcome === 'failed-start') throw new Error('cannot listen on 127.0.0.1:8300: EADDRINUSE');
      return agent;
    });
    const run = runAgentCommand(['-dev', '-http-port', '0', '-server-port', '1'], h.deps);
    await until(() => h.started.length === 1);
    const config = h.started[0]!;
    t.true(config.dev && config.dataDirIsTemporary);
    t.true(config.dataDir.startsWith(join(tmpdir(), 'conclave-dev-')));
    started.push(config.dataDir);
    t.true(existedAtStart, `${outcome}: the temporary data dir exists when the agent starts`);
    if (outcome === 'clean') {
      await new Promise((r) => setImmediate(r));
      h.signals.send('SIGTERM');
    }
    t.is(await settle(t, h, run), outcome === 'clean' ? 0 : 1);
    t.false(existsSync(config.dataDir), `${outcome}: the temporary data dir is gone`);
    t.true(h.logs.some((l) => l.msg === 'removed the temporary data directory of dev mode'));
    t.true(h.logs.some((l) => l.level === 'warn' && l.msg.startsWith('Dev mode is enabled: all data lives in the temporary directory')));
    t.true(h.logs.some((l) => l.msg.startsWith(`running in dev mode: data in ${config.dataDir} (temporary`)));
  }
  t.not(started[0], started[1]);
});

test('-dev: a second signal removes the temporary data directory before it exits', async (t) => {
  const gate = deferred();
  const agent = fakeAgent({ closeGate: gate.promise });
  const h = harness(t, async () => agent);
  const run = runAgentCommand(['-dev', '-http-port', '0', '-server-port', '1'], h.deps);
  await until(() => h.started.length === 1);
  const dir = h.started[0]!.dataDir;
  await new Promise((r) => setImmediate(r));
  h.signals.send('SIGINT');
  await until(() => agent.closeCalls === 1);
  h.signals.send('SIGINT');
  t.deepEqual(h.exits, [1]);
  t.false(existsSync(dir), 'removed synchronously before exiting');
  gate.resolve();
  t.is(await settle(t, h, run), 0);
});

test('-dev -data-dir: the given directory is kept', async (t) => {
  const dir = await dataDir(t);
  const agent = fakeAgent();
  const h = harness(t, async () => {
    await mkdir(dir, { recursive: true });
    return agent;
  });
  const run = runAgentCommand(['-dev', '-data-dir', dir, '-http-port', '0', '-server-port', '1'], h.deps);
  await until(() => h.started.length === 1);
  t.like(h.started[0], { dev: true, dataDir: dir, dataDirIsTemporary: false });
  await new Promise((r) => setImmediate(r));
  h.signals.send('SIGTERM');
  t.is(await settle(t, h, run), 0);
  t.true(existsSync(dir));
});
