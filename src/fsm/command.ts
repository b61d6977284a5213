// Commands: the bytes a leader proposes through Raft and every server applies.
//
// Wire format, modelled on Consul's Raft log entries (one MessageType byte, then one msgpack map with
// Consul's request field names), so that log dumps read like Consul's:
//
//   KVS (2)        {Op: "set"|"cas"|"delete"|"delete-cas"|"delete-tree", DirEnt: {...}}
//   KVS (2)        ... also Op "lock" | "unlock" (DirEnt Key Flags Value Session)
//   Session (3)    {Op: "create", Session: {ID, Name, Node, LockDelay, Behavior, TTL, NodeChecks, ServiceChecks}}
//                  {Op: "destroy", Session: {ID}}
//   Tombstone (5)  {Op: "reap", ReapIndex: uint}
//   Txn (8)        {Ops: [{KV: {Verb: <KV verb>, DirEnt: {...}}}, ...]}
//
// `DirEnt` holds exactly the fields its verb uses, in this order: Key, Flags, Value, ModifyIndex, Session
// (set: Key Flags Value; cas: Key Flags Value ModifyIndex; lock, unlock: Key Flags Value Session;
// delete, delete-tree, get, get-or-empty, get-tree, check-not-exists: Key; delete-cas, check-index: Key
// ModifyIndex; check-session: Key Session). The encoder writes them in that order so equal commands are
// equal bytes; the decoder refuses missing, unknown or mistyped fields.
//
// Determinism: a command carries everything its apply needs. Nothing in an apply reads a clock or a
// random source: a new session's ID is drawn before it is proposed. (Lock-delay is Consul's exception,
// and ours: each server notes the wall-clock moment it applied an invalidation in memory only, and only
// the leader consults it, before proposing a lock.)

import { decode, Encoder } from '@msgpack/msgpack';
import { isWellFormedText, utf8DecodeStrict } from '../base/index.js';
import {
  describeValue,
  isPlainMap,
  isSessionId,
  isUint64,
  measureMsgpack,
  toUint,
  toUint64,
  wireUint,
  catalogNameProblem,
  checkAsGo,
  parseRegisterRecord,
  serviceAsGo,
  type CatalogNode,
  type HealthCheck,
  type NodeService,
  type Session,
  type SessionBehavior,
  type Uint64,
} from '../snapshot/index.js';
import { unreachable } from '../base/index.js';
import { CommandError } from './errors.js';
import { fsmLimits } from './limits.js';

/** Consul's structs.MessageType numbers used by our commands. */
export const MessageType = {
  Register: 0,
  Deregister: 1,
  KVS: 2,
  Session: 3,
  Tombstone: 5,
  Txn: 8,
} as const;

/** Consul's structs.IgnoreUnknownTypeFlag: an entry whose type is unknown is skipped, not fatal. */
export const ignoreUnknownTypeFlag = 0x80;

/** KV operations that change state (allowed in a KVS command and in a txn). */
export type KvWriteOp =
  | { readonly verb: 'set'; readonly key: string; readonly value: Uint8Array; readonly flags: Uint64 }
  | {
      readonly verb: 'cas';
      readonly key: string;
      readonly value: Uint8Array;
      /** 0..2^64-1 (Consul's uint64), canonical: a bigint only from 2^53. */
      readonly flags: Uint64;
      /**
       * Expected ModifyIndex; 0 means "create only if the key does not exist". Consul's uint64, canonical
       * as flags: above 2^53-1 it matches no entry (no index of ours gets there), as in Consul it matches none yet.
       */
      readonly index: Uint64;
    }
  /** Takes the lock for `session` (or, for its holder, writes the value); see kv-logic's kvsLock. */
  | { readonly verb: 'lock'; readonly key: string; readonly value: Uint8Array; readonly flags: Uint64; readonly session: string }
  /** Releases the lock `session` holds, writing the value. */
  | { readonly verb: 'unlock'; readonly key: string; readonly value: Uint8Array; readonly flags: Uint64; readonly session: string }
  | { readonly verb: 'delete'; readonly key: string }
  | { readonly verb: 'delete-cas'; readonly key: string; readonly index: Uint64 }
  /** `prefix` '' deletes every key. */
  | { readonly verb: 'delete-tree'; readonly prefix: string };

