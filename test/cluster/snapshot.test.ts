// GET and PUT /v1/snapshot against real agent processes: saves through the leader and a follower,
// restores checked by the product itself (every node's stale save decodes to the archive's state).
import test from 'ava';
import { ProcessCluster, waitFor } from '../support/process-cluster.js';
import { buildArchive, decodeArchive, hostileArchives, kvData } from '../support/snapshots.js';

async function save(c: ProcessCluster, i: number, query = ''): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const r = await c.http(i, `/v1/snapshot${query}`);
  return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
}

async function restore(c: ProcessCluster, i: number, archive: Uint8Array, query = ''): Promise<{ status: number; text: string }> {
  const r = await c.http(i, `/v1/snapshot${query}`, { method: 'PUT', body: new Uint8Array(archive), headers: { 'Content-Type': 'application/octet-stream' } });
  return { status: r.status, text: await r.text() };
}

/** Every running node's own state (a ?stale save), decoded. */
async function statesOf(c: ProcessCluster): Promise<Array<Record<string, string>>> {
  const out = [];
  for (const i of c.running()) {
    const s = await save(c, i, '?stale');
    if (s.status !== 200) throw new Error(`stale save from ${c.node(i).name}: ${s.status} ${s.body.toString()}`);
    out.push(kvData(await decodeArchive(s.body)));
  }
  return out;
}

test.serial('3 nodes: save through the leader and a follower, restore through a follower; every node ends with the archive state', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3 });
  c.startAll();
  const leader = await c.leader();
  const follower = [0, 1, 2].find((i) => i !== leader) as number;
  for (let i = 0; i < 20; i++) t.true(await c.put(follower, `app/k${i}`, `v${i}`));

  const fromLeader = await save(c, leader);
  t.is(fromLeader.status, 200);
  t.is(fromLeader.headers.get('content-type'), 'application/x-gzip');
  t.is(fromLeader.headers.get('x-consul-knownleader'), 'true');
  t.is(fromLeader.headers.get('x-consul-lastcontact'), '0');
  const saved = await decodeArchive(fromLeader.body);
  t.is(Number(fromLeader.headers.get('x-consul-index')), saved.meta.Index, 'X-Consul-Index is the snapshot index');
  t.is(saved.kv.size, 20);
  t.is(saved.meta.Producer, 'conclave');

  const fromFollower = await save(c, follower);
  t.is(fromFollower.status, 200);
  t.deepEqual(kvData(await decodeArchive(fromFollower.body)), kvData(saved), 'a save through a follower is the leader state');

  // Change the state, then restore the archive through a follower.
  for (let i = 0; i < 5; i++) t.true(await c.put(leader, `later/k${i}`, 'after the save'));
  t.is((await c.http(leader, '/v1/kv/app/k3', { method: 'DELETE' })).status, 200);
  const before = Number((await c.http(leader, '/v1/kv/later/k0')).headers.get('x-consul-index'));
  const r = await restore(c, follower, fromLeader.body);
  t.is(r.status, 200, r.text);
  t.is(r.text, '', 'Consul answers a restore with an empty body');

  // The restored state is what the leader serves once the restore answered.
  t.is(await c.getRaw(leader, 'app/k3'), 'v3');
  t.is(await c.getRaw(leader, 'later/k0'), undefined);
  const after = await c.http(leader, '/v1/kv/app/k3');
  t.true(Number(after.headers.get('x-consul-index')) > before, 'X-Consul-Index never goes backwards after a restore');
  // Every node converges to exactly the archive's KV data.
  await waitFor('every node to hold the restored state', async () => {
    const states = await statesOf(c);
    return states.every((s) => JSON.stringify(s) === JSON.stringify(kvData(saved))) ? true : undefined;
  }, 30_000);
  for (const i of [0, 1, 2]) {
    const stale = await c.http(i, '/v1/kv/app/k3?stale');
    t.true(Number(stale.headers.get('x-consul-index')) > before, `${c.node(i).name}: index at least the restore's`);
  }
  // The followers built their database as the snapshot arrived and moved it in at install; the leader
  // built its own at install.
  for (const i of [0, 1, 2]) {
    const log = c.node(i).output.join('');
    t.true(log.includes('"event":"snapshot-installed"'), `${c.node(i).name} installed the restore`);
    t.is(log.includes('"event":"snapshot-built-ahead"'), i !== leader, `${c.node(i).name}: built ahead only on a follower`);
    t.false(log.includes('"event":"snapshot-build-ahead-failed"'), `${c.node(i).name}: no failed build`);
  }
  // Writes go on after a restore.
  t.true(await c.put(follower, 'after/restore', 'yes'));
  t.is(await c.getRaw(leader, 'after/restore'), 'yes');
});

