/**
 * Training data: triples (query, positive, negative) from a BEIR directory's train qrels with
 * negatives mined by BM25, drawn at random or read from a file; triples from MS MARCO TSV files;
 * a validation split carved from the TRAIN queries; teacher scores attached for Margin-MSE; and
 * the BM25 candidates the validation re-ranks.
 *
 * Everything random is drawn from a seeded {@link Rng}, so equal inputs and seeds give equal
 * triples in equal order.
 *
 * @module
 */
import { readBeirCorpus, readBeirQrels, readBeirQueries } from "../data/beir.ts";
import { readLines, whitespaceFields } from "../data/lines.ts";
import {
  iterMsMarcoTripleLines,
  readMsMarcoCollection,
  readMsMarcoQrels,
  readMsMarcoQueries,
} from "../data/msmarco.ts";
import { compareCodePoints } from "../data/order.ts";
import { DataFormatError, type Doc, docText, type Qrels } from "../data/types.ts";
import { Bm25Index } from "../eval/bm25.ts";
import type { TeacherScoreFile } from "../losses/margin_mse.ts";
import { deriveSeed, Rng } from "../util/rng.ts";

/** One training triple: texts, and ids where the source has them. */
export interface Triple {
  /** Query text. */
  query: string;
  /** Positive document text. */
  positive: string;
  /** Negative document text. */
  negative: string;
  /** Query id. */
  qid?: string;
  /** Positive document id. */
  posId?: string;
  /** Negative document id. */
  negId?: string;
}

/** A set of judged queries: their texts and judgements. */
export interface QuerySet {
  /** Query id -> text. */
  queries: Map<string, string>;
  /** Query id -> document id -> grade. */
  qrels: Qrels;
}

/** Every (query, document) pair with relevance > 0, in qrels order. */
export function positivePairs(qrels: Qrels): [qid: string, docId: string][] {
  const out: [string, string][] = [];
  for (const [qid, docs] of qrels) {
    for (const [docId, grade] of docs) if (grade > 0) out.push([qid, docId]);
  }
  return out;
}

/** Options of {@link splitValidation}: the size of the validation set and the seed. */
export interface SplitOptions {
  /** Number of validation queries (exclusive with `fraction`). */
  count?: number;
  /** Fraction of the train queries (0 < f < 1), rounded, at least 1. */
  fraction?: number;
  /** Seed of the draw. */
  seed: number;
}

/**
 * Carves a validation set out of TRAIN queries: a seeded draw of queries that have at least one
 * relevant document. Returns the remaining train set and the validation set, each with its own
 * queries and qrels; a query lands in exactly one of them.
 *
 * @example
 * ```ts
 * const { train, validation } = splitValidation(trainSplit, { count: 50, seed: 1 });
 * ```
 */
export function splitValidation(
  set: QuerySet,
  opts: SplitOptions,
): { train: QuerySet; validation: QuerySet } {
  const eligible = [...set.qrels.keys()]
    .filter((q) => [...set.qrels.get(q)!.values()].some((g) => g > 0))
    .sort(compareCodePoints);
  let n: number;
  if (opts.count !== undefined && opts.fraction !== undefined) {
    throw new RangeError("validation split: give a count or a fraction, not both");
  } else if (opts.count !== undefined) {
    if (!Number.isInteger(opts.count) || opts.count < 1) {
      throw new RangeError(`validation split: count must be a positive integer: ${opts.count}`);
    }
    n = opts.count;
  } else if (opts.fraction !== undefined) {
    if (!(opts.fraction > 0 && opts.fraction < 1)) {
      throw new RangeError(`validation split: fraction must lie in (0, 1): ${opts.fraction}`);
    }
    n = Math.max(1, Math.round(opts.fraction * eligible.length));
  } else throw new RangeError("validation split: give a count or a fraction");
  if (n >= eligible.length) {
    throw new RangeError(
      `validation split: ${n} validation queries leave none of the ${eligible.length} train ` +
        "queries with relevant documents for training",
    );
  }
  const chosen = new Set(
    new Rng(deriveSeed(opts.seed, "validation")).shuffle(eligible).slice(0, n),
  );
  const pick = (keep: boolean): QuerySet => {
    const qrels: Qrels = new Map();
    const queries = new Map<string, string>();
    for (const [qid, docs] of set.qrels) {
      if (chosen.has(qid) !== keep) continue;
      qrels.set(qid, docs);
      const text = set.queries.get(qid);
      if (text !== undefined) queries.set(qid, text);
    }
    return { qrels, queries };
  };
  return { train: pick(false), validation: pick(true) };
}

