// Pieces the benchmarks share: building the compiled agent, a cleanup list that also runs on SIGINT and
// SIGTERM, the agents' CPU time and memory from /proc, bounded waits, and a local 3-member etcd.
// Every process started here is stopped by its own PID; every temp directory is removed.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { ProcessCluster, freePorts, sleep, waitFor } from '../test/support/process-cluster.js';

export { ProcessCluster, freePorts, sleep, waitFor };

/**
 * Measure what users run: the compiled agent. Agents are started as `node dist/cli/main.js agent`
 * (ProcessCluster with `compiled`), never through npx, so a signal to the PID reaches the agent.
 */
export function buildDist(): void {
  console.log('building dist/ ...');
  execFileSync(process.execPath, [new URL('../node_modules/typescript/bin/tsc', import.meta.url).pathname, '-p', 'tsconfig.build.json'], {
    cwd: new URL('..', import.meta.url).pathname,
    stdio: 'inherit',
  });
}

/**
 * Teardown steps, run last-registered first: at the end of the benchmark, on an error, and on SIGINT or
 * SIGTERM (then the process exits with 130 / 143).
 */
export class Cleanup {
  private readonly steps: Array<() => Promise<void>> = [];
  private running: Promise<void> | undefined;

  constructor() {
    for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
      process.once(sig, () => {
        console.error(`\n${sig}: stopping every process this benchmark started ...`);
        void this.run().finally(() => process.exit(code));
      });
    }
  }

  add(step: () => Promise<void>): void {
    this.steps.push(step);
  }

  /** For ProcessCluster.create's `t` argument. */
  readonly teardown = (f: () => Promise<void>): void => this.add(f);

  /** Runs (once) every step registered so far; a failing step is reported and the others still run. */
  run(): Promise<void> {
    this.running ??= (async () => {
      for (const proc of commands) proc.kill('SIGKILL');
      while (this.steps.length > 0) {
        const step = this.steps.pop() as () => Promise<void>;
        await step().catch((e: unknown) => console.error(`cleanup step failed: ${(e as Error).message}`));
      }
    })();
    const r = this.running;
    return r.finally(() => {
      if (this.running === r) this.running = undefined;
    });
  }
}

/** CPU time (user + system, ms) the processes have used so far; NaN where /proc is missing. */
export function agentsCpuMs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      return NaN;
    }
  }
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

/**
 * VmRSS and VmHWM (peak RSS since start or the last reset) of a process, and VmRSS's parts: anonymous
 * memory (heaps) and file-backed pages (mapped files, such as LevelDB's tables), in bytes; NaN where unknown.
 */
export function memory(pid: number): { rss: number; hwm: number; anon: number; file: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (name: string): number => Number(/^(\w+):\s+(\d+) kB$/m.exec(status.split('\n').find((l) => l.startsWith(`${name}:`)) ?? '')?.[2] ?? NaN);
    return { rss: kib('VmRSS') * 1024, hwm: kib('VmHWM') * 1024, anon: kib('RssAnon') * 1024, file: kib('RssFile') * 1024 };
  } catch {
    return { rss: NaN, hwm: NaN, anon: NaN, file: NaN };
  }
}

/** Resets VmHWM to the current RSS (Linux: write 5 to clear_refs). False where that is not allowed. */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/**
 * A process's peak RSS above its idle RSS over `f`: idle VmRSS before, VmHWM reset before, read after.
 * Beside it, sampled every 20 ms, the peaks of its anonymous and file-backed parts above their idle
 * values (sampled, so they may miss a spike that VmHWM catches).
 */
