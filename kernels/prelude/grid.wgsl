// Recovering an item's index from a launch laid out by grid1d (src/gpu/kernels.ts), which folds
// a 1-D launch into a second grid dimension when one would exceed the device's limit of
// workgroups per dimension. Included with
//   //! include "prelude/grid.wgsl"
// by a file that declares `override WG: u32;` (its invocations per workgroup). The folded grid
// may overshoot: a kernel skips indices at or past its item count.

// One invocation per item (grid1d(gpu, n, WG)): i = gid.x + gid.y * nwg.x * WG.
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// One workgroup per item (grid1d(gpu, n)): r = wid.x + wid.y * nwg.x.
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.x + wid.y * nwg.x;
}
