// The server's durable Raft log (src/node/raft-log.ts): the main LevelDB log plus the pending-restore
// store, through the rounds the core asks for, checked by reopening from disk.
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { Entry, SnapshotMeta } from '../../src/raft/index.js';
import { RaftLog } from '../../src/node/raft-log.js';

const cfg = { servers: [{ id: 'a', suffrage: 'voter' as const }] };
const e = (index: number, term: number): Entry => ({ index, term, kind: 'normal', data: new Uint8Array([index % 256]) });
const snap = (index: number, term: number): SnapshotMeta => ({ index, term, configuration: cfg, configurationIndex: 0 });
const logger = pino({ level: 'silent' });

// Found by test/cluster/snapshot-faults.test.ts: a leader placed a user restore at 50001 and its no-op
// at 50002 (term 3), sent the restore to one follower and was SIGKILLed. That follower led term 4 and
// wrote its own no-op at 50002. The old leader, restarted, learns in one round that the restore
// committed (promotion: the pending store's entries move into the main log) and that its 50002 conflicts
// (truncateFrom 50002, then the new 50002). It used to stop on "invariant violated: entry 50002 follows
// 50002", at every restart.
test('a pending restore promoted in the same round that truncates the entries after it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-raftlog-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  {
    const { log } = await RaftLog.open(dir, logger);
    await log.initialize([e(1, 1), e(2, 1), e(3, 2)], { term: 3, vote: 'a' });
    await log.persist({ pendingRestore: snap(10, 3), entries: [e(11, 3)], sync: true });
    await log.close();
  }
  const { log, loaded } = await RaftLog.open(dir, logger);
  t.is(loaded.pendingRestore?.index, 10);
  t.deepEqual(loaded.entries.map((x) => [x.index, x.term]), [[1, 1], [2, 1], [3, 2], [11, 3]]);
  await log.persist({ snapshotBase: snap(10, 3), truncateFrom: 11, entries: [e(11, 4), e(12, 4)], hardState: { term: 4, vote: '' }, sync: true });
  await log.close();
  const again = await RaftLog.open(dir, logger);
  t.is(again.loaded.snapshot?.index, 10);
  t.is(again.loaded.pendingRestore, undefined);
  t.deepEqual(again.loaded.entries.map((x) => [x.index, x.term]), [[11, 4], [12, 4]]);
  await again.log.close();
});

test('a pending restore promoted in a round that only appends after its entries keeps them all', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-raftlog-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const { log } = await RaftLog.open(dir, logger);
  await log.initialize([e(1, 1)], { term: 2, vote: 'a' });
  await log.persist({ pendingRestore: snap(10, 2), entries: [e(11, 2)], sync: true });
  await log.persist({ snapshotBase: snap(10, 2), entries: [e(12, 2)], sync: true });
  await log.close();
  const again = await RaftLog.open(dir, logger);
  t.deepEqual(again.loaded.entries.map((x) => [x.index, x.term]), [[11, 2], [12, 2]]);
  await again.log.close();
});

test('a pending restore promoted in a round with no entries moves its entries into the main log once', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-raftlog-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const { log } = await RaftLog.open(dir, logger);
  await log.initialize([e(1, 1)], { term: 2, vote: 'a' });
  await log.persist({ pendingRestore: snap(10, 2), entries: [e(11, 2), e(12, 3)], sync: true });
  await log.persist({ snapshotBase: snap(10, 2), entries: [], sync: true });
  await log.close();
  const again = await RaftLog.open(dir, logger);
  t.is(again.loaded.snapshot?.index, 10);
  t.deepEqual(again.loaded.entries.map((x) => [x.index, x.term]), [[11, 2], [12, 3]]);
  await again.log.close();
});
