// Optimizer kernels: the Adam/AdamW parameter update and global gradient-norm clipping.
// Dimension legend: n elements of one parameter tensor (its gradient, first moment m and second
// moment v have the same n); T gradient tensors in a clipping call; P partial sums.
// Per-element kernels use a flat index the host may fold into two grid dimensions
// (src/gpu/kernels.ts grid1d): i = flat_index(gid, nwg).
// Loops stay under 65535 iterations per invocation (llvmpipe silently ends longer loops): the
// host bounds the grid-stride of sumsq_partial and the lengths the single-workgroup passes loop
// over.
//
// Adam, as torch.optim.Adam / AdamW compute it (torch/optim/adam.py, single-tensor path), with
// the step-dependent scalars computed on the host in float64:
//   AdamW (decoupled):  p ← p · (1 − lr·wd)             (decay_factor; 1 for Adam)
//   Adam (coupled L2):  g ← g + wd·p                     (l2; 0 for AdamW and plain Adam)
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + (1 − β2)·g²
//   p ← p − step_size · m / (sqrt(v) / bc2_sqrt + eps)   step_size = lr / (1 − β1^t),
//                                                        bc2_sqrt = sqrt(1 − β2^t)

struct Params {
  n: u32,                 // elements (adam_step, sumsq_partial, scale_by_coefficient)
  offset: u32,            // first slot written (sumsq_partial)
  count: u32,             // segments (sum_segments), tensors (finish_norm)
  pad: u32,
  decay_factor: f32,      // 1 − lr·wd (AdamW), else 1
  l2: f32,                // wd added as wd·p to the gradient (Adam with weight decay), else 0
  beta1: f32,
  one_minus_beta1: f32,
  beta2: f32,
  one_minus_beta2: f32,
  step_size: f32,         // lr / (1 − β1^t)
  bc2_sqrt: f32,          // sqrt(1 − β2^t)
  eps: f32,
  max_norm: f32,          // clipping threshold (finish_norm)
}

override WG: u32; // invocations per workgroup (src/train/optimizer.ts)

//! include "prelude/grid.wgsl"
//! include "prelude/reduce.wgsl"

@group(0) @binding(0) var<uniform> p: Params;

// adam_step bindings: param (rw), grad (read), m (rw), v (rw).
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m_state: array<f32>;
@group(0) @binding(4) var<storage, read_write> v_state: array<f32>;

// One Adam/AdamW update of one parameter tensor, in place.
@compute @workgroup_size(WG)
fn adam_step(@builtin(global_invocation_id) gid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  let w = param[i] * p.decay_factor;
  let g = grad[i] + p.l2 * param[i];
  let m = p.beta1 * m_state[i] + p.one_minus_beta1 * g;
  let v = p.beta2 * v_state[i] + p.one_minus_beta2 * g * g;
  m_state[i] = m;
  v_state[i] = v;
  let denom = sqrt(v) / p.bc2_sqrt + p.eps;
  param[i] = w - p.step_size * (m / denom);
}

// ---- global gradient-norm clipping ------------------------------------------------------------
// The stats buffer: stats[0] = global L2 norm, stats[1] = clip coefficient, stats[2 + t] = the
// sum of squares of gradient t. Passes: sumsq_partial per tensor (partials), sum_segments (one
// workgroup per tensor), finish_norm (one workgroup), scale_by_coefficient per tensor.

@group(0) @binding(1) var<storage, read> x_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial_out: array<f32>;

@group(0) @binding(1) var<storage, read> partial_in: array<f32>;
@group(0) @binding(2) var<storage, read> segments: array<u32>;
@group(0) @binding(3) var<storage, read_write> stats_rw: array<f32>;

@group(0) @binding(1) var<storage, read_write> stats_only: array<f32>;

@group(0) @binding(1) var<storage, read> stats_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> g_rw: array<f32>;

// NaN or ±Inf, by the exponent bits (comparisons with NaN may be folded away by the compiler).
fn non_finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

// sumsq_partial: x (x_in) [n] -> partial_out[offset + g] = Σ x² over the elements
// g·WG + lid + k·(nwg.x·WG), one workgroup per partial (1-D grid).
@compute @workgroup_size(WG)
fn sumsq_partial(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = wid.x * WG + lid; i < p.n; i += nwg.x * WG) {
    let v = x_in[i];
    s += v * v;
  }
  let total = workgroup_sum(lid, s);
  if (lid == 0u) { partial_out[p.offset + wid.x] = total; }
}

// sum_segments: partials (partial_in) [P], segments [2T] (start, end) -> stats_rw[2 + t] =
// Σ partial_in[start..end); one workgroup per tensor t (1-D grid of T workgroups).
@compute @workgroup_size(WG)
fn sum_segments(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let t = wid.x;
  if (t >= p.count) { return; }
  let start = segments[2u * t];
  let end = segments[2u * t + 1u];
  var s = 0.0;
  for (var i = start + lid; i < end; i += WG) { s += partial_in[i]; }
  let total = workgroup_sum(lid, s);
  if (lid == 0u) { stats_rw[2u + t] = total; }
}

// finish_norm: stats_only[2..2+T) -> stats_only[0] = sqrt(Σ), stats_only[1] =
// min(1, max_norm / (norm + 1e-6)) as torch.nn.utils.clip_grad_norm_; a non-finite norm gives
// coefficient 1 (the gradients are left as they are for the caller to inspect). One workgroup.
@compute @workgroup_size(WG)
fn finish_norm(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var t = lid; t < p.count; t += WG) { s += stats_only[2u + t]; }
  let total = workgroup_sum(lid, s);
  if (lid == 0u) {
    let norm = sqrt(total);
    stats_only[0] = norm;
    var coefficient = 1.0;
    if (!non_finite(norm)) { coefficient = min(1.0, p.max_norm / (norm + 1e-6)); }
    stats_only[1] = coefficient;
  }
}

// scale_by_coefficient: g (g_rw) [n] ← g · stats_in[1]
@compute @workgroup_size(WG)
fn scale_by_coefficient(@builtin(global_invocation_id) gid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  g_rw[i] = g_rw[i] * stats_in[1];
}
