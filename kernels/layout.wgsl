// Layout ops: moving data without arithmetic.
// - swap12: y[a, c, b, d] = x[a, b, c, d] (x: [A, B, C, D] -> y: [A, C, B, D]); attention uses it
//   to split heads, [batch, seq, heads, dim] -> [batch, heads, seq, dim], and to merge them back.
//   Its backward is the same swap applied to dy (with B and C exchanged), accumulated into dx.
// - take_row: y[a, :] = x[a, r, :] (x: [A, R, D] -> y: [A, D]), e.g. the CLS token; backward
//   adds dy[a, :] into dx[a, r, :].
// One invocation per element of y on a flat index, folded into two grid dimensions by the host
// (src/gpu/kernels.ts grid1d). Backward kernels ACCUMULATE (+=).

struct Params {
  A: u32, B: u32, C: u32, D: u32,
}

override WG: u32; // invocations per workgroup (src/ops/layout.ts)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

//! include "prelude/grid.wgsl"

// src is [A, B, C, D]; dst is [A, C, B, D]: dst = src swapped (forward), or dst += src swapped
// with ACCUMULATE (backward: src is dy [A, C, B, D], given with B and C exchanged).
override ACCUMULATE: bool = false;

@compute @workgroup_size(WG)
fn swap12(@builtin(global_invocation_id) gid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.A * p.B * p.C * p.D) { return; }
  // i indexes dst [A, C, B, D]
  let d = i % p.D;
  let b = (i / p.D) % p.B;
  let c = (i / (p.D * p.B)) % p.C;
  let a = i / (p.D * p.B * p.C);
  let v = src[((a * p.B + b) * p.C + c) * p.D + d];
  if (ACCUMULATE) { dst[i] += v; } else { dst[i] = v; }
}

// src is [A, R, D] (R in p.B, the row r in p.C); dst is [A, D].
@compute @workgroup_size(WG)
fn take_row_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.A * p.D) { return; }
  let a = i / p.D;
  let d = i % p.D;
  dst[i] = src[(a * p.B + p.C) * p.D + d];
}

// src is dy [A, D]; dst is dx [A, R, D]: dx[a, r, :] += dy[a, :].
@compute @workgroup_size(WG)
fn take_row_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.A * p.D) { return; }
  let a = i / p.D;
  let d = i % p.D;
  dst[(a * p.B + p.C) * p.D + d] += src[i];
}
