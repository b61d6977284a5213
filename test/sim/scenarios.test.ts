// The classic edge cases, each told as a story over a hand-driven network. Each test names the rule
// it checks (section numbers are the Raft paper's, §4 and §6 the thesis's).
import test from 'ava';
import type { Message } from '../../src/raft/index.js';
import { Scenario } from './scenario.js';

const all = (): boolean => true;
const votes = (m: Message): boolean => m.type === 'vote' || m.type === 'voteResponse';

/** Lets `ids` forget their leader's lease by letting an election timeout pass without contact. */
function outlastLease(s: Scenario, ids: string[]): void {
  s.tick(ids, s.electionTimeoutTicks);
  s.dropAll();
}

/** Runs elections for `id`, delivering only vote traffic (a stale server first learns the term). */
function electOnly(s: Scenario, id: string): void {
  for (let attempt = 0; attempt < 3 && s.core(id).currentRole() !== 'leader'; attempt++) {
    s.core(id).campaign();
    for (let i = 0; i < 10 && s.core(id).currentRole() !== 'leader'; i++) s.deliver(votes);
  }
  if (s.core(id).currentRole() !== 'leader') throw new Error(`${id} did not win`);
}

/**
 * A 3-voter cluster whose heartbeats are far apart, and a write `text` n1 has committed while its
 * followers have not heard so yet (only the leader's next tick or message would tell them).
 */
function commitUnannounced(text: string): { s: Scenario; index: number } {
  const s = new Scenario({ voters: 3, electionTimeoutTicks: 30, heartbeatIntervalTicks: 10 });
  s.elect('n1');
  s.run(1);
  const index = s.propose('n1', text);
  s.stabilize();
  return { s, index };
}

function figure8(bug: boolean): { n1CommitAfterOldEntry: number; s: Scenario } {
  const s = new Scenario({ voters: 3, maxMessageBytes: 1, ...(bug ? { bugs: ['commit-prior-term'] as const } : {}) });
  s.elect('n1'); // term 2, no-op at index 2, committed everywhere
  s.propose('n1', 'a'); // index 3, term 2: reaches no one
  s.dropAll();
  // n1 goes away; n2 wins term 3 with n3's vote and appends its no-op at index 3 locally only.
  s.isolate('n1');
  outlastLease(s, ['n2', 'n3']);
  electOnly(s, 'n2');
  s.dropAll();
  // n2 goes away; n1 comes back and wins term 4 with n3's vote (its log ends 3/2, n3's ends 2/2).
  s.heal();
  s.isolate('n2');
  outlastLease(s, ['n1', 'n3']);
  electOnly(s, 'n1');
  // n1 brings n3 up to date one entry at a time. Its first probe (3/2 then 4/4) is rejected, it
  // backs off and sends 3/2 alone, which n3 takes; the append that would carry 4/4 is lost.
  for (let i = 0; i < 10; i++) {
    s.deliverOrDrop((m) => !(m.type === 'append' && m.entries.some((e) => e.index === 4) && s.core('n3').termAt(3) === 2));
  }
  const n1CommitAfterOldEntry = s.core('n1').commitIndex();
  return { n1CommitAfterOldEntry, s };
}

test('Figure 8 (§5.4.2): a leader never commits an entry of an earlier term by counting replicas', (t) => {
  const { n1CommitAfterOldEntry, s } = figure8(false);
  t.is(s.core('n3').termAt(3), 2, 'n3 now holds 3/2 as well: a majority has it');
  t.is(n1CommitAfterOldEntry, 2, 'but 3/2 is from term 2, so n1 (term 4) must not count it as committed');
  // Once n1's own no-op (index 4, term 4) reaches n3 (resent once the lost append is given up on,
  // after an election timeout), both commit.
  s.run(3 * s.electionTimeoutTicks);
  t.is(s.core('n1').commitIndex(), 4);
  t.deepEqual(s.appliedTexts('n1'), ['a']);
});

