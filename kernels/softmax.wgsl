// Masked, scaled softmax over the last dimension, for attention scores.
// Dimension legend: x is [rows, K] with rows = batch · (everything between, e.g. heads · q), so
// row r belongs to batch element b = r / rows_per_batch; mask is [batch, K], 1 (keep) or 0
// (masked), stored as f32 or as i32/u32 (mask_float says which; any non-zero integer keeps).
//   y[r, k] = exp(s[r, k] - max) / Σ_kept exp(s[r, k'] - max) for kept k, 0 for masked k,
//   with s = scale · x: masked keys get exactly zero probability (an additive -inf mask), and a
//   fully masked row gives all zeros instead of NaN.
// Backward: dx = scale · y ⊙ (dy - Σ_k dy·y), ACCUMULATED (+=); masked entries get 0.
// One workgroup per row, on a row index the host may fold into two grid dimensions
// (src/gpu/kernels.ts grid1d): r = group_index(wid, nwg).

struct Params {
  rows: u32,
  K: u32,
  rows_per_batch: u32,
  scale: f32,
  has_mask: u32,
  mask_float: u32,
}

override WG: u32; // invocations per workgroup (src/ops/softmax.ts)
const LOWEST: f32 = -3.40282347e38;

//! include "prelude/grid.wgsl"
//! include "prelude/reduce.wgsl"

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> in1: array<f32>;       // x (forward) or dy (backward)
@group(0) @binding(2) var<storage, read> mask: array<u32>;      // forward only
@group(0) @binding(3) var<storage, read_write> out3: array<f32>; // y (forward)
@group(0) @binding(2) var<storage, read> saved_y: array<f32>;   // backward only
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;  // backward only

fn kept(b: u32, k: u32) -> bool {
  if (p.has_mask == 0u) { return true; }
  let raw = mask[b * p.K + k];
  if (p.mask_float != 0u) { return bitcast<f32>(raw) != 0.0; }
  return raw != 0u;
}

@compute @workgroup_size(WG)
fn softmax_forward(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let r = group_index(wid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.K;
  let b = r / p.rows_per_batch;
  var m = LOWEST;
  for (var k = lid; k < p.K; k += WG) {
    if (kept(b, k)) { m = max(m, p.scale * in1[base + k]); }
  }
  m = workgroup_max(lid, m);
  var s = 0.0;
  var count = 0.0;
  for (var k = lid; k < p.K; k += WG) {
    if (kept(b, k)) {
      s += exp(p.scale * in1[base + k] - m);
      count += 1.0;
    }
  }
  let total = workgroup_sum(lid, s);
  let any_kept = workgroup_sum(lid, count) > 0.0;
  let inv = select(0.0, 1.0 / total, any_kept);
  for (var k = lid; k < p.K; k += WG) {
    var y = 0.0;
    if (kept(b, k)) { y = exp(p.scale * in1[base + k] - m) * inv; }
    out3[base + k] = y;
  }
}

@compute @workgroup_size(WG)
fn softmax_backward(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let r = group_index(wid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.K;
  var d = 0.0;
  for (var k = lid; k < p.K; k += WG) { d += in1[base + k] * saved_y[base + k]; }
  let dot = workgroup_sum(lid, d);
  for (var k = lid; k < p.K; k += WG) {
    let y = saved_y[base + k];
    dx[base + k] += p.scale * y * (in1[base + k] - dot);
  }
}

// The same softmax with one invocation per row and no workgroup memory or barriers: the row's
// three passes (max, sum, write) run serially in one invocation, and SIMD lanes take different
// rows. Faster where barriers are expensive (CPU drivers) and rows are short (attention keys);
// src/ops/softmax.ts chooses. Rows index r = flat_index(gid, nwg) (grid1d with WG).
@compute @workgroup_size(WG)
fn softmax_forward_rows(@builtin(global_invocation_id) gid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = flat_index(gid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.K;
  let b = r / p.rows_per_batch;
  var m = LOWEST;
  var count = 0u;
  for (var k = 0u; k < p.K; k++) {
    if (kept(b, k)) {
      m = max(m, p.scale * in1[base + k]);
      count++;
    }
  }
  var s = 0.0;
  for (var k = 0u; k < p.K; k++) {
    if (kept(b, k)) { s += exp(p.scale * in1[base + k] - m); }
  }
  let inv = select(0.0, 1.0 / s, count > 0u);
  for (var k = 0u; k < p.K; k++) {
    var y = 0.0;
    if (kept(b, k)) { y = exp(p.scale * in1[base + k] - m) * inv; }
    out3[base + k] = y;
  }
}

@compute @workgroup_size(WG)
fn softmax_backward_rows(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = flat_index(gid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.K;
  var dot = 0.0;
  for (var k = 0u; k < p.K; k++) { dot += in1[base + k] * saved_y[base + k]; }
  for (var k = 0u; k < p.K; k++) {
    let y = saved_y[base + k];
    dx[base + k] += p.scale * y * (in1[base + k] - dot);
  }
}
