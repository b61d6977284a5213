// Runs many seeds across worker processes (one per core by default), in batches so a time budget
// can stop the run between batches. Seeds are bigint strings so any 64-bit seed can be named.
import { fork } from 'node:child_process';
import { availableParallelism, setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { SimBug as PlantedBug } from './world.js';

export interface RunOptions {
  /** First seed. */
  readonly from: bigint;
  /** Seeds to run at most. */
  readonly count: number;
  /** Stop starting new batches after this many seconds (the run still covers a prefix of seeds). */
  readonly seconds?: number;
  readonly workers?: number;
  readonly bug?: PlantedBug;
  /** Stop at the first failure (bug hunting). */
  readonly stopOnFailure?: boolean;
  readonly onFailure?: (seed: bigint, failure: string) => void;
}

export interface RunSummary {
  readonly passed: number;
  readonly failed: number;
  readonly failures: ReadonlyArray<{ seed: bigint; failure: string }>;
  readonly seconds: number;
  readonly ticks: number;
  /** The seeds run form the contiguous range [from, from + ran). */
  readonly ran: number;
}

type Reply = { seed: string; ok: boolean; failure: string; ticks: number } | { done: true };

const workerPath = fileURLToPath(new URL('./worker.ts', import.meta.url));

export async function runSeeds(o: RunOptions): Promise<RunSummary> {
  const started = performance.now();
  const workers = Math.max(1, Math.min(o.workers ?? availableParallelism(), o.count));
  const batch = 25;
  let next = 0;
  let passed = 0;
  let ticks = 0;
  const failures: Array<{ seed: bigint; failure: string }> = [];
  const outOfTime = (): boolean => o.seconds !== undefined && (performance.now() - started) / 1000 >= o.seconds;
  const stop = (): boolean => next >= o.count || outOfTime() || (o.stopOnFailure === true && failures.length > 0);

  const runWorker = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const child = fork(workerPath, [], { execArgv: ['--import=tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      // Seeds are pure CPU and have no deadlines; real-time work beside them (the cluster tests'
      // agents, an interactive shell) should not wait for them.
      if (child.pid !== undefined) {
        try {
          setPriority(child.pid, 10);
        } catch {
          // Lowering our own child's priority needs no privilege; if it fails anyway, run at normal priority.
        }
      }
      const give = (): void => {
        if (stop()) {
          child.disconnect();
          return;
        }
        const seeds: string[] = [];
        for (let i = 0; i < batch && next < o.count; i++, next++) seeds.push(String(o.from + BigInt(next)));
        child.send(o.bug === undefined ? { seeds } : { seeds, bug: o.bug });
      };
      child.on('message', (m: Reply) => {
        if ('done' in m) {
          give();
          return;
        }
        ticks += m.ticks;
        if (m.ok) passed++;
        else {
          failures.push({ seed: BigInt(m.seed), failure: m.failure });
          o.onFailure?.(BigInt(m.seed), m.failure);
        }
      });
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 || code === null ? resolve() : reject(new Error(`sim worker exited with ${code}`))));
      give();
    });

  await Promise.all(Array.from({ length: workers }, runWorker));
  failures.sort((a, b) => (a.seed < b.seed ? -1 : a.seed > b.seed ? 1 : 0));
  return {
    passed,
    failed: failures.length,
    failures,
    seconds: (performance.now() - started) / 1000,
    ticks,
    ran: passed + failures.length,
  };
}

export function reproduceCommand(seed: bigint, bug?: PlantedBug): string {
  return `npm run sim -- --seed ${seed}${bug === undefined ? '' : ` --bug ${bug}`}`;
}
