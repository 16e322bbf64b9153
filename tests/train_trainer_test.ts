// The trainer end to end on USE-lite: a short SciFact run lowers the training loss and raises
// validation nDCG@10; an interrupted and resumed run ends bit-identical to an uninterrupted one;
// corrupt or mismatched checkpoints are refused with clear errors; NaN stops training and keeps
// the last good checkpoint.
import { assertBitEqual } from "./helpers.ts";
import { deepStrictEqual, ok, rejects } from "node:assert/strict";
import type { Doc, Qrels } from "../src/data/types.ts";
import { Bm25Index } from "../src/eval/bm25.ts";
import { getGpu } from "../src/gpu/device.ts";
import { loadEncoder } from "../src/models/load.ts";
import { readSafetensors, writeSafetensors } from "../src/models/safetensors.ts";
import {
  beirTriples,
  loadBeirTraining,
  splitValidation,
  type Triple,
  type ValidationData,
  validationData,
} from "../src/train/data.ts";
import {
  batchLoss,
  CheckpointError,
  NonFiniteTrainingError,
  train,
  type TrainOptions,
} from "../src/train/trainer.ts";

const DATA = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";

const WORDS = ["cell", "protein", "virus", "gene", "brain", "heart", "blood", "drug", "mouse"];
const CORPUS: Doc[] = Array.from({ length: 24 }, (_, i) => ({
  id: `d${i}`,
  title: "",
  text: `${WORDS[i % 9]} ${WORDS[(i * 7 + 3) % 9]} and ${WORDS[(i * 5 + 1) % 9]} study ${i}`,
}));

async function tinyData(): Promise<{ triples: Triple[]; validation: ValidationData }> {
  const queries = new Map(Array.from({ length: 9 }, (_, i) => [`q${i}`, `${WORDS[i]} effects`]));
  const qrels: Qrels = new Map(
    [...queries.keys()].map((q, i) => [q, new Map([[`d${i}`, 1], [`d${i + 9}`, 1]])]),
  );
  const { train, validation } = splitValidation({ queries, qrels }, { count: 3, seed: 1 });
  const bm25 = Bm25Index.build(CORPUS);
  const { triples } = await beirTriples(CORPUS, train, {
    negatives: { kind: "bm25", depth: 8 },
    seed: 2,
    bm25,
  });
  return { triples, validation: validationData(CORPUS, validation, 5, bm25) };
}

const TINY: Omit<TrainOptions, "outDir"> = {
  batchSize: 4,
  queryLength: 8,
  docLength: 16,
  lr: 1e-4,
  maxSteps: 4,
  evalEvery: 2,
  patience: 5,
  seed: 7,
  target: "adaptive",
  inBatch: true,
};

async function params(model: Awaited<ReturnType<typeof loadEncoder>>) {
  const out = new Map<string, Float32Array>();
  for (const [name, t] of model.named) out.set(name, (await t.read()) as Float32Array);
  return out;
}

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isFile) await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

function stepLines(text: string) {
  return text.trim().split("\n").map((l) => JSON.parse(l)).map(
    ({ seconds: _s, triples_per_s: _t, ...rest }) => rest,
  );
}

