/**
 * Hard-negative mining: for every judged (query, positive) pair, negatives drawn from a rank
 * window of a retriever's list (BM25, or a dense model's cosine), with false negatives filtered
 * out by comparing a candidate's score with the positive's (a fraction of it, or a margin below
 * it, as sentence-transformers' `mine_hard_negatives` does), written as triples or n-tuples
 * with the miner's scores, so the same file gives the trainer its negatives and, for Margin-MSE,
 * its teacher scores.
 *
 * @example
 * ```ts
 * const retriever = bm25Retriever(Bm25Index.build(corpus), train.queries);
 * const { tuples } = await mineHardNegatives(retriever, train, {
 *   ranks: [10, 100], negatives: 8, filter: { kind: "ratio", ratio: 0.95 },
 * });
 * await writeMined("negatives.jsonl", tuples, "triples");
 * ```
 *
 * @module
 */
import { type Doc, docText, type Ranking, type Run } from "../data/types.ts";
import type { Bm25Index } from "../eval/bm25.ts";
import {
  type EmbeddingMatrix,
  encodeCached,
  type EncodeCachedOptions,
  normalizeRows,
  retrievedRun,
  retrieveWithEmbeddings,
} from "../eval/dense.ts";
import type { Gpu } from "../gpu/device.ts";
import type { LoadedEncoder } from "../models/hf.ts";
import { writeTextFileAtomic } from "../util/fs.ts";
import { deriveSeed, Rng } from "../util/rng.ts";
import type { QuerySet } from "./data.ts";

/** Where candidates come from: a ranked list per query and the score of any document. */
export interface CandidateRetriever {
  /** What it is, for messages (`bm25`, `dense use-lite`). */
  readonly name: string;
  /** The top `depth` documents of each query, in rank order, with scores. */
  retrieve(qids: readonly string[], depth: number): Promise<Run>;
  /** The score of `docId` for `qid` (a positive outside the retrieved list, say). */
  score(qid: string, docId: string): number;
}

/** A retriever by BM25 over `index`, for the query texts of `queries`. */
export function bm25Retriever(index: Bm25Index, queries: Map<string, string>): CandidateRetriever {
  const full = new Map<string, Map<string, number>>();
  const text = (qid: string) => {
    const t = queries.get(qid);
    if (t === undefined) throw new Error(`query '${qid}' has no text`);
    return t;
  };
  return {
    name: "bm25",
    retrieve(qids, depth) {
      return Promise.resolve(new Map(qids.map((q) => [q, index.search(text(q), depth)])));
    },
    score(qid, docId) {
      // Every scored document of the query, once: a document sharing no term scores 0.
      let all = full.get(qid);
      if (!all) {
        const r = index.search(text(qid), index.size);
        all = new Map(r.docIds.map((d, i) => [d, r.scores[i]]));
        full.set(qid, all);
      }
      return all.get(docId) ?? 0;
    },
  };
}

/**
 * A retriever by the cosine of a dense model's embeddings (queries and documents each with the
 * model's prompt for their role), the corpus encoded once (through the embedding cache unless
 * `opts.cacheDir` is null).
 */
