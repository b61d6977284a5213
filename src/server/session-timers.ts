// Session TTL timers: a leader duty (leader-duties.ts), as Consul's session_ttl.go keeps them.
//
// Only the leader runs them. A session with a TTL is invalidated (destroyed through Raft) when it has not
// been renewed for twice its TTL (Consul's sessionTTLMultiplier: a client renewing late is not cut off).
// Every timer is armed afresh at full length when this server becomes leader and after every restore
// (Consul's initializeSessionTimers), so a leader change never shortens a session's life and a session
// the new state does not hold has no timer. Renew, create and destroy on the leader re-arm or clear one.

import type { Logger } from 'pino';
import type { Command, Fsm, Session } from '../fsm/index.js';
import { parseGoDuration } from '../base/index.js';
import type { LeaderDuty } from './leader-duties.js';

/** Consul's structs.SessionTTLMultiplier. */
export const sessionTtlMultiplier = 2;
/** Consul's maxInvalidateAttempts and invalidateRetryBase: a failed invalidation is retried, bounded. */
const invalidateAttempts = 6;
const invalidateRetryBaseMs = 10_000;

/** Consul's structs.SessionTTLMax: a longer TTL (only a restored archive could hold one) counts as this. */
const ttlMaxMs = 86_400_000;

/** A session's TTL in ms, 0 for none or for a TTL that does not parse (such a session never expires by time). */
export function ttlMs(session: Pick<Session, 'TTL'>): number {
  if (session.TTL === '') return 0;
  const parsed = parseGoDuration(session.TTL);
  return parsed.ok && parsed.nanoseconds > 0n ? Math.min(Number(parsed.nanoseconds / 1_000_000n), ttlMaxMs) : 0;
}

export class SessionTimers implements LeaderDuty {
  readonly name = 'session-ttl-timers';
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private active = false;

  constructor(
    private readonly fsm: () => Fsm,
    /** Proposes a command through Raft on this (leading) server. */
    private readonly propose: (command: Command) => Promise<unknown>,
    /**
     * Resolves once this leader has applied everything committed before its term (Consul waits on
     * raft.Barrier before establishing leadership): a session created just before the old leader died
     * must get its timer too.
     */
    private readonly caughtUp: () => Promise<void>,
    private readonly logger: Logger,
  ) {}

  async establish(): Promise<void> {
    this.clearAll();
    this.active = true;
    await this.caughtUp();
    const { sessions } = await this.fsm().sessionList();
    for (const s of sessions) this.arm(s);
    this.logger.info({ event: 'session-timers', sessions: this.timers.size }, 'session TTL timers armed');
  }

  revoke(): void {
    this.active = false;
    this.clearAll();
  }

  /** (Re)arms `session`'s timer at full length (create, renew); a session without TTL has none. */
  arm(session: Pick<Session, 'ID' | 'TTL'>): void {
    if (!this.active) return;
    this.clear(session.ID);
    const ms = ttlMs(session);
    if (ms === 0) return;
    const timer = setTimeout(() => void this.expire(session.ID, 0), ms * sessionTtlMultiplier);
    timer.unref();
    this.timers.set(session.ID, timer);
  }

  clear(id: string): void {
    const timer = this.timers.get(id);
    if (timer !== undefined) clearTimeout(timer);
    this.timers.delete(id);
  }

  /** Timers armed now (tests). */
  get size(): number {
    return this.timers.size;
  }

  private clearAll(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private async expire(id: string, attempt: number): Promise<void> {
    this.timers.delete(id);
    if (!this.active) return;
    try {
      await this.propose({ type: 'session-destroy', id });
      this.logger.info({ event: 'session-expired', session: id }, 'session TTL expired; session invalidated');
    } catch (e) {
      // A renew or a re-establish armed a newer timer meanwhile: that one decides.
      if (this.timers.has(id)) return;
      if (!this.active || attempt + 1 >= invalidateAttempts) {
        this.logger.error({ event: 'session-expire-failed', session: id, attempts: attempt + 1, err: (e as Error).message },
          'could not invalidate an expired session; the next leader re-arms its timer');
        return;
      }
      const timer = setTimeout(() => void this.expire(id, attempt + 1), invalidateRetryBaseMs * (attempt + 1));
      timer.unref();
      this.timers.set(id, timer);
    }
  }
}
