// Parity with Hugging Face itself. tests/fixtures/hf_parity/<family>/ were made on a machine with
// PyTorch 2.11 and transformers 5.17 by scripts/device/make_hf_fixtures.py: a seeded random tiny
// BertModel, DistilBertModel and MPNetModel saved with save_pretrained, their outputs on a padded
// batch, and the PyTorch-autograd gradients of a distributed-margin loss (l2, target attached)
// w.r.t. every parameter, all computed in float64 from the saved float32 weights.
//
// Tolerances: outputs 1e-4 absolute (the bound for encoder parity); gradients
// |g - g_torch| <= 1e-4·max(max|g_torch|, 1e-2·model max) + 1e-3·|g_torch| per tensor — the loss is ~1 with gradients
// spanning orders of magnitude, so the bound is relative to each tensor's largest entry; f32
// through the model and loss gives ~1e-6 of it.
import { deepStrictEqual } from "node:assert/strict";
import { Tape } from "../src/autodiff/tape.ts";
import { getGpu } from "../src/gpu/device.ts";
import { Tensor, withArena } from "../src/gpu/tensor.ts";
import { marginLossTensor } from "../src/losses/margin.ts";
import { configFromHf } from "../src/models/config.ts";
import { encoderForward } from "../src/models/encoder.ts";
import { paramsFromHfWeights } from "../src/models/hf.ts";
import { padBatch } from "../src/models/encode.ts";
import { readModelWeights, readSafetensors } from "../src/models/safetensors.ts";
import { assertClose } from "./helpers.ts";

const ROOT = new URL("./fixtures/hf_parity/", import.meta.url).pathname;

interface Fixture {
  input_ids: number[][];
  attention_mask: number[][];
  last_hidden_state: number[][][];
  pooled: number[][];
  loss: {
    value: number;
    q_ids: number[][];
    p_ids: number[][];
    n_ids: number[][];
    q_mask: number[][];
    p_mask: number[][];
    n_mask: number[][];
  };
}

function batchOf(ids: number[][], mask: number[][]) {
  const b = padBatch(ids, 0);
  b.mask.set(mask.flat());
  return b;
}

for (const family of ["bert", "distilbert", "mpnet"]) {
  Deno.test(`${family}: outputs and margin-loss gradients equal PyTorch's (Hugging Face parity)`, async () => {
    const gpu = await getGpu();
    const dir = `${ROOT}${family}`;
    const raw = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    const fx: Fixture = JSON.parse(await Deno.readTextFile(`${dir}/fixture.json`));
    const weights = await readModelWeights(dir);
    const cfg = configFromHf(raw, `${dir}/config.json`, {
      hasPooler: family === "bert",
      normalize: false,
    });
    const { params, named } = paramsFromHfWeights(gpu, cfg, weights, dir);

    const batch = batchOf(fx.input_ids, fx.attention_mask);
    const [hidden, pooled] = await withArena(async () => {
      const out = await encoderForward(gpu, cfg, params, batch);
      return [await out.hidden.read(), await out.pooled.read()];
    }, () => []);
    assertClose(
      hidden,
      fx.last_hidden_state.flat(2),
      { atol: 1e-4, rtol: 0 },
      `${family} last_hidden_state`,
    );
    assertClose(pooled, fx.pooled.flat(), { atol: 1e-4, rtol: 0 }, `${family} pooled`);

    const tape = new Tape();
    tape.watch(...named.values());
    const l = fx.loss;
    const grads = await withArena(async () => {
      const embed = async (ids: number[][], mask: number[][]) =>
        (await encoderForward(gpu, cfg, params, batchOf(ids, mask), { tape })).pooled;
      const q = await embed(l.q_ids, l.q_mask);
      const p = await embed(l.p_ids, l.p_mask);
      const n = await embed(l.n_ids, l.n_mask);
      const loss = await marginLossTensor(q, p, n, { target: "distributed", error: "l2", tape });
      const value = (await loss.read())[0];
      await tape.backward(loss);
      const out = new Map<string, Float32Array>();
      for (const [name, t] of named) out.set(name, await tape.grad(t)!.read() as Float32Array);
      return { value, out };
    }, () => [] as Tensor[]);
    tape.dispose();
    assertClose([grads.value], [l.value], { atol: 1e-6, rtol: 1e-6 }, `${family} loss`);
    const want = await readSafetensors(`${dir}/grads.safetensors`);
    const maxAbs = (a: ArrayLike<number>) =>
      Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const globalMax = Math.max(...[...want.values()].map((w) => maxAbs(w.data)));
    let compared = 0;
    for (const [name] of named) {
      const w = want.get(name);
      if (!w) throw new Error(`${family}: PyTorch gave no gradient for ${name}`);
      // Relative to the tensor's own scale, but never below 1e-2 of the model's largest gradient:
      // some gradients are exactly zero in exact arithmetic (key biases: softmax is invariant to
      // a per-query constant), which f32 leaves as rounding noise of ~1e-7 of the largest gradient.
      const scale = Math.max(maxAbs(w.data), 1e-2 * globalMax);
      assertClose(
        grads.out.get(name)!,
        w.data,
        { atol: 1e-4 * scale, rtol: 1e-3 },
        `${family} d/d ${name}`,
      );
      compared++;
    }
    deepStrictEqual(compared, named.size);
    for (const t of named.values()) t.destroy();
  });
}
