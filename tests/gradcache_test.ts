// Cached in-batch losses (GradCache): a batch encoded in chunks, the loss's gradient with respect
// to the embeddings computed once for the whole batch, each chunk back-propagated from its slice,
// gives the loss and every parameter's gradient of the unchunked step, for the B x B losses
// (distributed margins, adaptive in-batch margins, InfoNCE) and Margin-MSE, with chunks of 4 of
// 6 triples (one full chunk, one ragged).
//
// Tolerance: |g_chunked - g_whole| <= 1e-5 · max|g_whole| per tensor (1e-7 · the largest
// gradient of any tensor for those zero in exact arithmetic). The two differ only by f32
// rounding: per-chunk padding and the order in which chunk contributions are summed (relative
// error ~1e-6 after a few dozen ops); a wrong slice offset or a dropped chunk gives O(1) errors.
import { deepStrictEqual, ok } from "node:assert/strict";
import { loadEncoder } from "../src/models/load.ts";
import { batchLossAndGradients, type StepContext } from "../src/train/step.ts";
import { assertClose, gpu, tinyTrainingData } from "./helpers.ts";

Deno.test("chunked (GradCache) gradients equal the whole batch's for distributed and in-batch margins, InfoNCE and Margin-MSE", async () => {
  const g = await gpu();
  const model = await loadEncoder(g, "use-lite");
  const { triples } = await tinyTrainingData();
  const batch = triples.slice(0, 6);
  const teacher = { pos: [0.9, 0.8, 0.7, 0.95, 0.6, 0.85], neg: [0.2, 0.3, 0.1, 0.4, 0.5, 0.25] };
  const losses: [string, Omit<StepContext, "gpu" | "model" | "optimizer" | "maxGradNorm">][] = [
    ["distributed margin (B x B)", {
      loss: "margin",
      margin: {
        target: "distributed",
        inBatch: false,
        error: "l2",
        detachTarget: false,
        inBatchIndexing: "reference",
      },
      queryLength: 8,
      docLength: 16,
    }],
    ["adaptive in-batch margin", {
      loss: "margin",
      margin: {
        target: "adaptive",
        inBatch: true,
        error: "l2",
        detachTarget: false,
        inBatchIndexing: "reference",
      },
      queryLength: 8,
      docLength: 16,
    }],
    ["InfoNCE", { loss: "infonce", infonceScale: 20, queryLength: 8, docLength: 16 }],
    ["Margin-MSE", { loss: "margin-mse", queryLength: 8, docLength: 16 }],
  ];
  for (const [name, opts] of losses) {
    const ctx = { gpu: g, model, ...opts };
    const t = opts.loss === "margin-mse" ? teacher : undefined;
    const whole = await batchLossAndGradients(ctx, batch, t);
    // Chunks of 4 of 6: a full chunk and a ragged one.
    for (const chunkSize of [4]) {
      const what = `${name}, chunks of ${chunkSize}`;
      const cached = await batchLossAndGradients({ ...ctx, chunkSize }, batch, t);
      assertClose(
        Float64Array.of(cached.loss),
        Float64Array.of(whole.loss),
        { atol: 1e-6, rtol: 1e-5 },
        `${what}: loss`,
      );
      deepStrictEqual([...cached.grads.keys()], [...whole.grads.keys()]);
      let nonZero = 0;
      const globalMax = Math.max(
        ...[...whole.grads.values()].map((w) => w.reduce((m, v) => Math.max(m, Math.abs(v)), 0)),
      );
      for (const [param, want] of whole.grads) {
        const max = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        if (max > 1e-6 * globalMax) nonZero++;
        // A tensor whose gradient is zero in exact arithmetic (attention key biases: softmax
        // ignores a per-row constant) holds rounding noise: bounded by the global scale.
        assertClose(
          cached.grads.get(param)!,
          want,
          { atol: Math.max(1e-5 * max, 1e-7 * globalMax), rtol: 0 },
          `${what}: ${param}`,
        );
      }
      ok(nonZero > model.named.size / 2, `${what}: gradients reach most parameters`);
    }
  }
  for (const t of model.named.values()) t.destroy();
});
