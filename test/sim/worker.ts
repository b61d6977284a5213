// A child process that runs the seeds it is told to and reports each verdict to its parent.
import { runSeed } from './swarm.js';
import type { SimBug as PlantedBug } from './world.js';

interface Job {
  readonly seeds: readonly string[];
  readonly bug?: PlantedBug;
}

process.on('message', (job: Job) => {
  for (const s of job.seeds) {
    const r = runSeed(BigInt(s), job.bug === undefined ? {} : { bug: job.bug });
    process.send?.({ seed: s, ok: r.ok, failure: r.failure ?? '', ticks: r.ticks });
  }
  process.send?.({ done: true });
});
