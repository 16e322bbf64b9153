// The trainer end to end on USE-lite: a short SciFact run lowers the training loss and raises
// validation nDCG@10; an interrupted and resumed run ends bit-identical to an uninterrupted one;
// corrupt or mismatched checkpoints are refused with clear errors; NaN stops training and keeps
// the last good checkpoint; an output directory that holds a run is never overwritten, is locked
// while a run uses it, and a save interrupted mid-swap is recovered.
import { assertBitEqual, tinyTrainingData } from "./helpers.ts";
import { deepStrictEqual, ok, rejects } from "node:assert/strict";
import { LOCK_FILE, lockDir } from "../src/util/lock.ts";
import { Bm25Index } from "../src/eval/bm25.ts";
import { getGpu } from "../src/gpu/device.ts";
import { loadEncoder } from "../src/models/load.ts";
import { readSafetensors, writeSafetensors } from "../src/models/safetensors.ts";
import { beirTriples, loadBeirTraining, validationData } from "../src/train/data.ts";
import {
  batchLoss,
  CheckpointError,
  NonFiniteTrainingError,
  type StopEvent,
  train,
  type TrainEvent,
  type TrainOptions,
} from "../src/train/trainer.ts";

const DATA = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";

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

async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyTree(`${from}/${e.name}`, `${to}/${e.name}`);
    else await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

/** Every file under `dir` with its bytes, by relative path. */
async function snapshot(dir: string, prefix = ""): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) {
    const rel = `${prefix}${e.name}`;
    if (e.isDirectory) {
      for (const [k, v] of await snapshot(`${dir}/${e.name}`, `${rel}/`)) out.set(k, v);
    } else out.set(rel, await Deno.readFile(`${dir}/${e.name}`));
  }
  return new Map([...out].sort(([a], [b]) => a < b ? -1 : 1));
}

function stepLines(text: string) {
  return text.trim().split("\n").map((l) => JSON.parse(l)).map(
    ({ seconds: _s, triples_per_s: _t, ...rest }) => rest,
  );
}