export class PeakRss {
  private readonly idle: Map<number, ReturnType<typeof memory>>;
  private readonly peakParts = new Map<number, { anon: number; file: number }>();
  private readonly sampler: NodeJS.Timeout;
  constructor(private readonly pids: readonly number[]) {
    this.idle = new Map(pids.map((p) => [p, memory(p)]));
    for (const p of pids) if (!resetPeak(p)) this.idle.set(p, { ...memory(p), rss: NaN });
    this.sampler = setInterval(() => {
      for (const p of pids) {
        const m = memory(p);
        const peak = this.peakParts.get(p) ?? { anon: 0, file: 0 };
        this.peakParts.set(p, { anon: Math.max(peak.anon, m.anon), file: Math.max(peak.file, m.file) });
      }
    }, 20);
  }
  /** Bytes above idle per pid, in the order given; stops the sampling. */
  aboveIdle(): number[] {
    clearInterval(this.sampler);
    return this.pids.map((p) => memory(p).hwm - (this.idle.get(p)?.rss ?? NaN));
  }
  /** Sampled peaks of anonymous and file-backed memory above idle, per pid in the order given. */
  partsAboveIdle(): Array<{ anon: number; file: number }> {
    return this.pids.map((p) => {
      const peak = this.peakParts.get(p);
      const idle = this.idle.get(p);
      return { anon: (peak?.anon ?? NaN) - (idle?.anon ?? NaN), file: (peak?.file ?? NaN) - (idle?.file ?? NaN) };
    });
  }
  idleOf(pid: number): number {
    return this.idle.get(pid)?.rss ?? NaN;
  }
}

