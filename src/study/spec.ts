/**
 * Study specs: what `deno task study` runs. A study is a dataset, a base model, shared training
 * settings, seeds, data budgets, and arms; an arm is one training configuration (a margin loss
 * with a static, adaptive or distributed target, a static-margin sweep, Margin-MSE with a named
 * teacher, or InfoNCE). {@link parseStudySpec} checks a spec completely before anything trains,
 * naming the offending field (`arms[2].kind: ...`); {@link expandRuns} turns it into the runs:
 * arm x seed x budget, with a static sweep expanded into one run per margin value, each run keyed
 * by a hash of exactly the settings that determine it, so a rerun can skip finished runs and
 * refuse a directory whose run has different settings.
 *
 * Data budgets are nested: {@link budgetSubset} takes the first `ceil(budget·n)` triples of one
 * permutation per data seed, so the 25% subset lies inside the 50% one.
 *
 * @example
 * ```ts
 * const spec = parseStudySpec(JSON.parse(await Deno.readTextFile("study.json")), "study.json");
 * for (const run of await expandRuns(spec)) console.log(run.key, run.arm, run.seed, run.budget);
 * ```
 *
 * @module
 */
import { decodeUtf8, readTextFileStrict, splitLines, whitespaceFields } from "../data/lines.ts";
import { type MarginError, resolveMarginOptions } from "../losses/margin.ts";
import { Rng } from "../util/rng.ts";
import { sha256Hex } from "../util/hash.ts";
import type { Pooling } from "../models/config.ts";
import type { PromptOverrides } from "../models/st_layout.ts";

/** A spec that cannot be run; the message names the file and the field. */
export class StudySpecError extends Error {
  /**
   * Creates the error.
   * @param file the spec file (or a label)
   * @param field the field path, e.g. `arms[2].kind`
   * @param detail what is wrong
   */
  constructor(readonly file: string, readonly field: string, detail: string) {
    super(`${file}: ${field}: ${detail}`);
    this.name = "StudySpecError";
  }
}

/** Options shared by the margin-family arms. */
export interface MarginArmOptions {
  /** In-batch negatives (not with the distributed target). Default false. */
  inBatch: boolean;
  /** In-batch indexing: the reference's column-indexed positive, or per query. */
  inBatchIndexing: "reference" | "per-query";
  /** Treat the target as a constant. Default false (the reference keeps it attached). */
  detachTarget: boolean;
  /** The error function. Default l2. */
  error: MarginError;
}

/**
 * The training settings an arm may set for itself over the shared ones (for instance a learning
 * rate chosen for that loss on validation). The data settings (negatives, validation queries)
 * stay shared: every arm sees the same triples and validation.
 */
export type ArmTraining = Partial<
  Pick<
    StudyTraining,
    "batchSize" | "lr" | "queryLength" | "docLength" | "maxSteps" | "validateEvery" | "patience"
  >
>;

/** The keys of {@link ArmTraining}. */
export const ARM_TRAINING_KEYS: readonly (keyof ArmTraining)[] = Object.freeze([
  "batchSize",
  "lr",
  "queryLength",
  "docLength",
  "maxSteps",
  "validateEvery",
  "patience",
]);

/** One arm: a training configuration, run for every seed and budget. */
export type ArmSpec =
  & {
    name: string;
    /**
     * This arm's own training settings over the shared ones (absent: the shared ones). A run's
     * key holds the merged settings, so an arm whose override equals the shared value has the
     * key it would have without it.
     */
    training?: ArmTraining;
  }
  & (
    | ({ kind: "margin"; target: "adaptive" | "distributed" | number } & MarginArmOptions)
    | ({ kind: "static-sweep"; margins: number[] } & MarginArmOptions)
    | { kind: "margin-mse"; teacher: string }
    | { kind: "infonce"; scale: number }
  );