/** Where the negatives of BEIR triples come from. */
export type NegativeSource =
  | { kind: "bm25"; depth?: number }
  | { kind: "random" }
  | { kind: "file"; path: string };

/** Options of {@link beirTriples}. */
export interface BeirTripleOptions {
  /** The negative source. */
  negatives: NegativeSource;
  /** Seed of the negative draws. */
  seed: number;
  /** A BM25 index over the corpus (built on demand for BM25 negatives when absent). */
  bm25?: Bm25Index;
  /**
   * Negatives per (query, positive) pair for BM25 and random negatives, distinct where the
   * candidates allow (the reference data has many per query, which makes data budgets meaningful
   * on small collections); the triples of a pair are consecutive. Default 1, which draws exactly
   * as before this option existed.
   */
  negativesPerPositive?: number;
}

/**
 * The ids of a JSON line of mined negatives: a triple `{"qid", "pos", "neg", ...}` or a tuple
 * `{"qid", "pos", "negs": [...], ...}` (src/train/mine.ts writes both).
 */
function minedLine(
  text: string,
  path: string,
  lineNo: number,
): { qid: string; posId: string; negIds: string[] } {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text);
  } catch (e) {
    throw new DataFormatError(path, lineNo, `not valid JSON (${(e as Error).message})`);
  }
  const id = (v: unknown, field: string): string => {
    if (typeof v === "string" && v !== "") return v;
    if (typeof v === "number" && Number.isSafeInteger(v)) return String(v);
    throw new DataFormatError(
      path,
      lineNo,
      `field ${field}: expected an id, got ${JSON.stringify(v)}`,
    );
  };
  const negIds = o.negs !== undefined
    ? (Array.isArray(o.negs) && o.negs.length ? o.negs.map((n, i) => id(n, `negs[${i}]`)) : (() => {
      throw new DataFormatError(path, lineNo, "field negs: expected a non-empty array of ids");
    })())
    : [id(o.neg, "neg")];
  return { qid: id(o.qid, "qid"), posId: id(o.pos, "pos"), negIds };
}

/** Counts that describe how triples were built. */
export interface TripleStats {
  /** Triples built. */
  triples: number;
  /** Distinct queries among them. */
  queries: number;
  /** BM25 triples whose query had no non-relevant document in its top depth: drawn at random. */
  randomFallbacks: number;
  /** Relevant (query, document) pairs skipped because the document is not in the corpus. */
  missingDocs: number;
  /** Judged queries with relevant documents, none of them in the corpus: they give no triple. */
  queriesWithoutPositives: number;
  /** Up to 5 of the missing documents' ids, for the message. */
  missingDocExamples: string[];
}

/**
 * Triples from judged queries: one per (query, relevant document) pair, the negative sampled
 * (seeded) from the query's BM25 top `depth` (default 100) minus every document the qrels mark
 * relevant for that query; or uniformly from the corpus minus those; or read from a file of
 * `qid pos_id neg_id` lines (tab- or space-separated), or of JSON lines of mined negatives
 * (`deno task mine`: triples `{"qid", "pos", "neg"}` or tuples `{"qid", "pos", "negs"}`), whose
 * ids must exist. A relevant document
 * missing from the corpus gives no triple: `stats` counts such pairs (`missingDocs`, with a few
 * ids) and the queries left without any triple by them (`queriesWithoutPositives`), for the
 * caller to report.
 *
 * @example
 * ```ts
 * const { triples } = await beirTriples(corpus, train, { negatives: { kind: "bm25" }, seed: 1 });
 * ```
 */
