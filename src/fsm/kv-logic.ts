// Consul's KV semantics, operation by operation, over a KvTxn.
//
// Each function follows the function of the same name in Consul's agent/consul/state/kvs.go (and
// kvs_ce.go, txn.go, graveyard.go); the comments note where behaviour is surprising but deliberate.
// Nothing here reads a clock or a random source: the same log gives the same state on every server.

import type { KvOp, TxnOp } from './command.js';
import { unreachable } from '../base/index.js';
import type { KvTxn } from './store.js';
import type { DirEntry, LogIndex, Session, TxnError, TxnResult } from './types.js';
import type { Uint64 } from '../snapshot/index.js';

const emptyValue = new Uint8Array(0);

interface SetRequest {
  readonly Key: string;
  readonly Flags: Uint64;
  readonly Value: Uint8Array;
  /** Consul takes LockIndex from the request on a plain set (always 0 from the HTTP and txn APIs). */
  readonly LockIndex: number;
  readonly Session: string;
}

/**
 * kvsSetTxn: CreateIndex is kept from an existing entry, Session too unless `updateSession`; an update
 * that changes nothing (LockIndex, Flags, Value, Session equal) writes nothing and keeps ModifyIndex.
 * Returns the entry as stored (Consul returns it to txn callers).
 */
export async function kvsSet(txn: KvTxn, idx: LogIndex, request: SetRequest, updateSession: boolean): Promise<DirEntry> {
  const existing = await txn.get(request.Key);
  const session = updateSession ? request.Session : (existing?.Session ?? '');
  const candidate = {
    Key: request.Key,
    Flags: request.Flags,
    Value: request.Value,
    LockIndex: request.LockIndex,
    Session: session,
    CreateIndex: existing?.CreateIndex ?? idx,
  };
  if (existing !== undefined && sameContent(existing, candidate)) {
    return { ...candidate, ModifyIndex: existing.ModifyIndex };
  }
  const stored: DirEntry = { ...candidate, ModifyIndex: idx };
  txn.put(stored, existing?.Session ?? '');
  txn.setTableIndex('kvs', idx);
  return stored;
}

/** Consul's DirEntry.Equal: LockIndex, Key, Flags, Value and Session (not the Raft indexes). */
function sameContent(a: Omit<DirEntry, 'ModifyIndex' | 'CreateIndex'>, b: Omit<DirEntry, 'ModifyIndex' | 'CreateIndex'>): boolean {
  if (a.LockIndex !== b.LockIndex || a.Key !== b.Key || a.Flags !== b.Flags || a.Session !== b.Session) return false;
  if (a.Value.length !== b.Value.length) return false;
  for (let i = 0; i < a.Value.length; i++) if (a.Value[i] !== b.Value[i]) return false;
  return true;
}

/** kvsSetCASTxn: index 0 sets only if the key is absent; otherwise only if ModifyIndex matches. */
export async function kvsSetCas(txn: KvTxn, idx: LogIndex, request: SetRequest, casIndex: Uint64): Promise<DirEntry | undefined> {
  const existing = await txn.get(request.Key);
  if (casIndex === 0 && existing !== undefined) return undefined;
  if (casIndex !== 0 && existing === undefined) return undefined;
  if (existing !== undefined && casIndex !== 0 && casIndex !== existing.ModifyIndex) return undefined;
  return kvsSet(txn, idx, request, false);
}

/** kvsDeleteTxn: deleting a missing key changes nothing (no tombstone, no index bump). */
export async function kvsDelete(txn: KvTxn, idx: LogIndex, key: string): Promise<void> {
  const existing = await txn.get(key);
  if (existing === undefined) return;
  insertTombstone(txn, key, idx);
  txn.remove(key, existing.Session);
  txn.setTableIndex('kvs', idx);
}

/**
 * kvsDeleteCASTxn: deletes only if ModifyIndex matches. Note Consul's answer for a missing key: true
 * (nothing to delete counts as success), which we keep.
 */
export async function kvsDeleteCas(txn: KvTxn, idx: LogIndex, casIndex: Uint64, key: string): Promise<boolean> {
  const existing = await txn.get(key);
  if (existing === undefined || existing.ModifyIndex !== casIndex) return existing === undefined;
  await kvsDelete(txn, idx, key);
  return true;
}

