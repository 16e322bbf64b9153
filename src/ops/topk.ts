/**
 * Top-k selection per row of a score matrix on the GPU. WGSL in `kernels/topk.wgsl`.
 *
 * Dimension legend: R rows (queries), N columns (documents), k kept per row, K = k rounded up to
 * a power of two (the width the kernels work in), T the tile one workgroup sorts.
 *
 * Method: the first pass ({@link topkInto}) selects each row tile's best K, by radix selection
 * (`topk_radix`, the default: histogram passes find the K-th best score, the entries above it
 * are compacted and only those K are bitonic-sorted) or by bitonic-sorting whole tiles of T
 * (`topk_select`). While more than one tile's worth remains, `topk_merge` sorts tiles made of
 * sorted runs of K (odd runs loaded reversed, so the sort starts at stage 2K) and keeps the best
 * K again. No invocation loops more than a few thousand times, so llvmpipe's 65535-iteration cap
 * never applies, whatever N is.
 *
 * Order: score descending, ties broken by the lower column index; NaN ranks as -inf and -0
 * comes back as +0. This is a strict total order, so results are deterministic and equal a CPU
 * sort on (score desc, index asc). (trec_eval re-sorts a run by score and then document id, so
 * the tie order here does not change any measure.) Positions past the row's length come back
 * as padding: score -inf and index {@link PAD_INDEX}.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { dispatch, pipeline } from "../gpu/kernels.ts";
import { params } from "../gpu/params.ts";
import { Tensor } from "../gpu/tensor.ts";

/** Index of a padding entry (a row shorter than k). */
export const PAD_INDEX = 0xffffffff;

/** Tile geometry of a top-k: K (k as a power of two) and the tiles the two kernels sort. */
export interface TopkPlan {
  /** Entries kept per row by the kernels: k rounded up to a power of two. */
  K: number;
  /** Tile of the first pass over raw scores. */
  selectTile: number;
  /** Tile of the merge passes (at least 2K). */
  mergeTile: number;
  /** Invocations per workgroup. */
  workgroup: number;
  /** How the first pass selects: radix selection (default) or sorting whole tiles. */
  method: TopkMethod;
  /** Columns per workgroup of the radix first pass. */
  radixTile: number;
}

/**
 * First-pass method: `radix` finds each tile's k-th best score with four 8-bit histogram passes
 * (four more over the column bits only when ties straddle it), compacts the selected entries and
 * sorts just those; `bitonic` sorts whole tiles. Radix selection is the default: on llvmpipe it
 * is several times faster for k = 1000 of 5183 (see the retrieval benchmark).
 */
export type TopkMethod = "radix" | "bitonic";

/** Options of {@link topkPlan}. */
export interface TopkPlanOptions {
  /** Largest tile to sort per workgroup (a power of two); default what workgroup memory allows. */
  maxTile?: number;
  /** First-pass method. Default `radix`. */
  method?: TopkMethod;
  /** Columns per workgroup of the radix pass. Default 16384. */
  radixTile?: number;
}

function nextPow2(x: number): number {
  let p = 1;
  while (p < x) p *= 2;
  return p;
}

/** The largest k {@link topk} can select on this device (workgroup memory holds 2K entries). */
export function maxTopk(gpu: Gpu): number {
  return maxTileOf(gpu) / 2;
}

function maxTileOf(gpu: Gpu): number {
  // Two 4-byte arrays (scores and indices) of T entries each.
  let t = 1;
  while (t * 2 * 8 <= gpu.limits.maxComputeWorkgroupStorageSize) t *= 2;
  return t;
}

/**
 * Plans the tiles for selecting the top `k` of rows of `len` entries. Throws a RangeError when
 * k is above {@link maxTopk} (2048 with 32 KiB of workgroup memory, as on llvmpipe).
 */