export async function beirTriples(
  corpus: Doc[],
  set: QuerySet,
  opts: BeirTripleOptions,
): Promise<{ triples: Triple[]; stats: TripleStats }> {
  const docs = new Map<string, string>();
  for (const d of corpus) docs.set(d.id, docText(d));
  const ids = corpus.map((d) => d.id);
  const rng = new Rng(deriveSeed(opts.seed, "negatives"));
  const stats: TripleStats = {
    triples: 0,
    queries: 0,
    randomFallbacks: 0,
    missingDocs: 0,
    queriesWithoutPositives: 0,
    missingDocExamples: [],
  };
  const triples: Triple[] = [];
  const pushTriple = (qid: string, query: string, posId: string, negId: string) =>
    triples.push({
      query,
      positive: docs.get(posId)!,
      negative: docs.get(negId)!,
      qid,
      posId,
      negId,
    });
  const queryText = (qid: string, where = "the queries"): string => {
    const t = set.queries.get(qid);
    if (t === undefined) throw new Error(`query '${qid}' has judgements but no text in ${where}`);
    return t;
  };
  const positivesOf = (qid: string): Set<string> =>
    new Set([...(set.qrels.get(qid) ?? [])].filter(([, g]) => g > 0).map(([d]) => d));
  const randomNegative = (positives: Set<string>): string => {
    for (let attempt = 0; attempt < 1000; attempt++) {
      const id = ids[rng.int(ids.length)];
      if (!positives.has(id)) return id;
    }
    throw new Error("random negatives: every sampled document is relevant");
  };

  const per = opts.negativesPerPositive ?? 1;
  if (!(Number.isInteger(per) && per >= 1)) {
    throw new RangeError(`negativesPerPositive must be a positive integer: ${per}`);
  }
  if (opts.negatives.kind === "file" && per !== 1) {
    throw new RangeError("negativesPerPositive applies to BM25 and random negatives, not a file");
  }
  if (opts.negatives.kind === "file") {
    const path = opts.negatives.path;
    for await (const { text, lineNo } of readLines(path)) {
      const t = text.trim();
      if (t === "" || t.startsWith("#")) continue;
      let qid: string, posId: string, negIds: string[];
      if (t.startsWith("{")) {
        ({ qid, posId, negIds } = minedLine(t, path, lineNo));
      } else {
        const f = whitespaceFields(text);
        if (f.length !== 3) {
          throw new DataFormatError(
            path,
            lineNo,
            `expected 3 fields (qid pos_id neg_id), found ${f.length}`,
          );
        }
        [qid, posId] = f;
        negIds = [f[2]];
      }
      if (!set.qrels.has(qid)) continue; // not a training query (validation, or unjudged)
      const query = set.queries.get(qid);
      if (query === undefined) throw new DataFormatError(path, lineNo, `unknown query '${qid}'`);
      for (const id of [posId, ...negIds]) {
        if (!docs.has(id)) throw new DataFormatError(path, lineNo, `unknown document '${id}'`);
      }
      for (const negId of negIds) {
        if (positivesOf(qid).has(negId)) {
          throw new DataFormatError(
            path,
            lineNo,
            `negative '${negId}' is judged relevant for query '${qid}'`,
          );
        }
        pushTriple(qid, query, posId, negId);
      }
    }
    if (triples.length === 0) {
      throw new DataFormatError(path, 0, "no triple of the file belongs to a training query");
    }
  } else {
    const kind = opts.negatives.kind;
    const depth = kind === "bm25" ? opts.negatives.depth ?? 100 : 0;
    const perPositive = opts.negativesPerPositive ?? 1;
    const bm25 = kind === "bm25" ? opts.bm25 ?? Bm25Index.build(corpus) : null;
    const candidates = new Map<string, string[]>();
    const lost = new Set<string>(), kept = new Set<string>();
    for (const [qid, posId] of positivePairs(set.qrels)) {
      if (!docs.has(posId)) {
        stats.missingDocs++;
        if (stats.missingDocExamples.length < 5) stats.missingDocExamples.push(posId);
        lost.add(qid);
        continue;
      }
      kept.add(qid);
      const query = queryText(qid);
      const positives = positivesOf(qid);
      let list: string[] | null = null;
      if (bm25) {
        list = candidates.get(qid) ?? null;
        if (!list) {
          list = bm25.search(query, depth).docIds.filter((d) => !positives.has(d));
          candidates.set(qid, list);
        }
      }
      const negIds: string[] = [];
      if (perPositive === 1) {
        // One draw per pair, as the trainer always drew (runs stay reproducible).
        if (list?.length) negIds.push(list[rng.int(list.length)]);
        else {
          if (list) stats.randomFallbacks++;
          negIds.push(randomNegative(positives));
        }
      } else {
        // Distinct candidates first (a partial Fisher-Yates shuffle), then distinct random
        // documents when the candidates run out.
        const pool = list ? [...list] : [];
        for (let i = 0; i < Math.min(perPositive, pool.length); i++) {
          const j = i + rng.int(pool.length - i);
          [pool[i], pool[j]] = [pool[j], pool[i]];
          negIds.push(pool[i]);
        }
        const taken = new Set(negIds);
        for (
          let attempt = 0;
          negIds.length < perPositive && attempt < 100 * perPositive;
          attempt++
        ) {
          const id = randomNegative(positives);
          if (taken.has(id)) continue;
          taken.add(id);
          negIds.push(id);
          if (list) stats.randomFallbacks++;
        }
      }
      for (const negId of negIds) pushTriple(qid, query, posId, negId);
    }
    stats.queriesWithoutPositives = [...lost].filter((q) => !kept.has(q)).length;
  }
  stats.triples = triples.length;
  stats.queries = new Set(triples.map((t) => t.qid)).size;
  return { triples, stats };
}

