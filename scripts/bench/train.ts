/**
 * The `train` bench section (`deno task bench --only train`): real training steps of the
 * trainer ({@link trainStep}: tokenization, three USE-lite forwards on one tape, the adaptive
 * margin loss, backward, gradient norm, AdamW) on SciFact train triples (random negatives, so no
 * BM25 index is built), batch 32 triples, queries 32 and documents 128 tokens. The GPU is
 * synchronized between phases so each is timed alone: ms per step for forward (tokenization
 * included; reported separately too), backward (with the gradient norm) and optimizer; triples/s
 * of the whole step. One untimed step first (pipeline compilation); then `--iters` timed steps on
 * successive batches, the median reported with the min.
 *
 * In the same run, TF.js does the same step (`--tfjs-batch N` triples, default 4, 0 skips it;
 * TF.js's cpu backend takes seconds per triple): the same USE-lite weights written with TF.js ops
 * (tests/reference/use_lite_tfjs_ops.ts, tested against our gradients in
 * tests/use_lite_tfjs_grad_test.ts), the same loss (adaptive target, l2, attached), its gradient
 * w.r.t. every weight by `tf.variableGrads`, the global gradient norm, and `tf.train.adam` with
 * our Adam's hyper-parameters, on tfjs-backend-cpu and tfjs-backend-wasm, fed the first N triples
 * of each of our batches, tokenized and padded as the trainer does (tokenization inside the timed
 * step, as in ours). TF.js computes forward and backward in one call, so its split is
 * forward+backward vs optimizer. Throughput is compared per triple (ratios: our triples/s over
 * theirs), since the batch sizes differ. The embedding gradient uses `scatterND` on both
 * backends: wasm has no `UnsortedSegmentSum` (TF.js's gather gradient), and on cpu that kernel
 * loops over all 8002 rows (measured 150 s vs 17 s for a 2-triple step here). One untimed
 * single-triple step per backend first (its loss is compared with ours on that triple, the
 * initial weights: `probeLossDiff`).
 *
 * Result key: `train: { model, batchSize, queryLength, docLength, steps, forwardMs, backwardMs,
 * optimizerMs, stepMs, tokenizeMs, triplesPerSecond, min: {...}, tfjs?: { batchSize, steps,
 * paddedPositionsPerTriple, oursPaddedPositionsPerTriple, engines: [{ engine,
 * forwardBackwardMs, optimizerMs, stepMs, triplesPerSecond, probeLoss, probeLossDiff }],
 * ratios: { vs_tfjs_cpu?, vs_tfjs_wasm? } } }`.
 *
 * @module
 */
import type { BenchContext } from "../bench.ts";
import { padBatch, tokenizeAll } from "../../src/models/encode.ts";
import { loadEncoder } from "../../src/models/load.ts";
import type { LoadedEncoder } from "../../src/models/hf.ts";
import { readUseLiteWeights } from "../../src/models/use_lite.ts";
import type { Triple } from "../../src/train/data.ts";
import { batchLoss, type StepTimings, trainStep } from "../../src/train/trainer.ts";
import { loadTrainBatches, TRAIN_STEP, trainStepContext } from "./train_setup.ts";

