/**
 * Validation during training: nDCG@10 of the model re-ranking each validation query's BM25
 * candidates, through the re-ranker of evaluation ({@link rerank} in `src/eval/dense.ts`), so
 * training and evaluation score candidates one way.
 *
 * @module
 */
import type { Doc, Qrels, Run } from "../data/types.ts";
import { rerank } from "../eval/dense.ts";
import { evaluate } from "../eval/metrics.ts";
import type { Gpu } from "../gpu/device.ts";
import type { LoadedEncoder } from "../models/hf.ts";
import type { ValidationData } from "./data.ts";

/** One validation result. */
export interface ValidationRecord {
  /** Optimizer steps taken when it was measured. */
  step: number;
  /** nDCG@10 (trec_eval `ndcg_cut_10`, averaged over every validation query). */
  ndcg10: number;
}

/**
 * Validation nDCG@10: re-ranks each validation query's BM25 candidates by cosine similarity of
 * the model's embeddings ({@link rerank}, without the embedding cache: the weights change at
 * every validation). Every candidate document is encoded once per call (embeddings are shared
 * across queries), queries to `queryLength` tokens and documents to `docLength`; nDCG@10 is
 * trec_eval's `ndcg_cut_10` averaged over all validation queries (`-c`: a query without
 * candidates counts as 0).
 *
 * @example
 * ```ts
 * const val = validationData(corpus, validationQueries, 100);
 * const ndcg10 = await validateNdcg10(gpu, model, val, { queryLength: 20, docLength: 200 });
 * ```
 */
export async function validateNdcg10(
  gpu: Gpu,
  model: LoadedEncoder,
  val: ValidationData,
  lengths: { queryLength: number; docLength: number },
): Promise<number> {
  // The candidate documents, in the order validationData collected them (encoding order, and
  // so the batches, stay those of every earlier version of the validation).
  const corpus: Doc[] = [...val.docs].map(([id, text]) => ({ id, title: "", text }));
  const candidates: Run = new Map();
  for (const qid of val.queries.keys()) {
    const ids = val.candidates.get(qid) ?? [];
    // BM25 order as scores; every candidate is re-ranked (no depth), so only the ids count.
    candidates.set(qid, { docIds: ids, scores: ids.map((_, i) => ids.length - i) });
  }
  const run = await rerank(gpu, model, {
    corpus,
    queries: val.queries,
    candidates,
    cacheDir: null,
    maxLength: lengths.docLength,
    queryMaxLength: lengths.queryLength,
  });
  const qrels: Qrels = new Map(
    [...val.queries.keys()].map((q) => [q, val.qrels.get(q) ?? new Map()]),
  );
  const { all } = evaluate(qrels, run, { averageComplete: true, cutoffs: { ndcg_cut: [10] } });
  return all.ndcg_cut_10;
}
