/**
 * Retrieval metrics with the exact semantics of trec_eval 10.0 (usnistgov/trec_eval), under
 * trec_eval's names: `num_q`, `num_ret`, `num_rel`, `num_rel_ret`, `map`, `recip_rank`,
 * `P_k`, `recall_k`, `ndcg`, `ndcg_cut_k`, `success_k`; plus MS MARCO MRR@10 as its official
 * script computes it ({@link msmarcoMrr10}).
 *
 * What "exact" means here, point by point (file names are trec_eval's):
 * - Ranking (form_res_rels.c): documents sorted by score descending (doubles), ties broken by
 *   document id DEScending in byte order; the rank column is ignored. `-M n` keeps the first n
 *   of that order. A document twice in one query's top n is an error.
 * - Relevance: a retrieved document not in the qrels is "non-pool" (-1); one in the qrels with
 *   a negative grade is "unjudged" (-2); otherwise its grade. A document is relevant when its
 *   value is >= the relevance level (`-l`, default 1). `num_rel` counts judged documents with
 *   grade >= the level.
 * - nDCG (m_ndcg_cut.c, m_ndcg.c): gain = the grade itself (for grades > 0, whatever `-l`),
 *   discount 1/log2(rank + 1); the ideal ranking is built from ALL judged documents of the query
 *   (grades >= 1), retrieved or not; a query whose ideal DCG is 0 scores 0.
 * - `recall_k` is 0 for a query without relevant documents; `map` divides by `num_rel`;
 *   `P_k` divides by k even when fewer than k documents were retrieved; `recip_rank` has no
 *   cutoff (use `maxDocsPerQuery`, trec_eval's `-M`, for one).
 * - Queries: those in the qrels that also have a ranking; run queries absent from the qrels
 *   are ignored. `all` averages over them (sums for the `num_*` counts). With
 *   `averageComplete` (`-c`), every qrels query counts: a query missing from the run is scored
 *   as trec_eval 10.0 does (on a one-document bogus ranking, `num_ret` reset to 0, i.e. zero for
 *   every measure) and is listed among the per-query values; `all.num_rel` is then the number
 *   of qrels lines with grade > 0 (m_num_rel.c ignores `-l` there).
 * - Deviation: without `-c`, trec_eval 10.0's code exits with an error when a qrels query has
 *   no ranking (trec_eval.c: "result qid ... not found in qrels"); trec_eval <= 9.0.8 and
 *   pytrec_eval skip such a query. This module skips it too.
 *
 * @module
 */

import { compareCodePoints, trecOrder } from "../data/order.ts";
import type { Qrels, Ranking, Run } from "../data/types.ts";

/** trec_eval's default cutoffs (m_P.c, m_recall.c, m_ndcg_cut.c, m_success.c). */
export const DEFAULT_CUTOFFS: Readonly<Required<Cutoffs>> = Object.freeze({
  P: [5, 10, 15, 20, 30, 100, 200, 500, 1000],
  recall: [5, 10, 15, 20, 30, 100, 200, 500, 1000],
  ndcg_cut: [5, 10, 15, 20, 30, 100, 200, 500, 1000],
  success: [1, 5, 10],
});

/** Cutoff lists per measure family (positive integers, as `-m P.5,10`). */
export interface Cutoffs {
  /** Precision cutoffs. */
  P?: number[];
  /** Recall cutoffs. */
  recall?: number[];
  /** nDCG cutoffs. */
  ndcg_cut?: number[];
  /** Success cutoffs. */
  success?: number[];
}

/** Options of {@link evaluate}, named after trec_eval's flags. */
export interface EvalOptions {
  /** `-c`: average over all queries of the qrels; missing queries score 0. Default false. */
  averageComplete?: boolean;
  /** `-l`: minimum grade counted as relevant. Default 1. */
  relevanceLevel?: number;
  /** `-M`: keep at most this many documents per query (after ranking). Default: all. */
  maxDocsPerQuery?: number;
  /** Cutoffs replacing trec_eval's defaults, per family ({@link DEFAULT_CUTOFFS}). */
  cutoffs?: Cutoffs;
}