/**
 * kvsDeleteTreeTxn (modern Consul): deletes every key under the prefix and leaves ONE tombstone, keyed by
 * the prefix itself, none at all when the prefix is '' (the table index then carries the change).
 * Nothing matched: nothing changes.
 */
export async function kvsDeleteTree(txn: KvTxn, idx: LogIndex, prefix: string): Promise<void> {
  // Whole entries, not just keys: a deleted entry's lock holder must leave the session index too.
  const doomed = await txn.list(prefix);
  if (doomed.length === 0) return;
  for (const e of doomed) txn.remove(e.Key, e.Session);
  txn.noteDeletedPrefix(prefix);
  if (prefix !== '') insertTombstone(txn, prefix, idx);
  txn.setTableIndex('kvs', idx);
}

// ---------------------------------------------------------------------------------------------------
// Locks and sessions (kvs.go's kvsLockTxn, kvsUnlockTxn, kvsCheckSessionTxn; session.go)
// ---------------------------------------------------------------------------------------------------

/** Consul's structs.MaxLockDelay: a session's lock-delay is cut to this when applied. */
export const maxLockDelayMs = 60_000;

interface LockRequest {
  readonly Key: string;
  readonly Flags: Uint64;
  readonly Value: Uint8Array;
  readonly Session: string;
}

/**
 * kvsLockTxn: takes (or, for its holder, updates) the lock on a key. A lock someone else holds: false.
 * A new holder raises LockIndex by one; the holder writing again keeps it. Errors, in Consul's words,
 * for a missing or unknown session.
 */
export async function kvsLock(txn: KvTxn, idx: LogIndex, request: LockRequest): Promise<DirEntry | false | string> {
  if (request.Session === '') return 'missing session';
  if ((await txn.getSession(request.Session)) === undefined) return `invalid session ${goQuote(request.Session)}`;
  const existing = await txn.get(request.Key);
  let lockIndex = 1;
  if (existing !== undefined) {
    if (existing.Session === request.Session) lockIndex = existing.LockIndex;
    else if (existing.Session !== '') return false;
    else lockIndex = existing.LockIndex + 1;
  }
  return kvsSet(txn, idx, { Key: request.Key, Flags: request.Flags, Value: request.Value, LockIndex: lockIndex, Session: request.Session }, true);
}

/** kvsUnlockTxn: only the holder releases; the entry keeps its LockIndex and takes the new value. */
export async function kvsUnlock(txn: KvTxn, idx: LogIndex, request: LockRequest): Promise<DirEntry | false | string> {
  if (request.Session === '') return 'missing session';
  const existing = await txn.get(request.Key);
  if (existing === undefined || existing.Session !== request.Session) return false;
  return kvsSet(txn, idx, { Key: request.Key, Flags: request.Flags, Value: request.Value, LockIndex: existing.LockIndex, Session: '' }, true);
}

/**
 * sessionCreateTxn: the caller (the leader) has checked the node and the checks, and chose the ID. An ID
 * already in use is refused (Consul's leader never proposes one: it draws again).
 */
export async function sessionCreate(txn: KvTxn, idx: LogIndex, session: Omit<Session, 'CreateIndex' | 'ModifyIndex'>): Promise<string | undefined> {
  if ((await txn.getSession(session.ID)) !== undefined) return `Session ${goQuote(session.ID)} already exists`;
  txn.putSession({ ...session, CreateIndex: idx, ModifyIndex: idx });
  txn.setTableIndex('sessions', idx);
  return undefined;
}

/**
 * deleteSessionTxn: destroys a session (an unknown ID changes nothing) and invalidates its locks: with
 * behaviour `release` each held key loses its Session (LockIndex kept); with `delete` each is deleted.
 * Either way each such key gets the session's lock-delay (at most maxLockDelayMs).
 */
export async function sessionDestroy(txn: KvTxn, idx: LogIndex, id: string): Promise<void> {
  const session = await txn.getSession(id);
  if (session === undefined) return;
  txn.removeSession(id);
  txn.setTableIndex('sessions', idx);
  const delayMs = Math.min(Math.floor(session.LockDelay / 1e6), maxLockDelayMs);
  for (const key of await txn.listHeldKeys(id)) {
    const entry = await txn.get(key);
    // The derived index follows every write of an entry's Session in this file; only a restored archive
    // that names one key twice can leave a row behind. Such a row is dropped, the same on every server.
    if (entry === undefined || entry.Session !== id) {
      txn.dropHeldRow(id, key);
      continue;
    }
    if (session.Behavior === 'delete') await kvsDelete(txn, idx, key);
    else await kvsSet(txn, idx, { Key: key, Flags: entry.Flags, Value: entry.Value, LockIndex: entry.LockIndex, Session: '' }, true);
    if (delayMs > 0) txn.noteLockDelay(key, delayMs);
  }
}

