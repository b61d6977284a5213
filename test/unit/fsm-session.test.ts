// Sessions and locks in the FSM on a real LevelDB, as Consul's state store keeps them (session.go,
// kvs.go): lock and unlock with LockIndex and Session, invalidation by destroy with the `release` and
// `delete` behaviours, lock-delay, txn lock verbs, and sessions in snapshots and restores with the
// derived session index rebuilt. Driven through encoded commands, as the Raft runtime drives it.

import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  emptyCheckDefinition,
  newDirFor,
  restoreInto,
  type ApplyResult,
  type KvOp,
  type NewSession,
} from '../../src/fsm/index.js';
import { Readable } from 'node:stream';
import { archiveMeta, readStateBin, writeArchive, type Session } from '../../src/snapshot/index.js';
import { runCliCaptured } from '../support/cli-run.js';
import { FsmDriver, tempRoot } from '../support/fsm-driver.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const ids = ['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222', '33333333-3333-4333-8333-333333333333'] as const;
const [s1, s2, s3] = ids;


function newSession(id: string, over: Partial<NewSession> = {}): NewSession {
  return { ID: id, Name: 'lock', Node: 'node1', LockDelay: 0, Behavior: 'release', TTL: '', NodeChecks: ['serfHealth'], ServiceChecks: [], ...over };
}

class Driver extends FsmDriver {
  private readonly nodes = new Set<string>();
  /** Creates a session; its node is put in the catalog first (with a passing serfHealth) when it is new. */
  async create(id: string, over: Partial<NewSession> = {}): Promise<ApplyResult> {
    const session = newSession(id, over);
    if (!this.nodes.has(session.Node)) {
      this.nodes.add(session.Node);
      await this.register(session.Node);
    }
    return this.run({ type: 'session-create', session });
  }
  register(node: string): Promise<ApplyResult> {
    return this.run({
      type: 'catalog-register',
      node: { ID: '', Node: node, Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {} },
      skipNodeUpdate: false,
      // serfHealth, and the checks some tests' sessions name.
      checks: ['serfHealth', 'web', 'svc:web'].map((CheckID) => ({
        CheckID, Name: CheckID, Status: 'passing' as const, Notes: '', Output: '', ServiceID: '', Type: '', Definition: emptyCheckDefinition,
      })),
    });
  }
  destroy(id: string): Promise<ApplyResult> {
    return this.run({ type: 'session-destroy', id });
  }
  lock(key: string, session: string, value = 'v'): Promise<ApplyResult> {
    return this.run({ type: 'kvs', op: { verb: 'lock', key, session, value: text(value), flags: 0 } });
  }
  unlock(key: string, session: string, value = 'v'): Promise<ApplyResult> {
    return this.run({ type: 'kvs', op: { verb: 'unlock', key, session, value: text(value), flags: 0 } });
  }
  async entry(key: string): Promise<{ LockIndex: number; Session: string; ModifyIndex: number; Value: string } | undefined> {
    const e = (await this.fsm.get(key)).entry;
    return e === undefined ? undefined : { LockIndex: e.LockIndex, Session: e.Session, ModifyIndex: e.ModifyIndex, Value: new TextDecoder().decode(e.Value) };
  }
}

test('fsm session: create stores Consul fields with its index; info, list, node; an ID in use is refused', async (t) => {
  const d = await Driver.open(t);
  t.deepEqual(await d.create(s1, { TTL: '15s', LockDelay: 15e9 }), { kind: 'session', error: '' });
  t.deepEqual(await d.create(s2, { Node: 'node2', Behavior: 'delete', ServiceChecks: [{ ID: 'web', Namespace: '' }] }), { kind: 'session', error: '' });
  const info = await d.fsm.sessionInfo(s1);
  t.deepEqual(info.sessions, [{ ...newSession(s1, { TTL: '15s', LockDelay: 15e9 }), CreateIndex: 2, ModifyIndex: 2 }], 'created at 2: its node registered at 1');
  t.is(info.index, 4, 'X-Consul-Index is the sessions table index (node2 registered at 3, s2 created at 4)');
  t.deepEqual((await d.fsm.sessionList()).sessions.map((s) => s.ID), [s1, s2]);
  t.deepEqual((await d.fsm.sessionList('node2')).sessions.map((s) => s.ID), [s2]);
  t.deepEqual((await d.fsm.sessionInfo(s3)).sessions, [], 'an unknown session is an empty list');
  const again = await d.create(s1, { Name: 'other' });
  t.is(again.kind === 'session' ? again.error : '', `Session "${s1}" already exists`);
  t.is((await d.fsm.sessionInfo(s1)).sessions[0]?.Name, 'lock', 'the refused create changed nothing');
  await d.fsm.checkInvariants();
});

