/**
 * The `encode` benchmark section (`deno task bench --only encode [--docs N]`): USE-lite over the
 * first N SciFact documents (title + text, as BEIR joins them; default 1000) at 128 tokens,
 * texts/s and tokens/s of the WebGPU encoder, and in the same run TF.js executing the same graph
 * (`model.json` of the same npm package) on `tfjs-backend-cpu` and `tfjs-backend-wasm`, fed the
 * same length-sorted batches. Ratios are ours / theirs in texts per second.
 *
 * What is timed, for every engine alike: from token ids (tokenized once, untimed; the
 * tokenization time is reported separately) through the padded batches to the embeddings read
 * back on the host. Each engine first runs one untimed small batch (pipeline compilation, wasm
 * instantiation, kernel setup). Outputs are compared (max |ours - TF.js| per component) so the
 * engines are known to compute the same thing.
 *
 * Loaded with a dynamic import from scripts/bench.ts only when the section is selected, so the
 * matmul path keeps importing no npm package; TF.js is imported dynamically here too, so a
 * machine without it still reports our numbers (with a note).
 *
 * Result keys: `encode: { docs, maxLength, batchSize, batches, tokens, paddedTokens, truncated,
 * tokenizeSeconds, engines: [{engine, seconds, textsPerSecond, tokensPerSecond,
 * maxAbsDiff?}], ratios: {vs_tfjs_cpu?, vs_tfjs_wasm?}, notes: [] }`.
 *
 * @module
 */
import type { BenchContext } from "../bench.ts";
import { ProgressBar } from "../../src/cli/progress.ts";
import { readTextsJsonl } from "../../src/cli/texts_jsonl.ts";
import { resolveDataset } from "../../src/data/resolve.ts";
import { synchronize } from "../../src/gpu/kernels.ts";
import { embedBatch, lengthBatches, padBatch, tokenizeAll } from "../../src/models/encode.ts";
import { loadEncoder } from "../../src/models/load.ts";
import { locateUseLite } from "../../src/models/use_lite_assets.ts";
import { readTfjsGraphArtifacts } from "../../src/models/tfjs_weights.ts";

/** The USE-lite graph's output node (the L2-normalised embedding). */
const USE_LITE_OUTPUT = "module_apply_default/Encoder_en/hidden_layers/l2_normalize";

/** Documents used when `--docs` is not given. */
export const DEFAULT_DOCS = 1000;
const MAX_LENGTH = 128;
const BATCH_SIZE = 64;
const MAX_TOKENS = 16384;

/** One engine's timing. */
export interface EngineResult {
  /** `webgpu`, `tfjs-cpu` or `tfjs-wasm`. */
  engine: string;
  /** Wall seconds over all batches. */
  seconds: number;
  /** Texts per second. */
  textsPerSecond: number;
  /** Real (non-padding) tokens per second. */
  tokensPerSecond: number;
  /** Largest |ours - this engine| over all components (TF.js engines only). */
  maxAbsDiff?: number;
}

async function scifactCorpus(): Promise<string> {
  try {
    return `${await resolveDataset("scifact")}/corpus.jsonl`;
  } catch (e) {
    const fallback = "../shared/datasets/scifact/corpus.jsonl";
    if (await Deno.stat(fallback).then(() => true, () => false)) return fallback;
    throw e;
  }
}

type Tf = typeof import("npm:@tensorflow/tfjs-core@4.22.0");

/** TF.js with the converter, cpu and wasm backends, or why not. */
async function importTfjs(): Promise<
  {
    tf: Tf;
    loadGraphModel: typeof import("npm:@tensorflow/tfjs-converter@4.22.0").loadGraphModel;
    wasmDir: string | null;
    wasmNote?: string;
  }
> {
  const tf = await import("npm:@tensorflow/tfjs-core@4.22.0");
  const { loadGraphModel } = await import("npm:@tensorflow/tfjs-converter@4.22.0");
  await import("npm:@tensorflow/tfjs-backend-cpu@4.22.0");
  let wasmDir: string | null = null;
  let wasmNote: string | undefined;
  try {
    const wasm = await import("npm:@tensorflow/tfjs-backend-wasm@4.22.0");
    // The .wasm binaries sit in the package's dist/; the backend reads them from this prefix.
    const url = import.meta.resolve(
      "npm:@tensorflow/tfjs-backend-wasm@4.22.0/dist/tfjs-backend-wasm.wasm",
    );
    if (!url.startsWith("file:")) throw new Error(`wasm binaries resolved to ${url}`);
    wasmDir = new URL("./", url).pathname;
    wasm.setWasmPaths(wasmDir);
  } catch (e) {
    wasmNote = `tfjs-backend-wasm unavailable: ${(e as Error).message}`;
  }
  return { tf, loadGraphModel, wasmDir, wasmNote };
}

/** Loads the USE-lite graph on the current TF.js backend (package files, no network). */
async function loadTfjsGraph(
  loadGraphModel: typeof import("npm:@tensorflow/tfjs-converter@4.22.0").loadGraphModel,
) {
  const assets = await locateUseLite();
  const handler = { load: () => readTfjsGraphArtifacts(assets.modelJson) };
  // deno-lint-ignore no-explicit-any
  return await loadGraphModel(handler as any);
}