Deno.test("resume after an interruption ends bit-identical to an uninterrupted run", async () => {
  const gpu = await getGpu();
  const data = await tinyData();
  // 12 triples / 4 = 3 steps per epoch: the 4-step run crosses an epoch; stopping after 2 leaves
  // the resumed run mid-epoch.
  deepStrictEqual(data.triples.length, 12);
  const dir = await Deno.makeTempDir();
  try {
    const a = await loadEncoder(gpu, "use-lite");
    const ra = await train(gpu, a, data, { ...TINY, outDir: `${dir}/a` });
    deepStrictEqual(ra.state.step, 4);
    deepStrictEqual(ra.state.epoch, 1);

    const b1 = await loadEncoder(gpu, "use-lite");
    const rb1 = await train(gpu, b1, data, { ...TINY, outDir: `${dir}/b`, stopAfter: 2 });
    deepStrictEqual([rb1.stepsRun, rb1.state.step, rb1.state.stopReason], [2, 2, null]);
    // A fresh process: the model is loaded anew and its weights come from the checkpoint.
    const b2 = await loadEncoder(gpu, "use-lite");
    const rb2 = await train(gpu, b2, data, { ...TINY, outDir: `${dir}/b`, resume: true });
    deepStrictEqual([rb2.stepsRun, rb2.state.step], [2, 4]);

    const pa = await params(a), pb = await params(b2);
    const fresh = await params(await loadEncoder(gpu, "use-lite"));
    for (const name of ["head.weight", "layers.1.ffn.out.weight"]) {
      ok(pa.get(name)!.some((x, i) => x !== fresh.get(name)![i]), `${name} did not change`);
    }
    for (const [name, v] of pa) assertBitEqual(pb.get(name), v, name);
    const optA = await readSafetensors(`${dir}/a/last/optimizer.safetensors`);
    const optB = await readSafetensors(`${dir}/b/last/optimizer.safetensors`);
    deepStrictEqual([...optB.keys()], [...optA.keys()]);
    for (const [name, t] of optA) assertBitEqual(optB.get(name)?.data, t.data, name);
    deepStrictEqual(
      JSON.parse(await Deno.readTextFile(`${dir}/b/last/trainer.json`)),
      JSON.parse(await Deno.readTextFile(`${dir}/a/last/trainer.json`)),
    );
    deepStrictEqual(
      stepLines(await Deno.readTextFile(`${dir}/b/log.jsonl`)),
      stepLines(await Deno.readTextFile(`${dir}/a/log.jsonl`)),
    );
    // The best checkpoint loads back as a model.
    const best = await loadEncoder(gpu, `${dir}/a/best`);
    deepStrictEqual(best.named.size, a.named.size);

    // Resuming a finished run does nothing; a fresh run into a used directory is refused.
    const done = await train(gpu, b2, data, { ...TINY, outDir: `${dir}/b`, resume: true });
    deepStrictEqual(done.stepsRun, 0);
    await rejects(train(gpu, b2, data, { ...TINY, outDir: `${dir}/b` }), /already holds a run/);

    // Corrupt or mismatched checkpoints are refused, naming the directory and the problem.
    const last = `${dir}/b/last`;
    const cases: [string, (d: string) => Promise<void>, RegExp, Partial<TrainOptions>?][] = [
      ["garbage weights", async (d) => {
        await Deno.writeFile(`${d}/model.safetensors`, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]));
      }, /model\.safetensors: malformed safetensors/],
      ["truncated weights", async (d) => {
        const bytes = await Deno.readFile(`${d}/model.safetensors`);
        await Deno.writeFile(`${d}/model.safetensors`, bytes.subarray(0, bytes.length >> 1));
      }, /model\.safetensors: malformed safetensors: .*outside the data/],
      [
        "no optimizer state",
        (d) => Deno.remove(`${d}/optimizer.safetensors`),
        /optimizer\.safetensors is missing/,
      ],
      [
        "bad trainer state",
        (d) => Deno.writeTextFile(`${d}/trainer.json`, "{"),
        /trainer\.json is not valid JSON/,
      ],
      ["missing config", (d) => Deno.remove(`${d}/config.json`), /config\.json is missing/],
      ["other options", () => Promise.resolve(), /other options: lr 0\.0001 \(now 0\.001\)/, {
        lr: 1e-3,
      }],
    ];
    for (const [what, corrupt, re, change] of cases) {
      const out = `${dir}/c-${what.replaceAll(" ", "-")}`;
      await copyDir(last, `${out}/last`);
      await corrupt(`${out}/last`);
      const model = await loadEncoder(gpu, "use-lite");
      await rejects(
        train(gpu, model, data, { ...TINY, maxSteps: 6, ...change, outDir: out, resume: true }),
        (e: Error) =>
          e instanceof CheckpointError &&
          e.message.startsWith(`cannot resume from ${out}/last: `) &&
          re.test(e.message),
        what,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("NaN stops training with the tensors named, and the last good checkpoint stays", async () => {
  const gpu = await getGpu();
  const data = await tinyData();
  const dir = await Deno.makeTempDir();
  try {
    const model = await loadEncoder(gpu, "use-lite");
    const opts = { ...TINY, maxSteps: 6, outDir: dir };
    await train(gpu, model, data, { ...opts, stopAfter: 2 });
    // Poison one weight of the saved checkpoint: the resumed run's first step meets NaN.
    const path = `${dir}/last/model.safetensors`;
    const weights = await readSafetensors(path);
    weights.get("head.bias")!.data[0] = NaN;
    await writeSafetensors(path, weights, { format: "pt" });
    const before = await Deno.readFile(path);
    await rejects(
      train(gpu, model, data, { ...opts, resume: true }),
      (e: Error) =>
        e instanceof NonFiniteTrainingError && e.step === 3 &&
        /the loss is NaN/.test(e.message) &&
        /NaN or Inf in the gradients of .*head\.weight/.test(e.message) &&
        e.message.includes(`${dir}/last is kept`),
    );
    deepStrictEqual(await Deno.readFile(path), before);
    deepStrictEqual(JSON.parse(await Deno.readTextFile(`${dir}/last/trainer.json`)).step, 2);
    const log = (await Deno.readTextFile(`${dir}/log.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    deepStrictEqual(log.at(-1).type, "error");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SciFact: a short run lowers the training loss and raises validation nDCG@10", async () => {
  // 30 validation queries carved from train re-rank their BM25 top 10; 64 train queries, BM25
  // negatives; USE-lite, 10 steps of 4 triples, queries 12 / documents 32 tokens.
  const gpu = await getGpu();
  const d = await loadBeirTraining(`${DATA}/scifact`, { count: 30 }, 7);
  const bm25 = Bm25Index.build(d.corpus);
  const qids = [...d.train.qrels.keys()].slice(0, 64);
  const sub = {
    qrels: new Map(qids.map((q) => [q, d.train.qrels.get(q)!])),
    queries: d.train.queries,
  };
  const { triples } = await beirTriples(d.corpus, sub, {
    negatives: { kind: "bm25", depth: 20 },
    seed: 1,
    bm25,
  });
  const validation = validationData(d.corpus, d.validation!, 10, bm25);
  const model = await loadEncoder(gpu, "use-lite");
  const lengths = { queryLength: 12, docLength: 32 };
  const lossCtx = {
    gpu,
    model,
    loss: "margin" as const,
    margin: {
      target: "adaptive" as const,
      inBatch: false,
      error: "l2" as const,
      detachTarget: false,
      inBatchIndexing: "reference" as const,
    },
    ...lengths,
  };
  const probe = triples.slice(0, 16);
  const lossBefore = await batchLoss(lossCtx, probe);
  const dir = await Deno.makeTempDir();
  try {
    const t0 = performance.now();
    const r = await train(gpu, model, { triples, validation }, {
      ...lengths,
      batchSize: 4,
      lr: 2e-5,
      maxSteps: 10,
      evalEvery: 10,
      seed: 3,
      target: "adaptive",
      outDir: dir,
    });
    const lossAfter = await batchLoss(lossCtx, probe);
    const [first, last] = [r.state.history[0], r.state.history.at(-1)!];
    console.log(
      `probe loss ${lossBefore.toFixed(4)} -> ${lossAfter.toFixed(4)}; validation nDCG@10 ` +
        `${first.ndcg10.toFixed(4)} (step ${first.step}) -> ${last.ndcg10.toFixed(4)} ` +
        `(step ${last.step}); ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    deepStrictEqual([first.step, last.step], [0, 10]);
    ok(lossAfter < lossBefore, `training loss did not go down: ${lossBefore} -> ${lossAfter}`);
    ok(
      last.ndcg10 > first.ndcg10,
      `validation nDCG@10 did not go up: ${first.ndcg10} -> ${last.ndcg10}`,
    );
    deepStrictEqual(r.state.bestStep, 10);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Margin-MSE and InfoNCE train through the same loop (and distributed targets)", async () => {
  const gpu = await getGpu();
  const data = await tinyData();
  const teacher = {
    pos: data.triples.map((_, i) => 8 + (i % 3)),
    neg: data.triples.map((_, i) => 2 + (i % 5) / 2),
  };
  const dir = await Deno.makeTempDir();
  try {
    const runs: [string, Partial<TrainOptions>][] = [
      ["margin-mse", { loss: "margin-mse" }],
      ["infonce", { loss: "infonce", infonceScale: 20 }],
      ["distributed", { target: "distributed", inBatch: false, error: "soft" }],
    ];
    for (const [name, change] of runs) {
      const model = await loadEncoder(gpu, "use-lite");
      const r = await train(gpu, model, { ...data, teacher }, {
        ...TINY,
        maxSteps: 2,
        evalEvery: 2,
        ...change,
        outDir: `${dir}/${name}`,
      });
      deepStrictEqual(r.state.step, 2, name);
      const steps = (await Deno.readTextFile(`${dir}/${name}/log.jsonl`)).trim().split("\n")
        .map((l) => JSON.parse(l)).filter((o) => o.type === "step");
      deepStrictEqual(steps.length, 2, name);
      ok(steps.every((s) => Number.isFinite(s.loss) && s.grad_norm > 0), name);
      for (const t of model.named.values()) t.destroy();
    }
    await rejects(
      train(gpu, await loadEncoder(gpu, "use-lite"), data, {
        ...TINY,
        loss: "margin-mse",
        outDir: `${dir}/x`,
      }),
      /Margin-MSE needs teacher scores/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