test('fsm session: lock sets Session and LockIndex; the holder rewrites; others fail; unlock keeps LockIndex', async (t) => {
  const d = await Driver.open(t);
  await d.create(s1);
  await d.create(s2);
  t.deepEqual(await d.lock('svc/leader', s1, 'a'), { kind: 'kvs', ok: true });
  t.deepEqual(await d.entry('svc/leader'), { LockIndex: 1, Session: s1, ModifyIndex: 4, Value: 'a' }, 'at 4: the node registered at 1, the sessions created at 2 and 3');
  t.deepEqual(await d.lock('svc/leader', s2, 'b'), { kind: 'kvs', ok: false }, 'someone else holds it');
  t.deepEqual(await d.lock('svc/leader', s1, 'c'), { kind: 'kvs', ok: true }, 'the holder may write again');
  t.deepEqual(await d.entry('svc/leader'), { LockIndex: 1, Session: s1, ModifyIndex: 6, Value: 'c' }, 'without a new LockIndex');
  t.deepEqual(await d.unlock('svc/leader', s2), { kind: 'kvs', ok: false }, 'only the holder unlocks');
  t.deepEqual(await d.unlock('svc/leader', s1, 'd'), { kind: 'kvs', ok: true });
  t.deepEqual(await d.entry('svc/leader'), { LockIndex: 1, Session: '', ModifyIndex: 8, Value: 'd' });
  t.deepEqual(await d.lock('svc/leader', s2, 'e'), { kind: 'kvs', ok: true });
  t.deepEqual(await d.entry('svc/leader'), { LockIndex: 2, Session: s2, ModifyIndex: 9, Value: 'e' }, 'a new holder raises LockIndex');
  t.deepEqual(await d.unlock('missing', s1), { kind: 'kvs', ok: false });
  await d.fsm.checkInvariants();
});

test('fsm session: a lock by a missing or unknown session is an error in Consul words and writes nothing', async (t) => {
  const d = await Driver.open(t);
  t.deepEqual(await d.lock('k', s1), { kind: 'kvs', ok: false, error: `invalid session "${s1}"` });
  t.deepEqual(await d.lock('k', ''), { kind: 'kvs', ok: false, error: 'missing session' });
  t.deepEqual(await d.unlock('k', ''), { kind: 'kvs', ok: false, error: 'missing session' });
  t.is(await d.entry('k'), undefined);
  t.is(await d.fsm.kvsIndex(), 0, 'nothing was written: the KV table index was never set');
});

test('fsm session: destroy releases (release) or deletes (delete) every key it holds, and only those', async (t) => {
  const d = await Driver.open(t);
  await d.create(s1);
  await d.create(s2, { Behavior: 'delete' });
  await d.lock('a/1', s1);
  await d.lock('a/2', s1);
  await d.lock('b/1', s2);
  await d.lock('b/2', s2);
  await d.run({ type: 'kvs', op: { verb: 'set', key: 'plain', value: text('p'), flags: 0 } });
  await d.destroy(s1);
  const destroyIndex = d.index;
  t.deepEqual(await d.entry('a/1'), { LockIndex: 1, Session: '', ModifyIndex: destroyIndex, Value: 'v' }, 'released, LockIndex kept');
  t.deepEqual(await d.entry('a/2'), { LockIndex: 1, Session: '', ModifyIndex: destroyIndex, Value: 'v' });
  t.deepEqual(await d.entry('b/1'), { LockIndex: 1, Session: s2, ModifyIndex: 6, Value: 'v' }, 'another session\'s lock is untouched');
  t.deepEqual((await d.fsm.sessionInfo(s1)).sessions, []);
  await d.destroy(s2);
  t.is(await d.entry('b/1'), undefined, 'a delete session takes its keys with it');
  t.is(await d.entry('b/2'), undefined);
  t.not(await d.entry('plain'), undefined);
  t.deepEqual((await d.fsm.list('b/')).index, d.index, 'the deletes left tombstones at the destroy index');
  t.deepEqual((await d.fsm.sessionList()).sessions, []);
  t.is((await d.fsm.sessionList()).index, d.index);
  const before = d.index;
  await d.destroy(s3);
  t.is((await d.fsm.sessionList()).index, before, 'destroying an unknown session changes nothing');
  await d.fsm.checkInvariants();
});

