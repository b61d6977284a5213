// A server's election timeouts must differ from every other server's, however they were started.
import test from 'ava';
import { electionRandom } from '../../src/node/raft-node.js';

test('servers created in the same millisecond and process draw different election timeouts', (t) => {
  // Seeded from the clock and the pid, back-to-back pairs in one process (the in-process tests, or
  // containers that all run as PID 1) drew the same sequence, and two followers that lost their
  // leader split every vote in lockstep. 200 pairs made back to back: at least some share a
  // millisecond, so a clock-and-pid seed fails here.
  const draws = (r: ReturnType<typeof electionRandom>): string => [r.nextInt(2 ** 32), r.nextInt(2 ** 32), r.nextInt(2 ** 32)].join(',');
  let same = 0;
  for (let i = 0; i < 200; i++) if (draws(electionRandom()) === draws(electionRandom())) same += 1;
  t.is(same, 0);
});