/** Training settings every run of the study shares. */
export interface StudyTraining {
  /** Triples per step. */
  batchSize: number;
  /** Learning rate. */
  lr: number;
  /** Query length in tokens. */
  queryLength: number;
  /** Document length in tokens. */
  docLength: number;
  /** Steps at most (one epoch of the budget's triples at most, as the reference). */
  maxSteps: number;
  /** Validate every this many steps. */
  validateEvery: number;
  /** Validations without improvement before stopping. */
  patience: number;
  /** BM25 negatives per (query, positive) pair: data budgets need several on small collections. */
  negativesPerPositive: number;
  /** Validation queries carved from the training split. */
  validationQueries: number;
  /**
   * Triples encoded at once with cached embedding gradients (GradCache; the same gradients,
   * memory bounded by the chunk). Absent: the whole batch at once.
   */
  chunkSize?: number;
  /**
   * A file of negatives (`deno task mine` JSON lines, or `qid pos neg` lines) instead of
   * `negativesPerPositive` BM25 draws: several per query, as mined. The SHA-256 of its content
   * is part of every run's key, so a changed file is a changed study.
   */
  negatives?: string;
}

/**
 * A teacher: an encoder's cosine, a cross-encoder's logit, a z-normalised mean of other
 * teachers, or the study's base model trained by the study itself with InfoNCE on every
 * training triple (the offline stand-in for a stronger model; its training is charged to the
 * arms that use it).
 */
export type TeacherSpec =
  | { kind: "encoder"; model: string }
  | { kind: "cross-encoder"; model: string }
  | { kind: "mean"; of: string[] }
  | TrainedTeacherSpec;

/**
 * A teacher the study trains: the base model with InfoNCE (in-batch and hard negatives) on all
 * the study's training triples, with the shared settings except those given here, validated
 * on the study's validation queries, its best checkpoint scoring by cosine.
 */
export interface TrainedTeacherSpec {
  /** `trained`. */
  kind: "trained";
  /** InfoNCE's logit scale. Default 20. */
  scale: number;
  /** Document tokens in its training and scoring. Default the shared `docLength`. */
  docLength: number;
  /** Steps at most (capped at one epoch of the triples). Default the shared `maxSteps`. */
  maxSteps: number;
}

/** A study's overrides of how its base model loads ({@link StudySpec.load}). */
export interface ModelLoadSpec {
  /** Pooling instead of the model's. */
  pooling?: Pooling;
  /** Prompts instead of the model's. */
  prompts?: PromptOverrides;
}

/** A parsed, checked study spec. */
export interface StudySpec {
  /** The dataset (a BEIR directory or a dataset name the resolver knows). */
  dataset: string;
  /** The base model every arm starts from. */
  model: string;
  /**
   * How the base model is loaded, beyond what its directory declares: a pooling and query and
   * document prompts (absent: the directory's).
   */
  load?: ModelLoadSpec;
  /** Shared training settings. */
  training: StudyTraining;
  /** Seeds: each arm runs once per seed and budget. */
  seeds: number[];
  /** Data budgets: fractions in (0, 1] of the training triples, nested. */
  budgets: number[];
  /** The seed of the permutation that defines the nested budget subsets. */
  dataSeed: number;
  /** The arms. */
  arms: ArmSpec[];
  /** Named teachers, referenced by Margin-MSE arms. */
  teachers: Record<string, TeacherSpec>;
  /** The arm the self-distillation arms are compared with (a Margin-MSE arm), if any. */
  reference: string | null;
  /** Equivalence margin for TOST on per-query nDCG@10. Default 0.02. */
  tostMargin: number;
}

/** Defaults of {@link StudyTraining} (the reference's settings, scaled to small collections). */
export const DEFAULT_STUDY_TRAINING: Readonly<StudyTraining> = Object.freeze({
  batchSize: 32,
  lr: 1e-5,
  queryLength: 32,
  docLength: 128,
  maxSteps: 1000,
  validateEvery: 20,
  patience: 16,
  negativesPerPositive: 8,
  validationQueries: 40,
});

/** Defaults of {@link MarginArmOptions}. */
export const DEFAULT_MARGIN_ARM: Readonly<MarginArmOptions> = Object.freeze({
  inBatch: false,
  inBatchIndexing: "reference",
  detachTarget: false,
  error: "l2",
});

/** Default equivalence margin (nDCG@10) of the TOST tests. */
export const DEFAULT_TOST_MARGIN = 0.02;

const ARM_KINDS = ["margin", "static-sweep", "margin-mse", "infonce"] as const;
const POOLINGS: readonly Pooling[] = ["cls", "mean", "max", "lasttoken", "pooler"];

const TEACHER_KINDS = ["encoder", "cross-encoder", "mean", "trained"] as const;

type Json = Record<string, unknown>;

class Reader {
  constructor(readonly file: string) {}

