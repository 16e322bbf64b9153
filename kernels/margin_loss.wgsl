// The relevance-margin loss family (Gienapp et al., ICTIR 2025) over precomputed cosines, forward
// and backward.
//
// Dimensions: the loss is the mean of e(d[i, j]) over a rows x cols grid (1 x B without in-batch
// negatives, B x B with in-batch negatives or distributed targets), d = margin - target:
//   margin[i, j] = pos[posByRow ? i : j] - neg[negBroadcast ? j : i * cols + j]
//   target[i, j] = targetMode == 0 ? the static target : tgt[i * cols + j] / 2 + 1/2
// where pos = cos(q_j, p_j) [B]; neg = cos(q_j, n_j) [B] or cos(q_i, n_j) [B x B]; tgt =
// cos(p_j, n_j) [B] or cos(p_i, n_j) [B x B]. With rows = 1 the flat index i * cols + j is j.
// Errors: l1 |d|, l2 d², soft log(1 + exp(-d)) (evaluated stably).
//
// Backward, with g[i, j] = dLoss · e'(d[i, j]) / (rows·cols):
//   dpos[k] += Σ over the grid cells that read pos[k] of g;  dneg += -g (summed over i when
//   broadcast);  dtgt += -g / 2.
//
// Bindings (each entry point uses a prefix): margin_forward 1..4 (scalar = the loss, written);
// the backward entry points 1..5 (scalar = dLoss, read; dOut = the gradient accumulated).
// With a static target any read-only buffer may be bound as tgt: it is not read.

struct Params {
  rows: u32,
  cols: u32,
  posByRow: u32,
  negBroadcast: u32,
  // 0: static target; 1: tgt holds cosines, target = cos / 2 + 1/2
  targetMode: u32,
  // 0: l1, 1: l2, 2: soft
  errorFn: u32,
  staticTarget: f32,
  invCount: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pos: array<f32>;
@group(0) @binding(2) var<storage, read> neg: array<f32>;
@group(0) @binding(3) var<storage, read> tgt: array<f32>;
@group(0) @binding(4) var<storage, read_write> scalar: array<f32>;
@group(0) @binding(5) var<storage, read_write> dOut: array<f32>;

fn diff(i: u32, j: u32) -> f32 {
  let flat = i * p.cols + j;
  var pv = pos[j];
  if (p.posByRow == 1u) { pv = pos[i]; }
  var nv = neg[flat];
  if (p.negBroadcast == 1u) { nv = neg[j]; }
  var t = p.staticTarget;
  if (p.targetMode == 1u) { t = tgt[flat] * 0.5 + 0.5; }
  return (pv - nv) - t;
}

fn err_value(d: f32) -> f32 {
  switch (p.errorFn) {
    case 0u: { return abs(d); }
    case 1u: { return d * d; }
    default: {
      // log(1 + exp(-d)) = max(-d, 0) + log(1 + exp(-|d|)): no overflow for any d.
      return max(-d, 0.0) + log(1.0 + exp(-abs(d)));
    }
  }
}

fn error_grad(d: f32) -> f32 {
  switch (p.errorFn) {
    case 0u: { return sign(d); }
    case 1u: { return 2.0 * d; }
    default: {
      // d/dd log(1 + exp(-d)) = -1 / (1 + exp(d)), written so exp never overflows.
      if (d >= 0.0) {
        let e = exp(-d);
        return -e / (1.0 + e);
      }
      return -1.0 / (1.0 + exp(d));
    }
  }
}

// Invocations of the forward's single workgroup (its tree reduction), and per workgroup of the
// backward entry points (src/losses/common.ts LOSS_KERNEL_CONSTANTS).
override WG: u32;
override GRAD_WG: u32;

//! include "prelude/reduce.wgsl"

// A single workgroup: each invocation sums a strided share of the grid, then a tree reduction.
@compute @workgroup_size(WG)
fn margin_forward(@builtin(local_invocation_index) lid: u32) {
  let count = p.rows * p.cols;
  var s = 0.0;
  for (var e = lid; e < count; e += WG) {
    s += err_value(diff(e / p.cols, e % p.cols));
  }
  let total = workgroup_sum(lid, s);
  if (lid == 0u) { scalar[0] = total * p.invCount; }
}

// One invocation per element of pos: dpos[k] += Σ g over the grid cells reading pos[k].
@compute @workgroup_size(GRAD_WG)
fn margin_backward_pos(@builtin(global_invocation_id) gid: vec3<u32>) {
  let k = gid.x;
  let g = scalar[0] * p.invCount;
  var s = 0.0;
  if (p.posByRow == 1u) {
    if (k >= p.rows) { return; }
    for (var j = 0u; j < p.cols; j++) { s += error_grad(diff(k, j)); }
  } else {
    if (k >= p.cols) { return; }
    for (var i = 0u; i < p.rows; i++) { s += error_grad(diff(i, k)); }
  }
  dOut[k] += g * s;
}

// dneg: one invocation per column when neg is broadcast over rows, else one per grid cell.
@compute @workgroup_size(GRAD_WG)
fn margin_backward_neg(@builtin(global_invocation_id) gid: vec3<u32>) {
  let e = gid.x;
  let g = scalar[0] * p.invCount;
  if (p.negBroadcast == 1u) {
    if (e >= p.cols) { return; }
    var s = 0.0;
    for (var i = 0u; i < p.rows; i++) { s += error_grad(diff(i, e)); }
    dOut[e] -= g * s;
  } else {
    if (e >= p.rows * p.cols) { return; }
    dOut[e] -= g * error_grad(diff(e / p.cols, e % p.cols));
  }
}

// dtgt (the target cosines): one invocation per grid cell; target = cos / 2 + 1/2.
@compute @workgroup_size(GRAD_WG)
fn margin_backward_target(@builtin(global_invocation_id) gid: vec3<u32>) {
  let e = gid.x;
  if (e >= p.rows * p.cols) { return; }
  let g = scalar[0] * p.invCount;
  dOut[e] -= 0.5 * g * error_grad(diff(e / p.cols, e % p.cols));
}
