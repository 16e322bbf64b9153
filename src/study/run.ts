/**
 * Running a study ({@link runStudy}): every run of a {@link StudySpec} (arm x sweep value x budget
 * x seed, see {@link expandRuns}) trained from the base model on its nested data budget, its
 * best validation checkpoint evaluated on the test split, and its cost ledger written beside it.
 *
 * Layout of the output directory (locked while the study runs):
 *
 * - `runs/<key>/plan.json`: the run's settings (the ones hashed into its key) and the data
 *   options; a later study whose run has the same key but other settings or data is refused;
 * - `runs/<key>/` also holds the trainer's directory (`last/`, `best/`, `log.jsonl`), so an
 *   interrupted run resumes from `last/`; `progress.json` keeps its validation curve and costs
 *   so far (a resume continues them); once the evaluated checkpoint (`best/`, else `last/`) is
 *   measured on test, its model card (`README.md`) is rewritten with the test measures;
 * - `runs/<key>/result.json`: the finished run ({@link RunResult}); a run that has one is
 *   skipped;
 * - `teachers/<name>.jsonl` and `teachers/<name>.json`: a teacher's scores of the training
 *   triples, computed once and reused, and what they cost.
 *
 * Teacher time is charged to the Margin-MSE runs that use the teacher in proportion to the
 * triples they use (a run on half the triples pays half the scoring). Token counts are the
 * approximation `triples x (queryLength + 2 x docLength)` (padded lengths; the trainer does not
 * report exact counts), marked `tokensApproximate` in each result.
 *
 * @module
 */
import type { Doc, Qrels, Run } from "../data/types.ts";
import { readBeirQrels, readBeirQueries } from "../data/beir.ts";
import { resolveDataset } from "../data/resolve.ts";
import { Bm25Index } from "../eval/bm25.ts";
import { denseRetrieve } from "../eval/dense.ts";
import { evaluate, type Measures } from "../eval/metrics.ts";
import type { Gpu } from "../gpu/device.ts";
import { loadCrossEncoder } from "../models/cross_encoder.ts";
import type { LoadedEncoder } from "../models/hf.ts";
import { loadEncoder } from "../models/load.ts";
import { writeModelCard } from "../models/model_card.ts";
import type { TrainerState } from "../train/checkpoint.ts";
import { readTeacherScores } from "../losses/margin_mse.ts";
import {
  beirTriples,
  loadBeirTraining,
  splitValidation,
  teacherScoresFor,
  type Triple,
  tripleFingerprint,
  type ValidationData,
  validationData,
} from "../train/data.ts";
import { train, type TrainEvent, type TrainOptions } from "../train/trainer.ts";
import { lockDir } from "../util/lock.ts";
import { deriveSeed, Rng } from "../util/rng.ts";
import type { RunCost, ValidationPoint } from "./analysis.ts";
import {
  budgetSubset,
  canonicalJson,
  expandRuns,
  resolveTeacher,
  type RunPlan,
  type StudySpec,
  type TrainedTeacherSpec,
} from "./spec.ts";
import {
  crossEncoderTeacher,
  encoderTeacher,
  meanTeacher,
  type Teacher,
  writeTeacherFile,
} from "./teacher.ts";
import { exists, writeTextFileAtomic } from "../util/fs.ts";

/**
 * A slice of the dataset, for studies that must run fast (tests, smoke runs): a seeded draw of
 * train and test queries, and the corpus cut down to the judged documents plus a few others.
 */
export interface DataSlice {
  /** Train queries kept (before the validation queries are carved from them). */
  trainQueries?: number;
  /** Test queries kept. */
  testQueries?: number;
  /**
   * Documents kept besides the judged ones (of the kept queries); absent: the whole corpus.
   */
  extraDocs?: number;
}

/** How the study's data is prepared, beyond the spec (recorded in each run's plan.json). */
export interface StudyData {
  /** A slice of the dataset; default none (everything). */
  slice?: DataSlice;
  /** BM25 candidates re-ranked per validation query. Default 100. */
  validationDepth?: number;
  /** Documents retrieved per test query. Default 1000. */
  k?: number;
  /** Document tokens when encoding the corpus for evaluation; default the model's maximum. */
  evalLength?: number;
}

