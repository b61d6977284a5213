// Real `conclave agent` processes on loopback for the cluster tests: one temp directory per cluster,
// free ports picked at start, every process stopped by its own PID and every file removed at the end.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface AgentProcess {
  readonly name: string;
  readonly httpPort: number;
  readonly serverPort: number;
  readonly dataDir: string;
  readonly configFile: string;
  proc: ChildProcess | undefined;
  /** SIGSTOPped by `pause` and not yet SIGCONTed: its sockets accept connections but nothing answers. */
  paused?: boolean;
  /** Everything the process printed, for failure reports. */
  readonly output: string[];
}

export interface ClusterOptions {
  readonly size: number;
  /** Servers that start outside the initial bootstrap (they join a running cluster). */
  readonly extra?: number;
  readonly tickMs?: number;
  readonly electionTimeoutTicks?: number;
  readonly snapshotThreshold?: number;
  readonly trailingLogs?: number;
  /** Extra flags for the agents' node processes (e.g. --cpu-prof for profiling a benchmark). */
  readonly nodeFlags?: readonly string[];
  /** Run the compiled agent (dist/cli/main.js, built by `npm run build`) instead of the sources. */
  readonly compiled?: boolean;
  /** session_ttl_min (Consul's key), e.g. "1s" so TTL tests need not wait 20 s. */
  readonly sessionTtlMin?: string;
  /** Extra environment for the agents (e.g. CONCLAVE_TEST_PLANTED_BUG for the chaos suite's teeth). */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * How node `i`'s command is launched (the chaos suite puts each agent in its own cgroup and under
   * libfaketime). The launched process must exec the agent, so that its PID is the agent's.
   */
  readonly launch?: (i: number, file: string, args: readonly string[]) => Launch;
}

export interface Launch {
  readonly file: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}

// Ports for the agents come from below the kernel's ephemeral range (32768-60999 here, see
// /proc/sys/net/ipv4/ip_local_port_range). A port picked by listen(0) is an ephemeral one: once closed,
// the next listen(0) may hand it out again (CI once gave one node the same HTTP and server port), and
// any outgoing connection in the meantime may take it as its local port. Each candidate is bound to
// prove it is free, and every probe stays open until the whole set is chosen, so no two are equal.
const PORT_LOW = 10_000;

/** The first ephemeral port (32768 when /proc does not say). */
export function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** Where agent ports come from: 10000 up to the ephemeral range (at most 32000); on a machine whose
 *  ephemeral range leaves less than 1000 ports there, 10000-31999 all the same. */
export function agentPortRange(): { low: number; high: number } {
  const high = Math.min(32_000, ephemeralLow());
  return high - PORT_LOW >= 1000 ? { low: PORT_LOW, high } : { low: PORT_LOW, high: 32_000 };
}

function tryListen(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(undefined));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(s));
  });
}