/**
 * The warning a caller prints when relevant documents were missing from the corpus (see
 * {@link TripleStats}), or null when none were.
 *
 * @example
 * ```ts
 * const warning = missingPositivesWarning(stats);
 * if (warning) console.error(`warning: ${warning}`);
 * ```
 */
export function missingPositivesWarning(stats: TripleStats): string | null {
  if (stats.missingDocs === 0) return null;
  const n = stats.missingDocs, q = stats.queriesWithoutPositives;
  const more = n > stats.missingDocExamples.length ? ", ..." : "";
  return `${n} relevant train ${n === 1 ? "document is" : "documents are"} not in the corpus ` +
    `(${stats.missingDocExamples.join(", ")}${more}): ${
      n === 1 ? "its pair was" : "their pairs were"
    } ` +
    `dropped, leaving ${q} train ${q === 1 ? "query" : "queries"} without any positive`;
}

/** A BEIR dataset prepared for training: corpus, train set, optional validation set. */
export interface BeirTraining {
  /** Every document. */
  corpus: Doc[];
  /** The train queries left after carving the validation set. */
  train: QuerySet;
  /** The validation queries (from train), when asked for. */
  validation?: QuerySet;
}

/**
 * Loads a BEIR directory's train split (`qrels/train.tsv`; test is never read) and carves a
 * validation set from it when `validation` is given.
 */
export async function loadBeirTraining(
  dir: string,
  validation?: Omit<SplitOptions, "seed">,
  seed = 0,
): Promise<BeirTraining> {
  const qrels = await readBeirQrels(`${dir}/qrels/train.tsv`).catch((e) => {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`${dir}/qrels/train.tsv: not found; training needs a train split`);
    }
    throw e;
  });
  const all = await readBeirQueries(`${dir}/queries.jsonl`);
  const queries = new Map<string, string>();
  for (const qid of qrels.keys()) {
    const t = all.get(qid);
    if (t === undefined) {
      throw new DataFormatError(`${dir}/queries.jsonl`, 0, `train query '${qid}' missing`);
    }
    queries.set(qid, t);
  }
  const corpus = await readBeirCorpus(`${dir}/corpus.jsonl`);
  const set = { queries, qrels };
  if (!validation) return { corpus, train: set };
  const split = splitValidation(set, { ...validation, seed });
  return { corpus, ...split };
}

/** Options of {@link msmarcoTriples}. */
export interface MsMarcoTripleOptions {
  /** `queries.train.tsv`: with `collection`, the triples file holds ids. */
  queries?: string;
  /** `collection.tsv`. */
  collection?: string;
  /** Read at most this many triples. */
  limit?: number;
  /** Skip triples of these queries (a validation set). */
  exclude?: Set<string>;
}

/**
 * Triples from an MS MARCO TSV file: `query<TAB>positive<TAB>negative` texts, or, with
 * `queries` and `collection`, `qid<TAB>pid+<TAB>pid-` ids resolved against them (an unknown id
 * is an error naming file and line).
 */