export async function denseRetriever(
  gpu: Gpu,
  model: LoadedEncoder,
  corpus: readonly Doc[],
  queries: Map<string, string>,
  opts: Omit<EncodeCachedOptions, "label" | "role"> & { name?: string } = {},
): Promise<CandidateRetriever> {
  const docs = normalizeRows(
    await encodeCached(gpu, model, corpus.map(docText), {
      ...opts,
      label: "encode corpus",
      role: "document",
    }),
  );
  const qids = [...queries.keys()];
  const qs = normalizeRows(
    await encodeCached(gpu, model, qids.map((q) => queries.get(q)!), {
      ...opts,
      label: "encode queries",
      role: "query",
    }),
  );
  const qRow = new Map(qids.map((q, i) => [q, i]));
  const dRow = new Map(corpus.map((d, i) => [d.id, i]));
  const dot = (a: EmbeddingMatrix, i: number, b: EmbeddingMatrix, j: number) => {
    let s = 0;
    for (let k = 0; k < a.dim; k++) s += a.data[i * a.dim + k] * b.data[j * b.dim + k];
    return s;
  };
  return {
    name: `dense ${opts.name ?? "model"}`,
    async retrieve(wanted, depth) {
      const rows = wanted.map((q) => {
        const r = qRow.get(q);
        if (r === undefined) throw new Error(`query '${q}' has no text`);
        return r;
      });
      const sub: EmbeddingMatrix = {
        count: rows.length,
        dim: qs.dim,
        data: new Float32Array(rows.length * qs.dim),
      };
      rows.forEach((r, i) =>
        sub.data.set(qs.data.subarray(r * qs.dim, (r + 1) * qs.dim), i * qs.dim)
      );
      const top = await retrieveWithEmbeddings(gpu, sub, docs, depth);
      return retrievedRun(top, wanted, (j) => corpus[j].id);
    },
    score(qid, docId) {
      const i = qRow.get(qid), j = dRow.get(docId);
      if (i === undefined) throw new Error(`query '${qid}' has no text`);
      if (j === undefined) throw new Error(`document '${docId}' is not in the corpus`);
      return dot(qs, i, docs, j);
    },
  };
}

/** How false negatives are told from true ones. */
export type FalseNegativeFilter =
  | { kind: "none" }
  /** Keep a candidate only if its score is at most `ratio` x the positive's. */
  | { kind: "ratio"; ratio: number }
  /** Keep a candidate only if its score is at least `margin` below the positive's. */
  | { kind: "margin"; margin: number };

