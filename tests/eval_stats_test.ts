// Statistics vs reference values. Reference numbers were computed with scipy 1.17.1 (numpy
// 2.4.6) on this machine: scipy.stats.ttest_rel, scipy.stats.t.cdf/.sf/.ppf,
// scipy.special.betainc; TOST p-values as scipy.stats.t.sf((mean+δ)/se, n-1) and
// t.cdf((mean-δ)/se, n-1). The paired data set is Student's sleep data (Cushny & Peebles
// 1905), R `t.test(extra ~ group, data = sleep, paired = TRUE)`: t = -4.0621, df = 9,
// p = 0.002833, 95% CI (-2.4598858, -0.7001142).

import { ok, strictEqual } from "node:assert/strict";
import {
  bootstrapCi,
  pairedBootstrapCi,
  pairedTTest,
  regularizedIncompleteBeta,
  studentTCdf,
  studentTQuantile,
  tost,
} from "../src/eval/stats.ts";

/** |got - want| <= tol * max(1, |want|)... or relative for tiny tails. */
function close(got: number, want: number, rel: number, what: string) {
  const err = Math.abs(got - want) / Math.max(Math.abs(want), 1e-300);
  ok(err <= rel, `${what}: got ${got}, want ${want} (relative error ${err})`);
}

const SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0];
const SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4];

// Tolerance: the incomplete beta continued fraction converges to ~1e-15 and log-gamma (Lanczos)
// is good to ~1e-15 relative; 1e-10 relative leaves room for the cancellation in 1 - I_x.
const REL = 1e-10;

Deno.test("regularized incomplete beta matches scipy.special.betainc", () => {
  close(regularizedIncompleteBeta(0.3, 2.5, 1.5), 0.08894372317066562, REL, "I(0.3;2.5,1.5)");
  close(regularizedIncompleteBeta(0.9, 0.5, 7), 0.9999999780702157, REL, "I(0.9;0.5,7)");
  close(regularizedIncompleteBeta(0.01, 10, 10), 8.509104732905513e-16, 1e-9, "I(0.01;10,10)");
});

Deno.test("Student t CDF and quantile match scipy.stats.t", () => {
  const cases: [number, number, number][] = [
    [0.5, 3, 0.6742760175759245],
    [-2.0, 9, 0.038276411885350504],
    [1.96, 1000, 0.9748634075221256],
    [3.5, 2, 0.9635863249727653],
    [10, 5, 0.9999145262121285],
    [-0.1, 0.5, 0.4731658105643032],
  ];
  for (const [t, df, want] of cases) close(studentTCdf(t, df), want, REL, `cdf(${t}, ${df})`);
  // Far tail: P(T > 25), df 30 = 6.045911190643518e-22 (computed as cdf(-25)).
  close(studentTCdf(-25, 30), 6.045911190643518e-22, 1e-8, "sf(25, 30)");
  const q: [number, number, number][] = [
    [0.975, 9, 2.262157162798205],
    [0.95, 299, 1.6499657674263895],
    [0.995, 2, 9.924843200918287],
    [0.025, 4, -2.7764451051977943],
  ];
  for (const [p, df, want] of q) close(studentTQuantile(p, df), want, 1e-10, `ppf(${p}, ${df})`);
});

Deno.test("paired t-test on Student's sleep data matches scipy/R", () => {
  const r = pairedTTest(SLEEP_1, SLEEP_2);
  strictEqual(r.n, 10);
  strictEqual(r.df, 9);
  close(r.t, -4.062127683382037, 1e-12, "t");
  close(r.pValue, 0.002832890197384273, REL, "p");
  close(r.ci[0], -2.459885763276983, 1e-10, "ci low");
  close(r.ci[1], -0.7001142367230175, 1e-10, "ci high");
  // Symmetric: swapping the samples flips t, keeps p.
  const s = pairedTTest(SLEEP_2, SLEEP_1);
  close(s.t, 4.062127683382037, 1e-12, "t swapped");
  close(s.pValue, r.pValue, 1e-12, "p swapped");
});

Deno.test("paired t-test degenerate cases: identical runs and constant shift", () => {
  const a = [0.25, 0.5, 0.75]; // exact binary fractions: the shifted differences are exactly equal
  const same = pairedTTest(a, a);
  strictEqual(same.t, 0);
  strictEqual(same.pValue, 1);
  const shifted = pairedTTest(a.map((x) => x + 0.125), a);
  strictEqual(shifted.t, Infinity);
  strictEqual(shifted.pValue, 0);
});

Deno.test("TOST p-values match the scipy-computed one-sided t tests", () => {
  // mean(d) = -1.58, se = 0.38895; margin 2: not equivalent; margin 3: equivalent.
  const r2 = tost(SLEEP_1, SLEEP_2, { margin: 2 });
  close(r2.pLower, 0.1541572356690974, REL, "pLower δ=2");
  close(r2.pUpper, 3.5523441592476907e-06, 1e-8, "pUpper δ=2");
  strictEqual(r2.equivalent, false);
  const r3 = tost(SLEEP_1, SLEEP_2, { margin: 3 });
  close(r3.pLower, 0.002655570292658671, REL, "pLower δ=3");
  close(r3.pUpper, 4.5226949658324543e-07, 1e-8, "pUpper δ=3");
  strictEqual(r3.pValue, r3.pLower);
  strictEqual(r3.equivalent, true);
  // Equivalence at α iff the (1 - 2α) interval lies inside (-δ, δ).
  ok(r3.ci[0] > -3 && r3.ci[1] < 3);
  ok(r2.ci[0] < -2);
});

Deno.test("bootstrap: seeded, reproducible, and close to the t interval for a large sample", () => {
  // 400 draws from a fixed sequence; the percentile bootstrap interval of a mean approaches
  // the t interval (both ~ mean ± 1.96 se); allow 10% of the half-width for Monte-Carlo error.
  const xs = Array.from({ length: 400 }, (_, i) => Math.sin(i * 12.9898) * 0.5 + 0.1);
  const a = bootstrapCi(xs, { seed: 7 });
  const b = bootstrapCi(xs, { seed: 7 });
  strictEqual(a.ci[0], b.ci[0]);
  strictEqual(a.ci[1], b.ci[1]);
  const c = bootstrapCi(xs, { seed: 8 });
  ok(a.ci[0] !== c.ci[0], "another seed gives another interval");
  const t = pairedTTest(xs, xs.map(() => 0));
  const half = (t.ci[1] - t.ci[0]) / 2;
  ok(Math.abs(a.ci[0] - t.ci[0]) < 0.1 * half, `low ${a.ci[0]} vs t ${t.ci[0]}`);
  ok(Math.abs(a.ci[1] - t.ci[1]) < 0.1 * half, `high ${a.ci[1]} vs t ${t.ci[1]}`);
  ok(a.ci[0] < a.estimate && a.estimate < a.ci[1]);
});

Deno.test("paired bootstrap works on differences and rejects unequal lengths", () => {
  const r = pairedBootstrapCi(SLEEP_1, SLEEP_2, { seed: 3, samples: 2000 });
  close(r.estimate, -1.58, 1e-12, "mean diff");
  ok(r.ci[1] < 0, "interval excludes 0, as the t-test does");
  let threw = false;
  try {
    pairedBootstrapCi([1, 2], [1]);
  } catch {
    threw = true;
  }
  ok(threw);
});
