// The Ready loop as the server runs it (Promises for waits, setImmediate for rounds), over a real
// RaftCore: the order of a round against a disk that answers when the test says so, holding, and
// what a failed port does. The simulator runs the same loop under faults; this pins the basics.
import test, { type ExecutionContext } from 'ava';
import { ReadyLoop, type RoundWrite } from '../../src/node/index.js';
import { RaftCore, SeededRandom, bootstrapState, type Configuration, type Entry, type Message } from '../../src/raft/index.js';

const config: Configuration = { servers: ['n1', 'n2', 'n3'].map((id) => ({ id, suffrage: 'voter' as const })) };

function core(id: string): RaftCore {
  return new RaftCore({
    id,
    electionTimeoutTicks: 10,
    heartbeatIntervalTicks: 2,
    random: new SeededRandom(7),
    maxMessageBytes: 1 << 20,
    maxInflightMessages: 8,
    initial: bootstrapState(config),
  });
}

/** A disk whose writes finish when the test releases them, and a log of what happened in which order. */
function harness(c: RaftCore, opts: { failPersist?: boolean; flush?: boolean } = {}) {
  const events: string[] = [];
  const sent: Message[] = [];
  const pending: Array<() => void> = [];
  let fatal: Error | undefined;
  const loop = new ReadyLoop<Promise<void>>(c, {
    log: {
      persist: (w: RoundWrite) => {
        events.push(`persist ${w.entries.map((e) => e.index).join(',')}${w.hardState ? ` term ${w.hardState.term}` : ''}`);
        if (opts.failPersist === true) return Promise.reject(new Error('disk on fire'));
        return new Promise<void>((resolve) => pending.push(() => {
          events.push('durable');
          resolve();
        }));
      },
    },
    stateMachine: {
      installSnapshot: () => undefined,
      apply: (entries: readonly Entry[]) => {
        events.push(`apply ${entries.map((e) => e.index).join(',')}`);
        return undefined;
      },
    },
    transport: {
      send: (m: Message) => {
        sent.push(m);
        events.push(`send ${m.type} to ${m.to}`);
      },
      ...(opts.flush === true
        ? {
            flush: () => {
              events.push('flush');
              return new Promise<void>((resolve) => setImmediate(() => {
                events.push('flushed');
                resolve();
              }));
            },
          }
        : {}),
    },
    schedule: (f) => void setImmediate(f),
    wait: (w, resume, fail) => void w.then(resume, fail),
    afterRound: () => events.push('after'),
    onFatal: (e) => (fatal = e),
  });
  const settle = (): Promise<void> => new Promise((r) => setImmediate(() => setImmediate(r)));
  const release = async (): Promise<void> => {
    for (let i = 0; i < 20 && pending.length === 0; i++) await settle();
    pending.shift()?.();
    await settle();
  };
  return { loop, events, sent, release, settle, fatal: () => fatal };
}

/**
 * Makes n1 the leader with n2's votes, and has n2 take the no-op, so n2's progress is in replicate,
 * where appends are sent optimistically; then waits for the loop to be idle and clears the events.
 */
async function becomeLeader(t: ExecutionContext, c: RaftCore, h: ReturnType<typeof harness>): Promise<void> {
  c.campaign();
  h.loop.kick();
  // Pre-vote, then vote: n2 grants each request n1 sends it.
  for (let i = 0; i < 10 && c.currentRole() !== 'leader'; i++) {
    await h.release();
    for (const m of h.sent.splice(0)) {
      if (m.type === 'vote' && m.to === 'n2') h.loop.step({ type: 'voteResponse', from: 'n2', to: 'n1', term: m.term, preVote: m.preVote, granted: true });
    }
    await h.settle();
  }
  t.is(c.currentRole(), 'leader');
  for (let i = 0; i < 10 && c.commitIndex() < 2; i++) {
    await h.release();
    for (const m of h.sent.splice(0)) {
      if (m.type === 'append' && m.to === 'n2') {
        h.loop.step({ type: 'appendResponse', from: 'n2', to: 'n1', term: m.term, reject: false, index: m.prevIndex + m.entries.length, hintIndex: 0, hintTerm: 0 });
      }
    }
    await h.settle();
  }
  t.is(c.commitIndex(), 2, 'the no-op committed');
  while (h.loop.busy()) await h.release();
  h.events.length = 0;
}

