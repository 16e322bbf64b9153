/**
 * The output directory of a run and its checkpoints: the guard that a fresh run finds no run
 * there and a resume finds one ({@link checkOutDir}), the lock ({@link openOutDir}), the
 * recovery of a save interrupted mid-swap, and the checkpoints themselves, written atomically
 * ({@link writeCheckpoint}) and read back with every file checked ({@link readCheckpoint},
 * {@link restoreCheckpoint}).
 *
 * Output directory: `last/` and `best/` (model directories that `loadEncoder` loads, plus
 * `trainer.json`, and in `last/` the optimizer's `optimizer.safetensors`), `log.jsonl` (one line
 * per step and per validation, see `run_log.ts`), `args.json` (what the caller passed as
 * `args`), and `.lock` while a run holds it. Nothing there is ever lost or silently replaced:
 *
 * - the run takes the directory's lock ({@link lockDir}) before it touches anything, so two runs
 *   never write one directory; a stale lock is reported (`breakLock` takes it over);
 * - a fresh run refuses a directory that holds any trace of a run (`last/`, `best/`,
 *   `log.jsonl`, `args.json`, `last.old/`, `best.old/`): see {@link RunExistsError};
 * - checkpoints are swapped in atomically ({@link replaceDir}); a resume first recovers a
 *   checkpoint left as `last.old/` (or `best.old/`) by a save interrupted mid-swap, then removes
 *   the unfinished copies (`*.staging*`, `*.tmp-*`) an interrupted save leaves.
 *
 * @module
 */
import { exists, recoverDir, replaceDir } from "../util/fs.ts";
import { type DirLock, lockDir } from "../util/lock.ts";
import { readTextFileStrict } from "../data/lines.ts";
import type { LoadedEncoder } from "../models/hf.ts";
import { saveEncoder } from "../models/load.ts";
import { type NamedTensor, parseSafetensors, writeSafetensors } from "../models/safetensors.ts";
import type { AdamW, OptimizerState } from "./optimizer.ts";
import type { CheckpointCard } from "./options.ts";
import type { ValidationRecord } from "./validate.ts";

/** The persistent state of a run, saved as `trainer.json`. */
export interface TrainerState {
  /** Format version. */
  version: 1;
  /** Optimizer steps taken. */
  step: number;
  /** The current epoch (0-based). */
  epoch: number;
  /** Triples of the current epoch's order consumed. */
  cursor: number;
  /** RNG state before the current epoch's shuffle. */
  epochRngState: number;
  /** RNG state now. */
  rngState: number;
  /** The seed the run started from. */
  seed: number;
  /** Best validation nDCG@10 so far (null without validation). */
  bestMetric: number | null;
  /** Step of the best validation. */
  bestStep: number | null;
  /** Validations since the last improvement. */
  badValidations: number;
  /** Every validation so far. */
  history: ValidationRecord[];
  /** Whether the run has ended (and why). */
  stopReason: string | null;
  /** The trajectory-defining options, compared on resume. */
  options: Record<string, unknown>;
  /** {@link tripleFingerprint} of the training triples. */
  data: string;
}

/**
 * Raised when a fresh run (no `resume`) is pointed at a directory that holds a run; the message
 * lists what was found and what to do (resume it, train from its `best/`, or pick another
 * directory).
 */
export class RunExistsError extends Error {
  /**
   * The refusal, with what was found and what to do.
   *
   * @param dir the output directory
   * @param found the traces of a run found there (`last`, `best`, `log.jsonl`, ...)
   */
  constructor(readonly dir: string, readonly found: string[]) {
    const resumable = found.includes("last") || found.includes("last.old");
    const hint = resumable
      ? "pass --resume (resume: true) to continue it, or choose another output directory"
      : found.includes("best")
      ? `its resumable checkpoint ${dir}/last (with the optimizer state) is gone, so it cannot ` +
        `be continued; to train its best model further, start a new run from it (--model ` +
        `${dir}/best) in another output directory`
      : `it saved no checkpoint to continue from; choose another output directory (or delete ` +
        `${dir} if that run is of no use)`;
    super(`${dir} already holds a run (${found.join(", ")}): ${hint}`);
    this.name = "RunExistsError";
  }
}

/** Raised for a checkpoint that cannot be resumed from; names the directory and the problem. */
export class CheckpointError extends Error {
  /**
   * The refusal to resume from `dir`, saying why.
   *
   * @param dir the checkpoint directory
   * @param detail what is wrong
   */
  constructor(readonly dir: string, detail: string) {
    super(`cannot resume from ${dir}: ${detail}`);
    this.name = "CheckpointError";
  }
}

