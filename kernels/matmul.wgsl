// Matrix multiply, batched: C[b] = alpha * op(A[b]) · op(B[b]) + beta * C[b].
// Dimensions: op(A) is M x K, op(B) is K x N, C is M x N, all row-major.
// TRANS_A: A is stored K x M; TRANS_B: B is stored N x K. These are the variants the backward
// pass needs: for C = A·B, dA = dC·Bᵀ (TRANS_B) and dB = Aᵀ·dC (TRANS_A), accumulated (beta 1).
// A batch stride of 0 broadcasts that operand across the batch.

struct Params {
  M: u32, N: u32, K: u32, batch: u32,
  strideA: u32, strideB: u32, strideC: u32,
  alpha: f32, beta: f32,
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

fn a_at(base: u32, row: u32, k: u32) -> f32 {
  if (TRANS_A) { return A[base + k * p.M + row]; }
  return A[base + row * p.K + k];
}

fn b_at(base: u32, k: u32, col: u32) -> f32 {
  if (TRANS_B) { return B[base + col * p.K + k]; }
  return B[base + k * p.N + col];
}

// One output per invocation; the straightforward reference kernel.
@compute @workgroup_size(8, 8, 1)
fn matmul_naive(@builtin(global_invocation_id) gid: vec3<u32>) {
  let col = gid.x;
  let row = gid.y;
  let b = gid.z;
  if (row >= p.M || col >= p.N || b >= p.batch) { return; }
  let baseA = b * p.strideA;
  let baseB = b * p.strideB;
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) {
    acc = fma(a_at(baseA, row, k), b_at(baseB, k, col), acc);
  }
  let ci = b * p.strideC + row * p.N + col;
  var prior = 0.0;
  if (p.beta != 0.0) { prior = p.beta * C[ci]; }
  C[ci] = p.alpha * acc + prior;
}
