// The ready-made local clusters in cluster-config/: every file loads with the agent's own loader (from
// any working directory), and the files agree with each other: node i serves HTTP on 850(i-1) and
// server RPC on 830(i-1), ports are unique, retry_join names exactly the other servers, every server
// expects the whole cluster, and data lands in the git-ignored cluster-config/local-N/data/nodeI.

import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAgentConfig, type AgentConfig } from '../../src/config/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

async function loadCluster(n: number): Promise<Array<{ file: string; config: AgentConfig }>> {
  const dir = join(root, 'cluster-config', `local-${n}`);
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  const out: Array<{ file: string; config: AgentConfig }> = [];
  for (const file of files) {
    // From an unrelated working directory: data_dir must resolve against the file, not the cwd.
    const r = await loadAgentConfig(['-config-file', join(dir, file)], { cwd: tmpdir() });
    if (!r.ok) throw new Error(`${file} does not load:\n${r.message}`);
    out.push({ file, config: r.config });
  }
  return out;
}

for (const n of [3, 5]) {
  test(`local-${n}: ${n} node files that load, without warnings`, async (t) => {
    const nodes = await loadCluster(n);
    t.deepEqual(
      nodes.map((x) => x.file),
      Array.from({ length: n }, (_, i) => `node${i + 1}.json`),
    );
    for (const { file, config } of nodes) t.deepEqual(config.warnings, [], file);
  });

  test(`local-${n}: node i serves HTTP on 127.0.0.1:850(i-1) and server RPC on 127.0.0.1:830(i-1), all ports unique`, async (t) => {
    const nodes = await loadCluster(n);
    nodes.forEach(({ config }, i) => {
      t.is(config.nodeName, `node${i + 1}`);
      t.is(config.httpHost, '127.0.0.1');
      t.is(config.httpPort, 8500 + i);
      t.is(config.serverBindHost, '127.0.0.1');
      t.is(config.serverPort, 8300 + i);
      t.is(config.serverAdvertiseAddress, `127.0.0.1:${8300 + i}`);
    });
    const ports = nodes.flatMap(({ config }) => [config.httpPort, config.serverPort]);
    t.is(new Set(ports).size, ports.length);
    t.is(new Set(nodes.map(({ config }) => config.nodeName)).size, n);
  });

  test(`local-${n}: retry_join lists exactly the other servers, and every server expects ${n}`, async (t) => {
    const nodes = await loadCluster(n);
    const addresses = nodes.map(({ config }) => config.serverAdvertiseAddress);
    for (const { file, config } of nodes) {
      const others = addresses.filter((a) => a !== config.serverAdvertiseAddress).sort();
      t.deepEqual([...config.retryJoin].sort(), others, file);
      t.is(config.bootstrapExpect, n, file);
      t.is(config.datacenter, 'dc1', file);
    }
  });

  test(`local-${n}: data under cluster-config/local-${n}/data/nodeI, and generous Raft timing`, async (t) => {
    const nodes = await loadCluster(n);
    nodes.forEach(({ config }, i) => {
      t.is(config.dataDir, join(root, 'cluster-config', `local-${n}`, 'data', `node${i + 1}`));
      t.true(config.raft.tickMs * config.raft.electionTimeoutTicks >= 1000, 'an election timeout of at least 1 s survives pauses on a 2-core machine');
      t.true(config.raft.heartbeatIntervalTicks * 5 <= config.raft.electionTimeoutTicks, 'several heartbeats fit in one election timeout');
    });
  });
}

test('the data directories of the local clusters are git-ignored', (t) => {
  const ignored = readFileSync(join(root, '.gitignore'), 'utf8').split('\n').map((l) => l.trim());
  t.true(ignored.includes('cluster-config/*/data/'));
});

test('two-dc: dc1 with 3 servers and dc2 with 1 load without warnings, on ports apart from local-3/local-5, each listing the other datacenter in retry_join_wan', async (t) => {
  const dir = join(root, 'cluster-config', 'two-dc');
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  t.deepEqual(files, ['dc1-node1.json', 'dc1-node2.json', 'dc1-node3.json', 'dc2-node1.json']);
  const nodes: AgentConfig[] = [];
  for (const file of files) {
    const r = await loadAgentConfig(['-config-file', join(dir, file)], { cwd: tmpdir() });
    if (!r.ok) throw new Error(`${file} does not load:\n${r.message}`);
    t.deepEqual(r.config.warnings, [], file);
    nodes.push(r.config);
  }
  const ports = nodes.flatMap((c) => [c.httpPort, c.serverPort]);
  t.is(new Set(ports).size, ports.length);
  for (const p of ports) t.false((p >= 8500 && p <= 8504) || (p >= 8300 && p <= 8304), `port ${p} collides with local-3/local-5`);
  for (const c of nodes) {
    const same = nodes.filter((o) => o.datacenter === c.datacenter && o !== c).map((o) => o.serverAdvertiseAddress).sort();
    const other = nodes.filter((o) => o.datacenter !== c.datacenter).map((o) => o.serverAdvertiseAddress).sort();
    t.deepEqual([...c.retryJoin].sort(), same, c.nodeName);
    t.deepEqual([...c.retryJoinWan].sort(), other, c.nodeName);
    t.is(c.bootstrapExpect, same.length + 1, c.nodeName);
    t.is(c.nodeName.split('-')[0], c.datacenter);
    t.is(c.dataDir, join(dir, 'data', c.nodeName));
  }
});