export async function msmarcoTriples(
  path: string,
  opts: MsMarcoTripleOptions = {},
): Promise<Triple[]> {
  if ((opts.queries === undefined) !== (opts.collection === undefined)) {
    throw new Error("MS MARCO triples: give both queries and collection, or neither");
  }
  const queries = opts.queries ? await readMsMarcoQueries(opts.queries) : null;
  const collection = opts.collection ? await readMsMarcoCollection(opts.collection) : null;
  const out: Triple[] = [];
  for await (const { triple: [q, p, n], lineNo } of iterMsMarcoTripleLines(path)) {
    if (opts.limit !== undefined && out.length >= opts.limit) break;
    if (!queries || !collection) {
      out.push({ query: q, positive: p, negative: n });
      continue;
    }
    const [qid, posId, negId] = [q.trim(), p.trim(), n.trim()];
    if (opts.exclude?.has(qid)) continue;
    const query = queries.get(qid);
    if (query === undefined) throw new DataFormatError(path, lineNo, `unknown query '${qid}'`);
    const pos = collection.get(posId), neg = collection.get(negId);
    if (pos === undefined) throw new DataFormatError(path, lineNo, `unknown passage '${posId}'`);
    if (neg === undefined) throw new DataFormatError(path, lineNo, `unknown passage '${negId}'`);
    out.push({ query, positive: pos, negative: neg, qid, posId, negId });
  }
  if (out.length === 0) throw new DataFormatError(path, 0, "no triples");
  return out;
}

/**
 * MS MARCO files prepared for training with a validation set carved from the TRAIN qrels:
 * the validation queries' triples are dropped; validation re-ranks BM25 over the collection.
 */
export async function loadMsMarcoTraining(opts: {
  triples: string;
  queries: string;
  collection: string;
  qrels?: string;
  validation?: Omit<SplitOptions, "seed">;
  seed: number;
  limit?: number;
}): Promise<{ triples: Triple[]; corpus: Doc[]; validation?: QuerySet }> {
  let validation: QuerySet | undefined;
  if (opts.validation) {
    if (!opts.qrels) throw new Error("MS MARCO validation needs the train qrels (--qrels)");
    const qrels = await readMsMarcoQrels(opts.qrels);
    const queries = await readMsMarcoQueries(opts.queries);
    validation = splitValidation({ queries, qrels }, { ...opts.validation, seed: opts.seed })
      .validation;
  }
  const triples = await msmarcoTriples(opts.triples, {
    queries: opts.queries,
    collection: opts.collection,
    limit: opts.limit,
    exclude: validation ? new Set(validation.qrels.keys()) : undefined,
  });
  const corpus: Doc[] = [];
  if (validation) {
    for (const [id, text] of await readMsMarcoCollection(opts.collection)) {
      corpus.push({ id, title: "", text });
    }
  }
  return { triples, corpus, validation };
}

/**
 * Teacher scores for each triple, from a teacher file (see `readTeacherScores`): throws naming
 * the file and the first triple it does not score.
 */
export function teacherScoresFor(
  triples: readonly Triple[],
  teacher: TeacherScoreFile,
): { pos: Float32Array; neg: Float32Array } {
  const pos = new Float32Array(triples.length), neg = new Float32Array(triples.length);
  triples.forEach((t, i) => {
    if (t.qid === undefined || t.posId === undefined || t.negId === undefined) {
      throw new Error(
        `${teacher.path}: Margin-MSE needs triples with ids (qid, pos_id, neg_id); triple ${i} ` +
          "was given as text",
      );
    }
    const row = teacher.get(t.qid, t.posId, t.negId);
    if (!row) {
      throw new Error(
        `${teacher.path}: no teacher score for triple (${t.qid}, ${t.posId}, ${t.negId})`,
      );
    }
    pos[i] = row.scorePos;
    neg[i] = row.scoreNeg;
  });
  return { pos, neg };
}

/**
 * Triples defined by a teacher file itself (as Hofstätter et al.'s MS MARCO score files are):
 * each row's ids resolved against the queries and documents, with its scores.
 */
export function teacherTriples(
  teacher: TeacherScoreFile,
  queries: Map<string, string>,
  docs: Map<string, string>,
  exclude?: Set<string>,
): { triples: Triple[]; pos: Float32Array; neg: Float32Array } {
  const rows = teacher.rows.filter((r) => !exclude?.has(r.qid));
  const triples = rows.map((r): Triple => {
    const query = queries.get(r.qid);
    if (query === undefined) {
      throw new DataFormatError(teacher.path, r.lineNo, `unknown query '${r.qid}'`);
    }
    const [positive, negative] = [docs.get(r.pos), docs.get(r.neg)];
    if (positive === undefined) {
      throw new DataFormatError(teacher.path, r.lineNo, `unknown document '${r.pos}'`);
    }
    if (negative === undefined) {
      throw new DataFormatError(teacher.path, r.lineNo, `unknown document '${r.neg}'`);
    }
    return { query, positive, negative, qid: r.qid, posId: r.pos, negId: r.neg };
  });
  return {
    triples,
    pos: Float32Array.from(rows, (r) => r.scorePos),
    neg: Float32Array.from(rows, (r) => r.scoreNeg),
  };
}

