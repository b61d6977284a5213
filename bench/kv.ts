// npm run bench: starts a local 3-node cluster (real agent processes) and prints, for 256-byte random
// values, KV PUT throughput and p50/p99 latency at 1, 16 and 64 concurrent keep-alive clients, then
// default and ?consistent GETs of 1,000 keys, each through the leader and through a follower; then the
// time from SIGKILL of the leader to the first write acknowledged by the new one (several times).
// Where etcd 3.4 is installed (Debian: `apt-get install etcd-server etcd-client`), a local 3-member etcd
// runs beside it and takes the same loads (puts: /v3/kv/put; reads: /v3/kv/range, linearizable as
// etcd's default), through its leader and a follower, and the ratios Conclave / etcd are printed. The
// two alternate run by run (each run of Conclave is followed by the same run of etcd, while the other
// cluster idles), so a ratio compares two runs a few seconds apart on this shared machine, not two
// halves of the bench minutes apart.
// Figures only: nothing here asserts on speed.
// BENCH_SECONDS (per run), BENCH_WARMUP_SECONDS (per load, unmeasured, before the runs; 10), BENCH_CONCURRENCY (1,16,64), BENCH_TARGETS (leader,follower),
// BENCH_LOADS (put,get,consistent), BENCH_FAILOVERS (5) and BENCH_NO_ETCD=1 narrow or widen it. The CPU
// column is all three agents' user + system time per acknowledged request: steadier than throughput on
// a shared machine.
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { agentsCpuMs, buildDist, Cleanup, endConclave, EtcdCluster, etcdInstallHint, findEtcd, startConclave, type EtcdMember } from './support.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
/**
 * Before the measured runs, every load runs this long at 16 clients, unmeasured, on Conclave and on
 * etcd alike: a server runs for days, the figures are for its steady state. Node compiles hot code
 * with its optimizing compiler only after it has run a while. Measured with one client writing to
 * the leader: after 20 s of writes, the three agents spent 6.3 ms of CPU (user + system) per write
 * instead of 14.8, and p50 latency fell from 9.8 to 4.5 ms. Without a warm-up the first run (put at one client)
 * measured code still being compiled, and a load's ratio depended on its place in the order.
 */
const warmupSeconds = Number(process.env.BENCH_WARMUP_SECONDS ?? 10);
const concurrencies = (process.env.BENCH_CONCURRENCY ?? '1,16,64').split(',').map(Number);
const targets = (process.env.BENCH_TARGETS ?? 'leader,follower').split(',');
const loads = (process.env.BENCH_LOADS ?? 'put,get,consistent').split(',') as LoadName[];
const failovers = Number(process.env.BENCH_FAILOVERS ?? 5);
const withEtcd = process.env.BENCH_NO_ETCD !== '1';
type LoadName = 'put' | 'get' | 'consistent';
/** Keys the read loads read: written once before them. */
const readKeys = 1000;
/** BENCH_EXPLAIN=1: for a failover over 1 s, print the write attempts and the nodes' election log lines. */
const explain = process.env.BENCH_EXPLAIN === '1';

/** One HTTP request on a keep-alive agent; resolves with the status (the body is read and dropped). */
function call(agent: Agent, port: number, method: string, path: string, body: Buffer | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers = body === undefined ? {} : { 'content-length': body.length };
    const req = request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function put(agent: Agent, port: number, key: string, value: Buffer): Promise<number> {
  return call(agent, port, 'PUT', `/v1/kv/${key}`, value);
}

/** One request of a load by client `c`, its `i`-th: resolves with the HTTP status. */
type Op = (agent: Agent, c: number, i: number) => Promise<number>;

const conclaveOps = (port: number): Record<LoadName, Op> => ({
  put: (agent, c, i) => put(agent, port, `bench/${c}/${i % 1000}`, randomBytes(256)),
  get: (agent, c, i) => call(agent, port, 'GET', `/v1/kv/bench/r/${(c * 7919 + i) % readKeys}`, undefined),
  consistent: (agent, c, i) => call(agent, port, 'GET', `/v1/kv/bench/r/${(c * 7919 + i) % readKeys}?consistent`, undefined),
});

const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');

/** etcd's JSON gateway: put, and range (linearizable unless serializable is asked for). */
const etcdOps = (port: number): Record<LoadName, Op> => {
  const range = (agent: Agent, c: number, i: number): Promise<number> =>
    call(agent, port, 'POST', '/v3/kv/range', Buffer.from(JSON.stringify({ key: b64(`bench/r/${(c * 7919 + i) % readKeys}`) })));
  return {
    put: (agent, c, i) => call(agent, port, 'POST', '/v3/kv/put', Buffer.from(JSON.stringify({ key: b64(`bench/${c}/${i % 1000}`), value: b64(randomBytes(256)) }))),
    get: range,
    consistent: range,
  };
};

async function load(op: Op, clients: number, runSeconds = seconds): Promise<{ rate: number; p50: number; p99: number; errors: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + runSeconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; performance.now() < end; i++) {
        const t0 = performance.now();
        const status = await op(agent, c, i).catch(() => 0);
        if (status === 200) latencies.push(performance.now() - t0);
        else errors++;
      }
    }),
  );
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const q = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  return { rate: latencies.length / runSeconds, p50: q(0.5), p99: q(0.99), errors };
}

