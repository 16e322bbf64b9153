/**
 * Adam/AdamW and gradient-norm clipping on the GPU against float64 CPU references that follow
 * torch's formulas (torch/optim/adam.py single-tensor path, torch/nn/utils/clip_grad.py).
 */
import { deepStrictEqual, ok, rejects, throws } from "node:assert/strict";
import { Tensor } from "../src/gpu/tensor.ts";
import {
  Adam,
  type AdamOptions,
  AdamW,
  clipGradNorm,
  defaultNoDecay,
  NonFiniteGradientError,
  type OptimizerState,
} from "../src/train/optimizer.ts";
import { assertBitEqual, assertClose, gpu, randn } from "./helpers.ts";

/** Parameter names and shapes: ragged sizes (not multiples of 64), decayed and no-decay names. */
const SHAPES: [string, number[]][] = [
  ["encoder.layer.0.attention.self.query.weight", [33, 17]],
  ["encoder.layer.0.attention.self.query.bias", [17]],
  ["encoder.layer.0.attention.output.LayerNorm.weight", [17]],
  ["embeddings.word_embeddings.weight", [100, 8]],
];

/** Per-step learning rates (as a schedule would give) and which parameters lack a gradient. */
const LRS = [1e-2, 2e-2, 5e-3, 1e-2, 3e-2, 1e-2];
const SKIP: Record<number, string> = { 2: "embeddings.word_embeddings.weight" };

/** The float64 reference of torch.optim.Adam(W) for one parameter, state kept in float64. */
class RefAdam {
  m: Float64Array;
  v: Float64Array;
  p: Float64Array;
  t = 0;
  constructor(p0: Float32Array, readonly o: Required<Omit<AdamOptions, "noDecay">>) {
    this.p = Float64Array.from(p0);
    this.m = new Float64Array(p0.length);
    this.v = new Float64Array(p0.length);
  }
  step(g: Float32Array, lr: number, decoupled: boolean, decays: boolean): void {
    const { beta1: b1, beta2: b2, eps } = this.o;
    const wd = decays ? this.o.weightDecay : 0;
    this.t++;
    for (let i = 0; i < g.length; i++) {
      if (decoupled) this.p[i] *= 1 - lr * wd; // AdamW: p -= lr·wd·p
      const gi = decoupled ? g[i] : g[i] + wd * this.p[i]; // Adam: L2 in the gradient
      this.m[i] = b1 * this.m[i] + (1 - b1) * gi;
      this.v[i] = b2 * this.v[i] + (1 - b2) * gi * gi;
      const mhat = this.m[i] / (1 - b1 ** this.t);
      const vhat = this.v[i] / (1 - b2 ** this.t);
      this.p[i] -= lr * mhat / (Math.sqrt(vhat) + eps);
    }
  }
}

// Tolerances of the GPU parameters against the float64 reference. Each f32 step rounds the
// stored parameter (2^-24 relative, |p| ≲ 4 here) and computes the update lr·m̂/(√v̂+eps) with a
// few ulps of relative error (≤ ~1e-6 · lr·O(1)); over 6 steps that stays below ~2e-6 absolute.
// A wrong formula is far outside it: weight decay alone moves p by lr·wd·|p| ≥ 5e-3·0.1·|p| per
// step, a missing bias correction changes the first update by a factor 1 − β1 = 0.1. Measured
// worst: 4.9e-7 (llvmpipe).
const PARAM_TOL = { atol: 3e-6, rtol: 2e-6 };
// The moments: a few f32 multiply-adds per step. m is a sum of terms (1 − β1)·g of size up to
// ~0.2 (gradients 0.5·N(0, 1)) that may cancel, so its error is absolute: about one ulp of those
// terms (1.5e-8) per step, ≤ 9e-8 over 6 steps (measured 4.9e-8). v sums positive terms:
// relative error a few ulps (measured 3.5e-7).
const MOMENT_TOL = { atol: 1e-7, rtol: 1e-5 };

