// Consul's semaphore recipe (api/semaphore.go), for `conclave lock -n N` with N above 1: up to N holders
// at once, coordinated through KV and sessions only, so any Consul client's semaphore interoperates.
//
//   <prefix>/<session ID>   a contender: taken with ?acquire by its own session (it dies with the session)
//   <prefix>/.lock          {"Limit": N, "Holders": {"<session ID>": true, ...}}, written by check-and-set
//
// Every key carries the Go API's semaphore flag value. To take a slot: register the contender key, then
// read the prefix; drop from Holders every session whose contender key is gone or unheld (its session
// died); if fewer than N remain, add ours by check-and-set on .lock, else wait (blocking query) and try
// again. A holder has lost its slot when it is no longer in Holders. Release removes it (check-and-set)
// and deletes its contender key; cleanup deletes .lock when nobody holds or contends.

import { escapeKey, parseKvEntries, type ApiClient, type WireEntry } from './api-client.js';
import { watchHeld } from './watch-held.js';

/** The Go API's SemaphoreFlagValue. */
export const semaphoreFlagValue = 0xe0f69a2baa414de0n;
const lockName = '.lock';
const requestMs = 20_000;
const blockingWait = '15s';

interface LockValue {
  Limit: number;
  Holders: Record<string, boolean>;
}

interface Listing {
  readonly lock: WireEntry | undefined;
  readonly contenders: readonly WireEntry[];
  readonly index: number;
}

async function list(client: ApiClient, prefix: string, index: number, signal: AbortSignal): Promise<Listing> {
  const wait = index > 0 ? `&index=${index}&wait=${blockingWait}` : '';
  const r = await client.request({ method: 'GET', path: `/v1/kv/${escapeKey(`${prefix}/`)}?recurse=${wait}`, timeoutMs: 15_000 + requestMs, accept: [404], signal });
  const entries = r.status === 404 ? [] : parseKvEntries(r.body);
  const lockKey = `${prefix}/${lockName}`;
  return {
    lock: entries.find((e) => e.Key === lockKey),
    contenders: entries.filter((e) => e.Key !== lockKey),
    index: Number(r.headers['x-consul-index'] ?? 0),
  };
}

/** The lock value, or why it does not belong to a semaphore of `limit`. */
function decodeLock(lock: WireEntry | undefined, limit: number): LockValue | string {
  if (lock === undefined) return { Limit: limit, Holders: {} };
  if (BigInt(lock.Flags) !== semaphoreFlagValue) return 'Existing key does not match semaphore use';
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(lock.Value ?? '', 'base64').toString('utf8'));
  } catch {
    return 'Failed to decode semaphore lock: it is not JSON';
  }
  const v = value as Partial<LockValue>;
  if (typeof v !== 'object' || v === null || typeof v.Limit !== 'number' || typeof v.Holders !== 'object' || v.Holders === null) {
    return 'Failed to decode semaphore lock: it is not {Limit, Holders}';
  }
  if (v.Limit !== limit) return `Semaphore limit conflict (lock: ${v.Limit}, local: ${limit})`;
  return { Limit: v.Limit, Holders: { ...v.Holders } };
}

/** Holders whose contender key is gone or no longer held by a session (Consul's pruneDeadHolders). */
function pruneDead(value: LockValue, prefix: string, contenders: readonly WireEntry[]): void {
  const alive = new Set(contenders.filter((c) => c.Session !== undefined && c.Session !== '').map((c) => c.Key));
  for (const holder of Object.keys(value.Holders)) if (!alive.has(`${prefix}/${holder}`)) delete value.Holders[holder];
}

async function casLock(client: ApiClient, prefix: string, value: LockValue, modifyIndex: number): Promise<boolean> {
  const r = await client.request({
    method: 'PUT',
    path: `/v1/kv/${escapeKey(`${prefix}/${lockName}`)}?cas=${modifyIndex}&flags=${semaphoreFlagValue}`,
    body: JSON.stringify(value),
    timeoutMs: requestMs,
  });
  return JSON.parse(r.body.toString('utf8')) === true;
}

