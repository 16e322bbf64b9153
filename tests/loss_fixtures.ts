/**
 * Shared data and checks of the loss tests: seeded triples and the comparison of a GPU loss's
 * gradients with central finite differences of a float64 reference.
 *
 * @module
 */
import { assertClose, randn, sampleIndices } from "./helpers.ts";
import { finiteDifferences } from "./reference/margin_ref.ts";

/** Seeded triples as flat float64 arrays (f32-representable) and as rows. */
export interface Triples {
  /** Queries, B x D row-major. */
  q: Float64Array;
  /** Positives. */
  p: Float64Array;
  /** Negatives. */
  n: Float64Array;
  /** The same values as arrays of rows. */
  rows: { q: number[][]; p: number[][]; n: number[][] };
}

/**
 * Triples with some structure: positives lean towards their query, negatives less so, so that
 * margins and d = margin - target take both signs. Values are rounded to f32 so the GPU and the
 * float64 reference see identical inputs.
 */
export function triples(b: number, d: number, seed: number): Triples {
  const q = randn(b * d, seed), np = randn(b * d, seed + 1), nn = randn(b * d, seed + 2);
  const p = new Float64Array(b * d), n = new Float64Array(b * d);
  for (let e = 0; e < b * d; e++) {
    p[e] = Math.fround(0.7 * q[e] + 0.7 * np[e]);
    n[e] = Math.fround(0.3 * q[e] + nn[e]);
  }
  const q64 = Float64Array.from(q);
  const rows = (a: Float64Array) =>
    Array.from({ length: b }, (_, i) => Array.from(a.subarray(i * d, (i + 1) * d)));
  return { q: q64, p, n, rows: { q: rows(q64), p: rows(p), n: rows(n) } };
}

/** The largest absolute value. */
export function maxAbs(v: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < v.length; i++) m = Math.max(m, Math.abs(v[i]));
  return m;
}

/**
 * Checks GPU gradients (rows) against central finite differences of the float64 loss `f` w.r.t.
 * a seeded sample of `samples` elements of each input (`f` reads the inputs by reference).
 *
 * Tolerance: float64 central differences with step 1e-5 are accurate to ~1e-9 relative; the
 * GPU's f32 gradients of the margin losses and Margin-MSE were measured within 1e-6 · max|grad|
 * of them (every element, B = 16, D = 33, every variant, llvmpipe). atol is `relAtol` (default
 * 1e-5, 10x the measured) times the largest gradient of the input: the mean makes gradients
 * shrink with B, so a fixed atol would not fit all shapes.
 */
export function checkGradients(
  label: string,
  f: () => number,
  inputs: [string, Float64Array, number[][]][],
  seed: number,
  samples = 40,
  relAtol = 1e-5,
): void {
  for (const [k, [name, x, grad]] of inputs.entries()) {
    const picks = sampleIndices(x.length, samples, seed * 7 + k);
    const numeric = finiteDifferences(f, x, picks);
    const flat = grad.flat();
    if (flat.length !== x.length) {
      throw new Error(`${label} ${name}: ${flat.length} gradient values for ${x.length} inputs`);
    }
    assertClose(
      picks.map((j) => flat[j]),
      numeric,
      { atol: relAtol * maxAbs(numeric), rtol: 1e-4 },
      `${label} ${name}`,
    );
  }
}

/** Awaits `run` and returns the error it rejects with; throws if it resolves. */
export async function rejection(run: () => Promise<unknown>): Promise<Error> {
  try {
    await run();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}
