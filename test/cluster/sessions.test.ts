// Sessions and locks on a real 3-node cluster of agent processes on loopback (issue 10): a TTL session
// renewed through a follower lives past twice its TTL; left alone it is invalidated by the leader after
// 2 x TTL, its lock released, and the key stays under lock-delay; a leader SIGKILL neither kills live
// sessions nor lets dead ones live on; a restore brings back the snapshot's sessions and locks, drops a
// session created after it, and re-arms the TTL timers from the restored state.
//
// session_ttl_min is 1s (Consul's key) so TTLs of seconds are allowed. Every wait is on a condition,
// bounded in time; elapsed-time checks only bound from below what the design guarantees.
import test from 'ava';
import { ProcessCluster, sleep, waitFor } from '../support/process-cluster.js';

interface SessionJson {
  readonly ID: string;
  readonly TTL: string;
}
interface EntryJson {
  readonly LockIndex: number;
  readonly Session?: string;
}

async function json<T>(r: Response, what: string): Promise<T> {
  if (r.status !== 200) throw new Error(`${what}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

function helpers(c: ProcessCluster) {
  return {
    create: async (i: number, body: unknown): Promise<string> =>
      (await json<{ ID: string }>(await c.http(i, '/v1/session/create', { method: 'PUT', body: JSON.stringify(body) }), 'create')).ID,
    info: async (i: number, id: string): Promise<SessionJson[]> => json<SessionJson[]>(await c.http(i, `/v1/session/info/${id}`), 'info'),
    renew: async (i: number, id: string): Promise<number> => (await c.http(i, `/v1/session/renew/${id}`, { method: 'PUT' })).status,
    acquire: async (i: number, key: string, id: string): Promise<boolean> =>
      json<boolean>(await c.http(i, `/v1/kv/${key}?acquire=${id}`, { method: 'PUT', body: 'holder' }), 'acquire'),
    entry: async (i: number, key: string): Promise<EntryJson | undefined> => {
      const r = await c.http(i, `/v1/kv/${key}`);
      return r.status === 404 ? undefined : (await json<EntryJson[]>(r, 'get'))[0];
    },
  };
}

test.serial('a TTL session lives while renewed through a follower, then the leader invalidates it after 2 x TTL; its key keeps lock-delay', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3, tickMs: 50, electionTimeoutTicks: 20, sessionTtlMin: '1s' });
  c.startAll();
  const leader = await c.leader();
  const [f1, f2] = [0, 1, 2].filter((i) => i !== leader) as [number, number];
  const h = helpers(c);
  // A 10 s lock-delay: room for the calls between seeing the invalidation and trying the key.
  const id = await h.create(f1, { Name: 'lock', TTL: '2s', LockDelay: '10s' });
  t.true(await h.acquire(f2, 'svc/leader', id), 'a follower forwards the acquire');
  t.like(await h.entry(leader, 'svc/leader'), { LockIndex: 1, Session: id });

  // Renewed every 500 ms through a follower for 6 s: three times its 2 x TTL.
  let lastRenew = 0;
  for (const end = performance.now() + 6_000; performance.now() < end;) {
    t.is(await h.renew(f2, id), 200);
    lastRenew = performance.now();
    await sleep(500);
  }
  t.is((await h.info(leader, id)).length, 1, 'renewed, it lives on');

  const gone = await waitFor('the unrenewed session to be invalidated', async () => ((await h.info(leader, id)).length === 0 ? performance.now() : undefined), 20_000, () => c.describe());
  t.true(gone - lastRenew >= 3_000, `invalidated ${Math.round(gone - lastRenew)} ms after the last renew (the leader waits 2 x TTL = 4 s)`);
  t.like(await h.entry(f1, 'svc/leader'), { LockIndex: 1 }, 'the lock was released, not deleted (behaviour release)');
  t.is((await h.entry(leader, 'svc/leader'))?.Session, undefined);
  t.is(await h.renew(f1, id), 404, 'a renew of the dead session is Consul\'s 404');

  const other = await h.create(f2, { Name: 'next' });
  t.false(await h.acquire(f1, 'svc/leader', other), 'the key is under lock-delay');
  const acquired = await waitFor('the lock-delay to pass', async () => ((await h.acquire(f1, 'svc/leader', other)) ? performance.now() : undefined), 25_000);
  t.true(acquired - gone >= 8_000, `re-acquired ${Math.round(acquired - gone)} ms after the invalidation was seen (lock-delay 10 s)`);
  t.like(await h.entry(leader, 'svc/leader'), { LockIndex: 2, Session: other });
});

test.serial('a leader SIGKILL keeps live sessions and still enforces TTLs; a restore brings back the snapshot\'s sessions and re-arms their timers', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3, tickMs: 50, electionTimeoutTicks: 20, sessionTtlMin: '1s' });
  c.startAll();
  const h = helpers(c);
  const first = await c.leader();
  const survivor = [0, 1, 2].find((i) => i !== first) as number;
  const ttl = await h.create(survivor, { Name: 'ttl', TTL: '3s' });
  const plain = await h.create(survivor, { Name: 'no-ttl' });
  t.true(await h.acquire(survivor, 'locks/a', ttl));
  t.true(await h.acquire(survivor, 'locks/b', plain));
  // Created just before the kill and never renewed: the new leader must arm its timer from the state.
  const orphan = await h.create(survivor, { Name: 'orphan', TTL: '3s' });

  await c.kill(first);
  const second = await c.leader();
  t.not(second, first);
  // The new leader armed fresh timers: renewing keeps the session past its old deadline.
  for (let k = 0; k < 8; k++) {
    t.is(await h.renew(survivor, ttl), 200);
    await sleep(500);
  }
  t.is((await h.info(second, ttl)).length, 1, 'the new leader did not kill a renewed session');
  await waitFor('the new leader to invalidate the orphaned session', async () => ((await h.info(second, orphan)).length === 0 ? true : undefined), 25_000, () => c.describe());
  await waitFor('the new leader to invalidate the unrenewed session', async () => ((await h.info(second, ttl)).length === 0 ? true : undefined), 25_000, () => c.describe());
  t.is((await h.entry(second, 'locks/a'))?.Session, undefined, 'its lock is released');
  t.is((await h.info(second, plain)).length, 1, 'a session without TTL lives on');
  c.start(first);
  await c.leader();

  // Restore: the snapshot holds `plain` (holding locks/b) and `kept` (TTL 8 s, holding locks/c). `kept`
  // is last renewed 8 s before the restore: a timer left from before would invalidate it about 8 s
  // after the restore, one armed from the restored state 2 x TTL = 16 s after it.
  const kept = await h.create(second, { Name: 'kept', TTL: '8s', Behavior: 'delete' });
  t.true(await h.acquire(second, 'locks/c', kept));
  const save = await c.http(second, '/v1/snapshot');
  t.is(save.status, 200);
  const archive = Buffer.from(await save.arrayBuffer());
  const after = await h.create(second, { Name: 'after-snapshot', TTL: '60s' });
  t.true(await h.acquire(second, 'locks/d', after));
  t.is(await h.renew(survivor, kept), 200);
  await sleep(8_000);
  const restore = await c.http(survivor, '/v1/snapshot', { method: 'PUT', body: archive });
  t.is(restore.status, 200, await restore.text());
  const restoredAt = performance.now();
  const leaderNow = await c.leader();
  const expected = JSON.stringify([kept, plain].sort());
  t.is(JSON.stringify((await json<SessionJson[]>(await c.http(leaderNow, '/v1/session/list'), 'list')).map((s) => s.ID).sort()), expected,
    'once the restore is answered, the leader serves the snapshot\'s sessions, not the later one');
  for (const i of c.running()) {
    // Followers install the restored state through Raft, each at its own pace.
    await waitFor(`node ${i} to serve the restored sessions`, async () => {
      const ids = (await json<SessionJson[]>(await c.http(i, '/v1/session/list?stale'), 'list')).map((s) => s.ID).sort();
      return JSON.stringify(ids) === expected ? true : undefined;
    }, 20_000, () => c.describe());
  }
  t.like(await h.entry(leaderNow, 'locks/b'), { Session: plain });
  t.like(await h.entry(leaderNow, 'locks/c'), { Session: kept });
  t.is((await h.entry(leaderNow, 'locks/d'))?.Session, undefined, 'the lock taken after the snapshot is not held');
  // `kept` is not renewed again: the restored state's timers expire it, and its key goes with it (delete).
  const gone = await waitFor('the restored TTL session to be invalidated', async () => ((await h.info(leaderNow, kept)).length === 0 ? performance.now() : undefined), 40_000, () => c.describe());
  t.true(gone - restoredAt >= 12_000, `invalidated ${Math.round(gone - restoredAt)} ms after the restore (timers re-armed at 2 x 8 s)`);
  t.is(await h.entry(leaderNow, 'locks/c'), undefined);
  t.like(await h.entry(leaderNow, 'locks/b'), { Session: plain }, 'the session without TTL still holds its lock');
});
