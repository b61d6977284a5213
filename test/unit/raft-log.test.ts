// The core's log: term lookups, conflict search, truncation and the pending-restore layout.
import test from 'ava';
import { InvariantError } from '../../src/base/index.js';
import type { Entry, SnapshotMeta } from '../../src/raft/index.js';
import { RaftLog, initialSnapshot } from '../../src/raft/log.js';

const cfg = { servers: [{ id: 'a', suffrage: 'voter' as const }] };
const e = (index: number, term: number): Entry => ({ index, term, kind: 'normal', data: new Uint8Array([index]) });
const snap = (index: number, term: number): SnapshotMeta => ({ index, term, configuration: cfg, configurationIndex: 0 });

test('terms are known for the snapshot and the kept entries, and unknown elsewhere', (t) => {
  const log = new RaftLog(snap(5, 2), [e(4, 2), e(5, 2), e(6, 3), e(7, 3)]);
  t.is(log.term(3), undefined, 'compacted');
  t.is(log.term(4), 2, 'a trailing entry');
  t.is(log.term(5), 2);
  t.is(log.term(7), 3);
  t.is(log.term(8), undefined, 'beyond the end');
  t.is(log.term(0), undefined, 'index 0 is known only while index 1 is held');
  t.is(new RaftLog(initialSnapshot, [e(1, 1)]).term(0), 0);
});

test('findConflictByTerm skips a whole term at once', (t) => {
  const log = new RaftLog(initialSnapshot, [e(1, 1), e(2, 1), e(3, 3), e(4, 3), e(5, 3), e(6, 5)]);
  t.is(log.findConflictByTerm(6, 4), 5, 'the last entry with term <= 4');
  t.is(log.findConflictByTerm(6, 2), 2);
  t.is(log.findConflictByTerm(9, 5), 6, 'clamped to the last index');
  t.is(log.findConflictByTerm(6, 0), 0);
});

test('append replaces a conflicting suffix and reports where', (t) => {
  const log = new RaftLog(initialSnapshot, [e(1, 1), e(2, 1), e(3, 1)]);
  t.is(log.append([e(2, 2), e(3, 2), e(4, 2)]), 2);
  t.deepEqual([1, 2, 3, 4].map((i) => log.term(i)), [1, 2, 2, 2]);
  t.is(log.append([e(5, 2)]), undefined, 'a plain append removes nothing');
});

test('a pending restore sits above the prefix; the hole has no terms; promotion and abandonment', (t) => {
  const log = new RaftLog(initialSnapshot, [e(1, 1), e(2, 1), e(3, 2)]);
  log.setPending(snap(10, 4));
  log.append([e(11, 4), e(12, 4)]);
  t.is(log.lastIndex(), 12);
  t.is(log.prefixLastIndex(), 3);
  t.is(log.term(3), 2);
  t.is(log.term(7), undefined, 'inside the hole');
  t.is(log.term(10), 4);
  t.is(log.findConflictByTerm(9, 3), 3, 'the search steps over the hole to the prefix');
  log.dropPending();
  t.is(log.lastIndex(), 3, 'abandoning reverts to the untouched prefix');
  log.setPending(snap(10, 4));
  log.append([e(11, 4)]);
  const promoted = log.promotePending();
  t.is(promoted.index, 10);
  t.is(log.snapshot.index, 10);
  t.is(log.firstIndex(), 11);
  t.is(log.term(3), undefined, 'the prefix is gone');
  t.is(log.term(11), 4);
});

test('the log refuses broken shapes with an invariant error', (t) => {
  t.throws(() => new RaftLog(initialSnapshot, [e(1, 1), e(3, 1)]), { instanceOf: InvariantError });
  t.throws(() => new RaftLog(initialSnapshot, [e(1, 2), e(2, 1)]), { instanceOf: InvariantError });
  const log = new RaftLog(snap(5, 2), [e(6, 2)]);
  t.throws(() => log.truncateFrom(4), { instanceOf: InvariantError }, 'never inside the snapshot');
});

test('the configuration in force follows config entries through append, truncation, compaction and a restore', (t) => {
  const c = (...ids: string[]) => ({ servers: ids.map((id) => ({ id, suffrage: 'voter' as const })) });
  const cfgEntry = (index: number, term: number, config: ReturnType<typeof c>): Entry => ({ index, term, kind: 'config', data: new Uint8Array(), config });
  const log = new RaftLog({ ...initialSnapshot, configuration: c('a') }, [e(1, 1), cfgEntry(2, 1, c('a', 'b')), e(3, 1)]);
  t.deepEqual(log.configurationAt(1).configuration, c('a'), 'before the first config entry: the snapshot\'s');
  t.is(log.configurationAt(3).index, 2);
  log.append([cfgEntry(4, 2, c('a', 'b', 'c')), e(5, 2)]);
  t.is(log.configurationAt(5).index, 4);
  t.is(log.configurationAt(3).index, 2, 'a lookup below the latest entry sees the one in force there');
  log.append([e(4, 3)]);
  t.is(log.configurationAt(5).index, 2, 'the overwritten config entry no longer counts');
  log.compact({ index: 3, term: 1, configuration: c('a', 'b'), configurationIndex: 2 }, 4);
  t.is(log.configurationAt(4).index, 2, 'after compaction the snapshot carries it');
  log.setPending({ index: 10, term: 4, configuration: c('x'), configurationIndex: 9 });
  t.is(log.configurationAt(10).index, 9, 'a pending restore brings its own configuration');
  log.append([cfgEntry(11, 4, c('x', 'y'))]);
  t.is(log.configurationAt(11).index, 11);
  t.is(log.configurationAt(4).index, 2, 'the prefix keeps its own');
  log.dropPending();
  t.is(log.configurationAt(11).index, 2, 'abandoning the restore drops its configurations');
});