test('Figure 8 with the planted bug: counting old-term replicas loses a committed entry', (t) => {
  const { n1CommitAfterOldEntry, s } = figure8(true);
  t.is(n1CommitAfterOldEntry, 3, 'the buggy leader commits 3/2 by counting replicas');
  t.deepEqual(s.appliedTexts('n1'), ['a'], 'and applies "a" at index 3');
  // n1 dies; n2 (log ends 3/3, newer than n3's 3/2) wins term 5 and overwrites index 3 on n3.
  s.dropAll();
  s.heal();
  s.isolate('n1');
  outlastLease(s, ['n2', 'n3']);
  electOnly(s, 'n2');
  s.stabilize();
  t.is(s.core('n3').termAt(3), 3, 'index 3 on n3 now holds n2\'s term-3 no-op');
  const n3At3 = s.applied.get('n3')?.find((e) => e.index === 3);
  t.is(n3At3?.term, 3, 'n3 applied a different entry at index 3 than n1 did: safety is broken');
});

test('a partitioned old leader cannot commit, steps down by check-quorum, and its entry is replaced', (t) => {
  const s = new Scenario({ voters: 3 });
  s.elect('n1');
  s.isolate('n1');
  s.propose('n1', 'lost');
  t.true(s.core('n1').readIndex(99).ok);
  s.stabilize();
  t.is(s.core('n1').commitIndex(), 2, 'no quorum, no commit');
  // The majority side elects n2 and commits a write.
  outlastLease(s, ['n2', 'n3']);
  s.elect('n2');
  s.propose('n2', 'kept');
  s.stabilize();
  t.deepEqual(s.appliedTexts('n2'), ['kept']);
  // Check-quorum: n1 stops believing it leads once a whole election timeout passes without a quorum.
  s.tick(['n1'], s.electionTimeoutTicks - 1);
  t.is(s.core('n1').currentRole(), 'leader', 'still within its election timeout');
  s.tick(['n1'], 1);
  t.is(s.core('n1').currentRole(), 'follower');
  s.stabilize();
  t.deepEqual(s.readStates.get('n1'), [], 'its ReadIndex was never confirmed: no stale read was served');
  // After healing, n1 follows n2 and its uncommitted entry is overwritten.
  s.heal();
  s.run(3 * s.electionTimeoutTicks);
  t.deepEqual(s.leaders(), ['n2']);
  t.deepEqual(s.appliedTexts('n1'), ['kept']);
});

test('§5.4.1: a candidate with a longer but staler log loses; the up-to-date one wins', (t) => {
  const s = new Scenario({ voters: 3 });
  s.elect('n1');
  for (const v of ['a', 'b', 'c']) s.propose('n1', v); // indexes 3..5, term 2, on n1 only
  s.dropAll();
  s.isolate('n1');
  outlastLease(s, ['n2', 'n3']);
  s.elect('n2'); // term 3: no-op at index 3
  s.propose('n2', 'x'); // index 4, term 3
  s.stabilize();
  s.heal();
  s.isolate('n2');
  outlastLease(s, ['n1', 'n3']);
  t.true(s.core('n1').lastIndex() > s.core('n3').lastIndex(), 'n1 has the longer log (5 vs 4)');
  s.core('n1').campaign();
  s.stabilize();
  t.not(s.core('n1').currentRole(), 'leader', 'n3 refuses: its last term 3 beats n1\'s last term 2');
  outlastLease(s, ['n1', 'n3']);
  s.elect('n3');
  s.stabilize();
  s.run(1); // followers hear of a commit at the leader's next tick
  t.deepEqual(s.appliedTexts('n1'), ['x'], 'n1\'s stale entries were replaced by the committed history');
});