/** A validation set ready to score: queries, qrels, and each query's BM25 candidates. */
export interface ValidationData extends QuerySet {
  /** Query id -> the BM25 top-K document ids it re-ranks. */
  candidates: Map<string, string[]>;
  /** Document id -> text, for every candidate. */
  docs: Map<string, string>;
}

/**
 * Prepares validation: each validation query's BM25 top `depth` (the candidates the model
 * re-ranks, as the reference validates) and the texts of those documents.
 */
export function validationData(
  corpus: Doc[],
  set: QuerySet,
  depth: number,
  bm25: Bm25Index = Bm25Index.build(corpus),
): ValidationData {
  const byId = new Map(corpus.map((d) => [d.id, d]));
  const candidates = new Map<string, string[]>();
  const docs = new Map<string, string>();
  for (const [qid, text] of set.queries) {
    const ids = bm25.search(text, depth).docIds;
    candidates.set(qid, ids);
    for (const id of ids) docs.set(id, docText(byId.get(id)!));
  }
  return { ...set, candidates, docs };
}

/** A short content hash of the triples (ids where present, else texts), to check a resume. */
export function tripleFingerprint(triples: readonly Triple[]): string {
  let h = 0x811c9dc5;
  const mix = (s: string) => {
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    h ^= 0x1f;
    h = Math.imul(h, 0x01000193) >>> 0;
  };
  for (const t of triples) {
    mix(t.qid ?? t.query);
    mix(t.posId ?? t.positive);
    mix(t.negId ?? t.negative);
  }
  return `${triples.length}:${h.toString(16).padStart(8, "0")}`;
}

/** Options of {@link beirTrainingTriples}. */
export interface BeirTrainingTriplesOptions {
  /** The validation set carved from train (none when absent). */
  validation?: Omit<SplitOptions, "seed">;
  /** Seed of the validation draw and of the negatives. */
  seed: number;
  /** Where negatives come from. */
  negatives: NegativeSource;
  /** Negatives per (query, positive) pair (BM25 and random). Default 1. */
  negativesPerPositive?: number;
  /** Progress notes (indexing, counts, missing documents). Default: none. */
  log?: (message: string) => void;
}

/**
 * A BEIR directory's training data as `deno task train` builds it: the train split with a
 * validation set carved from it, a BM25 index when negatives or validation need one, and the
 * triples. `deno task teacher` calls it with the same flags, so a teacher file scores exactly the
 * triples the trainer draws.
 */
export async function beirTrainingTriples(
  dir: string,
  opts: BeirTrainingTriplesOptions,
): Promise<BeirTraining & { triples: Triple[]; stats: TripleStats; bm25?: Bm25Index }> {
  const say = opts.log ?? (() => {});
  const beir = await loadBeirTraining(dir, opts.validation, opts.seed);
  let bm25: Bm25Index | undefined;
  if (opts.negatives.kind === "bm25" || beir.validation) {
    say(`indexing ${beir.corpus.length} documents for BM25`);
    bm25 = Bm25Index.build(beir.corpus);
  }
  const built = await beirTriples(beir.corpus, beir.train, {
    negatives: opts.negatives,
    seed: opts.seed,
    bm25,
    negativesPerPositive: opts.negativesPerPositive,
  });
  say(
    `${built.stats.triples} triples from ${built.stats.queries} train queries` +
      (built.stats.randomFallbacks ? ` (${built.stats.randomFallbacks} random fallbacks)` : "") +
      (beir.validation
        ? `; ${beir.validation.qrels.size} validation queries carved from train`
        : ""),
  );
  const missing = missingPositivesWarning(built.stats);
  if (missing) say(`warning: ${missing}`);
  return { ...beir, triples: built.triples, stats: built.stats, bm25 };
}
