// The simulator under `npm test`: a fixed block of seeds every time, then fresh seeds for the rest
// of the time budget, so every CI run also explores seeds no run has tried. Any failure names the
// one-line command that replays it exactly. Long runs: `npm run sim -- --seeds 100000`.
import test from 'ava';
import { reproduceCommand, runSeeds } from './runner.js';
import { runSeed } from './swarm.js';

const fixedSeeds = 1000;
const budgetSeconds = Number(process.env.SIM_SECONDS ?? 70);

function report(failures: ReadonlyArray<{ seed: bigint; failure: string }>): string {
  return failures
    .slice(0, 10)
    .map((f) => `seed ${f.seed}: ${f.failure.split('\n')[0]}\n  reproduce: ${reproduceCommand(f.seed)}`)
    .join('\n');
}

test.serial('swarm: 1,000 fixed seeds keep every invariant and converge after healing', async (t) => {
  const r = await runSeeds({ from: 1n, count: fixedSeeds });
  t.log(`${r.ran} seeds in ${r.seconds.toFixed(1)} s (${(r.ran / r.seconds).toFixed(0)} seeds/s)`);
  t.is(r.ran, fixedSeeds);
  t.is(r.failed, 0, report(r.failures));
});

test.serial('swarm: fresh seeds for the rest of the time budget', async (t) => {
  // A different range every run; the seeds are printed, so a failure is replayable all the same.
  const from = BigInt(Date.now()) * 1000n;
  const r = await runSeeds({ from, count: 1_000_000, seconds: Math.max(5, budgetSeconds - 30) });
  t.log(`seeds ${from}..${from + BigInt(r.ran) - 1n}: ${r.ran} in ${r.seconds.toFixed(1)} s`);
  t.true(r.ran > 0);
  t.is(r.failed, 0, report(r.failures));
});

test('replay: one seed gives the same trace and verdict every time', (t) => {
  for (const seed of [7n, 42n]) {
    const a = runSeed(seed, { trace: true });
    const b = runSeed(seed, { trace: true });
    t.true(a.trace.length > 10, 'the trace records events');
    t.deepEqual(a.trace, b.trace);
    t.is(a.ok, b.ok);
    t.is(a.ticks, b.ticks);
  }
  // And a failing run replays its failure exactly.
  const bad1 = runSeed(2n, { bug: 'vote-ignores-log', trace: true });
  const bad2 = runSeed(2n, { bug: 'vote-ignores-log', trace: true });
  t.false(bad1.ok);
  t.is(bad1.failure, bad2.failure);
  t.deepEqual(bad1.trace, bad2.trace);
});
