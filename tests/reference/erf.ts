/**
 * float64 erf and erfc for test references (JavaScript has no Math.erf): the Maclaurin series
 * below |x| = 2 (cancellation costs at most e^4 ≈ 55 ulps, ~1e-14) and the Laplace continued
 * fraction of erfc above (evaluated bottom-up from depth 400, converged to double precision for
 * x >= 2), so erfc keeps its relative accuracy far into the tail.
 *
 * @module
 */

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

function erfSeries(x: number): number {
  // erf(x) = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1))
  let term = x, sum = x;
  const x2 = x * x;
  for (let n = 1; n < 200; n++) {
    term *= -x2 / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
  }
  return TWO_OVER_SQRT_PI * sum;
}

function erfcContinuedFraction(x: number): number {
  // erfc(x) = e^(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))), x > 0
  let f = x;
  for (let k = 400; k >= 1; k--) f = x + (k / 2) / f;
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

/** erfc(x) in float64, accurate relative to its value for x >= 0 and absolutely below. */
export function erfc(x: number): number {
  if (x < 0) return 2 - erfc(-x);
  if (x < 2) return 1 - erfSeries(x);
  return erfcContinuedFraction(x);
}

/** erf(x) in float64. */
export function erf(x: number): number {
  if (Math.abs(x) < 2) return erfSeries(x);
  return x > 0 ? 1 - erfcContinuedFraction(x) : erfcContinuedFraction(-x) - 1;
}

/** Φ(x), the standard normal CDF, relatively accurate in the lower tail. */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}