/** Writes an optimizer state as safetensors: `NAME.adam_m`, `NAME.adam_v`, steps in metadata. */
export async function writeOptimizerState(path: string, state: OptimizerState): Promise<void> {
  const tensors = new Map<string, NamedTensor>();
  const steps: Record<string, number> = {};
  for (const [name, s] of Object.entries(state.params)) {
    tensors.set(`${name}.adam_m`, { shape: [s.m.length], data: s.m });
    tensors.set(`${name}.adam_v`, { shape: [s.v.length], data: s.v });
    steps[name] = s.step;
  }
  await writeSafetensors(path, tensors, {
    format: "selfmargin-optimizer",
    step: String(state.step),
    param_steps: JSON.stringify(steps),
  });
}

/** Reads {@link writeOptimizerState}'s file; throws naming the file on any inconsistency. */
export async function readOptimizerState(path: string): Promise<OptimizerState> {
  const { tensors, metadata } = parseSafetensors(await Deno.readFile(path), path);
  if (metadata.format !== "selfmargin-optimizer") {
    throw new Error(`${path}: not an optimizer state (metadata format ${metadata.format})`);
  }
  let steps: Record<string, number>;
  try {
    steps = JSON.parse(metadata.param_steps ?? "");
  } catch {
    throw new Error(`${path}: metadata param_steps is not JSON`);
  }
  const state: OptimizerState = { step: Number(metadata.step), params: {} };
  for (const [name, step] of Object.entries(steps)) {
    const m = tensors.get(`${name}.adam_m`), v = tensors.get(`${name}.adam_v`);
    if (!m || !v) throw new Error(`${path}: moments of ${name} missing`);
    state.params[name] = { step, m: m.data as Float32Array, v: v.data as Float32Array };
  }
  return state;
}

/**
 * Writes `dir` atomically: the model (saveEncoder, with its sentence-transformers layout and a
 * model card from `state` and `card`), the optimizer state (when given: `last/`; without it the
 * checkpoint is `best/`) and `trainer.json` go to a staging directory that then replaces `dir` (the previous one is
 * kept as `dir.old` until the new one is in place).
 *
 * @example
 * ```ts
 * await writeCheckpoint(model, optimizer, state, "runs/x/last");
 * ```
 */
export async function writeCheckpoint(
  model: LoadedEncoder,
  optimizer: AdamW | null,
  state: TrainerState,
  dir: string,
  card: CheckpointCard = {},
): Promise<void> {
  const staging = `${dir}.staging`;
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  await saveEncoder(model, staging, { step: String(state.step) }, {
    baseModel: card.baseModel ?? model.sourceDir ?? "use-lite",
    training: state.options,
    steps: state.step,
    data: card.data,
    validation: state.history,
    checkpointStep: optimizer === null && state.bestStep !== null ? state.bestStep : undefined,
    command: card.command,
  });
  if (optimizer) {
    await writeOptimizerState(`${staging}/optimizer.safetensors`, await optimizer.state());
  }
  await Deno.writeTextFile(`${staging}/trainer.json`, JSON.stringify(state, null, 2) + "\n");
  await replaceDir(staging, dir);
}

/** A checkpoint read back for resuming. */
export interface Checkpoint {
  /** The model's tensors by name. */
  weights: Map<string, NamedTensor>;
  /** The optimizer state. */
  optimizer: OptimizerState;
  /** The trainer state. */
  state: TrainerState;
}

/**
 * Reads and checks a `last/` checkpoint: every file present and well-formed (config.json,
 * model.safetensors, optimizer.safetensors, trainer.json); throws {@link CheckpointError}
 * naming the directory and the problem otherwise.
 */