/** KV operations that only read or check (txn only). */
export type KvReadOp =
  | { readonly verb: 'get'; readonly key: string }
  | { readonly verb: 'get-or-empty'; readonly key: string }
  | { readonly verb: 'get-tree'; readonly prefix: string }
  | { readonly verb: 'check-index'; readonly key: string; readonly index: Uint64 }
  | { readonly verb: 'check-not-exists'; readonly key: string }
  | { readonly verb: 'check-session'; readonly key: string; readonly session: string };

export type KvOp = KvWriteOp | KvReadOp;
export type KvVerb = KvOp['verb'];

/**
 * One operation of a txn. Only KV today; Consul's txn also carries Node, Service, Check and Session
 * operations, which will join this union as new `kind`s.
 */
export type TxnOp = { readonly kind: 'kv'; readonly op: KvOp };

/** What a session create carries: everything but the Raft indexes, which the apply assigns. */
export type NewSession = Omit<Session, 'CreateIndex' | 'ModifyIndex'>;

/** A catalog node as a register carries it: everything but the Raft indexes, which the apply assigns. */
export type NewNode = Omit<CatalogNode, 'CreateIndex' | 'ModifyIndex'>;
/** A service as a register carries it. */
export type NewService = Omit<NodeService, 'CreateIndex' | 'ModifyIndex'>;
/** A check as a register carries it: its Node is the register's, ServiceName/ServiceTags come from its service. */
export type NewCheck = Omit<HealthCheck, 'Node' | 'ServiceName' | 'ServiceTags' | 'CreateIndex' | 'ModifyIndex'>;

export type Command =
  | { readonly type: 'kvs'; readonly op: KvWriteOp }
  /**
   * Consul's RegisterRequest: ensures the node (unless `skipNodeUpdate` and the node exists), then the
   * service, then each check, in one apply.
   */
  | { readonly type: 'catalog-register'; readonly node: NewNode; readonly skipNodeUpdate: boolean; readonly service?: NewService; readonly checks: readonly NewCheck[] }
  /**
   * Consul's DeregisterRequest: with neither `serviceId` nor `checkId` ('' both), the node with all its
   * services and checks; otherwise that service (with its checks) and/or that check.
   */
  | { readonly type: 'catalog-deregister'; readonly node: string; readonly serviceId: string; readonly checkId: string }
  | { readonly type: 'session-create'; readonly session: NewSession }
  | { readonly type: 'session-destroy'; readonly id: string }
  | { readonly type: 'txn'; readonly ops: readonly TxnOp[] }
  /** Leader-driven tombstone GC (Consul's TombstoneRequest reap): drops tombstones with Index <= reapIndex. */
  | { readonly type: 'tombstone-reap'; readonly reapIndex: number };

export type DecodeResult = { readonly ok: true; readonly command: Command } | { readonly ok: false; readonly error: CommandError };

const writeVerbs: ReadonlySet<string> = new Set<KvWriteOp['verb']>(['set', 'cas', 'lock', 'unlock', 'delete', 'delete-cas', 'delete-tree']);
const readVerbs: ReadonlySet<string> = new Set<KvReadOp['verb']>(['get', 'get-or-empty', 'get-tree', 'check-index', 'check-not-exists', 'check-session']);

export function isWriteOp(op: KvOp): op is KvWriteOp {
  return writeVerbs.has(op.verb);
}

// ---------------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------------

/** Encodes a command; throws CommandError if it breaks a rule the decoder would refuse. */
export function encodeCommand(command: Command): Uint8Array {
  const problem = validateCommand(command);
  if (problem !== undefined) throw problem;
  const [type, body] = commandToWire(command);
  const bodyBytes = wireEncoder.encode(body);
  const out = new Uint8Array(1 + bodyBytes.length);
  out[0] = type;
  out.set(bodyBytes, 1);
  if (out.length > fsmLimits.commandMaxBytes) {
    throw new CommandError('COMMAND_TOO_LARGE', '', `command is ${out.length} bytes, above the limit of ${fsmLimits.commandMaxBytes}`);
  }
  // What is proposed must decode on every server: a command the decoder would refuse (an encoder and
  // decoder that disagree, say on a map key such as "__proto__") would stop every server at its apply.
  const back = decodeCommand(out);
  if (!back.ok) throw back.error;
  return out;
}

