/**
 * Learning-rate schedules as pure functions of the step: constant, linear warm-up then linear
 * decay to 0 (as transformers' `get_linear_schedule_with_warmup`), and exponential decay
 * lr·γ^step (as `torch.optim.lr_scheduler.ExponentialLR` stepped once per optimizer step; the
 * reference setup uses γ = 0.99999), each with an optional linear warm-up.
 *
 * `step` is the number of optimizer steps already taken (0 for the first update), as a
 * `LambdaLR` scheduler that is stepped after every `optimizer.step()` counts. As in
 * transformers, a warm-up therefore gives the first update lr·0/warmup = 0.
 *
 * @module
 */

/** A learning rate as a function of the step (0-based). */
export type Schedule = (step: number) => number;

/** A schedule by name, with its settings (for configuration files and CLI flags). */
export type ScheduleSpec =
  | { kind: "constant"; warmupSteps?: number }
  | { kind: "linear"; warmupSteps?: number; totalSteps: number }
  | { kind: "exponential"; warmupSteps?: number; gamma?: number };

/** The schedule names {@link makeSchedule} accepts. */
export const SCHEDULE_KINDS = ["constant", "linear", "exponential"] as const;

function checkStep(step: number): void {
  if (!Number.isInteger(step) || step < 0) {
    throw new RangeError(`schedule step must be a non-negative integer: ${step}`);
  }
}

function checkCount(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer: ${value}`);
  }
}

/** The warm-up factor step/warmup below `warmupSteps`, else 1 (as transformers' lambdas). */
function warmupFactor(step: number, warmupSteps: number): number {
  return step < warmupSteps ? step / Math.max(1, warmupSteps) : 1;
}

/**
 * A constant learning rate, after an optional linear warm-up from 0 (transformers'
 * `get_constant_schedule_with_warmup`): lr·step/warmup for step < warmup, then lr.
 *
 * @example
 * ```ts
 * const s = constantSchedule(1e-4, { warmupSteps: 10 });
 * s(0); // 0
 * s(5); // 5e-5
 * s(10); // 1e-4
 * ```
 */
export function constantSchedule(lr: number, opts: { warmupSteps?: number } = {}): Schedule {
  const warmup = opts.warmupSteps ?? 0;
  checkCount("warmupSteps", warmup);
  return (step) => {
    checkStep(step);
    return lr * warmupFactor(step, warmup);
  };
}

/**
 * Linear warm-up from 0 to lr over `warmupSteps`, then linear decay to 0 at `totalSteps`
 * (transformers' `get_linear_schedule_with_warmup`): lr·step/warmup for step < warmup, else
 * lr·max(0, (total − step)/(total − warmup)).
 *
 * @example
 * ```ts
 * const s = linearSchedule(1e-4, { warmupSteps: 10, totalSteps: 110 });
 * s(10); // 1e-4
 * s(60); // 5e-5
 * s(110); // 0
 * ```
 */
export function linearSchedule(
  lr: number,
  opts: { warmupSteps?: number; totalSteps: number },
): Schedule {
  const warmup = opts.warmupSteps ?? 0;
  const total = opts.totalSteps;
  checkCount("warmupSteps", warmup);
  checkCount("totalSteps", total);
  return (step) => {
    checkStep(step);
    if (step < warmup) return lr * step / Math.max(1, warmup);
    return lr * Math.max(0, (total - step) / Math.max(1, total - warmup));
  };
}

/**
 * Exponential decay lr·γ^step (γ default 0.99999, the reference setup's per-step decay), after an
 * optional linear warm-up: lr·step/warmup for step < warmup, then lr·γ^(step − warmup).
 *
 * @example
 * ```ts
 * const s = exponentialSchedule(5e-7);
 * s(100000); // 5e-7 · 0.99999^100000 ≈ 1.84e-7
 * ```
 */
export function exponentialSchedule(
  lr: number,
  opts: { warmupSteps?: number; gamma?: number } = {},
): Schedule {
  const warmup = opts.warmupSteps ?? 0;
  const gamma = opts.gamma ?? 0.99999;
  checkCount("warmupSteps", warmup);
  if (!(gamma > 0 && gamma <= 1)) throw new RangeError(`gamma must lie in (0, 1]: ${gamma}`);
  return (step) => {
    checkStep(step);
    if (step < warmup) return lr * step / warmup;
    return lr * gamma ** (step - warmup);
  };
}

/**
 * The schedule a {@link ScheduleSpec} names.
 *
 * @example
 * ```ts
 * const schedule = makeSchedule(2e-5, { kind: "linear", warmupSteps: 100, totalSteps: 1000 });
 * await optimizer.step(grads, schedule(optimizer.stepCount));
 * ```
 */
export function makeSchedule(lr: number, spec: ScheduleSpec): Schedule {
  if (!(lr >= 0) || !Number.isFinite(lr)) {
    throw new RangeError(`learning rate must be finite and >= 0: ${lr}`);
  }
  switch (spec.kind) {
    case "constant":
      return constantSchedule(lr, spec);
    case "linear":
      return linearSchedule(lr, spec);
    case "exponential":
      return exponentialSchedule(lr, spec);
    default:
      throw new RangeError(
        `unknown schedule ${(spec as { kind: string }).kind}; expected one of ` +
          SCHEDULE_KINDS.join(", "),
      );
  }
}
