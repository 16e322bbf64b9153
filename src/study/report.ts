/**
 * The report of a study ({@link buildStudyResults}, {@link writeStudyReport}): per arm, the test
 * measures of every seed (trec_eval names), their mean and std over seeds, and the cost ledger;
 * the paired comparisons on per-query nDCG@10 (t-test, TOST, bootstrap CI); data efficiency;
 * the time ratio of the static sweep to the parameter-free arms; and a verdict on each claim of
 * the paper, stating what the numbers show, whatever they show:
 *
 * - (a) adaptive/distributed margins are statistically equivalent to teacher distillation
 *   (Margin-MSE, the spec's `reference`);
 * - (b) they reach it with less data;
 * - (c) they are 3x-15x faster than a static-margin sweep;
 * - (d) teacher distillation adds little over a tuned static margin.
 *
 * A static sweep reports, per seed and budget, the run that won on validation (never test); its
 * cost is the sum of all its runs. Comparisons and verdicts use the largest budget; the curve
 * over the data budgets ({@link budgetCurves}) shows every budget.
 *
 * Writes `results.json`, `report.md`, `validation_vs_triples.svg`, `validation_vs_seconds.svg`
 * and `budget_curve.svg`; the report states the conditions it was measured under (machine,
 * adapter, Deno, when and how long: {@link studyConditions}).
 *
 * @module
 */
import type { Measures } from "../eval/metrics.ts";
import type { Gpu } from "../gpu/device.ts";
import { pairedBootstrapCi, pairedTTest, tost } from "../eval/stats.ts";
import { lineChart } from "../report/plots.ts";
import {
  dataEfficiency,
  type LedgerLine,
  ledgerLine,
  sumLedger,
  sweepWinner,
  timeRatio,
} from "./analysis.ts";
import type { RunResult, StudyRuns } from "./run.ts";
import type { ArmSpec, StudySpec } from "./spec.ts";

/** The measures reported per run (trec_eval names; `mrr_10` is `recip_rank -M 10`). */
export const REPORTED_MEASURES: readonly string[] = Object.freeze([
  "ndcg_cut_10",
  "mrr_10",
  "recall_100",
  "recall_1000",
]);

/** One seed of an arm at one budget: the run reported and its numbers. */
export interface SeedEntry {
  /** The run's key. */
  run: string;
  /** A static sweep's winning margin (on validation), else null. */
  sweepValue: number | null;
  /** Test measures. */
  test: Measures;
  /** The ledger line of the run reported. */
  ledger: LedgerLine;
  /** A sweep: every value's best validation nDCG@10 (null: not validated). */
  sweep?: Record<string, number | null>;
}

/** An arm at one budget. */
export interface ArmBudget {
  /** By seed. */
  seeds: Record<string, SeedEntry>;
  /** Mean over seeds of each measure. */
  mean: Measures;
  /** Sample std over seeds (null with one seed). */
  std: Record<string, number | null>;
  /** The method's cost summed over seeds (a sweep: every run of it). */
  ledger: ReturnType<typeof sumLedger>;
}

/** An arm in results.json: the largest budget at the top, every budget under `budgets`. */
export interface ArmResults extends ArmBudget {
  /** The arm's kind. */
  kind: ArmSpec["kind"];
  /** The budget of the top-level numbers (the largest). */
  budget: number;
  /** Every budget, keyed by its value. */
  budgets: Record<string, ArmBudget>;
}

/** A paired comparison on per-query nDCG@10 (per-query means over seeds). */
export interface Comparison {
  /** The arm tested. */
  a: string;
  /** The arm it is compared with. */
  b: string;
  /** Queries paired. */
  queries: number;
  /** Mean of a - b. */
  meanDiff: number;
  /** Paired t-test. */
  ttest: ReturnType<typeof pairedTTest>;
  /** TOST within ±tostMargin. */
  tost: ReturnType<typeof tost>;
  /** Paired bootstrap 95% CI. */
  bootstrap: ReturnType<typeof pairedBootstrapCi>;
}

/** A claim's verdict. */
export interface Verdict {
  /** The claim. */
  claim: string;
  /** What the numbers say about it. */
  status: "supported" | "not supported" | "inconclusive" | "insufficient data";
  /** The numbers, in words. */
  detail: string;
}