// useBigInt64 so that Flags from 2^53 go as uint64; every integer is passed through wireUint, since such
// an encoder would write a number from 2^32 as a float64. The bytes for numbers are unchanged.
const wireEncoder = new Encoder({ useBigInt64: true });

function commandToWire(command: Command): [number, Record<string, unknown>] {
  switch (command.type) {
    case 'kvs':
      return [MessageType.KVS, { Op: command.op.verb, DirEnt: dirEntToWire(command.op) }];
    case 'txn':
      return [MessageType.Txn, { Ops: command.ops.map((o) => ({ KV: { Verb: o.op.verb, DirEnt: dirEntToWire(o.op) } })) }];
    case 'tombstone-reap':
      return [MessageType.Tombstone, { Op: 'reap', ReapIndex: wireUint(command.reapIndex) }];
    case 'session-create': {
      const s = command.session;
      return [MessageType.Session, {
        Op: 'create',
        Session: {
          ID: s.ID, Name: s.Name, Node: s.Node, LockDelay: wireUint(s.LockDelay), Behavior: s.Behavior, TTL: s.TTL,
          NodeChecks: [...s.NodeChecks], ServiceChecks: s.ServiceChecks.map((c) => ({ ID: c.ID, Namespace: c.Namespace })),
        },
      }];
    }
    case 'session-destroy':
      return [MessageType.Session, { Op: 'destroy', Session: { ID: command.id } }];
    case 'catalog-register':
      return [MessageType.Register, registerToWire(command)];
    case 'catalog-deregister':
      return [MessageType.Deregister, { Node: command.node, ServiceID: command.serviceId, CheckID: command.checkId }];
    default:
      return unreachable(command);
  }
}

/**
 * Consul's RegisterRequest shape: the node's fields, `Service`, `Checks` and `SkipNodeUpdate`, the same
 * field names as a Register record of state.bin (so one parser reads both), indexes 0.
 */
function registerToWire(command: Extract<Command, { type: 'catalog-register' }>): Record<string, unknown> {
  const n = command.node;
  return {
    ID: n.ID,
    Node: n.Node,
    Address: n.Address,
    Datacenter: n.Datacenter,
    TaggedAddresses: { ...n.TaggedAddresses },
    NodeMeta: { ...n.Meta },
    Service: command.service === undefined ? null : serviceAsGo({ ...command.service, CreateIndex: 0, ModifyIndex: 0 }),
    Checks: command.checks.map((c) => checkAsGo({ ...c, Node: n.Node, ServiceName: '', ServiceTags: [], CreateIndex: 0, ModifyIndex: 0 })),
    SkipNodeUpdate: command.skipNodeUpdate,
  };
}

/** Reads a register's wire body (or checks one about to be encoded) with the Register record parser. */
function registerFromWire(body: unknown): Extract<Command, { type: 'catalog-register' }> {
  const parsed = parseRegisterRecord(body, 0);
  if (!parsed.ok) throw new CommandError('COMMAND_BAD_FIELD', parsed.field ?? '', `Register command: ${parsed.message}`);
  const map = body as Record<string, unknown>;
  const skip = map['SkipNodeUpdate'];
  if (typeof skip !== 'boolean') throw fieldError('SkipNodeUpdate', 'a boolean', skip);
  const { CreateIndex: _c, ModifyIndex: _m, ...node } = parsed.value.node;
  const strip = <T extends { CreateIndex: number; ModifyIndex: number }>(x: T): Omit<T, 'CreateIndex' | 'ModifyIndex'> => {
    const { CreateIndex: _ci, ModifyIndex: _mi, ...rest } = x;
    return rest;
  };
  const checks: NewCheck[] = parsed.value.checks.map((c) => {
    const { Node: _n, ServiceName: _sn, ServiceTags: _st, ...rest } = strip(c);
    return rest;
  });
  const service = parsed.value.service === undefined ? undefined : strip(parsed.value.service);
  return { type: 'catalog-register', node, skipNodeUpdate: skip, ...(service === undefined ? {} : { service }), checks };
}