test('a removed server that keeps campaigning does not disturb the cluster (pre-vote and lease)', (t) => {
  const s = new Scenario({ voters: 4 });
  s.elect('n1');
  s.isolate('n4'); // n4 never learns that it was removed
  const r = s.core('n1').proposeMembership({ kind: 'removeServer', id: 'n4' });
  t.true(r.ok);
  s.stabilize();
  t.deepEqual(s.core('n1').configuration().servers.map((x) => x.id).sort(), ['n1', 'n2', 'n3']);
  const term = s.core('n1').currentTerm();
  s.heal();
  // n4 hears nothing from the leader any more and campaigns again and again.
  s.run(10 * s.electionTimeoutTicks);
  t.true(s.events.filter((e) => e === 'n4 vote-ignored' || e.startsWith('n1 vote-ignored') || e.startsWith('n2 vote-ignored')).length > 0);
  t.deepEqual(s.leaders(), ['n1'], 'the leader stays');
  t.is(s.core('n1').currentTerm(), term, 'and the term does not move');
  t.is(s.core('n2').currentTerm(), term);
});

test('check-quorum: an isolated leader steps down within one election timeout', (t) => {
  const s = new Scenario({ voters: 5 });
  s.elect('n1');
  s.isolate('n1');
  s.tick(['n1'], s.electionTimeoutTicks);
  t.is(s.core('n1').currentRole(), 'follower');
  t.true(s.events.includes('n1 check-quorum-failed'));
});

test('pre-vote: a partitioned follower rejoins without raising anyone\'s term', (t) => {
  const s = new Scenario({ voters: 3 });
  s.elect('n1');
  const term = s.core('n1').currentTerm();
  s.isolate('n3');
  s.run(10 * s.electionTimeoutTicks);
  t.is(s.core('n3').currentTerm(), term, 'pre-votes that fail do not bump the term');
  s.heal();
  s.run(3 * s.electionTimeoutTicks);
  t.deepEqual(s.leaders(), ['n1']);
  t.is(s.core('n1').currentTerm(), term);
});

test('leadership transfer (§3.10): the target is caught up, then told to campaign at once', (t) => {
  const s = new Scenario({ voters: 3 });
  s.elect('n1');
  s.isolate('n3');
  s.propose('n1', 'before');
  s.stabilize();
  s.heal();
  t.true(s.core('n1').transferLeadership('n3').ok);
  const during = s.core('n1').propose(new Uint8Array([1]));
  t.false(during.ok, 'proposals wait while leadership moves');
  if (!during.ok) t.is(during.code, 'transfer-in-progress');
  // n3 missed an entry: the transfer resends from its last match, then n1 sends TimeoutNow.
  s.run(s.electionTimeoutTicks - 1);
  t.deepEqual(s.leaders(), ['n3']);
  t.true(s.events.includes('n3 timeout-now'));
  s.propose('n3', 'after');
  s.stabilize();
  s.run(1); // followers hear of a commit at the leader's next tick
  t.deepEqual(s.appliedTexts('n1'), ['before', 'after']);
});

test('a non-voter catches up without counting toward quorum, then is promoted', (t) => {
  const s = new Scenario({ voters: 3, spares: 1 });
  s.elect('n1');
  s.propose('n1', 'a');
  s.stabilize();
  t.true(s.core('n1').proposeMembership({ kind: 'addNonvoter', id: 'n4' }).ok);
  s.stabilize();
  t.deepEqual(s.appliedTexts('n4'), ['a'], 'the learner receives the log');
  s.core('n4').campaign();
  t.is(s.core('n4').currentRole(), 'follower', 'a non-voter never campaigns');
  // With n2 and n3 down, n1 + the learner are not a quorum: nothing commits.
  s.isolate('n2');
  s.isolate('n3');
  s.cut.delete('n1>n4');
  s.cut.delete('n4>n1');
  const i = s.propose('n1', 'b');
  s.stabilize();
  t.true(s.core('n1').commitIndex() < i);
  s.heal();
  s.stabilize();
  t.true(s.core('n1').proposeMembership({ kind: 'addVoter', id: 'n4' }).ok);
  s.stabilize();
  t.is(s.core('n1').configuration().servers.find((x) => x.id === 'n4')?.suffrage, 'voter');
});