/** Options of {@link runStudy}. */
export interface RunStudyOptions {
  /** The output directory (locked while the study runs). */
  out: string;
  /** `--data`: where the dataset is (see `resolveDataset`). */
  data?: string;
  /** Data preparation beyond the spec. */
  studyData?: StudyData;
  /** Receives every run's training events, with the run. */
  onEvent?: (run: RunPlan, event: TrainEvent) => void | Promise<void>;
  /** Progress lines. */
  log?: (message: string) => void;
  /** The command that ran the study, written into each run's model card. */
  command?: string;
}

/** A finished run, as `runs/<key>/result.json` holds it. */
export interface RunResult {
  /** The run's key. */
  key: string;
  /** The arm that first asked for it (arms that train alike share runs). */
  arm: string;
  /** The training seed. */
  seed: number;
  /** The data budget. */
  budget: number;
  /** A static sweep's margin, else null. */
  sweepValue: number | null;
  /** The checkpoint evaluated: `best` (the best validation) or `last`. */
  checkpoint: "best" | "last";
  /** Test measures under trec_eval names; `mrr_10` is `recip_rank` with `-M 10`. */
  test: Measures;
  /** Per-query test nDCG@10 (`ndcg_cut_10`), by query id. */
  perQueryNdcg10: Record<string, number>;
  /** The cost ledger. */
  cost: RunCost;
  /** `cost.tokens` is `triples x (queryLength + 2 x docLength)`, not an exact count. */
  tokensApproximate: true;
  /** Why training stopped. */
  stopReason: string | null;
  /** Seconds evaluating on test (not in the ledger). */
  testSeconds: number;
}

/** What {@link runStudy} returns: every run's result, by key, and the plans. */
export interface StudyRuns {
  /** Every run of the study, in {@link expandRuns} order. */
  plans: RunPlan[];
  /** Results by run key. */
  results: Map<string, RunResult>;
  /** Keys of the runs this call trained (or resumed); the others were finished already. */
  trained: string[];
  /**
   * The teachers by name: description, whole cost in seconds (training, when the study trained
   * it, and scoring) and the training part.
   */
  teachers: Record<string, { description: string; seconds: number; trainSeconds: number }>;
}

/** A run whose directory holds another run's settings. */
export class StudyRunConflictError extends Error {
  /** Builds the error naming the run and its directory. */
  constructor(readonly dir: string, detail: string) {
    super(`${dir}/plan.json: ${detail}`);
    this.name = "StudyRunConflictError";
  }
}

/** The study's data, loaded once. */
interface LoadedData {
  triples: Triple[];
  validation?: ValidationData;
  corpus: Doc[];
  test: { queries: Map<string, string>; qrels: Qrels };
}

async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await Deno.readTextFile(path)) as T;
}

async function writeJson(path: string, v: unknown): Promise<void> {
  await writeTextFileAtomic(path, JSON.stringify(v, null, 2) + "\n");
}

/** The first `n` of a seeded permutation of `items` (all of them when n is absent). */
function draw<T>(items: T[], n: number | undefined, seed: number, label: string): T[] {
  if (n === undefined || n >= items.length) return items;
  const keep = new Set(new Rng(deriveSeed(seed, label)).shuffle([...items.keys()]).slice(0, n));
  return items.filter((_, i) => keep.has(i));
}

function restrict(qrels: Qrels, queries: Map<string, string>, keep: string[]) {
  const q: Qrels = new Map(), t = new Map<string, string>();
  for (const id of keep) {
    q.set(id, qrels.get(id)!);
    t.set(id, queries.get(id)!);
  }
  return { qrels: q, queries: t };
}

async function datasetDir(spec: StudySpec, data: string | undefined): Promise<string> {
  const info = await Deno.stat(spec.dataset).catch(() => null);
  if (info?.isDirectory && data === undefined) return spec.dataset;
  return await resolveDataset(spec.dataset, { data });
}

