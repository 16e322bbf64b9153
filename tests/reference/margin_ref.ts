/**
 * Independent float64 references of the losses, written the way the authors' released PyTorch
 * code computes them (webis-de/adaptive-relevance-margin-loss, `src/loss.py`): full pairwise
 * cosine matrices, `.diag()`, and NumPy-style broadcasting of `margin - target`, spelled out
 * elementwise here. Nothing in this file is shared with the GPU implementation.
 *
 * Embeddings are flat row-major Float64Arrays of B x D.
 *
 * @module
 */

/** A value that broadcasts: a scalar, a vector [B] or a matrix [B][B]. */
export type Broadcastable = number | number[] | number[][];

/** The cosine matrix of rows of X (bx x d) and Y (by x d), norms floored at eps. */
export function pairwiseCosine(
  x: Float64Array,
  y: Float64Array,
  bx: number,
  by: number,
  d: number,
  eps = 1e-8,
): number[][] {
  const norm = (a: Float64Array, r: number) => {
    let s = 0;
    for (let k = 0; k < d; k++) s += a[r * d + k] ** 2;
    return Math.max(Math.sqrt(s), eps);
  };
  const out: number[][] = [];
  for (let i = 0; i < bx; i++) {
    const row: number[] = [];
    for (let j = 0; j < by; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += x[i * d + k] * y[j * d + k];
      row.push(dot / (norm(x, i) * norm(y, j)));
    }
    out.push(row);
  }
  return out;
}

/** The diagonal of a square matrix (`torch.diag`). */
export function diag(m: number[][]): number[] {
  return m.map((row, i) => row[i]);
}

function rank(v: Broadcastable): number {
  return typeof v === "number" ? 0 : Array.isArray(v[0]) ? 2 : 1;
}

/**
 * `a - b` with NumPy broadcasting over ranks 0..2: a vector [B] aligns with the last axis of a
 * matrix, i.e. it is read by column (`v[j]` for element [i, j]).
 */
export function broadcastSub(a: Broadcastable, b: Broadcastable): Broadcastable {
  const at = (v: Broadcastable, i: number, j: number): number => {
    const r = rank(v);
    if (r === 0) return v as number;
    if (r === 1) return (v as number[])[j];
    return (v as number[][])[i][j];
  };
  const ra = rank(a), rb = rank(b);
  if (ra === 0 && rb === 0) return (a as number) - (b as number);
  if (Math.max(ra, rb) === 1) {
    const len = ((ra === 1 ? a : b) as number[]).length;
    return Array.from({ length: len }, (_, j) => at(a, 0, j) - at(b, 0, j));
  }
  const m = (ra === 2 ? a : b) as number[][];
  return m.map((row, i) => row.map((_, j) => at(a, i, j) - at(b, i, j)));
}

/** Every element of a broadcastable value, flattened row-major. */
export function elements(v: Broadcastable): number[] {
  const r = rank(v);
  if (r === 0) return [v as number];
  if (r === 1) return [...(v as number[])];
  return (v as number[][]).flat();
}

/** Options of {@link marginLossRef}, as in the released code (plus per-query indexing). */
export interface MarginRefOptions {
  /** "adaptive", "distributed" or a static number. */
  target: "adaptive" | "distributed" | number;
  /** In-batch negatives. */
  inBatch: boolean;
  /** The error function. */
  error: "l1" | "l2" | "soft";
  /** "reference" (`pos.diag() - neg`) or "per-query" (`pos.diag()[:, None] - neg`). */
  indexing?: "reference" | "per-query";
}

/**
 * d = margin - target, as the released code forms it. The target is computed from `pt`, `nt`
 * (pass P and N themselves for the attached target; fixed copies to model detaching).
 */
