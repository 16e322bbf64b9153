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

// ---------------------------------------------------------------------------------------------
// Register-blocked kernel: each invocation computes a (4·RG) x (4·CG) block of C, holding it as
// RG x CG 4x4 matrices, and reads A and B straight from storage as vec4 (no workgroup memory,
// no barriers). Per 4-step of k it loads RG + CG 4x4 blocks and does RG·CG 4x4 matrix products:
// with X = op(B)[k..k+3, cols]ᵀ and Y = op(A)[rows, k..k+3]ᵀ, X·Y = (op(A)·op(B))ᵀ for that
// block, whose columns are rows of C, so every accumulator column stores as one vec4.
//
// Why this shape: llvmpipe runs 8 invocations in the lanes of one 256-bit register and loads
// storage per lane in a loop, so loads are the cost and a big block (32x16 on the CPU) amortises
// them; on a GPU a smaller block (8x8 per thread) keeps registers for occupancy and the caches
// serve the re-reads. Consecutive invocations take consecutive column blocks, so on a GPU a warp
// reads one A block (broadcast) and contiguous B.
//
// Preconditions (the launcher checks them, else it uses matmul_naive): K % 4 == 0, N % 4 == 0,
// and M % 4 == 0 when TRANS_A (every operand row that is read as vec4 must hold whole vec4s).
// Ragged M and N are handled by clamping loads to the last row/column block and masking stores.

override RG: u32 = 8;  // row groups of 4 per invocation, 1..8
override CG: u32 = 4;  // column groups of 4 per invocation, 1..4
override WG: u32 = 64; // invocations per workgroup

@group(0) @binding(1) var<storage, read> A4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> B4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> C4: array<vec4<f32>>;

// Y = op(A)[4r..4r+3, 4k4..4k4+3]ᵀ (column i holds row 4r+i of op(A)); r is a row group.
fn load_y(base: u32, r: u32, k4: u32) -> mat4x4<f32> {
  if (TRANS_A) {
    // A is K x M: a vec4 along M holds rows 4r..4r+3 of op(A) at one k.
    let M4 = p.M / 4u;
    let rr = min(r, M4 - 1u);
    let k = 4u * k4;
    return transpose(mat4x4<f32>(
      A4[base + k * M4 + rr], A4[base + (k + 1u) * M4 + rr],
      A4[base + (k + 2u) * M4 + rr], A4[base + (k + 3u) * M4 + rr],
    ));
  }
  let K4 = p.K / 4u;
  let row = 4u * r;
  let last = p.M - 1u;
  return mat4x4<f32>(
    A4[base + min(row, last) * K4 + k4], A4[base + min(row + 1u, last) * K4 + k4],
    A4[base + min(row + 2u, last) * K4 + k4], A4[base + min(row + 3u, last) * K4 + k4],
  );
}

// X = op(B)[4k4..4k4+3, 4c..4c+3]ᵀ (column i holds row 4k4+i of op(B)); c is a column group.
fn load_x(base: u32, k4: u32, c: u32) -> mat4x4<f32> {
  if (TRANS_B) {
    // B is N x K: a vec4 along K holds column n of op(B) at k..k+3.
    let K4 = p.K / 4u;
    let col = 4u * c;
    let last = p.N - 1u;
    return transpose(mat4x4<f32>(
      B4[base + min(col, last) * K4 + k4], B4[base + min(col + 1u, last) * K4 + k4],
      B4[base + min(col + 2u, last) * K4 + k4], B4[base + min(col + 3u, last) * K4 + k4],
    ));
  }
  let N4 = p.N / 4u;
  let cc = min(c, N4 - 1u);
  let k = 4u * k4;
  return mat4x4<f32>(
    B4[base + k * N4 + cc], B4[base + (k + 1u) * N4 + cc],
    B4[base + (k + 2u) * N4 + cc], B4[base + (k + 3u) * N4 + cc],
  );
}

