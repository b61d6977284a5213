// The chaos suite in npm test, through the same command users run (npm run chaos, here as node on
// cli.ts, in its own sandbox): one short run with every fault kind (SIGKILL of a server and of the
// leader, SIGSTOP, partitions of a server, of the leader and one-way, a clock jump, restores through
// the leader and through a follower, most in the middle of another fault) must pass the
// linearizability checker, show no server a mixture of states around a restore, and end with every
// server's state equal; and a run against servers with two planted defects (a follower answering
// default reads from its own state; a restore that drops part of the snapshot) must catch both. A
// restore amid another fault may rightly fail (a paused leader answers nothing), so both runs end with
// --min-restores 1: a restore that took hold, which the mixture check needs.
// Longer runs: npm run chaos.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunFigures } from './cli.js';
import { faultKinds } from './run.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

async function chaos(t: { teardown(f: () => Promise<void>): void; log(...l: string[]): void }, args: readonly string[]): Promise<{ code: number | null; output: string; figures: RunFigures[] }> {
  // Failure reports go to a directory of the test's own, not the checkout's .chaos-failures/.
  const reportDir = await mkdtemp(join(tmpdir(), 'conclave-chaos-reports-'));
  t.teardown(() => rm(reportDir, { recursive: true, force: true }));
  const child = spawn(process.execPath, ['--import=tsx', 'test/chaos/cli.ts', ...args, '--report-dir', reportDir, '--json'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (b: Buffer) => { output += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { output += b.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // Whatever happens to the test, the run's guard is told to stop; it removes its sandbox.
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 40_000))]);
    }
  });
  const code = await exited;
  const line = output.split('\n').find((l) => l.startsWith('chaos-json: '));
  t.log(output.split('\n').filter((l) => /^seed |FAILED|repeat:|lacks/.test(l)).join('\n'));
  return { code, output, figures: line === undefined ? [] : JSON.parse(line.slice('chaos-json: '.length)) as RunFigures[] };
}

test.serial('chaos: a short run with every fault kind is linearizable, never mixed, and ends with equal states', async (t) => {
  t.timeout(6 * 60_000);
  const r = await chaos(t, ['--runs', '1', '--seconds', '50', '--seed', '1', '--min-restores', '1']);
  const f = r.figures[0];
  t.truthy(f, `the run reported its figures:\n${r.output.slice(-3000)}`);
  if (f === undefined) return;
  t.is(f.verdict, 'ok', f.why);
  t.is(r.code, 0);
  for (const kind of faultKinds) t.true((f.faults[kind] ?? 0) >= 1, `fault ${kind} ran`);
  t.true(f.okOps > 100, `${f.okOps} operations succeeded`);
  t.true(f.restoresOk >= 1, `${f.restoresOk} restores answered 200`);
  // The faults took hold: the isolated leader was replaced, the jumped clock read off.
  t.true((f.effects['isolate-leader'] ?? 0) >= 1, 'an isolated leader was replaced by the majority');
  t.true((f.effects.clock ?? 0) >= 1, 'a jumped clock was seen off');
  t.regex(r.output, /chaos: 1 passed, 0 failed/);
});

test.serial('chaos: planted defects are caught: a stale default read, and a restore that drops part of the state', async (t) => {
  t.timeout(5 * 60_000);
  const r = await chaos(t, ['--runs', '1', '--seconds', '30', '--seed', '2', '--bug', 'stale-default-read,half-restore', '--strict-time', '--min-restores', '1']);
  const f = r.figures[0];
  t.is(f?.linearizable, 'violation', `the checker finds the stale read:\n${r.output.slice(-3000)}`);
  t.true((f?.mixtures ?? 0) > 0, 'a server is seen holding part of the snapshot and part of what came before');
  t.regex(r.output, /MIXED STATE .*zz-marker=absent/);
  t.is(r.code, 1, 'the command fails');
  t.regex(r.output, /repeat: npm run chaos -- --runs 1 --seed 2 --seconds 30 --bug stale-default-read,half-restore --strict-time --min-restores 1/);
  t.regex(r.output, /chaos: 0 passed, 1 failed/);
});
