// Real `conclave agent` processes on loopback, talking real gRPC and HTTP to each other and to the
// test, the way users run them. Faults are process-level: SIGKILL and clean restarts. Every wait is
// on a condition with a generous bound (three processes share two cores).
import test from 'ava';
import { ProcessCluster, waitFor } from '../support/process-cluster.js';

test.serial('3 nodes: a leader is elected, and a write through a follower is readable through every node', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3 });
  c.startAll();
  const leader = await c.leader();
  const follower = [0, 1, 2].find((i) => i !== leader) as number;
  t.true(await c.put(follower, 'greeting', 'hello'));
  for (const i of [0, 1, 2]) t.is(await c.getRaw(i, 'greeting'), 'hello', `default read through ${c.node(i).name}`);
  for (const i of [0, 1, 2]) t.is(await c.getRaw(i, 'greeting', '&consistent'), 'hello');
  for (const i of [0, 1, 2]) {
    t.is(await waitFor('a stale read to catch up', async () => c.getRaw(i, 'greeting', '&stale')), 'hello');
  }
  const r = await c.http(follower, '/v1/kv/greeting?stale');
  t.is(r.headers.get('x-consul-knownleader'), 'true');
  t.truthy(r.headers.get('x-consul-index'));
  t.truthy(r.headers.get('x-consul-lastcontact'));
  const peers = (await (await c.http(0, '/v1/status/peers')).json()) as string[];
  t.deepEqual([...peers].sort(), c.nodes.map((n) => `127.0.0.1:${n.serverPort}`).sort());

  // A forwarded read answers exactly what the leader answers: same status, same body, an index.
  t.true(await c.put(follower, 'dir/locked?flags=7', 'x'));
  const reads: Array<[string, RequestInit?]> = [
    ['/v1/kv/missing'],
    ['/v1/kv/missing?recurse'],
    ['/v1/kv/missing?keys'],
    ['/v1/kv/missing?raw'],
    ['/v1/kv/greeting?raw'],
    ['/v1/kv/greeting?consistent'],
    ['/v1/operator/raft/configuration'],
    ['/v1/kv/greeting'],
    ['/v1/kv/dir/locked'],
    ['/v1/kv/?recurse'],
    ['/v1/kv/?keys&separator=/'],
    ['/v1/txn', { method: 'PUT', body: JSON.stringify([{ KV: { Verb: 'get', Key: 'greeting' } }, { KV: { Verb: 'get-tree', Key: 'dir/' } }]) }],
    ['/v1/txn', { method: 'PUT', body: JSON.stringify([{ KV: { Verb: 'get', Key: 'missing' } }]) }],
    // Writes that fail change nothing, so every server must give the same answer.
    ['/v1/kv/greeting?cas=1', { method: 'PUT', body: 'lost' }],
    ['/v1/kv/greeting?cas=1', { method: 'DELETE' }],
    ['/v1/txn', { method: 'PUT', body: JSON.stringify([{ KV: { Verb: 'set', Key: 'new', Value: 'eA==' } }, { KV: { Verb: 'check-index', Key: 'greeting', Index: 1 } }]) }],
    ['/v1/kv/greeting?acquire=no-such-session', { method: 'PUT', body: 'x' }],
    ['/v1/txn', { method: 'PUT', body: JSON.stringify([{ KV: { Verb: 'lock', Key: 'greeting', Session: 'no-such-session' } }]) }],
  ];
  for (const [path, init] of reads) {
    const answers = [];
    for (const i of [leader, ...[0, 1, 2].filter((j) => j !== leader)]) {
      const res = await c.http(i, path, init);
      answers.push({
        status: res.status,
        body: await res.text(),
        index: res.headers.get('x-consul-index') !== null,
        contentType: res.headers.get('content-type'),
        consistency: res.headers.get('x-consul-effective-consistency'),
        knownLeader: res.headers.get('x-consul-knownleader'),
      });
    }
    t.true([200, 400, 404, 409].includes(answers[0]!.status), `${path}: ${answers[0]!.status} ${answers[0]!.body}`);
    for (const a of answers.slice(1)) t.deepEqual(a, answers[0], `${path} through a follower`);
  }

  // Blocking queries through both followers (default and stale) wake on a write through the leader.
  const followers = [0, 1, 2].filter((i) => i !== leader);
  const before = await c.http(followers[0] as number, '/v1/kv/greeting');
  const index = Number(before.headers.get('x-consul-index'));
  const watches = [
    c.http(followers[0] as number, `/v1/kv/greeting?index=${index}&wait=30s`),
    c.http(followers[1] as number, `/v1/kv/greeting?stale&index=${index}&wait=30s`),
  ];
  t.true(await c.put(leader, 'greeting', 'changed'));
  for (const w of watches) {
    const res = await w;
    t.is(res.status, 200);
    t.true(Number(res.headers.get('x-consul-index')) > index);
    const [entry] = (await res.json()) as Array<{ Value: string }>;
    t.is(Buffer.from(entry!.Value, 'base64').toString(), 'changed');
  }
});

