// Top-k selection per row of a score matrix: radix selection (topk_radix) or bitonic sorting of
// tiles (topk_select) as the first pass, bitonic merging of sorted runs (topk_merge) after it.
//
// Dimensions: R rows (queries); each row has `len` valid entries stored with stride `in_stride`.
// One workgroup sorts one tile of T entries (T a power of two) of one row and writes the best
// `k` of it (k a power of two, k <= T) to the output row at `out_offset + tile * k`. Repeating
// the pass over its own output (runs of k already sorted) reduces a row to its top k in
// log_{T/k}(len / k) passes; the launcher in src/ops/topk.ts plans them.
//
// Order: score descending, ties by lower index first (a strict total order, so the result is
// deterministic and equals a CPU sort on (score desc, index asc)). NaN ranks as -inf. Positions
// past `len` are padding: score -inf with index 0xffffffff, after every real entry (a real -inf
// score has a smaller index). Every loop here runs at most T / WG times per stage, far below
// llvmpipe's 65535-iteration cap.

struct Params {
  rows: u32,         // R
  len: u32,          // valid entries per input row
  in_stride: u32,    // input row stride (elements)
  k: u32,            // entries kept per tile (power of two, <= T)
  out_stride: u32,   // output row stride (elements)
  out_offset: u32,   // first output column
  index_offset: u32, // added to column numbers in topk_select (a corpus chunk's first row)
  run: u32,          // topk_merge: input is made of sorted runs of this length (= k)
  tiles: u32,        // tiles per row (workgroups along x)
}

// Set by the launcher, src/ops/topk.ts (topkPlan):
override T: u32;  // tile length, a power of two
override WG: u32; // invocations per workgroup

const PAD_INDEX: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> in_vals: array<f32>;
@group(0) @binding(2) var<storage, read_write> out_vals: array<f32>;
@group(0) @binding(3) var<storage, read_write> out_idx: array<u32>;
@group(0) @binding(4) var<storage, read> in_idx: array<u32>;

var<workgroup> sv: array<f32, T>;
var<workgroup> si: array<u32, T>;

fn neg_inf() -> f32 {
  return bitcast<f32>(0xff800000u);
}

// NaN (tested on the bits, which no fast-math assumption can fold away) becomes -inf.
// -0 becomes +0, so that equal scores have equal radix keys.
fn sanitize(v: f32) -> f32 {
  let bits = bitcast<u32>(v) & 0x7fffffffu;
  if (bits > 0x7f800000u) { return neg_inf(); }
  if (bits == 0u) { return 0.0; }
  return v;
}

// An unsigned key in the order of the (sanitized) float: larger score, larger key.
fn radix_key(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  if ((b >> 31u) == 1u) { return ~b; }
  return b | 0x80000000u;
}

// Whether entry a ranks before entry b.
fn better(va: f32, ia: u32, vb: f32, ib: u32) -> bool {
  return va > vb || (va == vb && ia < ib);
}

// Row and tile of this workgroup; rows fold into z past 65535.
fn row_of(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.y + wid.z * nwg.y;
}

// Bitonic sort of the first n entries of the tile (n a power of two <= T), best first. Blocks
// of `first / 2` entries must already be sorted,
// best first in even blocks and worst first in odd ones (what the stages below `first` leave);
// `first` = 2 sorts from scratch.
fn sort_tile(lid: u32, first: u32, n: u32) {
  var size = first;
  loop {
    if (size > n) { break; }
    var j = size >> 1u;
    loop {
      if (j == 0u) { break; }
      for (var q = lid; q < n / 2u; q += WG) {
        let i = ((q & ~(j - 1u)) << 1u) | (q & (j - 1u));
        let l = i + j;
        let vi = sv[i];
        let ii = si[i];
        let vl = sv[l];
        let il = si[l];
        // Blocks of `size` alternate: best first where bit `size` of i is clear.
        if (better(vl, il, vi, ii) == ((i & size) == 0u)) {
          sv[i] = vl;
          si[i] = il;
          sv[l] = vi;
          si[l] = ii;
        }
      }
      workgroupBarrier();
      j = j >> 1u;
    }
    size = size << 1u;
  }
}

fn write_tile(lid: u32, row: u32, tile: u32) {
  let base = row * p.out_stride + p.out_offset + tile * p.k;
  for (var e = lid; e < p.k; e += WG) {
    out_vals[base + e] = sv[e];
    out_idx[base + e] = si[e];
  }
}

// First pass over raw scores: each tile of T columns -> its best k, indices = column +
// index_offset.
@compute @workgroup_size(WG)
fn topk_select(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_of(wid, nwg);
  let tile = wid.x;
  // Uniform per workgroup: whole workgroups leave before any barrier.
  if (row >= p.rows) { return; }
  let base = row * p.in_stride;
  for (var e = lid; e < T; e += WG) {
    let col = tile * T + e;
    if (col < p.len) {
      sv[e] = sanitize(in_vals[base + col]);
      si[e] = col + p.index_offset;
    } else {
      sv[e] = neg_inf();
      si[e] = PAD_INDEX;
    }
  }
  workgroupBarrier();
  sort_tile(lid, 2u, T);
  write_tile(lid, row, tile);
}