  fail(field: string, detail: string): never {
    throw new StudySpecError(this.file, field, detail);
  }

  object(v: unknown, field: string): Json {
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      this.fail(field, `expected an object, got ${describe(v)}`);
    }
    return v as Json;
  }

  only(o: Json, field: string, allowed: readonly string[]): void {
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) {
        this.fail(
          field ? `${field}.${k}` : k,
          `unknown field (expected one of ${allowed.join(", ")})`,
        );
      }
    }
  }

  string(v: unknown, field: string): string {
    if (typeof v !== "string" || v === "") {
      this.fail(field, `expected a non-empty string, got ${describe(v)}`);
    }
    return v;
  }

  number(v: unknown, field: string, check: (x: number) => boolean, what: string): number {
    if (typeof v !== "number" || !Number.isFinite(v) || !check(v)) {
      this.fail(field, `expected ${what}, got ${describe(v)}`);
    }
    return v;
  }

  int(v: unknown, field: string, min: number): number {
    return this.number(v, field, (x) => Number.isInteger(x) && x >= min, `an integer >= ${min}`);
  }

  bool(v: unknown, field: string): boolean {
    if (typeof v !== "boolean") this.fail(field, `expected true or false, got ${describe(v)}`);
    return v;
  }

  array(v: unknown, field: string, nonEmpty = true): unknown[] {
    if (!Array.isArray(v)) this.fail(field, `expected an array, got ${describe(v)}`);
    if (nonEmpty && v.length === 0) this.fail(field, "must not be empty");
    return v;
  }
}