/** Measure values keyed by trec_eval name, e.g. `{ ndcg_cut_10: 0.3016, ... }`. */
export type Measures = Record<string, number>;

/** Result of {@link evaluate}. */
export interface Evaluation {
  /** Per-query values, queries in trec_eval's order (byte order of their ids). */
  perQuery: Map<string, Measures>;
  /** trec_eval's `all` row (means; sums for the `num_*` counts). */
  all: Measures;
}

/** Relevance value of a retrieved document absent from the qrels (trec_eval RELVALUE_NONPOOL). */
export const RELVALUE_NONPOOL = -1;
/** Relevance value of a retrieved document with a negative grade (RELVALUE_UNJUDGED). */
export const RELVALUE_UNJUDGED = -2;

/** The ranking trec_eval 10.0 substitutes for a query missing from the run under `-c`. */
const BOGUS_RANKING: Ranking = { docIds: ["ceci_nest_pas_un_docno"], scores: [1.0] };

interface Norm {
  level: number;
  maxDocs: number;
  P: number[];
  recall: number[];
  ndcg_cut: number[];
  success: number[];
}

function checkCutoffs(name: string, xs: number[]): number[] {
  const seen = new Set<number>();
  for (const x of xs) {
    if (!Number.isInteger(x) || x <= 0) {
      throw new RangeError(`${name} cutoff ${x} is not a positive integer`);
    }
    if (seen.has(x)) throw new RangeError(`${name} cutoff ${x} given twice`);
    seen.add(x);
  }
  return [...xs].sort((a, b) => a - b);
}

function normalize(options: EvalOptions): Norm {
  const c = options.cutoffs ?? {};
  const level = options.relevanceLevel ?? 1;
  if (!Number.isInteger(level)) throw new RangeError(`relevance level ${level} is not an integer`);
  const maxDocs = options.maxDocsPerQuery ?? Infinity;
  if (maxDocs !== Infinity && (!Number.isInteger(maxDocs) || maxDocs < 0)) {
    throw new RangeError(`maxDocsPerQuery ${maxDocs} is not a non-negative integer`);
  }
  return {
    level,
    maxDocs,
    P: checkCutoffs("P", c.P ?? DEFAULT_CUTOFFS.P),
    recall: checkCutoffs("recall", c.recall ?? DEFAULT_CUTOFFS.recall),
    ndcg_cut: checkCutoffs("ndcg_cut", c.ndcg_cut ?? DEFAULT_CUTOFFS.ndcg_cut),
    success: checkCutoffs("success", c.success ?? DEFAULT_CUTOFFS.success),
  };
}

/**
 * trec_eval's `results_rel_list` for one query: the relevance value at each rank after
 * ordering (and `-M` truncation). Throws on a document retrieved twice.
 */
export function rankedRelevance(
  judged: ReadonlyMap<string, number> | undefined,
  ranking: Ranking,
  maxDocs = Infinity,
  qid = "?",
): Int32Array {
  const order = trecOrder(ranking);
  const n = Math.min(order.length, maxDocs);
  const rels = new Int32Array(n);
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const doc = ranking.docIds[order[i]];
    if (seen.has(doc)) throw new Error(`run: duplicate document '${doc}' for query '${qid}'`);
    seen.add(doc);
    const g = judged?.get(doc);
    rels[i] = g === undefined ? RELVALUE_NONPOOL : g < 0 ? RELVALUE_UNJUDGED : g;
  }
  return rels;
}

/** Counts of judged documents per grade >= 0 (trec_eval's `rel_levels`). */
function relLevels(judged: ReadonlyMap<string, number> | undefined): number[] {
  const levels: number[] = [];
  if (judged === undefined) return levels;
  for (const g of judged.values()) {
    if (g < 0) continue;
    while (levels.length <= g) levels.push(0);
    levels[g]++;
  }
  return levels;
}