async function loadData(
  spec: StudySpec,
  dir: string,
  sd: StudyData,
  log: (m: string) => void,
): Promise<LoadedData> {
  const seed = spec.dataSeed;
  const slice = sd.slice ?? {};
  const full = await loadBeirTraining(dir);
  const trainIds = draw([...full.train.qrels.keys()], slice.trainQueries, seed, "study-train");
  const trainSet = restrict(full.train.qrels, full.train.queries, trainIds);
  const testQrelsAll = await readBeirQrels(`${dir}/qrels/test.tsv`);
  const allQueries = await readBeirQueries(`${dir}/queries.jsonl`);
  const testIds = draw([...testQrelsAll.keys()], slice.testQueries, seed, "study-test");
  for (const q of testIds) {
    if (!allQueries.has(q)) throw new Error(`${dir}/queries.jsonl: test query '${q}' missing`);
  }
  const test = restrict(testQrelsAll, allQueries, testIds);
  let corpus = full.corpus;
  if (slice.extraDocs !== undefined) {
    const judged = new Set<string>();
    for (const qrels of [trainSet.qrels, test.qrels]) {
      for (const docs of qrels.values()) for (const d of docs.keys()) judged.add(d);
    }
    const others = draw(
      corpus.filter((d) => !judged.has(d.id)),
      slice.extraDocs,
      seed,
      "study-docs",
    );
    const keep = new Set([...judged, ...others.map((d) => d.id)]);
    corpus = corpus.filter((d) => keep.has(d.id));
  }
  const n = spec.training.validationQueries;
  const split = n > 0 ? splitValidation(trainSet, { count: n, seed }) : { train: trainSet };
  const bm25 = Bm25Index.build(corpus);
  // k distinct BM25 negatives per (query, positive) pair, so budgets mean something; or the
  // negatives of a mined file, as many per query as it holds.
  const mined = spec.training.negatives;
  const { triples } = await beirTriples(corpus, split.train, {
    negatives: mined ? { kind: "file", path: mined } : { kind: "bm25" },
    seed,
    bm25,
    negativesPerPositive: mined ? undefined : spec.training.negativesPerPositive,
  });
  const validation = "validation" in split
    ? validationData(corpus, split.validation, sd.validationDepth ?? 100, bm25)
    : undefined;
  log(
    `data: ${triples.length} triples from ${split.train.queries.size} train queries, ` +
      `${validation?.queries.size ?? 0} validation queries, ${test.queries.size} test queries, ` +
      `${corpus.length} documents`,
  );
  return { triples, validation, corpus, test };
}

/** Where teachers are built: the study, its data and output, and what training them cost. */
interface TeacherContext {
  gpu: Gpu;
  spec: StudySpec;
  data: { triples: Triple[]; validation?: ValidationData };
  out: string;
  log: (m: string) => void;
  /** Seconds spent training teachers in this build (a trained teacher's training line). */
  trainSeconds: number;
}

/**
 * The checkpoint of the trained teacher `name`: trained into OUT/teachers/<name>/ with InfoNCE
 * on every training triple, unless a finished training of the same identity is there.
 */
