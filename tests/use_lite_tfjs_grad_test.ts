// End-to-end autodiff parity for USE-lite: the gradients of the distributed margin loss (l2,
// target attached) w.r.t. EVERY parameter, from our WebGPU tape (hand-derived backward of every
// op), against TF.js's own autodiff (`tf.variableGrads`) over the same model written with TF.js
// ops (tests/reference/use_lite_tfjs_ops.ts, following docs/use_lite_graph.md) on
// tfjs-backend-cpu. The real USE-lite weights, a batch of 3 triples with padding (queries 4-6,
// documents 7-10 tokens), token ids drawn from a small pool so ids repeat within and across texts
// (the embedding gradient's scatter-add accumulates).
//
// Tolerances. Forward: the L2-normalised embeddings within 1e-5 absolute per component (both
// engines are float32 with different summation orders; the encoder bound is 1e-4).
// Gradients, as tests/hf_parity_test.ts: |g - g_tfjs| <= 1e-4·max(max|g_tfjs|, 1e-2·model max)
// + 1e-3·|g_tfjs| per tensor: relative to each tensor's largest entry because gradients span
// orders of magnitude across tensors; both sides are float32 through two layers with states up
// to ~80 and the L2 normalisation, measured 3.5e-6 of the scale at worst (printed), so the bound
// leaves a ~30x margin while a wrong backward step (a missing term, a transposed factor) is off
// by O(1) of the scale. The floor (1e-2 of the model's largest gradient) covers gradients that
// are zero in exact arithmetic (the key biases: softmax is invariant to a per-query constant)
// and are f32 rounding noise on both sides.
import { deepStrictEqual } from "node:assert/strict";
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
import { Tape } from "../src/autodiff/tape.ts";
import { getGpu } from "../src/gpu/device.ts";
import { type Tensor, withArena } from "../src/gpu/tensor.ts";
import { marginLossTensor } from "../src/losses/margin.ts";
import { padBatch } from "../src/models/encode.ts";
import { encoderForward } from "../src/models/encoder.ts";
import { readUseLiteWeights, USE_LITE_CONFIG, useLiteParams } from "../src/models/use_lite.ts";
import { assertClose, rng } from "./helpers.ts";
import {
  lossAndGradsTfjs,
  type TfjsTripleBatch,
  USE_LITE_TFJS_WEIGHTS,
  useLiteForwardTfjs,
  useLiteVariables,
} from "./reference/use_lite_tfjs_ops.ts";

const maxAbs = (a: ArrayLike<number>) =>
  Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** Token id lists of the given lengths, ids from a 24-id pool of the vocabulary (repeats). */
function idLists(lengths: number[], seed: number): number[][] {
  const r = rng(seed);
  const pool = Array.from({ length: 24 }, () => Math.floor(r() * 8000));
  return lengths.map((len) => Array.from({ length: len }, () => pool[Math.floor(r() * 24)]));
}