test.serial('3 nodes: SIGKILL the leader, a new one is elected and no acknowledged write is lost', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3 });
  c.startAll();
  const leader = await c.leader();
  const acked: string[] = [];
  for (let i = 0; i < 30; i++) {
    if (await c.put(leader, `acked/${i}`, `v${i}`)) acked.push(`acked/${i}`);
  }
  t.is(acked.length, 30);
  await c.kill(leader);
  const next = await c.leader();
  t.not(next, leader);
  for (const key of acked) t.is(await c.getRaw(next, key), `v${key.slice(6)}`);
  t.true(await c.put(next, 'after-failover', 'yes'));
  // The killed server comes back with its data and catches up.
  c.start(leader);
  await c.leader();
  t.is(await waitFor('the restarted server to catch up', async () => c.getRaw(leader, 'after-failover', '&stale')), 'yes');
  t.is(await c.getRaw(leader, 'acked/29', '&stale'), 'v29');
});

test.serial('writes through followers under load while the leader is killed: every acknowledged one survives', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3 });
  c.startAll();
  const leader = await c.leader();
  const followers = [0, 1, 2].filter((i) => i !== leader);
  const acked = new Map<string, string>();
  const refusals = new Map<string, number>();
  let killed = false;
  let ackedAfterKill = 0;
  const deadline = Date.now() + 45_000;
  // Eight writers through the two followers, until 40 writes were acknowledged after the kill.
  const writers = Array.from({ length: 8 }, async (_, w) => {
    for (let n = 0; Date.now() < deadline && ackedAfterKill < 40; n++) {
      const key = `load/w${w}/${n}`;
      const value = `value ${w}.${n}`;
      const via = followers[n % 2] as number;
      let r: Response;
      try {
        r = await c.http(via, `/v1/kv/${key}`, { method: 'PUT', body: value });
      } catch (e) {
        refusals.set(`fetch: ${(e as Error).message}`, (refusals.get(`fetch: ${(e as Error).message}`) ?? 0) + 1);
        continue;
      }
      const text = await r.text();
      if (r.status === 200 && text === 'true') {
        acked.set(key, value);
        if (killed) ackedAfterKill++;
      } else {
        // A write in flight when the leader died may be answered "unknown outcome" (500); never 200 false.
        const why = `${r.status} ${text.replace(/\d+/g, 'N').slice(0, 120)}`;
        refusals.set(why, (refusals.get(why) ?? 0) + 1);
      }
    }
  });
  await waitFor('60 acknowledged writes before the kill', async () => (acked.size >= 60 ? true : undefined));
  await c.kill(leader);
  killed = true;
  await Promise.all(writers);
  t.log(`acknowledged ${acked.size} (${ackedAfterKill} after the kill); refused: ${JSON.stringify([...refusals])}`);
  t.true(ackedAfterKill >= 40, `writes were acknowledged after the kill (${ackedAfterKill})`);
  for (const why of refusals.keys()) t.regex(why, /^500 (No cluster leader|forwarding the write to the leader failed after it was sent)/, why);
  const next = await c.leader();
  t.not(next, leader);
  const missing: string[] = [];
  for (const [key, value] of acked) if ((await c.getRaw(next, key, '&consistent')) !== value) missing.push(key);
  t.deepEqual(missing, [], `of ${acked.size} acknowledged writes`);
});

test.serial('a restarted cluster comes back with its data; SIGTERM stops a node cleanly', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3 });
  c.startAll();
  const leader = await c.leader();
  t.true(await c.put(leader, 'persisted', 'across restarts'));
  for (const i of [0, 1, 2]) t.is(await c.stop(i), 0, `${c.node(i).name} exits 0 on SIGTERM`);
  c.startAll();
  const again = await c.leader();
  t.is(await c.getRaw(again, 'persisted'), 'across restarts');
});

test.serial('5 nodes keep serving with two of them down', async (t) => {
  const c = await ProcessCluster.create(t, { size: 5 });
  c.startAll();
  let leader = await c.leader();
  t.true(await c.put(leader, 'five', '1'));
  const down = [0, 1, 2, 3, 4].filter((i) => i !== leader).slice(0, 2);
  for (const i of down) await c.kill(i);
  leader = await c.leader();
  t.true(await c.put(leader, 'five', '2'));
  for (const i of c.running()) t.is(await waitFor('replication', async () => ((await c.getRaw(i, 'five', '&stale')) === '2' ? '2' : undefined)), '2');
});

