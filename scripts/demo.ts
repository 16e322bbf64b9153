/**
 * `deno task demo`: the main job. USE-lite (the embedded default) + SciFact, end to end:
 * BM25 baseline, zero-shot dense retrieval, fine-tuning with distributed margins (the paper's
 * self-distillation loss) on the train qrels with BM25 negatives and early stopping on a
 * validation split carved from train, evaluation of the fine-tuned model on test, the paired
 * test against zero-shot, and a report in `runs/demo/`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { getGpu } from "../src/gpu/device.ts";
import { resolveOrDownload } from "../src/data/download.ts";
import { loadBeir } from "../src/data/beir.ts";
import { writeTrecRun } from "../src/data/trec.ts";
import type { Qrels, Run } from "../src/data/types.ts";
import { Bm25Index } from "../src/eval/bm25.ts";
import { denseRetrieve, modelIdentity } from "../src/eval/dense.ts";
import { evaluate, type Measures } from "../src/eval/metrics.ts";
import { pairedBootstrapCi, pairedTTest, tost } from "../src/eval/stats.ts";
import { loadEncoder } from "../src/models/load.ts";
import { writeModelCard } from "../src/models/model_card.ts";
import type { LoadedEncoder } from "../src/models/hf.ts";
import { beirTriples, loadBeirTraining, validationData } from "../src/train/data.ts";
import { type StepEvent, train, type ValidationEvent } from "../src/train/trainer.ts";
import { trainProgress } from "../src/cli/train_progress.ts";
import { deltaChart, lineChart } from "../src/report/plots.ts";
import { encodeProgress } from "../src/cli/progress.ts";

const HELP = `deno task demo — fine-tune USE-lite on SciFact with self-distillation and report

Usage: deno task demo [options]

Stages: BM25 baseline; zero-shot dense retrieval (full corpus); fine-tuning with distributed
margins on the train qrels (BM25 negatives, early stopping on a validation split carved from
train); evaluation of the best checkpoint on test; paired t-test, TOST and bootstrap CI against
zero-shot. Writes OUT/metrics.json, OUT/report.md, OUT/*.svg, OUT/model/, OUT/*.run.

Options:
  --data DIR           SciFact directory (BEIR layout), or a directory holding scifact/; else
                       $SELFMARGIN_DATA_DIR/scifact, else the cache, else downloaded
  --out DIR            output directory (default runs/demo)
  --seed N             seed of data order, negatives and validation split (default 1)
  --max-steps N        training steps at most (default 60)
  --batch-size N       triples per step (default 16)
  --query-length N     query tokens (default 24)
  --doc-length N       document tokens in training (default 48)
  --eval-length N      document tokens when encoding the corpus for evaluation (default 48)
  --lr X               learning rate (default 1e-4, chosen on the validation split)
  --eval-every N       validate every N steps (default 10)
  --patience N         validations without improvement before stopping (default 3)
  --val-queries N      validation queries carved from train (default 40)
  --val-depth N        BM25 candidates re-ranked per validation query (default 15)
  --k N                documents retrieved per test query (default 1000)
  --no-cache           do not read or write cached corpus encodings
  -h, --help           this text
`;

/** Wall time of each stage, in seconds. */
type Stages = Record<string, number>;

