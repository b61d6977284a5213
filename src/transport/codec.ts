// The peer wire codec: the core's Message <-> the plain objects proto-loader serialises for
// proto/raft.proto. `decodePeerMessage` is the only way a message from the network reaches the core;
// it returns a typed Message or a typed DecodeError (wrong types, missing fields, unsafe integers,
// unknown message types, broken entry or configuration rules).

import { unreachable } from '../base/index.js';
import type {
  AppendMessage,
  AppendResponseMessage,
  Configuration,
  Entry,
  EntryKind,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  Message,
  MessageType,
  NodeId,
  Server,
  SnapshotMessage,
  SnapshotMeta,
  Suffrage,
  TimeoutNowMessage,
  VoteMessage,
  VoteResponseMessage,
} from '../raft/index.js';
import {
  Invalid,
  bool,
  bytes,
  decodeWith,
  enumOf,
  list,
  oneofMember,
  rec,
  reqRec,
  optRec,
  str,
  toHex,
  u64,
  type Decoded,
  type Rec,
} from './wire.js';

/** Node ids longer than this are refused at the boundary (Consul node ids are 36-character UUIDs). */
export const maxNodeIdLength = 256;
/** Server addresses (host:port) longer than this are refused at the boundary. */
export const maxAddressLength = 512;

const messageTypes: readonly MessageType[] = [
  'append',
  'appendResponse',
  'heartbeat',
  'heartbeatResponse',
  'vote',
  'voteResponse',
  'timeoutNow',
  'snapshot',
];

const entryKindsToWire: Readonly<Record<EntryKind, string>> = {
  normal: 'ENTRY_KIND_NORMAL',
  noop: 'ENTRY_KIND_NOOP',
  config: 'ENTRY_KIND_CONFIG',
};
const entryKindsFromWire = new Map<string, EntryKind>(
  Object.entries(entryKindsToWire).map(([k, w]) => [w, k as EntryKind]),
);
const suffragesToWire: Readonly<Record<Suffrage, string>> = {
  voter: 'SUFFRAGE_VOTER',
  nonvoter: 'SUFFRAGE_NONVOTER',
};
const suffragesFromWire = new Map<string, Suffrage>(
  Object.entries(suffragesToWire).map(([k, w]) => [w, k as Suffrage]),
);

/**
 * Compile-time guard: every field of every core message (and of Entry, SnapshotMeta, Server,
 * Configuration) is listed here, so a field added to or removed from src/raft/types.ts fails to
 * compile until proto/raft.proto and this codec carry it too. Optional fields would otherwise be
 * dropped on the wire without a word.
 */
export const wireFields = {
  append: { type: true, from: true, to: true, term: true, prevIndex: true, prevTerm: true, entries: true, commit: true },
  appendResponse: { type: true, from: true, to: true, term: true, reject: true, index: true, hintIndex: true, hintTerm: true },
  heartbeat: { type: true, from: true, to: true, term: true, commit: true, readSeq: true },
  heartbeatResponse: { type: true, from: true, to: true, term: true, readSeq: true },
  vote: { type: true, from: true, to: true, term: true, preVote: true, transfer: true, lastIndex: true, lastTerm: true },
  voteResponse: { type: true, from: true, to: true, term: true, preVote: true, granted: true },
  timeoutNow: { type: true, from: true, to: true, term: true },
  snapshot: { type: true, from: true, to: true, term: true, snapshot: true, commit: true },
} as const satisfies { readonly [K in MessageType]: Readonly<Record<keyof Extract<Message, { type: K }>, true>> };
export const wireEntryFields = { index: true, term: true, kind: true, data: true, config: true } as const satisfies Readonly<
  Record<keyof Entry, true>
>;
export const wireSnapshotMetaFields = { index: true, term: true, configuration: true, configurationIndex: true } as const satisfies Readonly<
  Record<keyof SnapshotMeta, true>
>;
export const wireServerFields = { id: true, suffrage: true, address: true } as const satisfies Readonly<Record<keyof Server, true>>;
export const wireConfigurationFields = { servers: true } as const satisfies Readonly<Record<keyof Configuration, true>>;

// ---------------------------------------------------------------------------------------------
// Encoding: trusted values from the core, so no checks beyond what protobufjs does.
// ---------------------------------------------------------------------------------------------

function encodeConfiguration(c: Configuration): object {
  return {
    servers: c.servers.map((s) =>
      s.address === undefined
        ? { id: s.id, suffrage: suffragesToWire[s.suffrage] }
        : { id: s.id, suffrage: suffragesToWire[s.suffrage], address: s.address },
    ),
  };
}

function encodeEntry(e: Entry): object {
  return {
    index: e.index,
    term: e.term,
    kind: entryKindsToWire[e.kind],
    data: e.data,
    config: e.config === undefined ? null : encodeConfiguration(e.config),
  };
}

