// Read rounds: every read waiting at one moment shares one request for a read index.
//
// A follower serves default and ?consistent reads from its own state once it has applied what the
// leader says (the read-index operator call). One call serves every read that arrived before it
// started; reads arriving while it is out wait for the next one, which starts as soon as it returns
// (a call that started before a read arrived may predate a write the read must see). So at most one
// call is out per round kind, and under load one leader round trip serves many reads, as the core's
// own ReadIndex rounds do for the leader's reads.

interface Waiter {
  readonly resolve: (index: number) => void;
  readonly reject: (e: unknown) => void;
}

export class ReadRounds {
  private waiting: Waiter[] = [];
  private out = false;

  /** `fetch` asks for one read index (the leader round trip). */
  constructor(private readonly fetch: () => Promise<number>) {}

  /** The read index of a round that started after this call. */
  next(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (!this.out) this.start();
    });
  }

  private start(): void {
    const round = this.waiting;
    this.waiting = [];
    this.out = true;
    const done = (): void => {
      this.out = false;
      if (this.waiting.length > 0) this.start();
    };
    // fetch() is called in a promise chain, so a synchronous throw rejects this round like a failed call.
    Promise.resolve()
      .then(() => this.fetch())
      .then(
        (index) => {
          for (const w of round) w.resolve(index);
          done();
        },
        (e: unknown) => {
          for (const w of round) w.reject(e);
          done();
        },
      );
  }
}
