// A one-slot hand-off of byte chunks from a pushing loop to a pulling reader (an async iterable), with
// backpressure: push resolves once the reader has taken the chunk (it asked for the next one), so the
// pusher runs at most one chunk ahead. Used where one loop must feed a second reader beside its own
// work: the archive reader's record check, and the state machine database built while a snapshot is
// stored.

/** A one-slot hand-off from a pushing loop to a pulling reader. */
export class Feed implements AsyncIterableIterator<Uint8Array> {
  private taker: ((result: IteratorResult<Uint8Array>) => void) | undefined;
  private wake: (() => void) | undefined;
  private stopped = false;

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    if (this.stopped) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve) => {
      this.taker = resolve;
      this.signal();
    });
  }

  async return(): Promise<IteratorResult<Uint8Array>> {
    this.stop();
    return { done: true, value: undefined };
  }

  stop(): void {
    this.stopped = true;
    this.taker?.({ done: true, value: undefined });
    this.taker = undefined;
    this.signal();
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async give(result: IteratorResult<Uint8Array>): Promise<void> {
    while (this.taker === undefined && !this.stopped) await new Promise<void>((resolve) => { this.wake = resolve; });
    if (this.stopped) return;
    const taker = this.taker as (result: IteratorResult<Uint8Array>) => void;
    this.taker = undefined;
    taker(result);
  }

  push(chunk: Uint8Array): Promise<void> {
    // The reader may keep views of the chunk: a pusher must not reuse the chunk's memory.
    return this.give({ done: false, value: chunk });
  }

  async end(): Promise<void> {
    await this.give({ done: true, value: undefined });
  }
}
