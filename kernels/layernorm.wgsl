// LayerNorm over the last dimension, with gain gamma and bias beta:
//   y[r, c] = (x[r, c] - mean[r]) · rstd[r] · gamma[c] + beta[c],  rstd = 1/sqrt(var + eps),
// var the biased (population) variance, as BERT and PyTorch compute it.
// Dimension legend: rows x D (all leading dimensions folded into rows); mean, rstd: [rows].
// Forward saves mean and rstd per row for the backward. Row kernels run one workgroup per row
// on a row index the host may fold into two grid dimensions (src/gpu/kernels.ts grid1d):
// r = group_index(wid, nwg). Backward kernels ACCUMULATE (+=).

struct Params {
  rows: u32,
  D: u32,
  eps: f32,    // forward and backward_input
  chunks: u32, // backward_params_*: partial sums per column, ceil(rows / CHUNK)
}

override WG: u32; // invocations per workgroup (src/ops/layernorm.ts)

//! include "prelude/grid.wgsl"
//! include "prelude/reduce.wgsl"

@group(0) @binding(0) var<uniform> p: Params;

// layernorm_forward: x, gamma, beta -> y, mean, rstd
@group(0) @binding(1) var<storage, read> f_x: array<f32>;
@group(0) @binding(2) var<storage, read> f_gamma: array<f32>;
@group(0) @binding(3) var<storage, read> f_beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> f_y: array<f32>;
@group(0) @binding(5) var<storage, read_write> f_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> f_rstd: array<f32>;

