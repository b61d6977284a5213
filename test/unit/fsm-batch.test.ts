// applyBatch must be indistinguishable from applying the same entries one at a time: the same
// results, the same state, byte for byte. Checked on seeded random mixes of every write verb,
// including cas and txn operations that fail (and must discard only their own writes), and sessions:
// creates (some refused: the ID is in use), locks and unlocks (some refused or erroring), destroys that
// release or delete held keys, with the derived session index checked on both.
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Fsm, encodeCommand, type ApplyResult, type Command } from '../../src/fsm/index.js';
import { SeededRandom } from '../../src/raft/index.js';

async function openFsm(t: { teardown(f: () => Promise<void>): void }): Promise<Fsm> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-fsm-batch-'));
  const fsm = await Fsm.open(dir);
  t.teardown(async () => {
    await fsm.close().catch(() => undefined); // a test that failed may leave it closed or poisoned
    await rm(dir, { recursive: true, force: true });
  });
  return fsm;
}

const sessionIds = ['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222', '33333333-3333-4333-8333-333333333333'];

function randomCommand(r: SeededRandom, index: number): Command {
  const key = (): string => `k/${r.nextInt(4)}/${r.nextInt(6)}`;
  const value = (): Uint8Array => new TextEncoder().encode(`v${index}-${r.nextInt(1000)}`);
  const session = (): string => sessionIds[r.nextInt(sessionIds.length)] as string;
  switch (r.nextInt(10)) {
    case 6:
      return {
        type: 'session-create',
        session: { ID: session(), Name: `s${index}`, Node: 'n1', LockDelay: 0, Behavior: r.chance(0.5) ? 'release' : 'delete', TTL: '', NodeChecks: [], ServiceChecks: [] },
      };
    case 7:
      return { type: 'kvs', op: { verb: r.chance(0.7) ? 'lock' : 'unlock', key: key(), value: value(), flags: 0, session: session() } };
    case 8:
      return { type: 'session-destroy', id: session() };
    case 9:
      return {
        type: 'txn',
        ops: [
          { kind: 'kv', op: { verb: 'lock', key: key(), value: value(), flags: 0, session: session() } },
          { kind: 'kv', op: { verb: 'check-session', key: key(), session: session() } },
        ],
      };
    case 0:
    case 1:
      return { type: 'kvs', op: { verb: 'set', key: key(), value: value(), flags: r.nextInt(3) } };
    case 2:
      return { type: 'kvs', op: { verb: 'cas', key: key(), value: value(), flags: 0, index: r.nextInt(Math.max(1, index)) } };
    case 3:
      return { type: 'kvs', op: { verb: 'delete', key: key() } };
    case 4:
      return { type: 'kvs', op: { verb: 'delete-tree', prefix: `k/${r.nextInt(4)}/` } };
    default:
      return {
        type: 'txn',
        ops: [
          { kind: 'kv', op: { verb: 'set', key: key(), value: value(), flags: 0 } },
          r.chance(0.5)
            ? { kind: 'kv', op: { verb: 'check-not-exists', key: key() } }
            : { kind: 'kv', op: { verb: 'cas', key: key(), value: value(), flags: 0, index: r.nextInt(Math.max(1, index)) } },
          { kind: 'kv', op: { verb: 'delete', key: key() } },
        ],
      };
  }
}

async function stateBytes(fsm: Fsm): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  const snap = await fsm.snapshot();
  for await (const c of snap) chunks.push(c);
  return Buffer.concat(chunks);
}

test('applyBatch gives the same results and byte-identical state as applying entry by entry', async (t) => {
  for (const seed of [1, 2, 3]) {
    const r = new SeededRandom(seed);
    const one = await openFsm(t);
    const many = await openFsm(t);
    const items: Array<{ index: number; term: number; data?: Uint8Array }> = [];
    for (let index = 1; index <= 400; index++) {
      items.push(r.chance(0.1) ? { index, term: 1 } : { index, term: 1, data: encodeCommand(randomCommand(r, index)) });
    }
    const expected: ApplyResult[] = [];
    for (const it of items) {
      if (it.data === undefined) {
        await one.applyNoop(it.index, it.term);
        expected.push({ kind: 'noop' });
      } else {
        expected.push(await one.apply(it.index, it.term, it.data));
      }
    }
    const got: ApplyResult[] = [];
    for (let i = 0; i < items.length; ) {
      const n = 1 + r.nextInt(40);
      got.push(...(await many.applyBatch(items.slice(i, i + n))));
      i += n;
    }
    t.deepEqual(got, expected, `seed ${seed}: results`);
    t.true(expected.some((x) => x.kind === 'kvs' && !x.ok), 'some cas failed along the way');
    t.true(expected.some((x) => x.kind === 'txn' && x.errors.length > 0), 'some txn failed along the way');
    t.true(expected.some((x) => x.kind === 'session' && x.error !== ''), 'some session create was refused');
    t.true(expected.some((x) => x.kind === 'kvs' && x.error !== undefined), 'some lock erred (unknown session)');
    t.is(many.appliedIndex(), 400);
    t.true((await stateBytes(many)).equals(await stateBytes(one)), `seed ${seed}: state.bin is byte-identical`);
    t.true((await many.sessionList()).sessions.length > 0 || (await one.sessionList()).sessions.length === 0);
    await many.checkInvariants();
    await one.checkInvariants();
  }
});