const newSessionFields = ['ID', 'Name', 'Node', 'LockDelay', 'Behavior', 'TTL', 'NodeChecks', 'ServiceChecks'] as const;

function dirEntToWire(op: KvOp): Record<string, unknown> {
  switch (op.verb) {
    case 'set':
      return { Key: op.key, Flags: wireUint(op.flags), Value: op.value };
    case 'cas':
      return { Key: op.key, Flags: wireUint(op.flags), Value: op.value, ModifyIndex: wireUint(op.index) };
    case 'lock':
    case 'unlock':
      return { Key: op.key, Flags: wireUint(op.flags), Value: op.value, Session: op.session };
    case 'check-session':
      return { Key: op.key, Session: op.session };
    case 'delete':
    case 'get':
    case 'get-or-empty':
    case 'check-not-exists':
      return { Key: op.key };
    case 'delete-tree':
    case 'get-tree':
      return { Key: op.prefix };
    case 'delete-cas':
    case 'check-index':
      return { Key: op.key, ModifyIndex: wireUint(op.index) };
    default:
      return unreachable(op);
  }
}

/** The fields each verb's DirEnt carries, in wire order. */
const dirEntFields: Readonly<Record<KvVerb, readonly string[]>> = {
  set: ['Key', 'Flags', 'Value'],
  cas: ['Key', 'Flags', 'Value', 'ModifyIndex'],
  lock: ['Key', 'Flags', 'Value', 'Session'],
  unlock: ['Key', 'Flags', 'Value', 'Session'],
  delete: ['Key'],
  'delete-cas': ['Key', 'ModifyIndex'],
  'delete-tree': ['Key'],
  get: ['Key'],
  'get-or-empty': ['Key'],
  'get-tree': ['Key'],
  'check-index': ['Key', 'ModifyIndex'],
  'check-not-exists': ['Key'],
  'check-session': ['Key', 'Session'],
};

// ---------------------------------------------------------------------------------------------------
// Validation (shared by the encoder and the decoder, so both enforce the same rules)
// ---------------------------------------------------------------------------------------------------

export function validateCommand(command: Command): CommandError | undefined {
  switch (command.type) {
    case 'kvs':
      if (!writeVerbs.has(command.op.verb)) {
        return new CommandError('COMMAND_BAD_FIELD', 'Op', `KVS command cannot carry the read verb "${command.op.verb}"; use a txn`);
      }
      return validateKvOp(command.op, 'DirEnt');
    case 'txn': {
      if (command.ops.length === 0) return new CommandError('COMMAND_BAD_FIELD', 'Ops', 'txn command has no operations');
      if (command.ops.length > fsmLimits.txnOpsMaxCount) {
        return new CommandError('COMMAND_BAD_FIELD', 'Ops',
          `txn command has ${command.ops.length} operations, above the limit of ${fsmLimits.txnOpsMaxCount}`);
      }
      for (let i = 0; i < command.ops.length; i++) {
        const problem = validateKvOp((command.ops[i] as TxnOp).op, `Ops[${i}].KV.DirEnt`);
        if (problem !== undefined) return problem;
      }
      return undefined;
    }
    case 'tombstone-reap':
      return toUint(command.reapIndex) === undefined ? badField('ReapIndex', 'an integer in 0..2^53-1', command.reapIndex) : undefined;
    case 'session-create':
      return validateNewSession(command.session);
    case 'session-destroy':
      return isSessionId(command.id) ? undefined : badField('Session.ID', 'a session UUID', command.id);
    case 'catalog-register':
      try {
        registerFromWire(registerToWire(command));
        return undefined;
      } catch (error) {
        if (error instanceof CommandError) return error;
        return new CommandError('COMMAND_BAD_FIELD', '', `Register command is malformed: ${String(error)}`);
      }
    case 'catalog-deregister': {
      const problem = catalogNameProblem(command.node);
      if (problem !== undefined) return new CommandError('COMMAND_BAD_FIELD', 'Node', `Deregister command: Node ${problem}`);
      for (const [field, v] of [['ServiceID', command.serviceId], ['CheckID', command.checkId]] as const) {
        if (typeof v !== 'string' || (v !== '' && catalogNameProblem(v) !== undefined)) return badField(field, "'' or a catalog ID", v);
      }
      return undefined;
    }
    default:
      return unreachable(command);
  }
}

