/**
 * The `torch` bench section (`deno task bench --only torch`, or `--only train,torch` for the
 * ratio): the `train` section's step (USE-lite, SciFact train triples with random negatives,
 * batch 32, queries 32 and documents 128 tokens, the margin loss with the adaptive target
 * attached and the l2 error, backward, global gradient norm, AdamW lr 1e-6 without weight decay)
 * run by PyTorch on the CPU (scripts/bench/torch_step.py), on the same batches as `train`
 * (the same triples, seed and batch order: `--warmup` untimed steps, then `--iters` timed ones),
 * tokenized and padded here exactly as the trainer does.
 *
 * This side writes to a temporary directory USE-lite's weights (one float32 file and a manifest
 * of names, shapes and offsets) and the padded token batches, then runs `python3
 * torch_step.py DIR` (the first of `python3` and `/usr/bin/python3` that imports torch; Debian's
 * `python3-torch` installs into the system interpreter) and reads one JSON line back. Timed by
 * PyTorch per step: forward (three encoder forwards and the loss; the tokens are tensors
 * already, so unlike `train`'s forward no tokenization), backward (`loss.backward()` and the
 * gradient norm) and optimizer (`AdamW.step`, `zero_grad`); median and min over the timed steps.
 * Before training, PyTorch's loss on one triple at the initial weights is compared with ours
 * ({@link batchLoss}): `probeLossDiff`. The embedding gradient is dense (PyTorch's default).
 * `blas` lists the BLAS libraries PyTorch mapped: Debian's python3-torch uses whatever provides
 * libblas.so.3, netlib's reference BLAS unless libopenblas0-pthread is installed (measured here
 * 7.6 vs 60 GFLOPS on a 1024³ matmul, 59 s vs 3.8 s per step); the section warns in `notes`
 * when PyTorch's sgemm comes from the reference BLAS.
 *
 * Result key: `torch: { available: true, python, version, threads, batchSize, queryLength,
 * docLength, steps, stepMs, forwardMs, backwardMs, optimizerMs, triplesPerSecond, min: {...},
 * probeLoss, oursProbeLoss, probeLossDiff, blas, notes, ratio_ours_over_torch?,
 * ratio_ours_over_torch_excl_tokenize? }`; the ratios (our `train.stepMs` over `stepMs`: how many
 * times slower our step is) appear when `train` ran earlier in the same run. Without torch:
 * `torch: { available: false, note }`.
 *
 * @module
 */
import type { BenchContext } from "../bench.ts";
import { padBatch, tokenizeAll } from "../../src/models/encode.ts";
import type { LoadedEncoder } from "../../src/models/hf.ts";
import { loadUseLite, readUseLiteWeights } from "../../src/models/use_lite.ts";
import type { NamedTensor } from "../../src/models/safetensors.ts";
import type { Triple } from "../../src/train/data.ts";
import { batchLoss } from "../../src/train/trainer.ts";
import { loadTrainBatches, TRAIN_STEP, TRAIN_STEP_LOSS } from "./train_setup.ts";

const { batchSize: B, queryLength: QUERY, docLength: DOC, lr: LR } = TRAIN_STEP;
const MISSING = "python3-torch is not installed (apt-get install python3-torch)";
const SCRIPT = decodeURIComponent(new URL("./torch_step.py", import.meta.url).pathname);

const r3 = (x: number) => Math.round(x * 1000) / 1000;

