// The checker has teeth: each planted defect, in the core or in the Ready loop, must be caught within 2,000 seeds. A
// simulator that passes a broken core proves nothing about a correct one.
import test from 'ava';
import { simBugs as plantedBugs } from './world.js';
import { runSeeds } from './runner.js';

for (const bug of plantedBugs) {
  test.serial(`planted bug "${bug}" is caught within 2,000 seeds`, async (t) => {
    const r = await runSeeds({ from: 1n, count: 2000, bug, stopOnFailure: true });
    const first = r.failures[0];
    t.truthy(first, `${bug} went unnoticed through ${r.ran} seeds`);
    if (first !== undefined) t.log(`${bug}: first caught at seed ${first.seed}: ${first.failure.split('\n')[0]}`);
  });
}