/** Options of {@link mineHardNegatives}. */
export interface MineOptions {
  /** The rank window, 1-based and inclusive: `[10, 100]` takes ranks 10 to 100. */
  ranks: [from: number, to: number];
  /** Negatives per (query, positive) pair (fewer when the window runs out). */
  negatives: number;
  /** The false-negative filter. Default none. */
  filter?: FalseNegativeFilter;
  /** `top`: the best-ranked candidates left; `random`: a seeded draw of them. Default top. */
  sample?: "top" | "random";
  /** Seed of `random` sampling. Default 1. */
  seed?: number;
  /** Called after each query is mined, with the queries done and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** One (query, positive) pair with its mined negatives and the miner's scores. */
export interface MinedTuple {
  /** Query id. */
  qid: string;
  /** Positive document id. */
  pos: string;
  /** Negative document ids, best-ranked first for `top` sampling. */
  negs: string[];
  /** The miner's score of the positive. */
  scorePos: number;
  /** The miner's score of each negative. */
  scoresNeg: number[];
}

/** What mining did. */
export interface MiningStats {
  /** (query, positive) pairs mined. */
  pairs: number;
  /** Queries among them. */
  queries: number;
  /** Negatives written. */
  negatives: number;
  /** Candidates in the window judged relevant for their query (never negatives). */
  judgedRelevant: number;
  /** Candidates the false-negative filter dropped. */
  filtered: number;
  /** Pairs that got fewer negatives than asked for. */
  short: number;
}

/** Checks {@link MineOptions}: a throw names the option. */
export function checkMineOptions(o: MineOptions): void {
  const [from, to] = o.ranks;
  if (!(Number.isInteger(from) && Number.isInteger(to) && from >= 1 && to >= from)) {
    throw new RangeError(`ranks must be two integers 1 <= from <= to, not ${from}-${to}`);
  }
  if (!(Number.isInteger(o.negatives) && o.negatives >= 1)) {
    throw new RangeError(`negatives must be a positive integer, not ${o.negatives}`);
  }
  const f = o.filter;
  if (f?.kind === "ratio" && !(f.ratio > 0 && Number.isFinite(f.ratio))) {
    throw new RangeError(`the score ratio must be a positive number, not ${f.ratio}`);
  }
  if (f?.kind === "margin" && !(f.margin >= 0 && Number.isFinite(f.margin))) {
    throw new RangeError(`the score margin must be a non-negative number, not ${f.margin}`);
  }
}

/**
 * Mines negatives for every (query, relevant document) pair of `set`: the candidates at ranks
 * `from`..`to` of the retriever's list for the query, minus the documents judged relevant for
 * it, minus those the filter takes for false negatives; then the first `negatives` of them
 * (`top`) or a seeded draw (`random`), in rank order.
 */
export async function mineHardNegatives(
  retriever: CandidateRetriever,
  set: QuerySet,
  opts: MineOptions,
): Promise<{ tuples: MinedTuple[]; stats: MiningStats }> {
  checkMineOptions(opts);
  const [from, to] = opts.ranks;
  const filter = opts.filter ?? { kind: "none" };
  const rng = new Rng(deriveSeed(opts.seed ?? 1, "mine"));
  const qids = [...set.qrels.keys()].filter((q) =>
    [...set.qrels.get(q)!.values()].some((g) => g > 0)
  );
  const stats: MiningStats = {
    pairs: 0,
    queries: 0,
    negatives: 0,
    judgedRelevant: 0,
    filtered: 0,
    short: 0,
  };
  const tuples: MinedTuple[] = [];
  const BATCH = 256;
  for (let b = 0; b < qids.length; b += BATCH) {
    const chunk = qids.slice(b, b + BATCH);
    const run = await retriever.retrieve(chunk, to);
    for (const qid of chunk) {
      const judged = set.qrels.get(qid)!;
      const ranking: Ranking = run.get(qid) ?? { docIds: [], scores: [] };
      const window: { id: string; score: number }[] = [];
      for (let r = from - 1; r < Math.min(to, ranking.docIds.length); r++) {
        const id = ranking.docIds[r];
        if ((judged.get(id) ?? 0) > 0) stats.judgedRelevant++;
        else window.push({ id, score: ranking.scores[r] });
      }
      stats.queries++;
      for (const [pos, grade] of judged) {
        if (grade <= 0) continue;
        const scorePos = retriever.score(qid, pos);
        const kept = window.filter((c) => {
          const ok = filter.kind === "none" ||
            (filter.kind === "ratio"
              ? c.score <= filter.ratio * scorePos
              : c.score <= scorePos - filter.margin);
          if (!ok) stats.filtered++;
          return ok;
        });
        let chosen = kept.slice(0, opts.negatives);
        if (opts.sample === "random" && kept.length > opts.negatives) {
          const pool = [...kept.keys()];
          for (let i = 0; i < opts.negatives; i++) {
            const j = i + rng.int(pool.length - i);
            [pool[i], pool[j]] = [pool[j], pool[i]];
          }
          chosen = pool.slice(0, opts.negatives).sort((x, y) => x - y).map((i) => kept[i]);
        }
        if (chosen.length < opts.negatives) stats.short++;
        stats.pairs++;
        stats.negatives += chosen.length;
        tuples.push({
          qid,
          pos,
          negs: chosen.map((c) => c.id),
          scorePos,
          scoresNeg: chosen.map((c) => c.score),
        });
      }
      opts.onProgress?.(stats.queries, qids.length);
    }
  }
  return { tuples, stats };
}

/** Output layouts of {@link writeMined}. */
export type MinedFormat = "triples" | "tuples";

/**
 * Writes mined negatives as JSON Lines (atomically): `triples`, one line per negative,
 * `{"qid", "pos", "neg", "score_pos", "score_neg"}` (what `train --negatives` and, as teacher
 * scores, `train --teacher` read); or `tuples`, one line per pair, `{"qid", "pos", "negs",
 * "score_pos", "scores_neg"}` (read by `train --negatives` and `train --teacher` alike). Pairs
 * without a negative are left out.
 */
export async function writeMined(
  path: string,
  tuples: readonly MinedTuple[],
  format: MinedFormat,
): Promise<void> {
  const lines: string[] = [];
  for (const t of tuples) {
    if (t.negs.length === 0) continue;
    if (format === "tuples") {
      lines.push(JSON.stringify({
        qid: t.qid,
        pos: t.pos,
        negs: t.negs,
        score_pos: t.scorePos,
        scores_neg: t.scoresNeg,
      }));
    } else {
      t.negs.forEach((neg, i) =>
        lines.push(JSON.stringify({
          qid: t.qid,
          pos: t.pos,
          neg,
          score_pos: t.scorePos,
          score_neg: t.scoresNeg[i],
        }))
      );
    }
  }
  await writeTextFileAtomic(path, lines.length ? lines.join("\n") + "\n" : "");
}