function parse() {
  const { values } = parseArgs({
    options: {
      data: { type: "string" },
      out: { type: "string", default: "runs/demo" },
      seed: { type: "string", default: "1" },
      "max-steps": { type: "string", default: "60" },
      "batch-size": { type: "string", default: "16" },
      "query-length": { type: "string", default: "24" },
      "doc-length": { type: "string", default: "48" },
      "eval-length": { type: "string", default: "48" },
      lr: { type: "string", default: "1e-4" },
      "eval-every": { type: "string", default: "10" },
      patience: { type: "string", default: "3" },
      "val-queries": { type: "string", default: "40" },
      "val-depth": { type: "string", default: "15" },
      k: { type: "string", default: "1000" },
      "no-cache": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  const int = (name: keyof typeof values) => {
    const v = Number(values[name]);
    if (!Number.isInteger(v) || v < 0) throw new Error(`--${name} must be a whole number`);
    return v;
  };
  const lr = Number(values.lr);
  if (!(lr > 0)) throw new Error("--lr must be a positive number");
  return {
    help: values.help,
    data: values.data,
    out: values.out!,
    seed: int("seed"),
    maxSteps: int("max-steps"),
    batchSize: int("batch-size"),
    queryLength: int("query-length"),
    docLength: int("doc-length"),
    evalLength: int("eval-length"),
    lr,
    evalEvery: int("eval-every"),
    patience: int("patience"),
    valQueries: int("val-queries"),
    valDepth: int("val-depth"),
    k: int("k"),
    cache: !values["no-cache"],
  };
}

const say = (msg: string) => console.error(`demo: ${msg}`);

/** The four measures of the report, from one run. */
function tableRow(qrels: Qrels, run: Run): Measures {
  const all = evaluate(qrels, run).all;
  // MRR@10 as trec_eval computes it with -M 10 (recip_rank over the top 10 only).
  const mrr10 = evaluate(qrels, run, { maxDocsPerQuery: 10 }).all.recip_rank;
  return { ndcg_cut_10: all.ndcg_cut_10, mrr_10: mrr10, recall_100: all.recall_100, map: all.map };
}

function fmt(x: number, digits = 4): string {
  return x.toFixed(digits);
}

async function main() {
  const o = parse();
  if (o.help) {
    console.log(HELP);
    return;
  }
  const t0 = performance.now();
  const stages: Stages = {};
  const stage = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const s = performance.now();
    say(`${name} ...`);
    const r = await fn();
    stages[name] = (performance.now() - s) / 1000;
    say(`${name}: ${stages[name].toFixed(1)} s`);
    return r;
  };
  await Deno.mkdir(o.out, { recursive: true });
  say(`seed ${o.seed}; output in ${o.out}`);

  const gpu = await getGpu();
  say(`WebGPU adapter: ${gpu.adapterName}`);
  const dir = await stage("data", () => resolveOrDownload("scifact", { data: o.data }));
  const test = await stage("load test split", () => loadBeir(dir, "test"));
  const testQueries = new Map([...test.qrels.keys()].map((q) => [q, test.queries.get(q)!]));

  const bm25 = await stage("bm25 index", () => Promise.resolve(Bm25Index.build(test.corpus)));
  const bm25Run = await stage(
    "bm25 test retrieval",
    () => Promise.resolve(bm25.retrieve(testQueries, o.k)),
  );
  await writeTrecRun(`${o.out}/bm25.run`, bm25Run, { runId: "bm25" });

  const cacheDir = o.cache ? undefined : null;
  const retrieve = (model: LoadedEncoder, label: string) =>
    stage(label, () =>
      denseRetrieve(gpu, model, {
        corpus: test.corpus,
        queries: testQueries,
        k: o.k,
        maxLength: o.evalLength,
        cacheDir,
        onProgress: encodeProgress(),
        log: say,
      }));

  const base = await loadEncoder(gpu, "use-lite");
  const zeroRun = await retrieve(base, "zero-shot retrieval");
  await writeTrecRun(`${o.out}/zero_shot.run`, zeroRun, { runId: "use-lite-zero-shot" });

  const training = await stage("training data", async () => {
    const t = await loadBeirTraining(dir, { count: o.valQueries }, o.seed);
    const { triples, stats } = await beirTriples(t.corpus, t.train, {
      negatives: { kind: "bm25" },
      seed: o.seed,
      bm25,
    });
    const validation = validationData(t.corpus, t.validation!, o.valDepth, bm25);
    return { triples, stats, validation, trainQueries: t.train.queries.size };
  });
  say(
    `${training.triples.length} triples from ${training.trainQueries} train queries; ` +
      `${training.validation.queries.size} validation queries (carved from train)`,
  );

  const trainDir = `${o.out}/training`;
  await Deno.remove(trainDir, { recursive: true }).catch(() => {});
  // The run's events draw the progress bar and feed the plots.
  const bar = trainProgress();
  const steps: StepEvent[] = [], validations: ValidationEvent[] = [];
  const result = await stage(
    "fine-tuning",
    () =>
      train(gpu, base, { triples: training.triples, validation: training.validation }, {
        loss: "margin",
        target: "distributed",
        error: "l2",
        batchSize: o.batchSize,
        queryLength: o.queryLength,
        docLength: o.docLength,
        lr: o.lr,
        maxSteps: o.maxSteps,
        evalEvery: o.evalEvery,
        patience: o.patience,
        seed: o.seed,
        outDir: trainDir,
        onEvent: (e) => {
          if (e.type === "step") steps.push(e);
          if (e.type === "validation") validations.push(e);
          return bar(e);
        },
        log: say,
      }),
  );
  const bestDir = result.state.bestStep !== null ? `${trainDir}/best` : `${trainDir}/last`;
  await Deno.remove(`${o.out}/model`, { recursive: true }).catch(() => {});
  await copyDir(bestDir, `${o.out}/model`);
  const tuned = await loadEncoder(gpu, `${o.out}/model`);
  const tunedRun = await retrieve(tuned, "fine-tuned retrieval");
  await writeTrecRun(`${o.out}/fine_tuned.run`, tunedRun, { runId: "use-lite-fine-tuned" });

  // Metrics and the paired comparison on per-query nDCG@10 over every test query.
  const zeroEval = evaluate(test.qrels, zeroRun, { averageComplete: true });
  const tunedEval = evaluate(test.qrels, tunedRun, { averageComplete: true });
  const bm25Eval = evaluate(test.qrels, bm25Run, { averageComplete: true });
  const qids = [...zeroEval.perQuery.keys()];
  const a = qids.map((q) => tunedEval.perQuery.get(q)!.ndcg_cut_10);
  const b = qids.map((q) => zeroEval.perQuery.get(q)!.ndcg_cut_10);
  const ttest = pairedTTest(a, b);
  const equivalence = tost(a, b, { margin: 0.01 });
  const ci = pairedBootstrapCi(a, b, { seed: o.seed });
  const rows = {
    bm25: tableRow(test.qrels, bm25Run),
    zero_shot: tableRow(test.qrels, zeroRun),
    fine_tuned: tableRow(test.qrels, tunedRun),
  };

  // Plots from the training run's events.
  await Deno.writeTextFile(
    `${o.out}/training_loss.svg`,
    await lineChart(lossSeries(steps), {
      title: "Training loss (distributed margins, l2)",
      x: { field: "step", title: "step" },
      y: { field: "loss", title: "loss" },
      series: "series",
    }),
  );
  await Deno.writeTextFile(
    `${o.out}/validation_ndcg10.svg`,
    await lineChart(validations.map((r) => ({ step: r.step, ndcg10: r.ndcg10 })), {
      title: "Validation nDCG@10 (re-ranking BM25 candidates; queries carved from train)",
      x: { field: "step", title: "step" },
      y: { field: "ndcg10", title: "nDCG@10" },
      points: true,
    }),
  );
  await Deno.writeTextFile(
    `${o.out}/per_query_ndcg10_change.svg`,
    await deltaChart(qids.map((q, i) => ({ query: q, delta: a[i] - b[i] })), {
      title: "Per-query nDCG@10 change on SciFact test (fine-tuned minus zero-shot)",
      measure: "nDCG@10",
    }),
  );

  const wall = (performance.now() - t0) / 1000;
  const metrics = {
    dataset: "scifact",
    model: "use-lite",
    seed: o.seed,
    adapter: gpu.adapterName,
    zero_shot: zeroEval.all,
    fine_tuned: tunedEval.all,
    bm25: bm25Eval.all,
    mrr_10: {
      bm25: rows.bm25.mrr_10,
      zero_shot: rows.zero_shot.mrr_10,
      fine_tuned: rows.fine_tuned.mrr_10,
    },
    paired: {
      measure: "ndcg_cut_10",
      queries: qids.length,
      ttest,
      tost: equivalence,
      bootstrap: ci,
    },
    training: {
      steps: result.state.step,
      best_step: result.state.bestStep,
      best_validation_ndcg_cut_10: result.state.bestMetric,
      stop_reason: result.state.stopReason,
      triples: training.triples.length,
      validation_queries: training.validation.queries.size,
      base_model_id: await modelIdentity(base),
    },
    settings: { ...o },
    stages,
    wall_seconds: wall,
  };
  await Deno.writeTextFile(`${o.out}/metrics.json`, JSON.stringify(metrics, null, 2) + "\n");
  // The model card, now with its test measures.
  await writeModelCard(`${o.out}/model`, {
    baseModel: "use-lite",
    training: result.state.options,
    steps: result.state.step,
    data: `${training.triples.length} training triples from SciFact train (BM25 negatives)`,
    validation: result.state.history,
    checkpointStep: result.state.bestStep ?? undefined,
    test: {
      dataset: `SciFact test (${qids.length} queries)`,
      measures: {
        ndcg_cut_10: tunedEval.all.ndcg_cut_10,
        mrr_10: rows.fine_tuned.mrr_10,
        recall_100: tunedEval.all.recall_100,
        recall_1000: tunedEval.all.recall_1000,
      },
    },
    command: ["deno task demo", ...Deno.args].join(" "),
  });
  await Deno.writeTextFile(`${o.out}/report.md`, report(metrics, rows, o));
  say(`done in ${wall.toFixed(0)} s: ${o.out}/report.md`);
  console.log(
    `nDCG@10  BM25 ${fmt(rows.bm25.ndcg_cut_10)}  zero-shot ${fmt(rows.zero_shot.ndcg_cut_10)}  ` +
      `fine-tuned ${fmt(rows.fine_tuned.ndcg_cut_10)}  (paired t-test p = ${
        ttest.pValue.toPrecision(3)
      })`,
  );
}

function report(
  // deno-lint-ignore no-explicit-any
  m: any,
  rows: Record<string, Measures>,
  o: ReturnType<typeof parse>,
): string {
  const line = (name: string, r: Measures) =>
    `| ${name} | ${fmt(r.ndcg_cut_10)} | ${fmt(r.mrr_10)} | ${fmt(r.recall_100)} | ${fmt(r.map)} |`;
  const t = m.paired.ttest, e = m.paired.tost, ci = m.paired.bootstrap;
  return `# selfmargin demo: USE-lite fine-tuned on SciFact with distributed margins

Seed ${m.seed} (rerun with \`deno task demo --seed ${m.seed}\` to reproduce). WebGPU adapter:
${m.adapter}. Total wall time ${m.wall_seconds.toFixed(0)} s.

## Results on SciFact test (${m.paired.queries} queries)

| system | nDCG@10 | MRR@10 | Recall@100 | MAP |
| --- | --- | --- | --- | --- |
${line("BM25 (k1 0.9, b 0.4)", rows.bm25)}
${line("USE-lite zero-shot", rows.zero_shot)}
${line("USE-lite fine-tuned", rows.fine_tuned)}

Measures as trec_eval 10.0 computes them (\`ndcg_cut_10\`, \`recall_100\`, \`map\`; MRR@10 is
\`recip_rank\` with \`-M 10\`), averaged over every judged test query.

## Fine-tuned against zero-shot (paired, per-query nDCG@10)

- mean difference ${t.meanDiff.toFixed(4)}, 95% CI [${t.ci[0].toFixed(4)}, ${t.ci[1].toFixed(4)}];
  paired t-test t = ${t.t.toFixed(3)}, df = ${t.df}, p = ${t.pValue.toPrecision(3)}.
- bootstrap 95% CI of the mean difference [${ci.ci[0].toFixed(4)}, ${ci.ci[1].toFixed(4)}].
- TOST equivalence within ±0.01: p = ${e.pValue.toPrecision(3)} (${
    e.equivalent ? "equivalent" : "not shown equivalent"
  }).

![per-query change](per_query_ndcg10_change.svg)

## Training

Loss: distributed margins (the paper's self-distillation, target attached to the graph), l2
error; Adam (no weight decay, as the reference), lr ${o.lr}, constant schedule; ${m.training.triples} triples (train qrels, one
BM25 negative each from the top 100 minus the judged positives); batch ${o.batchSize}, query
${o.queryLength} and document ${o.docLength} tokens. Validation every ${o.evalEvery} steps:
nDCG@10 re-ranking the BM25 top ${o.valDepth} of ${m.training.validation_queries} queries carved
from train (never test); patience ${o.patience}. Ran ${m.training.steps} steps; best validation
nDCG@10 ${m.training.best_validation_ndcg_cut_10?.toFixed(4) ?? "n/a"} at step
${m.training.best_step ?? "n/a"} (stop: ${m.training.stop_reason}).

![training loss](training_loss.svg)
![validation nDCG@10](validation_ndcg10.svg)

## Time per stage (seconds)

| stage | seconds |
| --- | --- |
${Object.entries(m.stages).map(([k, v]) => `| ${k} | ${(v as number).toFixed(1)} |`).join("\n")}
| total | ${m.wall_seconds.toFixed(1)} |

Corpus encodings are cached (keyed by model weights, length and texts): a second run reuses
the zero-shot encoding.

## Files

\`metrics.json\`, \`bm25.run\`, \`zero_shot.run\`, \`fine_tuned.run\` (TREC runs), \`model/\` (the
fine-tuned model; \`deno task eval --model ${o.out}/model ...\` loads it), \`training/\` (log and
checkpoints).
`;
}

/** Per-step losses and their running mean over the last 10 steps, as two plot series. */
function lossSeries(steps: StepEvent[]): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  steps.forEach((r, i) => {
    const window = steps.slice(Math.max(0, i - 9), i + 1);
    const mean = window.reduce((acc, w) => acc + w.loss, 0) / window.length;
    rows.push({ step: r.step, loss: r.loss, series: "per batch" });
    rows.push({ step: r.step, loss: mean, series: "10-batch mean" });
  });
  return rows;
}

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isFile) await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`demo: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
