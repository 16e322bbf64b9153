// Top-k selection (kernels/topk.wgsl, src/ops/topk.ts) against a CPU sort on (score desc,
// index asc). Selection only moves values, so results must match exactly (no tolerance).

import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { Tensor } from "../src/gpu/tensor.ts";
import { maxTopk, PAD_INDEX, readTopk, topk, topkPlan } from "../src/ops/topk.ts";
import { gpu, randn, rng } from "./helpers.ts";

/** CPU reference: the first min(k, n) (index, score) of each row, NaN ranked as -inf. */
function reference(data: Float32Array, rows: number, n: number, k: number) {
  const keep = Math.min(k, n);
  const idx = new Uint32Array(rows * keep);
  const val = new Float32Array(rows * keep);
  const key = (x: number) => (Number.isNaN(x) ? -Infinity : x === 0 ? 0 : x); // -0 comes back as +0
  for (let r = 0; r < rows; r++) {
    const row = data.subarray(r * n, (r + 1) * n);
    const order = [...Array(n).keys()].sort((a, b) => key(row[b]) - key(row[a]) || a - b);
    for (let j = 0; j < keep; j++) {
      idx[r * keep + j] = order[j];
      val[r * keep + j] = key(row[order[j]]);
    }
  }
  return { k: keep, indices: idx, values: val };
}

/** Checks both first-pass methods; `radixTile` small forces radix tiles plus merges. */
async function check(
  rows: number,
  n: number,
  k: number,
  data: Float32Array,
  maxTile?: number,
  radixTile?: number,
) {
  const g = await gpu();
  const scores = Tensor.from(g, data, [rows, n]);
  const want = reference(data, rows, n, k);
  for (const method of ["radix", "bitonic"] as const) {
    const top = await topk(g, scores, k, { maxTile, method, radixTile });
    const got = await readTopk(top, k, n);
    const what = `${method}, rows ${rows} n ${n} k ${k}`;
    strictEqual(got.k, want.k);
    deepStrictEqual(got.indices, want.indices, `indices, ${what}`);
    deepStrictEqual(got.values, want.values, `values, ${what}`);
    for (const t of [top.values, top.indices]) t.destroy();
  }
  scores.destroy();
}

/** Scores quantised to a few levels, so that many ties test the index tie-break. */
function tied(count: number, levels: number, seed: number): Float32Array {
  const u = rng(seed);
  return new Float32Array(count).map(() => Math.floor(u() * levels) / levels - 0.5);
}

Deno.test("top-k equals a CPU sort: one tile, several tiles, several merge passes", async () => {
  await check(3, 10, 4, randn(30, 1));
  await check(5, 5000, 1000, randn(25000, 2)); // k = 1000 over 3 tiles of 2048
  await check(4, 9000, 7, randn(36000, 3)); // tiny k: big reduction per pass
  // Tiles of 64 with K = 16: 20000 -> 5008 -> 1264 -> 320 -> 80 -> 32 -> 16 (several merges).
  await check(2, 20000, 16, randn(40000, 4), 64);
  await check(2, 3000, 100, randn(6000, 5), 256); // K = 128, tile 256: merges of 2 runs
  await check(3, 5000, 100, randn(15000, 10), 256, 300); // radix tiles of 300, then merges
});

Deno.test("top-k breaks ties by the lower index, across tiles and merges", async () => {
  await check(3, 5000, 1000, tied(15000, 7, 6));
  await check(2, 4000, 30, tied(8000, 3, 7), 128);
  await check(1, 300, 300, new Float32Array(300).fill(1)); // all equal: indices in order
  // Ties straddling the k-th place, within and across radix tiles (column passes).
  await check(2, 2000, 50, tied(4000, 2, 11), undefined, 700);
  await check(1, 600, 37, new Float32Array(600).fill(-0.25), undefined, 250);
  // -0 and +0 tie (by index).
  await check(1, 6, 3, new Float32Array([-0, 0, -0, 0, -1, 1]));
});

Deno.test("top-k with k > N returns N entries; padding stays out", async () => {
  await check(2, 100, 200, randn(200, 8));
  await check(3, 1, 5, randn(3, 9));
  const g = await gpu();
  const s = Tensor.from(g, [3, 1, 2], [1, 3]);
  const top = await topk(g, s, 5);
  const raw = await top.indices.read();
  strictEqual(top.width, 8);
  deepStrictEqual([...raw.slice(0, 3)], [0, 2, 1]);
  ok(raw.slice(3).every((i) => i === PAD_INDEX), "padding indices after the row's entries");
  for (const t of [s, top.values, top.indices]) t.destroy();
});

Deno.test("top-k ranks -inf before padding and NaN as -inf", async () => {
  const data = new Float32Array([0.5, NaN, -Infinity, 2, Infinity, -1, NaN, 0.5]);
  await check(1, 8, 8, data);
  await check(1, 8, 3, data);
});

Deno.test("top-k plans and refuses k beyond the device", async () => {
  const g = await gpu();
  const plan = topkPlan(g, 5183, 1000);
  strictEqual(plan.K, 1024);
  ok(plan.mergeTile >= 2 * plan.K && plan.selectTile >= plan.K);
  throws(() => topkPlan(g, 10, 0), /k must be >= 1/);
  throws(() => topkPlan(g, 10, maxTopk(g) + 1), /above this device's maximum/);
  const s = Tensor.zeros(g, [2, 3, 4]);
  await rejects(() => topk(g, s, 1), /\[R, N\]/);
  s.destroy();
});
