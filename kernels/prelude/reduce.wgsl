// Workgroup tree reductions, shared by the kernels that include this file with
//   //! include "prelude/reduce.wgsl"
// (spliced in by the loader, src/gpu/kernels.ts; compile errors name this file's own lines).
// The including file declares `override WG: u32;`, the invocations per workgroup (a power of
// two, set from the launcher's TypeScript constant). Call from uniform control flow with
// lid = @builtin(local_invocation_index); every invocation gets the result. Each function frees
// its scratch array (a final barrier) before returning, so reductions may follow each other.
// Summation order: pairs (lid, lid + s) for s = WG/2, WG/4, ..., 1, the same on every run.

var<workgroup> red: array<f32, WG>;
var<workgroup> red2: array<vec2<f32>, WG>;

// Sum of v over the workgroup.
fn workgroup_sum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier(); // red is free for the next reduction
  return total;
}

// Maximum of v over the workgroup.
fn workgroup_max(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let m = red[0];
  workgroupBarrier();
  return m;
}

// Sum of two values at once (componentwise, the same order as workgroup_sum).
fn workgroup_sum2(lid: u32, v: vec2<f32>) -> vec2<f32> {
  red2[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red2[lid] += red2[lid + s]; }
    workgroupBarrier();
  }
  let total = red2[0];
  workgroupBarrier();
  return total;
}