test('removing the leader: it keeps leading until the change commits, then steps down', (t) => {
  const s = new Scenario({ voters: 3 });
  s.elect('n1');
  t.true(s.core('n1').proposeMembership({ kind: 'removeServer', id: 'n1' }).ok);
  s.stabilize();
  t.is(s.core('n1').currentRole(), 'follower');
  t.true(s.events.includes('n1 removed-stepping-down'));
  s.run(5 * s.electionTimeoutTicks);
  const leaders = s.leaders();
  t.is(leaders.length, 1);
  t.not(leaders[0], 'n1');
});

test('user restore: installed at max(last, archive index) + 1 on every server via InstallSnapshot', (t) => {
  const s = new Scenario({ voters: 3 });
  s.elect('n1');
  s.propose('n1', 'old');
  s.stabilize();
  const r = s.core('n1').userRestore(100);
  t.true(r.ok);
  if (!r.ok) return;
  t.is(r.snapshot.index, 101, 'max(last index 3, archive index 100) + 1');
  t.deepEqual(r.snapshot.configuration, s.core('n1').configuration(), 'with the current configuration');
  const during = s.core('n1').propose(new Uint8Array([1]));
  t.false(during.ok);
  if (!during.ok) t.is(during.code, 'restore-pending');
  s.stabilize();
  s.run(1); // followers hear of a commit at the leader's next tick
  for (const id of ['n1', 'n2', 'n3']) {
    t.deepEqual(s.appliedSnapshots.get(id), [101], `${id} installed the restore`);
    t.is(s.core(id).commitIndex(), 102, `${id} committed the no-op after it`);
    t.is(s.core(id).pendingRestore(), undefined);
  }
  s.propose('n1', 'new');
  s.stabilize();
  s.run(1);
  t.deepEqual(s.appliedTexts('n2'), ['new'], 'the old state is gone and new writes follow the restore');
});

test('user restore that never reaches a quorum is abandoned and never applied', (t) => {
  const s = new Scenario({ voters: 3 });
  s.elect('n1');
  s.propose('n1', 'before');
  s.stabilize();
  s.isolate('n1');
  t.true(s.core('n1').userRestore(0).ok);
  s.stabilize();
  t.deepEqual(s.appliedSnapshots.get('n1'), [], 'a restore is applied only once committed');
  outlastLease(s, ['n2', 'n3']);
  s.elect('n2');
  s.propose('n2', 'after');
  s.stabilize();
  s.heal();
  s.run(3 * s.electionTimeoutTicks);
  t.deepEqual(s.leaders(), ['n2']);
  t.true(s.events.includes('n1 restore-abandoned'));
  t.deepEqual(s.appliedSnapshots.get('n1'), []);
  t.deepEqual(s.appliedTexts('n1'), ['before', 'after']);
});

test('ReadIndex: a read is released only after a quorum confirms the leader', (t) => {
  const s = new Scenario({ voters: 3 });
  s.elect('n1');
  s.propose('n1', 'w');
  s.stabilize();
  t.true(s.core('n1').readIndex(7).ok);
  s.process();
  t.deepEqual(s.readStates.get('n1'), [], 'not before the heartbeat round');
  s.stabilize();
  t.deepEqual(s.readStates.get('n1'), [{ index: 3, context: 7 }]);
  t.false(s.core('n2').readIndex(8).ok, 'followers do not serve ReadIndex');
  void all;
});