export async function readCheckpoint(dir: string): Promise<Checkpoint> {
  try {
    if (!(await Deno.stat(dir)).isDirectory) throw new CheckpointError(dir, "not a directory");
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(dir, "no checkpoint there");
  }
  const files = ["config.json", "model.safetensors", "optimizer.safetensors", "trainer.json"];
  for (const f of files) {
    try {
      await Deno.stat(`${dir}/${f}`);
    } catch {
      throw new CheckpointError(dir, `${f} is missing`);
    }
  }
  const wrap = async <T>(f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      throw new CheckpointError(dir, (e as Error).message);
    }
  };
  await wrap(async () => {
    try {
      JSON.parse(await readTextFileStrict(`${dir}/config.json`));
    } catch (e) {
      throw new Error(`config.json is not valid JSON (${(e as Error).message})`);
    }
  });
  const weights = await wrap(async () =>
    parseSafetensors(await Deno.readFile(`${dir}/model.safetensors`), `${dir}/model.safetensors`)
      .tensors
  );
  const optimizer = await wrap(() => readOptimizerState(`${dir}/optimizer.safetensors`));
  const state = await wrap(async () => {
    let s: TrainerState;
    try {
      s = JSON.parse(await readTextFileStrict(`${dir}/trainer.json`));
    } catch (e) {
      throw new Error(`trainer.json is not valid JSON (${(e as Error).message})`);
    }
    for (const key of ["step", "epoch", "cursor", "epochRngState", "rngState"] as const) {
      if (!Number.isInteger(s?.[key]) || s[key] < 0) {
        throw new Error(`trainer.json: ${key} is missing or not a non-negative integer`);
      }
    }
    if (s.version !== 1) throw new Error(`trainer.json: unknown version ${s.version}`);
    return s;
  });
  return { weights, optimizer, state };
}

/** What {@link restoreCheckpoint} checks a checkpoint against and loads it into. */
export interface RestoreTarget {
  /** The run's trajectory options (`TrainPlan.trajectory`); the checkpoint's must be equal. */
  trajectory: Record<string, unknown>;
  /** `tripleFingerprint` of the training triples; the checkpoint's must be equal. */
  fingerprint: string;
  /** The model: every parameter must be in the checkpoint, with its size; overwritten. */
  model: LoadedEncoder;
  /** The optimizer over the model's parameters; its state is replaced by the checkpoint's. */
  optimizer: AdamW;
}

/**
 * Resumes from checkpoint `dir` (`last/`): reads it ({@link readCheckpoint}), checks that it
 * was written by the same run (trajectory options, training triples) for this model (every
 * parameter present, with its size), then loads the optimizer state and the weights, and
 * returns the trainer state. Throws {@link CheckpointError} naming the directory and what
 * differs; nothing is loaded then.
 *
 * @example
 * ```ts
 * const state = await restoreCheckpoint("runs/x/last", { trajectory, fingerprint, model, optimizer });
 * ```
 */
export async function restoreCheckpoint(dir: string, to: RestoreTarget): Promise<TrainerState> {
  const { trajectory: options, fingerprint, model, optimizer } = to;
  const ck = await readCheckpoint(dir);
  const diffs = Object.keys({ ...options, ...ck.state.options }).filter((k) =>
    JSON.stringify(options[k]) !== JSON.stringify(ck.state.options?.[k])
  );
  if (diffs.length) {
    throw new CheckpointError(
      dir,
      `the run was started with other options: ${
        diffs.map((k) =>
          `${k} ${JSON.stringify(ck.state.options?.[k])} (now ${JSON.stringify(options[k])})`
        ).join(", ")
      }`,
    );
  }
  if (ck.state.data !== fingerprint) {
    throw new CheckpointError(
      dir,
      `the training triples differ (checkpoint ${ck.state.data}, now ${fingerprint})`,
    );
  }
  for (const [name, t] of model.named) {
    const w = ck.weights.get(name);
    if (!w) throw new CheckpointError(dir, `model.safetensors lacks ${name}`);
    if (w.data.length !== t.size) {
      throw new CheckpointError(dir, `${name} has shape [${w.shape}], the model [${t.shape}]`);
    }
  }
  try {
    optimizer.loadState(ck.optimizer);
  } catch (e) {
    throw new CheckpointError(dir, (e as Error).message);
  }
  for (const [name, t] of model.named) t.write(ck.weights.get(name)!.data);
  return ck.state;
}

/**
 * Checks, without changing anything, that `train` will accept output directory `outDir`: for a
 * fresh run, that it holds no trace of a run (else {@link RunExistsError}); with `resume`, that
 * it holds a checkpoint to continue, `last/` or the `last.old/` an interrupted save leaves
 * (else {@link CheckpointError}, which says what to do when only `best/` is left). `train`
 * checks the same under the directory's lock; a CLI calls this first to fail before loading
 * data.
 *
 * @example
 * ```ts
 * await checkOutDir("runs/x", false); // throws when runs/x already holds a run
 * ```
 */