async function trainedTeacher(
  ctx: TeacherContext,
  name: string,
  t: TrainedTeacherSpec,
): Promise<{ path: string; description: string }> {
  const { gpu, spec, data, out, log } = ctx;
  const dir = `${out}/teachers/${name}`, done = `${dir}.train.json`;
  const identity = teacherIdentity(spec, name, data.triples);
  const tr = spec.training;
  const maxSteps = Math.max(
    1,
    Math.min(t.maxSteps, Math.floor(data.triples.length / tr.batchSize)),
  );
  const what = `${spec.model} trained by the study with InfoNCE (scale ${t.scale}) on all ` +
    `${data.triples.length} training triples, ${t.docLength}-token documents`;
  if (await exists(done) && await exists(`${dir}/model`)) {
    const m = await readJson<{ identity: string; description: string }>(done);
    if (m.identity === identity) return { path: `${dir}/model`, description: m.description };
  }
  // An unfinished or stale training is redone from the start.
  if (await exists(dir)) await Deno.remove(dir, { recursive: true });
  await Deno.mkdir(dir, { recursive: true });
  log(`teacher ${name}: training (${what}, at most ${maxSteps} steps)`);
  const t0 = performance.now();
  const model = await loadEncoder(gpu, spec.model, spec.load);
  let best = 0, bestStep = 0, steps = 0;
  try {
    await train(gpu, model, { triples: data.triples, validation: data.validation }, {
      batchSize: tr.batchSize,
      chunkSize: tr.chunkSize,
      queryLength: tr.queryLength,
      docLength: t.docLength,
      lr: tr.lr,
      maxSteps,
      epochs: 1,
      evalEvery: tr.validateEvery,
      patience: tr.patience,
      seed: spec.dataSeed,
      loss: "infonce",
      infonceScale: t.scale,
      outDir: `${dir}/train`,
      log: (m) => log(`teacher ${name}: ${m}`),
      onEvent: (e) => {
        if (e.type === "step") steps = e.step;
        if (e.type === "validation" && e.ndcg10 > best) [best, bestStep] = [e.ndcg10, e.step];
      },
    });
  } finally {
    freeModel(model);
  }
  const from = await exists(`${dir}/train/best`) ? "best" : "last";
  await Deno.rename(`${dir}/train/${from}`, `${dir}/model`);
  await Deno.remove(`${dir}/train`, { recursive: true });
  const seconds = (performance.now() - t0) / 1000;
  ctx.trainSeconds += seconds;
  const description = `${what}: ${steps} steps` +
    (bestStep > 0 ? `, best validation nDCG@10 ${best.toFixed(4)} at step ${bestStep}` : "") +
    `; training took ${seconds.toFixed(1)} s`;
  await writeJson(done, { identity, description, seconds });
  log(`teacher ${name}: trained in ${seconds.toFixed(1)} s`);
  return { path: `${dir}/model`, description };
}

/** Builds a named teacher (recursively, for means; training a trained teacher first). */
async function buildTeacher(ctx: TeacherContext, name: string): Promise<Teacher> {
  const { gpu, spec } = ctx;
  const t = spec.teachers[name];
  const opts = { maxLength: spec.training.docLength };
  switch (t.kind) {
    case "encoder":
      return encoderTeacher(gpu, await loadEncoder(gpu, t.model), t.model, opts);
    case "cross-encoder":
      return crossEncoderTeacher(gpu, await loadCrossEncoder(gpu, t.model), t.model);
    case "mean":
      return meanTeacher(await Promise.all(t.of.map((m) => buildTeacher(ctx, m))));
    case "trained": {
      const { path, description } = await trainedTeacher(ctx, name, t);
      return encoderTeacher(gpu, await loadEncoder(gpu, path, spec.load), description, {
        maxLength: t.docLength,
      });
    }
  }
}

/**
 * What a teacher's scores depend on: its spec (and its members'), the base model and the shared
 * training settings (scoring lengths; a trained teacher's training), and the triples.
 */
function teacherIdentity(spec: StudySpec, name: string, triples: Triple[]): string {
  return canonicalJson({
    teacher: resolveTeacher(spec, name),
    model: spec.model,
    load: spec.load,
    training: spec.training,
    dataSeed: spec.dataSeed,
    triples: tripleFingerprint(triples),
  });
}

/**
 * The teacher's scores of every training triple: read from OUT/teachers/<name>.jsonl, or
 * computed. `seconds` is the teacher's whole cost (training, when the study trains it, and
 * scoring); `trainSeconds` the training part.
 */
async function teacherScores(
  ctx: TeacherContext,
  name: string,
): Promise<
  {
    pos: Float32Array;
    neg: Float32Array;
    seconds: number;
    trainSeconds: number;
    description: string;
  }
