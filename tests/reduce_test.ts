import { Tape } from "../src/autodiff/tape.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import {
  l2Norm,
  l2Normalize,
  maskedLast,
  maskedMax,
  maskedMean,
  sumAll,
  sumLastDim,
} from "../src/ops/reduce.ts";
import { assertClose, checkOp, gpu, randn } from "./helpers.ts";

/** float64 row sums of x viewed as [rows, cols]. */
function rowSums(x: Float64Array, cols: number, f = (v: number) => v): Float64Array {
  const out = new Float64Array(x.length / cols);
  for (let i = 0; i < x.length; i++) out[Math.floor(i / cols)] += f(x[i]);
  return out;
}

/** float64 masked mean: x [B, S, D], mask [B, S] -> [B, D]; no kept position gives zeros. */
function maskedMeanRef(x: Float64Array, mask: ArrayLike<number>, [B, S, D]: number[]) {
  const y = new Float64Array(B * D);
  for (let b = 0; b < B; b++) {
    let count = 0;
    for (let s = 0; s < S; s++) {
      if (mask[b * S + s] === 0) continue;
      count++;
      for (let d = 0; d < D; d++) y[b * D + d] += x[(b * S + s) * D + d];
    }
    for (let d = 0; d < D; d++) y[b * D + d] = count ? y[b * D + d] / count : 0;
  }
  return y;
}

/** float64 masked max (0 for a row that keeps nothing) and last-kept-position pooling. */
function maskedPoolRef(
  kind: "max" | "last",
  x: Float64Array,
  mask: ArrayLike<number>,
  [B, S, D]: number[],
) {
  const y = new Float64Array(B * D);
  for (let b = 0; b < B; b++) {
    for (let d = 0; d < D; d++) {
      let v: number | null = null;
      for (let s = 0; s < S; s++) {
        if (mask[b * S + s] === 0) continue;
        const xs = x[(b * S + s) * D + d];
        v = kind === "last" || v === null ? xs : Math.max(v, xs);
      }
      y[b * D + d] = v ?? 0;
    }
  }
  return y;
}

/** Ragged kept positions (holes included); the last batch element (when B > 1) keeps nothing. */
function raggedMask(B: number, S: number): Float32Array {
  return Float32Array.from({ length: B * S }, (_, i) => {
    const b = Math.floor(i / S), s = i % S;
    return B > 1 && b === B - 1 ? 0 : s <= (b * 3) % S && (s + b) % 4 !== 3 ? 1 : 0;
  });
}

/** float64 x / max(‖x‖, eps) per row. */
function l2NormalizeRef(x: Float64Array, cols: number, eps: number): Float64Array {
  const norms = rowSums(x, cols, (v) => v * v).map(Math.sqrt);
  return x.map((v, i) => v / Math.max(norms[Math.floor(i / cols)], eps));
}

Deno.test("sumAll matches float64 over one and many workgroups", async () => {
  // 1, ragged, > 64 (several partials), > 64·1024 (grid-stride loop in every partial).
  for (const n of [1, 37, 1000, 70001]) {
    await checkOp({
      name: `sumAll [${n}]`,
      inputs: [{ shape: [n] }],
      forward: (tape, x) => sumAll(x, { tape }),
      reference: (x) => Float64Array.of(x.reduce((a, b) => a + b, 0)),
      // Tree/strided f32 summation of n unit normals: error ~ sqrt(n)·log(n)·2^-24 ≪ 1e-4·sqrt(n).
      forwardTol: { atol: 1e-5 * Math.sqrt(n), rtol: 1e-6 },
      fdSamples: 16,
    });
  }
});

Deno.test("sumLastDim matches float64 and finite differences", async () => {
  for (const shape of [[1], [3, 5], [4, 3, 130], [66000, 2]]) {
    const cols = shape[shape.length - 1];
    await checkOp({
      name: `sumLastDim [${shape}]`,
      inputs: [{ shape }],
      forward: (tape, x) => sumLastDim(x, { tape }),
      reference: (x) => rowSums(x, cols),
      forwardTol: { atol: 1e-5 * Math.sqrt(cols), rtol: 1e-6 },
      fdSamples: 16,
    });
  }
});

