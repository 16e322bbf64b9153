import { Tape } from "../src/autodiff/tape.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { marginLoss, type MarginLossOptions, marginLossTensor } from "../src/losses/margin.ts";
import { matmul } from "../src/ops/matmul.ts";
import { assertClose, gpu, randn } from "./helpers.ts";
import { checkGradients, maxAbs, rejection, triples } from "./loss_fixtures.ts";
import {
  elements,
  finiteDifferences,
  marginDiffsRef,
  marginLossRef,
  type MarginRefOptions,
} from "./reference/margin_ref.ts";

type Target = MarginLossOptions["target"];
type ErrorKind = "l1" | "l2" | "soft";

/**
 * Checks one variant: the GPU loss against the float64 reference, and dQ, dP, dN against central
 * finite differences of the reference (a seeded sample of 40 elements per input; tolerance in
 * {@link checkGradients}). Detaching is
 * modelled in the reference by computing the target from fixed copies of P and N, so finite
 * differences see the margin's dependence only.
 */
async function checkVariant(
  b: number,
  d: number,
  seed: number,
  options: MarginLossOptions,
): Promise<{ dq: number[][]; dp: number[][]; dn: number[][] }> {
  const data = triples(b, d, seed);
  const ref: MarginRefOptions = {
    target: options.target,
    inBatch: options.inBatch ?? false,
    error: options.error ?? "l2",
    indexing: options.inBatchIndexing,
  };
  const label = `${JSON.stringify(options)} B=${b} D=${d}`;
  const pt = options.detachTarget ? data.p.slice() : data.p;
  const nt = options.detachTarget ? data.n.slice() : data.n;
  const f = () => marginLossRef(data.q, data.p, data.n, b, d, ref, pt, nt);
  if (ref.error === "l1") {
    // |d| is not differentiable at 0: keep every d clear of the kink by far more than a
    // finite-difference step moves it (1e-5 · |∂d/∂x| < 1e-5, as |∂cos/∂x| <= 1/||x|| < 1 here)
    // and than the GPU's f32 error in d (~1e-6), so the gradient is unambiguous.
    const closest = Math.min(
      ...elements(marginDiffsRef(data.q, data.p, data.n, b, d, ref)).map(Math.abs),
    );
    if (closest < 1e-4) {
      throw new Error(`${label}: test data has |d| = ${closest} near the l1 kink`);
    }
  }

  const result = await marginLoss(data.rows.q, data.rows.p, data.rows.n, options);
  // Forward: f32 cosines of D <= 33 products (error ~1e-7 each) through an O(1) error function,
  // averaged in f32 over <= 256 elements. Measured worst |GPU - float64| over every variant at
  // B = 16, D = 33 (llvmpipe): 3.4e-8 on losses of 0.03..0.75; 1e-6 leaves a 30x margin.
  assertClose([result.loss], [f()], { atol: 1e-6, rtol: 0 }, `${label} loss`);

  checkGradients(label, f, [["dQ", data.q, result.dq], ["dP", data.p, result.dp], [
    "dN",
    data.n,
    result.dn,
  ]], seed);
  return result;
}

const TARGETS: Target[] = [0.3, "adaptive", "distributed"];
const ERRORS: ErrorKind[] = ["l1", "l2", "soft"];

for (const target of TARGETS) {
  for (const inBatch of [false, true]) {
    if (target === "distributed" && inBatch) continue;
    Deno.test(
      `margin loss, target ${target}, in-batch ${inBatch}: value and dQ, dP, dN match the float64 reference (l1, l2, soft; target attached and detached)`,
      async () => {
        for (const [k, error] of ERRORS.entries()) {
          for (const detachTarget of [false, true]) {
            await checkVariant(16, 33, 11 + k, { target, inBatch, error, detachTarget });
          }
        }
        // A small ragged shape as well.
        await checkVariant(5, 7, 3, { target, inBatch, error: "soft" });
      },
    );
  }
}

Deno.test("margin loss, per-query in-batch indexing matches the reference's per-query reading", async () => {
  for (const target of [0.3, "adaptive"] as Target[]) {
    for (const [k, error] of ERRORS.entries()) {
      for (const detachTarget of [false, true]) {
        await checkVariant(16, 33, 21 + k, {
          target,
          inBatch: true,
          error,
          detachTarget,
          inBatchIndexing: "per-query",
        });
      }
    }
  }
});

Deno.test("margin loss, per-query and reference in-batch indexing differ", async () => {
  const { rows } = triples(6, 9, 5);
  const a = await marginLoss(rows.q, rows.p, rows.n, { target: "adaptive", inBatch: true });
  const b = await marginLoss(rows.q, rows.p, rows.n, {
    target: "adaptive",
    inBatch: true,
    inBatchIndexing: "per-query",
  });
  if (Math.abs(a.loss - b.loss) < 1e-4) {
    throw new Error(`indexings gave the same loss ${a.loss}: the option has no effect`);
  }
});

