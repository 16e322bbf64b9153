// Margin-MSE (Hofstätter et al. 2020) over precomputed cosines, forward and backward:
//   loss = mean_j (m_j - (tPos_j - tNeg_j))²,  m_j = pos_j - neg_j = cos(q_j, p_j) - cos(q_j, n_j)
// with the teacher's scores tPos, tNeg (constants: no gradient flows into them).
//
// Dimensions: pos, neg are [B]; teacher is [2B], tPos then tNeg.
// Backward: g_j = dLoss · 2 (m_j - (tPos_j - tNeg_j)) / B; dpos += g, dneg -= g.
//
// Bindings (each entry point uses a prefix): margin_mse_forward 1..4 (scalar = the loss,
// written); margin_mse_backward 1..5 (scalar = dLoss, read; dOut = dpos or dneg, accumulated).

struct Params {
  batch: u32,
  // backward: 0 accumulates into dpos, 1 into dneg
  mode: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pos: array<f32>;
@group(0) @binding(2) var<storage, read> neg: array<f32>;
@group(0) @binding(3) var<storage, read> teacher: array<f32>;
@group(0) @binding(4) var<storage, read_write> scalar: array<f32>;
@group(0) @binding(5) var<storage, read_write> dOut: array<f32>;

fn residual(j: u32) -> f32 {
  return (pos[j] - neg[j]) - (teacher[j] - teacher[p.batch + j]);
}

// Invocations of the forward's single workgroup (its tree reduction), and per workgroup of the
// backward entry points (src/losses/common.ts LOSS_KERNEL_CONSTANTS).
override WG: u32;
override GRAD_WG: u32;

//! include "prelude/reduce.wgsl"

// A single workgroup: strided partial sums, then a tree reduction.
@compute @workgroup_size(WG)
fn margin_mse_forward(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var j = lid; j < p.batch; j += WG) {
    let r = residual(j);
    s = fma(r, r, s);
  }
  let total = workgroup_sum(lid, s);
  if (lid == 0u) { scalar[0] = total / f32(p.batch); }
}

// One invocation per triple.
@compute @workgroup_size(GRAD_WG)
fn margin_mse_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  if (j >= p.batch) { return; }
  let g = scalar[0] * 2.0 * residual(j) / f32(p.batch);
  if (p.mode == 0u) { dOut[j] += g; } else { dOut[j] -= g; }
}
