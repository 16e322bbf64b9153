/**
 * Margin-MSE (Hofstätter et al. 2020): teacher distillation on the cosine margin. WGSL in
 * `kernels/margin_mse.wgsl` (the loss over cosines) and `kernels/similarity.wgsl` (the cosines).
 *
 * Dimension legend: B triples (q_j, p_j, n_j), embeddings Q, P, N of B x D; the teacher's scores
 * t(q_j, p_j) and t(q_j, n_j) are B numbers each.
 *
 * loss = mean_j (m_j - (t(q_j, p_j) - t(q_j, n_j)))², m_j = cos(q_j, p_j) - cos(q_j, n_j).
 *
 * @module
 */
import type { Tape } from "../autodiff/tape.ts";
import { dispatch, pipeline } from "../gpu/kernels.ts";
import { params } from "../gpu/params.ts";
import { Tensor } from "../gpu/tensor.ts";
import { cosineSimilarityRows } from "../ops/similarity.ts";
import { numericJsonId, parseCNumber, readLines, whitespaceFields } from "../data/lines.ts";
import { DataFormatError } from "../data/types.ts";
import {
  LOSS_KERNEL_CONSTANTS,
  type LossResult,
  notOnTape,
  recordLoss,
  runLoss,
} from "./common.ts";

/** The teacher's scores of each triple's positive and negative, B numbers each. */
export interface TeacherScores {
  /** t(q_j, p_j). */
  pos: ArrayLike<number>;
  /** t(q_j, n_j). */
  neg: ArrayLike<number>;
}

/** Options of {@link marginMseLoss}. */
export interface MarginMseOptions {
  /** Norm floor of the cosines. Default 1e-8. */
  eps?: number;
}

/** Options of {@link marginMseLossTensor}: {@link MarginMseOptions} plus the tape. */
export interface MarginMseTensorOptions extends MarginMseOptions {
  /** Record the backward steps here. */
  tape?: Tape;
}

function teacherData(teacher: TeacherScores, b: number): Float32Array {
  const data = new Float32Array(2 * b);
  for (const [offset, name] of [[0, "pos"], [b, "neg"]] as const) {
    const scores = teacher?.[name];
    if (!scores || scores.length !== b) {
      throw new RangeError(
        `marginMseLoss: teacher.${name} has ${scores?.length ?? 0} scores for ${b} triples`,
      );
    }
    for (let j = 0; j < b; j++) {
      if (!Number.isFinite(scores[j])) {
        throw new RangeError(`marginMseLoss: teacher.${name}[${j}] is ${scores[j]}`);
      }
      data[offset + j] = scores[j];
    }
  }
  return data;
}

/**
 * The Margin-MSE loss of Q, P, N (B x D tensors) against teacher scores, as a [1] tensor; with
 * `tape`, the backward steps are recorded (the teacher scores are constants).
 *
 * @example
 * ```ts
 * const loss = await marginMseLossTensor(q, p, n, { pos: [9.1, 7.5], neg: [3.2, 6.9] }, { tape });
 * ```
 */
export async function marginMseLossTensor(
  q: Tensor,
  p: Tensor,
  n: Tensor,
  teacher: TeacherScores,
  opts: MarginMseTensorOptions = {},
): Promise<Tensor> {
  for (const [name, t] of [["p", p], ["n", n]] as const) {
    if (t.shape.length !== 2 || q.shape.length !== 2 || t.shape.join() !== q.shape.join()) {
      throw new RangeError(`marginMseLoss: q is [${q.shape}], ${name} is [${t.shape}]: both B x D`);
    }
  }
  const gpu = q.gpu;
  const tape = opts.tape;
  const b = q.shape[0];
  const scores = Tensor.from(gpu, teacherData(teacher, b), [2 * b], "f32", "teacher scores");
  const onTape = { tape, eps: opts.eps, releaseAfterBackward: true };
  const pos = await cosineSimilarityRows(q, p, onTape);
  const neg = await cosineSimilarityRows(q, n, onTape);
  const loss = Tensor.zeros(gpu, [1], "f32", "margin-mse loss");
  dispatch(gpu, {
    pipeline: await pipeline(gpu, "margin_mse.wgsl", "margin_mse_forward", LOSS_KERNEL_CONSTANTS),
    buffers: [pos, neg, scores, loss],
    params: params({ batch: b, mode: 0 }),
    workgroups: [1],
  });
  const owned = [...notOnTape(tape, [pos, neg]), scores];
  recordLoss(tape, "marginMseLoss", [pos, neg], loss, owned, async () => {
    const dLoss = tape!.grad(loss)!;
    const backward = await pipeline(
      gpu,
      "margin_mse.wgsl",
      "margin_mse_backward",
      LOSS_KERNEL_CONSTANTS,
    );
    for (const [mode, t] of [[0, pos], [1, neg]] as const) {
      const d = tape!.grad(t);
      if (!d) continue;
      dispatch(gpu, {
        pipeline: backward,
        buffers: [pos, neg, scores, dLoss, d],
        params: params({ batch: b, mode }),
        workgroups: [Math.ceil(b / LOSS_KERNEL_CONSTANTS.GRAD_WG)],
      });
    }
  });
  return loss;
}

