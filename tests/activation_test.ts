import { Tape } from "../src/autodiff/tape.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { gelu, relu, tanh } from "../src/ops/activation.ts";
import { assertClose, checkOp, gpu } from "./helpers.ts";
import { normalCdf } from "./reference/erf.ts";

// Ragged sizes (not multiples of the 64-wide workgroup) and sizes over several workgroups.
const SHAPES: number[][] = [[1], [5, 13], [3, 7, 29], [1000]];

const geluRef = (x: Float64Array) => x.map((v) => v * normalCdf(v));

Deno.test("gelu (exact erf form) matches float64 and finite differences", async () => {
  for (const shape of SHAPES) {
    await checkOp({
      name: `gelu [${shape}]`,
      inputs: [{ shape }],
      forward: (tape, x) => gelu(x, { tape }),
      reference: geluRef,
      // Measured error of the f32 GELU: below 4e-7 absolute and 4.4e-7 relative (dense-grid test).
      forwardTol: { atol: 1e-6, rtol: 1e-6 },
    });
  }
});

Deno.test("gelu accuracy on a dense grid over [-12, 12], tails included", async () => {
  const g = await gpu();
  const n = 24001;
  const x = Float32Array.from({ length: n }, (_, i) => -12 + i * 1e-3);
  const t = Tensor.from(g, x);
  const y = await gelu(t);
  const got = await y.read();
  let maxAbs = 0, maxRelTail = 0;
  for (let i = 0; i < n; i++) {
    const e = x[i] * normalCdf(x[i]);
    const err = Math.abs(got[i] - e);
    maxAbs = Math.max(maxAbs, err);
    // Relative error where |gelu| is above f32's normal range edge.
    if (Math.abs(e) > 1e-30) maxRelTail = Math.max(maxRelTail, err / Math.abs(e));
  }
  console.log(
    `gelu f32 vs float64: max abs error ${maxAbs.toExponential(2)}, ` +
      `max relative error ${maxRelTail.toExponential(2)} (|x| <= 12)`,
  );
  // Abs error: f32 rounding of x·Φ(x) for |x| <= 12 is up to 12·2^-24 ≈ 7e-7 by itself.
  if (!(maxAbs < 1.5e-6)) throw new Error(`gelu max abs error ${maxAbs}`);
  // Relative error, which matters in the negative tail where an absolute-error erf would fail
  // completely: measured 4.4e-7 (the erfc fit's 1.2e-7 plus a few f32 roundings).
  if (!(maxRelTail < 1e-6)) throw new Error(`gelu max relative error ${maxRelTail}`);
  t.destroy();
  y.destroy();
});

Deno.test("relu matches float64 and finite differences", async () => {
  for (const shape of SHAPES) {
    await checkOp({
      name: `relu [${shape}]`,
      inputs: [{ shape }],
      forward: (tape, x) => relu(x, { tape }),
      reference: (x) => x.map((v) => Math.max(v, 0)),
      forwardTol: { atol: 0, rtol: 0 },
    });
  }
});

Deno.test("tanh matches float64 and finite differences", async () => {
  for (const shape of SHAPES) {
    await checkOp({
      name: `tanh [${shape}]`,
      inputs: [{ shape }],
      forward: (tape, x) => tanh(x, { tape }),
      reference: (x) => x.map(Math.tanh),
      // |tanh| <= 1; the Taylor branch and 1 - exp(-2|x|) keep the error to a few f32 ulps.
      forwardTol: { atol: 3e-7, rtol: 1e-6 },
    });
  }
  // Tiny arguments (the Taylor branch) keep relative accuracy.
  await checkOp({
    name: "tanh near 0",
    inputs: [{ shape: [50], data: Float32Array.from({ length: 50 }, (_, i) => (i - 25) * 1e-3) }],
    forward: (tape, x) => tanh(x, { tape }),
    reference: (x) => x.map(Math.tanh),
    forwardTol: { atol: 0, rtol: 3e-7 },
  });
});

Deno.test("tanh and gelu stay finite for huge |x|, with the limiting gradients", async () => {
  const g = await gpu();
  const xs = [10, 20, 88.8, 100, 1e4, 3e38, -10, -20, -88.8, -100, -1e4, -3e38];
  for (
    const [name, op, value, slope] of [
      ["tanh", tanh, (v: number) => Math.sign(v), (_: number) => 0],
      ["gelu", gelu, (v: number) => (v > 0 ? v : 0), (v: number) => (v > 0 ? 1 : 0)],
    ] as const
  ) {
    const x = Tensor.from(g, xs);
    const tape = new Tape();
    tape.watch(x);
    const y = await op(x, { tape });
    const got = await y.read();
    await tape.backward(y);
    const dx = await tape.grad(x)!.read();
    // gelu(-10) = -10·Φ(-10) ≈ -7.6e-23: zero within atol.
    assertClose(got, xs.map(value), { atol: 1e-20, rtol: 1e-7 }, `${name} at huge |x|`);
    assertClose(dx, xs.map(slope), { atol: 1e-20, rtol: 1e-7 }, `${name}' at huge |x|`);
    tape.dispose();
    x.destroy();
    y.destroy();
  }
});

Deno.test("activations fold launches past 65535 workgroups into a 2-D grid", async () => {
  const g = await gpu();
  const n = g.limits.maxComputeWorkgroupsPerDimension * 64 + 33;
  const xs = Float32Array.from({ length: n }, (_, i) => ((i % 1001) - 500) / 100);
  const x = Tensor.from(g, xs);
  const y = await relu(x);
  assertClose(await y.read(), xs.map((v) => Math.max(v, 0)), { atol: 0, rtol: 0 }, "relu");
  x.destroy();
  y.destroy();
});
