// A write forwarded by a follower to a leader that then stops answering (SIGSTOP: a hung machine) is
// answered once another leader has been elected and the old one has had its grace, with an unknown
// outcome that names the replacement: not when the Forward stream's keepalive finds the old leader
// dead, 10 to 20 s later. Real agent processes on loopback.

import test from 'ava';
import { performance } from 'node:perf_hooks';
import { ProcessCluster } from '../support/process-cluster.js';
import { leaderSeenBy, waitConverged } from '../support/snapshot-load.js';

test('the leader SIGSTOPped holding a write forwarded by a follower: the follower answers once another leader is elected', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3, tickMs: 50, electionTimeoutTicks: 20 });
  c.startAll();
  const leader = await c.leader(90_000);
  const follower = [0, 1, 2].find((i) => i !== leader) as number;
  const oldLeader = `127.0.0.1:${c.node(leader).serverPort}`;
  // Through the follower, so its Forward stream to the leader is open and accepted before the pause.
  t.true(await c.put(follower, 'replaced/before', 'acknowledged'));
  await waitConverged(c, 60_000);
  c.pause(leader);
  try {
    const sent = performance.now();
    const r = await fetch(`http://127.0.0.1:${c.node(follower).httpPort}/v1/kv/replaced/during`, {
      method: 'PUT',
      body: 'maybe',
      signal: AbortSignal.timeout(60_000),
    });
    const text = await r.text();
    const ms = Math.round(performance.now() - sent);
    // The follower still believed in the paused leader and sent it the write, so its outcome is
    // unknown. The text says who replaced the leader: the watch answered, not the stream's keepalive.
    t.is(r.status, 500, text);
    t.regex(text, new RegExp(`the leader at ${oldLeader.replace(/\./g, '\\.')} was replaced \\(.* leads term \\d+\\)`), `answered after ${ms} ms: ${text}`);
    t.regex(text, /may or may not have been applied/);
    const now = await leaderSeenBy(c, follower);
    t.true(now !== '' && now !== oldLeader, `a new leader was elected (the follower sees ${JSON.stringify(now)})`);
    t.log(`the follower answered ${ms} ms after the write was sent`);
    // A write sent now goes to the new leader and is acknowledged.
    t.true(await c.put(follower, 'replaced/after', 'acknowledged'));
  } finally {
    c.resume(leader);
  }
  const state = await waitConverged(c, 60_000);
  t.is(state['replaced/after'], '0:acknowledged', 'every node holds the write made after the replacement');
});
