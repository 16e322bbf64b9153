import { embedding } from "../src/ops/embedding.ts";
import { checkOp, rng } from "./helpers.ts";

/** float64 gather: rows of table [V, D] by ids; out-of-range ids give zero rows. */
function embeddingRef(table: Float64Array, ids: Float64Array, V: number, D: number) {
  const out = new Float64Array(ids.length * D);
  ids.forEach((id, i) => {
    if (id >= 0 && id < V) out.set(table.subarray(id * D, (id + 1) * D), i * D);
  });
  return out;
}

/** n ids in [0, V), seeded, with repeats. */
function randomIds(n: number, V: number, seed: number): Float32Array {
  const u = rng(seed);
  return Float32Array.from({ length: n }, () => Math.floor(u() * V));
}

// A gather copies values exactly; dTable sums at most a few thousand unit-normal cotangents,
// whose f32 error (~sqrt(count)·2^-24·|terms|) sits far below checkOp's gradient tolerance.
const EXACT = { atol: 0, rtol: 0 };

Deno.test("embedding gathers rows and scatter-adds repeated ids into dTable", async () => {
  const cases: [number, number, number[]][] = [[1, 1, [1]], [11, 5, [3, 7]], [50, 130, [4, 50]]];
  for (const [V, D, shape] of cases) {
    const n = shape.reduce((a, b) => a * b, 1);
    for (const dtype of ["i32", "u32"] as const) {
      await checkOp({
        name: `embedding V=${V} D=${D} ids [${shape}] ${dtype}`,
        inputs: [{ shape: [V, D] }, {
          shape,
          data: randomIds(n, V, V + D),
          dtype,
        }],
        forward: (tape, table, ids) => embedding(table, ids, { tape }),
        reference: (table, ids) => embeddingRef(table, ids, V, D),
        forwardTol: EXACT,
      });
    }
  }
});

Deno.test("embedding gives zero rows and no gradient for ids outside [0, V)", async () => {
  const [V, D] = [6, 3];
  const ids = Float32Array.from([0, -1, 5, 6, 2, 1000, 5, -7]);
  await checkOp({
    name: "embedding out-of-range ids",
    inputs: [{ shape: [V, D] }, { shape: [ids.length], data: ids, dtype: "i32" }],
    forward: (tape, table, i) => embedding(table, i, { tape }),
    reference: (table, i) => embeddingRef(table, i, V, D),
    forwardTol: EXACT,
  });
});

Deno.test("embedding backward sums an id repeated over several 4096-position passes", async () => {
  // 10000 ids, mostly id 1 (three backward passes), plus a few others; D = 70 > workgroup.
  const [V, D, n] = [4, 70, 10000];
  const ids = Float32Array.from({ length: n }, (_, i) => (i % 97 === 0 ? i % 4 : 1));
  await checkOp({
    name: "embedding heavy repeats",
    inputs: [{ shape: [V, D] }, { shape: [n], data: ids, dtype: "u32" }],
    forward: (tape, table, i) => embedding(table, i, { tape }),
    reference: (table, i) => embeddingRef(table, i, V, D),
    forwardTol: EXACT,
    // dTable[1] sums ~9900 unit-normal terms (|sum| ~ 100): f32 error ~1e-4.
    gradTol: { atol: 1e-3, rtol: 1e-4 },
    fdSamples: 12,
  });
});