function validateNewSession(s: NewSession): CommandError | undefined {
  if (typeof s.ID !== 'string' || !isSessionId(s.ID)) return badField('Session.ID', 'a session UUID', s.ID);
  for (const name of ['Name', 'Node', 'TTL'] as const) {
    if (typeof s[name] !== 'string' || !isWellFormedText(s[name])) return badField(`Session.${name}`, 'a string', s[name]);
  }
  if (s.Node === '') return new CommandError('COMMAND_BAD_FIELD', 'Session.Node', 'Session.Node is empty');
  if (toUint(s.LockDelay) === undefined) return badField('Session.LockDelay', 'an integer in 0..2^53-1 (nanoseconds)', s.LockDelay);
  if (s.Behavior !== 'release' && s.Behavior !== 'delete') return badField('Session.Behavior', '"release" or "delete"', s.Behavior);
  if (!Array.isArray(s.NodeChecks) || !s.NodeChecks.every((c) => typeof c === 'string' && isWellFormedText(c))) {
    return badField('Session.NodeChecks', 'a list of strings', s.NodeChecks);
  }
  if (!Array.isArray(s.ServiceChecks) || !s.ServiceChecks.every((c) => typeof c?.ID === 'string' && typeof c?.Namespace === 'string'
    && isWellFormedText(c.ID) && isWellFormedText(c.Namespace))) {
    return badField('Session.ServiceChecks', 'a list of {ID, Namespace}', s.ServiceChecks);
  }
  return undefined;
}

function validateKvOp(op: KvOp, at: string): CommandError | undefined {
  if (!writeVerbs.has(op.verb) && !readVerbs.has(op.verb)) {
    return new CommandError('COMMAND_BAD_FIELD', at, `unknown KV verb ${JSON.stringify(op.verb)}`);
  }
  const key = 'key' in op ? op.key : op.prefix;
  if (typeof key !== 'string') return badField(`${at}.Key`, 'a string', key);
  if (!isWellFormedText(key)) {
    return new CommandError('COMMAND_BAD_FIELD', `${at}.Key`, 'key holds a lone UTF-16 surrogate and has no UTF-8 form');
  }
  // Consul's kvsPreApply: "Must provide key" for every verb but delete-tree (whose '' means everything).
  // The HTTP layer turns this into Consul's answer (400, or a TxnError) before anything is proposed.
  if (key === '' && op.verb !== 'delete-tree') return new CommandError('COMMAND_BAD_FIELD', `${at}.Key`, 'Must provide key');
  if ('flags' in op && !isUint64(op.flags)) return badField(`${at}.Flags`, 'an integer in 0..2^64-1 (a bigint only from 2^53)', op.flags);
  if ('value' in op && !(op.value instanceof Uint8Array)) return badField(`${at}.Value`, 'bytes', op.value);
  if ('index' in op && !isUint64(op.index)) return badField(`${at}.ModifyIndex`, 'an integer in 0..2^64-1 (a bigint only from 2^53)', op.index);
  // Consul's kvsLockTxn and kvsUnlockTxn answer an empty session with "missing session" at apply; any
  // other session must be an ID (a UUID), which keeps session IDs safe in the derived index's keys.
  if ('session' in op && (typeof op.session !== 'string' || (op.session !== '' && !isSessionId(op.session)))) {
    return badField(`${at}.Session`, 'a session UUID', op.session);
  }
  return undefined;
}