/**
 * Margin-MSE and its gradients w.r.t. Q, P and N for embeddings given as plain arrays (B rows of
 * D numbers) and teacher scores given as arrays of B numbers, computed by the WGSL kernels.
 * Asynchronous: it returns a Promise; invalid input rejects it.
 *
 * @example
 * ```ts
 * const { loss, dq } = await marginMseLoss(q, p, n, { pos: teacherPos, neg: teacherNeg });
 * ```
 */
export async function marginMseLoss(
  q: readonly (readonly number[])[],
  p: readonly (readonly number[])[],
  n: readonly (readonly number[])[],
  teacher: TeacherScores,
  options: MarginMseOptions = {},
): Promise<LossResult> {
  teacherData(teacher, q.length);
  return await runLoss(
    q,
    p,
    n,
    (tape, tq, tp, tn) => marginMseLossTensor(tq, tp, tn!, teacher, { ...options, tape }),
  );
}

/** One teacher-scored triple of a teacher file. */
export interface TeacherRow {
  /** Query id. */
  qid: string;
  /** Positive document id. */
  pos: string;
  /** Negative document id. */
  neg: string;
  /** The teacher's score of (query, positive). */
  scorePos: number;
  /** The teacher's score of (query, negative). */
  scoreNeg: number;
  /** 1-based line of the file it came from. */
  lineNo: number;
}

/** The rows of a teacher file, in file order, with lookup by (qid, pos, neg). */
export interface TeacherScoreFile {
  /** The file read. */
  path: string;
  /** Every row, in file order. */
  rows: TeacherRow[];
  /** The row of a triple, if the file scores it. */
  get(qid: string, pos: string, neg: string): TeacherRow | undefined;
}

function teacherKey(qid: string, pos: string, neg: string): string {
  return `${qid}\t${pos}\t${neg}`;
}

/**
 * A teacher score: a JSON number, or text read as C's strtod reads it (`1.5e1`, `inf`, `nan`,
 * any case). It must be finite: an infinite or NaN teacher margin would make the loss infinite
 * or NaN, so `inf` and `nan` are refused with a message that says so.
 */
function teacherNumber(path: string, lineNo: number, name: string, v: unknown): number {
  const x = typeof v === "string" ? parseCNumber(v.trim()) : v;
  if (typeof x !== "number") {
    throw new DataFormatError(path, lineNo, `${name} '${String(v)}' is not a finite number`);
  }
  if (!Number.isFinite(x)) {
    const what = Number.isNaN(x) ? "NaN" : "infinite";
    throw new DataFormatError(
      path,
      lineNo,
      `${name} '${String(v)}' is not a finite number (it is ${what}, and so would be the ` +
        `Margin-MSE loss)`,
    );
  }
  return x;
}

function teacherId(path: string, lineNo: number, name: string, v: unknown): string {
  if (typeof v === "number") return numericJsonId(path, lineNo, name, v);
  if (typeof v === "string" && v.trim() !== "") return v.trim();
  throw new DataFormatError(path, lineNo, `missing or empty "${name}"`);
}

/**
 * Reads teacher scores for Margin-MSE: the MS MARCO style TSV of Hofstätter et al.
 * (`score_pos score_neg qid pid_pos pid_neg`, tab- or space-separated, no header), or JSONL
 * (chosen by a `.jsonl`/`.json` name or a first line starting with `{`) whose lines are triples
 * `{"qid", "pos", "neg", "score_pos", "score_neg"}` or tuples `{"qid", "pos", "negs",
 * "score_pos", "scores_neg"}` (the miner's two layouts, `writeMined`, mixed freely): a tuple
 * scores each triple (qid, pos, negs[i]) with the pair (score_pos, scores_neg[i]). Errors name
 * the file and line (a missing score, `negs` and `scores_neg` of different lengths, a line with
 * both `neg` and `negs`); a triple scored twice with different scores is an error (repeated
 * identical scores are kept once).
 *
 * @example
 * ```ts
 * const teacher = await readTeacherScores("bert_cat_ensemble_msmarcopassage_train_scores_ids.tsv");
 * const row = teacher.get("1185869", "1", "2");
 * ```
 */
