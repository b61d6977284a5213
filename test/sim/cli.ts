// npm run sim -- --seeds N [--from S] [--bug NAME] [--workers K] [--seconds T]
// npm run sim -- --seed S [--bug NAME] [--trace-lines N]      replay one seed with its event trace
import { parseArgs } from 'node:util';
import { simBugs as plantedBugs, type SimBug as PlantedBug } from './world.js';
import { reproduceCommand, runSeeds } from './runner.js';
import { describe, runSeed } from './swarm.js';

const usage = `usage:
  npm run sim -- --seeds N [--from S] [--bug NAME] [--workers K] [--seconds T]
      run seeds S..S+N-1 (S defaults to 1) and end with "sim: <passed> passed, <failed> failed"
  npm run sim -- --seed S [--bug NAME] [--trace-lines N]
      replay one seed deterministically, printing its options, its event trace and its verdict
planted bugs (--bug): ${plantedBugs.join(', ')}`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        seeds: { type: 'string' },
        from: { type: 'string' },
        seed: { type: 'string' },
        bug: { type: 'string' },
        workers: { type: 'string' },
        seconds: { type: 'string' },
        'trace-lines': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (e) {
    console.error(`sim: ${(e as Error).message}\n${usage}`);
    return 2;
  }
  if (args.help === true) {
    console.log(usage);
    return 0;
  }
  const bug = args.bug as PlantedBug | undefined;
  if (bug !== undefined && !plantedBugs.includes(bug)) {
    console.error(`sim: unknown planted bug "${bug}"; known: ${plantedBugs.join(', ')}`);
    return 2;
  }
  const int = (name: string, v: string | undefined, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got "${v}"`);
    return n;
  };
  const seed = (name: string, v: string): bigint => {
    if (!/^\d+$/.test(v)) throw new Error(`--${name} must be a non-negative integer, got "${v}"`);
    return BigInt(v);
  };
  try {
    if (args.seed !== undefined) {
      const s = seed('seed', args.seed);
      const lines = int('trace-lines', args['trace-lines'], 0) ?? 200;
      const r = runSeed(s, { trace: true, ...(bug !== undefined ? { bug } : {}) });
      console.log(`seed ${s}: ${describe(s, bug !== undefined ? { bug } : {})}`);
      const shown = r.trace.slice(-lines);
      if (shown.length < r.trace.length) console.log(`... (${r.trace.length - shown.length} earlier trace lines)`);
      for (const l of shown) console.log(l);
      console.log(r.ok ? `seed ${s}: passed after ${r.ticks} ticks` : `seed ${s}: FAILED after ${r.ticks} ticks\n${r.failure}\n${r.stack ?? ''}`);
      return r.ok ? 0 : 1;
    }
    const count = int('seeds', args.seeds, 1);
    if (count === undefined) {
      console.error(`sim: say how many seeds (--seeds N) or which one to replay (--seed S)\n${usage}`);
      return 2;
    }
    const from = args.from === undefined ? 1n : seed('from', args.from);
    const workers = int('workers', args.workers, 1);
    const seconds = int('seconds', args.seconds, 1);
    console.log(`sim: seeds ${from}..${from + BigInt(count) - 1n}${bug ? ` with planted bug ${bug}` : ''}`);
    const r = await runSeeds({
      from,
      count,
      ...(bug !== undefined ? { bug } : {}),
      ...(workers !== undefined ? { workers } : {}),
      ...(seconds !== undefined ? { seconds } : {}),
      onFailure: (s, failure) => console.log(`FAIL seed ${s}: ${failure}\n  reproduce: ${reproduceCommand(s, bug)}`),
    });
    const rate = r.ran / Math.max(r.seconds, 0.001);
    console.log(`sim: ran ${r.ran} seeds in ${r.seconds.toFixed(1)} s (${rate.toFixed(0)} seeds/s, ` +
      `${(r.ticks / Math.max(r.seconds, 0.001) / 1000).toFixed(0)}k ticks/s)`);
    console.log(`sim: ${r.passed} passed, ${r.failed} failed`);
    return r.failed > 0 ? 1 : 0;
  } catch (e) {
    console.error(`sim: ${(e as Error).message}`);
    return 2;
  }
}

process.exitCode = await main();