/** Writes the keys the read loads read, 64 at a time. */
async function writeReadKeys(putKey: (agent: Agent, k: number) => Promise<number>): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  for (let k = 0; k < readKeys; k += 64) {
    const statuses = await Promise.all(Array.from({ length: Math.min(64, readKeys - k) }, (_, j) => putKey(agent, k + j)));
    if (statuses.some((st) => st !== 200)) throw new Error(`writing the read keys: statuses ${[...new Set(statuses)].join(', ')}`);
  }
  agent.destroy();
}

interface Figure {
  readonly load: LoadName;
  readonly target: string;
  readonly clients: number;
  readonly rate: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
  readonly cpuPerOp: number;
}

const header = 'load         target     clients     ops/s    p50 ms    p99 ms   errors   CPU ms/op';

function row(f: Figure): string {
  return `${f.load.padEnd(12)} ${f.target.padEnd(9)} ${String(f.clients).padStart(8)} ${f.rate.toFixed(0).padStart(9)} ${f.p50.toFixed(2).padStart(9)} ` +
    `${f.p99.toFixed(2).padStart(9)} ${String(f.errors).padStart(8)} ${Number.isNaN(f.cpuPerOp) ? '        -' : f.cpuPerOp.toFixed(2).padStart(9)}`;
}

/** A cluster the loads run against: its ops by target, and its processes for the CPU column. */
interface System {
  readonly name: string;
  readonly opsOf: (target: string) => Record<LoadName, Op>;
  readonly pids: readonly number[];
}

/**
 * Every load through each target, in order, on every system in turn (one run of each before the
 * next run), after the warm-up; returns each system's figures.
 */
async function runLoads(systems: readonly System[]): Promise<Figure[][]> {
  const figures: Figure[][] = systems.map(() => []);
  if (warmupSeconds > 0) {
    for (const name of loads) for (const target of targets) for (const sys of systems) await load(sys.opsOf(target)[name], 16, warmupSeconds);
  }
  for (const name of loads) {
    for (const target of ['leader', 'follower']) {
      if (!targets.includes(target)) continue;
      for (const clients of concurrencies) {
        const line: string[] = [];
        for (const [k, sys] of systems.entries()) {
          const cpuBefore = agentsCpuMs(sys.pids);
          const r = await load(sys.opsOf(target)[name], clients);
          const f: Figure = { load: name, target, clients, ...r, cpuPerOp: (agentsCpuMs(sys.pids) - cpuBefore) / (r.rate * seconds) };
          figures[k]?.push(f);
          line.push(`${sys.name} ${r.rate.toFixed(0)} ops/s`);
        }
        console.log(`[${name} ${target} ${clients}] ${line.join(', ')}`);
      }
    }
  }
  return figures;
}

/** etcd's leader and a follower member, from each member's status. */
async function etcdRoles(e: EtcdCluster): Promise<{ leader: EtcdMember; follower: EtcdMember }> {
  const statuses = await Promise.all(e.members.map((m) => e.post<{ header: { member_id: string }; leader: string }>(m, '/v3/maintenance/status', {})));
  const li = statuses.findIndex((st) => st.header.member_id === st.leader);
  if (li < 0) throw new Error('etcd: no member says it is the leader');
  return { leader: e.members[li] as EtcdMember, follower: e.members[(li + 1) % 3] as EtcdMember };
}