export async function checkOutDir(outDir: string, resume: boolean): Promise<void> {
  const lastDir = `${outDir}/last`, bestDir = `${outDir}/best`;
  if (!resume) {
    const found = [];
    for (const f of RUN_FILES) if (await exists(`${outDir}/${f}`)) found.push(f);
    if (found.length) throw new RunExistsError(outDir, found);
    return;
  }
  if (!(await exists(outDir))) {
    throw new CheckpointError(lastDir, `no checkpoint there (${outDir} does not exist)`);
  }
  if ((await exists(lastDir)) || (await exists(`${lastDir}.old`))) return;
  if ((await exists(bestDir)) || (await exists(`${bestDir}.old`))) {
    throw new CheckpointError(
      lastDir,
      `no checkpoint there: ${lastDir} (with the optimizer state) is gone, and ${bestDir} ` +
        `alone cannot be continued; to train that model further, start a new run from it ` +
        `(--model ${bestDir}) in another output directory`,
    );
  }
  throw new CheckpointError(
    lastDir,
    `no checkpoint there${
      (await exists(`${outDir}/log.jsonl`))
        ? ` (the run in ${outDir} saved none; start afresh in another output directory)`
        : ""
    }`,
  );
}

/** Options of {@link openOutDir}. */
export interface OpenOutDirOptions {
  /** Whether the run resumes (`outDir` must hold a checkpoint) or is fresh (must hold no run). */
  resume: boolean;
  /** The lock of `outDir`, taken by the caller; then none is taken here. */
  lock?: DirLock;
  /** Take over a stale lock. Default false: a stale lock is an error that says so. */
  breakLock?: boolean;
  /** Where notes go (a lock taken over, a checkpoint recovered, leftovers removed). */
  log?: (message: string) => void;
}

/**
 * Makes `outDir` ready for a run, changing nothing of a run that is refused: checks it
 * ({@link checkOutDir}), takes its lock (unless the caller's is given), checks again under the
 * lock (another run may have started meanwhile), and then, for a resume, recovers `last/` and
 * `best/` from the `.old` copies a save interrupted mid-swap leaves; finally removes the
 * unfinished copies an interrupted save leaves. Returns the lock taken here (null when the
 * caller's was given), for the caller to release (`await using`); on error it is released.
 *
 * @example
 * ```ts
 * await using lock = await openOutDir("runs/x", { resume: false });
 * ```
 */
export async function openOutDir(
  outDir: string,
  opts: OpenOutDirOptions,
): Promise<DirLock | null> {
  const say = opts.log ?? (() => {});
  await checkOutDir(outDir, opts.resume);
  // Nothing in `outDir` is touched before the lock is ours and the run accepted.
  if (opts.lock && opts.lock.dir !== outDir) {
    throw new RangeError(`the lock given is that of ${opts.lock.dir}, not of ${outDir}`);
  }
  const lock = opts.lock ? null : await lockDir(outDir, {
    breakStale: opts.breakLock,
    breakHint: "pass --break-lock (breakLock: true)",
  });
  try {
    if (lock?.broken) {
      say(
        `took over the stale lock of pid ${lock.broken.pid} (since ${lock.broken.started}) in ` +
          outDir,
      );
    }
    await checkOutDir(outDir, opts.resume); // again: another run may have started since
    if (opts.resume) {
      for (const dir of [`${outDir}/last`, `${outDir}/best`]) {
        if (await recoverDir(dir) === "restored") {
          say(`recovered ${dir} from ${dir}.old, left by a save that was interrupted`);
        }
      }
    }
    await removeUnfinished(outDir, say);
    return lock;
  } catch (e) {
    await lock?.release();
    throw e;
  }
}

/** Writes `args` as `outDir/args.json` (pretty JSON); never replaces an existing file. */
export async function writeArgs(outDir: string, args: unknown): Promise<void> {
  await Deno.writeTextFile(`${outDir}/args.json`, JSON.stringify(args, null, 2) + "\n", {
    createNew: true,
  });
}

/** What a fresh run refuses to find in its output directory: the traces of another run. */
const RUN_FILES = ["last", "best", "log.jsonl", "args.json", "last.old", "best.old"];

/** Unfinished copies an interrupted save leaves (never the only complete copy of anything). */
const UNFINISHED = /^(?:(?:last|best)\.(?:staging(?:\.|$)|tmp-)|log\.jsonl\.tmp-)/;

/** Removes {@link UNFINISHED} entries of `out` (under its lock), saying what went. */
async function removeUnfinished(out: string, say: (m: string) => void): Promise<void> {
  const gone: string[] = [];
  for await (const e of Deno.readDir(out)) {
    if (!UNFINISHED.test(e.name)) continue;
    await Deno.remove(`${out}/${e.name}`, { recursive: true });
    gone.push(e.name);
  }
  if (gone.length) {
    say(`removed what an interrupted save left in ${out}: ${gone.sort().join(", ")}`);
  }
}
