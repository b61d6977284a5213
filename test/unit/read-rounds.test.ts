// ReadRounds (src/server/read-rounds.ts): one leader round trip per round, and a read never takes the
// index of a round that started before it arrived (that index may predate a write it must see).
import test from 'ava';
import { ReadRounds } from '../../src/server/read-rounds.js';

/** A fetch whose calls the test answers one by one. */
function controlled(): { rounds: ReadRounds; calls: Array<{ resolve: (i: number) => void; reject: (e: Error) => void }> } {
  const calls: Array<{ resolve: (i: number) => void; reject: (e: Error) => void }> = [];
  const rounds = new ReadRounds(() => new Promise<number>((resolve, reject) => calls.push({ resolve, reject })));
  return { rounds, calls };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('reads arriving while a round is out wait for the next round, which then serves all of them at once', async (t) => {
  const { rounds, calls } = controlled();
  const first = rounds.next();
  await tick();
  t.is(calls.length, 1);
  const late = [rounds.next(), rounds.next(), rounds.next()];
  await tick();
  t.is(calls.length, 1, 'no second call while one is out');
  calls[0]?.resolve(5);
  t.is(await first, 5);
  await tick();
  t.is(calls.length, 2, 'the next round starts as soon as the first returns');
  calls[1]?.resolve(7);
  t.deepEqual(await Promise.all(late), [7, 7, 7], 'the late reads take the later round, never the earlier');
  await tick();
  t.is(calls.length, 2, 'nothing waiting: no more calls');
});

test('a failed round fails only its own reads; the next round goes on', async (t) => {
  const { rounds, calls } = controlled();
  const doomed = rounds.next();
  await tick();
  const after = rounds.next();
  calls[0]?.reject(new Error('leader changed'));
  await t.throwsAsync(doomed, { message: 'leader changed' });
  await tick();
  calls[1]?.resolve(9);
  t.is(await after, 9);
});