test.serial('bad requests get Consul\'s errors and change nothing', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3 });
  c.startAll();
  const leader = await c.leader();
  t.true(await c.put(leader, 'safe', 'original'));
  const both = await c.http(leader, '/v1/kv/safe?stale&consistent');
  t.is(both.status, 400);
  const big = await c.http(leader, '/v1/kv/safe', { method: 'PUT', body: 'x'.repeat(512 * 1024 + 1) });
  t.is(big.status, 413);
  const badCas = await c.http(leader, '/v1/kv/safe?cas=notanumber', { method: 'PUT', body: 'changed' });
  t.is(badCas.status, 400);
  const badWait = await c.http(leader, '/v1/kv/safe?index=1&wait=forever');
  t.is(badWait.status, 400);
  for (const i of [0, 1, 2]) t.is(await c.getRaw(i, 'safe'), 'original');
});

test.serial('a new server joins a running cluster as a non-voter, is promoted, and a dead one is removed', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3, extra: 1 });
  c.startAll(3);
  const leader = await c.leader();
  t.true(await c.put(leader, 'before-join', 'x'));
  c.start(3);
  const joined = await waitFor('node4 to become a voter', async () => {
    const r = await c.http(leader, '/v1/operator/raft/configuration');
    const cfg = (await r.json()) as { Servers: Array<{ Node: string; Voter: boolean }> };
    return cfg.Servers.find((s) => s.Node === 'node4' && s.Voter) ? cfg : undefined;
  }, 60_000, () => c.describe());
  t.is(joined.Servers.length, 4);
  t.is(await waitFor('node4 to receive the data', async () => c.getRaw(3, 'before-join', '&stale')), 'x');
  // One of the original followers dies for good; the operator removes it.
  const dead = [0, 1, 2].find((i) => i !== leader) as number;
  await c.kill(dead);
  const del = await c.http(leader, `/v1/operator/raft/peer?address=127.0.0.1:${c.node(dead).serverPort}`, { method: 'DELETE' });
  t.is(del.status, 200, await del.text());
  const after = (await (await c.http(leader, '/v1/operator/raft/configuration')).json()) as { Servers: Array<{ Node: string }> };
  t.false(after.Servers.some((s) => s.Node === c.node(dead).name));
  t.true(await c.put(await c.leader(), 'after-remove', 'y'));
});

test.serial('a node that was down through a compaction catches up through InstallSnapshot', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3, snapshotThreshold: 25, trailingLogs: 5 });
  c.startAll();
  const leader = await c.leader();
  const lagging = [0, 1, 2].find((i) => i !== leader) as number;
  await c.kill(lagging);
  for (let i = 0; i < 120; i++) t.true(await c.put(leader, `compacted/${i}`, `v${i}`));
  const leaderLog = () => c.node(leader).output.join('');
  await waitFor('the leader to snapshot and compact', async () => (leaderLog().includes('"event":"snapshot"') ? true : undefined));
  c.start(lagging);
  t.is(await waitFor('the lagging node to catch up', async () => c.getRaw(lagging, 'compacted/119', '&stale'), 60_000, () => c.describe()), 'v119');
  t.is(await c.getRaw(lagging, 'compacted/0', '&stale'), 'v0');
  t.true(c.node(lagging).output.join('').includes('"event":"snapshot-installed"'), 'it was sent a snapshot, not the log');
  t.true(leaderLog().includes('"event":"snapshot-sent"'));
});

test.serial('without a quorum, writes and default reads get Consul\'s 500 "No cluster leader" after a bounded wait', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3 });
  c.startAll();
  const leader = await c.leader();
  t.true(await c.put(leader, 'kept', 'v'));
  const survivor = [0, 1, 2].find((i) => i !== leader) as number;
  await waitFor('the survivor to apply the write', async () => c.getRaw(survivor, 'kept', '&stale'));
  for (const i of [0, 1, 2]) if (i !== survivor) await c.kill(i);
  // Once it notices (an election timeout without its leader) it knows there is none. (A write sent
  // before that, to the dead leader, is answered as of unknown outcome: it may have been applied.)
  await waitFor('the survivor to lose its leader', async () => {
    const r = await c.http(survivor, '/v1/status/leader');
    return (await r.json()) === '' ? true : undefined;
  });
  const started = Date.now();
  const put = await c.http(survivor, '/v1/kv/kept', { method: 'PUT', body: 'changed' });
  t.is(put.status, 500);
  t.is((await put.text()).trim(), 'No cluster leader');
  t.true(Date.now() - started < 25_000, 'the wait for a leader is bounded');
  const get = await c.http(survivor, '/v1/kv/kept');
  t.is(get.status, 500);
  t.is(await c.getRaw(survivor, 'kept', '&stale'), 'v', 'a stale read still answers, and the write changed nothing');
});