/** Ideal DCG at each rank 0..upTo (prefix sums of grade / log2(i+2) over the ideal order). */
function idealDcgPrefix(levels: number[], upTo: number): Float64Array {
  const out = new Float64Array(upTo + 1);
  let lvl = levels.length - 1;
  let left = lvl >= 1 ? levels[lvl] : 0;
  let sum = 0;
  for (let i = 0; i < upTo; i++) {
    while (lvl >= 1 && left === 0) {
      lvl--;
      left = lvl >= 1 ? levels[lvl] : 0;
    }
    if (lvl >= 1) {
      sum += lvl / Math.log2(i + 2);
      left--;
    }
    out[i + 1] = sum;
  }
  return out;
}

function evaluateRels(rels: Int32Array, levels: number[], o: Norm): Measures {
  const n = rels.length;
  const L = o.level;
  let numRel = 0;
  for (let g = Math.max(L, 0); g < levels.length; g++) numRel += levels[g];
  // Prefix sums over ranks: relevant count and DCG after i documents.
  const relCount = new Int32Array(n + 1);
  const dcg = new Float64Array(n + 1);
  let numRelRet = 0;
  let firstRel = -1;
  let apSum = 0;
  for (let i = 0; i < n; i++) {
    const r = rels[i];
    const isRel = r >= L;
    relCount[i + 1] = relCount[i] + (isRel ? 1 : 0);
    if (isRel) {
      if (firstRel < 0) firstRel = i;
      apSum += relCount[i + 1] / (i + 1);
      if (r >= 0) numRelRet++;
    }
    dcg[i + 1] = r > 0 ? dcg[i] + r / Math.log2(i + 2) : dcg[i];
  }
  const relSoFar = relCount[n];
  let totalPositive = 0;
  for (let g = 1; g < levels.length; g++) totalPositive += levels[g];
  const ideal = idealDcgPrefix(levels, totalPositive);
  const idealAt = (k: number) => ideal[Math.min(k, ideal.length - 1)];

  const m: Measures = {};
  m.num_ret = n;
  m.num_rel = numRel;
  m.num_rel_ret = numRelRet;
  m.map = relSoFar > 0 ? apSum / numRel : 0;
  m.recip_rank = firstRel >= 0 ? 1 / (firstRel + 1) : 0;
  for (const k of o.P) m[`P_${k}`] = relCount[Math.min(k, n)] / k;
  for (const k of o.recall) m[`recall_${k}`] = numRel === 0 ? 0 : relCount[Math.min(k, n)] / numRel;
  const idealAll = idealAt(totalPositive);
  m.ndcg = idealAll > 0 ? dcg[n] / idealAll : 0;
  for (const k of o.ndcg_cut) {
    const id = idealAt(k);
    const d = dcg[Math.min(k, n)];
    m[`ndcg_cut_${k}`] = id > 0 ? d / id : d;
  }
  for (const k of o.success) m[`success_${k}`] = relCount[Math.min(k, n)] > 0 ? 1 : 0;
  return m;
}

/**
 * Scores one query's ranking against its judgements (`judged` may be undefined: no qrels).
 * Returns the per-query measures of {@link evaluate}.
 */
export function evaluateQuery(
  judged: ReadonlyMap<string, number> | undefined,
  ranking: Ranking,
  options: EvalOptions = {},
  qid = "?",
): Measures {
  const o = normalize(options);
  return evaluateRels(rankedRelevance(judged, ranking, o.maxDocs, qid), relLevels(judged), o);
}

/** Names of the measures that trec_eval sums rather than averages in its `all` row. */
const SUMMED = new Set(["num_ret", "num_rel", "num_rel_ret"]);

/**
 * Evaluates a run against qrels as `trec_eval -m all_trec [-q] [-c] [-l N] [-M N]` does,
 * for the measures listed in the module documentation.
 *
 * @example
 * ```ts
 * import { evaluate } from "./metrics.ts";
 * const qrels = new Map([["q1", new Map([["d1", 1], ["d2", 0]])]]);
 * const run = new Map([["q1", { docIds: ["d2", "d1"], scores: [2, 1] }]]);
 * const { all } = evaluate(qrels, run);
 * console.log(all.recip_rank); // 0.5
 * ```
 */