/** One point of an arm's curve over the data budgets (means over the seeds reported). */
export interface BudgetPoint {
  /** The data budget (fraction of the training triples). */
  budget: number;
  /** Seeds with a result at this budget. */
  seeds: number;
  /** Triples the reported run consumed (a sweep: its winning run), mean over seeds. */
  triples: number;
  /** Best validation nDCG@10 of the reported run, mean over seeds (null: not validated). */
  bestValidationNdcg10: number | null;
  /** Test nDCG@10, mean over seeds. */
  testNdcg10: number;
}

/** What a study's numbers were measured on and when (results.json's `conditions`). */
export interface StudyConditions {
  /**
   * `at run time` (read by the study itself), or `by hand` (copied from notes written when it
   * ran, for a report re-rendered from a results.json that predates this field).
   */
  recorded: "at run time" | "by hand";
  /** The CPU model (`/proc/cpuinfo`'s model name), null when unreadable. */
  cpu: string | null;
  /** Logical cores (`navigator.hardwareConcurrency`). */
  cores: number | null;
  /** The WebGPU adapter (description, vendor, architecture). */
  adapter: string | null;
  /** Whether the adapter is a CPU/software implementation. */
  softwareAdapter: boolean | null;
  /** Deno's version. */
  deno: string | null;
  /** When the invocation that wrote the report started (ISO 8601; by hand: as noted). */
  start: string | null;
  /** When it finished running (before writing the report). */
  end: string | null;
  /** Its wall seconds, end - start. */
  wallSeconds: number | null;
  /** Runs it trained (the others were finished by an earlier invocation). */
  runsTrained: number | null;
  /** Where the values come from, when recorded by hand. */
  note?: string;
}

/** results.json. */
export interface StudyResults {
  /** The dataset. */
  dataset: string;
  /** The base model. */
  model: string;
  /** Seeds. */
  seeds: number[];
  /** Budgets. */
  budgets: number[];
  /** The reference arm (Margin-MSE), if any. */
  reference: string | null;
  /** The teachers used, described. */
  teachers: StudyRuns["teachers"];
  /** Per arm. */
  arms: Record<string, ArmResults>;
  /** Paired comparisons, keyed `a vs b`. */
  tost: Record<string, Comparison>;
  /** Data efficiency of each self-distillation arm against the reference, keyed `a vs b`. */
  data_efficiency: Record<string, {
    /** The reference's best validation nDCG@10 (mean over seeds). */
    target: number | null;
    /** Per seed: share of the reference's triples-to-best at which the arm reached it. */
    perSeed: Record<string, number | null>;
    /** Mean over the seeds that reached it (null when none did). */
    mean: number | null;
    /** The smallest budget whose best validation (mean over seeds) reached the target. */
    smallestBudget: number | null;
    /** Why a value is missing, when one is. */
    note?: string;
  }>;
  /** Time ratios, keyed `sweep vs arm`. */
  time_ratio: Record<string, {
    /** Per seed. */
    perSeed: Record<string, { toBest: number | null; toStop: number }>;
    /** Mean of toStop over seeds. */
    toStop: number;
    /** Mean of toBest over seeds that have one (null when none). */
    toBest: number | null;
  }>;
  /** Claims (a)-(d). */
  verdicts: Record<"a" | "b" | "c" | "d", Verdict>;
  /** Notes on how the numbers were made. */
  notes: string[];
  /** Per arm, its curve over the data budgets, by increasing budget ({@link budgetCurves}). */
  budget_curve: Record<string, BudgetPoint[]>;
  /** What the numbers were measured on and when; null when the caller did not record it. */
  conditions: StudyConditions | null;
}