test('fsm session: a held key deleted or deleted with its tree leaves the session index; destroy then skips it', async (t) => {
  const d = await Driver.open(t);
  await d.create(s1);
  await d.lock('t/a', s1);
  await d.lock('t/b', s1);
  await d.lock('u', s1);
  await d.run({ type: 'kvs', op: { verb: 'delete', key: 'u' } });
  await d.run({ type: 'kvs', op: { verb: 'delete-tree', prefix: 't/' } });
  await d.fsm.checkInvariants();
  await d.run({ type: 'kvs', op: { verb: 'set', key: 't/a', value: text('new'), flags: 0 } });
  await d.destroy(s1);
  t.deepEqual(await d.entry('t/a'), { LockIndex: 0, Session: '', ModifyIndex: d.index - 1, Value: 'new' }, 'the recreated key was never the session\'s');
  await d.fsm.checkInvariants();
});

test('fsm session: lock-delay is noted when an invalidation frees a key, capped at 60 s, and not by unlock', async (t) => {
  const d = await Driver.open(t);
  await d.create(s1, { LockDelay: 15e9 });
  await d.create(s2, { LockDelay: 3600e9, Behavior: 'delete' });
  await d.create(s3, { LockDelay: 0 });
  await d.lock('x', s1);
  await d.lock('y', s2);
  await d.lock('z', s3);
  await d.lock('w', s1);
  await d.unlock('w', s1);
  t.is(d.fsm.lockDelayUntil('w'), 0, 'an unlock sets no lock-delay');
  const before = performance.now();
  await d.destroy(s1);
  await d.destroy(s2);
  await d.destroy(s3);
  const after = performance.now();
  const x = d.fsm.lockDelayUntil('x');
  t.true(x >= before + 15_000 && x <= after + 15_000, `x until ${x}`);
  const y = d.fsm.lockDelayUntil('y');
  t.true(y >= before + 60_000 && y <= after + 60_000, 'capped at Consul\'s MaxLockDelay');
  t.is(d.fsm.lockDelayUntil('z'), 0, 'a session without lock-delay leaves none');
  t.is(d.fsm.lockDelayUntil('never'), 0);
});

test('fsm session: txn lock, unlock and check-session with Consul error texts; a failed op applies nothing', async (t) => {
  const d = await Driver.open(t);
  await d.create(s1);
  await d.create(s2);
  const txn = (...ops: KvOp[]): Promise<ApplyResult> => d.run({ type: 'txn', ops: ops.map((op) => ({ kind: 'kv' as const, op })) });
  const ok = await txn({ verb: 'lock', key: 'l', session: s1, value: text('1'), flags: 0 }, { verb: 'check-session', key: 'l', session: s1 });
  t.is(ok.kind === 'txn' ? ok.errors.length : -1, 0);
  t.is(ok.kind === 'txn' ? ok.results[1]?.KV.Session : '', s1);
  const bad = await txn(
    { verb: 'lock', key: 'l', session: s2, value: text('2'), flags: 0 },
    { verb: 'unlock', key: 'l', session: s2, value: text('2'), flags: 0 },
    { verb: 'check-session', key: 'l', session: s2 },
    { verb: 'check-session', key: 'none', session: s2 },
    { verb: 'lock', key: 'm', session: s3, value: text('3'), flags: 0 },
    { verb: 'set', key: 'side', value: text('x'), flags: 0 },
  );
  t.deepEqual(bad.kind === 'txn' ? bad.errors : [], [
    { OpIndex: 0, What: 'failed to lock key "l", lock is already held' },
    { OpIndex: 1, What: 'failed to unlock key "l", lock isn\'t held, or is held by another session' },
    { OpIndex: 2, What: `failed session check for key "l", current session "${s1}" != "${s2}"` },
    { OpIndex: 3, What: 'failed to check session, key "none" doesn\'t exist' },
    { OpIndex: 4, What: `invalid session "${s3}"` },
  ]);
  t.is(await d.entry('side'), undefined, 'nothing of the failed txn applied');
  const ro = await d.fsm.readTxn([{ kind: 'kv', op: { verb: 'check-session', key: 'l', session: s1 } }]);
  t.deepEqual(ro.errors, [], 'check-session is a read verb');
  await d.fsm.checkInvariants();
});