function describe(v: unknown): string {
  if (v === undefined) return "nothing (the field is missing)";
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function marginOptions(r: Reader, a: Json, field: string): MarginArmOptions {
  const o = { ...DEFAULT_MARGIN_ARM };
  if (a.inBatch !== undefined) o.inBatch = r.bool(a.inBatch, `${field}.inBatch`);
  if (a.detachTarget !== undefined) {
    o.detachTarget = r.bool(a.detachTarget, `${field}.detachTarget`);
  }
  if (a.error !== undefined) {
    if (a.error !== "l1" && a.error !== "l2" && a.error !== "soft") {
      r.fail(`${field}.error`, `expected "l1", "l2" or "soft", got ${describe(a.error)}`);
    }
    o.error = a.error;
  }
  if (a.inBatchIndexing !== undefined) {
    if (a.inBatchIndexing !== "reference" && a.inBatchIndexing !== "per-query") {
      r.fail(
        `${field}.inBatchIndexing`,
        `expected "reference" or "per-query", got ${describe(a.inBatchIndexing)}`,
      );
    }
    o.inBatchIndexing = a.inBatchIndexing;
  }
  return o;
}

function parseArmTraining(r: Reader, v: unknown, field: string): ArmTraining {
  const t = r.object(v, field);
  r.only(t, field, [...ARM_TRAINING_KEYS]);
  const o: ArmTraining = {};
  for (const key of ARM_TRAINING_KEYS) {
    if (t[key] === undefined) continue;
    o[key] = key === "lr"
      ? r.number(t[key], `${field}.lr`, (x) => x > 0, "a positive number")
      : r.int(t[key], `${field}.${key}`, 1);
  }
  return o;
}

function parseArm(r: Reader, v: unknown, field: string): ArmSpec {
  const a = r.object(v, field);
  const armOnly = (keys: string[]) => r.only(a, field, [...keys, "training"]);
  const training = a.training === undefined
    ? {}
    : { training: parseArmTraining(r, a.training, `${field}.training`) };
  return { ...parseArmKind(r, a, field, armOnly), ...training };
}

function parseArmKind(
  r: Reader,
  a: Json,
  field: string,
  only: (keys: string[]) => void,
): ArmSpec {
  const name = r.string(a.name, `${field}.name`);
  if (!ARM_KINDS.includes(a.kind as typeof ARM_KINDS[number])) {
    r.fail(
      `${field}.kind`,
      `unknown arm kind ${describe(a.kind)} (expected ${ARM_KINDS.join(", ")})`,
    );
  }
  const marginFields = ["name", "kind", "inBatch", "inBatchIndexing", "detachTarget", "error"];
  const checkLoss = (target: "adaptive" | "distributed" | number, o: MarginArmOptions) => {
    try {
      resolveMarginOptions({ target, ...o });
    } catch (e) {
      r.fail(field, (e as Error).message.replace(/^marginLoss: /, ""));
    }
  };
  switch (a.kind as typeof ARM_KINDS[number]) {
    case "margin": {
      only([...marginFields, "target"]);
      const t = a.target;
      const target = t === "adaptive" || t === "distributed"
        ? t
        : r.number(t, `${field}.target`, () => true, `"adaptive", "distributed" or a number`);
      const o = marginOptions(r, a, field);
      checkLoss(target, o);
      return { name, kind: "margin", target, ...o };
    }
    case "static-sweep": {
      only([...marginFields, "margins"]);
      const margins = r.array(a.margins, `${field}.margins`).map((m, i) =>
        r.number(m, `${field}.margins[${i}]`, () => true, "a number")
      );
      if (new Set(margins).size !== margins.length) r.fail(`${field}.margins`, "repeats a value");
      const o = marginOptions(r, a, field);
      checkLoss(margins[0], o);
      return { name, kind: "static-sweep", margins, ...o };
    }
    case "margin-mse":
      only(["name", "kind", "teacher"]);
      return { name, kind: "margin-mse", teacher: r.string(a.teacher, `${field}.teacher`) };
    case "infonce":
      only(["name", "kind", "scale"]);
      return {
        name,
        kind: "infonce",
        scale: a.scale === undefined
          ? 20
          : r.number(a.scale, `${field}.scale`, (x) => x > 0, "a positive number"),
      };
  }
}

function parseTeacher(
  r: Reader,
  v: unknown,
  field: string,
  training: StudyTraining,
): TeacherSpec {
  const t = r.object(v, field);
  if (!TEACHER_KINDS.includes(t.kind as typeof TEACHER_KINDS[number])) {
    r.fail(
      `${field}.kind`,
      `unknown teacher kind ${describe(t.kind)} (expected ${TEACHER_KINDS.join(", ")})`,
    );
  }
  if (t.kind === "mean") {
    r.only(t, field, ["kind", "of"]);
    const of = r.array(t.of, `${field}.of`).map((x, i) => r.string(x, `${field}.of[${i}]`));
    return { kind: "mean", of };
  }
  if (t.kind === "trained") {
    r.only(t, field, ["kind", "scale", "docLength", "maxSteps"]);
    return {
      kind: "trained",
      scale: t.scale === undefined
        ? 20
        : r.number(t.scale, `${field}.scale`, (x) => x > 0, "a positive number"),
      docLength: t.docLength === undefined
        ? training.docLength
        : r.int(t.docLength, `${field}.docLength`, 1),
      maxSteps: t.maxSteps === undefined
        ? training.maxSteps
        : r.int(t.maxSteps, `${field}.maxSteps`, 1),
    };
  }
  r.only(t, field, ["kind", "model"]);
  return {
    kind: t.kind as "encoder" | "cross-encoder",
    model: r.string(t.model, `${field}.model`),
  };
}

/**
 * Checks a study spec (parsed JSON) completely and returns it with every default filled in.
 * Throws {@link StudySpecError} naming `file` and the first offending field: unknown fields or
 * kinds, an empty seed list, a budget outside (0, 1], a teacher that is not defined, a loss
 * configuration the margin loss refuses, repeated arm names.
 */
export function parseStudySpec(json: unknown, file = "study spec"): StudySpec {
  const r = new Reader(file);
  const s = r.object(json, "(top level)");
  r.only(s, "", [
    "dataset",
    "model",
    "load",
    "training",
    "seeds",
    "budgets",
    "dataSeed",
    "arms",
    "teachers",
    "reference",
    "tostMargin",
  ]);
  const dataset = r.string(s.dataset, "dataset");
  const model = s.model === undefined ? "use-lite" : r.string(s.model, "model");
  let load: ModelLoadSpec | undefined;
  if (s.load !== undefined) {
    const l = r.object(s.load, "load");
    r.only(l, "load", ["pooling", "prompts"]);
    load = {};
    if (l.pooling !== undefined) {
      if (!POOLINGS.includes(l.pooling as Pooling)) {
        r.fail(
          "load.pooling",
          `expected one of ${POOLINGS.join(", ")}, got ${describe(l.pooling)}`,
        );
      }
      load.pooling = l.pooling as Pooling;
    }
    if (l.prompts !== undefined) {
      const p = r.object(l.prompts, "load.prompts");
      r.only(p, "load.prompts", ["query", "document"]);
      load.prompts = {};
      for (const k of ["query", "document"] as const) {
        if (p[k] === undefined) continue;
        if (typeof p[k] !== "string") r.fail(`load.prompts.${k}`, "expected a string");
        load.prompts[k] = p[k] as string;
      }
    }
  }
  const training: StudyTraining = { ...DEFAULT_STUDY_TRAINING };
  if (s.training !== undefined) {
    const t = r.object(s.training, "training");
    r.only(t, "training", [...Object.keys(DEFAULT_STUDY_TRAINING), "chunkSize", "negatives"]);
    type NumericKey = Exclude<keyof StudyTraining, "negatives">;
    for (const key of Object.keys(DEFAULT_STUDY_TRAINING) as NumericKey[]) {
      if (t[key] === undefined) continue;
      training[key] = key === "lr"
        ? r.number(t[key], "training.lr", (x) => x > 0, "a positive number")
        : r.int(t[key], `training.${key}`, key === "validationQueries" ? 0 : 1);
    }
    // Optional, so that specs without it keep their run keys.
    if (t.chunkSize !== undefined) training.chunkSize = r.int(t.chunkSize, "training.chunkSize", 1);
    if (t.negatives !== undefined) training.negatives = r.string(t.negatives, "training.negatives");
  }
  const seeds = r.array(s.seeds, "seeds").map((x, i) => r.int(x, `seeds[${i}]`, 0));
  if (new Set(seeds).size !== seeds.length) r.fail("seeds", "repeats a seed");
  const budgets = s.budgets === undefined
    ? [1]
    : r.array(s.budgets, "budgets").map((x, i) =>
      r.number(x, `budgets[${i}]`, (b) => b > 0 && b <= 1, "a fraction in (0, 1]")
    );
  if (new Set(budgets).size !== budgets.length) r.fail("budgets", "repeats a budget");
  const teachers: Record<string, TeacherSpec> = {};
  if (s.teachers !== undefined) {
    const t = r.object(s.teachers, "teachers");
    for (const [name, v] of Object.entries(t)) {
      teachers[name] = parseTeacher(r, v, `teachers.${name}`, training);
    }
    for (const [name, t] of Object.entries(teachers)) {
      if (t.kind !== "mean") continue;
      t.of.forEach((m, i) => {
        if (!(m in teachers)) r.fail(`teachers.${name}.of[${i}]`, `no teacher named "${m}"`);
        if (m === name) r.fail(`teachers.${name}.of[${i}]`, "a teacher cannot average itself");
      });
    }
    // A mean that reaches itself through other means could never be built (nor keyed).
    const cycle = (name: string, path: string[]): string[] | null => {
      const t = teachers[name];
      if (t.kind !== "mean") return null;
      for (const m of t.of) {
        if (path.includes(m)) return [...path, m];
        const c = cycle(m, [...path, m]);
        if (c) return c;
      }
      return null;
    };
    for (const name of Object.keys(teachers)) {
      const c = cycle(name, [name]);
      if (c) r.fail(`teachers.${name}.of`, `the means average each other: ${c.join(" -> ")}`);
    }
  }
  const arms = r.array(s.arms, "arms").map((a, i) => parseArm(r, a, `arms[${i}]`));
  const names = new Set<string>();
  arms.forEach((a, i) => {
    if (names.has(a.name)) r.fail(`arms[${i}].name`, `repeats the arm name "${a.name}"`);
    names.add(a.name);
    if (a.kind === "margin-mse" && !(a.teacher in teachers)) {
      r.fail(
        `arms[${i}].teacher`,
        `no teacher named "${a.teacher}" (define it under "teachers"; have ${
          Object.keys(teachers).join(", ") || "none"
        })`,
      );
    }
  });
  let reference: string | null = null;
  if (s.reference !== undefined) {
    reference = r.string(s.reference, "reference");
    if (!names.has(reference)) r.fail("reference", `no arm named "${reference}"`);
  } else {
    reference = arms.find((a) => a.kind === "margin-mse")?.name ?? null;
  }
  return {
    dataset,
    model,
    ...(load ? { load } : {}),
    training,
    seeds,
    budgets: [...budgets].sort((a, b) => a - b),
    dataSeed: s.dataSeed === undefined ? 1 : r.int(s.dataSeed, "dataSeed", 0),
    arms,
    teachers,
    reference,
    tostMargin: s.tostMargin === undefined
      ? DEFAULT_TOST_MARGIN
      : r.number(s.tostMargin, "tostMargin", (x) => x > 0, "a positive number"),
  };
}

/**
 * Reads and checks a study spec file: strict UTF-8, JSON (a syntax error names the file), then
 * {@link parseStudySpec}. Every error is a {@link StudySpecError} naming the file.
 */
export async function readStudySpec(path: string): Promise<StudySpec> {
  let text: string;
  try {
    text = await readTextFileStrict(path);
  } catch (e) {
    throw new StudySpecError(path, "(file)", (e as Error).message.replace(`${path}: `, ""));
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new StudySpecError(path, "(file)", `not valid JSON (${(e as Error).message})`);
  }
  return parseStudySpec(json, path);
}

/**
 * A teacher as a run's key holds it: its spec, a mean's members replaced by their own resolved
 * specs (recursively), so changing a member's settings changes the key of every run that uses
 * the mean; a member's name is not part of it.
 */
export type ResolvedTeacherSpec =
  | Exclude<TeacherSpec, { kind: "mean" }>
  | { kind: "mean"; of: ResolvedTeacherSpec[] };

/**
 * The teacher `name` of `spec` resolved ({@link ResolvedTeacherSpec}): itself for every kind but
 * a mean, whose members are resolved in turn. `parseStudySpec` has checked that every member
 * exists and that no mean reaches itself.
 */
export function resolveTeacher(spec: StudySpec, name: string): ResolvedTeacherSpec {
  const t = spec.teachers[name];
  if (t === undefined) throw new RangeError(`resolveTeacher: no teacher named "${name}"`);
  return t.kind === "mean" ? { kind: "mean", of: t.of.map((m) => resolveTeacher(spec, m)) } : t;
}

/**
 * Checks the files a spec names, before anything trains or a directory is made: today
 * `training.negatives`, which must exist, be readable and hold at least one well-formed line
 * (a JSON line `{"qid", "pos", "neg"}` or `{"qid", "pos", "negs": [...]}` as `deno task mine`
 * writes, or `qid pos_id neg_id`; blank and `#` lines are skipped). Whether its ids exist in the
 * dataset is checked when the triples are built. Returns the SHA-256 of its content (undefined
 * without the field). Throws one {@link StudySpecError} naming `file`, the field and the path.
 */
export async function checkStudyFiles(
  spec: StudySpec,
  file = "study spec",
): Promise<string | undefined> {
  const path = spec.training.negatives;
  if (path === undefined) return undefined;
  const fail = (detail: string): never => {
    throw new StudySpecError(file, "training.negatives", `${path}: ${detail}`);
  };
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    return fail(`cannot read it (${(e as Error).message})`);
  }
  let text: string;
  try {
    text = decodeUtf8(bytes, path);
  } catch (e) {
    return fail((e as Error).message.replace(`${path}: `, ""));
  }
  const isId = (v: unknown) =>
    (typeof v === "string" && v !== "") || (typeof v === "number" && Number.isSafeInteger(v));
  let lines = 0;
  for (const { text: raw, lineNo } of splitLines(text)) {
    const t = raw.trim();
    if (t === "" || t.startsWith("#")) continue;
    lines++;
    if (t.startsWith("{")) {
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(t);
      } catch (e) {
        return fail(`line ${lineNo}: not valid JSON (${(e as Error).message})`);
      }
      const negs = o.negs !== undefined
        ? Array.isArray(o.negs) && o.negs.length > 0 && o.negs.every(isId)
        : isId(o.neg);
      if (!isId(o.qid) || !isId(o.pos) || !negs) {
        return fail(
          `line ${lineNo}: expected {"qid", "pos", "neg"} or {"qid", "pos", "negs": [...]} ids`,
        );
      }
    } else if (whitespaceFields(raw).length !== 3) {
      return fail(
        `line ${lineNo}: expected 3 fields (qid pos_id neg_id), found ${
          whitespaceFields(raw).length
        }`,
      );
    }
  }
  if (lines === 0) fail("holds no negatives (every line is blank or a comment)");
  return await sha256Hex(bytes);
}