function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** encode: WebGPU USE-lite vs TF.js (cpu, wasm) on the same SciFact batches. */
export async function encodeSection(ctx: BenchContext): Promise<void> {
  const { gpu } = ctx;
  const docsWanted = ctx.options.docs ?? DEFAULT_DOCS;
  const corpus = await scifactCorpus();
  const docs = await readTextsJsonl(corpus, { limit: docsWanted });
  const texts = docs.map((d) => d.text);
  const notes: string[] = [];

  const model = await loadEncoder(gpu, "use-lite", { maxLength: MAX_LENGTH });
  const tokStart = performance.now();
  const { ids, truncated } = tokenizeAll(model.tokenizer, texts, MAX_LENGTH);
  const tokenizeSeconds = (performance.now() - tokStart) / 1000;
  const lengths = ids.map((x) => x.length);
  const tokens = lengths.reduce((a, b) => a + b, 0);
  const batches = lengthBatches(lengths, BATCH_SIZE, MAX_TOKENS);
  const paddedTokens = batches.reduce((a, b) => a + b.length * lengths[b[0]], 0);
  ctx.log(
    `encode: ${texts.length} SciFact docs (${corpus}), ${tokens} tokens (${paddedTokens} ` +
      `padded) in ${batches.length} batches, ${truncated} truncated at ${MAX_LENGTH}; ` +
      `tokenized in ${tokenizeSeconds.toFixed(2)} s`,
  );
  // A small untimed warm-up batch: the two shortest texts.
  const warm = batches[batches.length - 1].slice(-2);
  const engines: EngineResult[] = [];
  const dim = model.config.hidden;

  // --- ours: WebGPU -------------------------------------------------------------------------
  await embedBatch(gpu, model, padBatch(warm.map((i) => ids[i]), model.config.padId));
  await synchronize(gpu);
  const ours = new Float32Array(texts.length * dim);
  const run = async (
    engine: string,
    embed: (rows: number[][]) => Promise<Float32Array>,
    out: Float32Array,
  ): Promise<EngineResult> => {
    const bar = new ProgressBar(`encode ${engine}`, { total: texts.length, unit: "texts" });
    const start = performance.now();
    let done = 0;
    for (const b of batches) {
      const rows = await embed(b.map((i) => ids[i]));
      b.forEach((i, r) => out.set(rows.subarray(r * dim, (r + 1) * dim), i * dim));
      done += b.length;
      bar.update(done);
    }
    const seconds = (performance.now() - start) / 1000;
    bar.finish();
    const result: EngineResult = {
      engine,
      seconds: round(seconds),
      textsPerSecond: round(texts.length / seconds),
      tokensPerSecond: round(tokens / seconds, 1),
    };
    ctx.log(
      `encode ${engine}: ${seconds.toFixed(2)} s, ${result.textsPerSecond} texts/s, ` +
        `${result.tokensPerSecond} tokens/s`,
    );
    return result;
  };
  engines.push(
    await run("webgpu", (rows) => embedBatch(gpu, model, padBatch(rows, model.config.padId)), ours),
  );

  // --- TF.js on the same batches ------------------------------------------------------------
  let tfjs: Awaited<ReturnType<typeof importTfjs>> | null = null;
  try {
    tfjs = await importTfjs();
  } catch (e) {
    notes.push(`TF.js unavailable: ${(e as Error).message}`);
  }
  const backendInfo: Record<string, unknown> = {};
  if (tfjs) {
    const { tf, loadGraphModel } = tfjs;
    if (tfjs.wasmNote) notes.push(tfjs.wasmNote);
    const backends = tfjs.wasmDir ? ["cpu", "wasm"] : ["cpu"];
    for (const backend of backends) {
      try {
        if (!(await tf.setBackend(backend))) throw new Error(`setBackend("${backend}") failed`);
        await tf.ready();
        if (backend === "wasm") {
          backendInfo.wasm = {
            simd: tf.env().getBool("WASM_HAS_SIMD_SUPPORT"),
            threads: tf.env().getBool("WASM_HAS_MULTITHREAD_SUPPORT"),
          };
        }
        const graph = await loadTfjsGraph(loadGraphModel);
        const exec = async (rows: number[][]): Promise<Float32Array> => {
          // The sparse batch exactly as @tensorflow-models/universal-sentence-encoder builds it.
          const pairs = rows.flatMap((x, b) => x.map((_, t) => [b, t]));
          const indices = tf.tensor2d(pairs.flat(), [pairs.length, 2], "int32");
          const values = tf.tensor1d(rows.flat(), "int32");
          const res = await graph.executeAsync({ indices, values }, USE_LITE_OUTPUT);
          const t = Array.isArray(res) ? res[0] : res;
          const data = await t.data() as Float32Array;
          tf.dispose([indices, values, t]);
          return data;
        };
        await exec(warm.map((i) => ids[i]));
        const theirs = new Float32Array(texts.length * dim);
        const r = await run(`tfjs-${backend}`, exec, theirs);
        let worst = 0;
        for (let i = 0; i < ours.length; i++) {
          worst = Math.max(worst, Math.abs(ours[i] - theirs[i]));
        }
        r.maxAbsDiff = worst;
        ctx.log(`encode tfjs-${backend}: max |webgpu - tfjs| ${worst.toExponential(2)}`);
        engines.push(r);
        graph.dispose();
      } catch (e) {
        notes.push(`tfjs-${backend} failed: ${(e as Error).message}`);
        ctx.log(notes[notes.length - 1]);
      }
    }
  }

  const ratios: Record<string, number> = {};
  for (const e of engines.slice(1)) {
    ratios[`vs_${e.engine.replace("-", "_")}`] = round(
      engines[0].textsPerSecond / e.textsPerSecond,
      2,
    );
  }
  for (const [k, v] of Object.entries(ratios)) ctx.log(`encode ratio webgpu/${k.slice(3)}: ${v}x`);
  ctx.result.encode = {
    model: "use-lite",
    docs: texts.length,
    maxLength: MAX_LENGTH,
    batchSize: BATCH_SIZE,
    batches: batches.length,
    tokens,
    paddedTokens,
    truncated,
    tokenizeSeconds: round(tokenizeSeconds),
    engines,
    ratios,
    backends: backendInfo,
    notes,
  };
}