Deno.test("margin loss, detaching the target changes dP and dN but not dQ", async () => {
  for (
    const [target, inBatch] of [["adaptive", false], ["adaptive", true], [
      "distributed",
      false,
    ]] as const
  ) {
    const attached = await checkVariant(8, 7, 9, { target, inBatch, error: "l2" });
    const detached = await checkVariant(8, 7, 9, {
      target,
      inBatch,
      error: "l2",
      detachTarget: true,
    });
    // The target does not depend on Q: dQ is the same computation either way.
    assertClose(detached.dq.flat(), attached.dq.flat(), { atol: 1e-7, rtol: 1e-6 }, `${target} dQ`);
    for (const name of ["dp", "dn"] as const) {
      const diff = maxAbs(attached[name].flat().map((v, i) => v - detached[name].flat()[i]));
      if (diff < 1e-3 * maxAbs(attached[name].flat())) {
        throw new Error(`${target} in-batch ${inBatch}: detaching left ${name} unchanged`);
      }
    }
  }
});

Deno.test("margin loss, static target: detaching changes nothing (there is no target graph)", async () => {
  const { rows } = triples(6, 9, 4);
  const a = await marginLoss(rows.q, rows.p, rows.n, { target: 0.2, error: "soft" });
  const b = await marginLoss(rows.q, rows.p, rows.n, {
    target: 0.2,
    error: "soft",
    detachTarget: true,
  });
  assertClose([b.loss, ...b.dp.flat(), ...b.dn.flat()], [a.loss, ...a.dp.flat(), ...a.dn.flat()], {
    atol: 0,
    rtol: 0,
  });
});

Deno.test("margin loss, distributed targets with in-batch negatives are an error that says why", async () => {
  const { rows } = triples(4, 5, 1);
  const e = await rejection(() =>
    marginLoss(rows.q, rows.p, rows.n, { target: "distributed", inBatch: true })
  );
  if (
    !(e instanceof RangeError) ||
    !/distributed targets cannot be combined with in-batch/.test(e.message)
  ) {
    throw new Error(`unexpected error: ${e}`);
  }
  // The tensor entry point refuses too, before any GPU work.
  const g = await gpu();
  const t = Tensor.from(g, new Float32Array(20), [4, 5]);
  const e2 = await rejection(() =>
    marginLossTensor(t, t, t, { target: "distributed", inBatch: true })
  );
  if (!(e2 instanceof RangeError)) throw new Error(`unexpected error: ${e2}`);
  t.destroy();
});

Deno.test("margin loss, invalid options and inputs are refused with clear messages", async () => {
  const { rows } = triples(3, 4, 2);
  const cases: [() => Promise<unknown>, RegExp][] = [
    [
      () => marginLoss(rows.q, rows.p, rows.n, { target: "fixed" as unknown as Target }),
      /target must be/,
    ],
    [() => marginLoss(rows.q, rows.p, rows.n, { target: NaN }), /finite number/],
    [
      () => marginLoss(rows.q, rows.p, rows.n, { target: 0.1, error: "l3" as ErrorKind }),
      /error must be/,
    ],
    [() => marginLoss(rows.q, rows.p, rows.n.slice(1), { target: 0.1 }), /n is 2 x 4, q is 3 x 4/],
    [
      () => marginLoss(rows.q, [[1, 2, 3], [1, 2, 3, 4], [1, 2, 3, 4]], rows.n, { target: 0.1 }),
      /p\[0\]|p\[1\]/,
    ],
    [() => marginLoss([], [], [], { target: 0.1 }), /non-empty/],
  ];
  for (const [run, pattern] of cases) {
    const e = await rejection(run);
    if (!pattern.test(e.message)) {
      throw new Error(`message ${JSON.stringify(e.message)} lacks ${pattern}`);
    }
  }
});

Deno.test("margin loss composes with upstream ops on the tape (gradient reaches a shared projection)", async () => {
  // Q = Xq·W, P = Xp·W, N = Xn·W with one shared W; dW from the tape vs finite differences of
  // the float64 reference through the same projection.
  const [b, k, d] = [6, 5, 7];
  const g = await gpu();
  const xs = [randn(b * k, 71), randn(b * k, 72), randn(b * k, 73)];
  const w = randn(k * d, 74);
  const ref: MarginRefOptions = { target: "adaptive", inBatch: true, error: "soft" };
  const w64 = Float64Array.from(w);
  const project = (x: Float32Array) => {
    const out = new Float64Array(b * d);
    for (let i = 0; i < b; i++) {
      for (let j = 0; j < d; j++) {
        for (let l = 0; l < k; l++) out[i * d + j] += x[i * k + l] * w64[l * d + j];
      }
    }
    return out;
  };
  const f = () => {
    const [q, p, n] = xs.map(project);
    return marginLossRef(q, p, n, b, d, ref);
  };
  const tape = new Tape();
  const tw = Tensor.from(g, w, [k, d]);
  tape.watch(tw);
  const tx = xs.map((x) => Tensor.from(g, x, [b, k]));
  const [q, p, n] = await Promise.all(tx.map((x) => matmul(x, tw, { tape })));
  const loss = await marginLossTensor(q, p, n, { ...ref, tape });
  assertClose([(await loss.read())[0]], [f()], { atol: 1e-5, rtol: 1e-5 }, "loss");
  await tape.backward(loss);
  const dw = await tape.grad(tw)!.read();
  const picks = Array.from({ length: k * d }, (_, i) => i);
  const numeric = finiteDifferences(f, w64, picks);
  assertClose(dw, numeric, { atol: 2e-4 * maxAbs(numeric) + 1e-7, rtol: 1e-3 }, "dW");
  tape.dispose();
  for (const t of [tw, ...tx, q, p, n, loss]) t.destroy();
});
