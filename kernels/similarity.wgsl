// Cosine similarity: the matrix C[i, j] = cos(x_i, y_j) and the row-wise vector c[i] = cos(x_i, y_i),
// with cos(x, y) = x·y / (max(||x||, eps) · max(||y||, eps)), and their backward.
//
// Dimensions: X is rowsX x dim, Y is rowsY x dim (row-major); C is rowsX x rowsY (matrix) or rowsX
// (rows, rowsX == rowsY). normX, normY hold the raw norms ||x_i||, ||y_j||, written by cos_norms in
// forward and read by backward.
//
// Backward, with nx = max(||x||, eps), ny = max(||y||, eps) and C = x·y / (nx·ny):
//   dC/dx_k = y_k / (nx·ny) - C · x_k / nx²   (the second term only when ||x|| > eps; a clamped
//                                               norm is a constant)
// so for the matrix, dX[i, k] += (Σ_j dC[i, j]·y_j[k]/ny_j) / nx_i - (Σ_j dC[i, j]·C[i, j])·x_i[k]/nx_i²
// and symmetrically for dY (mode 1). Gradients are accumulated (+=).
//
// Every entry point uses a prefix of the bindings below, so one declaration serves all of them:
// cos_norms 1..4, cos_matrix_forward / cos_rows_forward 1..5, the backward entry points 1..7.

struct Params {
  rowsX: u32,
  rowsY: u32,
  dim: u32,
  // backward: 0 writes dX into dOut, 1 writes dY
  mode: u32,
  eps: f32,
}

// Invocations per workgroup of the 1-D entry points (x only), and the side of the square
// workgroups of cos_matrix_forward (src/ops/similarity.ts).
override WG: u32;
override TILE: u32;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Y: array<f32>;
@group(0) @binding(3) var<storage, read_write> normX: array<f32>;
@group(0) @binding(4) var<storage, read_write> normY: array<f32>;
@group(0) @binding(5) var<storage, read_write> C: array<f32>;
@group(0) @binding(6) var<storage, read> dC: array<f32>;
@group(0) @binding(7) var<storage, read_write> dOut: array<f32>;

// One invocation per row of X, then of Y: the raw L2 norms.
@compute @workgroup_size(WG)
fn cos_norms(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x;
  if (r < p.rowsX) {
    var s = 0.0;
    for (var k = 0u; k < p.dim; k++) {
      let v = X[r * p.dim + k];
      s = fma(v, v, s);
    }
    normX[r] = sqrt(s);
  } else if (r < p.rowsX + p.rowsY) {
    let j = r - p.rowsX;
    var s = 0.0;
    for (var k = 0u; k < p.dim; k++) {
      let v = Y[j * p.dim + k];
      s = fma(v, v, s);
    }
    normY[j] = sqrt(s);
  }
}

fn dot_rows(i: u32, j: u32) -> f32 {
  var s = 0.0;
  for (var k = 0u; k < p.dim; k++) {
    s = fma(X[i * p.dim + k], Y[j * p.dim + k], s);
  }
  return s;
}

fn clamped(n: f32) -> f32 {
  return max(n, p.eps);
}

// One invocation per (i, j): C[i, j] = cos(x_i, y_j).
@compute @workgroup_size(TILE, TILE, 1)
fn cos_matrix_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  let i = gid.y;
  if (i >= p.rowsX || j >= p.rowsY) { return; }
  C[i * p.rowsY + j] = dot_rows(i, j) / (clamped(normX[i]) * clamped(normY[j]));
}

// One invocation per row i: c[i] = cos(x_i, y_i).
@compute @workgroup_size(WG)
fn cos_rows_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= p.rowsX) { return; }
  C[i] = dot_rows(i, i) / (clamped(normX[i]) * clamped(normY[i]));
}

// One invocation per (row, k) of the operand being differentiated (X in mode 0, Y in mode 1).
@compute @workgroup_size(WG, 1, 1)
fn cos_matrix_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
  let k = gid.x;
  let r = gid.y;
  if (k >= p.dim) { return; }
  var g = 0.0; // Σ dC · (other row, normalised)[k]
  var s = 0.0; // Σ dC · C
  var own = 0.0; // the raw norm of the differentiated row
  var v = 0.0; // its element k
  if (p.mode == 0u) {
    if (r >= p.rowsX) { return; }
    for (var j = 0u; j < p.rowsY; j++) {
      let e = r * p.rowsY + j;
      g = fma(dC[e], Y[j * p.dim + k] / clamped(normY[j]), g);
      s = fma(dC[e], C[e], s);
    }
    own = normX[r];
    v = X[r * p.dim + k];
  } else {
    if (r >= p.rowsY) { return; }
    for (var i = 0u; i < p.rowsX; i++) {
      let e = i * p.rowsY + r;
      g = fma(dC[e], X[i * p.dim + k] / clamped(normX[i]), g);
      s = fma(dC[e], C[e], s);
    }
    own = normY[r];
    v = Y[r * p.dim + k];
  }
  let n = clamped(own);
  var grad = g / n;
  if (own > p.eps) { grad -= s * v / (n * n); }
  dOut[r * p.dim + k] += grad;
}

// One invocation per (i, k): the row-wise cosine's gradient w.r.t. X (mode 0) or Y (mode 1).
@compute @workgroup_size(WG, 1, 1)
fn cos_rows_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
  let k = gid.x;
  let i = gid.y;
  if (k >= p.dim || i >= p.rowsX) { return; }
  let e = i * p.dim + k;
  var own = normX[i];
  var other = normY[i];
  var v = X[e];
  var w = Y[e];
  if (p.mode == 1u) {
    own = normY[i];
    other = normX[i];
    v = Y[e];
    w = X[e];
  }
  let n = clamped(own);
  var grad = w / (n * clamped(other));
  if (own > p.eps) { grad -= C[i] * v / (n * n); }
  dOut[e] += dC[i] * grad;
}
