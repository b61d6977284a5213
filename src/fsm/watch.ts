// Wake-ups for blocking queries.
//
// A waiter registers the key or prefix it watches; after each applied batch the FSM announces what
// changed, and only waiters whose target the change touches wake up and recompute their index. A restore
// wakes everyone (Consul abandons the old state store, which makes every blocking query return at once),
// as do close and an abort signal.

import type { ChangeSet } from './store.js';
import type { CatalogQuery } from './types.js';

/** What a blocking query watches: one key (GET /v1/kv/k) or a prefix (?recurse, ?keys). */
export type WatchTarget =
  | { readonly key: string }
  | { readonly prefix: string }
  | { readonly sessions: true }
  /** A catalog read: woken by any change to the catalog tables; its index decides whether it answers. */
  | { readonly catalog: CatalogQuery };

export type WakeReason = 'changed' | 'aborted' | 'restored' | 'closed';

export function touches(target: WatchTarget, change: ChangeSet): boolean {
  if ('sessions' in target) return change.sessions;
  if ('catalog' in target) return change.catalogTables.size > 0;
  if ('key' in target) {
    if (change.keys.has(target.key)) return true;
    return change.prefixes.some((p) => target.key.startsWith(p));
  }
  const watched = target.prefix;
  for (const key of change.keys) if (key.startsWith(watched)) return true;
  // A deleted tree overlaps the watched prefix when either contains the other.
  return change.prefixes.some((p) => p.startsWith(watched) || watched.startsWith(p));
}

/**
 * One registered waiter. Wake-ups that arrive while nobody awaits are remembered (a terminal reason
 * outranks 'changed'), so a change between "compute index" and "await next" is never lost.
 */
export class Waiter {
  private pending: WakeReason | undefined;
  private wake: ((reason: WakeReason) => void) | undefined;

  constructor(
    readonly target: WatchTarget,
    private readonly registry: Set<Waiter>,
  ) {
    registry.add(this);
  }

  notify(reason: WakeReason): void {
    if (this.wake !== undefined) {
      const wake = this.wake;
      this.wake = undefined;
      wake(reason);
      return;
    }
    if (this.pending === undefined || this.pending === 'changed') this.pending = reason;
  }

  next(): Promise<WakeReason> {
    if (this.pending !== undefined) {
      const reason = this.pending;
      this.pending = undefined;
      return Promise.resolve(reason);
    }
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  dispose(): void {
    this.registry.delete(this);
  }
}

export class Watchers {
  private readonly waiters = new Set<Waiter>();

  register(target: WatchTarget): Waiter {
    return new Waiter(target, this.waiters);
  }

  announce(change: ChangeSet): void {
    if (change.keys.size === 0 && change.prefixes.length === 0 && !change.sessions && change.catalogTables.size === 0) return;
    for (const w of this.waiters) if (touches(w.target, change)) w.notify('changed');
  }

  wakeAll(reason: 'restored' | 'closed'): void {
    for (const w of this.waiters) w.notify(reason);
  }

  get size(): number {
    return this.waiters.size;
  }
}
