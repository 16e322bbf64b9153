// Reductions and their backward passes: sum of all elements, sum over the last dimension, mean,
// max and last of the kept positions of a masked sequence (pooling), L2 norm of rows and L2
// normalisation of rows.
// Dimension legend: rows x cols for row-wise ops (leading dimensions folded into rows); the
// masked poolings take x [B, S, D] and mask [B, S] (f32 0/1, or i32/u32 where non-zero keeps)
// to y [B, D]. Per-element kernels use a flat index the host may fold into two grid dimensions
// (src/gpu/kernels.ts grid1d): i = flat_index(gid, nwg); per-row kernels run one workgroup per
// row: r = group_index(wid, nwg). Backward kernels ACCUMULATE (+=).
// Loops stay under 65535 iterations per invocation (llvmpipe silently ends longer loops): the
// host bounds S and the grid-stride of sum_partial.

struct Params {
  n: u32,          // elements (or partial sums) the kernel covers
  rows: u32,       // rows (row-wise ops), B (masked poolings)
  cols: u32,       // cols (row-wise ops), D (masked poolings)
  seq: u32,        // S (masked poolings)
  mask_float: u32, // the mask holds f32 values (else integers)
  eps: f32,        // l2 normalisation floor
}

override WG: u32; // invocations per workgroup (src/ops/reduce.ts)

//! include "prelude/grid.wgsl"
//! include "prelude/reduce.wgsl"

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(1) var<storage, read> mask1: array<u32>;
@group(0) @binding(2) var<storage, read> in2: array<f32>;
@group(0) @binding(2) var<storage, read_write> out2: array<f32>;
@group(0) @binding(3) var<storage, read> in3: array<f32>;
@group(0) @binding(3) var<storage, read> mask3: array<u32>;
@group(0) @binding(3) var<storage, read_write> out3: array<f32>;
@group(0) @binding(4) var<storage, read_write> out4: array<f32>;

fn kept(raw: u32) -> f32 {
  if (p.mask_float != 0u) { return select(0.0, 1.0, bitcast<f32>(raw) != 0.0); }
  return select(0.0, 1.0, raw != 0u);
}

// ---- sum of all elements -------------------------------------------------------------------
// sum_partial: in1 [n] -> out2[g] = Σ over elements g·WG + lid + k·(nwg.x·WG), one workgroup
// per partial sum (1-D grid, nwg.x <= 1024). Run twice (partials, then their sum) for a scalar.
@compute @workgroup_size(WG)
fn sum_partial(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = wid.x * WG + lid; i < p.n; i += nwg.x * WG) { s += in1[i]; }
  let total = workgroup_sum(lid, s);
  if (lid == 0u) { out2[wid.x] = total; }
}

// Backward of the total: dx[i] += dy[0].
@compute @workgroup_size(WG)
fn sum_all_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  out2[i] += in1[0];
}

// ---- sum over the last dimension -------------------------------------------------------------
// sum_rows_forward: in1 [rows, cols] -> out2 [rows]
@compute @workgroup_size(WG)
fn sum_rows_forward(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let r = group_index(wid, nwg);
  if (r >= p.rows) { return; }
  var s = 0.0;
  for (var c = lid; c < p.cols; c += WG) { s += in1[r * p.cols + c]; }
  let total = workgroup_sum(lid, s);
  if (lid == 0u) { out2[r] = total; }
}

// sum_rows_backward: dy (in1) [rows] -> dx (out2) [rows, cols] +=; n = rows · cols
@compute @workgroup_size(WG)
fn sum_rows_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  out2[i] += in1[i / p.cols];
}

// ---- mean over a masked sequence ----------------------------------------------------------------
// mask_inverse_count: mask (mask1) [B, S] -> inv (out2) [B] = 1 / (kept positions), or 0 when
// none is kept (so an all-zero mask gives a zero mean, not NaN).
@compute @workgroup_size(WG)
fn mask_inverse_count(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
  let b = flat_index(gid, nwg);
  if (b >= p.rows) { return; }
  var count = 0.0;
  for (var s = 0u; s < p.seq; s++) { count += kept(mask1[b * p.seq + s]); }
  out2[b] = select(0.0, 1.0 / count, count > 0.0);
}

// masked_mean_forward: x (in1) [B, S, D], inv (in2) [B], mask (mask3) [B, S] -> y (out4) [B, D]
//   y[b, d] = inv[b] · Σ_s kept[b, s] · x[b, s, d]; one invocation per (b, d), n = B · D.
@compute @workgroup_size(WG)
fn masked_mean_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  let b = i / p.cols;
  let d = i % p.cols;
  var s = 0.0;
  for (var t = 0u; t < p.seq; t++) {
    if (kept(mask3[b * p.seq + t]) != 0.0) { s += in1[(b * p.seq + t) * p.cols + d]; }
  }
  out4[i] = s * in2[b];
}

// masked_mean_backward: dy (in1) [B, D], inv (in2) [B], mask (mask3) [B, S] -> dx (out4)
// [B, S, D] += kept[b, s] · inv[b] · dy[b, d]; n = B · S · D.
@compute @workgroup_size(WG)
fn masked_mean_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  let d = i % p.cols;
  let bs = i / p.cols; // b · S + s
  let b = bs / p.seq;
  out4[i] += kept(mask3[bs]) * in2[b] * in1[b * p.cols + d];
}