export async function readTeacherScores(path: string): Promise<TeacherScoreFile> {
  const rows: TeacherRow[] = [];
  const index = new Map<string, TeacherRow>();
  let jsonl: boolean | null = /\.jsonl?$/i.test(path) ? true : null;
  for await (const { text, lineNo } of readLines(path)) {
    if (text.trim() === "") continue;
    jsonl ??= text.trimStart().startsWith("{");
    const found: TeacherRow[] = [];
    if (jsonl) {
      let o: unknown;
      try {
        o = JSON.parse(text);
      } catch (e) {
        throw new DataFormatError(path, lineNo, `invalid JSON: ${(e as Error).message}`);
      }
      if (typeof o !== "object" || o === null || Array.isArray(o)) {
        throw new DataFormatError(path, lineNo, "expected a JSON object");
      }
      const r = o as Record<string, unknown>;
      const tuple = "negs" in r || "scores_neg" in r;
      if (tuple && "neg" in r) {
        throw new DataFormatError(
          path,
          lineNo,
          `both "neg" (a triple) and "negs" or "scores_neg" (a tuple): write one layout per line`,
        );
      }
      const keys = ["score_pos", tuple ? "negs" : "neg", tuple ? "scores_neg" : "score_neg"];
      for (const key of keys) {
        if (!(key in r)) throw new DataFormatError(path, lineNo, `missing "${key}"`);
      }
      const qid = teacherId(path, lineNo, "qid", r.qid);
      const pos = teacherId(path, lineNo, "pos", r.pos);
      const scorePos = teacherNumber(path, lineNo, "score_pos", r.score_pos);
      if (tuple) {
        const { negs, scores_neg: scores } = r;
        const notArray = (key: string, v: unknown, what: string) =>
          new DataFormatError(
            path,
            lineNo,
            `"${key}" must be an array of ${what}, found ${JSON.stringify(v)}`,
          );
        if (!Array.isArray(negs)) throw notArray("negs", negs, "ids");
        if (!Array.isArray(scores)) throw notArray("scores_neg", scores, "scores");
        if (negs.length !== scores.length) {
          throw new DataFormatError(
            path,
            lineNo,
            `"negs" has ${negs.length} ids but "scores_neg" has ${scores.length} scores: ` +
              "each negative needs its score",
          );
        }
        if (negs.length === 0) {
          throw new DataFormatError(path, lineNo, `"negs" is empty: a tuple scores no triple`);
        }
        negs.forEach((n, i) =>
          found.push({
            qid,
            pos,
            neg: teacherId(path, lineNo, `negs[${i}]`, n),
            scorePos,
            scoreNeg: teacherNumber(path, lineNo, `scores_neg[${i}]`, scores[i]),
            lineNo,
          })
        );
      } else {
        found.push({
          qid,
          pos,
          neg: teacherId(path, lineNo, "neg", r.neg),
          scorePos,
          scoreNeg: teacherNumber(path, lineNo, "score_neg", r.score_neg),
          lineNo,
        });
      }
    } else {
      const f = whitespaceFields(text);
      if (f.length !== 5) {
        throw new DataFormatError(
          path,
          lineNo,
          `expected 5 fields (score_pos score_neg qid pid_pos pid_neg), found ${f.length}`,
        );
      }
      found.push({
        qid: f[2],
        pos: f[3],
        neg: f[4],
        scorePos: teacherNumber(path, lineNo, "score_pos", f[0]),
        scoreNeg: teacherNumber(path, lineNo, "score_neg", f[1]),
        lineNo,
      });
    }
    for (const row of found) {
      const key = teacherKey(row.qid, row.pos, row.neg);
      const prev = index.get(key);
      if (prev) {
        if (prev.scorePos !== row.scorePos || prev.scoreNeg !== row.scoreNeg) {
          throw new DataFormatError(
            path,
            lineNo,
            `triple (${row.qid}, ${row.pos}, ${row.neg}) scored differently ${
              prev.lineNo === lineNo ? "earlier on this line" : `on line ${prev.lineNo}`
            }`,
          );
        }
        continue;
      }
      index.set(key, row);
      rows.push(row);
    }
  }
  if (rows.length === 0) throw new DataFormatError(path, 0, "no teacher scores in the file");
  return { path, rows, get: (qid, pos, neg) => index.get(teacherKey(qid, pos, neg)) };
}