const { batchSize: B, queryLength: QUERY, docLength: DOC, lr: LR } = TRAIN_STEP;
/** Triples per TF.js step when `--tfjs-batch` is not given. */
export const DEFAULT_TFJS_BATCH = 4;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** Runs the section (registered in scripts/bench.ts as `train`). */
export async function trainSection(ctx: BenchContext): Promise<void> {
  const { gpu, options, log } = ctx;
  const { triples, batchAt } = await loadTrainBatches();
  const model = await loadEncoder(gpu, "use-lite");
  const stepCtx = trainStepContext(gpu, model);
  const optimizer = stepCtx.optimizer;
  const steps = Math.max(1, options.iters);
  const timings: (StepTimings & { total: number; tokenize: number })[] = [];
  const tfjsBatch = Math.min(options.tfjsBatch ?? DEFAULT_TFJS_BATCH, B);
  // TF.js's untimed first step is one triple; our loss on it, initial weights, for comparison.
  const probe = triples.slice(0, 1);
  const probeLoss = tfjsBatch > 0 ? await batchLoss(stepCtx, probe) : NaN;
  try {
    for (let i = 0; i < steps + options.warmup; i++) {
      const batch = batchAt(i);
      const t0 = performance.now();
      tokenizeAll(model.tokenizer, batch.map((t) => t.query), QUERY);
      tokenizeAll(model.tokenizer, batch.flatMap((t) => [t.positive, t.negative]), DOC);
      const tokenize = performance.now() - t0;
      const r = await trainStep(stepCtx, batch, undefined, LR, { time: true });
      const t = r.timings!;
      const total = t.forward + t.backward + t.optimizer;
      if (i >= options.warmup) timings.push({ ...t, total, tokenize });
      log(
        `train: step ${i + 1}${i < options.warmup ? " (warm-up)" : ""}: forward ` +
          `${t.forward.toFixed(0)} ms, backward ${t.backward.toFixed(0)} ms, optimizer ` +
          `${t.optimizer.toFixed(0)} ms, ${(B / (total / 1000)).toFixed(2)} triples/s`,
      );
    }
  } finally {
    optimizer.destroy();
    for (const t of model.named.values()) t.destroy();
  }
  const pick = (f: (x: (typeof timings)[number]) => number, agg: (xs: number[]) => number) =>
    r3(agg(timings.map(f)));
  const summary = (agg: (xs: number[]) => number) => ({
    forwardMs: pick((t) => t.forward, agg),
    backwardMs: pick((t) => t.backward, agg),
    optimizerMs: pick((t) => t.optimizer, agg),
    stepMs: pick((t) => t.total, agg),
    tokenizeMs: pick((t) => t.tokenize, agg),
  });
  const med = summary(median);
  const notes = ["forwardMs includes tokenization (tokenizeMs)"];
  let tfjs: Record<string, unknown> | undefined;
  if (tfjsBatch > 0) {
    const timed = Array.from({ length: steps }, (_, k) => batchAt(options.warmup + k));
    try {
      tfjs = await tfjsSide(
        ctx,
        model,
        timed,
        tfjsBatch,
        probe,
        probeLoss,
        B / (med.stepMs / 1000),
      );
    } catch (e) {
      notes.push(`TF.js unavailable: ${(e as Error).message}`);
      ctx.log(notes[notes.length - 1]);
    }
  } else notes.push("TF.js skipped (--tfjs-batch 0)");
  ctx.result.train = {
    model: "use-lite",
    loss: "margin (adaptive target, l2)",
    batchSize: B,
    queryLength: QUERY,
    docLength: DOC,
    steps,
    ...med,
    triplesPerSecond: r3(B / (med.stepMs / 1000)),
    min: summary((xs) => Math.min(...xs)),
    notes,
    ...(tfjs ? { tfjs } : {}),
  };
}

/** One TF.js engine's result. */
interface TfjsEngineResult {
  engine: string;
  forwardBackwardMs: number;
  optimizerMs: number;
  stepMs: number;
  triplesPerSecond: number;
  probeLoss: number;
  probeLossDiff: number;
  min: { forwardBackwardMs: number; optimizerMs: number; stepMs: number };
}

/**
 * The TF.js side: the same step with tf.variableGrads and tf.train.adam on the cpu and wasm
 * backends, on the first `n` triples of each timed batch of ours.
 */
