// `npm start`: a local Conclave cluster on loopback, one `conclave agent` child process per node,
// from the configs in cluster-config/local-<N>/. Each node's log lines are prefixed with its name; the
// nodes' addresses are printed first and the leader once one is elected. Ctrl-C (SIGINT) or SIGTERM
// stops every node cleanly: SIGTERM to each, a bounded wait, then SIGKILL by PID for any left.
// Data stays in cluster-config/local-<N>/data/ (git-ignored), so a restart continues the same cluster;
// --fresh deletes that directory first.
//
//   node --import=tsx scripts/start-local.ts [--nodes 3|5] [--fresh]
//
// The nodes run the TypeScript source through tsx (never a possibly stale dist/), each in its own
// process group so that a terminal's Ctrl-C reaches only this script, which then stops them in order.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { loadAgentConfig, joinHostPort, type AgentConfig } from '../src/config/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'src', 'cli', 'main.ts');

/** Poll for a leader this often, for at most this long (then say so and keep the nodes running). */
const leaderPollIntervalMs = 250;
const leaderPollLimitMs = 60_000;
/** After SIGTERM, wait this long for the nodes (each allows itself 15 s to close) before SIGKILL. */
const stopGraceMs = 20_000;

interface Node {
  readonly name: string;
  readonly configFile: string;
  readonly config: AgentConfig;
  child?: ChildProcess;
  exited?: Promise<number | null>;
  exitCode?: number | null;
}

const colors = process.stdout.isTTY === true && process.env['NO_COLOR'] === undefined ? [36, 33, 35, 32, 34, 91, 92] : [];
const paint = (i: number, s: string): string => (colors.length === 0 ? s : `\u001b[${colors[i % colors.length]}m${s}\u001b[0m`);
const say = (line: string): void => void process.stdout.write(`==> ${line}\n`);

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  if (typeof options === 'string') {
    process.stderr.write(`${options}\n`);
    return options.startsWith('Usage') ? 0 : 1;
  }
  const clusterDir = join(root, 'cluster-config', `local-${options.nodes}`);
  const nodes = await loadNodes(clusterDir);
  if (typeof nodes === 'string') {
    process.stderr.write(`==> ${nodes.split('\n').join('\n==> ')}\n`);
    return 1;
  }
  const busy = await busyPorts(nodes);
  if (busy.length > 0) {
    process.stderr.write(`==> cannot start: ${busy.join('; ')}. Is another cluster (or Consul) running?\n`);
    return 1;
  }
  if (options.fresh) {
    const dataDir = join(clusterDir, 'data');
    await rm(dataDir, { recursive: true, force: true });
    say(`--fresh: deleted ${relative(root, dataDir)}`);
  }

  const width = Math.max(...nodes.map((n) => n.name.length));
  say(`starting a ${nodes.length}-node cluster from ${relative(root, clusterDir)}/ (data kept in ${relative(root, join(clusterDir, 'data'))}/)`);
  nodes.forEach((n, i) => {
    const c = n.config;
    say(`${paint(i, n.name.padEnd(width))}  HTTP http://${joinHostPort(c.httpHost, c.httpPort)}  server RPC ${c.serverAdvertiseAddress}  data ${relative(root, c.dataDir)}`);
  });
  nodes.forEach((n, i) => startNode(n, i, width));

  const stop = stopper(nodes);
  process.on('SIGINT', () => stop.request('SIGINT'));
  process.on('SIGTERM', () => stop.request('SIGTERM'));
  // Whatever ends this process, take the nodes with it.
  process.on('exit', () => {
    for (const n of nodes) if (n.child?.pid !== undefined && n.exitCode === undefined) tryKill(n.child.pid, 'SIGKILL');
  });

  void reportLeader(nodes, stop.stopping);
  const allExited = Promise.all(nodes.map((n) => n.exited)).then(() => 'all-exited' as const);
  const outcome = await Promise.race([allExited, stop.done]);
  if (stop.stopping()) return stop.done; // the nodes exited because we stopped them
  if (outcome === 'all-exited') {
    say('every node has exited by itself; nothing left to run');
    return 1;
  }
  return outcome;
}

function parseArgs(argv: readonly string[]): { nodes: number; fresh: boolean } | string {
  const usage = 'Usage: npm start [-- --nodes 3|5] [--fresh]\n\n  Starts the local cluster in cluster-config/local-<nodes>/ (default 3 nodes).\n  --fresh deletes its data directory first. Ctrl-C stops every node.';
  let nodes = 3;
  let fresh = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^--?nodes(?:=(.*))?$/.exec(arg);
    if (m !== null) {
      const value = m[1] ?? argv[++i];
      nodes = Number(value);
      if (!Number.isInteger(nodes) || !existsSync(join(root, 'cluster-config', `local-${nodes}`))) {
        return `--nodes ${value ?? ''}: no cluster-config/local-${value ?? '?'}/ directory (there are local-3 and local-5)`;
      }
    } else if (arg === '--fresh') fresh = true;
    else if (arg === '-h' || arg === '--help') return usage;
    else return `unknown argument ${JSON.stringify(arg)}\n\n${usage}`;
  }
  return { nodes, fresh };
}