Deno.test("resume after an interruption ends bit-identical to an uninterrupted run", async () => {
  const gpu = await getGpu();
  const data = await tinyTrainingData();
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
  const data = await tinyTrainingData();
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
    const events: TrainEvent[] = [];
    await rejects(
      train(gpu, model, data, { ...opts, resume: true, onEvent: (e) => void events.push(e) }),
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
    deepStrictEqual(log.at(-1).step, 3);
    ok(log.at(-1).message.startsWith("training stopped at step 3: the loss is NaN"));
    // The stop event carries the error; nothing was reported as a step.
    deepStrictEqual(events.map((e) => e.type), ["start", "stop"]);
    const stop = events[1] as StopEvent;
    deepStrictEqual([stop.reason, stop.step, stop.stepsRun], ["error", 2, 0]);
    ok(stop.error instanceof NonFiniteTrainingError);
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
  const data = await tinyTrainingData();
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

Deno.test("an output directory that holds a run is never overwritten; a locked one is refused", async () => {
  const gpu = await getGpu();
  const data = await tinyTrainingData();
  const root = await Deno.makeTempDir();
  const model = await loadEncoder(gpu, "use-lite");
  const opts = { ...TINY, maxSteps: 4, evalEvery: 2 };
  try {
    // A run stopped after 2 steps: last/ and best/ at step 2, log.jsonl, args.json.
    const src = `${root}/src`;
    await train(gpu, model, data, { ...opts, stopAfter: 2, outDir: src, args: { run: "src" } });
    deepStrictEqual(
      JSON.parse(await Deno.readTextFile(`${src}/args.json`)),
      { run: "src" },
    );
    ok(!(await exists(`${src}/${LOCK_FILE}`)), "the lock outlived the run");

    // Deleting last/ (83 MB of optimizer state) after training is normal: a new run into the
    // directory must not replace best/ with the untrained model, truncate the log, or rewrite
    // args.json.
    const used = `${root}/used`;
    await copyTree(src, used);
    await Deno.remove(`${used}/last`, { recursive: true });
    const before = await snapshot(used);
    await rejects(
      train(gpu, model, data, { ...opts, outDir: used, args: { run: "other" } }),
      (e: Error) =>
        e.name === "RunExistsError" &&
        e.message.startsWith(`${used} already holds a run (best, log.jsonl, args.json): `) &&
        e.message.includes(`--model ${used}/best`),
    );
    await rejects(
      train(gpu, model, data, { ...opts, outDir: used, resume: true }),
      (e: Error) =>
        e instanceof CheckpointError && e.message.includes("is gone") &&
        e.message.includes(`--model ${used}/best`),
    );
    deepStrictEqual(await snapshot(used), before);

    // Every trace of a run alone is enough; a refused run writes nothing (not even a lock).
    for (const trace of ["log.jsonl", "args.json", "last.old", "best.old", "last"]) {
      const dir = `${root}/only-${trace}`;
      if (trace.startsWith("last") || trace.startsWith("best")) {
        await copyTree(`${src}/${trace.slice(0, 4)}`, `${dir}/${trace}`);
      } else await copyTree(src, dir).then(() => keepOnly(dir, trace));
      const was = await snapshot(dir);
      await rejects(
        train(gpu, model, data, { ...opts, outDir: dir }),
        (e: Error) =>
          e.name === "RunExistsError" && e.message.includes(`already holds a run (${trace})`) &&
          (trace.startsWith("last") ? /pass --resume/ : /another output directory/).test(
            e.message,
          ),
        trace,
      );
      deepStrictEqual(await snapshot(dir), was, trace);
    }

    // A directory locked by a live run is refused, naming the pid, and nothing is written.
    const locked = `${root}/locked`;
    const lock = await lockDir(locked);
    await rejects(
      train(gpu, model, data, { ...opts, outDir: locked, args: {} }),
      (e: Error) => e.name === "LockError" && e.message.includes(`pid ${Deno.pid}`),
    );
    await lock.release();
    deepStrictEqual([...(await snapshot(locked)).keys()], []);

    // A save interrupted between its two renames leaves last.old/ (and unfinished staging
    // copies), and the run was killed, leaving a stale lock and a log line after the
    // checkpoint: --resume recovers last.old/, cleans up, drops the line, and continues.
    const crashed = `${root}/crashed`;
    await copyTree(src, crashed);
    await Deno.rename(`${crashed}/last`, `${crashed}/last.old`);
    for (const junk of ["last.staging", "last.staging.tmp-1234", "best.staging"]) {
      await Deno.mkdir(`${crashed}/${junk}`);
      await Deno.writeTextFile(`${crashed}/${junk}/model.safetensors`, "half");
    }
    const logBefore = await Deno.readTextFile(`${crashed}/log.jsonl`);
    await Deno.writeTextFile(`${crashed}/log.jsonl`, '{"type":"step","step":3}\n{"ty', {
      append: true,
    });
    const dead = new Deno.Command("true").spawn();
    await dead.status;
    await Deno.writeTextFile(
      `${crashed}/${LOCK_FILE}`,
      JSON.stringify({
        pid: dead.pid,
        hostname: Deno.hostname(),
        started: "2020-01-01T00:00:00Z",
        command: ["train"],
        token: "x",
      }),
    );
    await rejects(
      train(gpu, model, data, { ...opts, outDir: crashed, resume: true }),
      (e: Error) =>
        e.name === "LockError" && e.message.includes("stale lock") &&
        e.message.includes(`delete ${crashed}/${LOCK_FILE}`),
    );
    const said: string[] = [];
    const r = await train(gpu, model, data, {
      ...opts,
      outDir: crashed,
      resume: true,
      breakLock: true,
      stopAfter: 1,
      log: (m) => said.push(m),
    });
    deepStrictEqual([r.stepsRun, r.state.step], [1, 3]);
    const text = said.join("\n");
    ok(text.includes(`took over the stale lock of pid ${dead.pid}`), text);
    ok(text.includes(`recovered ${crashed}/last from ${crashed}/last.old`), text);
    ok(text.includes("best.staging, last.staging, last.staging.tmp-1234"), text);
    ok(text.includes(`dropped 2 line(s) of ${crashed}/log.jsonl`), text);
    deepStrictEqual(
      (await Array.fromAsync(Deno.readDir(crashed), (e) => e.name)).sort(),
      ["args.json", "best", "last", "log.jsonl"],
    );
    const log = await Deno.readTextFile(`${crashed}/log.jsonl`);
    ok(log.startsWith(logBefore));
    deepStrictEqual(
      log.slice(logBefore.length).trim().split("\n").map((l) => JSON.parse(l).step),
      [3],
    );
    deepStrictEqual(JSON.parse(await Deno.readTextFile(`${crashed}/last/trainer.json`)).step, 3);
  } finally {
    for (const t of model.named.values()) t.destroy();
    await Deno.remove(root, { recursive: true });
  }
});

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/** Removes every entry of `dir` but `name`. */
async function keepOnly(dir: string, name: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (e.name !== name) await Deno.remove(`${dir}/${e.name}`, { recursive: true });
  }
}

Deno.test("train CLI: a used or locked --out is refused at once, and nothing there is rewritten", async () => {
  const root = await Deno.makeTempDir();
  const script = new URL("../scripts/train.ts", import.meta.url).pathname;
  const cli = async (out: string, ...more: string[]) => {
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-check", script, "--data", `${DATA}/scifact`, "--out", out, ...more],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: r.code, stderr: new TextDecoder().decode(r.stderr) };
  };
  const sleeper = new Deno.Command("sleep", { args: ["60"] }).spawn();
  try {
    // best/ and log.jsonl, last/ deleted: refused before any data is loaded; args.json kept.
    const used = `${root}/used`;
    await Deno.mkdir(`${used}/best`, { recursive: true });
    await Deno.writeTextFile(`${used}/best/model.safetensors`, "weights");
    await Deno.writeTextFile(`${used}/log.jsonl`, '{"type":"step","step":1}\n');
    await Deno.writeTextFile(`${used}/args.json`, '{"args":["first"]}\n');
    const before = await snapshot(used);
    const a = await cli(used);
    deepStrictEqual(a.code, 2, a.stderr);
    ok(a.stderr.startsWith(`train: ${used} already holds a run (best, log.jsonl, args.json)`));
    ok(!a.stderr.includes("indexing"), "data was loaded before the refusal");
    const b = await cli(used, "--resume");
    deepStrictEqual(b.code, 2, b.stderr);
    ok(b.stderr.includes(`--model ${used}/best`), b.stderr);
    deepStrictEqual(await snapshot(used), before);

    // Locked by a live process: refused naming its pid; a stale lock says how to break it.
    const locked = `${root}/locked`;
    await Deno.mkdir(locked);
    const lockText = (pid: number) =>
      JSON.stringify({
        pid,
        hostname: Deno.hostname(),
        started: "2020-01-01T00:00:00Z",
        command: ["train", "--out", locked],
        token: "t",
      });
    await Deno.writeTextFile(`${locked}/${LOCK_FILE}`, lockText(sleeper.pid));
    const c = await cli(locked);
    deepStrictEqual(c.code, 2, c.stderr);
    ok(c.stderr.includes(`is held by pid ${sleeper.pid} on this host`), c.stderr);
    const dead = new Deno.Command("true").spawn();
    await dead.status;
    await Deno.writeTextFile(`${locked}/${LOCK_FILE}`, lockText(dead.pid));
    const d = await cli(locked);
    deepStrictEqual(d.code, 2, d.stderr);
    ok(d.stderr.includes("stale lock") && d.stderr.includes("--break-lock"), d.stderr);
    deepStrictEqual(
      (await Array.fromAsync(Deno.readDir(locked), (e) => e.name)).sort(),
      [LOCK_FILE],
    );
  } finally {
    sleeper.kill();
    await sleeper.status;
    await Deno.remove(root, { recursive: true });
  }
});
