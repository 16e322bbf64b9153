/**
 * The ranking order trec_eval uses: score descending, ties broken by document id in
 * DEScending byte order (`strcmp(p2->docno, p1->docno)` in trec_eval's form_res_rels.c).
 * The rank column of a run file plays no part.
 *
 * @module
 */

import type { Ranking } from "./types.ts";

/**
 * Compares two strings by Unicode code point, which is the byte order of their UTF-8 encodings
 * (what C's `strcmp` sees). Plain JS `<` compares UTF-16 code units and differs from this
 * only when a surrogate pair meets a character in U+E000..U+FFFF.
 */
export function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      if (x >= 0xd800 && y >= 0xd800) {
        // Move surrogates (D800-DFFF) above E000-FFFF so code-unit order becomes code-point order.
        x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
        y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      }
      return x < y ? -1 : 1;
    }
  }
  return a.length < b.length ? -1 : 1;
}

/**
 * Indices of a ranking's documents in trec_eval order: score descending, then document id
 * descending. Equal scores compare equal whatever their sign (`-0 == 0`), as in C. A NaN score
 * is an error (trec_eval's comparison would be inconsistent).
 *
 * Implementation: an in-place quicksort (median of three, insertion sort below 16 elements)
 * over the indices with the comparisons inlined on a Float64Array copy of the scores; ids are
 * compared only on tied scores. About twice as fast as `Int32Array.sort` with a comparator.
 */
export function trecOrder(ranking: Ranking): Int32Array {
  const { docIds, scores } = ranking;
  const n = docIds.length;
  if (scores.length !== n) {
    throw new RangeError(`ranking has ${n} document ids but ${scores.length} scores`);
  }
  const s = new Float64Array(n);
  const idx = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = scores[i];
    if (Number.isNaN(v)) throw new RangeError(`score of document '${docIds[i]}' is NaN`);
    s[i] = v;
    idx[i] = i;
  }
  sortRange(idx, s, docIds, 0, n - 1);
  return idx;
}

/** True when document a comes before document b in trec_eval order. */
function before(s: Float64Array, ids: string[], a: number, b: number): boolean {
  const sa = s[a];
  const sb = s[b];
  if (sa !== sb) return sa > sb;
  return compareCodePoints(ids[a], ids[b]) > 0;
}

function sortRange(idx: Int32Array, s: Float64Array, ids: string[], lo: number, hi: number): void {
  while (hi - lo >= 16) {
    // Median of three to idx[hi - 1] as pivot.
    const mid = (lo + hi) >> 1;
    if (before(s, ids, idx[mid], idx[lo])) swap(idx, mid, lo);
    if (before(s, ids, idx[hi], idx[lo])) swap(idx, hi, lo);
    if (before(s, ids, idx[hi], idx[mid])) swap(idx, hi, mid);
    swap(idx, mid, hi - 1);
    const p = idx[hi - 1];
    const ps = s[p];
    let i = lo;
    let j = hi - 1;
    while (true) {
      do i++; while (s[idx[i]] > ps || (s[idx[i]] === ps && before(s, ids, idx[i], p)));
      do j--; while (s[idx[j]] < ps || (s[idx[j]] === ps && before(s, ids, p, idx[j])));
      if (i >= j) break;
      swap(idx, i, j);
    }
    swap(idx, i, hi - 1);
    // Recurse into the smaller part, loop on the larger (bounded stack depth).
    if (i - lo < hi - i) {
      sortRange(idx, s, ids, lo, i - 1);
      lo = i + 1;
    } else {
      sortRange(idx, s, ids, i + 1, hi);
      hi = i - 1;
    }
  }
  for (let i = lo + 1; i <= hi; i++) {
    const x = idx[i];
    let j = i - 1;
    while (j >= lo && before(s, ids, x, idx[j])) {
      idx[j + 1] = idx[j];
      j--;
    }
    idx[j + 1] = x;
  }
}

function swap(a: Int32Array, i: number, j: number): void {
  const t = a[i];
  a[i] = a[j];
  a[j] = t;
}
