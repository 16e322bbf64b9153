/**
 * Teachers for Margin-MSE: score every training triple's (query, positive) and (query,
 * negative) and write the teacher file the trainer reads (`readTeacherScores`). A teacher is
 * (i) any encoder the library loads, scoring by cosine; (ii) a BERT cross-encoder
 * (src/models/cross_encoder.ts), scoring by its logit; or (iii) the mean of other teachers'
 * scores, each z-normalised over all the scores it gave (so teachers on different scales weigh
 * alike).
 *
 * Each distinct text (encoders) or distinct pair (cross-encoders) is scored once, however many
 * triples share it.
 *
 * @example
 * ```ts
 * const teacher = encoderTeacher(gpu, await loadEncoder(gpu, "use-lite"));
 * const scores = await teacher.score(triples);
 * await writeTeacherFile("teacher.jsonl", triples, scores);
 * ```
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { type CrossEncoder, crossEncoderScores } from "../models/cross_encoder.ts";
import { encodeTexts } from "../models/encode.ts";
import type { LoadedEncoder } from "../models/hf.ts";
import type { TextRole } from "../models/st_layout.ts";
import type { Triple } from "../train/data.ts";
import { writeTextFileAtomic } from "../util/fs.ts";

/** A teacher's scores of each triple's positive and negative, in triple order. */
export interface TripleScores {
  /** t(q_j, p_j). */
  pos: Float64Array;
  /** t(q_j, n_j). */
  neg: Float64Array;
}

/** Progress of a teacher: items (texts or pairs) scored of the total. */
export type TeacherProgress = (done: number, total: number) => void;

/** Something that scores triples. */
export interface Teacher {
  /** What it is, for reports (e.g. `encoder use-lite`). */
  readonly name: string;
  /** Scores every triple's positive and negative. */
  score(triples: readonly Triple[], onProgress?: TeacherProgress): Promise<TripleScores>;
}

/** Options of the encoder and cross-encoder teachers. */
export interface TeacherOptions {
  /** Texts or pairs per GPU batch. */
  batchSize?: number;
  /** Longest input in tokens (at most the model's). */
  maxLength?: number;
}

/** Distinct values of `items` by key, and each item's index into them. */
function distinct<T>(items: readonly T[], key: (x: T) => string): { values: T[]; index: number[] } {
  const at = new Map<string, number>();
  const values: T[] = [];
  const index = items.map((x) => {
    const k = key(x);
    let i = at.get(k);
    if (i === undefined) {
      i = values.length;
      at.set(k, i);
      values.push(x);
    }
    return i;
  });
  return { values, index };
}

/**
 * A teacher scoring with an encoder's cosine (in float64 over its f32 embeddings; the
 * embeddings need not be normalised).
 */
export function encoderTeacher(
  gpu: Gpu,
  model: LoadedEncoder,
  name: string,
  opts: TeacherOptions = {},
): Teacher {
  return {
    name: `encoder ${name}`,
    async score(triples, onProgress) {
      // Queries and documents apart: each role gets the model's prompt for it.
      const qs = distinct(triples.map((t) => t.query), (t) => t);
      const ds = distinct(triples.flatMap((t) => [t.positive, t.negative]), (t) => t);
      const total = qs.values.length + ds.values.length;
      const embed = async (values: string[], role: TextRole, before: number) => {
        const { data, dim } = await encodeTexts(gpu, model, values, {
          batchSize: opts.batchSize,
          maxLength: opts.maxLength,
          role,
          onProgress: (done) => onProgress?.(before + done, total),
        });
        const norms = new Float64Array(values.length);
        for (let i = 0; i < values.length; i++) {
          let s = 0;
          for (let d = 0; d < dim; d++) s += data[i * dim + d] ** 2;
          norms[i] = Math.max(Math.sqrt(s), 1e-12);
        }
        return { data, dim, norms };
      };
      const q = await embed(qs.values, "query", 0);
      const d = await embed(ds.values, "document", qs.values.length);
      const cos = (a: number, b: number) => {
        let s = 0;
        for (let k = 0; k < q.dim; k++) s += q.data[a * q.dim + k] * d.data[b * d.dim + k];
        return s / (q.norms[a] * d.norms[b]);
      };
      const pos = new Float64Array(triples.length), neg = new Float64Array(triples.length);
      for (let j = 0; j < triples.length; j++) {
        pos[j] = cos(qs.index[j], ds.index[2 * j]);
        neg[j] = cos(qs.index[j], ds.index[2 * j + 1]);
      }
      return { pos, neg };
    },
  };
}