function badField(path: string, expected: string, got: unknown): CommandError {
  return new CommandError('COMMAND_BAD_FIELD', path, `${path} must be ${expected}, got ${describeValue(got)}`);
}

// ---------------------------------------------------------------------------------------------------
// Decoding: hostile bytes give a CommandError, never an exception.
// ---------------------------------------------------------------------------------------------------

export function decodeCommand(bytes: Uint8Array): DecodeResult {
  try {
    const command = decodeOrThrow(bytes);
    const problem = validateCommand(command);
    return problem === undefined ? { ok: true, command } : { ok: false, error: problem };
  } catch (error) {
    if (error instanceof CommandError) return { ok: false, error };
    // Anything else escaping the decoder is also bad input (e.g. a DecodeError from @msgpack/msgpack).
    const message = `command body is not valid msgpack: ${String(error)}`;
    return { ok: false, error: new CommandError('COMMAND_BAD_MSGPACK', '', message, { cause: error }) };
  }
}

function decodeOrThrow(bytes: Uint8Array): Command {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new CommandError('COMMAND_EMPTY', '', 'command is empty');
  if (bytes.length > fsmLimits.commandMaxBytes) {
    throw new CommandError('COMMAND_TOO_LARGE', '', `command is ${bytes.length} bytes, above the limit of ${fsmLimits.commandMaxBytes}`);
  }
  const type = bytes[0] as number;
  const body = decodeBody(bytes);
  switch (type) {
    case MessageType.KVS: {
      const map = expectMap(body, '', ['Op', 'DirEnt']);
      const verb = expectString(map['Op'], 'Op');
      if (!writeVerbs.has(verb)) {
        throw new CommandError('COMMAND_BAD_FIELD', 'Op', `KVS command has unknown or read-only Op ${JSON.stringify(verb)}`);
      }
      return { type: 'kvs', op: decodeKvOp(verb as KvVerb, map['DirEnt'], 'DirEnt') as KvWriteOp };
    }
    case MessageType.Txn: {
      const map = expectMap(body, '', ['Ops']);
      const ops = map['Ops'];
      if (!Array.isArray(ops)) throw fieldError('Ops', 'an array', ops);
      if (ops.length > fsmLimits.txnOpsMaxCount) {
        throw new CommandError('COMMAND_BAD_FIELD', 'Ops',
          `txn command has ${ops.length} operations, above the limit of ${fsmLimits.txnOpsMaxCount}`);
      }
      return { type: 'txn', ops: ops.map((raw, i) => decodeTxnOp(raw, `Ops[${i}]`)) };
    }
    case MessageType.Session: {
      const op = expectString(expectMapWith(body, '', ['Op', 'Session'])['Op'], 'Op');
      if (op === 'destroy') {
        const map = expectMap(body, '', ['Op', 'Session']);
        const s = expectMap(map['Session'], 'Session', ['ID']);
        return { type: 'session-destroy', id: expectString(s['ID'], 'Session.ID') };
      }
      if (op !== 'create') throw new CommandError('COMMAND_BAD_FIELD', 'Op', `Session command has unknown Op ${JSON.stringify(op)}`);
      const map = expectMap(body, '', ['Op', 'Session']);
      const s = expectMap(map['Session'], 'Session', newSessionFields);
      const behavior = expectString(s['Behavior'], 'Session.Behavior');
      const nodeChecks = s['NodeChecks'];
      const serviceChecks = s['ServiceChecks'];
      if (!Array.isArray(nodeChecks)) throw fieldError('Session.NodeChecks', 'an array', nodeChecks);
      if (!Array.isArray(serviceChecks)) throw fieldError('Session.ServiceChecks', 'an array', serviceChecks);
      return {
        type: 'session-create',
        session: {
          ID: expectString(s['ID'], 'Session.ID'),
          Name: expectString(s['Name'], 'Session.Name'),
          Node: expectString(s['Node'], 'Session.Node'),
          LockDelay: expectUint(s['LockDelay'], 'Session.LockDelay'),
          Behavior: behavior === 'delete' ? 'delete' : behavior === 'release' ? 'release' : (behavior as SessionBehavior),
          TTL: expectString(s['TTL'], 'Session.TTL'),
          NodeChecks: nodeChecks.map((c, i) => expectString(c, `Session.NodeChecks[${i}]`)),
          ServiceChecks: serviceChecks.map((c, i) => {
            const m = expectMap(c, `Session.ServiceChecks[${i}]`, ['ID', 'Namespace']);
            return { ID: expectString(m['ID'], `Session.ServiceChecks[${i}].ID`), Namespace: expectString(m['Namespace'], `Session.ServiceChecks[${i}].Namespace`) };
          }),
        },
      };
    }
    case MessageType.Register: {
      expectMap(body, '', ['ID', 'Node', 'Address', 'Datacenter', 'TaggedAddresses', 'NodeMeta', 'Service', 'Checks', 'SkipNodeUpdate']);
      return registerFromWire(body);
    }
    case MessageType.Deregister: {
      const map = expectMap(body, '', ['Node', 'ServiceID', 'CheckID']);
      return {
        type: 'catalog-deregister',
        node: expectString(map['Node'], 'Node'),
        serviceId: expectString(map['ServiceID'], 'ServiceID'),
        checkId: expectString(map['CheckID'], 'CheckID'),
      };
    }
    case MessageType.Tombstone: {
      const map = expectMap(body, '', ['Op', 'ReapIndex']);
      const op = expectString(map['Op'], 'Op');
      if (op !== 'reap') throw new CommandError('COMMAND_BAD_FIELD', 'Op', `Tombstone command has unknown Op ${JSON.stringify(op)}`);
      return { type: 'tombstone-reap', reapIndex: expectUint(map['ReapIndex'], 'ReapIndex') };
    }
    default:
      throw new CommandError('COMMAND_UNKNOWN_TYPE', '',
        `unknown command type ${type}${type & ignoreUnknownTypeFlag ? ' (IgnoreUnknownTypeFlag set)' : ''}`);
  }
}