test("a follower's acknowledgement leaves only once its entries are durable", async (t) => {
  const h = harness(core('n2'));
  const entry: Entry = { index: 2, term: 2, kind: 'normal', data: new Uint8Array([1]) };
  h.loop.step({ type: 'append', from: 'n1', to: 'n2', term: 2, prevIndex: 1, prevTerm: 1, entries: [entry], commit: 0 });
  await h.settle();
  t.deepEqual(h.events, ['persist 2 term 2'], 'the round waits on the disk, having sent nothing');
  await h.release();
  t.deepEqual(h.events.slice(0, 3), ['persist 2 term 2', 'durable', 'send appendResponse to n1']);
  t.is(h.events[3], 'after');
});

test("a leader's appends leave before its own write is durable; the commit waits for it", async (t) => {
  const c = core('n1');
  const h = harness(c);
  await becomeLeader(t, c, h);
  const r = c.propose(new Uint8Array([9]));
  t.true(r.ok);
  h.loop.kick();
  await h.settle();
  const persistAt = h.events.findIndex((e) => e.startsWith('persist'));
  const appendsAt = h.events.findIndex((e) => e.startsWith('send append to'));
  t.true(appendsAt >= 0 && appendsAt < persistAt, `appends before the leader's own write: ${h.events.join(' | ')}`);
  t.false(h.events.includes('durable'));
  t.false(h.events.some((e) => e.startsWith('apply')), 'nothing applies while the leader\'s write is not durable');
});

test('hold() waits for the round in progress and starts no other until release()', async (t) => {
  const h = harness(core('n2'));
  const entry = (index: number): Entry => ({ index, term: 2, kind: 'normal', data: new Uint8Array([index]) });
  h.loop.step({ type: 'append', from: 'n1', to: 'n2', term: 2, prevIndex: 1, prevTerm: 1, entries: [entry(2)], commit: 0 });
  await h.settle();
  let held = false;
  const holding = h.loop.hold().then(() => (held = true));
  await h.settle();
  t.false(held, 'a round waits on the disk: hold() waits for it');
  await h.release();
  await holding;
  t.true(held);
  h.loop.step({ type: 'append', from: 'n1', to: 'n2', term: 2, prevIndex: 2, prevTerm: 2, entries: [entry(3)], commit: 0 });
  await h.settle();
  t.false(h.events.includes('persist 3'), 'no round while held');
  h.loop.release();
  await h.settle();
  t.true(h.events.includes('persist 3'));
});

test('a failed write stops the loop: nothing after it is sent and no round runs again', async (t) => {
  const h = harness(core('n2'), { failPersist: true });
  const entry: Entry = { index: 2, term: 2, kind: 'normal', data: new Uint8Array([1]) };
  h.loop.step({ type: 'append', from: 'n1', to: 'n2', term: 2, prevIndex: 1, prevTerm: 1, entries: [entry], commit: 0 });
  await h.settle();
  await h.settle();
  t.is(h.fatal()?.message, 'disk on fire');
  t.false(h.events.some((e) => e.startsWith('send')), 'the acknowledgement never leaves');
  t.false(h.loop.busy());
  h.loop.step({ type: 'append', from: 'n1', to: 'n2', term: 2, prevIndex: 2, prevTerm: 2, entries: [{ ...entry, index: 3 }], commit: 0 });
  await h.settle();
  t.is(h.events.filter((e) => e.startsWith('persist')).length, 1);
});

test("with a transport that flushes, a follower's acknowledgement leaves before its apply, and a leader's appends before its persist", async (t) => {
  const f = harness(core('n2'), { flush: true });
  const entry = (index: number): Entry => ({ index, term: 2, kind: 'normal', data: new Uint8Array([index]) });
  f.loop.step({ type: 'append', from: 'n1', to: 'n2', term: 2, prevIndex: 1, prevTerm: 1, entries: [entry(2)], commit: 0 });
  await f.release();
  t.deepEqual(f.events, ['persist 2 term 2', 'durable', 'send appendResponse to n1', 'after'], 'nothing to apply: no wait');
  f.events.length = 0;
  f.loop.step({ type: 'append', from: 'n1', to: 'n2', term: 2, prevIndex: 2, prevTerm: 2, entries: [entry(3)], commit: 2 });
  await f.release();
  t.deepEqual(f.events, ['persist 3', 'durable', 'send appendResponse to n1', 'flush', 'flushed', 'apply 1,2', 'after']);

  const c = core('n1');
  const l = harness(c, { flush: true });
  await becomeLeader(t, c, l);
  t.true(c.propose(new Uint8Array([9])).ok);
  l.loop.kick();
  await l.settle();
  const at = (prefix: string): number => l.events.findIndex((e) => e.startsWith(prefix));
  t.true(at('send append to') >= 0 && at('send append to') < at('flush') && at('flushed') < at('persist'), l.events.join(' | '));
});