export function encodeSnapshotMeta(s: SnapshotMeta): object {
  return {
    index: s.index,
    term: s.term,
    configuration: encodeConfiguration(s.configuration),
    configurationIndex: s.configurationIndex,
  };
}

/** The body of one message, without the oneof wrapper (field names are proto-loader's camelCase). */
export function encodeMessageBody(m: Message): object {
  const head = { from: m.from, to: m.to, term: m.term };
  switch (m.type) {
    case 'append':
      return { ...head, prevIndex: m.prevIndex, prevTerm: m.prevTerm, entries: m.entries.map(encodeEntry), commit: m.commit };
    case 'appendResponse':
      return { ...head, reject: m.reject, index: m.index, hintIndex: m.hintIndex, hintTerm: m.hintTerm };
    case 'heartbeat':
      return { ...head, commit: m.commit, readSeq: m.readSeq };
    case 'heartbeatResponse':
      return { ...head, readSeq: m.readSeq };
    case 'vote':
      return { ...head, preVote: m.preVote, transfer: m.transfer, lastIndex: m.lastIndex, lastTerm: m.lastTerm };
    case 'voteResponse':
      return { ...head, preVote: m.preVote, granted: m.granted };
    case 'timeoutNow':
      return head;
    case 'snapshot':
      return { ...head, snapshot: encodeSnapshotMeta(m.snapshot), commit: m.commit };
    default:
      return unreachable(m);
  }
}

/** A PeerMessage: the oneof member named after the message type (they coincide by design). */
export function encodePeerMessage(m: Message): object {
  return { [m.type]: encodeMessageBody(m) };
}

/** A cheap upper-bound estimate of a message's encoded size, for windows and queue limits. */
export function estimateMessageBytes(m: Message): number {
  const base = 32 + m.from.length + m.to.length;
  if (m.type === 'append') {
    let n = base;
    for (const e of m.entries) {
      n += 32 + e.data.byteLength;
      if (e.config !== undefined) for (const s of e.config.servers) n += 8 + s.id.length;
    }
    return n;
  }
  if (m.type === 'snapshot') {
    return base + 64 + m.snapshot.configuration.servers.reduce((n, s) => n + 8 + s.id.length, 0);
  }
  return base + 32;
}

// ---------------------------------------------------------------------------------------------
// Decoding: untrusted input.
// ---------------------------------------------------------------------------------------------

function nodeId(o: Rec, key: string, path: string): NodeId {
  return str(o, key, path, { nonEmpty: true, maxLength: maxNodeIdLength });
}

function decodeConfiguration(o: Rec, path: string): Configuration {
  const seen = new Set<string>();
  const servers = list(o, 'servers', path).map((raw, i): Server => {
    const p = `${path}.servers[${i}]`;
    const s = rec(raw, p);
    const id = nodeId(s, 'id', p);
    if (seen.has(id)) throw new Invalid(`${p}.id`, `duplicate server id ${JSON.stringify(id)}`);
    seen.add(id);
    const suffrage = enumOf(s, 'suffrage', p, suffragesFromWire);
    // proto3 `optional`: the key is present exactly when the sender set it.
    if (s['address'] === undefined || s['address'] === null) return { id, suffrage };
    return { id, suffrage, address: str(s, 'address', p, { maxLength: maxAddressLength }) };
  });
  return { servers };
}

function decodeEntry(raw: unknown, path: string): Entry {
  const o = rec(raw, path);
  const index = u64(o, 'index', path);
  const term = u64(o, 'term', path);
  const kind = enumOf(o, 'kind', path, entryKindsFromWire);
  const data = bytes(o, 'data', path);
  const configRaw = optRec(o, 'config', path);
  if (kind === 'config') {
    if (configRaw === undefined) throw new Invalid(`${path}.config`, 'missing: a config entry must carry its configuration');
    return { index, term, kind, data, config: decodeConfiguration(configRaw, `${path}.config`) };
  }
  if (configRaw !== undefined) throw new Invalid(`${path}.config`, `present on a ${kind} entry; only config entries carry one`);
  return { index, term, kind, data };
}

export function decodeSnapshotMetaFields(o: Rec, path: string): SnapshotMeta {
  return {
    index: u64(o, 'index', path),
    term: u64(o, 'term', path),
    configuration: decodeConfiguration(reqRec(o, 'configuration', path), `${path}.configuration`),
    configurationIndex: u64(o, 'configurationIndex', path),
  };
}

function decodeAppend(o: Rec, p: string, from: NodeId, to: NodeId, term: number): AppendMessage {
  const prevIndex = u64(o, 'prevIndex', p);
  const entries = list(o, 'entries', p).map((e, i) => decodeEntry(e, `${p}.entries[${i}]`));
  // The core relies on entries[i].index === prevIndex + 1 + i (it computes the last new index as
  // prevIndex + entries.length), so a gap or overlap here would corrupt its log.
  entries.forEach((e, i) => {
    if (e.index !== prevIndex + 1 + i) {
      throw new Invalid(`${p}.entries[${i}].index`, `is ${e.index}; expected ${prevIndex + 1 + i} (entries follow prevIndex ${prevIndex} contiguously)`);
    }
  });
  return {
    type: 'append',
    from,
    to,
    term,
    prevIndex,
    prevTerm: u64(o, 'prevTerm', p),
    entries,
    commit: u64(o, 'commit', p),
  };
}