/** Decodes the single msgpack value after the type byte, refusing truncation and trailing bytes. */
function decodeBody(bytes: Uint8Array): unknown {
  const frame = measureMsgpack(bytes, 1, bytes.length, bytes.length);
  switch (frame.kind) {
    case 'complete':
      if (frame.end !== bytes.length) {
        throw new CommandError('COMMAND_TRAILING_BYTES', '', `command has ${bytes.length - frame.end} bytes after its msgpack body`);
      }
      break;
    case 'incomplete':
    case 'too-large':
      throw new CommandError('COMMAND_BAD_MSGPACK', '', 'command body is truncated msgpack');
    case 'invalid':
      throw new CommandError('COMMAND_BAD_MSGPACK', '', `command body is not valid msgpack: ${frame.reason}`);
    case 'too-many-values':
      // Not asked for here: a command's size limit already bounds it.
      throw new CommandError('COMMAND_TOO_LARGE', '', `command body holds more than ${frame.maxValues} msgpack values`);
    default:
      return unreachable(frame);
  }
  // rawStrings: string values arrive as bytes so that invalid UTF-8 is refused (below) instead of being
  // replaced by U+FFFD; useBigInt64: 64-bit integers arrive exact so that overflow is refused, not rounded.
  return decode(bytes.subarray(1), { rawStrings: true, useBigInt64: true });
}

function decodeTxnOp(raw: unknown, at: string): TxnOp {
  const map = expectMap(raw, at, ['KV']);
  const kv = expectMap(map['KV'], `${at}.KV`, ['Verb', 'DirEnt']);
  const verb = expectString(kv['Verb'], `${at}.KV.Verb`);
  if (!writeVerbs.has(verb) && !readVerbs.has(verb)) {
    throw new CommandError('COMMAND_BAD_FIELD', `${at}.KV.Verb`, `unknown KV verb ${JSON.stringify(verb)}`);
  }
  return { kind: 'kv', op: decodeKvOp(verb as KvVerb, kv['DirEnt'], `${at}.KV.DirEnt`) };
}

