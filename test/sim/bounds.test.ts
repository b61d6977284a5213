// Every seed ends, whatever defect is planted: a seed that runs away (a message storm, an endless
// run) fails at a bound, with its replay command, instead of running for hours. These check the
// bounds themselves; bugs.test.ts shows planted defects ending inside them.
import test from 'ava';
import type { Message } from '../../src/raft/index.js';
import { SimFailure } from './checker.js';
import { World, maxInflightMessages, maxTicks, type WorldOptions } from './world.js';

function world(): World {
  const opts: WorldOptions = {
    seed: 1n,
    voterCount: 3,
    spareCount: 0,
    electionTimeoutTicks: 10,
    heartbeatIntervalTicks: 2,
    maxMessageBytes: 4096,
    maxInflightMessages: 8,
    snapshotEveryEntries: 1000,
    trailingEntries: 0,
    network: { dropProbability: 0, duplicateProbability: 0, maxDelayTicks: 50, snapshotChunks: 1 },
    plantedBugs: new Set(),
    trace: false,
  };
  return new World(opts);
}

test('more messages in flight than the bound fail the seed as a message storm', (t) => {
  const w = world();
  w.step();
  const n1 = w.nodes.get('n1');
  if (n1 === undefined) throw new Error('no n1');
  const m: Message = { type: 'heartbeat', from: 'n1', to: 'n2', term: 1, commit: 0, readSeq: 0 };
  for (let i = 0; i <= maxInflightMessages; i++) w['send'](n1, m);
  const e = t.throws(() => w.step(), { instanceOf: SimFailure });
  t.regex(e?.message ?? '', /^bound: \d+ messages in flight at tick 2 \(at most 20000\): a message storm$/);
});

test('a seed that runs past the tick bound fails', (t) => {
  const w = world();
  w.step();
  w.now = maxTicks;
  t.throws(() => w.step(), { instanceOf: SimFailure, message: `bound: the seed ran past ${maxTicks} ticks` });
});