/** Graveyard.InsertTxn: a tombstone replaces any older one of the same key; tombstones index = idx. */
function insertTombstone(txn: KvTxn, key: string, idx: LogIndex): void {
  txn.putTombstone({ Key: key, Index: idx });
  txn.setTableIndex('tombstones', idx);
}

/** Graveyard.ReapTxn: drops tombstones with Index <= reapIndex; table indexes are not touched. */
export async function reapTombstones(txn: KvTxn, reapIndex: LogIndex): Promise<void> {
  for (const stone of await txn.tombstones('')) {
    if (stone.Index <= reapIndex) txn.removeTombstone(stone.Key);
  }
}

// ---------------------------------------------------------------------------------------------------
// Reads and their X-Consul-Index
// ---------------------------------------------------------------------------------------------------

/**
 * KVS.Get's reply index: the entry's ModifyIndex when it exists, else the KV table index (Consul's
 * kvsMaxIndex over kvs and tombstones), and never 0 ("Must provide non-zero index to prevent blocking").
 */
export async function keyIndex(txn: KvTxn, entry: DirEntry | undefined): Promise<number> {
  if (entry !== undefined) return entry.ModifyIndex;
  return Math.max(1, await txn.kvsMaxIndex());
}

/**
 * kvsListTxn / kvsListKeysTxn's index: the highest ModifyIndex under the prefix or of a tombstone under
 * it; for prefix '' the table index; when that is 0 (nothing ever matched), the table index; never 0.
 */
export async function prefixIndex(txn: KvTxn, prefix: string, entries: readonly DirEntry[]): Promise<number> {
  let lindex = 0;
  if (prefix === '') {
    lindex = await txn.kvsMaxIndex();
  } else {
    for (const e of entries) lindex = Math.max(lindex, e.ModifyIndex);
    for (const s of await txn.tombstones(prefix)) lindex = Math.max(lindex, s.Index);
  }
  const index = lindex !== 0 ? lindex : await txn.kvsMaxIndex();
  return Math.max(1, index);
}

/**
 * kvsListKeysTxn's key folding: without a separator every key; with one, a key is cut just after the
 * first separator found past the prefix, and consecutive duplicates are dropped (keys arrive sorted, so
 * equal cuts are adjacent).
 */
export function foldKeys(entries: readonly DirEntry[], prefix: string, separator: string): string[] {
  const keys: string[] = [];
  let last: string | undefined;
  for (const e of entries) {
    if (separator === '') {
      keys.push(e.Key);
      continue;
    }
    const cut = e.Key.indexOf(separator, prefix.length);
    if (cut === -1) {
      keys.push(e.Key);
      continue;
    }
    const folded = e.Key.slice(0, cut + separator.length);
    if (folded !== last) {
      keys.push(folded);
      last = folded;
    }
  }
  return keys;
}

// ---------------------------------------------------------------------------------------------------
// Txn (Consul's txnDispatch and txnKVS)
// ---------------------------------------------------------------------------------------------------

export interface TxnOutcome {
  readonly results: TxnResult[];
  readonly errors: TxnError[];
}

/**
 * Runs every operation, even after one fails, collecting every error with its OpIndex as Consul does.
 * If any failed the caller must drop `txn` (nothing is applied) and report only the errors.
 */
export async function runTxn(txn: KvTxn, idx: LogIndex, ops: readonly TxnOp[]): Promise<TxnOutcome> {
  const results: TxnResult[] = [];
  const errors: TxnError[] = [];
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as TxnOp;
    const outcome = await txnKv(txn, idx, op.op);
    if (typeof outcome === 'string') errors.push({ OpIndex: i, What: outcome });
    else results.push(...outcome);
  }
  return errors.length > 0 ? { results: [], errors } : { results, errors };
}

