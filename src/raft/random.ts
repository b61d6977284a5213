import type { RandomSource } from './types.js';

/**
 * A small, fast, seedable PRNG (SplitMix64 seeding into xoshiro128**). Deterministic for a given
 * seed on every platform: the simulator replays a run from its seed alone. Not for cryptography.
 */
export class SeededRandom implements RandomSource {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: bigint | number) {
    let s = BigInt.asUintN(64, BigInt(seed));
    const next = (): number => {
      // SplitMix64: spreads any seed, even 0 or 1, over the whole state.
      s = BigInt.asUintN(64, s + 0x9e3779b97f4a7c15n);
      let z = s;
      z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
      z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
      z = z ^ (z >> 31n);
      return Number(z & 0xffffffffn) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1; // xoshiro's state must not be all zero
  }

  /** The next 32 random bits as an unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  nextFloat(): number {
    return this.nextUint32() / 4294967296;
  }

  nextInt(bound: number): number {
    if (!(bound > 0 && bound <= 4294967296 && Number.isInteger(bound))) {
      throw new RangeError(`nextInt bound must be an integer in [1, 2^32], got ${bound}`);
    }
    return Math.floor(this.nextFloat() * bound);
  }

  /** True with the given probability. */
  chance(probability: number): boolean {
    return this.nextFloat() < probability;
  }

  /** Uniform integer in [lo, hi]. */
  between(lo: number, hi: number): number {
    return lo + this.nextInt(hi - lo + 1);
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[this.nextInt(items.length)] as T;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