/** Every node*.json of the cluster, loaded with the agent's own loader so a bad file stops us first. */
async function loadNodes(clusterDir: string): Promise<Node[] | string> {
  const files = readdirSync(clusterDir)
    .filter((f) => /^node\d+\.json$/.test(f))
    .sort((a, b) => Number(a.slice(4, -5)) - Number(b.slice(4, -5)));
  if (files.length === 0) return `no node*.json files in ${relative(root, clusterDir)}`;
  const nodes: Node[] = [];
  const errors: string[] = [];
  for (const f of files) {
    const configFile = join(clusterDir, f);
    const loaded = await loadAgentConfig(['-config-file', configFile]);
    if (loaded.ok) nodes.push({ name: loaded.config.nodeName, configFile, config: loaded.config });
    else errors.push(loaded.message);
  }
  return errors.length > 0 ? errors.join('\n') : nodes;
}

/** Ports of the cluster that something else already listens on. */
async function busyPorts(nodes: readonly Node[]): Promise<string[]> {
  const wanted = nodes.flatMap((n) => [
    { what: `${n.name} HTTP`, host: n.config.httpHost, port: n.config.httpPort },
    { what: `${n.name} server RPC`, host: n.config.serverBindHost, port: n.config.serverPort },
  ]);
  const busy = await Promise.all(
    wanted.map(
      (w) =>
        new Promise<string | undefined>((done) => {
          const probe = createServer();
          probe.once('error', (err: NodeJS.ErrnoException) => done(`${w.what} port ${joinHostPort(w.host, w.port)} is unavailable (${err.code ?? err.message})`));
          probe.listen(w.port, w.host, () => probe.close(() => done(undefined)));
        }),
    ),
  );
  return busy.filter((b): b is string => b !== undefined);
}

function startNode(node: Node, index: number, width: number): void {
  const child = spawn(process.execPath, ['--import=tsx', cli, 'agent', '-config-file', node.configFile, '-log-json=false'], {
    cwd: root,
    detached: true, // its own process group: Ctrl-C in the terminal reaches only this script
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...(colors.length > 0 ? { FORCE_COLOR: '1' } : {}) },
  });
  node.child = child;
  const prefix = `${paint(index, node.name.padEnd(width))} | `;
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream! }).on('line', (line) => process.stdout.write(`${prefix}${line}\n`));
  }
  node.exited = new Promise((done) => {
    child.once('exit', (code, signal) => {
      node.exitCode = code;
      say(`${paint(index, node.name)} exited with ${code === null ? `signal ${signal}` : `status ${code}`}`);
      done(code);
    });
    child.once('error', (err) => {
      say(`${paint(index, node.name)} could not start: ${err.message}`);
      node.exitCode = null;
      done(null);
    });
  });
}

/** The first signal stops the nodes in order; a second one kills them at once. */
function stopper(nodes: readonly Node[]): { request: (signal: string) => void; stopping: () => boolean; done: Promise<number> } {
  let stopping = false;
  let finish!: (code: number) => void;
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });
  const running = () => nodes.filter((n) => n.child?.pid !== undefined && n.exitCode === undefined);
  const request = (signal: string): void => {
    if (stopping) {
      say(`second ${signal}: killing ${running().length} node(s) now`);
      for (const n of running()) tryKill(n.child!.pid!, 'SIGKILL');
      finish(1);
      return;
    }
    stopping = true;
    say(`${signal}: stopping ${running().length} node(s) with SIGTERM (Ctrl-C again to kill them at once)`);
    for (const n of running()) tryKill(n.child!.pid!, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), stopGraceMs);
    });
    void Promise.race([Promise.all(nodes.map((n) => n.exited)), graceOver]).then((result) => {
      clearTimeout(timer);
      if (result === 'timeout') {
        say(`${running().map((n) => n.name).join(', ')} still running after ${stopGraceMs / 1000} s: SIGKILL`);
        for (const n of running()) tryKill(n.child!.pid!, 'SIGKILL');
        finish(1);
        return;
      }
      const clean = nodes.every((n) => n.exitCode === 0);
      say(clean ? 'every node stopped cleanly' : 'every node stopped, some with an error (see above)');
      finish(clean ? 0 : 1);
    });
  };
  return { request, stopping: () => stopping, done };
}

/** Polls GET /v1/status/leader on every node until one names a leader, then prints it once. */
async function reportLeader(nodes: readonly Node[], stopping: () => boolean): Promise<void> {
  const byServerAddress = new Map(nodes.map((n) => [n.config.serverAdvertiseAddress, n]));
  const deadline = Date.now() + leaderPollLimitMs;
  while (Date.now() < deadline && !stopping()) {
    for (const n of nodes) {
      const leader = await askLeader(n);
      if (leader === undefined || leader === '') continue;
      const node = byServerAddress.get(leader);
      const http = node === undefined ? '' : `, HTTP http://${joinHostPort(node.config.httpHost, node.config.httpPort)}`;
      say(`leader elected: ${node?.name ?? 'a server not in this cluster config'} (server RPC ${leader}${http}), as reported by ${n.name}`);
      return;
    }
    await new Promise((r) => setTimeout(r, leaderPollIntervalMs));
  }
  if (!stopping()) say(`no leader after ${leaderPollLimitMs / 1000} s; the nodes keep running, see their logs above`);
}

async function askLeader(n: Node): Promise<string | undefined> {
  try {
    const res = await fetch(`http://${joinHostPort(n.config.httpHost, n.config.httpPort)}/v1/status/leader`, { signal: AbortSignal.timeout(1000) });
    if (!res.ok) return undefined;
    const body: unknown = await res.json();
    return typeof body === 'string' ? body : undefined;
  } catch {
    return undefined; // not listening yet, or busy electing
  }
}

function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

process.exit(await main());