export function marginDiffsRef(
  q: Float64Array,
  p: Float64Array,
  n: Float64Array,
  b: number,
  d: number,
  o: MarginRefOptions,
  pt: Float64Array = p,
  nt: Float64Array = n,
): Broadcastable {
  if (o.inBatch && o.target === "distributed") {
    throw new Error("Distributed margins are not supported for use with in-batch negatives");
  }
  const pos = pairwiseCosine(q, p, b, b, d);
  const neg = pairwiseCosine(q, n, b, b, d);
  let margin: Broadcastable;
  if (o.inBatch && (o.indexing ?? "reference") === "reference") {
    margin = broadcastSub(diag(pos), neg); // pos.diag() - neg: M[i][j] = pos[j][j] - neg[i][j]
  } else if (o.inBatch) {
    const posColumn = diag(pos).map((v) => diag(pos).map(() => v)); // pos.diag()[:, None]
    margin = broadcastSub(posColumn, neg);
  } else {
    margin = broadcastSub(diag(pos), diag(neg));
  }
  let target: Broadcastable;
  if (typeof o.target === "number") target = o.target;
  else {
    const pn = pairwiseCosine(pt, nt, b, b, d);
    const scaled = pn.map((row) => row.map((v) => v / 2 + 0.5));
    target = o.target === "adaptive" && !o.inBatch ? diag(scaled) : scaled;
  }
  return broadcastSub(margin, target);
}

/** The error functions, as in the released code (`abs`, `square`, `log1p(exp(-t))`). */
export function errorRef(kind: "l1" | "l2" | "soft", t: number): number {
  if (kind === "l1") return Math.abs(t);
  if (kind === "l2") return t * t;
  return Math.log1p(Math.exp(-t));
}

/** The margin loss: `error_fn(margin - target).mean()`. */
export function marginLossRef(
  q: Float64Array,
  p: Float64Array,
  n: Float64Array,
  b: number,
  d: number,
  o: MarginRefOptions,
  pt: Float64Array = p,
  nt: Float64Array = n,
): number {
  const all = elements(marginDiffsRef(q, p, n, b, d, o, pt, nt));
  return all.reduce((s, t) => s + errorRef(o.error, t), 0) / all.length;
}

/** Margin-MSE: mean over j of (m_j - (tPos_j - tNeg_j))². */
export function marginMseRef(
  q: Float64Array,
  p: Float64Array,
  n: Float64Array,
  b: number,
  d: number,
  teacherPos: ArrayLike<number>,
  teacherNeg: ArrayLike<number>,
): number {
  const margin = broadcastSub(
    diag(pairwiseCosine(q, p, b, b, d)),
    diag(pairwiseCosine(q, n, b, b, d)),
  );
  const teacher = Array.from({ length: b }, (_, j) => teacherPos[j] - teacherNeg[j]);
  const diffs = elements(broadcastSub(margin, teacher));
  return diffs.reduce((s, t) => s + t * t, 0) / b;
}

/**
 * In-batch InfoNCE / multiple-negatives ranking loss: logits row i is
 * scale · [cos(q_i, p_j) for all j, cos(q_i, n_j) for all j], cross-entropy with label i, mean.
 * `n` null: no hard negatives.
 */
export function infoNceRef(
  q: Float64Array,
  p: Float64Array,
  n: Float64Array | null,
  b: number,
  d: number,
  scale: number,
): number {
  const pos = pairwiseCosine(q, p, b, b, d);
  const neg = n ? pairwiseCosine(q, n, b, b, d) : null;
  let total = 0;
  for (let i = 0; i < b; i++) {
    const logits = [...pos[i], ...(neg ? neg[i] : [])].map((v) => scale * v);
    const max = Math.max(...logits);
    const lse = max + Math.log(logits.reduce((s, v) => s + Math.exp(v - max), 0));
    total += lse - logits[i];
  }
  return total / b;
}

/**
 * Central finite differences of `f` w.r.t. the chosen elements of `x` (float64, step eps; the
 * truncation error is O(eps²·f''')).
 */
export function finiteDifferences(
  f: () => number,
  x: Float64Array,
  indices: number[],
  eps = 1e-5,
): number[] {
  return indices.map((j) => {
    const keep = x[j];
    x[j] = keep + eps;
    const up = f();
    x[j] = keep - eps;
    const down = f();
    x[j] = keep;
    return (up - down) / (2 * eps);
  });
}