export function evaluate(qrels: Qrels, run: Run, options: EvalOptions = {}): Evaluation {
  const o = normalize(options);
  const complete = options.averageComplete ?? false;
  const qids = [...qrels.keys()].sort(compareCodePoints);
  const perQuery = new Map<string, Measures>();
  for (const qid of qids) {
    const judged = qrels.get(qid)!;
    let ranking = run.get(qid);
    let bogus = false;
    if (ranking === undefined) {
      if (!complete) continue;
      ranking = BOGUS_RANKING;
      bogus = true;
    }
    const m = evaluateRels(rankedRelevance(judged, ranking, o.maxDocs, qid), relLevels(judged), o);
    if (bogus) m.num_ret = 0;
    perQuery.set(qid, m);
  }
  if (perQuery.size === 0) {
    throw new Error("evaluate: no queries with both results and relevance info");
  }
  const numQ = complete ? qrels.size : perQuery.size;
  const all: Measures = { num_q: numQ };
  for (const m of perQuery.values()) {
    for (const key in m) all[key] = (all[key] ?? 0) + m[key];
  }
  for (const key in all) {
    if (key !== "num_q" && !SUMMED.has(key)) all[key] /= numQ;
  }
  if (complete) {
    let n = 0;
    for (const judged of qrels.values()) for (const g of judged.values()) if (g > 0) n++;
    all.num_rel = n;
  }
  return { perQuery, all };
}

/** Options of {@link msmarcoMrr10}. */
export interface MsMarcoOptions {
  /** Minimum grade counted as relevant (default 1; the official qrels contain only 1s). */
  relevanceLevel?: number;
}

/**
 * MS MARCO MRR@10 as the official `ms_marco_eval.py` computes it: for each run query that has
 * qrels, 1/rank of the first relevant passage within the top 10 (0 if none); the SUM is
 * divided by the number of queries in the qrels (all of them, retrieved or not). The official
 * script reads ranks from its run file; here the ranking is trec_eval's order, which is the
 * rank order for runs read with `readMsMarcoRun` (score = -rank). The official script counts
 * every qrels line as relevant; with the default level 1 this is the same for MS MARCO qrels.
 * Throws, as the script does, when no run query has qrels.
 */
export function msmarcoMrr10(
  qrels: Qrels,
  run: Run,
  options: MsMarcoOptions = {},
): { msmarco_mrr_10: number; perQuery: Map<string, number> } {
  const level = options.relevanceLevel ?? 1;
  const perQuery = new Map<string, number>();
  let sum = 0;
  let matched = 0;
  for (const qid of [...qrels.keys()].sort(compareCodePoints)) {
    const ranking = run.get(qid);
    let rr = 0;
    if (ranking !== undefined) {
      matched++;
      const rels = rankedRelevance(qrels.get(qid), ranking, 10, qid);
      for (let i = 0; i < rels.length; i++) {
        if (rels[i] >= level) {
          rr = 1 / (i + 1);
          break;
        }
      }
    }
    sum += rr;
    perQuery.set(qid, rr);
  }
  if (matched === 0) {
    throw new Error("msmarcoMrr10: no matching query ids between run and qrels");
  }
  return { msmarco_mrr_10: sum / qrels.size, perQuery };
}

/**
 * Formats a value as trec_eval prints it: integers for the `num_*` counts, otherwise `%.4f`
 * (round half to even on exact binary ties, as C's printf; `toFixed` would round them up).
 */
export function formatMeasure(name: string, value: number): string {
  if (name.startsWith("num_")) return String(Math.round(value));
  const t = value * 32;
  // x * 10^4 has fractional part exactly 1/2 only if x is an odd multiple of 1/32.
  if (Number.isInteger(t) && t % 2 !== 0) {
    const scaled = value * 10000; // exact: an odd multiple of 312.5
    const lo = Math.floor(scaled);
    const even = lo % 2 === 0 ? lo : lo + 1;
    return (even / 10000).toFixed(4);
  }
  return value.toFixed(4);
}