// Writes alpha·acc (+ beta·C) for rows 4r..4r+3, columns 4c..4c+3, skipping what lies outside C.
fn store_block(base: u32, r: u32, c: u32, acc: mat4x4<f32>) {
  let N4 = p.N / 4u;
  if (c >= N4) { return; }
  for (var i = 0u; i < 4u; i++) {
    let row = 4u * r + i;
    if (row < p.M) {
      let ci = base + row * N4 + c;
      var v = p.alpha * acc[i];
      if (p.beta != 0.0) { v += p.beta * C4[ci]; }
      C4[ci] = v;
    }
  }
}

@compute @workgroup_size(WG)
fn matmul_blocked(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  // One linear index over (row block, column block), split over x and y so that large
  // problems stay under the per-dimension workgroup limit; z is the batch.
  let blocksN = (p.N / 4u + CG - 1u) / CG;
  let blocksM = (p.M + 4u * RG - 1u) / (4u * RG);
  let linear = (wid.y * nwg.x + wid.x) * WG + lid;
  if (linear >= blocksM * blocksN) { return; }
  let cg = (linear % blocksN) * CG;
  let rg = (linear / blocksN) * RG;
  let b = wid.z;
  let baseA = b * (p.strideA / 4u);
  let baseB = b * (p.strideB / 4u);
  let baseC = b * (p.strideC / 4u);
  let K4 = p.K / 4u;
  var c00 = mat4x4<f32>(); var c01 = mat4x4<f32>(); var c02 = mat4x4<f32>(); var c03 = mat4x4<f32>();
  var c10 = mat4x4<f32>(); var c11 = mat4x4<f32>(); var c12 = mat4x4<f32>(); var c13 = mat4x4<f32>();
  var c20 = mat4x4<f32>(); var c21 = mat4x4<f32>(); var c22 = mat4x4<f32>(); var c23 = mat4x4<f32>();
  var c30 = mat4x4<f32>(); var c31 = mat4x4<f32>(); var c32 = mat4x4<f32>(); var c33 = mat4x4<f32>();
  var c40 = mat4x4<f32>(); var c41 = mat4x4<f32>(); var c42 = mat4x4<f32>(); var c43 = mat4x4<f32>();
  var c50 = mat4x4<f32>(); var c51 = mat4x4<f32>(); var c52 = mat4x4<f32>(); var c53 = mat4x4<f32>();
  var c60 = mat4x4<f32>(); var c61 = mat4x4<f32>(); var c62 = mat4x4<f32>(); var c63 = mat4x4<f32>();
  var c70 = mat4x4<f32>(); var c71 = mat4x4<f32>(); var c72 = mat4x4<f32>(); var c73 = mat4x4<f32>();
  for (var k4 = 0u; k4 < K4; k4++) {
    let x0 = load_x(baseB, k4, cg);
    var x1 = mat4x4<f32>();
    var x2 = mat4x4<f32>();
    var x3 = mat4x4<f32>();
    if (CG > 1u) { x1 = load_x(baseB, k4, cg + 1u); }
    if (CG > 2u) { x2 = load_x(baseB, k4, cg + 2u); }
    if (CG > 3u) { x3 = load_x(baseB, k4, cg + 3u); }
    {
      let y = load_y(baseA, rg + 0u, k4);
      c00 += x0 * y; if (CG > 1u) { c01 += x1 * y; } if (CG > 2u) { c02 += x2 * y; } if (CG > 3u) { c03 += x3 * y; }
    }
    if (RG > 1u) {
      let y = load_y(baseA, rg + 1u, k4);
      c10 += x0 * y; if (CG > 1u) { c11 += x1 * y; } if (CG > 2u) { c12 += x2 * y; } if (CG > 3u) { c13 += x3 * y; }
    }
    if (RG > 2u) {
      let y = load_y(baseA, rg + 2u, k4);
      c20 += x0 * y; if (CG > 1u) { c21 += x1 * y; } if (CG > 2u) { c22 += x2 * y; } if (CG > 3u) { c23 += x3 * y; }
    }
    if (RG > 3u) {
      let y = load_y(baseA, rg + 3u, k4);
      c30 += x0 * y; if (CG > 1u) { c31 += x1 * y; } if (CG > 2u) { c32 += x2 * y; } if (CG > 3u) { c33 += x3 * y; }
    }
    if (RG > 4u) {
      let y = load_y(baseA, rg + 4u, k4);
      c40 += x0 * y; if (CG > 1u) { c41 += x1 * y; } if (CG > 2u) { c42 += x2 * y; } if (CG > 3u) { c43 += x3 * y; }
    }
    if (RG > 5u) {
      let y = load_y(baseA, rg + 5u, k4);
      c50 += x0 * y; if (CG > 1u) { c51 += x1 * y; } if (CG > 2u) { c52 += x2 * y; } if (CG > 3u) { c53 += x3 * y; }
    }
    if (RG > 6u) {
      let y = load_y(baseA, rg + 6u, k4);
      c60 += x0 * y; if (CG > 1u) { c61 += x1 * y; } if (CG > 2u) { c62 += x2 * y; } if (CG > 3u) { c63 += x3 * y; }
    }
    if (RG > 7u) {
      let y = load_y(baseA, rg + 7u, k4);
      c70 += x0 * y; if (CG > 1u) { c71 += x1 * y; } if (CG > 2u) { c72 += x2 * y; } if (CG > 3u) { c73 += x3 * y; }
    }
  }
  {
    store_block(baseC, rg + 0u, cg + 0u, c00); if (CG > 1u) { store_block(baseC, rg + 0u, cg + 1u, c01); } if (CG > 2u) { store_block(baseC, rg + 0u, cg + 2u, c02); } if (CG > 3u) { store_block(baseC, rg + 0u, cg + 3u, c03); }
  }
  if (RG > 1u) {
    store_block(baseC, rg + 1u, cg + 0u, c10); if (CG > 1u) { store_block(baseC, rg + 1u, cg + 1u, c11); } if (CG > 2u) { store_block(baseC, rg + 1u, cg + 2u, c12); } if (CG > 3u) { store_block(baseC, rg + 1u, cg + 3u, c13); }
  }
  if (RG > 2u) {
    store_block(baseC, rg + 2u, cg + 0u, c20); if (CG > 1u) { store_block(baseC, rg + 2u, cg + 1u, c21); } if (CG > 2u) { store_block(baseC, rg + 2u, cg + 2u, c22); } if (CG > 3u) { store_block(baseC, rg + 2u, cg + 3u, c23); }
  }
  if (RG > 3u) {
    store_block(baseC, rg + 3u, cg + 0u, c30); if (CG > 1u) { store_block(baseC, rg + 3u, cg + 1u, c31); } if (CG > 2u) { store_block(baseC, rg + 3u, cg + 2u, c32); } if (CG > 3u) { store_block(baseC, rg + 3u, cg + 3u, c33); }
  }
  if (RG > 4u) {
    store_block(baseC, rg + 4u, cg + 0u, c40); if (CG > 1u) { store_block(baseC, rg + 4u, cg + 1u, c41); } if (CG > 2u) { store_block(baseC, rg + 4u, cg + 2u, c42); } if (CG > 3u) { store_block(baseC, rg + 4u, cg + 3u, c43); }
  }
  if (RG > 5u) {
    store_block(baseC, rg + 5u, cg + 0u, c50); if (CG > 1u) { store_block(baseC, rg + 5u, cg + 1u, c51); } if (CG > 2u) { store_block(baseC, rg + 5u, cg + 2u, c52); } if (CG > 3u) { store_block(baseC, rg + 5u, cg + 3u, c53); }
  }
  if (RG > 6u) {
    store_block(baseC, rg + 6u, cg + 0u, c60); if (CG > 1u) { store_block(baseC, rg + 6u, cg + 1u, c61); } if (CG > 2u) { store_block(baseC, rg + 6u, cg + 2u, c62); } if (CG > 3u) { store_block(baseC, rg + 6u, cg + 3u, c63); }
  }
  if (RG > 7u) {
    store_block(baseC, rg + 7u, cg + 0u, c70); if (CG > 1u) { store_block(baseC, rg + 7u, cg + 1u, c71); } if (CG > 2u) { store_block(baseC, rg + 7u, cg + 2u, c72); } if (CG > 3u) { store_block(baseC, rg + 7u, cg + 3u, c73); }
  }
}
