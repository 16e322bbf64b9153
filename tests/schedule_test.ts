/**
 * Learning-rate schedules at key steps, against the closed forms of transformers'
 * get_linear_schedule_with_warmup / get_constant_schedule_with_warmup and torch's ExponentialLR.
 */
import { ok, throws } from "node:assert/strict";
import {
  constantSchedule,
  exponentialSchedule,
  linearSchedule,
  makeSchedule,
} from "../src/train/schedule.ts";

/** Schedules are float64 host arithmetic: equal up to a few ulps of the closed form. */
function near(actual: number, expected: number, label: string): void {
  ok(
    Math.abs(actual - expected) <= 1e-15 + 1e-12 * Math.abs(expected),
    `${label}: ${actual}, expected ${expected}`,
  );
}

Deno.test("constant schedule, with and without warm-up", () => {
  const flat = constantSchedule(3e-5);
  for (const s of [0, 1, 1000, 10 ** 7]) near(flat(s), 3e-5, `flat ${s}`);
  const warm = constantSchedule(1e-4, { warmupSteps: 10 });
  near(warm(0), 0, "warm 0"); // as transformers: the first update gets lr · 0/warmup
  near(warm(1), 1e-5, "warm 1");
  near(warm(5), 5e-5, "warm 5");
  near(warm(9), 9e-5, "warm 9");
  near(warm(10), 1e-4, "warm 10");
  near(warm(5000), 1e-4, "warm 5000");
});

Deno.test("linear warm-up then linear decay to 0 at total steps", () => {
  const s = linearSchedule(1e-4, { warmupSteps: 10, totalSteps: 110 });
  near(s(0), 0, "0");
  near(s(4), 4e-5, "4");
  near(s(10), 1e-4, "peak");
  near(s(11), 1e-4 * 99 / 100, "11");
  near(s(60), 5e-5, "half-way");
  near(s(109), 1e-6, "last");
  near(s(110), 0, "total");
  near(s(500), 0, "past total: clamped at 0");
  const noWarm = linearSchedule(2e-5, { totalSteps: 4 });
  [2e-5, 1.5e-5, 1e-5, 5e-6, 0].forEach((v, i) => near(noWarm(i), v, `no warm-up ${i}`));
  // warm-up == total: transformers' max(1, total − warmup) keeps it finite.
  near(linearSchedule(1, { warmupSteps: 5, totalSteps: 5 })(5), 0, "degenerate");
});

Deno.test("exponential decay lr·γ^step (reference γ = 0.99999), optional warm-up", () => {
  const s = exponentialSchedule(5e-7);
  near(s(0), 5e-7, "0");
  near(s(1), 5e-7 * 0.99999, "1");
  near(s(100000), 5e-7 * Math.exp(100000 * Math.log(0.99999)), "1e5");
  ok(Math.abs(s(100000) - 1.8394e-7) < 1e-11, `1e5 ≈ 1.8394e-7: ${s(100000)}`);
  const g = exponentialSchedule(1, { gamma: 0.5, warmupSteps: 4 });
  [0, 0.25, 0.5, 0.75, 1, 0.5, 0.25].forEach((v, i) => near(g(i), v, `γ 0.5 warm-up ${i}`));
});

Deno.test("makeSchedule dispatches by name and rejects bad settings", () => {
  near(makeSchedule(1, { kind: "constant" })(7), 1, "constant");
  near(makeSchedule(1, { kind: "linear", totalSteps: 10 })(5), 0.5, "linear");
  near(makeSchedule(1, { kind: "exponential", gamma: 0.9 })(2), 0.81, "exponential");
  throws(() => makeSchedule(1, { kind: "cosine" } as never), /unknown schedule cosine/);
  throws(() => makeSchedule(NaN, { kind: "constant" }), /learning rate/);
  throws(() => linearSchedule(1, { totalSteps: -1 }), /totalSteps/);
  throws(() => exponentialSchedule(1, { gamma: 1.5 }), /gamma/);
  throws(() => constantSchedule(1)(-1), /non-negative integer/);
  throws(() => constantSchedule(1)(0.5), /non-negative integer/);
});