// ---- max and last-token pooling -------------------------------------------------------------
// masked_max_forward: x (in1) [B, S, D], mask (mask3) [B, S] -> y (out2) [B, D], at (out4)
// [B, D]: y[b, d] = max over kept s of x[b, s, d] (the first such s in at, as f32; exact for
// S < 2^24), or y = 0 and at = S when row b keeps nothing; n = B · D.
@compute @workgroup_size(WG)
fn masked_max_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  let b = i / p.cols;
  let d = i % p.cols;
  var best = 0.0;
  var at = p.seq;
  for (var t = 0u; t < p.seq; t++) {
    if (kept(mask3[b * p.seq + t]) == 0.0) { continue; }
    let v = in1[(b * p.seq + t) * p.cols + d];
    if (at == p.seq || v > best) { best = v; at = t; }
  }
  out2[i] = best;
  out4[i] = f32(at);
}

// masked_max_backward: dy (in1) [B, D], at (in2) [B, D] -> dx (out3) [B, S, D]:
// dx[b, at[b, d], d] += dy[b, d] (nothing for a row that kept nothing); n = B · D. Each (b, d)
// writes its own element, so there are no races.
@compute @workgroup_size(WG)
fn masked_max_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  let at = u32(in2[i]);
  if (at >= p.seq) { return; }
  let b = i / p.cols;
  let d = i % p.cols;
  out3[(b * p.seq + at) * p.cols + d] += in1[i];
}

// The last kept position of row b, or S when it keeps nothing.
fn last_kept(b: u32) -> u32 {
  for (var t = p.seq; t > 0u; t--) {
    if (kept(mask3[b * p.seq + t - 1u]) != 0.0) { return t - 1u; }
  }
  return p.seq;
}

// masked_last_forward: x (in1) [B, S, D], mask (mask3) [B, S] -> y (out2) [B, D] = x[b, s, d]
// at the last kept s (0 for a row that keeps nothing); n = B · D.
@compute @workgroup_size(WG)
fn masked_last_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  let b = i / p.cols;
  let at = last_kept(b);
  out2[i] = select(0.0, in1[(b * p.seq + at) * p.cols + i % p.cols], at < p.seq);
}

// masked_last_backward: dy (in1) [B, D], mask (mask3) [B, S] -> dx (out2) [B, S, D]:
// dx[b, last kept s, d] += dy[b, d]; n = B · D.
@compute @workgroup_size(WG)
fn masked_last_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  let b = i / p.cols;
  let at = last_kept(b);
  if (at < p.seq) { out2[(b * p.seq + at) * p.cols + i % p.cols] += in1[i]; }
}

// ---- L2 norm of rows ----------------------------------------------------------------------------
// Σ x² over the row of in1 starting at `base` (cols entries), for the whole workgroup.
fn row_sum_of_squares(lid: u32, base: u32) -> f32 {
  var s = 0.0;
  for (var c = lid; c < p.cols; c += WG) {
    let v = in1[base + c];
    s += v * v;
  }
  return workgroup_sum(lid, s);
}

// l2_norm_forward: x (in1) [rows, cols] -> norm (out2) [rows] = sqrt(Σ x²)
@compute @workgroup_size(WG)
fn l2_norm_forward(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let r = group_index(wid, nwg);
  if (r >= p.rows) { return; }
  let total = row_sum_of_squares(lid, r * p.cols);
  if (lid == 0u) { out2[r] = sqrt(total); }
}

// l2_norm_backward: dy (in1) [rows], x (in2), norm (in3) [rows] -> dx (out4) +=
//   dx = dy · x / norm (0 for a zero row, where the norm has no derivative); n = rows · cols.
@compute @workgroup_size(WG)
fn l2_norm_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  let r = i / p.cols;
  let norm = in3[r];
  if (norm > 0.0) { out4[i] += in1[r] * in2[i] / norm; }
}

// ---- L2 normalisation of rows ---------------------------------------------------------------------
// l2_normalize_forward: x (in1) [rows, cols] -> y (out2) = x / max(‖x‖, eps), norm (out3) [rows]
@compute @workgroup_size(WG)
fn l2_normalize_forward(@builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
  let r = group_index(wid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.cols;
  let norm = sqrt(row_sum_of_squares(lid, base));
  let inv = 1.0 / max(norm, p.eps);
  for (var c = lid; c < p.cols; c += WG) { out2[base + c] = in1[base + c] * inv; }
  if (lid == 0u) { out3[r] = norm; }
}

// l2_normalize_backward: dy (in1), y (in2) [rows, cols], norm (in3) [rows] -> dx (out4) +=
//   ‖x‖ > eps: dx = (dy - y · (y·dy)) / ‖x‖;  otherwise y = x / eps is linear: dx = dy / eps.
@compute @workgroup_size(WG)
fn l2_normalize_backward(@builtin(workgroup_id) wid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
  let r = group_index(wid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.cols;
  var s = 0.0;
  for (var c = lid; c < p.cols; c += WG) { s += in2[base + c] * in1[base + c]; }
  let dot = workgroup_sum(lid, s);
  let norm = in3[r];
  let projected = norm > p.eps; // the clamp is inactive: y lies on the unit sphere
  let inv = 1.0 / max(norm, p.eps);
  for (var c = lid; c < p.cols; c += WG) {
    let dy = in1[base + c];
    out4[base + c] += select(dy, dy - in2[base + c] * dot, projected) * inv;
  }
}