Deno.test("USE-lite: margin-loss gradients of every parameter equal TF.js tf.grad (and the forward)", async () => {
  await tf.setBackend("cpu");
  const gpu = await getGpu();
  const weights = await readUseLiteWeights();
  const cfg = { ...USE_LITE_CONFIG };
  const { params, named } = useLiteParams(gpu, weights);
  deepStrictEqual([...named.keys()].sort(), [...USE_LITE_TFJS_WEIGHTS].sort());

  const qIds = idLists([6, 4, 5], 1);
  const pIds = idLists([10, 7, 9], 2);
  const nIds = idLists([8, 10, 7], 3);
  const batches = { q: padBatch(qIds, 0), p: padBatch(pIds, 0), n: padBatch(nIds, 0) };

  // --- ours: forward of all three, then the loss and backward on one tape --------------------
  const tape = new Tape();
  tape.watch(...named.values());
  const ours = await withArena(async () => {
    const q = (await encoderForward(gpu, cfg, params, batches.q, { tape })).pooled;
    const p = (await encoderForward(gpu, cfg, params, batches.p, { tape })).pooled;
    const n = (await encoderForward(gpu, cfg, params, batches.n, { tape })).pooled;
    const embeddings = {
      q: await q.read() as Float32Array,
      p: await p.read() as Float32Array,
      n: await n.read() as Float32Array,
    };
    const loss = await marginLossTensor(q, p, n, { target: "distributed", error: "l2", tape });
    const value = (await loss.read())[0];
    await tape.backward(loss);
    const grads = new Map<string, Float32Array>();
    for (const [name, t] of named) grads.set(name, await tape.grad(t)!.read() as Float32Array);
    return { value, grads, embeddings };
  }, () => [] as Tensor[]);
  tape.dispose();
  for (const t of named.values()) t.destroy();

  // --- TF.js: the same weights as variables; forward, then tf.variableGrads -----------------
  const vars = useLiteVariables(weights);
  const t0 = performance.now();
  const w = vars as Map<string, tf.Tensor>;
  for (const key of ["q", "p", "n"] as const) {
    const theirs = tf.tidy(() => useLiteForwardTfjs(w, batches[key]).dataSync() as Float32Array);
    assertClose(ours.embeddings[key], theirs, { atol: 1e-5, rtol: 0 }, `embeddings ${key}`);
  }
  const batch: TfjsTripleBatch = batches;
  const { loss, grads } = lossAndGradsTfjs(vars, batch, "distributed");
  const tfjsLoss = (await loss.data())[0];
  const want = new Map<string, Float32Array>();
  for (const [name, g] of grads) want.set(name, await g.data() as Float32Array);
  const tfjsSeconds = (performance.now() - t0) / 1000;
  // The benchmark's substitution (tfjs-backend-wasm lacks UnsortedSegmentSum): the embedding
  // gradient by scatterND is the same scatter-add, up to the summation order of repeated ids.
  const scattered = lossAndGradsTfjs(vars, batch, "distributed", { scatterEmbeddingGrad: true });
  const EMB = "embeddings.word_embeddings.weight";
  const embScatter = await scattered.grads.get(EMB)!.data() as Float32Array;
  assertClose(
    embScatter,
    want.get(EMB)!,
    { atol: 1e-6 * maxAbs(want.get(EMB)!), rtol: 0 },
    "scatterND",
  );
  tf.dispose([loss, ...grads.values(), scattered.loss, ...scattered.grads.values()]);
  tf.dispose([...vars.values()]);

  assertClose([ours.value], [tfjsLoss], { atol: 1e-6, rtol: 1e-5 }, "loss");
  const globalMax = Math.max(...[...want.values()].map(maxAbs));
  let compared = 0, worst = 0, worstName = "";
  for (const name of USE_LITE_TFJS_WEIGHTS) {
    const g = ours.grads.get(name)!, h = want.get(name)!;
    deepStrictEqual(g.length, h.length, `${name}: gradient size`);
    const scale = Math.max(maxAbs(h), 1e-2 * globalMax);
    assertClose(g, h, { atol: 1e-4 * scale, rtol: 1e-3 }, `d loss / d ${name}`);
    let err = 0;
    for (let i = 0; i < g.length; i++) err = Math.max(err, Math.abs(g[i] - h[i]));
    if (err / scale > worst) [worst, worstName] = [err / scale, name];
    compared++;
  }
  deepStrictEqual(compared, named.size);
  // Not vacuous: the loss has a gradient, and the embedding rows of the batch's ids get it.
  if (!(globalMax > 0)) throw new Error("all TF.js gradients are zero");
  console.log(
    `loss ${ours.value.toPrecision(7)} (TF.js ${tfjsLoss.toPrecision(7)}); ${compared} ` +
      `gradient tensors; worst max|ours - TF.js| / scale = ${worst.toExponential(2)} ` +
      `(${worstName}); TF.js cpu forward+grad ${tfjsSeconds.toFixed(1)} s`,
  );
});