/** The loss of one run, as the trainer takes it. */
export type RunLoss =
  | ({ loss: "margin"; target: "adaptive" | "distributed" | number } & MarginArmOptions)
  | { loss: "margin-mse"; teacher: string }
  | { loss: "infonce"; scale: number };

/** One training run of a study. */
export interface RunPlan {
  /** Hex SHA-256 of {@link RunPlan.settings} (canonical JSON): the run's directory key. */
  key: string;
  /** The arm's name (the method: a static sweep's runs share it). */
  arm: string;
  /** The arm's kind. */
  kind: ArmSpec["kind"];
  /** The training seed. */
  seed: number;
  /** The data budget (fraction of the training triples). */
  budget: number;
  /** A static sweep's margin value for this run; null otherwise. */
  sweepValue: number | null;
  /** Everything that determines the run's result (hashed into the key). */
  settings: {
    dataset: string;
    model: string;
    load?: ModelLoadSpec;
    training: StudyTraining;
    /** SHA-256 of `training.negatives`'s content, when set. */
    negativesSha256?: string;
    loss: RunLoss;
    /** The Margin-MSE teacher, resolved (a mean's members' definitions, not their names). */
    teacher: ResolvedTeacherSpec | null;
    /**
     * The shared training settings a trained teacher learns with, when the arm's own
     * (`training`) differ from them; absent otherwise (then `training` is the shared settings).
     */
    teacherTraining?: StudyTraining;
    seed: number;
    budget: number;
    dataSeed: number;
  };
}