async function python(bin: string, args: string[]) {
  try {
    const r = await new Deno.Command(bin, { args, stdout: "piped", stderr: "piped" }).output();
    const dec = new TextDecoder();
    return { ok: r.success, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
  } catch (e) {
    return { ok: false, out: "", err: (e as Error).message };
  }
}

/** The first interpreter that imports torch, or null. */
async function findTorchPython(): Promise<string | null> {
  for (const bin of ["python3", "/usr/bin/python3"]) {
    if ((await python(bin, ["-c", "import torch, numpy"])).ok) return bin;
  }
  return null;
}

/** A padded token batch as the trainer builds it, in JSON-friendly arrays. */
function tokens(model: LoadedEncoder, texts: string[], length: number) {
  const { ids } = tokenizeAll(model.tokenizer, texts, Math.min(length, model.maxLength));
  const b = padBatch(ids, model.config.padId);
  return { batch: b.batch, seq: b.seq, ids: Array.from(b.ids), mask: Array.from(b.mask) };
}

function triplesBatch(model: LoadedEncoder, batch: readonly Triple[]) {
  return {
    q: tokens(model, batch.map((t) => t.query), QUERY),
    p: tokens(model, batch.map((t) => t.positive), DOC),
    n: tokens(model, batch.map((t) => t.negative), DOC),
  };
}

/** Writes the weights (one float32 little-endian file) and their manifest entries. */
async function writeWeights(dir: string, weights: Map<string, NamedTensor>) {
  let size = 0;
  for (const t of weights.values()) size += t.data.length;
  const all = new Float32Array(size);
  const entries: { name: string; shape: number[]; offset: number }[] = [];
  let offset = 0;
  for (const [name, t] of weights) {
    if (!(t.data instanceof Float32Array)) throw new Error(`weight ${name} is not float32`);
    all.set(t.data, offset);
    entries.push({ name, shape: t.shape, offset });
    offset += t.data.length;
  }
  // Float32Array is host-endian; every platform Deno runs on is little-endian.
  await Deno.writeFile(`${dir}/weights.bin`, new Uint8Array(all.buffer));
  return entries;
}

/** Runs the section (registered in scripts/bench.ts as `torch`). */
export async function torchSection(ctx: BenchContext): Promise<void> {
  const { gpu, options, log } = ctx;
  const bin = await findTorchPython();
  if (!bin) {
    ctx.result.torch = { available: false, note: MISSING };
    log(`torch: ${MISSING}`);
    return;
  }
  // The train section's data and batches: same dataset, seed, negatives and slicing.
  const { triples, batchAt } = await loadTrainBatches();
  const steps = Math.max(1, options.iters);
  const probe = triples.slice(0, 1);
  const weights = await readUseLiteWeights();
  const model = await loadUseLite(gpu, { weights });
  const dir = await Deno.makeTempDir({ prefix: "selfmargin-bench-torch-" });
  let oursProbeLoss: number;
  let run: Awaited<ReturnType<typeof python>>;
  try {
    oursProbeLoss = await batchLoss(
      { gpu, model, ...TRAIN_STEP_LOSS, queryLength: QUERY, docLength: DOC },
      probe,
    );
    const manifest = {
      weights: await writeWeights(dir, weights),
      warmup: options.warmup,
      lr: LR,
      threads: null, // torch_step.py: the CPUs this process may run on
    };
    await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify(manifest));
    const batches = Array.from({ length: options.warmup + steps }, (_, i) => batchAt(i));
    await Deno.writeTextFile(
      `${dir}/batches.json`,
      JSON.stringify({
        probe: triplesBatch(model, probe),
        batches: batches.map((b) => triplesBatch(model, b)),
      }),
    );
    log(`torch: running ${options.warmup} + ${steps} steps with ${bin} (PyTorch, CPU)`);
    run = await python(bin, [SCRIPT, dir]);
  } finally {
    for (const t of model.named.values()) t.destroy();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  for (const line of run.err.split("\n")) if (line.startsWith("torch: ")) log(line);
  const last = run.out.trim().split("\n").pop() ?? "";
  if (!run.ok || !last.startsWith("{")) {
    const why = run.err.trim().split("\n").pop() || `exit without a result`;
    ctx.result.torch = { available: true, python: bin, error: `torch_step.py failed: ${why}` };
    log(`torch: torch_step.py failed: ${why}`);
    return;
  }
  type Phases = { stepMs: number; forwardMs: number; backwardMs: number; optimizerMs: number };
  const r = JSON.parse(last) as {
    version: string;
    threads: number;
    steps: number;
    median: Phases;
    min: Phases;
    probeLoss: number;
    blas: string[] | null;
  };
  const round = (p: Phases) =>
    Object.fromEntries(Object.entries(p).map(([k, v]) => [k, r3(v)])) as Phases;
  const med = round(r.median);
  const probeLossDiff = Math.abs(r.probeLoss - oursProbeLoss);
  const out: Record<string, unknown> = {
    available: true,
    python: bin,
    version: r.version,
    threads: r.threads,
    batchSize: B,
    queryLength: QUERY,
    docLength: DOC,
    steps: r.steps,
    ...med,
    triplesPerSecond: r3(B / (med.stepMs / 1000)),
    min: round(r.min),
    probeLoss: r.probeLoss,
    oursProbeLoss,
    probeLossDiff,
    embeddingGradient: "dense",
    optimizer: "torch.optim.AdamW(lr 1e-6, betas (0.9, 0.999), eps 1e-8, weight_decay 0)",
    blas: r.blas,
    notes: ["forwardMs excludes tokenization (train.forwardMs includes it: train.tokenizeMs)"],
  };
  if (r.blas?.some((p) => /\/blas\/libblas\.so/.test(p))) {
    // Debian's python3-torch links the generic libblas.so.3; without an optimized provider
    // installed the alternative is netlib's reference BLAS (lib/<arch>/blas/), many times slower.
    const note = `torch uses a reference BLAS (${r.blas.join(", ")}); ` +
      "apt-get install libopenblas0-pthread for a fair comparison";
    (out.notes as string[]).push(note);
    log(`torch: WARNING ${note}`);
  }
  log(
    `torch ${r.version} (${r.threads} threads): step ${med.stepMs.toFixed(0)} ms (forward ` +
      `${med.forwardMs.toFixed(0)}, backward ${med.backwardMs.toFixed(0)}, optimizer ` +
      `${med.optimizerMs.toFixed(0)}), ${(B / (med.stepMs / 1000)).toFixed(2)} triples/s; ` +
      `probe loss ${r.probeLoss} vs ours ${oursProbeLoss} (diff ${probeLossDiff.toExponential(2)})`,
  );
  if (!(probeLossDiff <= 1e-4)) log(`torch: WARNING probe loss differs by ${probeLossDiff}`);
  const train = ctx.result.train as { stepMs?: number; tokenizeMs?: number } | undefined;
  if (train?.stepMs) {
    out.ratio_ours_over_torch = r3(train.stepMs / med.stepMs);
    if (train.tokenizeMs !== undefined) {
      out.ratio_ours_over_torch_excl_tokenize = r3((train.stepMs - train.tokenizeMs) / med.stepMs);
    }
    log(`torch: ratio ours/torch (stepMs): ${out.ratio_ours_over_torch}x slower`);
  }
  ctx.result.torch = out;
}