export function topkPlan(gpu: Gpu, len: number, k: number, opts: TopkPlanOptions = {}): TopkPlan {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`topk: k must be >= 1, got ${k}`);
  const maxTile = Math.min(maxTileOf(gpu), nextPow2(opts.maxTile ?? Infinity));
  const K = nextPow2(k);
  if (2 * K > maxTileOf(gpu)) {
    throw new RangeError(
      `topk: k = ${k} is above this device's maximum ${maxTopk(gpu)} (workgroup memory ` +
        `${gpu.limits.maxComputeWorkgroupStorageSize} bytes holds ${maxTileOf(gpu)} entries)`,
    );
  }
  const mergeTile = Math.max(2 * K, maxTile);
  const selectTile = Math.max(K, Math.min(mergeTile, nextPow2(Math.max(1, len))));
  const workgroup = Math.max(1, Math.min(64, gpu.limits.maxComputeInvocationsPerWorkgroup));
  const radixTile = Math.max(1, Math.min(opts.radixTile ?? 16384, 262144));
  return { K, selectTile, mergeTile, workgroup, method: opts.method ?? "radix", radixTile };
}

/** Rows to select from: scores (and, for merges, indices) with a row stride. */
export interface TopkInput {
  /** Scores, row-major, R rows of stride `stride`. */
  values: Tensor;
  /** Valid entries per row (columns 0..len-1). */
  len: number;
  /** Row stride in elements (default `len`). */
  stride?: number;
  /** Rows. */
  rows: number;
}

/** Where a top-k lands: R rows of K entries at column `offset` of rows of stride `stride`. */
export interface TopkOutput {
  /** Scores, best first. */
  values: Tensor;
  /** Column indices (plus the index offset), {@link PAD_INDEX} for padding. */
  indices: Tensor;
  /** Row stride in elements. */
  stride: number;
  /** First column written. */
  offset?: number;
}

/** Options of {@link topkInto} and {@link topk}. */
export interface TopkOptions extends TopkPlanOptions {
  /** Added to every column index (e.g. the first document of a corpus chunk). Default 0. */
  indexOffset?: number;
}

function grid(tiles: number, rows: number): [number, number, number] {
  const y = Math.min(rows, 65535);
  return [tiles, y, Math.ceil(rows / y)];
}

/**
 * Records the selection of the best K = {@link topkPlan}(…).K entries of each input row into
 * `out` (runs as many passes as the row length needs, with temporary buffers freed at the end).
 *
 * @example
 * ```ts
 * const K = topkPlan(gpu, n, 10).K;
 * const values = Tensor.zeros(gpu, [r, K]);
 * const out = { values, indices: Tensor.zeros(gpu, [r, K], "u32"), stride: K };
 * await topkInto(gpu, { values: scores, rows: r, len: n }, out, 10); // best 10 of each row
 * ```
 */
export async function topkInto(
  gpu: Gpu,
  input: TopkInput,
  out: TopkOutput,
  k: number,
  opts: TopkOptions = {},
): Promise<void> {
  await mergeOrSelect(gpu, { ...input, run: 1 }, out, k, opts);
}

/** Input of {@link topkMergeInto}: rows made of sorted runs of K entries with their indices. */
export interface TopkRunsInput extends TopkInput {
  /** Column indices beside `values`. */
  indices: Tensor;
}

/**
 * Records the merge of rows made of sorted runs of K entries (outputs of {@link topkInto}, e.g.
 * the best so far beside a new chunk's best) into their best K.
 */
export async function topkMergeInto(
  gpu: Gpu,
  input: TopkRunsInput,
  out: TopkOutput,
  k: number,
  opts: TopkPlanOptions = {},
): Promise<void> {
  const plan = topkPlan(gpu, input.len, k, opts);
  await mergeOrSelect(gpu, { ...input, run: plan.K }, out, k, opts);
}

