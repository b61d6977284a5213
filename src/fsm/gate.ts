// A shared/exclusive gate: reads and applies pass together; a swap or close waits for them to drain and
// holds everyone else back until it is done (the database handle is replaced underneath).

export class Gate {
  private shared = 0;
  private exclusive: Promise<void> | undefined;
  private drained: (() => void) | undefined;

  async enterShared(): Promise<void> {
    while (this.exclusive !== undefined) await this.exclusive;
    this.shared += 1;
  }

  /** Enters synchronously when no exclusive holder is active or waiting; false otherwise. */
  tryEnterShared(): boolean {
    if (this.exclusive !== undefined) return false;
    this.shared += 1;
    return true;
  }

  leaveShared(): void {
    this.shared -= 1;
    if (this.shared === 0 && this.drained !== undefined) this.drained();
  }

  async runShared<T>(task: () => Promise<T>): Promise<T> {
    await this.enterShared();
    try {
      return await task();
    } finally {
      this.leaveShared();
    }
  }

  async runExclusive<T>(task: () => Promise<T>): Promise<T> {
    while (this.exclusive !== undefined) await this.exclusive;
    let release!: () => void;
    this.exclusive = new Promise<void>((resolve) => {
      release = resolve;
    });
    try {
      if (this.shared > 0) {
        await new Promise<void>((resolve) => {
          this.drained = resolve;
        });
        this.drained = undefined;
      }
      return await task();
    } finally {
      this.exclusive = undefined;
      release();
    }
  }
}