> {
  const { out, log, spec, data } = ctx;
  const triples = data.triples;
  const dir = `${out}/teachers`;
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir}/${name}.jsonl`, meta = `${dir}/${name}.json`;
  const identity = teacherIdentity(spec, name, triples);
  if (await exists(meta) && await exists(path)) {
    const m = await readJson<
      { identity: string; seconds: number; trainSeconds: number; description: string }
    >(meta);
    if (m.identity === identity) {
      log(`teacher ${name}: reusing ${path}`);
      return { ...teacherScoresFor(triples, await readTeacherScores(path)), ...m };
    }
  }
  const t0 = performance.now();
  ctx.trainSeconds = 0;
  const t = await buildTeacher(ctx, name);
  log(`teacher ${name}: scoring ${triples.length} triples`);
  const scores = await t.score(triples);
  const seconds = (performance.now() - t0) / 1000;
  const trainSeconds = ctx.trainSeconds;
  await writeTeacherFile(path, triples, scores);
  await writeJson(meta, { identity, seconds, trainSeconds, description: t.name });
  log(`teacher ${name}: ${seconds.toFixed(1)} s (${t.name})`);
  return {
    pos: Float32Array.from(scores.pos),
    neg: Float32Array.from(scores.neg),
    seconds,
    trainSeconds,
    description: t.name,
  };
}

/** What a run's plan.json holds. */
interface PlanFile {
  key: string;
  arm: string;
  settings: RunPlan["settings"];
  data: StudyData;
}

/** Costs so far of a run in training (`progress.json`), continued by a resume. */
interface Progress {
  trainSeconds: number;
  validationSeconds: number;
  steps: number;
  curve: ValidationPoint[];
}

function trainOptions(plan: RunPlan, n: number): Omit<TrainOptions, "outDir"> {
  const t = plan.settings.training;
  const loss = plan.settings.loss;
  const common = {
    batchSize: t.batchSize,
    chunkSize: t.chunkSize,
    queryLength: t.queryLength,
    docLength: t.docLength,
    lr: t.lr,
    // At most one epoch of the budget's triples.
    maxSteps: Math.max(1, Math.min(t.maxSteps, Math.floor(n / t.batchSize))),
    epochs: 1,
    evalEvery: t.validateEvery,
    patience: t.patience,
    seed: plan.seed,
  };
  switch (loss.loss) {
    case "margin":
      return {
        ...common,
        loss: "margin",
        target: loss.target,
        inBatch: loss.inBatch,
        inBatchIndexing: loss.inBatchIndexing,
        detachTarget: loss.detachTarget,
        error: loss.error,
      };
    case "margin-mse":
      return { ...common, loss: "margin-mse" };
    case "infonce":
      return { ...common, loss: "infonce", infonceScale: loss.scale };
  }
}

function freeModel(model: LoadedEncoder): void {
  for (const t of model.named.values()) {
    try {
      t.destroy();
    } catch {
      // already gone
    }
  }
}

/** Test measures of one run, and per-query nDCG@10. */
function testMeasures(
  qrels: Qrels,
  run: Run,
): { test: Measures; perQuery: Record<string, number> } {
  const ev = evaluate(qrels, run, { averageComplete: true });
  const mrr = evaluate(qrels, run, { averageComplete: true, maxDocsPerQuery: 10 });
  const perQuery: Record<string, number> = {};
  for (const q of qrels.keys()) perQuery[q] = ev.perQuery.get(q)?.ndcg_cut_10 ?? 0;
  return {
    test: {
      ndcg_cut_10: ev.all.ndcg_cut_10,
      mrr_10: mrr.all.recip_rank,
      recip_rank: ev.all.recip_rank,
      recall_100: ev.all.recall_100,
      recall_1000: ev.all.recall_1000,
      map: ev.all.map,
    },
    perQuery,
  };
}

/**
 * Runs every run of `spec` into `opts.out` (see the module doc for the layout): finished runs
 * are skipped, interrupted ones resumed, the rest trained; returns every run's result. A run
 * whose directory holds other settings is refused with {@link StudyRunConflictError} before
 * anything trains (every plan.json is checked first).
 */
export async function runStudy(
  gpu: Gpu,
  spec: StudySpec,
  opts: RunStudyOptions,
): Promise<StudyRuns> {
  const log = opts.log ?? (() => {});
  const out = opts.out;
  const sd: StudyData = opts.studyData ?? {};
  // Before the lock makes `out`: a spec whose files are unreadable leaves nothing behind.
  const plans = await expandRuns(spec);
  await using _lock = await lockDir(out);
  const unique = [...new Map(plans.map((p) => [p.key, p])).values()];

  // Every existing plan.json is checked before anything is loaded or trained.
  const todo: RunPlan[] = [];
  const results = new Map<string, RunResult>();
  for (const plan of unique) {
    const dir = `${out}/runs/${plan.key}`;
    if (await exists(`${dir}/plan.json`)) {
      const have = await readJson<PlanFile>(`${dir}/plan.json`);
      const want = canonicalJson({ settings: plan.settings, data: sd });
      if (canonicalJson({ settings: have.settings, data: have.data }) !== want) {
        throw new StudyRunConflictError(
          dir,
          `run ${plan.key.slice(0, 12)} (arm ${plan.arm}, seed ${plan.seed}, budget ` +
            `${plan.budget}) was made with other settings or data; use another --out`,
        );
      }
    }
    if (await exists(`${dir}/result.json`)) {
      results.set(plan.key, await readJson<RunResult>(`${dir}/result.json`));
    } else todo.push(plan);
  }
  log(`${unique.length} runs: ${unique.length - todo.length} finished, ${todo.length} to run`);
  const teachers: StudyRuns["teachers"] = {};
  for (const [name, t] of Object.entries(spec.teachers)) {
    const meta = `${out}/teachers/${name}.json`;
    if (await exists(meta)) {
      const m = await readJson<{ seconds: number; trainSeconds?: number; description: string }>(
        meta,
      );
      teachers[name] = {
        description: m.description,
        seconds: m.seconds,
        trainSeconds: m.trainSeconds ?? 0,
      };
    } else teachers[name] = { description: `${t.kind} (not scored)`, seconds: 0, trainSeconds: 0 };
  }
  if (todo.length === 0) return { plans, results, trained: [], teachers };

  const dir = await datasetDir(spec, opts.data);
  const data = await loadData(spec, dir, sd, log);
  const teacherCache = new Map<string, Awaited<ReturnType<typeof teacherScores>>>();

  for (const [i, plan] of todo.entries()) {
    const runDir = `${out}/runs/${plan.key}`;
    const label = `run ${i + 1}/${todo.length} ${plan.arm}${
      plan.sweepValue !== null ? ` margin ${plan.sweepValue}` : ""
    } seed ${plan.seed} budget ${plan.budget}`;
    await Deno.mkdir(runDir, { recursive: true });
    await writeJson(
      `${runDir}/plan.json`,
      {
        key: plan.key,
        arm: plan.arm,
        settings: plan.settings,
        data: sd,
      } satisfies PlanFile,
    );
    const subset = budgetSubset(data.triples.length, plan.budget, spec.dataSeed).sort((a, b) =>
      a - b
    );
    const triples = subset.map((j) => data.triples[j]);
    let teacher: { pos: Float32Array; neg: Float32Array } | undefined;
    let teacherSeconds = 0;
    if (plan.settings.loss.loss === "margin-mse") {
      const name = plan.settings.loss.teacher;
      let t = teacherCache.get(name);
      if (!t) {
        t = await teacherScores({ gpu, spec, data, out, log, trainSeconds: 0 }, name);
        teacherCache.set(name, t);
        teachers[name] = {
          description: t.description,
          seconds: t.seconds,
          trainSeconds: t.trainSeconds,
        };
      }
      teacher = {
        pos: Float32Array.from(subset, (j) => t!.pos[j]),
        neg: Float32Array.from(subset, (j) => t!.neg[j]),
      };
      teacherSeconds = t.seconds * subset.length / data.triples.length;
    }

    const resume = await exists(`${runDir}/last`);
    if (!resume) {
      // Nothing to continue: clear what a run stopped before its first checkpoint left.
      const names = [];
      for await (const e of Deno.readDir(runDir)) if (e.name !== "plan.json") names.push(e.name);
      for (const name of names) await Deno.remove(`${runDir}/${name}`, { recursive: true });
    }
    let progress: Progress = { trainSeconds: 0, validationSeconds: 0, steps: 0, curve: [] };
    if (resume && await exists(`${runDir}/progress.json`)) {
      progress = await readJson<Progress>(`${runDir}/progress.json`);
    }
    log(`${label}: ${resume ? "resuming" : "training"} on ${triples.length} triples`);
    const B = plan.settings.training.batchSize;
    const card = {
      baseModel: spec.model,
      data: `${triples.length} training triples of ${spec.dataset} (budget ${plan.budget} of ` +
        `${data.triples.length}; ${
          spec.training.negatives ? `negatives from ${spec.training.negatives}` : "BM25 negatives"
        }), study run ${plan.key.slice(0, 12)} (arm ${plan.arm}${
          plan.sweepValue !== null ? `, margin ${plan.sweepValue}` : ""
        }, seed ${plan.seed})`,
      command: opts.command,
    };
    const model = await loadEncoder(gpu, spec.model, spec.load);
    let stopReason: string | null = null;
    try {
      const r = await train(gpu, model, { triples, teacher, validation: data.validation }, {
        ...trainOptions(plan, triples.length),
        outDir: runDir,
        resume,
        card,
        log: (m) => log(`${label}: ${m}`),
        onEvent: async (e) => {
          if (e.type === "start") {
            progress.curve = progress.curve.filter((p) => p.step <= e.step);
            progress.steps = e.step;
          } else if (e.type === "step") {
            progress.trainSeconds += e.seconds;
            progress.steps = e.step;
          } else if (e.type === "validation") {
            progress.validationSeconds += e.seconds;
            if (!progress.curve.some((p) => p.step === e.step)) {
              progress.curve.push({
                step: e.step,
                triples: e.step * B,
                seconds: progress.trainSeconds + progress.validationSeconds,
                ndcg10: e.ndcg10,
              });
            }
          } else if (e.type === "checkpoint" && e.kind === "last") {
            await writeJson(`${runDir}/progress.json`, progress);
          }
          await opts.onEvent?.(plan, e);
        },
      });
      stopReason = r.state.stopReason;
    } finally {
      freeModel(model);
    }

    const checkpoint = await exists(`${runDir}/best`) ? "best" : "last";
    const t0 = performance.now();
    const tuned = await loadEncoder(gpu, `${runDir}/${checkpoint}`, spec.load);
    let run: Run;
    try {
      run = await denseRetrieve(gpu, tuned, {
        corpus: data.corpus,
        queries: data.test.queries,
        k: Math.min(sd.k ?? 1000, data.corpus.length),
        maxLength: sd.evalLength,
        queryMaxLength: plan.settings.training.queryLength,
        cacheDir: null,
      });
    } finally {
      freeModel(tuned);
    }
    const { test, perQuery } = testMeasures(data.test.qrels, run);
    // The evaluated checkpoint's model card, now with its test measures.
    const ckpt = `${runDir}/${checkpoint}`;
    const state = await readJson<TrainerState>(`${ckpt}/trainer.json`);
    await writeModelCard(ckpt, {
      ...card,
      training: state.options,
      steps: state.step,
      validation: state.history,
      checkpointStep: checkpoint === "best" && state.bestStep !== null ? state.bestStep : undefined,
      test: {
        dataset: `${spec.dataset} test (${data.test.queries.size} queries${
          sd.slice?.testQueries !== undefined || sd.slice?.extraDocs !== undefined
            ? `, ${data.corpus.length} documents: a slice`
            : ""
        })`,
        measures: test,
      },
      sentenceTransformers: await exists(`${ckpt}/modules.json`),
    });
    const t = plan.settings.training;
    const used = progress.steps * B;
    const result: RunResult = {
      key: plan.key,
      arm: plan.arm,
      seed: plan.seed,
      budget: plan.budget,
      sweepValue: plan.sweepValue,
      checkpoint,
      test,
      perQueryNdcg10: perQuery,
      cost: {
        teacherSeconds,
        trainSeconds: progress.trainSeconds,
        validationSeconds: progress.validationSeconds,
        triples: used,
        tokens: used * (t.queryLength + 2 * t.docLength),
        steps: progress.steps,
        curve: progress.curve,
      },
      tokensApproximate: true,
      stopReason,
      testSeconds: (performance.now() - t0) / 1000,
    };
    await writeJson(`${runDir}/result.json`, result);
    results.set(plan.key, result);
    log(
      `${label}: test nDCG@10 ${test.ndcg_cut_10.toFixed(4)} (${progress.steps} steps, ` +
        `${(progress.trainSeconds + progress.validationSeconds).toFixed(1)} s)`,
    );
  }
  return { plans, results, trained: todo.map((p) => p.key), teachers };
}