async function runAgainstReference(decoupled: boolean, weightDecay: number): Promise<void> {
  const g = await gpu();
  const hostParams = SHAPES.map(([, s], i) => randn(s.reduce((a, b) => a * b), 10 + i));
  const params = new Map(
    SHAPES.map(([name, shape], i) => [name, Tensor.from(g, hostParams[i], shape)]),
  );
  const opts = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay };
  const opt = decoupled ? new AdamW(params, opts) : new Adam(params, opts);
  const refs = SHAPES.map((_, i) => new RefAdam(hostParams[i], opts));
  for (let s = 0; s < LRS.length; s++) {
    const grads = new Map<string, Tensor>();
    const hostGrads: (Float32Array | null)[] = [];
    SHAPES.forEach(([name, shape], i) => {
      if (SKIP[s] === name) return void hostGrads.push(null);
      const gh = randn(shape.reduce((a, b) => a * b), 1000 * s + i, 0.5);
      hostGrads.push(gh);
      grads.set(name, Tensor.from(g, gh, shape));
    });
    await opt.step(grads, LRS[s]);
    SHAPES.forEach(([name], i) => {
      const gh = hostGrads[i];
      if (gh) refs[i].step(gh, LRS[s], decoupled, weightDecay > 0 && !defaultNoDecay(name));
    });
    for (const t of grads.values()) t.destroy();
  }
  const state = await opt.state();
  deepStrictEqual(state.step, LRS.length);
  for (let i = 0; i < SHAPES.length; i++) {
    const [name] = SHAPES[i];
    const label = `${decoupled ? "AdamW" : "Adam"}(wd ${weightDecay}) ${name}`;
    assertClose(await params.get(name)!.read(), refs[i].p, PARAM_TOL, `${label} param`);
    assertClose(state.params[name].m, refs[i].m, MOMENT_TOL, `${label} m`);
    assertClose(state.params[name].v, refs[i].v, MOMENT_TOL, `${label} v`);
    deepStrictEqual(state.params[name].step, refs[i].t, `${label} step count`);
  }
  opt.destroy();
  for (const t of params.values()) t.destroy();
}

Deno.test("AdamW matches torch's formulas in float64 over several steps", async () => {
  await runAgainstReference(true, 0.1);
});

Deno.test("Adam (plain, and with L2 weight decay) matches torch's formulas", async () => {
  await runAgainstReference(false, 0);
  await runAgainstReference(false, 0.1);
});

Deno.test("no-decay names: the default predicate and a caller's predicate", async () => {
  ok(defaultNoDecay("encoder.layer.3.output.dense.bias"));
  ok(defaultNoDecay("encoder.layer.3.output.LayerNorm.weight"));
  ok(defaultNoDecay("transformer.layer.0.sa_layer_norm.weight"));
  ok(defaultNoDecay("final_norm.scale"));
  ok(!defaultNoDecay("encoder.layer.3.output.dense.weight"));
  ok(!defaultNoDecay("embeddings.word_embeddings.weight"));
  const g = await gpu();
  // With zero gradients Adam's update is 0 exactly (m = v = 0), so only the decay moves p:
  // p·(1 − lr·wd) for decayed names, p unchanged for the rest.
  const p0 = Float32Array.of(1, -2, 3);
  const params = new Map([
    ["a.weight", Tensor.from(g, p0)],
    ["a.bias", Tensor.from(g, p0)],
    ["keep_me", Tensor.from(g, p0)],
  ]);
  const opt = new AdamW(params, { lr: 0.5, weightDecay: 0.2, noDecay: (n) => n === "keep_me" });
  ok(opt.decays("a.weight") && opt.decays("a.bias") && !opt.decays("keep_me"));
  const zeros = new Map([...params.keys()].map((n) => [n, Tensor.zeros(g, [3])]));
  await opt.step(zeros);
  const factor = Math.fround(1 - 0.5 * 0.2);
  const decayed = p0.map((x) => Math.fround(x * factor));
  deepStrictEqual(await params.get("a.weight")!.read(), decayed);
  deepStrictEqual(await params.get("a.bias")!.read(), decayed);
  deepStrictEqual(await params.get("keep_me")!.read(), p0);
  opt.destroy();
});

Deno.test("state round trip: a resumed run equals the uninterrupted one bit for bit", async () => {
  const g = await gpu();
  const shapes = SHAPES;
  const init = shapes.map(([, s], i) => randn(s.reduce((a, b) => a * b), 50 + i));
  const gradsAt = (s: number) =>
    new Map(shapes.map(([name, shape], i) => [
      name,
      Tensor.from(g, randn(shape.reduce((a, b) => a * b), 7000 + 10 * s + i), shape),
    ]));
  const run = async (opt: AdamW, from: number, to: number) => {
    for (let s = from; s < to; s++) {
      const grads = gradsAt(s);
      if (s === 1) grads.delete(shapes[1][0]); // a skipped parameter: its own step count lags
      await opt.step(grads, LRS[s]);
      for (const t of grads.values()) t.destroy();
    }
  };
  const paramsA = new Map(shapes.map(([n, s], i) => [n, Tensor.from(g, init[i], s)]));
  const a = new AdamW(paramsA, { lr: 1e-2, weightDecay: 0.05 });
  await run(a, 0, 3);
  const saved: OptimizerState = await a.state();
  const savedParams = await Promise.all([...paramsA.values()].map((t) => t.read()));
  deepStrictEqual(saved.params[shapes[1][0]].step, 2);
  deepStrictEqual(saved.params[shapes[0][0]].step, 3);
  await run(a, 3, 6);

  const paramsB = new Map(shapes.map(([n, s], i) => [n, Tensor.from(g, savedParams[i], s)]));
  const b = new AdamW(paramsB, { lr: 1e-2, weightDecay: 0.05 });
  b.loadState(structuredClone(saved));
  deepStrictEqual(await b.state(), saved);
  await run(b, 3, 6);
  deepStrictEqual(b.stepCount, 6);
  deepStrictEqual(await b.state(), await a.state());
  for (const [name] of shapes) {
    assertBitEqual(await paramsB.get(name)!.read(), await paramsA.get(name)!.read(), name);
  }

  // Mismatched state is refused, naming the parameter.
  const missing = structuredClone(saved);
  delete missing.params[shapes[2][0]];
  throws(() => b.loadState(missing), /LayerNorm.weight is missing/);
  const short = structuredClone(saved);
  short.params[shapes[0][0]].m = new Float32Array(3);
  throws(() => b.loadState(short), /query.weight has moments of 3/);
  await rejects(b.step(new Map([["nope", Tensor.zeros(g, [1])]])), /unknown parameter nope/);
  a.destroy();
  b.destroy();
});

