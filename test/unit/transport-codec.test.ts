// The decode boundary of the peer transport: every message survives protobuf encoding exactly, and
// hostile or malformed input comes back as a typed DecodeError naming the field and the problem.

import test from 'ava';
import type { Message, MessageType } from '../../src/raft/index.js';
import { decodeOutcome, decodePeerMessage, decodeSnapshotHeader, encodePeerMessage, raftPeerService } from '../../src/transport/index.js';
import { sampleMessages } from '../../src/transport/testing.js';

const peerMessage = raftPeerService().vote; // request type PeerMessage
// Mutable, loosely typed view of a decoded wire object, for building hostile variants.
type Wire = Record<string, any>;

/** What proto-loader hands the server for `m`: encode to protobuf bytes and decode again. */
function wire(m: Message): Wire {
  return peerMessage.requestDeserialize(peerMessage.requestSerialize(encodePeerMessage(m))) as Wire;
}

function mutated(m: Message, change: (w: Wire) => void): Wire {
  const w = wire(m);
  change(w);
  return w;
}

const [append, , appendResponse, , heartbeat, , vote, , , , timeoutNow, snapshot] = sampleMessages('a', 'b') as [
  Extract<Message, { type: 'append' }>,
  Message,
  Message,
  Message,
  Message,
  Message,
  Message,
  Message,
  Message,
  Message,
  Message,
  Extract<Message, { type: 'snapshot' }>,
];

test('every message type survives protobuf encoding and decoding exactly', (t) => {
  const samples = sampleMessages('a', 'b');
  const types = new Set<MessageType>();
  for (const m of samples) {
    const d = decodePeerMessage(wire(m));
    if (!d.ok) return t.fail(`${m.type}: ${d.error.message}`);
    t.deepEqual(d.value, m, m.type);
    types.add(m.type);
  }
  t.is(types.size, 8, 'all eight message types covered');
});

interface Hostile {
  readonly name: string;
  readonly input: unknown;
  readonly path: string;
  readonly problem: RegExp;
  readonly allowed?: readonly MessageType[];
}

const hostile: Hostile[] = [
  { name: 'null', input: null, path: 'message', problem: /expected an object, got null/ },
  { name: 'a string', input: 'append', path: 'message', problem: /expected an object/ },
  { name: 'an array', input: [1, 2], path: 'message', problem: /expected an object, got an array/ },
  { name: 'no body', input: {}, path: 'message.body', problem: /missing: no member/ },
  { name: 'unknown type', input: { body: 'installSnapshot', installSnapshot: {} }, path: 'message.body', problem: /unknown member "installSnapshot"/ },
  { name: 'body named but absent', input: { body: 'vote' }, path: 'message.vote', problem: /missing/ },
  { name: 'unsafe term', input: mutated(vote, (w) => (w.vote.term = 2 ** 53)), path: 'message.vote.term', problem: /above 9007199254740991/ },
  { name: 'negative index', input: mutated(vote, (w) => (w.vote.lastIndex = -1)), path: 'message.vote.lastIndex', problem: /unsigned integer, got -1/ },
  { name: 'fractional term', input: mutated(vote, (w) => (w.vote.term = 1.5)), path: 'message.vote.term', problem: /unsigned integer, got 1.5/ },
  { name: 'term as a string', input: mutated(vote, (w) => (w.vote.term = '5')), path: 'message.vote.term', problem: /got "5"/ },
  { name: 'term as a bigint', input: mutated(vote, (w) => (w.vote.term = 5n)), path: 'message.vote.term', problem: /got bigint 5/ },
  { name: 'missing term', input: mutated(vote, (w) => delete w.vote.term), path: 'message.vote.term', problem: /missing/ },
  { name: 'boolean as number', input: mutated(vote, (w) => (w.vote.preVote = 1)), path: 'message.vote.preVote', problem: /expected a boolean/ },
  { name: 'empty from', input: mutated(heartbeat, (w) => (w.heartbeat.from = '')), path: 'message.heartbeat.from', problem: /must not be empty/ },
  { name: 'huge node id', input: mutated(heartbeat, (w) => (w.heartbeat.to = 'x'.repeat(300))), path: 'message.heartbeat.to', problem: /limit is 256/ },
  {
    name: 'unknown entry kind',
    input: mutated(append, (w) => (w.append.entries[0].kind = 9)),
    path: 'message.append.entries[0].kind',
    problem: /unknown value number 9/,
  },
  {
    name: 'unspecified entry kind',
    input: mutated(append, (w) => (w.append.entries[1].kind = 'ENTRY_KIND_UNSPECIFIED')),
    path: 'message.append.entries[1].kind',
    problem: /unknown value "ENTRY_KIND_UNSPECIFIED"/,
  },
  {
    name: 'config entry without configuration',
    input: mutated(append, (w) => (w.append.entries[2].config = null)),
    path: 'message.append.entries[2].config',
    problem: /a config entry must carry its configuration/,
  },
  {
    name: 'normal entry with a configuration',
    input: mutated(append, (w) => (w.append.entries[0].config = { servers: [] })),
    path: 'message.append.entries[0].config',
    problem: /only config entries carry one/,
  },
  {
    name: 'duplicate server ids',
    input: mutated(append, (w) => w.append.entries[2].config.servers.push({ id: 'a', suffrage: 'SUFFRAGE_NONVOTER' })),
    path: 'message.append.entries[2].config.servers[3].id',
    problem: /duplicate server id "a"/,
  },
  {
    name: 'unknown suffrage',
    input: mutated(append, (w) => (w.append.entries[2].config.servers[0].suffrage = 'SUFFRAGE_KING')),
    path: 'message.append.entries[2].config.servers[0].suffrage',
    problem: /unknown value "SUFFRAGE_KING"/,
  },
  {
    name: 'a server address as a number',
    input: mutated(append, (w) => (w.append.entries[2].config.servers[0].address = 8300)),
    path: 'message.append.entries[2].config.servers[0].address',
    problem: /expected a string, got number 8300/,
  },
  {
    name: 'entry data as a string',
    input: mutated(append, (w) => (w.append.entries[0].data = 'AAEC')),
    path: 'message.append.entries[0].data',
    problem: /expected bytes/,
  },
  {
    name: 'entries with a gap',
    input: mutated(append, (w) => (w.append.entries[3].index = 46)),
    path: 'message.append.entries[3].index',
    problem: /is 46; expected 45/,
  },
  {
    name: 'entries not following prevIndex',
    input: mutated(append, (w) => (w.append.prevIndex = 40)),
    path: 'message.append.entries[0].index',
    problem: /expected 41/,
  },
  { name: 'entries not a list', input: mutated(append, (w) => (w.append.entries = {})), path: 'message.append.entries', problem: /expected a list/ },
  {
    name: 'snapshot without meta',
    input: mutated(snapshot, (w) => (w.snapshot.snapshot = null)),
    path: 'message.snapshot.snapshot',
    problem: /missing/,
  },
  {
    name: 'snapshot meta without configuration',
    input: mutated(snapshot, (w) => (w.snapshot.snapshot.configuration = null)),
    path: 'message.snapshot.snapshot.configuration',
    problem: /missing/,
  },
  {
    name: 'a type this call does not carry',
    input: wire(timeoutNow),
    allowed: ['append', 'appendResponse'],
    path: 'message.body',
    problem: /timeoutNow is not accepted on this call; expected append or appendResponse/,
  },
  {
    name: 'appendResponse hint as a string',
    input: mutated(appendResponse, (w) => (w.appendResponse.hintTerm = 'x')),
    path: 'message.appendResponse.hintTerm',
    problem: /expected an unsigned integer/,
  },
];

