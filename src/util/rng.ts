/**
 * A seeded random number generator whose whole state is one 32-bit integer (mulberry32), so a
 * training run can save it in a checkpoint and resume exactly; and seeded shuffling.
 *
 * @module
 */

/** mulberry32: a small, fast 32-bit generator; its state is a single uint32. */
export class Rng {
  /** The current state (save it to resume the sequence). */
  state: number;

  /** @param seed any integer; equal seeds give equal sequences */
  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** The next uniform number in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /**
   * Shuffles `items` in place (Fisher-Yates) and returns it.
   *
   * @example
   * ```ts
   * new Rng(42).shuffle([1, 2, 3, 4]); // the same order for seed 42, every time
   * ```
   */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    return items;
  }
}

/** Mixes a seed with a stream label into a new seed (FNV-1a over both), for independent streams. */
export function deriveSeed(seed: number, label: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  h = Math.imul(h, 0x01000193) >>> 0;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}