/** true once a slot is held; 'stopped' when `stop` fires first; otherwise why it cannot be taken. */
export async function acquireSlot(client: ApiClient, prefix: string, session: string, limit: number, stop: AbortSignal): Promise<true | 'stopped' | string> {
  const contender = await client.request({
    method: 'PUT', path: `/v1/kv/${escapeKey(`${prefix}/${session}`)}?acquire=${session}&flags=${semaphoreFlagValue}`, body: '', timeoutMs: requestMs,
  });
  if (JSON.parse(contender.body.toString('utf8')) !== true) return 'failed to make contender entry';
  let index = 0;
  while (!stop.aborted) {
    let listing: Listing;
    try {
      listing = await list(client, prefix, index, stop);
    } catch (err) {
      if (stop.aborted) break;
      throw err;
    }
    const value = decodeLock(listing.lock, limit);
    if (typeof value === 'string') {
      // Not a semaphore of ours: take the contender key back before reporting it.
      await client.request({ method: 'DELETE', path: `/v1/kv/${escapeKey(`${prefix}/${session}`)}`, timeoutMs: requestMs });
      return value;
    }
    pruneDead(value, prefix, listing.contenders);
    if (Object.keys(value.Holders).length >= value.Limit) {
      index = listing.index;
      continue;
    }
    value.Holders[session] = true;
    if (await casLock(client, prefix, value, listing.lock?.ModifyIndex ?? 0)) return true;
    index = 0; // someone else wrote .lock in between: read it again
  }
  return 'stopped';
}

/** Watches .lock; aborts `lost` when this session is no longer a holder (after `retries` failed reads). */
export function watchSlot(client: ApiClient, prefix: string, session: string, limit: number, retries: number, lost: AbortController, shutdown: AbortSignal): Promise<void> {
  return watchHeld(async (index, signal) => {
    const listing = await list(client, prefix, index, signal);
    const value = decodeLock(listing.lock, limit);
    return { held: typeof value !== 'string' && value.Holders[session] === true, index: listing.index };
  }, retries, lost, shutdown);
}

/** Leaves the holders (check-and-set, retried on a race) and deletes the contender key. */
export async function releaseSlot(client: ApiClient, prefix: string, session: string, limit: number): Promise<string | undefined> {
  try {
    for (let attempt = 0; attempt < 20; attempt++) {
      const listing = await list(client, prefix, 0, new AbortController().signal);
      const value = decodeLock(listing.lock, limit);
      if (typeof value === 'string' || listing.lock === undefined || value.Holders[session] !== true) break;
      delete value.Holders[session];
      if (await casLock(client, prefix, value, listing.lock.ModifyIndex)) break;
    }
    await client.request({ method: 'DELETE', path: `/v1/kv/${escapeKey(`${prefix}/${session}`)}`, timeoutMs: requestMs });
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Deletes .lock when no one holds a slot and no contender is left (Consul's Semaphore.Destroy). */
export async function cleanupSemaphore(client: ApiClient, prefix: string, limit: number): Promise<'in-use' | string | undefined> {
  try {
    const listing = await list(client, prefix, 0, new AbortController().signal);
    if (listing.lock === undefined) return undefined;
    const value = decodeLock(listing.lock, limit);
    if (typeof value === 'string') return value;
    pruneDead(value, prefix, listing.contenders);
    if (Object.keys(value.Holders).length > 0 || listing.contenders.length > 0) return 'in-use';
    const r = await client.request({ method: 'DELETE', path: `/v1/kv/${escapeKey(`${prefix}/${lockName}`)}?cas=${listing.lock.ModifyIndex}`, timeoutMs: requestMs });
    return JSON.parse(r.body.toString('utf8')) === true ? undefined : 'in-use';
  } catch (err) {
    return (err as Error).message;
  }
}
