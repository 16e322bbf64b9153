/**
 * BM25 baseline on `wink-bm25-text-search`, with `wink-nlp-utils` preprocessing as in wink's
 * README: lower-case, tokenize (`tokenize0`), remove stop words (wink's default list), Porter
 * stem (`stem`), propagate negations (`propagateNegations`: "not good" -> "!good");
 * k1 = 0.9, b = 0.4 as Anserini's BEIR baselines use; idf = ln(1 + (N - n + 0.5)/(n + 0.5)).
 * Title and text are indexed as one field (`title + " " + text`), as Anserini's BEIR "flat"
 * indexes do. Per-term scores are rounded to 4 decimals by wink (its `consolidate` default),
 * so ties are common: rankings here are always put in trec_eval order (score desc, document
 * id desc), so a run's top k is exactly what trec_eval evaluates.
 *
 * Serves as the baseline run, the negative miner for training and the candidate generator
 * for re-ranking.
 *
 * @module
 */

import winkBm25 from "npm:wink-bm25-text-search@3.1.2";
import nlp from "npm:wink-nlp-utils@2.1.0";
import { trecOrder } from "../data/order.ts";
import type { Doc, Qrels, Ranking, Run } from "../data/types.ts";

/** Options of {@link Bm25Index.build}. */
export interface Bm25Options {
  /** Term-frequency saturation (default 0.9). */
  k1?: number;
  /** Length normalisation (default 0.4). */
  b?: number;
}

interface WinkEngine {
  defineConfig(cfg: unknown): boolean;
  definePrepTasks(tasks: ((x: unknown) => unknown)[], field?: string): number;
  addDoc(doc: Record<string, string>, id: string): number;
  consolidate(fp?: number): boolean;
  search(text: string, limit?: number): [string, number][];
}

/** The preprocessing pipeline, applied to documents and queries alike. */
export const BM25_PIPELINE: ((x: unknown) => unknown)[] = [
  nlp.string.lowerCase,
  nlp.string.tokenize0,
  nlp.tokens.removeWords,
  nlp.tokens.stem,
  nlp.tokens.propagateNegations,
] as unknown as ((x: unknown) => unknown)[];

/**
 * An in-memory BM25 index over a corpus.
 *
 * @example
 * ```ts
 * import { Bm25Index } from "./bm25.ts";
 * const index = Bm25Index.build([
 *   { id: "a", title: "", text: "cats purr" },
 *   { id: "b", title: "", text: "dogs bark" },
 *   { id: "c", title: "", text: "birds sing" },
 * ]);
 * console.log(index.search("purring cat", 2).docIds); // ["a"]
 * ```
 */
export class Bm25Index {
  private constructor(private readonly engine: WinkEngine, readonly size: number) {}

  /** Indexes the documents (at least 3, a wink requirement). */
  static build(docs: Iterable<Doc>, options: Bm25Options = {}): Bm25Index {
    const engine = (winkBm25 as unknown as () => WinkEngine)();
    engine.defineConfig({
      fldWeights: { body: 1 },
      bm25Params: { k1: options.k1 ?? 0.9, b: options.b ?? 0.4, k: 1 },
    });
    engine.definePrepTasks(BM25_PIPELINE);
    let n = 0;
    for (const d of docs) {
      engine.addDoc({ body: d.title ? `${d.title} ${d.text}` : d.text }, d.id);
      n++;
    }
    if (n < 3) throw new RangeError(`BM25 needs at least 3 documents, got ${n}`);
    engine.consolidate();
    return new Bm25Index(engine, n);
  }

  /**
   * The top `k` documents for a query in trec_eval order (documents sharing no term with the
   * query are not returned, so there may be fewer than k).
   */
  search(query: string, k: number): Ranking {
    if (!(k >= 1)) return { docIds: [], scores: new Float64Array(0) };
    // wink sorts its hits without a deterministic tie order; fetch past k and widen to all
    // hits when the k-th score ties with the last fetched one, so the top k is exact.
    let hits = this.engine.search(query, Math.min(this.size, 2 * k + 10));
    if (hits.length > k && hits.length < this.size && hits[k - 1][1] === hits[hits.length - 1][1]) {
      hits = this.engine.search(query, this.size);
    }
    const all: Ranking = { docIds: hits.map((h) => h[0]), scores: hits.map((h) => h[1]) };
    const order = trecOrder(all);
    const n = Math.min(k, order.length);
    const docIds = new Array<string>(n);
    const scores = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      docIds[i] = all.docIds[order[i]];
      scores[i] = all.scores[order[i]] as number;
    }
    return { docIds, scores };
  }

  /** Runs every query and returns the top `k` of each as a run. */
  retrieve(queries: Map<string, string>, k: number): Run {
    const run: Run = new Map();
    for (const [qid, text] of queries) run.set(qid, this.search(text, k));
    return run;
  }

  /**
   * Hard negatives for training: per query, the first `count` documents of its BM25 top
   * `depth` that the qrels do not mark relevant (grade >= `minRelevance`, default 1).
   * Judged non-relevant and unjudged documents both qualify.
   */
  mineNegatives(
    queries: Map<string, string>,
    qrels: Qrels,
    options: { count: number; depth?: number; minRelevance?: number },
  ): Map<string, string[]> {
    const depth = options.depth ?? 100;
    const minRel = options.minRelevance ?? 1;
    const out = new Map<string, string[]>();
    for (const [qid, text] of queries) {
      const judged = qrels.get(qid);
      const negs: string[] = [];
      for (const doc of this.search(text, depth).docIds) {
        if ((judged?.get(doc) ?? 0) >= minRel) continue;
        negs.push(doc);
        if (negs.length === options.count) break;
      }
      out.set(qid, negs);
    }
    return out;
  }
}
