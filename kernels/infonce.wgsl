// In-batch InfoNCE / multiple-negatives ranking loss over precomputed cosines, forward and
// backward. Row i's logits are scale · [cos(q_i, p_j) for all j, cos(q_i, n_j) for all j] (the
// hard negatives join the candidates when hasNeg); the label of row i is i;
//   loss = mean_i (lse_i - scale · sp[i, i]),  lse_i = log Σ_c exp(logit[i, c]).
//
// Dimensions: sp = cos(Q, P) and sn = cos(Q, N) are B x B; lse is [B], saved by forward.
// Backward, with softmax s[i, c] = exp(logit[i, c] - lse_i) and G = dLoss · scale / B:
//   dsp[i, j] += G (s[i, j] - [i == j]),  dsn[i, j] += G s[i, B + j].
//
// Bindings (each entry point uses a prefix): infonce_forward 1..4 (scalar = the loss, written);
// infonce_backward 1..5 (scalar = dLoss, read; dOut = dsp or dsn, accumulated). Without hard
// negatives any read-only buffer may be bound as sn: it is not read.

struct Params {
  batch: u32,
  hasNeg: u32,
  // backward: 0 accumulates into dsp, 1 into dsn
  mode: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> sp: array<f32>;
@group(0) @binding(2) var<storage, read> sn: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> scalar: array<f32>;
@group(0) @binding(5) var<storage, read_write> dOut: array<f32>;

// Invocations of the forward's single workgroup (its tree reduction), and per workgroup of the
// backward entry points (src/losses/common.ts LOSS_KERNEL_CONSTANTS).
override WG: u32;
override GRAD_WG: u32;

//! include "prelude/reduce.wgsl"

// A single workgroup; each invocation takes whole rows (a max pass, then a sum pass), then a tree
// reduction of the per-row losses.
@compute @workgroup_size(WG)
fn infonce_forward(@builtin(local_invocation_index) lid: u32) {
  let b = p.batch;
  var s = 0.0;
  for (var i = lid; i < b; i += WG) {
    var m = -3.4e38;
    for (var j = 0u; j < b; j++) {
      m = max(m, p.scale * sp[i * b + j]);
      if (p.hasNeg == 1u) { m = max(m, p.scale * sn[i * b + j]); }
    }
    var z = 0.0;
    for (var j = 0u; j < b; j++) {
      z += exp(p.scale * sp[i * b + j] - m);
      if (p.hasNeg == 1u) { z += exp(p.scale * sn[i * b + j] - m); }
    }
    let l = m + log(z);
    lse[i] = l;
    s += l - p.scale * sp[i * b + i];
  }
  let total = workgroup_sum(lid, s);
  if (lid == 0u) { scalar[0] = total / f32(b); }
}

// One invocation per (i, j) of the B x B matrix being differentiated.
@compute @workgroup_size(GRAD_WG)
fn infonce_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
  let e = gid.x;
  let b = p.batch;
  if (e >= b * b) { return; }
  let i = e / b;
  let j = e % b;
  let g = scalar[0] * p.scale / f32(b);
  if (p.mode == 0u) {
    var s = exp(p.scale * sp[e] - lse[i]);
    if (i == j) { s -= 1.0; }
    dOut[e] += g * s;
  } else {
    dOut[e] += g * exp(p.scale * sn[e] - lse[i]);
  }
}
