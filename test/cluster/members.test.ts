// GET /v1/agent/members and `conclave members` on a real 3-process cluster: every server alive; a
// SIGKILLed one shows failed, asked through a follower (which asks the leader, the server that hears
// everyone); restarted, it is alive again. Waits are on conditions, bounded.
import test from 'ava';
import { ProcessCluster, waitFor } from '../support/process-cluster.js';

interface Member {
  readonly Name: string;
  readonly Status: number;
  readonly Port: number;
}

test.serial('members: all alive, a killed server failed, alive again after its restart', async (t) => {
  const c = await ProcessCluster.create(t, { size: 3, tickMs: 50, electionTimeoutTicks: 20 });
  c.startAll();
  const leader = await c.leader();
  const [f1, f2] = [0, 1, 2].filter((i) => i !== leader) as [number, number];
  const members = async (i: number): Promise<Map<string, number>> => {
    const r = await c.http(i, '/v1/agent/members');
    if (r.status !== 200) throw new Error(`members: ${r.status}`);
    return new Map(((await r.json()) as Member[]).map((m) => [m.Name, m.Status]));
  };
  const statuses = (m: Map<string, number>): string => [...m].sort().map(([n, s]) => `${n}=${s}`).join(' ');
  const all = await waitFor('every server alive', async () => {
    const m = await members(f1);
    return m.size === 3 && [...m.values()].every((s) => s === 1) ? m : undefined;
  }, 20_000);
  t.deepEqual([...all.keys()].sort(), ['node1', 'node2', 'node3']);

  await c.kill(f2);
  const victim = c.node(f2).name;
  const failed = await waitFor(`${victim} to show failed`, async () => {
    const m = await members(f1);
    return m.get(victim) === 4 ? m : undefined;
  }, 30_000);
  t.is(statuses(failed).split(' ').filter((x) => x.endsWith('=1')).length, 2, `the others stay alive: ${statuses(failed)}`);

  c.start(f2);
  const back = await waitFor(`${victim} to be alive again`, async () => {
    const m = await members(f1);
    return m.get(victim) === 1 ? m : undefined;
  }, 30_000);
  t.deepEqual([...back.values()], [1, 1, 1], statuses(back));
});
