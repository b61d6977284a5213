// What only the leader keeps, and its bounce. Consul revokes and re-establishes its leader state
// after a snapshot restore (session TTL timers, ACL bootstrap, tombstone GC...): whatever was built
// from the old state must be rebuilt from the restored one. Duties register here; they are
// established when this server becomes leader, revoked when it stops, and both again after a restore.
// Registered today: the session TTL timers (session-timers.ts); ACL bootstrap comes with later work.

import type { Logger } from 'pino';
import { ServerError } from './api.js';

export interface LeaderDuty {
  readonly name: string;
  /** Builds the duty's leader-only state from the current state machine. */
  establish(): Promise<void>;
  /** Drops it (timers, caches). Must not fail. */
  revoke(): void;
}

/** Consul waits at most a minute for the leader loop to re-run its actions after a restore. */
const reestablishBoundMs = 60_000;

export class LeaderDuties {
  private readonly duties: LeaderDuty[] = [];
  private leading = false;
  private chain: Promise<void> = Promise.resolve();
  /** How many times the duties were established (tests and logs). */
  established = 0;

  constructor(private readonly logger: Logger) {}

  register(duty: LeaderDuty): void {
    this.duties.push(duty);
    if (this.leading) this.enqueue(() => this.establishOne(duty, 'registered while leading'));
  }

  /** Called on every role change. */
  noteLeading(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.enqueue(async () => {
      if (leading) await this.establishAll('became leader');
      else this.revokeAll('stopped leading');
    });
  }

  /** After a restore: revoke, then establish every duty from the restored state. */
  async reestablish(why: string): Promise<void> {
    const run = this.enqueue(async () => {
      if (!this.leading) throw new ServerError('internal', 'leadership has not been established');
      this.revokeAll(why);
      await this.establishAll(why);
    });
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ServerError('internal', 'timed out waiting for re-run of leader actions')), reestablishBoundMs);
    });
    try {
      await Promise.race([run, bound]);
    } finally {
      clearTimeout(timer);
    }
  }

  private enqueue(f: () => Promise<void>): Promise<void> {
    const run = this.chain.then(f);
    this.chain = run.catch((e: unknown) => this.logger.error({ event: 'leader-duties-failed', err: (e as Error).message }, 'leader duties failed'));
    return run;
  }

  private async establishAll(why: string): Promise<void> {
    for (const d of this.duties) await this.establishOne(d, why);
    this.established++;
    this.logger.info({ event: 'leader-state', why, duties: this.duties.map((d) => d.name) }, 'leader state established');
  }

  private async establishOne(d: LeaderDuty, why: string): Promise<void> {
    await d.establish();
    this.logger.debug({ event: 'leader-duty', duty: d.name, why }, 'leader duty established');
  }

  private revokeAll(why: string): void {
    for (const d of [...this.duties].reverse()) d.revoke();
    this.logger.debug({ event: 'leader-state-revoked', why }, 'leader state revoked');
  }
}
