import { DEFAULT_INFONCE_SCALE, infoNceLoss } from "../src/losses/infonce.ts";
import { assertClose } from "./helpers.ts";
import { checkGradients, rejection, triples } from "./loss_fixtures.ts";
import { infoNceRef } from "./reference/margin_ref.ts";

// Logits reach ±scale = ±20; the loss is an f32 log-sum-exp of them after subtracting the row
// maximum. Measured |GPU - float64| at B = 16, D = 33: 1.4e-8 (scale 20, loss 0.023) and 1.8e-7
// (scale 1, loss 2.84); the tolerance is ~10x that.
const LOSS_TOL = { atol: 2e-6, rtol: 1e-6 };
// Gradients hold softmax - 1 for the label, which cancels in f32 when the positive dominates
// (absolute error ~1e-7 next to gradients of ~1e-2): measured worst 3.3e-6 · max|grad| at scale
// 20 (4e-7 at scale 1), so atol is 3e-5 · max|grad|, ~10x that.
const GRAD_REL_ATOL = 3e-5;

Deno.test("InfoNCE with hard negatives: value and dQ, dP, dN match the float64 reference", async () => {
  for (const [b, d, seed, scale] of [[16, 33, 51, 20], [5, 7, 52, 20], [7, 9, 53, 1 / 0.05]]) {
    const data = triples(b, d, seed);
    const f = () => infoNceRef(data.q, data.p, data.n, b, d, scale);
    const r = await infoNceLoss(data.rows.q, data.rows.p, data.rows.n, { scale });
    assertClose([r.loss], [f()], LOSS_TOL, `B=${b} loss`);
    checkGradients(
      `InfoNCE B=${b} D=${d}`,
      f,
      [["dQ", data.q, r.dq], ["dP", data.p, r.dp], [
        "dN",
        data.n,
        r.dn,
      ]],
      seed,
      40,
      GRAD_REL_ATOL,
    );
  }
});

Deno.test("InfoNCE without hard negatives: value and dQ, dP match the float64 reference", async () => {
  for (const [b, d, seed] of [[16, 33, 61], [3, 7, 62]]) {
    const data = triples(b, d, seed);
    const f = () => infoNceRef(data.q, data.p, null, b, d, DEFAULT_INFONCE_SCALE);
    const r = await infoNceLoss(data.rows.q, data.rows.p, null);
    assertClose([r.loss], [f()], LOSS_TOL, `B=${b} loss`);
    if (r.dn.length !== 0) throw new Error("dn should be empty without negatives");
    checkGradients(
      `InfoNCE (no negatives) B=${b} D=${d}`,
      f,
      [["dQ", data.q, r.dq], [
        "dP",
        data.p,
        r.dp,
      ]],
      seed,
      40,
      GRAD_REL_ATOL,
    );
  }
});

Deno.test("InfoNCE temperature is the reciprocal of the scale; bad values are refused", async () => {
  const { rows } = triples(4, 5, 70);
  const a = await infoNceLoss(rows.q, rows.p, rows.n, { scale: 10 });
  const b = await infoNceLoss(rows.q, rows.p, rows.n, { temperature: 0.1 });
  assertClose([b.loss, ...b.dq.flat()], [a.loss, ...a.dq.flat()], { atol: 1e-6, rtol: 1e-5 });
  for (
    const [opts, pattern] of [
      [{ scale: 10, temperature: 0.1 }, /either scale or temperature/],
      [{ temperature: 0 }, /positive finite/],
      [{ scale: -1 }, /positive finite/],
    ] as const
  ) {
    const e = await rejection(() => infoNceLoss(rows.q, rows.p, rows.n, opts));
    if (!pattern.test(e.message)) {
      throw new Error(`message ${JSON.stringify(e.message)} lacks ${pattern}`);
    }
  }
});
