/**
 * Significance statistics over per-query values: paired t-test, two one-sided tests (TOST)
 * for equivalence, seeded bootstrap confidence intervals.
 *
 * The Student t distribution is computed here (no dependency): CDF through the regularized
 * incomplete beta function (Lentz's continued fraction, Numerical Recipes 3rd ed. §6.4) and
 * log-gamma (Lanczos, g = 7, n = 9); the quantile by bisection on the CDF. This is ~100 lines,
 * checked in tests against scipy, and avoids pulling a large statistics package (`jstat` is
 * unmaintained; `@stdlib` brings hundreds of modules) into a library imported by URL.
 *
 * @module
 */
import { Rng } from "../util/rng.ts";

const LANCZOS = [
  0.99999999999980993,
  676.5203681218851,
  -1259.1392167224028,
  771.32342877765313,
  -176.61502916214059,
  12.507343278686905,
  -0.13857109526572012,
  9.9843695780195716e-6,
  1.5056327351493116e-7,
];

/** Natural log of the gamma function, for x > 0 (Lanczos approximation, ~1e-15 relative). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  x -= 1;
  let a = LANCZOS[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta (modified Lentz). */
function betaContinuedFraction(x: number, a: number, b: number): number {
  const TINY = 1e-300;
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = 1 - (qab * x) / qap;
  if (Math.abs(d) < TINY) d = TINY;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 10000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-16) break;
  }
  return h;
}

/** Regularized incomplete beta function I_x(a, b), for 0 <= x <= 1 and a, b > 0. */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const lnFront = logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) +
    b * Math.log1p(-x);
  const front = Math.exp(lnFront);
  // The continued fraction converges fast for x < (a + 1)/(a + b + 2); use symmetry otherwise.
  if (x < (a + 1) / (a + b + 2)) return (front * betaContinuedFraction(x, a, b)) / a;
  return 1 - (front * betaContinuedFraction(1 - x, b, a)) / b;
}

/** Student t cumulative distribution P(T <= t) with `df` degrees of freedom (df > 0). */
export function studentTCdf(t: number, df: number): number {
  if (Number.isNaN(t)) return NaN;
  if (t === Infinity) return 1;
  if (t === -Infinity) return 0;
  const tail = 0.5 * regularizedIncompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t > 0 ? 1 - tail : tail;
}

/** Upper tail P(T > t), computed without the cancellation of `1 - cdf` for large t. */
function studentTSf(t: number, df: number): number {
  return studentTCdf(-t, df);
}

/** Quantile of the Student t distribution: the t with P(T <= t) = p (bisection, ~1e-12). */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) {
    if (p === 0) return -Infinity;
    if (p === 1) return Infinity;
    throw new RangeError(`probability ${p} outside [0, 1]`);
  }
  let lo = -1;
  let hi = 1;
  while (studentTCdf(lo, df) > p) lo *= 2;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-13 * Math.max(1, Math.abs(lo)); i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Arithmetic mean. */
export function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return s / xs.length;
}

/** Sample standard deviation (n - 1 in the denominator). */
export function sampleSd(xs: ArrayLike<number>): number {
  const m = mean(xs);
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += (xs[i] - m) ** 2;
  return Math.sqrt(s / (xs.length - 1));
}

function differences(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  if (a.length !== b.length) {
    throw new RangeError(`paired samples differ in length: ${a.length} vs ${b.length}`);
  }
  if (a.length < 2) throw new RangeError(`need at least 2 pairs, got ${a.length}`);
  const d = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) d[i] = a[i] - b[i];
  return d;
}

/** Result of {@link pairedTTest}. */
export interface TTestResult {
  /** Number of pairs. */
  n: number;
  /** Mean of a - b. */
  meanDiff: number;
  /** Sample standard deviation of a - b. */
  sdDiff: number;
  /** t statistic, meanDiff / (sdDiff / sqrt(n)). */
  t: number;
  /** Degrees of freedom, n - 1. */
  df: number;
  /** Two-sided p-value. */
  pValue: number;
  /** Confidence interval of the mean difference at `confidence`. */
  ci: [number, number];
  /** Level of `ci` (default 0.95). */
  confidence: number;
}

/**
 * Paired two-sided t-test of mean(a - b) = 0 (as scipy.stats.ttest_rel). When every
 * difference is equal, t is 0 (p = 1) if they are 0 and ±Infinity (p = 0) otherwise.
 *
 * @example
 * ```ts
 * import { pairedTTest } from "./stats.ts";
 * const r = pairedTTest([0.5, 0.6, 0.7, 0.9], [0.4, 0.6, 0.5, 0.6]);
 * console.log(r.t.toFixed(3), r.pValue.toFixed(4));
 * ```
 */
