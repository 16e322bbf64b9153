/**
 * Embedding lookup (gather rows of a table by integer ids) and its backward, a scatter-add into
 * the table's gradient, recorded on the tape. WGSL in `kernels/embedding.wgsl`.
 *
 * Dimension legend: table [V, D]; ids any shape with n elements (i32 or u32); output
 * [...ids.shape, D].
 *
 * @module
 */
import type { Tape } from "../autodiff/tape.ts";
import { dispatch, grid1d, pipeline } from "../gpu/kernels.ts";
import { params } from "../gpu/params.ts";
import { Tensor } from "../gpu/tensor.ts";

/** Invocations per workgroup of the kernels in `embedding.wgsl` (its override `WG`). */
const WG = 64;
/** Positions of one id per backward pass (the WGSL override `SEGMENT`). */
const SEGMENT = 4096;
/** The override constants of every `embedding.wgsl` pipeline. */
const CONSTANTS = { WG, SEGMENT };
const FILE = "embedding.wgsl";

/** Options of {@link embedding}. */
export interface EmbeddingOptions {
  /** Record the backward step (into the table's gradient) here. */
  tape?: Tape;
  /**
   * The ids' values on the host, when the caller has them: the backward then groups them
   * without reading the id tensor back from the GPU (a round trip per step).
   */
  hostIds?: ArrayLike<number>;
}

/** The positions of each distinct in-range id, CSR-style (ids ascending, positions ascending). */
export interface IdGroups {
  /** The distinct ids in [0, V), ascending. */
  ids: Uint32Array;
  /** offsets[u] .. offsets[u + 1] index `positions` for ids[u]; length ids.length + 1. */
  offsets: Uint32Array;
  /** Positions into the id tensor, grouped by id. */
  positions: Uint32Array;
  /** The largest number of positions of one id. */
  maxCount: number;
}

/**
 * Groups positions by id (a counting sort, O(n + V)); ids outside [0, V) are dropped.
 * Exported for tests and for callers that want to inspect the grouping.
 */
export function groupIds(ids: ArrayLike<number>, V: number): IdGroups {
  const counts = new Uint32Array(V + 1);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id >= 0 && id < V) counts[id + 1]++;
  }
  let distinct = 0, maxCount = 0;
  for (let v = 1; v <= V; v++) {
    if (counts[v] > 0) distinct++;
    maxCount = Math.max(maxCount, counts[v]);
    counts[v] += counts[v - 1]; // counts[v] is now the start of id v
  }
  const positions = new Uint32Array(counts[V]);
  const cursor = counts.slice(0, V);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id >= 0 && id < V) positions[cursor[id]++] = i;
  }
  const out = new Uint32Array(distinct), offsets = new Uint32Array(distinct + 1);
  let u = 0;
  for (let v = 0; v < V; v++) {
    if (counts[v + 1] > counts[v]) {
      out[u] = v;
      offsets[u + 1] = counts[v + 1];
      u++;
    }
  }
  return { ids: out, offsets, positions, maxCount };
}

/**
 * out[..., :] = table[ids[...], :]. Ids outside [0, V) give zero rows and no gradient.
 *
 * Backward (into the table only): dTable[v] += Σ_{i: ids[i] = v} dy[i], without float atomics.
 * The step reads the ids back to the host (one GPU round trip per call), groups positions by id
 * (counting sort, O(n + V) host work, a V-sized count array) and runs one invocation per
 * (distinct id, column), each summing its id's rows of dy in a fixed order: O(n·D) GPU reads,
 * deterministic, no write conflicts. Ids occurring more than 4096 times take extra passes.
 *
 * @example
 * ```ts
 * const tokens = Tensor.from(gpu, tokenIds, [batch, seq], "i32");
 * const h = await embedding(wordTable, tokens, { tape }); // [batch, seq, D]
 * ```
 */
export async function embedding(
  table: Tensor,
  ids: Tensor,
  opts: EmbeddingOptions = {},
): Promise<Tensor> {
  if (table.dtype !== "f32" || table.shape.length !== 2) {
    throw new TypeError(`embedding: the table must be a 2-D f32 tensor, got [${table.shape}]`);
  }
  if (ids.dtype === "f32") throw new TypeError("embedding: ids must be i32 or u32");
  const [V, D] = table.shape;
  const n = ids.size;
  const gpu = table.gpu;
  const out = Tensor.zeros(gpu, [...ids.shape, D]);
  dispatch(gpu, {
    pipeline: await pipeline(gpu, FILE, "embedding_forward", CONSTANTS),
    buffers: [table, ids, out],
    params: params({ n, D, V, first: 0 }),
    workgroups: grid1d(gpu, n * D, WG),
  });
  const tape = opts.tape;
  tape?.record("embedding", [table], out, async () => {
    const dtable = tape.grad(table);
    if (!dtable || n === 0 || D === 0) return;
    const host = opts.hostIds ?? await ids.read();
    const groups = groupIds(host, V);
    const U = groups.ids.length;
    if (U === 0) return;
    const tensors = [groups.ids, groups.offsets, groups.positions].map((a) =>
      Tensor.from(gpu, a, [a.length], "u32")
    );
    const p = await pipeline(gpu, FILE, "embedding_backward", CONSTANTS);
    for (let first = 0; first < groups.maxCount; first += SEGMENT) {
      dispatch(gpu, {
        pipeline: p,
        buffers: [tape.grad(out)!, ...tensors, dtable],
        params: params({ n: U, D, V, first }),
        workgroups: grid1d(gpu, U * D, WG),
      });
    }
    tensors.forEach((t) => t.destroy());
  });
  return out;
}