test('ReadIndex: reads waiting at one moment share one heartbeat round; reads arriving during it share the next', (t) => {
  const s = new Scenario({ voters: 3 });
  s.elect('n1');
  s.propose('n1', 'w');
  s.stabilize();
  const heartbeats = (): number => s.inbox.filter((m) => m.type === 'heartbeat' && m.from === 'n1').length;
  for (let c = 1; c <= 200; c++) t.true(s.core('n1').readIndex(c).ok);
  s.process();
  t.is(heartbeats(), 2, '200 reads: one heartbeat to each follower, not one per read');
  // Reads arriving while that round is in flight wait for it, then share one more round.
  for (let c = 201; c <= 300; c++) t.true(s.core('n1').readIndex(c).ok);
  s.process();
  t.is(heartbeats(), 2, 'no second round while the first is in flight');
  s.deliver((m) => m.type === 'heartbeat');
  s.deliver((m) => m.type === 'heartbeatResponse');
  t.deepEqual(s.readStates.get('n1')?.map((r) => r.context), Array.from({ length: 200 }, (_, i) => i + 1), 'the first round released its 200 reads, in order');
  t.is(heartbeats(), 2, 'the next round started as soon as the first was confirmed');
  s.stabilize();
  t.deepEqual(s.readStates.get('n1')?.map((r) => r.context), Array.from({ length: 300 }, (_, i) => i + 1));
  t.true(s.readStates.get('n1')?.every((r) => r.index === 3));
});

test('a commit reaches idle followers at the leader\'s next tick, or with the next append: not as a message of its own', (t) => {
  // Heartbeats are far apart here, so only the commit announcement can tell the followers.
  const { s, index: a } = commitUnannounced('a');
  t.is(s.core('n1').commitIndex(), a, 'the leader committed "a" once both followers acknowledged it');
  for (const f of ['n2', 'n3']) t.true(s.core(f).commitIndex() < a, `${f} has not heard of the commit yet: no extra message per write`);
  // A second write carries the first one's commit index with it.
  const b = s.propose('n1', 'b');
  s.stabilize();
  for (const f of ['n2', 'n3']) {
    t.is(s.core(f).commitIndex(), a, `${f} learned of "a" from the append that carried "b"`);
    t.deepEqual(s.appliedTexts(f), ['a']);
  }
  // Idle again: the leader's next tick (not a heartbeat tick) announces the commit of "b".
  s.tick(['n1'], 1);
  s.stabilize();
  for (const f of ['n2', 'n3']) {
    t.is(s.core(f).commitIndex(), b, `${f} learned of "b" at the leader's next tick`);
    t.deepEqual(s.appliedTexts(f), ['a', 'b']);
  }
});

test('a follower\'s read round: with the leader a quorum by themselves, the commit index answers it without a heartbeat round', (t) => {
  const s = new Scenario({ voters: 3 });
  s.elect('n1');
  const a = s.propose('n1', 'a');
  s.stabilize();
  const term = s.core('n1').currentTerm();
  t.is(s.core('n1').readIndexConfirmedBy('n2', term), a, 'n1 and n2 are two of three voters');
  t.is(s.inbox.length, 0, 'no message: no heartbeat round');
  t.is(s.core('n1').readIndexConfirmedBy('n2', term - 1), undefined, 'a call from another term proves nothing about this one');
  t.is(s.core('n1').readIndexConfirmedBy('n2', term + 1), undefined);
  t.is(s.core('n1').readIndexConfirmedBy('n1', term), undefined, 'the leader itself is not a second voter');
  t.is(s.core('n2').readIndexConfirmedBy('n3', term), undefined, 'only the leader answers');
  t.is(s.core('n1').readIndexConfirmedBy('n9', term), undefined, 'not a voter');

  const five = new Scenario({ voters: 5 });
  five.elect('n1');
  five.stabilize();
  t.is(five.core('n1').readIndexConfirmedBy('n2', five.core('n1').currentTerm()), undefined, 'two of five are no quorum: a heartbeat round is needed');

  const learner = new Scenario({ voters: 3, spares: 1 });
  learner.elect('n1');
  learner.stabilize();
  t.true(learner.core('n1').proposeMembership({ kind: 'addNonvoter', id: 'n4' }).ok);
  learner.stabilize();
  t.is(learner.core('n1').readIndexConfirmedBy('n4', learner.core('n1').currentTerm()), undefined, 'a non-voter votes for no one: it proves nothing');
});