export function pairedTTest(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  options: { confidence?: number } = {},
): TTestResult {
  const confidence = options.confidence ?? 0.95;
  const d = differences(a, b);
  const n = d.length;
  const df = n - 1;
  const m = mean(d);
  const sd = sampleSd(d);
  const se = sd / Math.sqrt(n);
  const t = se > 0 ? m / se : m === 0 ? 0 : m > 0 ? Infinity : -Infinity;
  const pValue = Math.min(1, 2 * studentTSf(Math.abs(t), df));
  const q = studentTQuantile(1 - (1 - confidence) / 2, df);
  return { n, meanDiff: m, sdDiff: sd, t, df, pValue, ci: [m - q * se, m + q * se], confidence };
}

/** Result of {@link tost}. */
export interface TostResult {
  /** Equivalence margin δ: the bounds are (-δ, +δ) on mean(a - b). */
  margin: number;
  /** Number of pairs. */
  n: number;
  /** Mean of a - b. */
  meanDiff: number;
  /** p-value of H0: mean diff <= -δ (rejected when the difference is above -δ). */
  pLower: number;
  /** p-value of H0: mean diff >= +δ. */
  pUpper: number;
  /** max(pLower, pUpper): the TOST p-value. */
  pValue: number;
  /** Significance level (default 0.05). */
  alpha: number;
  /** True when pValue < alpha: a and b are equivalent within ±δ. */
  equivalent: boolean;
  /** The (1 - 2α) confidence interval of the mean difference (inside (-δ, δ) iff equivalent). */
  ci: [number, number];
}

/**
 * Two one-sided paired t-tests (Schuirmann 1987) for equivalence within ±`margin`: with
 * se = sd(d)/sqrt(n), t_lower = (mean(d) + δ)/se and pLower = P(T > t_lower); t_upper =
 * (mean(d) - δ)/se and pUpper = P(T < t_upper); T ~ Student t with n - 1 degrees of freedom.
 */
export function tost(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  options: { margin: number; alpha?: number },
): TostResult {
  const { margin } = options;
  if (!(margin > 0)) throw new RangeError(`TOST margin must be > 0, got ${margin}`);
  const alpha = options.alpha ?? 0.05;
  const d = differences(a, b);
  const n = d.length;
  const df = n - 1;
  const m = mean(d);
  const se = sampleSd(d) / Math.sqrt(n);
  let pLower: number;
  let pUpper: number;
  if (se > 0) {
    pLower = studentTSf((m + margin) / se, df);
    pUpper = studentTCdf((m - margin) / se, df);
  } else {
    pLower = m > -margin ? 0 : 1;
    pUpper = m < margin ? 0 : 1;
  }
  const pValue = Math.max(pLower, pUpper);
  const q = studentTQuantile(1 - alpha, df);
  return {
    margin,
    n,
    meanDiff: m,
    pLower,
    pUpper,
    pValue,
    alpha,
    equivalent: pValue < alpha,
    ci: [m - q * se, m + q * se],
  };
}

/** A seeded 32-bit PRNG (mulberry32, {@link Rng}) returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

/** Quantile with linear interpolation between order statistics (numpy's default, type 7). */
export function quantile(sorted: ArrayLike<number>, p: number): number {
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/** Options of {@link bootstrapCi}. */
export interface BootstrapOptions {
  /** Number of resamples (default 10000). */
  samples?: number;
  /** Interval level (default 0.95). */
  confidence?: number;
  /** PRNG seed (default 1): the same seed gives the same interval. */
  seed?: number;
}

/** Result of {@link bootstrapCi}. */
export interface BootstrapResult {
  /** The statistic (mean) on the original sample. */
  estimate: number;
  /** Percentile interval of the resampled means. */
  ci: [number, number];
  /** Interval level. */
  confidence: number;
  /** Number of resamples. */
  samples: number;
  /** Seed used. */
  seed: number;
}

/**
 * Percentile bootstrap confidence interval of the mean: `samples` resamples of n values drawn
 * with replacement (mulberry32 from `seed`), interval from the α/2 and 1 - α/2 quantiles of the
 * resampled means. For a paired comparison pass the per-query differences (see
 * {@link pairedBootstrapCi}).
 */
export function bootstrapCi(
  values: ArrayLike<number>,
  options: BootstrapOptions = {},
): BootstrapResult {
  const samples = options.samples ?? 10000;
  const confidence = options.confidence ?? 0.95;
  const seed = options.seed ?? 1;
  const n = values.length;
  if (n < 1) throw new RangeError("bootstrap needs at least one value");
  const rand = mulberry32(seed);
  const means = new Float64Array(samples);
  for (let s = 0; s < samples; s++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += values[Math.floor(rand() * n)];
    means[s] = sum / n;
  }
  means.sort();
  const alpha = 1 - confidence;
  return {
    estimate: mean(values),
    ci: [quantile(means, alpha / 2), quantile(means, 1 - alpha / 2)],
    confidence,
    samples,
    seed,
  };
}

/** Bootstrap interval of mean(a - b) over paired per-query values. */
export function pairedBootstrapCi(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  options: BootstrapOptions = {},
): BootstrapResult {
  return bootstrapCi(differences(a, b), options);
}
