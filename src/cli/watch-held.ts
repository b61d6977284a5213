// The watch `conclave lock` keeps while its child runs, for a lock and a semaphore alike: blocking reads
// until what this session holds is gone, with Consul's -monitor-retry for reads that fail.

const monitorRetryMs = 1_000;

/**
 * Repeats `read` (a blocking query from `index`) until it says the hold is gone, or more than `retries`
 * reads in a row fail: then aborts `lost`. Ends quietly when `lost` or `shutdown` fires first.
 */
export async function watchHeld(
  read: (index: number, signal: AbortSignal) => Promise<{ readonly held: boolean; readonly index: number }>,
  retries: number,
  lost: AbortController,
  shutdown: AbortSignal,
): Promise<void> {
  const stop = AbortSignal.any([lost.signal, shutdown]);
  let index = 0;
  let failures = 0;
  while (!stop.aborted) {
    try {
      const r = await read(index, stop);
      failures = 0;
      if (!r.held) {
        lost.abort();
        return;
      }
      index = r.index;
    } catch {
      if (stop.aborted) return;
      failures += 1;
      if (failures > retries) {
        lost.abort();
        return;
      }
      await pause(monitorRetryMs, stop);
    }
  }
}

export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
