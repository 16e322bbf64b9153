// Elementwise ops and the accumulations their backward passes need.
// Dimension legend: n elements in flat row-major order; bias add views x as rows x cols, with
// the bias holding cols elements. Every kernel runs one invocation per element (or per column
// for the bias gradient) on a flat index that the host may fold into two grid dimensions
// (src/gpu/kernels.ts grid1d): i = flat_index(gid, nwg).
// Backward kernels ACCUMULATE (+=) into their gradient buffers.

struct Params {
  n: u32,      // invocations that do work (elements, or chunks x cols for column_sum_partial)
  cols: u32,   // bias length (bias and column-sum kernels only)
  alpha: f32,  // scale factor (scale, axpy)
  rows: u32,   // rows (column-sum kernels only)
}

override WG: u32; // invocations per workgroup (src/ops/elementwise.ts)

//! include "prelude/grid.wgsl"

@group(0) @binding(0) var<uniform> p: Params;
// Bindings are declared once per slot and shared by the entry points below; each entry point
// uses a subset (layout "auto" keeps only what it touches).
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(2) var<storage, read> in2: array<f32>;
@group(0) @binding(2) var<storage, read_write> out2: array<f32>;
@group(0) @binding(3) var<storage, read_write> out3: array<f32>;

// y = a + b (same shape). Backward: da += dy, db += dy (axpy with alpha 1).
@compute @workgroup_size(WG)
fn add_forward(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  out3[i] = in1[i] + in2[i];
}

// y = a * b (same shape). Backward: da += dy * b, db += dy * a (mul_accumulate).
@compute @workgroup_size(WG)
fn mul_forward(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  out3[i] = in1[i] * in2[i];
}

// y[r, c] = x[r, c] + b[c]. Backward: dx += dy (axpy), db[c] += sum_r dy[r, c]
// (column_sum_partial, then column_sum_accumulate).
@compute @workgroup_size(WG)
fn bias_add_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  out3[i] = in1[i] + in2[i % p.cols];
}

// y = alpha * x. Backward: dx += alpha * dy (axpy).
@compute @workgroup_size(WG)
fn scale_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  out2[i] = p.alpha * in1[i];
}

// d += alpha * g: the backward of add, scale and the x-part of bias add.
@compute @workgroup_size(WG)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  out2[i] += p.alpha * in1[i];
}

// d += g * other: the backward of mul, once per operand.
@compute @workgroup_size(WG)
fn mul_accumulate(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  out3[i] += in1[i] * in2[i];
}

// Column sums for db[c] += Σ_r g[r, c], in two passes and without atomics:
// column_sum_partial writes part[k, c] = Σ of g over rows [k·CHUNK, (k+1)·CHUNK), one invocation
// per (k, c) (flat i = k·cols + c, so neighbouring invocations read neighbouring addresses);
// column_sum_accumulate then adds Σ_k part[k, c] into db[c], one invocation per column.
// Besides giving a GPU rows/CHUNK times more parallelism than one walk down each column, this
// keeps every loop under 65535 iterations: llvmpipe silently stops any shader loop after 65535
// iterations (per invocation, nested loops included), so long loops must be split across
// invocations. The host thus accepts up to 65535·CHUNK rows.
override CHUNK: u32; // rows per partial sum (src/ops/elementwise.ts)

@compute @workgroup_size(WG)
fn column_sum_partial(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  let k = i / p.cols;
  let c = i % p.cols;
  let r1 = min((k + 1u) * CHUNK, p.rows);
  var acc = 0.0;
  for (var r = k * CHUNK; r < r1; r++) {
    acc += in1[r * p.cols + c];
  }
  out2[i] = acc;
}

@compute @workgroup_size(WG)
fn column_sum_accumulate(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = flat_index(gid, nwg);
  if (c >= p.cols) { return; }
  var acc = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    acc += in1[r * p.cols + c];
  }
  out2[c] += acc;
}