/** A teacher scoring with a BERT cross-encoder's logit. */
export function crossEncoderTeacher(
  gpu: Gpu,
  ce: CrossEncoder,
  name: string,
  opts: TeacherOptions = {},
): Teacher {
  return {
    name: `cross-encoder ${name}`,
    async score(triples, onProgress) {
      const pairs = triples.flatMap((t) => [[t.query, t.positive], [t.query, t.negative]] as const);
      const { values, index } = distinct(pairs, ([q, d]) => `${q}\u0000${d}`);
      const logits = await crossEncoderScores(gpu, ce, values, {
        batchSize: opts.batchSize,
        maxLength: opts.maxLength,
        onProgress: (done) => onProgress?.(done, values.length),
      });
      const pos = new Float64Array(triples.length), neg = new Float64Array(triples.length);
      for (let j = 0; j < triples.length; j++) {
        pos[j] = logits[index[2 * j]];
        neg[j] = logits[index[2 * j + 1]];
      }
      return { pos, neg };
    },
  };
}

/**
 * Z-normalises scores over all of them (positives and negatives together): (x - mean) / std,
 * the population std; a constant teacher maps to zeros.
 */
export function zNormalise(s: TripleScores): TripleScores {
  const n = s.pos.length + s.neg.length;
  if (n === 0) return { pos: new Float64Array(), neg: new Float64Array() };
  let sum = 0;
  for (const x of s.pos) sum += x;
  for (const x of s.neg) sum += x;
  const mean = sum / n;
  let sq = 0;
  for (const x of s.pos) sq += (x - mean) ** 2;
  for (const x of s.neg) sq += (x - mean) ** 2;
  const std = Math.sqrt(sq / n);
  const f = (x: number) => std > 0 ? (x - mean) / std : 0;
  return { pos: s.pos.map(f), neg: s.neg.map(f) };
}

/** The mean of other teachers' z-normalised scores. */
export function meanTeacher(members: readonly Teacher[]): Teacher {
  if (members.length === 0) throw new RangeError("a mean teacher needs at least one member");
  return {
    name: `mean of z-normalised ${members.map((m) => m.name).join(", ")}`,
    async score(triples, onProgress) {
      const pos = new Float64Array(triples.length), neg = new Float64Array(triples.length);
      for (const m of members) {
        const z = zNormalise(await m.score(triples, onProgress));
        for (let j = 0; j < triples.length; j++) {
          pos[j] += z.pos[j] / members.length;
          neg[j] += z.neg[j] / members.length;
        }
      }
      return { pos, neg };
    },
  };
}

/**
 * Writes a teacher file (JSON Lines `{"qid", "pos", "neg", "score_pos", "score_neg"}`, what
 * `readTeacherScores` reads) atomically: `path` is replaced only once every line is written.
 * Every triple needs its ids (`qid`, `posId`, `negId`), and every score must be finite.
 */
export async function writeTeacherFile(
  path: string,
  triples: readonly Triple[],
  scores: TripleScores,
): Promise<void> {
  if (scores.pos.length !== triples.length || scores.neg.length !== triples.length) {
    throw new RangeError(
      `writeTeacherFile: ${scores.pos.length}/${scores.neg.length} scores for ${triples.length} triples`,
    );
  }
  const lines: string[] = [];
  const seen = new Set<string>();
  triples.forEach((t, j) => {
    if (t.qid === undefined || t.posId === undefined || t.negId === undefined) {
      throw new RangeError(`writeTeacherFile: triple ${j} has no ids (qid, posId, negId)`);
    }
    const [sp, sn] = [scores.pos[j], scores.neg[j]];
    if (!Number.isFinite(sp) || !Number.isFinite(sn)) {
      throw new RangeError(`writeTeacherFile: triple ${j} (${t.qid}) has scores ${sp}, ${sn}`);
    }
    const key = `${t.qid}\t${t.posId}\t${t.negId}`;
    if (seen.has(key)) return; // a repeated triple has the same scores: one line
    seen.add(key);
    lines.push(
      JSON.stringify({ qid: t.qid, pos: t.posId, neg: t.negId, score_pos: sp, score_neg: sn }),
    );
  });
  await writeTextFileAtomic(path, lines.map((l) => l + "\n").join(""));
}