@compute @workgroup_size(WG)
fn layernorm_forward(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let r = group_index(wid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.D;
  var s = 0.0;
  for (var c = lid; c < p.D; c += WG) { s += f_x[base + c]; }
  let mean = workgroup_sum2(lid, vec2(s, 0.0)).x / f32(p.D);
  // Two-pass variance: no cancellation for rows with a large mean.
  var q = 0.0;
  for (var c = lid; c < p.D; c += WG) {
    let d = f_x[base + c] - mean;
    q += d * d;
  }
  let variance = workgroup_sum2(lid, vec2(q, 0.0)).x / f32(p.D);
  let rstd = inverseSqrt(variance + p.eps);
  for (var c = lid; c < p.D; c += WG) {
    f_y[base + c] = (f_x[base + c] - mean) * rstd * f_gamma[c] + f_beta[c];
  }
  if (lid == 0u) {
    f_mean[r] = mean;
    f_rstd[r] = rstd;
  }
}

// The same forward with one invocation per row and no barriers (SIMD lanes take different
// rows): faster where barriers are expensive (CPU drivers); src/ops/layernorm.ts chooses.
// Row r = flat_index(gid, nwg).
@compute @workgroup_size(WG)
fn layernorm_forward_rows(@builtin(global_invocation_id) gid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = flat_index(gid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.D;
  var s = 0.0;
  for (var c = 0u; c < p.D; c++) { s += f_x[base + c]; }
  let mean = s / f32(p.D);
  var q = 0.0;
  for (var c = 0u; c < p.D; c++) {
    let d = f_x[base + c] - mean;
    q += d * d;
  }
  let rstd = inverseSqrt(q / f32(p.D) + p.eps);
  for (var c = 0u; c < p.D; c++) {
    f_y[base + c] = (f_x[base + c] - mean) * rstd * f_gamma[c] + f_beta[c];
  }
  f_mean[r] = mean;
  f_rstd[r] = rstd;
}

// layernorm_backward_input: dy, x, gamma, mean, rstd -> dx (+=)
// With xhat = (x - mean)·rstd and g = dy·gamma:
//   dx = rstd · (g - mean_c(g) - xhat · mean_c(g · xhat))
@group(0) @binding(1) var<storage, read> b_dy: array<f32>;
@group(0) @binding(2) var<storage, read> b_x: array<f32>;
@group(0) @binding(3) var<storage, read> b_gamma: array<f32>;
@group(0) @binding(4) var<storage, read> b_mean: array<f32>;
@group(0) @binding(5) var<storage, read> b_rstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> b_dx: array<f32>;

@compute @workgroup_size(WG)
fn layernorm_backward_input(@builtin(workgroup_id) wid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
  let r = group_index(wid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.D;
  let mean = b_mean[r];
  let rstd = b_rstd[r];
  var acc = vec2(0.0, 0.0);
  for (var c = lid; c < p.D; c += WG) {
    let g = b_dy[base + c] * b_gamma[c];
    let xhat = (b_x[base + c] - mean) * rstd;
    acc += vec2(g, g * xhat);
  }
  let m = workgroup_sum2(lid, acc) / f32(p.D);
  for (var c = lid; c < p.D; c += WG) {
    let g = b_dy[base + c] * b_gamma[c];
    let xhat = (b_x[base + c] - mean) * rstd;
    b_dx[base + c] += rstd * (g - m.x - xhat * m.y);
  }
}

// layernorm_backward_input with one invocation per row (see layernorm_forward_rows).
@compute @workgroup_size(WG)
fn layernorm_backward_input_rows(@builtin(global_invocation_id) gid: vec3<u32>,
                                 @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = flat_index(gid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.D;
  let mean = b_mean[r];
  let rstd = b_rstd[r];
  var acc = vec2(0.0, 0.0);
  for (var c = 0u; c < p.D; c++) {
    let g = b_dy[base + c] * b_gamma[c];
    let xhat = (b_x[base + c] - mean) * rstd;
    acc += vec2(g, g * xhat);
  }
  let m = acc / f32(p.D);
  for (var c = 0u; c < p.D; c++) {
    let g = b_dy[base + c] * b_gamma[c];
    let xhat = (b_x[base + c] - mean) * rstd;
    b_dx[base + c] += rstd * (g - m.x - xhat * m.y);
  }
}

// dgamma[c] += Σ_r dy[r, c] · xhat[r, c],  dbeta[c] += Σ_r dy[r, c], without atomics, in two
// passes over columns:
// layernorm_backward_params_partial: dy, x, mean, rstd -> part_g, part_b [chunks, D], the sums
//   over rows [k·CHUNK, (k+1)·CHUNK), one invocation per (k, c) (flat i = k·D + c, folded like
//   the elementwise kernels: i = flat_index(gid, nwg); neighbours read neighbours);
// layernorm_backward_params_final: part_g, part_b -> dgamma, dbeta (+=), one invocation per c.
// Two passes also keep every loop under llvmpipe's cap of 65535 iterations per invocation
// (it silently ends longer loops), and give a GPU rows/CHUNK times more parallelism.
override CHUNK: u32; // rows per partial sum (src/ops/layernorm.ts)

@group(0) @binding(1) var<storage, read> q_dy: array<f32>;
@group(0) @binding(2) var<storage, read> q_x: array<f32>;
@group(0) @binding(3) var<storage, read> q_mean: array<f32>;
@group(0) @binding(4) var<storage, read> q_rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> q_part_g: array<f32>;
@group(0) @binding(6) var<storage, read_write> q_part_b: array<f32>;

@compute @workgroup_size(WG)
fn layernorm_backward_params_partial(@builtin(global_invocation_id) gid: vec3<u32>,
                                     @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.chunks * p.D) { return; }
  let k = i / p.D;
  let c = i % p.D;
  let r1 = min((k + 1u) * CHUNK, p.rows);
  var dg = 0.0;
  var db = 0.0;
  for (var r = k * CHUNK; r < r1; r++) {
    let j = r * p.D + c;
    let dy = q_dy[j];
    dg += dy * (q_x[j] - q_mean[r]) * q_rstd[r];
    db += dy;
  }
  q_part_g[i] = dg;
  q_part_b[i] = db;
}

@group(0) @binding(1) var<storage, read> s_part_g: array<f32>;
@group(0) @binding(2) var<storage, read> s_part_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> s_dgamma: array<f32>;
@group(0) @binding(4) var<storage, read_write> s_dbeta: array<f32>;

@compute @workgroup_size(WG)
fn layernorm_backward_params_final(@builtin(global_invocation_id) gid: vec3<u32>,
                                   @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = flat_index(gid, nwg);
  if (c >= p.D) { return; }
  var dg = 0.0;
  var db = 0.0;
  for (var k = 0u; k < p.chunks; k++) {
    dg += s_part_g[k * p.D + c];
    db += s_part_b[k * p.D + c];
  }
  s_dgamma[c] += dg;
  s_dbeta[c] += db;
}