async function mergeOrSelect(
  gpu: Gpu,
  input: TopkInput & { indices?: Tensor; run: number },
  out: TopkOutput,
  k: number,
  opts: TopkOptions,
): Promise<void> {
  const plan = topkPlan(gpu, input.len, k, opts);
  const { K } = plan;
  const rows = input.rows;
  if (rows === 0) return;
  const temps: Tensor[] = [];
  let cur = { ...input, stride: input.stride ?? input.len };
  try {
    for (;;) {
      const select = cur.run === 1;
      const radix = select && plan.method === "radix";
      // Merge tiles no longer than the (power-of-two) row: a pair of runs is sorted as 2K.
      const T = select
        ? plan.selectTile
        : Math.max(2 * K, Math.min(plan.mergeTile, nextPow2(cur.len)));
      const WG = Math.min(plan.workgroup, T);
      const tiles = Math.max(1, Math.ceil(cur.len / (radix ? plan.radixTile : T)));
      const last = tiles === 1;
      let dst: TopkOutput;
      if (last) dst = out;
      else {
        const width = tiles * K;
        dst = {
          values: Tensor.zeros(gpu, [rows, width], "f32", "topk values"),
          indices: Tensor.zeros(gpu, [rows, width], "u32", "topk indices"),
          stride: width,
        };
        temps.push(dst.values, dst.indices);
      }
      const p = radix
        ? await pipeline(gpu, "topk.wgsl", "topk_radix", {
          T: K,
          WG: plan.workgroup,
          T_RADIX: plan.radixTile,
        })
        : await pipeline(gpu, "topk.wgsl", select ? "topk_select" : "topk_merge", { T, WG });
      const block = params({
        rows,
        len: cur.len,
        in_stride: cur.stride,
        k: K,
        out_stride: dst.stride,
        out_offset: dst.offset ?? 0,
        index_offset: select ? (opts.indexOffset ?? 0) : 0,
        run: select ? 1 : K,
        tiles,
      });
      const buffers = [cur.values, dst.values, dst.indices];
      if (!select) buffers.push(cur.indices!);
      dispatch(gpu, { pipeline: p, buffers, params: block, workgroups: grid(tiles, rows) });
      if (last) return;
      cur = {
        values: dst.values,
        indices: dst.indices,
        rows,
        len: tiles * K,
        stride: tiles * K,
        run: K,
      };
    }
  } finally {
    // destroy() flushes first, so the recorded passes that read these buffers still run.
    for (const t of temps) t.destroy();
  }
}

/** A top-k on the GPU: R rows of K entries, best first. */
export interface TopkResult {
  /** Scores [R, K]. */
  values: Tensor<"f32">;
  /** Column indices [R, K] (u32), {@link PAD_INDEX} past the row's length. */
  indices: Tensor<"u32">;
  /** The width K (k rounded up to a power of two); the first k columns are the top k. */
  width: number;
}

/**
 * The top `k` entries of each row of a [R, N] score tensor (new tensors of width K >= k).
 *
 * @example
 * ```ts
 * const top = await topk(gpu, scores, 100);
 * const { values, indices } = await readTopk(top, 100, scores.shape[1]);
 * ```
 */
export async function topk(
  gpu: Gpu,
  scores: Tensor,
  k: number,
  opts: TopkOptions = {},
): Promise<TopkResult> {
  if (scores.shape.length !== 2) {
    throw new RangeError(`topk takes [R, N] scores, got [${scores.shape}]`);
  }
  const [rows, len] = scores.shape;
  const { K } = topkPlan(gpu, len, k, opts);
  const values = Tensor.zeros(gpu, [rows, K], "f32", "topk values");
  const indices = Tensor.zeros(gpu, [rows, K], "u32", "topk indices");
  await topkInto(gpu, { values: scores, rows, len }, { values, indices, stride: K }, k, opts);
  return { values, indices, width: K };
}

/** A top-k read back to the host: R rows of `k` entries (row-major), best first. */
export interface HostTopk {
  /** Entries per row: min(k, N). */
  k: number;
  /** Scores [R, k]. */
  values: Float32Array;
  /** Column indices [R, k]. */
  indices: Uint32Array;
}

/**
 * Reads a {@link TopkResult} back, keeping the first min(k, n) columns of each row (`n`: the
 * row length, so that padding never comes back).
 */
export async function readTopk(top: TopkResult, k: number, n: number): Promise<HostTopk> {
  const keep = Math.min(k, n, top.width);
  const rows = top.values.shape[0];
  const [v, i] = [await top.values.read(), await top.indices.read()];
  const values = new Float32Array(rows * keep);
  const indices = new Uint32Array(rows * keep);
  for (let r = 0; r < rows; r++) {
    values.set(v.subarray(r * top.width, r * top.width + keep), r * keep);
    indices.set(i.subarray(r * top.width, r * top.width + keep), r * keep);
  }
  return { k: keep, values, indices };
}
