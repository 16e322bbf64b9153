import { Tape } from "../src/autodiff/tape.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { add, biasAdd, mul, scale } from "../src/ops/elementwise.ts";
import { assertClose, checkOp, gpu, randn } from "./helpers.ts";

// Ragged sizes (not multiples of the 64-wide workgroup), a single element, and sizes spanning
// several workgroups. The ops are single f32 roundings of float64-exact inputs, so the forward
// tolerances are a few f32 ulps; gradients use checkOp's default tolerance (finite differences
// of the float64 reference are exact to ~1e-10 for these linear/bilinear maps).
const SHAPES: number[][] = [[1], [7], [3, 37], [130, 67]];
const ULP_TOL = { atol: 1e-6, rtol: 1e-6 };

Deno.test("add matches float64 and finite differences on ragged shapes", async () => {
  for (const shape of SHAPES) {
    await checkOp({
      name: `add [${shape}]`,
      inputs: [{ shape }, { shape }],
      forward: (tape, a, b) => add(a, b, { tape }),
      reference: (a, b) => a.map((v, i) => v + b[i]),
      forwardTol: ULP_TOL,
    });
  }
});

Deno.test("biasAdd matches float64 and sums the bias gradient over rows", async () => {
  for (const [rows, cols] of [[1, 1], [5, 3], [70, 129], [300, 5]]) {
    await checkOp({
      name: `biasAdd [${rows}, ${cols}]`,
      inputs: [{ shape: [rows, cols] }, { shape: [cols] }],
      forward: (tape, x, b) => biasAdd(x, b, { tape }),
      reference: (x, b) => x.map((v, i) => v + b[i % cols]),
      forwardTol: ULP_TOL,
      // db sums up to 300 terms of unit-normal cotangents in f32: error ~ sqrt(300)·2^-24·few.
      gradTol: { atol: 1e-4, rtol: 1e-4 },
    });
  }
  // More rows than llvmpipe runs loop iterations (65535): the two-pass column sum must not
  // truncate. db sums 70000 unit-normal cotangents (|db| ~ 260): f32 chunked-sum error ~1e-4.
  await checkOp({
    name: "biasAdd [70000, 2]",
    inputs: [{ shape: [70000, 2] }, { shape: [2] }],
    forward: (tape, x, b) => biasAdd(x, b, { tape }),
    reference: (x, b) => x.map((v, i) => v + b[i % 2]),
    forwardTol: ULP_TOL,
    gradTol: { atol: 2e-3, rtol: 1e-5 },
    fdSamples: 8,
  });
  // 3-D input: the bias broadcasts over all leading dimensions.
  await checkOp({
    name: "biasAdd [4, 6, 9]",
    inputs: [{ shape: [4, 6, 9] }, { shape: [9] }],
    forward: (tape, x, b) => biasAdd(x, b, { tape }),
    reference: (x, b) => x.map((v, i) => v + b[i % 9]),
    forwardTol: ULP_TOL,
  });
});

Deno.test("scale matches float64 and finite differences", async () => {
  for (const shape of SHAPES) {
    await checkOp({
      name: `scale [${shape}]`,
      inputs: [{ shape }],
      forward: (tape, x) => scale(x, -0.37, { tape }),
      reference: (x) => x.map((v) => -0.37 * v),
      forwardTol: ULP_TOL,
    });
  }
});

Deno.test("mul matches float64 and finite differences, including a 0/1 mask", async () => {
  for (const shape of SHAPES) {
    await checkOp({
      name: `mul [${shape}]`,
      inputs: [{ shape }, { shape }],
      forward: (tape, a, b) => mul(a, b, { tape }),
      reference: (a, b) => a.map((v, i) => v * b[i]),
      forwardTol: ULP_TOL,
    });
  }
  const n = 101;
  const mask = Float32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 0 : 1));
  await checkOp({
    name: "mul by a constant mask",
    inputs: [{ shape: [n] }, { shape: [n], data: mask, grad: false }],
    forward: (tape, a, m) => mul(a, m, { tape }),
    reference: (a, m) => a.map((v, i) => v * m[i]),
    forwardTol: ULP_TOL,
  });
});

Deno.test("mul(x, x) accumulates both operand gradients into dx", async () => {
  await checkOp({
    name: "mul(x, x)",
    inputs: [{ shape: [77] }],
    forward: (tape, x) => mul(x, x, { tape }),
    reference: (x) => x.map((v) => v * v),
    forwardTol: ULP_TOL,
  });
});

Deno.test("elementwise ops fold launches past 65535 workgroups into a 2-D grid", async () => {
  const g = await gpu();
  // 65535 · 64 + 77 elements: one more workgroup than one grid dimension holds.
  const n = g.limits.maxComputeWorkgroupsPerDimension * 64 + 77;
  const a = randn(n, 5), b = randn(n, 6);
  const ta = Tensor.from(g, a), tb = Tensor.from(g, b);
  const tape = new Tape();
  tape.watch(ta, tb);
  const y = await add(await scale(ta, 2, { tape }), tb, { tape });
  const got = await y.read();
  assertClose(got, a.map((v, i) => Math.fround(2 * v) + b[i]), ULP_TOL, "2a + b forward");
  const w = randn(n, 7);
  await tape.backward(y, w);
  assertClose(await tape.grad(ta)!.read(), w.map((v) => 2 * v), ULP_TOL, "d(2a + b)/da");
  assertClose(await tape.grad(tb)!.read(), w, ULP_TOL, "d(2a + b)/db");
  tape.dispose();
  [ta, tb, y].forEach((t) => t.destroy());
});