async function tfjsSide(
  ctx: BenchContext,
  model: LoadedEncoder,
  batches: Triple[][],
  n: number,
  probe: Triple[],
  probeLoss: number,
  oursTriplesPerSecond: number,
): Promise<Record<string, unknown>> {
  // Dynamic imports: the other sections (and ours) need no TF.js.
  const tf = await import("npm:@tensorflow/tfjs-core@4.22.0");
  await import("npm:@tensorflow/tfjs-backend-cpu@4.22.0");
  const ops = await import("../../tests/reference/use_lite_tfjs_ops.ts");
  const notes: string[] = [];
  const backends = ["cpu"];
  try {
    const wasm = await import("npm:@tensorflow/tfjs-backend-wasm@4.22.0");
    // The .wasm binaries sit in the package's dist/; the backend reads them from this prefix.
    const url = import.meta.resolve(
      "npm:@tensorflow/tfjs-backend-wasm@4.22.0/dist/tfjs-backend-wasm.wasm",
    );
    if (!url.startsWith("file:")) throw new Error(`wasm binaries resolved to ${url}`);
    wasm.setWasmPaths(new URL("./", url).pathname);
    backends.push("wasm");
  } catch (e) {
    notes.push(`tfjs-backend-wasm unavailable: ${(e as Error).message}`);
  }
  const weights = await readUseLiteWeights();
  const pad = (texts: string[], length: number) =>
    padBatch(tokenizeAll(model.tokenizer, texts, length).ids, model.config.padId);
  const tokens = (batch: readonly Triple[]) => ({
    q: pad(batch.map((t) => t.query), QUERY),
    p: pad(batch.map((t) => t.positive), DOC),
    n: pad(batch.map((t) => t.negative), DOC),
  });
  const positionsPerTriple = (batch: readonly Triple[]) => {
    const b = tokens(batch);
    return (b.q.batch * b.q.seq + b.p.batch * b.p.seq + b.n.batch * b.n.seq) / batch.length;
  };
  const theirs = batches.map((b) => b.slice(0, n));
  const engines: TfjsEngineResult[] = [];
  const info: Record<string, unknown> = {};
  for (const backend of backends) {
    try {
      if (!(await tf.setBackend(backend))) throw new Error(`setBackend("${backend}") failed`);
      await tf.ready();
      if (backend === "wasm") {
        info.wasm = {
          simd: tf.env().getBool("WASM_HAS_SIMD_SUPPORT"),
          threads: tf.env().getBool("WASM_HAS_MULTITHREAD_SUPPORT"),
        };
      }
      const vars = ops.useLiteVariables(weights);
      const adam = tf.train.adam(LR, 0.9, 0.999, 1e-8); // our AdamW's defaults, no decay
      const step = async (batch: readonly Triple[]) => {
        const t0 = performance.now();
        const { loss, grads } = ops.lossAndGradsTfjs(vars, tokens(batch), "adaptive", {
          scatterEmbeddingGrad: true,
        });
        const norm = tf.tidy(() =>
          tf.sqrt(tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g)))))
        );
        const [lossValue] = await loss.data();
        const [normValue] = await norm.data();
        if (!Number.isFinite(lossValue) || !Number.isFinite(normValue)) {
          throw new Error(`tfjs-${backend}: loss ${lossValue}, gradient norm ${normValue}`);
        }
        const t1 = performance.now();
        adam.applyGradients([...vars].map(([name, v]) => ({
          name: v.name,
          tensor: grads.get(name)!,
        })));
        await vars.get("head.bias")!.data();
        const t2 = performance.now();
        tf.dispose([loss, norm, ...grads.values()]);
        return { forwardBackward: t1 - t0, optimizer: t2 - t1, loss: lossValue };
      };
      try {
        const warm = await step(probe);
        const times: { forwardBackward: number; optimizer: number; total: number }[] = [];
        for (const [k, batch] of theirs.entries()) {
          const t = await step(batch);
          const total = t.forwardBackward + t.optimizer;
          times.push({ ...t, total });
          ctx.log(
            `train tfjs-${backend}: step ${k + 1} (${batch.length} triples): forward+backward ` +
              `${t.forwardBackward.toFixed(0)} ms, optimizer ${t.optimizer.toFixed(0)} ms, ` +
              `${(batch.length / (total / 1000)).toFixed(3)} triples/s`,
          );
        }
        const agg = (f: (x: (typeof times)[number]) => number, a: (xs: number[]) => number) =>
          r3(a(times.map(f)));
        const stepMs = agg((t) => t.total, median);
        engines.push({
          engine: `tfjs-${backend}`,
          forwardBackwardMs: agg((t) => t.forwardBackward, median),
          optimizerMs: agg((t) => t.optimizer, median),
          stepMs,
          triplesPerSecond: r3(n / (stepMs / 1000)),
          probeLoss: warm.loss,
          probeLossDiff: Math.abs(warm.loss - probeLoss),
          min: {
            forwardBackwardMs: agg((t) => t.forwardBackward, (xs) => Math.min(...xs)),
            optimizerMs: agg((t) => t.optimizer, (xs) => Math.min(...xs)),
            stepMs: agg((t) => t.total, (xs) => Math.min(...xs)),
          },
        });
      } finally {
        adam.dispose();
        tf.dispose([...vars.values()]);
      }
    } catch (e) {
      notes.push(`tfjs-${backend} failed: ${(e as Error).message}`);
      ctx.log(notes[notes.length - 1]);
    }
  }
  const ratios: Record<string, number> = {};
  for (const e of engines) {
    ratios[`vs_${e.engine.replace("-", "_")}`] = Math.round(
      oursTriplesPerSecond / e.triplesPerSecond * 100,
    ) / 100;
  }
  for (const [k, v] of Object.entries(ratios)) {
    ctx.log(`train ratio webgpu/${k.slice(3)} (triples/s): ${v}x`);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return {
    batchSize: n,
    steps: theirs.length,
    loss: "margin (adaptive target, l2), tf.variableGrads; tf.train.adam",
    embeddingGradient: "scatterND",
    paddedPositionsPerTriple: r3(mean(theirs.map(positionsPerTriple))),
    oursPaddedPositionsPerTriple: r3(mean(batches.map(positionsPerTriple))),
    probeLoss,
    engines,
    ratios,
    backends: info,
    notes,
  };
}
