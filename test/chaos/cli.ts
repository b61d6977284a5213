// npm run chaos -- [--runs N] [--seconds S] [--seed X] [--workers W] [--bug stale-default-read]
// Runs N chaos runs (seeds X, X+1, ...) of S seconds each, one after another, and ends with
// "chaos: <passed> passed, <failed> failed". Every failure prints its seed, why, and the command that
// repeats its fault schedule; its history timeline is in .chaos-failures/.
import { mkdir } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { repeatCommand, runChaos } from './run.js';

const usage = 'usage: npm run chaos -- [--runs N] [--seconds S] [--seed X] [--workers W] [--bug stale-default-read]';

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        runs: { type: 'string', default: '1' }, seconds: { type: 'string', default: '60' }, seed: { type: 'string' },
        workers: { type: 'string', default: '5' }, bug: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (e) {
    console.error(`chaos: ${(e as Error).message}\n${usage}`);
    return 2;
  }
  if (args.help === true) {
    console.log(usage);
    return 0;
  }
  const runs = Number(args.runs);
  const seconds = Number(args.seconds);
  const workers = Number(args.workers);
  const first = args.seed === undefined ? Date.now() % 1_000_000 : Number(args.seed);
  if (![runs, seconds, workers, first].every((n) => Number.isSafeInteger(n) && n > 0) || (args.bug !== undefined && args.bug !== 'stale-default-read')) {
    console.error(`chaos: --runs, --seconds, --workers and --seed are positive integers; --bug is stale-default-read\n${usage}`);
    return 2;
  }
  const reportDir = '.chaos-failures';
  await mkdir(reportDir, { recursive: true });
  let passed = 0;
  let failed = 0;
  for (let r = 0; r < runs; r++) {
    const seed = first + r;
    const cleanups: Array<() => Promise<void>> = [];
    const options = { seed, seconds, workers, reportDir, ...(args.bug === undefined ? {} : { plantedBug: 'stale-default-read' as const }), log: (l: string) => console.log(`  [seed ${seed}] ${l}`) };
    try {
      const result = await runChaos({ teardown: (f) => cleanups.push(f) }, options);
      const line = `seed ${seed}: ${result.verdict}; ${result.ops} ops (${result.okOps} ok, ${result.indeterminate} indeterminate), faults ${JSON.stringify(result.faults)}, ${result.restores} restores`;
      if (result.verdict === 'ok') {
        passed++;
        console.log(line);
      } else {
        failed++;
        console.log(`${line}\n  FAILED: ${result.why}\n  repeat: ${repeatCommand(options)}`);
      }
    } catch (error) {
      failed++;
      console.log(`seed ${seed}: FAILED to run: ${(error as Error).message}\n  repeat: ${repeatCommand(options)}`);
    } finally {
      for (const f of cleanups.reverse()) await f().catch(() => undefined);
    }
  }
  console.log(`chaos: ${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

process.exitCode = await main();