test.serial('a bad archive is refused with 400 and a reason, and nothing changes', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3 });
  c.startAll();
  const leader = await c.leader();
  const follower = [0, 1, 2].find((i) => i !== leader) as number;
  t.true(await c.put(leader, 'keep', 'me'));
  const good = await buildArchive({ a: '1' }, 100);
  await c.catalogSettled(leader);
  const before = await save(c, leader, '?stale');
  const cases = await hostileArchives();
  for (const [n, [what, body, reason]] of cases.entries()) {
    // Every other one through a follower, which forwards the upload to the leader.
    const i = n % 2 === 0 ? leader : follower;
    const r = await restore(c, i, body);
    t.is(r.status, 400, `${what} via ${c.node(i).name}: ${r.text}`);
    t.regex(r.text, /^failed to read snapshot file: /, what);
    t.regex(r.text, reason, what);
  }
  const after = await save(c, leader, '?stale');
  t.deepEqual(kvData(await decodeArchive(after.body)), kvData(await decodeArchive(before.body)), 'nothing changed');
  t.is(await decodeArchive(after.body).then((d) => d.meta.Index), await decodeArchive(before.body).then((d) => d.meta.Index), 'not even the index moved');
  t.is(await c.getRaw(leader, 'keep'), 'me', 'nothing changed');
  const stale = await restore(c, leader, good, '?stale');
  t.is(stale.status, 400);
  t.is(stale.text, 'stale not allowed for restore');
  t.is(await c.getRaw(follower, 'keep'), 'me');
  // The servers still take writes after refusing the archives.
  t.true(await c.put(follower, 'still', 'writable'));
});

test.serial('concurrent saves under writes are each whole and point-in-time; a blocking query wakes on a restore', async (t) => {
  // A tiny snapshot threshold: the log is compacted to Raft snapshots while the saves run.
  const c = await ProcessCluster.create(t, { size: 3, snapshotThreshold: 20, trailingLogs: 5 });
  c.startAll();
  const leader = await c.leader();
  const follower = [0, 1, 2].find((i) => i !== leader) as number;
  let writing = true;
  let written = 0;
  const writer = (async () => {
    while (writing && written < 2000) if (await c.put(leader, `w/${String(written).padStart(5, '0')}`, 'x')) written++;
  })();
  const saves = await Promise.all([leader, follower, leader, follower, leader].map((i) => save(c, i)));
  writing = false;
  await writer;
  for (const s of saves) {
    t.is(s.status, 200);
    const d = await decodeArchive(s.body);
    // Point in time: the writer writes keys in order, so a save holds exactly w/00000 .. w/(n-1).
    const keys = [...d.kv.keys()].filter((k) => k.startsWith('w/')).sort();
    t.deepEqual(keys, keys.map((_, j) => `w/${String(j).padStart(5, '0')}`), 'a prefix of the writes, no gap');
  }
  t.true(written > 0);
  // The server still saves and serves after those (no snapshot it needs was deleted by another save).
  t.is((await save(c, follower)).status, 200);

  // A blocking query on a key wakes when a restore replaces the state.
  const before = await c.http(leader, '/v1/kv/w/00000');
  const index = Number(before.headers.get('x-consul-index'));
  const blocking = c.http(follower, `/v1/kv/w/00000?index=${index}&wait=60s`);
  const archive = await buildArchive({ 'w/00000': 'restored' }, 10);
  const started = Date.now();
  t.is((await restore(c, leader, archive)).status, 200);
  const woke = await blocking;
  t.true(Date.now() - started < 30_000, 'the blocking query answered long before its 60 s wait');
  t.true(Number(woke.headers.get('x-consul-index')) > index);
  t.is(JSON.parse(await woke.text())[0].Value, Buffer.from('restored').toString('base64'));
});

test.serial('a save that fails midway (its leader killed) aborts the connection: no client takes a cut-short archive for a whole one', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3 });
  c.startAll();
  const leader = await c.leader();
  const follower = [0, 1, 2].find((i) => i !== leader) as number;
  // About 15 MB of incompressible values, so the stream is still running when the leader dies.
  const entries: Record<string, Uint8Array> = {};
  const { randomBytes } = await import('node:crypto');
  for (let i = 0; i < 15_000; i++) entries[`big/${i}`] = randomBytes(1000);
  t.is((await restore(c, leader, await buildArchive(entries, 100))).status, 200);
  const r = await c.http(follower, '/v1/snapshot');
  t.is(r.status, 200);
  const reader = (r.body as ReadableStream<Uint8Array>).getReader();
  let received = (await reader.read()).value?.length ?? 0;
  await c.kill(leader);
  const outcome = await (async () => {
    for (;;) {
      const next = await reader.read();
      if (next.done) return 'ended';
      received += next.value.length;
    }
  })().catch((e: Error) => `failed: ${e.message}`);
  t.regex(outcome, /^failed/, `the body must fail, not end (received ${received} bytes)`);
  t.true(received < 15_000_000);
});
