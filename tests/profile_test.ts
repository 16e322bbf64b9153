import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { Tape } from "../src/autodiff/tape.ts";
import { gpuCounters } from "../src/gpu/kernels.ts";
import { startProfile, withPhase } from "../src/gpu/profile.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { relu } from "../src/ops/activation.ts";
import { matmul } from "../src/ops/matmul.ts";
import { AdamW } from "../src/train/optimizer.ts";
import { gpu as getTestGpu, rng } from "./helpers.ts";

const gpu = await getTestGpu();

function seeded(n: number, seed: number): Float32Array {
  const next = rng(seed);
  return Float32Array.from({ length: n }, () => next() - 0.5);
}

Deno.test("the profiler attributes every launch to its kernel family and phase", async () => {
  const x = Tensor.from(gpu, seeded(6 * 5, 1), [6, 5]);
  const w = Tensor.from(gpu, seeded(5 * 7, 2), [5, 7]);
  const tape = new Tape();
  tape.watch(w);
  const optimizer = new AdamW(new Map([["w", w]]), { lr: 1e-3 });
  const before = { ...gpuCounters(gpu) };
  const profile = startProfile(gpu);
  const y = await relu(await matmul(x, w, { tape }), { tape });
  await tape.backward(y);
  await optimizer.step(new Map([["w", tape.grad(w)!]]));
  await withPhase(gpu, "custom", async () => void (await matmul(x, w)));
  const values = await y.read();
  const report = await profile.stop();
  const rows = new Map(report.rows.map((r) => [`${r.phase}/${r.family}`, r]));
  // Forward: one matmul, one ReLU; backward: ReLU's gradient, then dW = xᵀ·dY (dx is not
  // wanted: x is not watched); optimizer: one Adam launch; the custom phase: one matmul.
  assertEquals(rows.get("forward/matmul")?.dispatches, 1);
  assertEquals(rows.get("forward/activation")?.dispatches, 1);
  assertEquals(rows.get("backward/activation")?.dispatches, 1);
  assertEquals(rows.get("backward/matmul")?.dispatches, 1);
  assertEquals(rows.get("optimizer/optimizer")?.dispatches, 1);
  assertEquals(rows.get("custom/matmul")?.dispatches, 1);
  assertEquals(rows.get("forward/activation")?.entries[0].entry, "relu_forward");
  assertEquals([...new Set(report.rows.map((r) => r.phase))], [
    "forward",
    "backward",
    "optimizer",
    "custom",
  ]);
  const launches = report.rows.reduce((s, r) => s + r.dispatches, 0);
  assertEquals(report.counters.dispatches, launches);
  assertEquals(report.counters.readbacks, 1); // y.read()
  assert(report.counters.submits >= 1);
  assertEquals(gpuCounters(gpu).dispatches - before.dispatches, launches);
  if (gpu.features.has("timestamp-query")) {
    assertEquals(report.timing, "timestamp-query");
    for (const r of report.rows) assert(r.gpuMs !== null && r.gpuMs >= 0, r.family);
    const total = report.rows.reduce((s, r) => s + r.gpuMs!, 0);
    assert(Math.abs(total - report.gpuMs!) < 1e-9);
    assert(report.gpuMs! <= report.wallMs, "GPU time within the wall time of the window");
  }
  assertEquals(values.length, 6 * 7);
  tape.dispose();
  optimizer.destroy();
});

Deno.test("a profiled forward equals the unprofiled one bit for bit", async () => {
  const x = Tensor.from(gpu, seeded(33 * 17, 3), [33, 17]);
  const w = Tensor.from(gpu, seeded(17 * 9, 4), [17, 9]);
  const plain = await (await matmul(x, w)).read();
  const profile = startProfile(gpu);
  const profiled = await (await matmul(x, w)).read();
  await profile.stop();
  assertEquals(profiled, plain);
});

Deno.test("one profile at a time per GPU, and a stopped profile cannot stop twice", async () => {
  const profile = startProfile(gpu);
  let threw = false;
  try {
    startProfile(gpu);
  } catch {
    threw = true;
  }
  assert(threw, "a second profile on the same GPU is refused");
  await profile.stop();
  await rejects(() => profile.stop(), /already stopped/);
  const empty = await startProfile(gpu).stop();
  assertEquals(empty.rows, []);
  assertEquals(empty.counters.dispatches, 0);
});
