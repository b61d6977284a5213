// npm run chaos -- [--runs N] [--seconds S] [--seed X] [--workers W] [--bug stale-default-read,half-restore] [--strict-time] [--min-restores N] [--report-dir D] [--json]
// Runs N chaos runs (seeds X, X+1, ...) of S seconds each, one after another, and ends with
// "chaos: <passed> passed, <failed> failed". Every failure prints its seed, why, and the command that
// repeats its fault schedule; its history timeline is in .chaos-failures/ (or --report-dir). --json
// adds one last line, "chaos-json: {...}", with every run's figures (the test suite reads it). A run
// goes on past S seconds until every fault kind has run once, unless --strict-time; with
// --min-restores N it then restores through the leader, with no other fault and at most 5 more times,
// until N restores have answered 200.
//
// Needs root, unshare, ip, iptables and libfaketime: the runs live in a network namespace of their own
// (sandbox.ts), which this process makes, watches and removes, whatever happens to the runs.
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { PlantedBug } from '../../src/base/planted.js';
import { faultKinds, plantedBugNames, repeatCommand, runChaos, type ChaosResult, type FaultKind } from './run.js';
import { currentSandbox, missingForChaos, runInSandbox } from './sandbox.js';

const usage = 'usage: npm run chaos -- [--runs N] [--seconds S] [--seed X] [--workers W] [--bug stale-default-read,half-restore] [--strict-time] [--min-restores N] [--report-dir D] [--json]';

export interface RunFigures {
  readonly seed: number;
  readonly verdict: ChaosResult['verdict'] | 'error';
  /** The linearizability checker's own verdict ('' when the run did not get that far). */
  readonly linearizable: ChaosResult['check']['verdict'] | '';
  /** Views that showed a mixture of states around a restore. */
  readonly mixtures: number;
  readonly ops: number;
  readonly okOps: number;
  readonly indeterminate: number;
  readonly faults: Partial<Record<FaultKind, number>>;
  readonly restores: number;
  readonly restoresOk: number;
  readonly longestLeaderLossMs: number;
  readonly effects: Partial<ChaosResult['effects']>;
  readonly why: string;
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        runs: { type: 'string', default: '1' }, seconds: { type: 'string', default: '60' }, seed: { type: 'string' },
        workers: { type: 'string', default: '5' }, bug: { type: 'string' }, json: { type: 'boolean' }, 'strict-time': { type: 'boolean' }, 'min-restores': { type: 'string', default: '0' }, 'report-dir': { type: 'string', default: '.chaos-failures' }, help: { type: 'boolean', short: 'h' },
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
  const minRestores = Number(args['min-restores']);
  const bugs = args.bug === undefined ? [] : args.bug.split(',');
  if (![runs, seconds, workers, first].every((n) => Number.isSafeInteger(n) && n > 0) || !(Number.isSafeInteger(minRestores) && minRestores >= 0) || !bugs.every((b) => (plantedBugNames as readonly string[]).includes(b))) {
    console.error(`chaos: --runs, --seconds, --workers and --seed are positive integers, --min-restores a whole number; --bug is a comma-separated list of ${plantedBugNames.join(', ')}\n${usage}`);
    return 2;
  }
  const sandbox = currentSandbox();
  if (sandbox === undefined) {
    const missing = missingForChaos();
    if (missing.length > 0) {
      console.error(`chaos: this machine lacks ${missing.join('; ')}`);
      return 2;
    }
    // Run again inside a sandbox, with the seed fixed so that a retry of this command repeats it.
    const rest = process.argv.slice(2).filter((a, i, all) => a !== '--seed' && all[i - 1] !== '--seed' && !a.startsWith('--seed='));
    return runInSandbox(fileURLToPath(import.meta.url), [...rest, '--seed', String(first)]);
  }

  let stopping = false;
  const stop = (): void => {
    if (!stopping) console.log('chaos: stopping after the current run (signal)');
    stopping = true;
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  const reportDir = args['report-dir'];
  await mkdir(reportDir, { recursive: true });
  const figures: RunFigures[] = [];
  for (let r = 0; r < runs && !stopping; r++) {
    const seed = first + r;
    const cleanups: Array<() => Promise<void>> = [];
    const options = { seed, seconds, workers, reportDir, sandbox, plantedBugs: bugs as PlantedBug[], strictTime: args['strict-time'] === true, minRestores, log: (l: string) => console.log(`  [seed ${seed}] ${l}`) };
    try {
      const result = await runChaos({ teardown: (f) => cleanups.push(f) }, options);
      figures.push({
        seed, verdict: result.verdict, linearizable: result.check.verdict, mixtures: result.mixtures.length, ops: result.ops, okOps: result.okOps, indeterminate: result.indeterminate, faults: result.faults,
        restores: result.restores, restoresOk: result.restoresOk, longestLeaderLossMs: result.longestLeaderLossMs, effects: result.effects, why: result.why,
      });
      const line = `seed ${seed}: ${result.verdict}; ${result.ops} ops (${result.okOps} ok, ${result.indeterminate} indeterminate), faults ${JSON.stringify(result.faults)}, ${result.restores} restores (${result.restoresOk} answered 200), longest unavailability after a leader loss ${result.longestLeaderLossMs} ms`;
      if (result.verdict === 'ok') console.log(line);
      else console.log(`${line}\n  FAILED: ${result.why}\n  repeat: ${repeatCommand(options)}`);
    } catch (error) {
      figures.push({ seed, verdict: 'error', linearizable: '', mixtures: 0, ops: 0, okOps: 0, indeterminate: 0, faults: {}, restores: 0, restoresOk: 0, longestLeaderLossMs: 0, effects: {}, why: (error as Error).message });
      console.log(`seed ${seed}: FAILED to run: ${(error as Error).message}\n  repeat: ${repeatCommand(options)}`);
    } finally {
      for (const f of cleanups.reverse()) await f().catch(() => undefined);
    }
  }
  const passed = figures.filter((f) => f.verdict === 'ok').length;
  const failed = figures.length - passed;
  const sum = (f: (x: RunFigures) => number): number => figures.reduce((a, x) => a + f(x), 0);
  const faultTotals = Object.fromEntries(faultKinds.map((k) => [k, sum((x) => x.faults[k] ?? 0)]));
  if (figures.length > 1) {
    console.log(`chaos: in all ${sum((x) => x.ops)} ops (${sum((x) => x.okOps)} ok, ${sum((x) => x.indeterminate)} indeterminate), faults ${JSON.stringify(faultTotals)}, ${sum((x) => x.restores)} restores (${sum((x) => x.restoresOk)} answered 200), longest unavailability after a leader loss ${Math.max(0, ...figures.map((x) => x.longestLeaderLossMs))} ms`);
  }
  if (args.json === true) console.log(`chaos-json: ${JSON.stringify(figures)}`);
  console.log(`chaos: ${passed} passed, ${failed} failed`);
  return failed === 0 && figures.length === runs ? 0 : 1;
}

process.exitCode = await main();