/** `p`, or a rejection naming what was awaited once `ms` pass. */
export async function within<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up after ${(ms / 1000).toFixed(0)} s waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A fresh temp directory, removed by `cleanup`. */
export async function tempDir(cleanup: Cleanup, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanup.add(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** BENCH_AGENT_NODE_FLAGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"): passed to every agent's node. */
const agentNodeFlags = process.env.BENCH_AGENT_NODE_FLAGS?.split(' ').filter((f) => f !== '') ?? [];

/** Starts a fresh 3-node cluster of compiled agents and waits for its leader. */
export async function startConclave(cleanup: Cleanup, o: { snapshotThreshold?: number } = {}): Promise<{ cluster: ProcessCluster; leader: number; pids: number[] }> {
  const cluster = await ProcessCluster.create(cleanup, { size: 3, tickMs: 50, electionTimeoutTicks: 8, compiled: true, nodeFlags: agentNodeFlags, ...o });
  cluster.startAll();
  const leader = await cluster.leader();
  const pids = [0, 1, 2].map((i) => cluster.node(i).proc?.pid ?? 0);
  return { cluster, leader, pids };
}

/**
 * Ends a cluster from startConclave. With agent flags (--cpu-prof) each agent first exits cleanly,
 * which writes their output; destroy() kills at once.
 */
export async function endConclave(cluster: ProcessCluster): Promise<void> {
  if (agentNodeFlags.length > 0) for (const i of [0, 1, 2]) await cluster.stop(i);
  await cluster.destroy();
}

// ---------------------------------------------------------------------------------------------------
// etcd

/** etcd and etcdctl on PATH (or ETCD_BIN / ETCDCTL_BIN), or undefined. */
export function findEtcd(): { etcd: string; etcdctl: string } | undefined {
  const find = (name: string, env: string | undefined): string | undefined => {
    const candidates = env !== undefined ? [env] : (process.env.PATH ?? '').split(delimiter).map((d) => join(d, name));
    return candidates.find((p) => {
      try {
        accessSync(p, constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
  };
  const etcd = find('etcd', process.env.ETCD_BIN);
  const etcdctl = find('etcdctl', process.env.ETCDCTL_BIN);
  return etcd !== undefined && etcdctl !== undefined ? { etcd, etcdctl } : undefined;
}

export const etcdInstallHint = 'etcd is not installed: on Debian/Ubuntu `sudo apt-get install -y etcd-server etcd-client` (etcd 3.4), or set ETCD_BIN and ETCDCTL_BIN';

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  proc: ChildProcess | undefined;
  readonly output: string[];
}

/** Three etcd members on loopback in one temp directory; stopped by PID and removed by `cleanup`. */
export class EtcdCluster {
  private constructor(
    readonly bins: { etcd: string; etcdctl: string },
    readonly dir: string,
    readonly members: EtcdMember[],
    readonly token: string,
  ) {}

  static async create(cleanup: Cleanup, bins: { etcd: string; etcdctl: string }, token = `bench-${process.pid}-${Date.now()}`): Promise<EtcdCluster> {
    const dir = await tempDir(cleanup, 'conclave-bench-etcd-');
    const ports = await freePorts(6);
    const members = [0, 1, 2].map((i): EtcdMember => ({
      name: `etcd${i + 1}`,
      clientUrl: `http://127.0.0.1:${ports[2 * i]}`,
      peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}`,
      dataDir: join(dir, `etcd${i + 1}.etcd`),
      proc: undefined,
      output: [],
    }));
    const c = new EtcdCluster(bins, dir, members, token);
    cleanup.add(() => c.killAll());
    return c;
  }

  get initialCluster(): string {
    return this.members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  }

  /** Starts every member (state 'new'; a restored data dir ignores it) and waits until all answer. */
  async startAll(timeoutMs: number): Promise<void> {
    for (const m of this.members) this.start(m);
    await waitFor('every etcd member to report healthy', async () => {
      const ok = await Promise.all(this.members.map(async (m) => {
        const r = await fetch(`${m.clientUrl}/health`, { signal: AbortSignal.timeout(5000) });
        return r.status === 200 && ((await r.json()) as { health?: string }).health === 'true';
      }).map((p) => p.catch(() => false)));
      return ok.every(Boolean) ? true : undefined;
    }, timeoutMs, () => this.describe());
  }

  private start(m: EtcdMember): void {
    const proc = spawn(this.bins.etcd, [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', m.clientUrl,
      '--advertise-client-urls', m.clientUrl,
      '--listen-peer-urls', m.peerUrl,
      '--initial-advertise-peer-urls', m.peerUrl,
      '--initial-cluster', this.initialCluster,
      '--initial-cluster-token', this.token,
      '--initial-cluster-state', 'new',
      '--quota-backend-bytes', String(8 * 1024 ** 3),
      '--log-level', 'warn',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (b: Buffer): void => {
      m.output.push(b.toString());
      if (m.output.length > 400) m.output.splice(0, 200);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    proc.once('exit', () => {
      if (m.proc === proc) m.proc = undefined;
    });
    m.proc = proc;
  }

  pids(): number[] {
    return this.members.map((m) => m.proc?.pid ?? 0);
  }

  /** SIGKILL to every running member, by PID; waits (bounded) for each to exit. */
  async killAll(): Promise<void> {
    for (const m of this.members) {
      const proc = m.proc;
      if (proc === undefined || proc.exitCode !== null) continue;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await Promise.race([exited, sleep(5000)]);
      m.proc = undefined;
    }
  }

  /** etcdctl against the given endpoints; rejects with its output on failure or after `timeoutMs`. */
  etcdctl(args: readonly string[], timeoutMs: number): Promise<string> {
    return runBounded(this.bins.etcdctl, args, { ETCDCTL_API: '3' }, timeoutMs);
  }

  async post<T>(m: EtcdMember, path: string, body: unknown, timeoutMs = 30_000): Promise<T> {
    const r = await fetch(`${m.clientUrl}${path}`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
    const text = await r.text();
    if (r.status !== 200) throw new Error(`etcd ${m.name} POST ${path}: ${r.status} ${text.slice(0, 300)}`);
    return JSON.parse(text) as T;
  }

  describe(): string {
    return this.members.map((m) => `--- ${m.name} (${m.proc === undefined ? 'down' : `pid ${m.proc.pid}`}):\n${m.output.join('').split('\n').slice(-10).join('\n')}`).join('\n');
  }
}

/** Short-lived commands still running (runBounded); Cleanup.run kills them by PID. */
const commands = new Set<ChildProcess>();

/** Runs a command to its end; rejects with its output if it fails, or kills it (by PID) after `timeoutMs`. */
export function runBounded(cmd: string, args: readonly string[], env: Record<string, string>, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    commands.add(proc);
    proc.once('exit', () => commands.delete(proc));
    let out = '';
    proc.stdout?.on('data', (b: Buffer) => (out += b.toString()));
    proc.stderr?.on('data', (b: Buffer) => (out += b.toString()));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`gave up after ${(timeoutMs / 1000).toFixed(0)} s waiting for \`${cmd} ${args.join(' ')}\` to finish; output:\n${out.slice(-2000)}`));
    }, timeoutMs);
    proc.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`\`${cmd} ${args.join(' ')}\` exited with ${code}:\n${out.slice(-2000)}`));
    });
  });
}