/** `count` distinct ports, each free on 127.0.0.1 at the time of the call. */
export async function freePorts(count: number, low = agentPortRange().low, high = agentPortRange().high): Promise<number[]> {
  const held: Server[] = [];
  const ports: number[] = [];
  try {
    for (let attempts = 0; ports.length < count; attempts++) {
      if (attempts > count * 100 + 1000) throw new Error(`could not find ${count} free ports in ${low}-${high - 1}`);
      const port = low + Math.floor(Math.random() * (high - low));
      if (ports.includes(port)) continue;
      const s = await tryListen(port);
      if (s === undefined) continue;
      held.push(s);
      ports.push(port);
    }
    return ports;
  } finally {
    await Promise.all(held.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

export class ProcessCluster {
  readonly nodes: AgentProcess[] = [];
  private readonly dir: string;
  private readonly nodeFlags: readonly string[];
  private readonly entry: readonly string[];

  private constructor(
    dir: string, nodeFlags: readonly string[], compiled: boolean,
    private readonly env: Readonly<Record<string, string>> = {},
    private readonly launch?: ClusterOptions['launch'],
  ) {
    this.dir = dir;
    this.nodeFlags = nodeFlags;
    this.entry = compiled ? [join(root, 'dist/cli/main.js')] : ['--import=tsx', join(root, 'src/cli/main.ts')];
  }

  static async create(t: { teardown(f: () => Promise<void>): void }, o: ClusterOptions): Promise<ProcessCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'conclave-cluster-'));
    const c = new ProcessCluster(dir, o.nodeFlags ?? [], o.compiled ?? false, o.env, o.launch);
    t.teardown(() => c.destroy());
    const total = o.size + (o.extra ?? 0);
    const picked = await freePorts(2 * total);
    const ports: Array<{ http: number; server: number }> = [];
    for (let i = 0; i < total; i++) ports.push({ http: picked[2 * i] as number, server: picked[2 * i + 1] as number });
    for (let i = 0; i < total; i++) {
      const name = `node${i + 1}`;
      const dataDir = join(dir, name);
      const configFile = join(dir, `${name}.json`);
      const founders = ports.slice(0, o.size);
      const others = (i < o.size ? founders : ports).filter((_, j) => j !== i).map((p) => `127.0.0.1:${p.server}`);
      const config = {
        node_name: name,
        datacenter: 'dc1',
        data_dir: dataDir,
        server: true,
        bootstrap_expect: i < o.size ? o.size : 0,
        retry_join: others,
        bind_addr: '127.0.0.1',
        advertise_addr: '127.0.0.1',
        addresses: { http: '127.0.0.1' },
        ports: { http: (ports[i] as { http: number }).http, server: (ports[i] as { server: number }).server },
        log_level: 'info',
        raft_snapshot_threshold: o.snapshotThreshold ?? 8192,
        raft_trailing_logs: o.trailingLogs ?? 10240,
        ...(o.sessionTtlMin !== undefined ? { session_ttl_min: o.sessionTtlMin } : {}),
        conclave: {
          raft_tick_ms: o.tickMs ?? 50,
          raft_election_timeout_ticks: o.electionTimeoutTicks ?? 12,
          raft_heartbeat_interval_ticks: 2,
        },
      };
      await writeFile(configFile, JSON.stringify(config, null, 2));
      c.nodes.push({ name, httpPort: (ports[i] as { http: number }).http, serverPort: (ports[i] as { server: number }).server, dataDir, configFile, proc: undefined, output: [] });
    }
    return c;
  }

  start(i: number): void {
    const n = this.node(i);
    if (n.proc !== undefined) throw new Error(`${n.name} is already running`);
    const args = [...this.nodeFlags, ...this.entry, 'agent', '-config-file', n.configFile];
    const how = this.launch?.(i, process.execPath, args) ?? { file: process.execPath, args };
    const proc = spawn(how.file, how.args, {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_ENV: 'test', ...this.env, ...how.env },
    });
    const keep = (b: Buffer): void => {
      n.output.push(b.toString());
      if (n.output.length > 2000) n.output.splice(0, 1000);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    proc.once('exit', () => {
      if (n.proc === proc) {
        n.proc = undefined;
        n.paused = false;
      }
    });
    n.proc = proc;
  }

  startAll(count = this.nodes.length): void {
    for (let i = 0; i < count; i++) this.start(i);
  }

  /** SIGKILL: no shutdown at all, as a crash. */
  async kill(i: number): Promise<void> {
    await this.signal(i, 'SIGKILL');
  }

  /** SIGSTOP: the process is frozen (peers time out on it rather than being refused) until `resume`. */
  pause(i: number): void {
    const n = this.node(i);
    if (n.proc === undefined || n.paused === true) throw new Error(`${n.name} is not running, or already paused`);
    n.proc.kill('SIGSTOP');
    n.paused = true;
  }

  /** SIGCONT after `pause`. */
  resume(i: number): void {
    const n = this.node(i);
    if (n.proc === undefined || n.paused !== true) throw new Error(`${n.name} is not paused`);
    n.proc.kill('SIGCONT');
    n.paused = false;
  }

  /** SIGTERM: a clean shutdown; waits for the process to exit. */
  async stop(i: number): Promise<number | null> {
    return this.signal(i, 'SIGTERM');
  }

  private async signal(i: number, sig: NodeJS.Signals): Promise<number | null> {
    const n = this.node(i);
    const proc = n.proc;
    if (proc === undefined || proc.exitCode !== null) return proc?.exitCode ?? null;
    if (n.paused === true && sig !== 'SIGKILL') throw new Error(`${n.name} is paused: resume it before ${sig}`);
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    proc.kill(sig);
    const code = await Promise.race([exited, sleep(20_000).then(() => 'timeout' as const)]);
    if (code === 'timeout') {
      proc.kill('SIGKILL');
      await exited;
      throw new Error(`${n.name} did not exit within 20 s of ${sig}`);
    }
    n.proc = undefined;
    return code;
  }

  node(i: number): AgentProcess {
    const n = this.nodes[i];
    if (n === undefined) throw new Error(`no node ${i}`);
    return n;
  }

  /**
   * Resolves as soon as a line of `i`'s output from now on matches `re` (listening to the process
   * itself, not polling), or rejects after `timeoutMs`.
   */
  waitForOutput(i: number, re: RegExp, timeoutMs = 60_000): Promise<string> {
    const n = this.node(i);
    const proc = n.proc;
    if (proc === undefined) return Promise.reject(new Error(`${n.name} is not running`));
    return new Promise((resolve, reject) => {
      let pending = '';
      const done = (f: () => void): void => {
        clearTimeout(timer);
        proc.stdout?.off('data', onData);
        proc.stderr?.off('data', onData);
        proc.off('exit', onExit);
        f();
      };
      const onData = (b: Buffer): void => {
        const lines = (pending + b.toString()).split('\n');
        pending = lines.pop() ?? '';
        const hit = lines.find((l) => re.test(l));
        if (hit !== undefined) done(() => resolve(hit));
      };
      const onExit = (): void => done(() => reject(new Error(`${n.name} exited before printing ${re}`)));
      const timer = setTimeout(() => done(() => reject(new Error(`${n.name} did not print ${re} within ${timeoutMs} ms`))), timeoutMs);
      proc.stdout?.on('data', onData);
      proc.stderr?.on('data', onData);
      proc.once('exit', onExit);
    });
  }

  /** The nodes whose process is up and not paused. */
  running(): number[] {
    return this.nodes.flatMap((n, i) => (n.proc !== undefined && n.paused !== true ? [i] : []));
  }

  async http(i: number, path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`http://127.0.0.1:${this.node(i).httpPort}${path}`, { ...init, signal: AbortSignal.timeout(30_000) });
  }

  async put(i: number, key: string, value: string): Promise<boolean> {
    const r = await this.http(i, `/v1/kv/${key}`, { method: 'PUT', body: value });
    if (r.status !== 200) throw new Error(`PUT ${key} on ${this.node(i).name}: ${r.status} ${await r.text()}`);
    return (await r.json()) === true;
  }

  async getRaw(i: number, key: string, query = ''): Promise<string | undefined> {
    const r = await this.http(i, `/v1/kv/${key}?raw${query}`);
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw new Error(`GET ${key} on ${this.node(i).name}: ${r.status} ${await r.text()}`);
    return r.text();
  }

  /** The index of the node all running nodes agree leads, once they do. */
  async leader(timeoutMs = 60_000): Promise<number> {
    return waitFor('every running node to agree on one leader', async () => {
      const answers = await Promise.all(
        this.running().map(async (i) => {
          try {
            const r = await this.http(i, '/v1/status/leader');
            return r.status === 200 ? String(await r.json()) : '';
          } catch {
            return '';
          }
        }),
      );
      const first = answers[0];
      if (first === undefined || first === '' || answers.some((a) => a !== first)) return undefined;
      const index = this.nodes.findIndex((n) => `127.0.0.1:${n.serverPort}` === first);
      return index >= 0 && this.nodes[index]?.proc !== undefined ? index : undefined;
    }, timeoutMs, () => this.describe());
  }

  /**
   * Waits until every running server is in the catalog with a passing serfHealth, as the leader's
   * server-catalog duty puts them there after an election: a test that compares indexes before and
   * after something must not count those writes.
   */
  async catalogSettled(via: number, timeoutMs = 30_000): Promise<void> {
    const names = this.running().map((i) => this.node(i).name);
    await waitFor('every server in the catalog with a passing serfHealth', async () => {
      const r = await this.http(via, '/v1/health/state/passing').catch(() => undefined);
      if (r === undefined || r.status !== 200) return undefined;
      const passing = new Set((await r.json() as HealthCheckJson[]).filter((k) => k.CheckID === 'serfHealth').map((k) => k.Node));
      return names.every((n) => passing.has(n)) ? true : undefined;
    }, timeoutMs, () => this.describe());
  }

  describe(): string {
    return this.nodes.map((n) => `--- ${n.name} (${n.proc === undefined ? 'down' : `pid ${n.proc.pid}${n.paused === true ? ', paused' : ''}`}):\n${n.output.join('').split('\n').slice(-15).join('\n')}`).join('\n');
  }

  async destroy(): Promise<void> {
    for (const n of this.nodes) {
      if (n.proc !== undefined && n.proc.exitCode === null) {
        const exited = new Promise((r) => n.proc?.once('exit', r));
        n.proc.kill('SIGKILL');
        await Promise.race([exited, sleep(5000)]);
      }
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Polls `f` until it gives a value; a failed attempt (a server not listening yet) counts as "not yet". */
export async function waitFor<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 30_000, detail?: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      const why = lastError === undefined ? '' : ` (last attempt: ${(lastError as Error).message})`;
      throw new Error(`timed out waiting for ${what}${why}${detail ? `\n${detail()}` : ''}`);
    }
    await sleep(100);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A 200 answer's JSON body; anything else throws with `what`, the status and the body. */
export async function okJson<T>(r: Response, what: string): Promise<T> {
  const text = await r.text();
  if (r.status !== 200) throw new Error(`${what}: ${r.status} ${text}`);
  return JSON.parse(text) as T;
}

/** One health check as /v1/health/* shows it (the fields tests read). */
export interface HealthCheckJson {
  readonly Node: string;
  readonly CheckID: string;
  readonly Status: string;
  readonly Output: string;
}