for (const h of hostile) {
  test(`the decoder refuses ${h.name}`, (t) => {
    const d = decodePeerMessage(h.input, h.allowed);
    if (d.ok) return t.fail(`accepted: ${JSON.stringify(d.value)}`);
    t.is(d.error.code, 'INVALID_MESSAGE');
    t.is(d.error.path, h.path);
    t.regex(d.error.problem, h.problem);
    t.is(d.error.message, `${h.path}: ${d.error.problem}`);
  });
}

test('a uint64 above 2^53 on the wire is refused, not rounded', (t) => {
  // protobufjs accepts decimal strings for uint64 fields: put 2^60 + 1 on the wire.
  const bytes = peerMessage.requestSerialize({ vote: { from: 'a', to: 'b', term: '1152921504606846977', lastIndex: 1 } });
  const d = decodePeerMessage(peerMessage.requestDeserialize(bytes));
  if (d.ok) return t.fail('accepted an unsafe integer');
  t.is(d.error.path, 'message.vote.term');
  t.regex(d.error.problem, /cannot be represented exactly/);
});

test('the snapshot header decoder checks the message, the size and the sha256 length', (t) => {
  const good = {
    message: (wire(snapshot) as Wire).snapshot,
    sizeBytes: 10,
    sha256: Buffer.alloc(32, 0xab),
  };
  const ok = decodeSnapshotHeader(good);
  if (!ok.ok) return t.fail(ok.error.message);
  t.is(ok.value.sha256, 'ab'.repeat(32));
  t.deepEqual(ok.value.message, snapshot);

  const shortSha = decodeSnapshotHeader({ ...good, sha256: Buffer.alloc(31) });
  t.false(shortSha.ok);
  if (!shortSha.ok) t.regex(shortSha.error.message, /header\.sha256: is 31 bytes; a SHA-256 is 32/);

  const unsafe = decodeSnapshotHeader({ ...good, sizeBytes: 2 ** 60 });
  t.false(unsafe.ok);
  if (!unsafe.ok) t.is(unsafe.error.path, 'header.sizeBytes');

  const noMessage = decodeSnapshotHeader({ ...good, message: null });
  t.false(noMessage.ok);
  if (!noMessage.ok) t.is(noMessage.error.path, 'header.message');
});

test('the server RPC outcome decoder refuses codes that are not kebab-case', (t) => {
  const good = decodeOutcome({ outcome: 'error', error: { code: 'not-leader', message: 'x', leader: { id: 'n1', address: '10.0.0.1:8300' } } });
  t.deepEqual(good, { ok: true, value: { ok: false, error: { code: 'not-leader', message: 'x', leader: { id: 'n1', address: '10.0.0.1:8300' } } } });
  const bad = decodeOutcome({ outcome: 'error', error: { code: 'Not Leader', message: 'x', leader: null } });
  t.false(bad.ok);
  if (!bad.ok) t.is(bad.error.path, 'outcome.error.code');
  const none = decodeOutcome({});
  t.false(none.ok);
});