// Later passes: the input rows are runs of `run` entries, each sorted best first (the output of
// an earlier pass), with their indices. Odd runs are loaded reversed, so the sort starts at
// stage 2·run.
@compute @workgroup_size(WG)
fn topk_merge(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_of(wid, nwg);
  let tile = wid.x;
  if (row >= p.rows) { return; }
  let base = row * p.in_stride;
  let run = p.run;
  for (var e = lid; e < T; e += WG) {
    var col = tile * T + e;
    if (((e / run) & 1u) == 1u) {
      col = col - (e % run) + (run - 1u - (e % run));
    }
    if (col < p.len) {
      sv[e] = in_vals[base + col];
      si[e] = in_idx[base + col];
    } else {
      sv[e] = neg_inf();
      si[e] = PAD_INDEX;
    }
  }
  workgroupBarrier();
  sort_tile(lid, 2u * run, T);
  write_tile(lid, row, tile);
}

// ---------------------------------------------------------------------------------------------
// First pass by radix selection (the default): one workgroup per (row, tile of T_RADIX
// columns). Four histogram passes over 8-bit digits of the score keys find the key of the
// m-th best entry (m = min(k, entries in the tile)) and how many entries with exactly that key
// are needed; when the key is shared by more entries than needed, four more passes over the
// column bits find the column bound that keeps the lowest columns. The selected m entries are
// compacted into workgroup memory and bitonic-sorted (k entries). Work per row: ~8 reads of
// the tile plus one sort of k, instead of sorting whole tiles of 2k.

override T_RADIX: u32; // columns per workgroup of topk_radix (src/ops/topk.ts)

var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> prefix: u32;   // digits of the threshold found so far
var<workgroup> need: u32;     // entries still needed from the current bin
var<workgroup> col_passes: u32; // 4 when ties at the threshold must be cut by column, else 0
var<workgroup> fill: atomic<u32>;

fn clear_hist(lid: u32) {
  for (var b = lid; b < 256u; b += WG) { atomicStore(&hist[b], 0u); }
}

// Picks the bin holding the need-th entry, scanning from `first` in direction `step`.
fn pick_bin(shift: u32, descending: bool) {
  var cum = 0u;
  for (var n = 0u; n < 256u; n++) {
    let b = select(n, 255u - n, descending);
    let h = atomicLoad(&hist[b]);
    if (cum + h >= need) {
      prefix = prefix | (b << shift);
      need = need - cum;
      return;
    }
    cum = cum + h;
  }
}

@compute @workgroup_size(WG)
fn topk_radix(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_of(wid, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.in_stride;
  let c0 = wid.x * T_RADIX;
  let c1 = min(p.len, c0 + T_RADIX);
  let m = min(p.k, c1 - c0);
  if (lid == 0u) {
    prefix = 0u;
    need = m;
    atomicStore(&fill, 0u);
  }
  // Digits of the score key, most significant first; bins scanned from the best.
  for (var d = 0u; d < 4u; d++) {
    let shift = 24u - 8u * d;
    clear_hist(lid);
    workgroupBarrier();
    let pre = prefix;
    for (var c = c0 + lid; c < c1; c += WG) {
      let key = radix_key(sanitize(in_vals[base + c]));
      if (d == 0u || (key >> (shift + 8u)) == (pre >> (shift + 8u))) {
        atomicAdd(&hist[(key >> shift) & 255u], 1u);
      }
    }
    workgroupBarrier();
    if (lid == 0u) {
      pick_bin(shift, true);
      // Entries with the full threshold key: the bin just picked.
      if (d == 3u) {
        col_passes = select(0u, 4u, atomicLoad(&hist[prefix & 255u]) > need);
      }
    }
    workgroupBarrier();
  }
  let threshold = prefix;
  let passes = workgroupUniformLoad(&col_passes);
  // Ties at the threshold: keep the `need` lowest columns among them.
  var bound = 0xffffffffu;
  if (passes > 0u) {
    if (lid == 0u) { prefix = 0u; }
    for (var d = 0u; d < passes; d++) {
      let shift = 24u - 8u * d;
      clear_hist(lid);
      workgroupBarrier();
      let pre = prefix;
      for (var c = c0 + lid; c < c1; c += WG) {
        let key = radix_key(sanitize(in_vals[base + c]));
        if (key == threshold && (d == 0u || (c >> (shift + 8u)) == (pre >> (shift + 8u)))) {
          atomicAdd(&hist[(c >> shift) & 255u], 1u);
        }
      }
      workgroupBarrier();
      if (lid == 0u) { pick_bin(shift, false); }
      workgroupBarrier();
    }
    bound = workgroupUniformLoad(&prefix);
  }
  // Compaction: every entry above the threshold, and those at it up to the column bound.
  for (var c = c0 + lid; c < c1; c += WG) {
    let v = sanitize(in_vals[base + c]);
    let key = radix_key(v);
    if (key > threshold || (key == threshold && c <= bound)) {
      let s = atomicAdd(&fill, 1u);
      sv[s] = v;
      si[s] = c + p.index_offset;
    }
  }
  for (var e = m + lid; e < p.k; e += WG) {
    sv[e] = neg_inf();
    si[e] = PAD_INDEX;
  }
  workgroupBarrier();
  sort_tile(lid, 2u, p.k);
  write_tile(lid, row, wid.x);
}