/** float64 clip_grad_norm_: the norm and the scaled gradients. */
function clipRef(grads: Float32Array[], maxNorm: number): { norm: number; out: Float64Array[] } {
  let sq = 0;
  for (const g of grads) for (const x of g) sq += x * x;
  const norm = Math.sqrt(sq);
  const coef = Math.min(1, maxNorm / (norm + 1e-6));
  return { norm, out: grads.map((g) => Float64Array.from(g, (x) => x * coef)) };
}

Deno.test("clipGradNorm matches clip_grad_norm_ below and above the threshold", async () => {
  const g = await gpu();
  // One tensor past 64·256 elements (grid-stride loop in every partial), 70 small ones (more
  // tensors than a workgroup: the final pass loops), ragged sizes.
  const sizes = [20000, 1, 63, 65, 130, ...Array.from({ length: 70 }, (_, i) => 1 + (i % 9))];
  const host = sizes.map((n, i) => randn(n, 300 + i, 0.01));
  const { norm: ref } = clipRef(host, Infinity);
  // Tolerances: f32 tree sums of ≤ 20000 squares, relative error ≲ log2(n)·2^-24 ≈ 1e-6 on the
  // norm; the scaled gradients inherit it through the coefficient.
  const NORM_RTOL = 1e-5;
  for (const maxNorm of [ref * 2, ref / 3]) {
    const grads = new Map(host.map((h, i) => [`g${i}`, Tensor.from(g, h)]));
    const result = await clipGradNorm(grads, maxNorm);
    ok(result.finite && result.nonFinite.length === 0);
    ok(Math.abs(result.norm - ref) <= NORM_RTOL * ref, `norm ${result.norm} vs ${ref}`);
    const expected = clipRef(host, maxNorm).out;
    for (let i = 0; i < host.length; i++) {
      const actual = await grads.get(`g${i}`)!.read();
      if (maxNorm > ref) deepStrictEqual(actual, host[i], "below the threshold: unchanged");
      else assertClose(actual, expected[i], { atol: 1e-12, rtol: 2e-5 }, `clipped g${i}`);
    }
    // After clipping above the threshold the norm is maxNorm (up to the 1e-6 guard).
    if (maxNorm < ref) {
      const again = await clipGradNorm([...grads.values()], Infinity);
      ok(Math.abs(again.norm - maxNorm) <= NORM_RTOL * maxNorm, `${again.norm} vs ${maxNorm}`);
    }
    for (const t of grads.values()) t.destroy();
  }
});

Deno.test("clipGradNorm reports NaN, Inf and overflow, naming the gradients", async () => {
  const g = await gpu();
  const clean = randn(100, 5);
  const withNaN = randn(100, 6);
  withNaN[37] = NaN;
  const withInf = randn(10, 7);
  withInf[3] = -Infinity;
  const huge = Float32Array.of(1, 3e30); // finite, but its square overflows f32
  const grads = new Map([
    ["clean", Tensor.from(g, clean)],
    ["nan", Tensor.from(g, withNaN)],
    ["inf", Tensor.from(g, withInf)],
  ]);
  const r = await clipGradNorm(grads, 1);
  ok(!r.finite && Number.isNaN(r.norm));
  deepStrictEqual(r.nonFinite, ["nan", "inf"]);
  // A non-finite norm leaves the gradients as they were.
  deepStrictEqual(await grads.get("clean")!.read(), clean);
  await rejects(
    clipGradNorm(grads, 1, { errorIfNonFinite: true }),
    (e: unknown) => e instanceof NonFiniteGradientError && /nan, inf/.test(e.message),
  );
  const onlyInf = await clipGradNorm(new Map([["inf", grads.get("inf")!]]), 1);
  ok(!onlyInf.finite && onlyInf.norm === Infinity);
  const over = await clipGradNorm(
    new Map([["ok", grads.get("clean")!], ["huge", Tensor.from(g, huge)]]),
    1,
  );
  ok(!over.finite);
  deepStrictEqual(over.nonFinite, ["huge"]);
  const empty = await clipGradNorm([], 1);
  deepStrictEqual(empty, { norm: 0, finite: true, nonFinite: [] });
});
