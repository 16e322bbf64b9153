// Embedding lookup: out[i, :] = table[ids[i], :], and its backward, a scatter-add into dTable.
// Dimension legend: table is [V, D]; ids has n elements (any shape, i32 or u32: bound as u32, so
// a negative i32 reads as a huge u32); out is [n, D]. Ids outside [0, V) give zero rows and no
// gradient. Flat indices may be folded into two grid dimensions by the host
// (src/gpu/kernels.ts grid1d): i = flat_index(gid, nwg).

struct Params {
  n: u32,     // forward: ids; backward: distinct ids U
  D: u32,
  V: u32,     // forward only
  first: u32, // backward only: the segment of each id's positions this pass handles
}

override WG: u32; // invocations per workgroup (src/ops/embedding.ts)
// Positions of one id summed by one invocation per backward pass: llvmpipe silently ends shader
// loops after 65535 iterations, so ids occurring more often than this take several passes.
override SEGMENT: u32; // (src/ops/embedding.ts)

//! include "prelude/grid.wgsl"

@group(0) @binding(0) var<uniform> p: Params;

// embedding_forward: table, ids -> out
@group(0) @binding(1) var<storage, read> f_table: array<f32>;
@group(0) @binding(2) var<storage, read> f_ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> f_out: array<f32>;

@compute @workgroup_size(WG)
fn embedding_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n * p.D) { return; }
  let row = i / p.D;
  let c = i % p.D;
  let id = f_ids[row];
  var v = 0.0;
  if (id < p.V) { v = f_table[id * p.D + c]; }
  f_out[i] = v;
}

// embedding_backward: dy, ids_sorted, offsets, positions -> dtable (+=)
// Without float atomics (WGSL has none for f32) the host groups the positions by id, CSR-style:
// ids_sorted[u] is the u-th distinct in-range id, its positions (ascending) are
// positions[offsets[u] .. offsets[u + 1]). One invocation per (u, column) sums dy over them and
// adds the sum into dtable[ids_sorted[u], column]: no two invocations write the same element,
// the summation order is fixed (deterministic), and the work is O(n·D) reads plus O(U·D)
// writes. Pass `first` covers positions [offsets[u] + first, offsets[u] + first + SEGMENT).
@group(0) @binding(1) var<storage, read> b_dy: array<f32>;
@group(0) @binding(2) var<storage, read> b_ids: array<u32>;
@group(0) @binding(3) var<storage, read> b_offsets: array<u32>;
@group(0) @binding(4) var<storage, read> b_positions: array<u32>;
@group(0) @binding(5) var<storage, read_write> b_dtable: array<f32>;

@compute @workgroup_size(WG)
fn embedding_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n * p.D) { return; }
  let u = i / p.D;
  let c = i % p.D;
  let start = b_offsets[u] + p.first;
  let end = min(b_offsets[u + 1u], start + SEGMENT);
  if (start >= end) { return; }
  var acc = 0.0;
  for (var k = start; k < end; k++) {
    acc += b_dy[b_positions[k] * p.D + c];
  }
  b_dtable[b_ids[u] * p.D + c] += acc;
}
