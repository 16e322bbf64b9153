/**
 * The numbers a study report reads off its runs' logs, as pure functions (tested on synthetic
 * logs with known answers): the cost ledger of a run and of a method, data efficiency (the share
 * of the reference arm's triples at which an arm's validation nDCG@10 first reaches the
 * reference's best), and the time ratio of a parametrized method (a static-margin sweep, whose
 * cost is the sum of its runs) to a parameter-free one.
 *
 * @module
 */

/** One validation of a run: when it happened and what it measured. */
export interface ValidationPoint {
  /** Optimizer steps taken. */
  step: number;
  /** Training triples consumed so far. */
  triples: number;
  /** Wall seconds of training (steps and validations, not teacher scoring) so far. */
  seconds: number;
  /** Validation nDCG@10. */
  ndcg10: number;
}

/** Where a run's wall time and data went. */
export interface RunCost {
  /** Seconds scoring triples with a teacher for this run (0 without a teacher). */
  teacherSeconds: number;
  /** Seconds in optimizer steps. */
  trainSeconds: number;
  /** Seconds in validation. */
  validationSeconds: number;
  /** Triples consumed. */
  triples: number;
  /** Tokens consumed (padded positions fed to the encoder). */
  tokens: number;
  /** Optimizer steps. */
  steps: number;
  /** The validation curve. */
  curve: ValidationPoint[];
}

/** A run's ledger line: its costs, totals, and where its best validation was. */
export interface LedgerLine extends Omit<RunCost, "curve"> {
  /** teacher + train + validation seconds. */
  totalSeconds: number;
  /** Step of the best validation (the first one, on ties); null without validations. */
  bestStep: number | null;
  /** Triples consumed at the best validation. */
  bestTriples: number | null;
  /** Training seconds at the best validation. */
  bestSeconds: number | null;
  /** The best validation nDCG@10. */
  bestNdcg10: number | null;
}

/** The best validation of a curve (the earliest of equal maxima), or null when empty. */
export function bestPoint(curve: readonly ValidationPoint[]): ValidationPoint | null {
  let best: ValidationPoint | null = null;
  for (const p of curve) if (best === null || p.ndcg10 > best.ndcg10) best = p;
  return best;
}

/** The ledger line of one run. */
export function ledgerLine(cost: RunCost): LedgerLine {
  const { curve, ...rest } = cost;
  const best = bestPoint(curve);
  return {
    ...rest,
    totalSeconds: cost.teacherSeconds + cost.trainSeconds + cost.validationSeconds,
    bestStep: best?.step ?? null,
    bestTriples: best?.triples ?? null,
    bestSeconds: best?.seconds ?? null,
    bestNdcg10: best?.ndcg10 ?? null,
  };
}

/** Sums runs' ledger lines field by field (a method's cost: e.g. all runs of a sweep). */
export function sumLedger(lines: readonly LedgerLine[]): Omit<
  LedgerLine,
  "bestStep" | "bestTriples" | "bestSeconds" | "bestNdcg10"
> {
  const total = {
    teacherSeconds: 0,
    trainSeconds: 0,
    validationSeconds: 0,
    totalSeconds: 0,
    triples: 0,
    tokens: 0,
    steps: 0,
  };
  for (const l of lines) {
    for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += l[k];
  }
  return total;
}

/**
 * The triples an arm consumed when its validation nDCG@10 first reached `target` (the reference
 * arm's best), as a share of `referenceTriples` (what the reference consumed to reach its best);
 * null when the arm never reached it. Below 1: the arm needed less data.
 */
export function dataEfficiency(
  curve: readonly ValidationPoint[],
  target: number,
  referenceTriples: number,
): number | null {
  if (!(referenceTriples > 0)) throw new RangeError(`referenceTriples must be positive`);
  const hit = curve.find((p) => p.ndcg10 >= target);
  return hit ? hit.triples / referenceTriples : null;
}

/**
 * How many times longer a parametrized method took than a parameter-free arm: the sweep's total
 * wall seconds (every run of it, validations and teacher time included) over the arm's seconds to
 * its best validation and to its stop.
 */
export function timeRatio(
  sweepTotalSeconds: number,
  arm: LedgerLine,
): { toBest: number | null; toStop: number } {
  const stop = arm.totalSeconds;
  if (!(stop > 0)) throw new RangeError("the arm's run took no time");
  const toBestSeconds = arm.bestSeconds === null ? null : arm.bestSeconds + arm.teacherSeconds;
  return {
    toBest: toBestSeconds && toBestSeconds > 0 ? sweepTotalSeconds / toBestSeconds : null,
    toStop: sweepTotalSeconds / stop,
  };
}

/**
 * The run of a static sweep that a study reports: the one with the best validation nDCG@10
 * (never test), the earliest of equal bests; null when no run validated.
 */
export function sweepWinner<T extends { line: LedgerLine }>(runs: readonly T[]): T | null {
  let best: T | null = null;
  for (const r of runs) {
    if (r.line.bestNdcg10 === null) continue;
    if (best === null || r.line.bestNdcg10 > best.line.bestNdcg10!) best = r;
  }
  return best;
}