/** JSON with object keys sorted, so equal settings always hash alike. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${
      Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) =>
        `${JSON.stringify(k)}:${canonicalJson(o[k])}`
      ).join(",")
    }}`;
  }
  return JSON.stringify(v);
}

function runLoss(arm: ArmSpec, sweepValue: number | null): RunLoss {
  switch (arm.kind) {
    case "margin":
    case "static-sweep": {
      const { inBatch, inBatchIndexing, detachTarget, error } = arm;
      const target = arm.kind === "margin" ? arm.target : sweepValue!;
      return { loss: "margin", target, inBatch, inBatchIndexing, detachTarget, error };
    }
    case "margin-mse":
      return { loss: "margin-mse", teacher: arm.teacher };
    case "infonce":
      return { loss: "infonce", scale: arm.scale };
  }
}

/**
 * Every run of the study, in a stable order (arm, then sweep value, then budget, then seed), each
 * with its key. An arm's runs train with the shared training settings overridden by the arm's
 * own. Arms that train alike (the same loss and settings) share their runs' keys, so a run is
 * never trained twice.
 */
export async function expandRuns(spec: StudySpec): Promise<RunPlan[]> {
  const runs: RunPlan[] = [];
  const negativesSha256 = await checkStudyFiles(spec);
  for (const arm of spec.arms) {
    const values = arm.kind === "static-sweep" ? arm.margins : [null];
    for (const sweepValue of values) {
      for (const budget of spec.budgets) {
        for (const seed of spec.seeds) {
          const loss = runLoss(arm, sweepValue);
          const training = { ...spec.training, ...arm.training };
          const own = canonicalJson(training) !== canonicalJson(spec.training);
          const settings = {
            dataset: spec.dataset,
            model: spec.model,
            load: spec.load,
            training,
            negativesSha256,
            loss,
            teacher: loss.loss === "margin-mse" ? resolveTeacher(spec, loss.teacher) : null,
            teacherTraining: loss.loss === "margin-mse" && own ? { ...spec.training } : undefined,
            seed,
            budget,
            dataSeed: spec.dataSeed,
          };
          runs.push({
            key: await sha256Hex(canonicalJson(settings)),
            arm: arm.name,
            kind: arm.kind,
            seed,
            budget,
            sweepValue,
            settings,
          });
        }
      }
    }
  }
  return runs;
}

/**
 * The indices of the training triples a budget uses: the first `ceil(budget·n)` of one seeded
 * permutation of `0..n-1`, so smaller budgets are subsets of larger ones (for the same
 * `dataSeed`). At least one triple.
 */
export function budgetSubset(n: number, budget: number, dataSeed: number): number[] {
  if (!(budget > 0 && budget <= 1)) throw new RangeError(`budget must be in (0, 1]: ${budget}`);
  const order = new Rng(dataSeed).shuffle(Array.from({ length: n }, (_, i) => i));
  return order.slice(0, Math.max(1, Math.ceil(budget * n)));
}