/** Decodes the body of a SnapshotMessage (shared with the InstallSnapshot header). */
export function decodeSnapshotBody(raw: unknown, p: string): SnapshotMessage {
  const o = rec(raw, p);
  return {
    type: 'snapshot',
    from: nodeId(o, 'from', p),
    to: nodeId(o, 'to', p),
    term: u64(o, 'term', p),
    snapshot: decodeSnapshotMetaFields(reqRec(o, 'snapshot', p), `${p}.snapshot`),
    commit: u64(o, 'commit', p),
  };
}

function decodeBody(type: MessageType, raw: unknown, p: string): Message {
  if (type === 'snapshot') return decodeSnapshotBody(raw, p);
  const o = rec(raw, p);
  const from = nodeId(o, 'from', p);
  const to = nodeId(o, 'to', p);
  const term = u64(o, 'term', p);
  switch (type) {
    case 'append':
      return decodeAppend(o, p, from, to, term);
    case 'appendResponse':
      return {
        type, from, to, term,
        reject: bool(o, 'reject', p),
        index: u64(o, 'index', p),
        hintIndex: u64(o, 'hintIndex', p),
        hintTerm: u64(o, 'hintTerm', p),
      } satisfies AppendResponseMessage;
    case 'heartbeat':
      return { type, from, to, term, commit: u64(o, 'commit', p), readSeq: u64(o, 'readSeq', p) } satisfies HeartbeatMessage;
    case 'heartbeatResponse':
      return { type, from, to, term, readSeq: u64(o, 'readSeq', p) } satisfies HeartbeatResponseMessage;
    case 'vote':
      return {
        type, from, to, term,
        preVote: bool(o, 'preVote', p),
        transfer: bool(o, 'transfer', p),
        lastIndex: u64(o, 'lastIndex', p),
        lastTerm: u64(o, 'lastTerm', p),
      } satisfies VoteMessage;
    case 'voteResponse':
      return { type, from, to, term, preVote: bool(o, 'preVote', p), granted: bool(o, 'granted', p) } satisfies VoteResponseMessage;
    case 'timeoutNow':
      return { type, from, to, term } satisfies TimeoutNowMessage;
    default:
      return unreachable(type);
  }
}

/**
 * Decodes one PeerMessage as proto-loader produced it (or any untrusted value). `allowed` restricts
 * the message types this RPC may carry; others are refused like malformed input.
 */
export function decodePeerMessage(raw: unknown, allowed: readonly MessageType[] = messageTypes): Decoded<Message> {
  return decodeWith(raw, 'message', (v, path) => {
    const o = rec(v, path);
    const type = oneofMember(o, 'body', path, messageTypes) as MessageType;
    if (!allowed.includes(type)) {
      throw new Invalid(`${path}.body`, `${type} is not accepted on this call; expected ${allowed.join(' or ')}`);
    }
    return decodeBody(type, o[type], `${path}.${type}`);
  });
}

// ---------------------------------------------------------------------------------------------
// InstallSnapshot header and stream acks.
// ---------------------------------------------------------------------------------------------

/** What travels ahead of a snapshot's bytes. */
export interface SnapshotHeader {
  /** The core's message; the receiving core gets it once the bytes are stored and verified. */
  readonly message: SnapshotMessage;
  /** Exact length of the snapshot data, in bytes. */
  readonly sizeBytes: number;
  /** SHA-256 of the snapshot data, 64 lowercase hex characters. */
  readonly sha256: string;
}

export function encodeSnapshotHeader(h: SnapshotHeader): object {
  return {
    header: {
      message: encodeMessageBody(h.message),
      sizeBytes: h.sizeBytes,
      sha256: Buffer.from(h.sha256, 'hex'),
    },
  };
}

export function decodeSnapshotHeader(raw: unknown): Decoded<SnapshotHeader> {
  return decodeWith(raw, 'header', (v, path) => {
    const o = rec(v, path);
    const message = decodeSnapshotBody(o['message'] ?? undefined, `${path}.message`);
    const sizeBytes = u64(o, 'sizeBytes', path);
    const sha = bytes(o, 'sha256', path);
    if (sha.byteLength !== 32) throw new Invalid(`${path}.sha256`, `is ${sha.byteLength} bytes; a SHA-256 is 32`);
    return { message, sizeBytes, sha256: toHex(sha) };
  });
}

/** The `consumed` count of a StreamAck. */
export function decodeStreamAck(raw: unknown): Decoded<number> {
  return decodeWith(raw, 'ack', (v, path) => u64(rec(v, path), 'consumed', path));
}
