// Small pure pieces of the core, checked against obviously-right versions on generated inputs.
import test from 'ava';
import { SeededRandom } from '../../src/raft/index.js';
import { quorumSize, quorumValue, tallyVotes } from '../../src/raft/progress.js';

/** The highest value v such that at least a majority of `values` are >= v, by brute force. */
function bruteQuorumValue(values: readonly number[]): number {
  if (values.length === 0) return 0;
  let best = 0;
  for (const v of values) {
    const atLeast = values.filter((x) => x >= v).length;
    if (atLeast >= Math.floor(values.length / 2) + 1) best = Math.max(best, v);
  }
  return best;
}

test('quorumValue agrees with brute force on 50,000 random match sets', (t) => {
  const r = new SeededRandom(1);
  for (let i = 0; i < 50_000; i++) {
    const n = r.between(1, 7);
    const values = Array.from({ length: n }, () => r.nextInt(20));
    const got = quorumValue(values);
    if (got !== bruteQuorumValue(values)) {
      t.fail(`quorumValue(${JSON.stringify(values)}) = ${got}, expected ${bruteQuorumValue(values)}`);
      return;
    }
  }
  t.pass();
});

test('quorum sizes are majorities', (t) => {
  t.deepEqual([1, 2, 3, 4, 5, 6, 7].map(quorumSize), [1, 2, 2, 3, 3, 4, 4]);
});

test('tallyVotes: won with a majority, lost once a majority is impossible, pending otherwise', (t) => {
  const ids = ['a', 'b', 'c', 'd', 'e'];
  t.is(tallyVotes(ids, new Map([['a', true], ['b', true], ['c', true]])), 'won');
  t.is(tallyVotes(ids, new Map([['a', true], ['b', true], ['c', false]])), 'pending');
  t.is(tallyVotes(ids, new Map([['a', true], ['b', false], ['c', false], ['d', false]])), 'lost');
  // Votes from servers outside the configuration do not count.
  t.is(tallyVotes(['a', 'b', 'c'], new Map([['a', true], ['x', true], ['y', true]])), 'pending');
});

test('SeededRandom is deterministic per seed and spreads values', (t) => {
  const a = new SeededRandom(42);
  const b = new SeededRandom(42);
  const c = new SeededRandom(43);
  const sa = Array.from({ length: 100 }, () => a.nextUint32());
  t.deepEqual(sa, Array.from({ length: 100 }, () => b.nextUint32()));
  t.notDeepEqual(sa, Array.from({ length: 100 }, () => c.nextUint32()));
  const counts = new Array(10).fill(0);
  const r = new SeededRandom(7);
  for (let i = 0; i < 100_000; i++) counts[r.nextInt(10)]++;
  for (const n of counts) t.true(n > 9_000 && n < 11_000, `bucket count ${n} is near 10,000`);
  t.throws(() => r.nextInt(0), { instanceOf: RangeError });
});
