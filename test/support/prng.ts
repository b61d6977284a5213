// A seeded PRNG for tests, so every fuzz and workload run is the same run.

/** xorshift32: returns a function giving the next unsigned 32-bit value. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}
