// Matrix multiply, batched: C[b] = alpha * op(A[b]) · op(B[b]) + beta * C[b].
// Dimensions: op(A) is M x K, op(B) is K x N, C is M x N, all row-major.
// TRANS_A: A is stored K x M; TRANS_B: B is stored N x K. These are the variants the backward
// pass needs: for C = A·B, dA = dC·Bᵀ (TRANS_B) and dB = Aᵀ·dC (TRANS_A), accumulated (beta 1).
// A batch stride of 0 broadcasts that operand across the batch.

struct Params {
  M: u32, N: u32, K: u32, batch: u32,
  strideA: u32, strideB: u32, strideC: u32,
  alpha: f32, beta: f32,
  // matmul_blocked only: the k range [4·k4Begin, min(4·k4End, K)) this launch sums (the launcher
  // splits long K into launches, keeping each invocation's loop far below llvmpipe's 65535 cap).
  k4Begin: u32, k4End: u32,
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

// One output per invocation, in square workgroups of TILE x TILE (src/ops/matmul.ts); the
// straightforward reference kernel.
override TILE: u32;

@compute @workgroup_size(TILE, TILE, 1)
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
// RG x CG 4x4 matrices, and reads A and B straight from storage (no workgroup memory, no
// barriers). Per 4-step of k it loads RG + CG 4x4 blocks and does RG·CG 4x4 matrix products:
// with X = op(B)[k..k+3, cols]ᵀ and Y = op(A)[rows, k..k+3]ᵀ, X·Y = (op(A)·op(B))ᵀ for that
// block, whose columns are rows of C.
//
// Why this shape: llvmpipe runs 8 invocations in the lanes of one 256-bit register and loads
// storage per lane in a loop (~5 cycles per lane and component, against ~0.3 for an fma), so
// loads are the cost and a big block (32x16 on the CPU) amortises them; on a GPU a smaller block
// (8x8 per thread) keeps registers for occupancy and the caches serve the re-reads. Consecutive
// invocations take consecutive column blocks, so on a GPU a warp reads one A block (broadcast)
// and contiguous B.
//
// Any shape runs here. Each operand is read as vec4 where its rows allow it (VEC_A, VEC_B: the
// stored rows hold whole vec4s, e.g. K % 4 == 0 for A·), else as scalars; KTAIL (K % 4 != 0)
// zeroes the k indices past K in the last 4-step; rows and columns past M and N are clamped on
// load and skipped on store. A and B are bound twice (read-only): as vec4 arrays (bindings 1, 2)
// and as scalar arrays (bindings 4, 5). C is written as scalars (the stores are O(M·N) of the
// O(M·N·K) work). Bases and strides are in floats.

// The block shape, from src/ops/matmul.ts matmulBlocking:
override RG: u32; // row groups of 4 per invocation, 1..8
override CG: u32; // column groups of 4 per invocation, 1..4
override WG: u32; // invocations per workgroup
override VEC_A: bool = true; // A's stored rows hold whole vec4s: TRANS_A ? M % 4 == 0 : K % 4 == 0
override VEC_B: bool = true; // B's stored rows hold whole vec4s: TRANS_B ? K % 4 == 0 : N % 4 == 0
override KTAIL: bool = false; // K % 4 != 0

@group(0) @binding(1) var<storage, read> A4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> B4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> As: array<f32>;
@group(0) @binding(5) var<storage, read> Bs: array<f32>;
// A bias added to every row of C in the first launch (k4Begin == 0): C = alpha·op(A)·op(B) +
// beta·C + bias[col]. HAS_BIAS false binds a one-element placeholder that is never read.
override HAS_BIAS: bool = false;
@group(0) @binding(6) var<storage, read> bias: array<f32>;

// Zeroes v where k is past K (only compiled in when K % 4 != 0).
fn k_mask(v: vec4<f32>, k: u32) -> vec4<f32> {
  if (KTAIL) { return select(vec4<f32>(0.0), v, k < p.K); }
  return v;
}

// op(A)[row, k..k+3] as scalars: row clamped to M - 1, k indices past K read as zero.
fn a_row4(base: u32, row: u32, k: u32) -> vec4<f32> {
  let r = min(row, p.M - 1u);
  let last = p.K - 1u;
  let k0 = min(k, last); let k1 = min(k + 1u, last); let k2 = min(k + 2u, last); let k3 = min(k + 3u, last);
  var v: vec4<f32>;
  if (TRANS_A) {
    v = vec4<f32>(As[base + k0 * p.M + r], As[base + k1 * p.M + r], As[base + k2 * p.M + r], As[base + k3 * p.M + r]);
  } else {
    let o = base + r * p.K;
    v = vec4<f32>(As[o + k0], As[o + k1], As[o + k2], As[o + k3]);
  }
  if (KTAIL) {
    v = select(vec4<f32>(0.0), v, vec4<u32>(k, k + 1u, k + 2u, k + 3u) < vec4<u32>(p.K));
  }
  return v;
}

// op(B)[k, col..col+3] as scalars: k past K reads as zero, columns clamped to N - 1.
fn b_col4(base: u32, k: u32, col: u32) -> vec4<f32> {
  let kk = min(k, p.K - 1u);
  let last = p.N - 1u;
  let c0 = min(col, last); let c1 = min(col + 1u, last); let c2 = min(col + 2u, last); let c3 = min(col + 3u, last);
  var v: vec4<f32>;
  if (TRANS_B) {
    v = vec4<f32>(Bs[base + c0 * p.K + kk], Bs[base + c1 * p.K + kk], Bs[base + c2 * p.K + kk], Bs[base + c3 * p.K + kk]);
  } else {
    let o = base + kk * p.N;
    v = vec4<f32>(Bs[o + c0], Bs[o + c1], Bs[o + c2], Bs[o + c3]);
  }
  return k_mask(v, k);
}

// Y = op(A)[4r..4r+3, 4k4..4k4+3]ᵀ (column i holds row 4r+i of op(A)); r is a row group.
fn load_y(base: u32, r: u32, k4: u32) -> mat4x4<f32> {
  let k = 4u * k4;
  if (!VEC_A) {
    let row = 4u * r;
    return mat4x4<f32>(
      a_row4(base, row, k), a_row4(base, row + 1u, k), a_row4(base, row + 2u, k), a_row4(base, row + 3u, k),
    );
  }
  let b4 = base / 4u;
  if (TRANS_A) {
    // A is K x M: a vec4 along M holds rows 4r..4r+3 of op(A) at one k.
    let M4 = p.M / 4u;
    let rr = min(r, M4 - 1u);
    let last = p.K - 1u;
    return transpose(mat4x4<f32>(
      k_mask(A4[b4 + min(k, last) * M4 + rr], k),
      k_mask(A4[b4 + min(k + 1u, last) * M4 + rr], k + 1u),
      k_mask(A4[b4 + min(k + 2u, last) * M4 + rr], k + 2u),
      k_mask(A4[b4 + min(k + 3u, last) * M4 + rr], k + 3u),
    ));
  }
  // A is M x K with K % 4 == 0 (no tail).
  let K4 = p.K / 4u;
  let row = 4u * r;
  let last = p.M - 1u;
  return mat4x4<f32>(
    A4[b4 + min(row, last) * K4 + k4], A4[b4 + min(row + 1u, last) * K4 + k4],
    A4[b4 + min(row + 2u, last) * K4 + k4], A4[b4 + min(row + 3u, last) * K4 + k4],
  );
}

// X = op(B)[4k4..4k4+3, 4c..4c+3]ᵀ (column i holds row 4k4+i of op(B)); c is a column group.
fn load_x(base: u32, k4: u32, c: u32) -> mat4x4<f32> {
  let k = 4u * k4;
  if (!VEC_B) {
    let col = 4u * c;
    return mat4x4<f32>(
      b_col4(base, k, col), b_col4(base, k + 1u, col), b_col4(base, k + 2u, col), b_col4(base, k + 3u, col),
    );
  }
  let b4 = base / 4u;
  if (TRANS_B) {
    // B is N x K with K % 4 == 0 (no tail): a vec4 along K holds column n of op(B) at k..k+3.
    let K4 = p.K / 4u;
    let col = 4u * c;
    let last = p.N - 1u;
    return transpose(mat4x4<f32>(
      B4[b4 + min(col, last) * K4 + k4], B4[b4 + min(col + 1u, last) * K4 + k4],
      B4[b4 + min(col + 2u, last) * K4 + k4], B4[b4 + min(col + 3u, last) * K4 + k4],
    ));
  }
  // B is K x N with N % 4 == 0.
  let N4 = p.N / 4u;
  let cc = min(c, N4 - 1u);
  let last = p.K - 1u;
  return mat4x4<f32>(
    k_mask(B4[b4 + min(k, last) * N4 + cc], k),
    k_mask(B4[b4 + min(k + 1u, last) * N4 + cc], k + 1u),
    k_mask(B4[b4 + min(k + 2u, last) * N4 + cc], k + 2u),
    k_mask(B4[b4 + min(k + 3u, last) * N4 + cc], k + 3u),
  );
}

// C[ci] = alpha·v + beta·C[ci] (+ bias[col] in the first launch).
fn store1(ci: u32, v: f32, col: u32) {
  var out = p.alpha * v;
  if (p.beta != 0.0) { out += p.beta * C[ci]; }
  if (HAS_BIAS && p.k4Begin == 0u) { out += bias[col]; }
  C[ci] = out;
}

// Writes alpha·acc (+ beta·C) for rows 4r..4r+3, columns 4c..4c+3, skipping what lies outside C.
fn store_block(base: u32, r: u32, c: u32, acc: mat4x4<f32>) {
  let col = 4u * c;
  if (col >= p.N) { return; }
  for (var i = 0u; i < 4u; i++) {
    let row = 4u * r + i;
    if (row < p.M) {
      let ci = base + row * p.N + col;
      let v = acc[i];
      store1(ci, v.x, col);
      if (col + 1u < p.N) { store1(ci + 1u, v.y, col + 1u); }
      if (col + 2u < p.N) { store1(ci + 2u, v.z, col + 2u); }
      if (col + 3u < p.N) { store1(ci + 3u, v.w, col + 3u); }
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
  let blocksN = ((p.N + 3u) / 4u + CG - 1u) / CG;
  let blocksM = (p.M + 4u * RG - 1u) / (4u * RG);
  let linear = (wid.y * nwg.x + wid.x) * WG + lid;
  if (linear >= blocksM * blocksN) { return; }
  let cg = (linear % blocksN) * CG;
  let rg = (linear / blocksN) * RG;
  let b = wid.z;
  let baseA = b * p.strideA;
  let baseB = b * p.strideB;
  let baseC = b * p.strideC;
  var c00 = mat4x4<f32>(); var c01 = mat4x4<f32>(); var c02 = mat4x4<f32>(); var c03 = mat4x4<f32>();
  var c10 = mat4x4<f32>(); var c11 = mat4x4<f32>(); var c12 = mat4x4<f32>(); var c13 = mat4x4<f32>();
  var c20 = mat4x4<f32>(); var c21 = mat4x4<f32>(); var c22 = mat4x4<f32>(); var c23 = mat4x4<f32>();
  var c30 = mat4x4<f32>(); var c31 = mat4x4<f32>(); var c32 = mat4x4<f32>(); var c33 = mat4x4<f32>();
  var c40 = mat4x4<f32>(); var c41 = mat4x4<f32>(); var c42 = mat4x4<f32>(); var c43 = mat4x4<f32>();
  var c50 = mat4x4<f32>(); var c51 = mat4x4<f32>(); var c52 = mat4x4<f32>(); var c53 = mat4x4<f32>();
  var c60 = mat4x4<f32>(); var c61 = mat4x4<f32>(); var c62 = mat4x4<f32>(); var c63 = mat4x4<f32>();
  var c70 = mat4x4<f32>(); var c71 = mat4x4<f32>(); var c72 = mat4x4<f32>(); var c73 = mat4x4<f32>();
  for (var k4 = p.k4Begin; k4 < p.k4End; k4++) {
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