test('a deposed leader that has not heard of the new term cannot answer a read round from a follower of the new leader', (t) => {
  const s = new Scenario({ voters: 3 });
  s.elect('n1');
  s.propose('n1', 'old');
  s.stabilize();
  // n1 is cut off; n2 wins the next term with n3 and commits a write n1 never sees.
  s.isolate('n1');
  outlastLease(s, ['n2', 'n3']);
  electOnly(s, 'n2');
  const w = s.propose('n2', 'new');
  s.stabilize();
  t.is(s.core('n2').commitIndex(), w);
  t.is(s.core('n1').currentRole(), 'leader', 'n1 still believes it leads its old term');
  // n3's read round reaches n1 (say, through an address n3 still had): its term is not n1's.
  const n3Term = s.core('n3').currentTerm();
  t.true(n3Term > s.core('n1').currentTerm());
  t.is(s.core('n1').readIndexConfirmedBy('n3', n3Term), undefined, 'answering would serve a state without "new"');
});

test('a follower learns of a commit from the leader\'s answer to its read round when its entry there has the same term', (t) => {
  // Heartbeats are far apart, so only the answer can tell the followers.
  const { s, index: a } = commitUnannounced('a');
  const term = s.core('n1').currentTerm();
  t.true(s.core('n2').commitIndex() < a, 'n2 has not heard of the commit yet');
  const indexTerm = s.core('n1').termAt(a) ?? 0;
  s.core('n2').learnCommit(term, a, indexTerm + 1);
  t.true(s.core('n2').commitIndex() < a, 'another term at that index: our entry may not be the leader\'s');
  s.core('n2').learnCommit(term + 1, a, indexTerm);
  t.true(s.core('n2').commitIndex() < a, 'an answer from another term is not taken');
  s.core('n2').learnCommit(term, a + 1, indexTerm);
  t.true(s.core('n2').commitIndex() < a, 'beyond our log');
  s.core('n2').learnCommit(term, a, indexTerm);
  t.is(s.core('n2').commitIndex(), a);
  s.process();
  t.deepEqual(s.appliedTexts('n2'), ['a'], 'and applies it');
  t.deepEqual(s.appliedTexts('n3'), [], 'n3 still waits for the leader\'s next message');
});

test('a new leader answers no follower\'s read round before it has committed in its term (it may not know of its predecessor\'s last commit)', (t) => {
  // Heartbeats are far apart: the followers have not heard that "w" committed when n1 goes away.
  const { s, index: w } = commitUnannounced('w');
  t.is(s.core('n1').commitIndex(), w, 'acknowledged to its client');
  s.isolate('n1');
  outlastLease(s, ['n2', 'n3']);
  electOnly(s, 'n2');
  t.true(s.core('n2').commitIndex() < w, 'n2 leads without knowing that "w" committed');
  const answer = s.core('n2').readIndexConfirmedBy('n3', s.core('n2').currentTerm());
  t.true(answer === undefined || answer >= w, `answered ${String(answer)}: a read would miss "w"`);
});

test('a follower\'s read round is answered with the commit index, never with entries not yet committed', (t) => {
  const s = new Scenario({ voters: 3, electionTimeoutTicks: 30, heartbeatIntervalTicks: 10 });
  s.elect('n1');
  s.stabilize();
  const term = s.core('n1').currentTerm();
  const b = s.propose('n1', 'b');
  // "b" reaches n2 only, and n2's acknowledgement is lost: n1 holds it uncommitted.
  s.deliverOrDrop((m) => m.type === 'append' && m.to === 'n2');
  s.dropAll();
  t.true(s.core('n1').commitIndex() < b);
  const answer = s.core('n1').readIndexConfirmedBy('n2', term);
  t.true(answer !== undefined && answer < b, `answered ${String(answer)}`);
  s.core('n2').learnCommit(term, answer ?? 0, s.core('n1').termAt(answer ?? 0) ?? 0);
  t.true(s.core('n2').commitIndex() < b, 'n2 does not take "b" as committed');
  s.process();
  t.false(s.appliedTexts('n2').includes('b'));
});