function meanOf(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

function stdOf(xs: number[]): number | null {
  if (xs.length < 2) return null;
  const m = meanOf(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

const f4 = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? "n/a" : x.toFixed(4);
const f2 = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? "n/a" : x.toFixed(2);
const num = (x: number | null) => x !== null && Number.isInteger(x) ? String(x) : f2(x);
const p3 = (x: number) => Number.isFinite(x) ? x.toPrecision(3) : String(x);

/** An arm's reported run per (budget, seed), with the method's runs (all of a sweep's). */
interface Picked {
  result: RunResult;
  /** The run's margin in this arm's sweep (from the plan: a shared run's result may be another arm's). */
  sweepValue: number | null;
  line: LedgerLine;
  method: LedgerLine[];
  sweep?: Record<string, number | null>;
}

function pick(
  runs: StudyRuns,
  arm: ArmSpec,
  budget: number,
  seed: number,
): Picked | null {
  const plans = runs.plans.filter((p) =>
    p.arm === arm.name && p.budget === budget && p.seed === seed
  );
  const entries = plans.flatMap((p) => {
    const result = runs.results.get(p.key);
    return result ? [{ result, sweepValue: p.sweepValue, line: ledgerLine(result.cost) }] : [];
  });
  if (entries.length === 0 || entries.length < plans.length) return null;
  if (arm.kind !== "static-sweep") {
    return { ...entries[0], method: [entries[0].line] } satisfies Picked;
  }
  const winner = sweepWinner(entries) ?? entries[0];
  const sweep: Record<string, number | null> = {};
  for (const e of entries) sweep[String(e.sweepValue)] = e.line.bestNdcg10;
  return { ...winner, method: entries.map((e) => e.line), sweep } satisfies Picked;
}

function armBudget(spec: StudySpec, runs: StudyRuns, arm: ArmSpec, budget: number) {
  const seeds: Record<string, SeedEntry> = {};
  const picked: Record<string, Picked> = {};
  const method: LedgerLine[] = [];
  for (const seed of spec.seeds) {
    const p = pick(runs, arm, budget, seed);
    if (!p) continue;
    picked[seed] = p;
    method.push(...p.method);
    seeds[seed] = {
      run: p.result.key,
      sweepValue: p.sweepValue,
      test: p.result.test,
      ledger: p.line,
      ...(p.sweep ? { sweep: p.sweep } : {}),
    };
  }
  const list = Object.values(seeds);
  if (list.length === 0) return null;
  const mean: Measures = {}, std: Record<string, number | null> = {};
  for (const m of REPORTED_MEASURES) {
    const xs = list.map((s) => s.test[m]);
    mean[m] = meanOf(xs);
    std[m] = stdOf(xs);
  }
  return { entry: { seeds, mean, std, ledger: sumLedger(method) } as ArmBudget, picked };
}

/** Per-query nDCG@10 of an arm (mean over its seeds' reported runs). */
function perQuery(picked: Record<string, Picked>): Map<string, number> {
  const sums = new Map<string, number>();
  const runs = Object.values(picked);
  for (const p of runs) {
    for (const [q, v] of Object.entries(p.result.perQueryNdcg10)) {
      sums.set(q, (sums.get(q) ?? 0) + v / runs.length);
    }
  }
  return sums;
}

function compare(
  a: string,
  b: string,
  pa: Map<string, number>,
  pb: Map<string, number>,
  margin: number,
  seed: number,
): Comparison | null {
  const qids = [...pa.keys()].filter((q) => pb.has(q)).sort();
  if (qids.length < 2) return null;
  const x = qids.map((q) => pa.get(q)!), y = qids.map((q) => pb.get(q)!);
  const ttest = pairedTTest(x, y);
  return {
    a,
    b,
    queries: qids.length,
    meanDiff: ttest.meanDiff,
    ttest,
    tost: tost(x, y, { margin }),
    bootstrap: pairedBootstrapCi(x, y, { seed }),
  };
}

function describeComparison(c: Comparison, margin: number): string {
  return `${c.a} - ${c.b}: mean Δ nDCG@10 ${f4(c.meanDiff)} over ${c.queries} queries, ` +
    `95% CI [${f4(c.ttest.ci[0])}, ${f4(c.ttest.ci[1])}], bootstrap [${f4(c.bootstrap.ci[0])}, ` +
    `${f4(c.bootstrap.ci[1])}]; t-test p = ${p3(c.ttest.pValue)}; TOST ±${margin} p = ` +
    `${p3(c.tost.pValue)} (${c.tost.equivalent ? "equivalent" : "not shown equivalent"})`;
}

/** Status of an equivalence claim from a comparison. */
function equivalenceStatus(c: Comparison, margin: number): Verdict["status"] {
  if (c.tost.equivalent) return "supported";
  if (c.ttest.pValue < 0.05 && Math.abs(c.meanDiff) > margin) return "not supported";
  return "inconclusive";
}

/** Combines per-arm statuses: all agree, or inconclusive. */
function combine(statuses: Verdict["status"][]): Verdict["status"] {
  if (statuses.length === 0) return "insufficient data";
  if (statuses.every((s) => s === statuses[0])) return statuses[0];
  if (statuses.includes("insufficient data")) return "insufficient data";
  return "inconclusive";
}

/**
 * Each arm's curve over the data budgets, read off `arms[name].budgets`: per budget, the mean
 * over seeds of the reported run's consumed triples, best validation nDCG@10 and test nDCG@10,
 * by increasing budget.
 */
export function budgetCurves(arms: Record<string, ArmResults>): Record<string, BudgetPoint[]> {
  const out: Record<string, BudgetPoint[]> = {};
  for (const [name, arm] of Object.entries(arms)) {
    out[name] = Object.entries(arm.budgets).sort(([a], [b]) => Number(a) - Number(b)).map(
      ([b, e]) => {
        const seeds = Object.values(e.seeds);
        const bests = seeds.map((x) => x.ledger.bestNdcg10).filter((x): x is number => x !== null);
        return {
          budget: Number(b),
          seeds: seeds.length,
          triples: meanOf(seeds.map((x) => x.ledger.triples)),
          bestValidationNdcg10: bests.length ? meanOf(bests) : null,
          testNdcg10: meanOf(seeds.map((x) => x.test.ndcg_cut_10)),
        };
      },
    );
  }
  return out;
}

/**
 * The conditions of a study invocation ({@link StudyConditions}, recorded at run time): the CPU
 * model from `/proc/cpuinfo` (null where unreadable), the core count, the GPU adapter, Deno's
 * version, and the given start and end.
 */
export async function studyConditions(
  gpu: Pick<Gpu, "adapterName" | "isSoftware">,
  run: { start: Date; end: Date; runsTrained: number },
): Promise<StudyConditions> {
  let cpu: string | null = null;
  try {
    cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/^model name\s*:\s*(.*)$/m)?.[1]
      ?.trim() || null;
  } catch {
    // not Linux, or not readable: recorded as null
  }
  return {
    recorded: "at run time",
    cpu,
    cores: typeof navigator !== "undefined" ? navigator.hardwareConcurrency ?? null : null,
    adapter: gpu.adapterName,
    softwareAdapter: gpu.isSoftware,
    deno: Deno.version.deno,
    start: run.start.toISOString(),
    end: run.end.toISOString(),
    wallSeconds: (run.end.getTime() - run.start.getTime()) / 1000,
    runsTrained: run.runsTrained,
  };
}

/**
 * Builds results.json's content from the study's runs; `conditions` as recorded by the caller
 * ({@link studyConditions}), null when not.
 */
export function buildStudyResults(
  spec: StudySpec,
  runs: StudyRuns,
  conditions: StudyConditions | null = null,
): StudyResults {
  const top = Math.max(...spec.budgets);
  const arms: Record<string, ArmResults> = {};
  const pickedTop: Record<string, Record<string, Picked>> = {};
  for (const arm of spec.arms) {
    const budgets: Record<string, ArmBudget> = {};
    for (const b of spec.budgets) {
      const r = armBudget(spec, runs, arm, b);
      if (!r) continue;
      budgets[String(b)] = r.entry;
      if (b === top) pickedTop[arm.name] = r.picked;
    }
    const t = budgets[String(top)];
    if (!t) continue;
    arms[arm.name] = { kind: arm.kind, budget: top, ...t, budgets };
  }

  const margin = spec.tostMargin;
  const ref = spec.reference;
  const selfArms = spec.arms.filter((a) =>
    a.kind === "margin" && (a.target === "adaptive" || a.target === "distributed")
  ).map((a) => a.name);
  const sweeps = spec.arms.filter((a) => a.kind === "static-sweep").map((a) => a.name);
  const pq = (name: string) => pickedTop[name] ? perQuery(pickedTop[name]) : null;

  const comparisons: Record<string, Comparison> = {};
  const addComparison = (a: string, b: string) => {
    const [pa, pb] = [pq(a), pq(b)];
    if (!pa || !pb) return null;
    const c = compare(a, b, pa, pb, margin, spec.dataSeed);
    if (c) comparisons[`${a} vs ${b}`] = c;
    return c;
  };

  // (a) equivalence to teacher distillation.
  const aDetails: string[] = [], aStatus: Verdict["status"][] = [];
  for (const s of selfArms) {
    const c = ref && ref !== s ? addComparison(s, ref) : null;
    if (!c) {
      aDetails.push(
        `${s}: insufficient data (${ref ? `no paired results with ${ref}` : "no reference arm"})`,
      );
      aStatus.push("insufficient data");
      continue;
    }
    aDetails.push(describeComparison(c, margin));
    aStatus.push(equivalenceStatus(c, margin));
  }
  if (selfArms.length === 0) aDetails.push("insufficient data: no adaptive or distributed arm");

  // (b) data efficiency.
  const curves = budgetCurves(arms);
  const efficiency: StudyResults["data_efficiency"] = {};
  const bDetails: string[] = [], bStatus: Verdict["status"][] = [];
  for (const s of selfArms) {
    if (!ref || !pickedTop[ref] || !pickedTop[s]) {
      bDetails.push(`${s}: insufficient data`);
      bStatus.push("insufficient data");
      continue;
    }
    const perSeed: Record<string, number | null> = {};
    let note: string | undefined;
    const targets: number[] = [];
    for (const seed of spec.seeds) {
      const r = pickedTop[ref][seed], x = pickedTop[s][seed];
      if (!r || !x) continue;
      if (r.line.bestNdcg10 === null || r.line.bestTriples === null) {
        perSeed[seed] = null;
        note = "the reference has no validation curve";
        continue;
      }
      targets.push(r.line.bestNdcg10);
      if (r.line.bestTriples === 0) {
        perSeed[seed] = null;
        note = "the reference's best validation is the base model (step 0): no data needed";
        continue;
      }
      perSeed[seed] = dataEfficiency(x.result.cost.curve, r.line.bestNdcg10, r.line.bestTriples);
    }
    const reached = Object.values(perSeed).filter((v): v is number => v !== null);
    const target = targets.length ? meanOf(targets) : null;
    let smallestBudget: number | null = null;
    if (target !== null) {
      // Budgets by increasing size (an arm with the largest budget is in `curves`).
      const reachedAt = curves[s].find((p) =>
        p.bestValidationNdcg10 !== null && p.bestValidationNdcg10 >= target
      );
      smallestBudget = reachedAt?.budget ?? null;
    }
    const mean = reached.length ? meanOf(reached) : null;
    efficiency[`${s} vs ${ref}`] = {
      target,
      perSeed,
      mean,
      smallestBudget,
      ...(note ? { note } : {}),
    };
    if (mean === null) {
      bDetails.push(
        `${s} never reached ${ref}'s best validation nDCG@10 (${f4(target)})${
          note ? ` (${note})` : ""
        }`,
      );
      bStatus.push(note ? "insufficient data" : "not supported");
    } else {
      bDetails.push(
        `${s} reached ${ref}'s best validation nDCG@10 (${f4(target)}) with ${
          f2(mean)
        }x the triples ${ref} needed; smallest budget reaching it ${smallestBudget ?? "none"}`,
      );
      bStatus.push(mean < 1 ? "supported" : "not supported");
    }
  }
  if (selfArms.length === 0) bDetails.push("insufficient data: no adaptive or distributed arm");

  // (c) time ratio of each sweep to each parameter-free arm.
  const ratios: StudyResults["time_ratio"] = {};
  const cDetails: string[] = [], cStatus: Verdict["status"][] = [];
  for (const sw of sweeps) {
    for (const s of selfArms) {
      if (!pickedTop[sw] || !pickedTop[s]) continue;
      const perSeed: Record<string, { toBest: number | null; toStop: number }> = {};
      for (const seed of spec.seeds) {
        const w = pickedTop[sw][seed], x = pickedTop[s][seed];
        if (!w || !x || !(x.line.totalSeconds > 0)) continue;
        const total = w.method.reduce((acc, l) => acc + l.totalSeconds, 0);
        perSeed[seed] = timeRatio(total, x.line);
      }
      const list = Object.values(perSeed);
      if (list.length === 0) continue;
      const toBests = list.map((r) => r.toBest).filter((v): v is number => v !== null);
      const entry = {
        perSeed,
        toStop: meanOf(list.map((r) => r.toStop)),
        toBest: toBests.length ? meanOf(toBests) : null,
      };
      ratios[`${sw} vs ${s}`] = entry;
      cDetails.push(
        `the ${sw} (${
          spec.arms.find((a) => a.name === sw)!.kind === "static-sweep"
            ? (spec.arms.find((a) => a.name === sw) as { margins: number[] }).margins.length
            : 0
        } runs) took ${f2(entry.toStop)}x the wall time of ${s} to its stop (${
          f2(entry.toBest)
        }x to its best validation)`,
      );
      cStatus.push(
        entry.toStop >= 3 ? "supported" : "not supported",
      );
    }
  }
  if (cDetails.length === 0) {
    cDetails.push("insufficient data: needs a static-sweep arm and an adaptive/distributed arm");
  }

  // (d) teacher distillation against the tuned static margin.
  const dDetails: string[] = [], dStatus: Verdict["status"][] = [];
  for (const sw of sweeps) {
    const c = ref ? addComparison(ref, sw) : null;
    if (!c) {
      dDetails.push(
        `${sw}: insufficient data (${ref ? `no paired results with ${ref}` : "no reference arm"})`,
      );
      dStatus.push("insufficient data");
      continue;
    }
    dDetails.push(
      `${describeComparison(c, margin)}; the teacher's gain over the tuned margin is ${
        c.ttest.ci[1] < margin ? "below" : "not shown below"
      } +${margin} (upper 95% bound ${f4(c.ttest.ci[1])})`,
    );
    // "Adds little": the teacher's gain is within the margin (equivalent), or it is no gain.
    dStatus.push(
      c.tost.equivalent || c.ttest.ci[1] < margin
        ? "supported"
        : c.ttest.pValue < 0.05 && c.meanDiff > margin
        ? "not supported"
        : "inconclusive",
    );
  }
  if (sweeps.length === 0) dDetails.push("insufficient data: no static-sweep arm");

  const verdicts: StudyResults["verdicts"] = {
    a: {
      claim:
        "(a) adaptive/distributed margins are statistically equivalent to teacher distillation",
      status: combine(aStatus),
      detail: aDetails.join("; "),
    },
    b: {
      claim: "(b) they reach teacher distillation's effectiveness with less data",
      status: combine(bStatus),
      detail: bDetails.join("; "),
    },
    c: {
      claim: "(c) they are 3x-15x faster than a static-margin sweep",
      status: combine(cStatus),
      detail: cDetails.join("; "),
    },
    d: {
      claim: "(d) teacher distillation adds little over a tuned static margin",
      status: combine(dStatus),
      detail: dDetails.join("; "),
    },
  };

  return {
    dataset: spec.dataset,
    model: spec.model,
    seeds: spec.seeds,
    budgets: spec.budgets,
    reference: ref,
    teachers: runs.teachers,
    arms,
    tost: comparisons,
    data_efficiency: efficiency,
    time_ratio: ratios,
    verdicts,
    notes: [
      `comparisons, data efficiency and time ratios use the largest budget (${top}); ` +
      "per-query nDCG@10 is averaged over seeds before pairing",
      "mrr_10 is trec_eval's recip_rank with -M 10; the other measures are trec_eval's, " +
      "averaged over every test query (-c)",
      "tokens are approximate: triples x (queryLength + 2 x docLength)",
      "a teacher's time (its training, when the study trains it, and its scoring) is charged to each Margin-MSE run in proportion to its triples",
      "a static sweep reports the run that won on validation; its cost is every run's",
    ],
    budget_curve: curves,
    conditions,
  };
}

/** Training settings as one phrase: `batchSize 16, lr 0.0001, ...` in the given order. */
function settingsText(t: object): string {
  return Object.entries(t).filter(([, v]) => v !== undefined).map(([k, v]) => `${k} ${v}`)
    .join(", ");
}

/**
 * report.md's Markdown from a spec and its results (all it reads: a report can be re-rendered
 * from a results.json alone). It links the three SVG plots {@link writeStudyReport} writes.
 */
export function renderStudyReport(spec: StudySpec, r: StudyResults): string {
  const rows: string[] = [];
  for (const [name, arm] of Object.entries(r.arms)) {
    const budgets = Object.entries(arm.budgets).sort(([a], [b]) => Number(a) - Number(b));
    for (const [b, e] of budgets) {
      const m = e.mean, s = e.std;
      const pm = (k: string) => `${f4(m[k])}${s[k] === null ? "" : ` ± ${f4(s[k])}`}`;
      const swept = arm.kind === "static-sweep"
        ? ` (won: ${Object.values(e.seeds).map((x) => x.sweepValue).join(", ")})`
        : "";
      const best = (k: "bestStep" | "bestTriples") =>
        Object.values(e.seeds).map((x) => x.ledger[k] ?? "n/a").join(", ");
      rows.push(
        `| ${name}${swept} | ${b} | ${Object.keys(e.seeds).length} | ${pm("ndcg_cut_10")} | ${
          pm("mrr_10")
        } | ${pm("recall_100")} | ${pm("recall_1000")} | ${f2(e.ledger.totalSeconds)} | ${
          f2(e.ledger.teacherSeconds)
        } | ${e.ledger.triples} | ${e.ledger.tokens} | ${e.ledger.steps} | ${best("bestStep")} | ${
          best("bestTriples")
        } |`,
      );
    }
  }
  const cmp = Object.entries(r.tost).map(([k, c]) =>
    `| ${k} | ${c.queries} | ${f4(c.meanDiff)} | [${f4(c.ttest.ci[0])}, ${f4(c.ttest.ci[1])}] | ${
      p3(c.ttest.pValue)
    } | ${p3(c.tost.pValue)} | ${c.tost.equivalent ? "yes" : "no"} | [${f4(c.bootstrap.ci[0])}, ${
      f4(c.bootstrap.ci[1])
    }] |`
  );
  const eff = Object.entries(r.data_efficiency).map(([k, e]) =>
    `| ${k} | ${f4(e.target)} | ${f2(e.mean)} | ${e.smallestBudget ?? "none"} | ${e.note ?? ""} |`
  );
  const curve = Object.entries(r.budget_curve).flatMap(([name, points]) =>
    points.map((p) =>
      `| ${name} | ${p.budget} | ${p.seeds} | ${num(p.triples)} | ${f4(p.bestValidationNdcg10)} | ${
        f4(p.testNdcg10)
      } |`
    )
  );
  const c = r.conditions;
  const conditions = c
    ? [
      `- recorded ${c.recorded}${c.note ? ` (${c.note})` : ""}`,
      `- machine: ${c.cpu ?? "CPU model not readable"}, ${c.cores ?? "n/a"} cores`,
      `- adapter: ${c.adapter ?? "n/a"}${
        c.softwareAdapter === null ? "" : c.softwareAdapter ? " (software)" : " (hardware)"
      }`,
      `- Deno ${c.deno ?? "n/a"}`,
      `- ran ${c.start ?? "n/a"} to ${c.end ?? "n/a"}: ${
        c.wallSeconds === null ? "n/a" : `${num(c.wallSeconds)} s`
      } wall time${c.runsTrained === null ? "" : `, ${c.runsTrained} runs trained`}`,
    ].join("\n")
    : "Not recorded (the caller gave no conditions).";
  const tr = Object.entries(r.time_ratio).map(([k, t]) =>
    `| ${k} | ${f2(t.toStop)} | ${f2(t.toBest)} |`
  );
  const teachers = Object.entries(r.teachers).map(([n, t]) =>
    `- ${n}: ${t.description} (${f2(t.seconds)} s in all${
      t.trainSeconds > 0
        ? `: ${f2(t.trainSeconds)} s training, ` +
          `${f2(t.seconds - t.trainSeconds)} s scoring the training triples`
        : " to score the training triples"
    })` +
    (spec.teachers[n]?.kind === "cross-encoder" ? "" : ". Not a cross-encoder: a small-scale " +
      "analogue of the paper's cross-encoder teachers, so claims (a), (b) and (d) are tested " +
      "against a weaker teacher than the authors used")
  );
  return `# Study: ${spec.arms.map((a) => a.name).join(", ")} on ${spec.dataset}

Base model ${spec.model}; seeds ${spec.seeds.join(", ")}; budgets ${spec.budgets.join(", ")}
(nested subsets of the training triples, data seed ${spec.dataSeed}); reference arm
${r.reference ?? "none"}; TOST margin ±${spec.tostMargin} nDCG@10.

Shared training settings: ${settingsText(spec.training)}.
${
    spec.arms.filter((a) => a.training && Object.keys(a.training).length > 0).map((a) =>
      `Arm ${a.name} trains with its own ${settingsText(a.training!)}.`
    ).join("\n") || "No arm overrides them."
  }

## Conditions

${conditions}

## Verdicts

${Object.values(r.verdicts).map((v) => `- **${v.claim}**: ${v.status}. ${v.detail}.`).join("\n")}

## Test measures (mean ± std over seeds) and cost

| arm | budget | seeds | nDCG@10 | MRR@10 | R@100 | R@1000 | seconds | teacher s | triples | tokens | steps | best step | best triples |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join("\n")}

Seconds are the method's training, validation and teacher time summed over seeds (a static
sweep: over every margin it tried). Best step and best triples are where the reported run's
validation nDCG@10 peaked (the checkpoint evaluated on test), per seed.

## Paired comparisons (per-query nDCG@10, largest budget)

| comparison | queries | mean Δ | 95% CI | t-test p | TOST p | equivalent | bootstrap CI |
| --- | --- | --- | --- | --- | --- | --- | --- |
${cmp.join("\n") || "| (none) | | | | | | | |"}

## Data efficiency

| arm vs reference | target (val nDCG@10) | share of triples | smallest budget | note |
| --- | --- | --- | --- | --- |
${eff.join("\n") || "| (none) | | | | |"}

### Curve over the data budgets

Per arm and budget, means over seeds of the reported run (a sweep: its validation winner).

| arm | budget | seeds | triples used | best validation nDCG@10 | test nDCG@10 |
| --- | --- | --- | --- | --- | --- |
${curve.join("\n") || "| (none) | | | | | |"}

![test nDCG@10 vs data budget](budget_curve.svg)

## Time ratio (static sweep over parameter-free arm)

| sweep vs arm | to stop | to best |
| --- | --- | --- |
${tr.join("\n") || "| (none) | | |"}

## Teachers

${teachers.join("\n") || "(none)"}

## Validation curves

![validation nDCG@10 vs triples](validation_vs_triples.svg)
![validation nDCG@10 vs seconds](validation_vs_seconds.svg)

## Notes

${r.notes.map((n) => `- ${n}`).join("\n")}
`;
}

/** `budget_curve.svg`: test nDCG@10 over the data budgets, one line per arm. */
export function budgetCurveSvg(r: StudyResults): Promise<string> {
  const rows = Object.entries(r.budget_curve).flatMap(([arm, points]) =>
    points.map((p) => ({ arm, budget: p.budget, ndcg10: p.testNdcg10 }))
  );
  return lineChart(rows, {
    title: "Test nDCG@10 vs data budget (mean over seeds)",
    x: { field: "budget", title: "data budget (share of the training triples)" },
    y: { field: "ndcg10", title: "test nDCG@10" },
    series: "arm",
    points: true,
  });
}

/**
 * Writes results.json, report.md and the three SVG plots into `out`; returns the results.
 * `conditions`: what the study ran on and when ({@link studyConditions}); null when unknown.
 */
export async function writeStudyReport(
  out: string,
  spec: StudySpec,
  runs: StudyRuns,
  conditions: StudyConditions | null = null,
): Promise<StudyResults> {
  const r = buildStudyResults(spec, runs, conditions);
  await Deno.writeTextFile(`${out}/results.json`, JSON.stringify(r, null, 2) + "\n");
  await Deno.writeTextFile(`${out}/report.md`, renderStudyReport(spec, r));
  await Deno.writeTextFile(`${out}/budget_curve.svg`, await budgetCurveSvg(r));
  const points: Record<string, unknown>[] = [];
  for (const [name, arm] of Object.entries(r.arms)) {
    for (const [seed, e] of Object.entries(arm.seeds)) {
      const result = runs.results.get(e.run)!;
      const series = spec.seeds.length > 1 ? `${name} seed ${seed}` : name;
      for (const p of result.cost.curve) {
        points.push({
          series,
          triples: p.triples,
          seconds: p.seconds + result.cost.teacherSeconds,
          ndcg10: p.ndcg10,
        });
      }
    }
  }
  const budget = Math.max(...spec.budgets);
  await Deno.writeTextFile(
    `${out}/validation_vs_triples.svg`,
    await lineChart(points, {
      title: `Validation nDCG@10 vs training triples (budget ${budget})`,
      x: { field: "triples", title: "triples seen" },
      y: { field: "ndcg10", title: "validation nDCG@10" },
      series: "series",
      points: true,
    }),
  );
  await Deno.writeTextFile(
    `${out}/validation_vs_seconds.svg`,
    await lineChart(points, {
      title: `Validation nDCG@10 vs wall seconds, teacher time included (budget ${budget})`,
      x: { field: "seconds", title: "seconds" },
      y: { field: "ndcg10", title: "validation nDCG@10" },
      series: "series",
      points: true,
    }),
  );
  return r;
}