test('fsm session: sessions travel in snapshots (Session records, sessions index) and a restore rebuilds who holds what', async (t) => {
  const root = await tempRoot(t);
  const d = await Driver.open(t, join(root, 'a'));
  await d.create(s1, { TTL: '30s', LockDelay: 1e9, ServiceChecks: [{ ID: 'svc:web', Namespace: '' }] });
  await d.create(s2, { Behavior: 'delete' });
  await d.lock('held/1', s1);
  await d.lock('held/2', s2);
  const chunks: Uint8Array[] = [];
  for await (const c of await d.fsm.snapshot()) chunks.push(c);
  const sessions: Session[] = [];
  const tables: string[] = [];
  for await (const item of readStateBin((async function* () { yield Buffer.concat(chunks); })())) {
    if (item.kind === 'session') sessions.push(item.session);
    if (item.kind === 'index') tables.push(`${item.index.Key}=${item.index.Value}`);
  }
  t.deepEqual(sessions.map((s) => [s.ID, s.Behavior, s.TTL, s.CreateIndex]), [[s1, 'release', '30s', 2], [s2, 'delete', '', 3]]);
  t.deepEqual(sessions[0]?.ServiceChecks, [{ ID: 'svc:web', Namespace: '' }]);
  t.deepEqual(tables, ['checks=1', 'kvs=5', 'nodes=1', 'sessions=3']);

  const dir = join(root, 'b');
  const summary = await restoreInto(newDirFor(dir), (async function* () { yield* chunks; })());
  t.is(summary.sessionCount, 2);
  const r = await Driver.open(t, dir);
  await r.fsm.checkInvariants();
  t.deepEqual((await r.fsm.sessionList()).sessions, (await d.fsm.sessionList()).sessions, 'sessions restored field for field');
  await r.destroy(s2);
  t.is(await r.entry('held/2'), undefined, 'the restored delete session still owns its key');
  await r.destroy(s1);
  t.deepEqual(await r.entry('held/1'), { LockIndex: 1, Session: '', ModifyIndex: r.index, Value: 'v' }, 'and the release session its lock');
  await r.fsm.checkInvariants();
});

test('fsm session: conclave snapshot inspect counts Session and Register records and decode prints them', async (t) => {
  const root = await tempRoot(t);
  const d = await Driver.open(t, join(root, 'a'));
  await d.create(s1, { TTL: '30s' });
  await d.create(s2);
  await d.lock('held', s1);
  const snap = await d.fsm.snapshot();
  const chunks: Uint8Array[] = [];
  for await (const c of snap) chunks.push(c);
  const stateBin = Buffer.concat(chunks);
  const meta = archiveMeta({
    index: snap.index, term: 1, configuration: { servers: [] } as never, configurationIndex: 1, size: stateBin.length, nowMs: 1_700_000_000_000, producerVersion: 'test',
  });
  const out: Buffer[] = [];
  for await (const c of writeArchive(meta, Readable.from([stateBin]))) out.push(Buffer.from(c));
  const file = join(root, 'with-sessions.snap');
  await writeFile(file, Buffer.concat(out));
  const inspect = await runCliCaptured(['snapshot', 'inspect', '-format', 'json', file]);
  t.is(inspect.code, 0, inspect.stderr);
  const stats = (JSON.parse(inspect.stdout) as { Stats: Array<{ Name: string; Count: number }> }).Stats;
  t.like(stats.find((x) => x.Name === 'Session'), { Count: 2 });
  t.like(stats.find((x) => x.Name === 'Register'), { Count: 4 }, 'node1 and its three checks (the Driver registers them)');
  t.is(stats[0]?.Name, 'Register', 'the catalog comes first, as in Consul');
  const decode = await runCliCaptured(['snapshot', 'decode', file]);
  const registers = decode.stdout.trim().split('\n').map((l) => JSON.parse(l) as { Type: string; Data: Record<string, unknown> }).filter((r) => r.Type === 'Register');
  t.deepEqual(registers.map((r) => [r.Data['Node'], (r.Data['Check'] as { CheckID?: string } | undefined)?.CheckID ?? '']), [['node1', ''], ['node1', 'serfHealth'], ['node1', 'svc:web'], ['node1', 'web']]);
  const sessions = decode.stdout.trim().split('\n').map((l) => JSON.parse(l) as { Type: string; Data: Record<string, unknown> }).filter((r) => r.Type === 'Session');
  t.deepEqual(sessions.map((r) => [r.Data['ID'], r.Data['TTL'], r.Data['Behavior']]), [[s1, '30s', 'release'], [s2, '', 'release']]);
});