Deno.test("maskedMean pools kept positions, zeros for an all-zero mask", async () => {
  for (const [B, S, D] of [[1, 1, 1], [3, 7, 5], [4, 9, 70]]) {
    // Ragged kept prefixes; the last batch element (when B > 1) keeps nothing.
    const mask = Float32Array.from({ length: B * S }, (_, i) => {
      const b = Math.floor(i / S), s = i % S;
      return B > 1 && b === B - 1 ? 0 : s <= (b * 3) % S ? 1 : 0;
    });
    for (const dtype of ["f32", "i32"] as const) {
      await checkOp({
        name: `maskedMean [${B}, ${S}, ${D}] ${dtype} mask`,
        inputs: [{ shape: [B, S, D] }, { shape: [B, S], data: mask, grad: false, dtype }],
        forward: (tape, x, m) => maskedMean(x, m, { tape }),
        reference: (x) => maskedMeanRef(x, mask, [B, S, D]),
        // A mean of at most 9 O(1) values: a few f32 ulps.
        forwardTol: { atol: 2e-6, rtol: 1e-5 },
      });
    }
  }
});

Deno.test("maskedMax and maskedLast pool kept positions (holes too), zeros for none kept", async () => {
  for (const [B, S, D] of [[1, 1, 1], [3, 7, 5], [4, 9, 70]]) {
    const mask = raggedMask(B, S);
    for (const dtype of ["f32", "i32"] as const) {
      for (const kind of ["max", "last"] as const) {
        const op = kind === "max" ? maskedMax : maskedLast;
        await checkOp({
          name: `masked ${kind} [${B}, ${S}, ${D}] ${dtype} mask`,
          inputs: [{ shape: [B, S, D] }, { shape: [B, S], data: mask, grad: false, dtype }],
          forward: (tape, x, m) => op(x, m, { tape }),
          reference: (x) => maskedPoolRef(kind, x, mask, [B, S, D]),
          // A selection, no arithmetic: exact.
          forwardTol: { atol: 0, rtol: 0 },
        });
      }
    }
  }
});

Deno.test("l2Norm matches float64 and finite differences", async () => {
  for (const shape of [[1], [3, 5], [7, 130], [2, 3, 64]]) {
    const cols = shape[shape.length - 1];
    await checkOp({
      name: `l2Norm [${shape}]`,
      inputs: [{ shape }],
      forward: (tape, x) => l2Norm(x, { tape }),
      reference: (x) => rowSums(x, cols, (v) => v * v).map(Math.sqrt),
      forwardTol: { atol: 1e-6, rtol: 1e-5 },
    });
  }
});

Deno.test("l2Normalize matches float64 and finite differences", async () => {
  for (const shape of [[1, 1], [3, 5], [7, 130], [66000, 2]]) {
    const cols = shape[shape.length - 1];
    await checkOp({
      name: `l2Normalize [${shape}]`,
      inputs: [{ shape }],
      forward: (tape, x) => l2Normalize(x, { tape }),
      reference: (x) => l2NormalizeRef(x, cols, 1e-12),
      // Unit-length rows: a few f32 ulps. Gradients scale with 1/‖x‖ (checkOp's default
      // relative tolerance covers rows of small norm).
      forwardTol: { atol: 1e-6, rtol: 1e-5 },
      fdSamples: 24,
    });
  }
  // Rows below eps: y = x / eps, a linear map (dx = dy / eps).
  const tiny = randn(12, 4, 1e-3);
  await checkOp({
    name: "l2Normalize below eps",
    inputs: [{ shape: [3, 4], data: tiny }],
    forward: (tape, x) => l2Normalize(x, { eps: 0.1, tape }),
    reference: (x) => l2NormalizeRef(x, 4, 0.1),
    forwardTol: { atol: 1e-8, rtol: 1e-6 },
  });
});

Deno.test("l2Normalize keeps an all-zero row at zero, without NaN", async () => {
  const g = await gpu();
  const x = Tensor.from(g, [0, 0, 0, 3, 4, 0], [2, 3]);
  const tape = new Tape();
  tape.watch(x);
  const y = await l2Normalize(x, { tape });
  assertClose(await y.read(), [0, 0, 0, 0.6, 0.8, 0], { atol: 1e-7, rtol: 0 }, "y");
  await tape.backward(y, [1, 2, 3, 1, 0, 0]);
  // Zero row: dx = dy / eps (finite); unit row: (dy - y (y·dy)) / 5.
  const dx = await tape.grad(x)!.read();
  assertClose(dx, [1e12, 2e12, 3e12, 0.128, -0.096, 0], { atol: 1e-7, rtol: 1e-6 }, "dx");
  tape.dispose();
  [x, y].forEach((t) => t.destroy());
});