async function main(): Promise<void> {
  buildDist();
  const cleanup = new Cleanup(); // also on SIGINT / SIGTERM
  try {
    const { cluster: c, leader, pids } = await startConclave(cleanup);
    const follower = [0, 1, 2].find((i) => i !== leader) as number;
    const portOf = (target: string): number => c.node(target === 'leader' ? leader : follower).httpPort;
    await load(conclaveOps(portOf('leader')).put, 4, 1); // connections, LevelDB
    await writeReadKeys((agent, k) => put(agent, portOf('leader'), `bench/r/${k}`, randomBytes(256)));
    const systems: System[] = [{ name: 'Conclave', opsOf: (target) => conclaveOps(portOf(target)), pids }];
    // An etcd that does not start costs the comparison, not Conclave's figures.
    const etcd = await startEtcd(cleanup).catch((e: unknown) => {
      console.log(`etcd did not start (${(e as Error).message}); Conclave's figures alone follow`);
      return undefined;
    });
    if (etcd !== undefined) systems.push(etcd.system);
    console.log(`256-byte random values, ${seconds} s per run after ${warmupSeconds} s of unmeasured warm-up per load and system. ` +
      'Conclave: 3 compiled agents on this machine; Raft tick 50 ms, election timeout 8-16 ticks (400-800 ms), heartbeat 2 ticks.');
    if (etcd !== undefined) console.log(`etcd 3.4 (${etcd.binary}): 3 members on this machine beside it, the same loads through its JSON gateway (reads are linearizable ranges), run by run in turn with Conclave`);
    console.log(`put: distinct keys; get: default reads of ${readKeys} keys; consistent: ?consistent reads of them`);
    const figures = await runLoads(systems);
    await etcd?.stop();
    for (const [k, sys] of systems.entries()) {
      console.log(`\n${sys.name}`);
      console.log(header);
      for (const f of figures[k] ?? []) console.log(row(f));
    }
    if (systems.length > 1) printRatios(figures[0] ?? [], figures[1] ?? []);
    // Failover: kill the leader, then write through a survivor until a write is acknowledged; bring
    // the killed server back and repeat. The election timeout is random, so one figure says little.
    const times: number[] = [];
    let current = leader;
    for (let round = 0; round < failovers; round++) {
      const survivor = [0, 1, 2].find((i) => i !== current) as number;
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const killedAt = performance.now();
      await c.kill(current);
      let acknowledgedAt = 0;
      const attempts: string[] = [];
      while (acknowledgedAt === 0 && performance.now() - killedAt < 30_000) {
        const sent = performance.now() - killedAt;
        const status = await put(agent, c.node(survivor).httpPort, 'failover', randomBytes(256)).catch(() => 0);
        attempts.push(`${sent.toFixed(0)}-${(performance.now() - killedAt).toFixed(0)} ms: ${status}`);
        if (status === 200) acknowledgedAt = performance.now();
      }
      agent.destroy();
      times.push(acknowledgedAt === 0 ? NaN : acknowledgedAt - killedAt);
      if (explain && !(acknowledgedAt - killedAt < 1000)) {
        console.log(`failover ${round + 1} took over 1 s; writes to ${c.node(survivor).name}: ${attempts.join(', ')}`);
        for (const n of c.nodes) {
          const lines = n.output.join('').split('\n').filter((l) => /campaign|leader|vote|term/.test(l)).slice(-8);
          console.log(`--- ${n.name}\n${lines.join('\n')}`);
        }
      }
      c.start(current);
      current = await c.leader();
    }
    const shown = times.map((ms) => ms.toFixed(0)).join(', ');
    if (times.length > 0) console.log(`\nfailover: first write acknowledged by the new leader after SIGKILL of the leader: ${shown} ms (max ${Math.max(...times).toFixed(0)})`);
    await endConclave(c);
  } finally {
    await cleanup.run();
  }
}

/** A local 3-member etcd with the read keys written, or undefined (not installed, or BENCH_NO_ETCD=1). */
async function startEtcd(cleanup: Cleanup): Promise<{ system: System; binary: string; stop: () => Promise<void> } | undefined> {
  const bins = withEtcd ? findEtcd() : undefined;
  if (bins === undefined) {
    console.log(withEtcd ? etcdInstallHint : 'etcd skipped (BENCH_NO_ETCD=1)');
    return undefined;
  }
  const e = await EtcdCluster.create(cleanup, bins);
  let portOf: (target: string) => number;
  try {
    await e.startAll(60_000);
    const { leader, follower } = await etcdRoles(e);
    portOf = (target) => Number(new URL(target === 'leader' ? leader.clientUrl : follower.clientUrl).port);
    await load(etcdOps(portOf('leader')).put, 4, 1);
    await writeReadKeys((agent, k) =>
      call(agent, portOf('leader'), 'POST', '/v3/kv/put', Buffer.from(JSON.stringify({ key: b64(`bench/r/${k}`), value: b64(randomBytes(256)) }))));
  } catch (error) {
    // Safe to drop: the start failure is what the caller reports; cleanup kills what is left at the end.
    await e.killAll().catch(() => undefined); // members that did start must not run beside Conclave's runs
    throw error;
  }
  return { system: { name: 'etcd', opsOf: (target) => etcdOps(portOf(target)), pids: e.pids() }, binary: bins.etcd, stop: () => e.killAll() };
}

function printRatios(conclave: readonly Figure[], etcd: readonly Figure[]): void {
  console.log('\nConclave / etcd (ops/s, each pair of runs taken one after the other; target: at least 1.0 everywhere)');
  console.log('load         target     clients   ratio');
  for (const f of conclave) {
    const other = etcd.find((x) => x.load === f.load && x.target === f.target && x.clients === f.clients);
    if (other === undefined) continue;
    const ratio = f.rate / other.rate;
    console.log(`${f.load.padEnd(12)} ${f.target.padEnd(9)} ${String(f.clients).padStart(8)} ${ratio.toFixed(2).padStart(7)}${ratio >= 1 ? '' : '  below'}`);
  }
}

await main();