/** One KV operation of a txn: its results, or Consul's error text. */
async function txnKv(txn: KvTxn, idx: LogIndex, op: KvOp): Promise<TxnResult[] | string> {
  switch (op.verb) {
    case 'set':
      return blanked(await kvsSet(txn, idx, setRequest(op.key, op.flags, op.value), false));
    case 'cas': {
      const stored = await kvsSetCas(txn, idx, setRequest(op.key, op.flags, op.value), op.index);
      return stored === undefined ? `failed to set key ${goQuote(op.key)}, index is stale` : blanked(stored);
    }
    case 'delete':
      await kvsDelete(txn, idx, op.key);
      return [];
    case 'delete-cas':
      return (await kvsDeleteCas(txn, idx, op.index, op.key)) ? [] : `failed to delete key ${goQuote(op.key)}, index is stale`;
    case 'delete-tree':
      await kvsDeleteTree(txn, idx, op.prefix);
      return [];
    case 'get': {
      const entry = await txn.get(op.key);
      return entry === undefined ? `key ${goQuote(op.key)} doesn't exist` : [{ KV: entry }];
    }
    case 'get-or-empty': {
      const entry = await txn.get(op.key);
      // Consul answers with the request's own DirEnt, value cleared.
      return [{ KV: entry ?? { Key: op.key, Flags: 0, Value: emptyValue, CreateIndex: 0, ModifyIndex: 0, LockIndex: 0, Session: '' } }];
    }
    case 'get-tree':
      return (await txn.list(op.prefix)).map((e) => ({ KV: e }));
    case 'check-index': {
      const entry = await txn.get(op.key);
      if (entry === undefined) return `failed to check index, key ${goQuote(op.key)} doesn't exist`;
      if (entry.ModifyIndex !== op.index) {
        return `failed index check for key ${goQuote(op.key)}, current modify index ${entry.ModifyIndex} != ${op.index}`;
      }
      return blanked(entry);
    }
    case 'check-not-exists': {
      const entry = await txn.get(op.key);
      return entry === undefined ? [] : `key ${goQuote(op.key)} exists`;
    }
    case 'lock': {
      const r = await kvsLock(txn, idx, { Key: op.key, Flags: op.flags, Value: op.value, Session: op.session });
      if (r === false) return `failed to lock key ${goQuote(op.key)}, lock is already held`;
      return typeof r === 'string' ? r : blanked(r);
    }
    case 'unlock': {
      const r = await kvsUnlock(txn, idx, { Key: op.key, Flags: op.flags, Value: op.value, Session: op.session });
      if (r === false) return `failed to unlock key ${goQuote(op.key)}, lock isn't held, or is held by another session`;
      return typeof r === 'string' ? r : blanked(r);
    }
    case 'check-session': {
      const entry = await txn.get(op.key);
      if (entry === undefined) return `failed to check session, key ${goQuote(op.key)} doesn't exist`;
      if (entry.Session !== op.session) {
        return `failed session check for key ${goQuote(op.key)}, current session ${goQuote(entry.Session)} != ${goQuote(op.session)}`;
      }
      return blanked(entry);
    }
    default:
      return unreachable(op);
  }
}

export function setRequest(key: string, flags: Uint64, value: Uint8Array): SetRequest {
  return { Key: key, Flags: flags, Value: value, LockIndex: 0, Session: '' };
}

/** Every verb but the gets answers with the entry's value cleared (Consul: "clone and blank out"). */
function blanked(entry: DirEntry): TxnResult[] {
  return [{ KV: { ...entry, Value: emptyValue } }];
}

/** Go's strconv.Quote (fmt's %q) for the strings that occur in keys. */
export function goQuote(text: string): string {
  let out = '"';
  for (const ch of text) {
    const code = ch.codePointAt(0) as number;
    switch (ch) {
      case '"': out += '\\"'; break;
      case '\\': out += '\\\\'; break;
      case '\x07': out += '\\a'; break;
      case '\b': out += '\\b'; break;
      case '\f': out += '\\f'; break;
      case '\n': out += '\\n'; break;
      case '\r': out += '\\r'; break;
      case '\t': out += '\\t'; break;
      case '\v': out += '\\v'; break;
      default:
        if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
        else if (code >= 0x80 && code < 0xa0) out += `\\u${code.toString(16).padStart(4, '0')}`;
        else out += ch;
    }
  }
  return `${out}"`;
}
