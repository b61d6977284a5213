// npm run bench: starts a local 3-node cluster (real agent processes) and prints, for 256-byte random
// values, KV PUT throughput and p50/p99 latency at 1, 16 and 64 concurrent keep-alive clients, through
// the leader and through a follower, then the time from SIGKILL of the leader to the first write
// acknowledged by the new one (several times). Figures only: nothing here asserts on speed.
// BENCH_SECONDS (per run), BENCH_CONCURRENCY (1,16,64), BENCH_TARGETS (leader,follower) and
// BENCH_FAILOVERS (5) narrow or widen it. The CPU column is all three agents' user + system time
// per acknowledged put: steadier than throughput on a shared machine.
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { agentsCpuMs, buildDist, Cleanup, ProcessCluster } from './support.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const concurrencies = (process.env.BENCH_CONCURRENCY ?? '1,16,64').split(',').map(Number);
const targets = (process.env.BENCH_TARGETS ?? 'leader,follower').split(',');
const failovers = Number(process.env.BENCH_FAILOVERS ?? 5);
/** BENCH_EXPLAIN=1: for a failover over 1 s, print the write attempts and the nodes' election log lines. */
const explain = process.env.BENCH_EXPLAIN === '1';

function put(agent: Agent, port: number, key: string, value: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'PUT', path: `/v1/kv/${key}`, agent, headers: { 'content-length': value.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(value);
  });
}

async function load(port: number, clients: number): Promise<{ rate: number; p50: number; p99: number; errors: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; performance.now() < end; i++) {
        const t0 = performance.now();
        const status = await put(agent, port, `bench/${c}/${i % 1000}`, randomBytes(256)).catch(() => 0);
        if (status === 200) latencies.push(performance.now() - t0);
        else errors++;
      }
    }),
  );
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const q = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  return { rate: latencies.length / seconds, p50: q(0.5), p99: q(0.99), errors };
}

async function main(): Promise<void> {
  buildDist();
  const cleanup = new Cleanup(); // also on SIGINT / SIGTERM
  const c = await ProcessCluster.create(cleanup, { size: 3, tickMs: 50, electionTimeoutTicks: 8, compiled: true });
  try {
    c.startAll();
    const leader = await c.leader();
    const follower = [0, 1, 2].find((i) => i !== leader) as number;
    await load(c.node(leader).httpPort, 4); // warm up connections, JIT and LevelDB
    console.log(`KV PUT, 256-byte random values, ${seconds} s per run, 3 compiled agents on this machine; Raft tick 50 ms, election timeout 8-16 ticks (400-800 ms), heartbeat 2 ticks`);
    console.log('target        clients   puts/s    p50 ms    p99 ms   errors   agents\' CPU ms/put');
    const pids = [0, 1, 2].map((i) => c.node(i).proc?.pid ?? 0);
    for (const [name, i] of [['leader', leader], ['follower', follower]] as const) {
      if (!targets.includes(name)) continue;
      for (const n of concurrencies) {
        const cpuBefore = agentsCpuMs(pids);
        const r = await load(c.node(i).httpPort, n);
        const cpuPerPut = (agentsCpuMs(pids) - cpuBefore) / (r.rate * seconds);
        console.log(
          `${name.padEnd(12)} ${String(n).padStart(8)} ${r.rate.toFixed(0).padStart(8)} ${r.p50.toFixed(2).padStart(9)} ` +
            `${r.p99.toFixed(2).padStart(9)} ${String(r.errors).padStart(8)} ${cpuPerPut.toFixed(2).padStart(9)}`,
        );
      }
    }
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
    if (times.length > 0) console.log(`failover: first write acknowledged by the new leader after SIGKILL of the leader: ${shown} ms (max ${Math.max(...times).toFixed(0)})`);
  } finally {
    await cleanup.run();
  }
}

await main();