function decodeKvOp(verb: KvVerb, raw: unknown, at: string): KvOp {
  const fields = dirEntFields[verb];
  const map = expectMap(raw, at, fields);
  const key = expectString(map['Key'], `${at}.Key`);
  switch (verb) {
    case 'set':
      return { verb, key, flags: expectUint64(map['Flags'], `${at}.Flags`), value: expectBytes(map['Value'], `${at}.Value`) };
    case 'cas':
      return {
        verb,
        key,
        flags: expectUint64(map['Flags'], `${at}.Flags`),
        value: expectBytes(map['Value'], `${at}.Value`),
        index: expectUint64(map['ModifyIndex'], `${at}.ModifyIndex`),
      };
    case 'lock':
    case 'unlock':
      return {
        verb,
        key,
        flags: expectUint64(map['Flags'], `${at}.Flags`),
        value: expectBytes(map['Value'], `${at}.Value`),
        session: expectString(map['Session'], `${at}.Session`),
      };
    case 'check-session':
      return { verb, key, session: expectString(map['Session'], `${at}.Session`) };
    case 'delete':
    case 'get':
    case 'get-or-empty':
    case 'check-not-exists':
      return { verb, key };
    case 'delete-tree':
    case 'get-tree':
      return { verb, prefix: key };
    case 'delete-cas':
    case 'check-index':
      return { verb, key, index: expectUint64(map['ModifyIndex'], `${at}.ModifyIndex`) };
    default:
      return unreachable(verb);
  }
}

/** A map holding at least `fields` (the rest is checked once the map's kind is known). */
function expectMapWith(value: unknown, at: string, fields: readonly string[]): Record<string, unknown> {
  if (!isPlainMap(value)) throw fieldError(at === '' ? 'body' : at, 'a map', value);
  for (const name of fields) {
    if (!Object.prototype.hasOwnProperty.call(value, name)) {
      throw new CommandError('COMMAND_BAD_FIELD', join(at, name), `${join(at, name)} is missing`);
    }
  }
  return value;
}

/** A map holding exactly `fields` (each present, nothing else). */
function expectMap(value: unknown, at: string, fields: readonly string[]): Record<string, unknown> {
  if (!isPlainMap(value)) throw fieldError(at === '' ? 'body' : at, 'a map', value);
  for (const name of fields) {
    if (!Object.prototype.hasOwnProperty.call(value, name)) {
      throw new CommandError('COMMAND_BAD_FIELD', join(at, name), `${join(at, name)} is missing`);
    }
  }
  for (const name of Object.keys(value)) {
    if (!fields.includes(name)) {
      throw new CommandError('COMMAND_UNKNOWN_FIELD', join(at, name),
        `${join(at, name)} is not a field of this command (expected ${fields.join(', ')})`);
    }
  }
  return value;
}

function expectString(value: unknown, at: string): string {
  if (!(value instanceof Uint8Array)) throw fieldError(at, 'a string', value);
  const text = utf8DecodeStrict(value);
  if (text === undefined) throw new CommandError('COMMAND_BAD_FIELD', at, `${at} is not valid UTF-8`);
  return text;
}

function expectBytes(value: unknown, at: string): Uint8Array {
  if (value === null) return new Uint8Array(0);
  if (!(value instanceof Uint8Array)) throw fieldError(at, 'bytes', value);
  return value.slice(); // own copy: the caller may reuse its buffer
}

function expectUint(value: unknown, at: string): number {
  const n = toUint(value);
  if (n === undefined) throw fieldError(at, 'an integer in 0..2^53-1', value);
  return n;
}

function expectUint64(value: unknown, at: string): Uint64 {
  const n = toUint64(value);
  if (n === undefined) throw fieldError(at, 'an integer in 0..2^64-1', value);
  return n;
}

function fieldError(at: string, expected: string, got: unknown): CommandError {
  return new CommandError('COMMAND_BAD_FIELD', at, `${at} must be ${expected}, got ${describeValue(got)}`);
}

function join(at: string, name: string): string {
  return at === '' ? name : `${at}.${name}`;
}
