// The chaos suite in npm test: one short run with every fault kind (SIGKILL of a server and of the
// leader, SIGSTOP, a restore) must pass the linearizability checker and end with every server's state
// equal; and the same run against a server with a planted defect (a follower answering default reads
// from its own state) must be caught. Longer runs: npm run chaos.
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repeatCommand, runChaos } from './run.js';

test.serial('chaos: a short run with every fault kind is linearizable and ends with equal states', async (t) => {
  t.timeout(5 * 60_000);
  const reportDir = await mkdtemp(join(tmpdir(), 'conclave-chaos-'));
  t.teardown(() => rm(reportDir, { recursive: true, force: true }));
  const options = { seed: 1, seconds: 30, reportDir, log: (l: string) => t.log(l) };
  const r = await runChaos(t, options);
  t.log(`${r.ops} ops (${r.okOps} ok, ${r.indeterminate} indeterminate), faults ${JSON.stringify(r.faults)}, ${r.restores} restores`);
  t.is(r.verdict, 'ok', `${r.why}\nrepeat: ${repeatCommand(options)}`);
  for (const [kind, count] of Object.entries(r.faults)) t.true(count >= 1, `fault ${kind} ran`);
  t.true(r.okOps > 100, `${r.okOps} operations succeeded`);
});

test.serial('chaos: the planted stale-default-read defect is caught', async (t) => {
  t.timeout(5 * 60_000);
  const reportDir = await mkdtemp(join(tmpdir(), 'conclave-chaos-'));
  t.teardown(() => rm(reportDir, { recursive: true, force: true }));
  const r = await runChaos(t, { seed: 1, seconds: 30, reportDir, plantedBug: 'stale-default-read', log: (l: string) => t.log(l) });
  t.log(r.why);
  t.is(r.verdict, 'violation', 'the checker finds the stale read');
});
