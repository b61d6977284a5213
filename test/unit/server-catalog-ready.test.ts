// ServerCatalog.ready(), which a session create on the leader waits for (bounded): pending until this
// leadership's first reconcile has ended, from the start and again after each loss of leadership. It
// once resolved at once on a leader whose duties had not started yet, and a session created right
// after the leader was elected got 400 "Missing node registration".
import test from 'ava';
import { pino } from 'pino';
import { ServerCatalog } from '../../src/server/server-catalog.js';

function settled(p: Promise<void>): Promise<boolean> {
  return Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 50))]);
}

test('server catalog: ready() waits for the first reconcile of each leadership', async (t) => {
  let release = (): void => undefined;
  const caughtUp = (): Promise<void> => new Promise((r) => { release = r; });
  const sc = new ServerCatalog({
    datacenter: 'dc1', servers: () => [], read: async () => ({ index: 0, value: [] } as never), propose: async () => undefined,
    caughtUp, intervalMs: 60_000, graceMs: () => 0, logger: pino({ level: 'silent' }),
  });
  t.false(await settled(sc.ready()), 'pending before the duties ever started');
  const first = sc.establish();
  t.false(await settled(sc.ready()), 'pending while the new leader catches up');
  release();
  await first;
  t.true(await settled(sc.ready()), 'ready once the first reconcile ended');
  sc.revoke();
  t.false(await settled(sc.ready()), 'pending again once leadership is lost');
  const second = sc.establish();
  release();
  await second;
  t.true(await settled(sc.ready()));
  sc.revoke();
});
