/**
 * Checking command-line flags before any data or model is loaded: numbers, input files, output
 * paths. The checks throw {@link UsageError}; {@link knownErrorExitCode} tells a script which
 * errors to print as one line (`name: message`) rather than with a stack trace, and with which
 * exit code.
 *
 * @module
 */
import { basename, dirname, join, resolve } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { DataFormatError } from "../data/types.ts";
import { type Gpu, GpuDeviceLostError, GpuError, GpuUnavailableError } from "../gpu/device.ts";
import type { Pooling } from "../models/config.ts";
import type { LoadedEncoder } from "../models/hf.ts";
import { loadEncoder, type LoadEncoderOptions } from "../models/load.ts";
import { atomicFile } from "../util/fs.ts";
import { NonFiniteEmbeddingError } from "./embeddings_out.ts";

/** A bad flag or argument: the script prints its message alone and exits 2. */
export class UsageError extends Error {
  /** Builds the error; `message` names the flag and what is wrong with its value. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

function shown(value: string): string {
  return value === "" ? "an empty value" : value;
}

/**
 * The value of an integer flag, `undefined` when it was not given. Only plain decimal integers
 * are accepted (`12`, `-3`; not `1e3`, `0x10`, `1.0` or an empty value); with `min`, smaller
 * values are refused too.
 *
 * @example
 * ```ts
 * intFlag("--max-length", "0", { min: 1 }); // throws "--max-length must be a positive integer (got 0)"
 * ```
 */
export function intFlag(
  flag: string,
  value: string | undefined,
  options: { min?: number } = {},
): number | undefined {
  if (value === undefined) return undefined;
  const min = options.min ?? -Infinity;
  const what = min === 1
    ? "a positive integer"
    : min === 0
    ? "a non-negative integer"
    : min > -Infinity
    ? `an integer >= ${min}`
    : "an integer";
  const n = Number(value);
  if (!/^[+-]?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`${flag} must be ${what} (got ${shown(value)})`);
  }
  return n;
}

/** {@link intFlag} with `min` 1: the value of a count or size flag, `undefined` if not given. */
export function positiveIntFlag(flag: string, value: string | undefined): number | undefined {
  return intFlag(flag, value, { min: 1 });
}

/**
 * The value of a number flag (decimal, optional exponent), `undefined` when it was not given,
 * checked to lie strictly between `above` and `below` when they are given.
 *
 * @example
 * ```ts
 * numberFlag("--alpha", "0.05", { above: 0, below: 0.5 }); // 0.05
 * ```
 */
export function numberFlag(
  flag: string,
  value: string | undefined,
  range: { above?: number; below?: number } = {},
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  const { above = -Infinity, below = Infinity } = range;
  if (
    !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(value.trim()) || !Number.isFinite(n) ||
    !(n > above && n < below)
  ) {
    const bounds = [
      above > -Infinity ? `> ${above}` : "",
      below < Infinity ? `< ${below}` : "",
    ].filter((s) => s).join(" and ");
    throw new UsageError(
      `${flag} must be a number${bounds ? ` ${bounds}` : ""} (got ${shown(value)})`,
    );
  }
  return n;
}

/**
 * Checks that `path` (given with `flag`) is a readable file, before anything is loaded from
 * it: `FILE: no such file (--flag)`, `FILE: is a directory, not a file (--flag)`, or the
 * system's reason it cannot be read.
 */
export async function checkInputFile(flag: string, path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    throw new UsageError(
      e instanceof Deno.errors.NotFound
        ? `${path}: no such file (${flag})`
        : `${path}: cannot read it (${flag}): ${(e as Error).message}`,
    );
  }
  if (info.isDirectory) throw new UsageError(`${path}: is a directory, not a file (${flag})`);
  try {
    (await Deno.open(path, { read: true })).close();
  } catch (e) {
    throw new UsageError(`${path}: cannot read it (${flag}): ${(e as Error).message}`);
  }
}

/**
 * Checks, before any work, that the output file `path` (given with `flag`) can be written the
 * way {@link atomicFile} writes it: its directory exists and takes a new file, and `path` is not
 * a directory or a device. Returns the path to write: `path` itself, or for a symbolic link the
 * file it points to (so that the link stays a link).
 */
export async function checkOutputFile(flag: string, path: string): Promise<string> {
  if (path === "" || /[/\\]$/.test(path)) {
    throw new UsageError(`${flag} needs a file name (got ${shown(path)})`);
  }
  let target = path;
  const info = await Deno.stat(path).catch(() => null);
  if (info) {
    if (info.isDirectory) throw new UsageError(`${path}: is a directory, not a file (${flag})`);
    if (!info.isFile) {
      throw new UsageError(`${path}: is not a regular file; give a file path (${flag})`);
    }
    target = await Deno.realPath(path);
  }
  const dir = dirname(target);
  const dirInfo = await Deno.stat(dir).catch(() => null);
  if (!dirInfo) throw new UsageError(`${dir}: no such directory (${flag} ${path})`);
  if (!dirInfo.isDirectory) throw new UsageError(`${dir}: not a directory (${flag} ${path})`);
  try {
    await (await atomicFile(target)).abort();
  } catch (e) {
    throw new UsageError(`${dir}: cannot write there (${flag} ${path}): ${(e as Error).message}`);
  }
  return target;
}

async function canonical(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    try {
      return join(await Deno.realPath(dirname(path)), basename(path));
    } catch {
      return resolve(path);
    }
  }
}

/** Whether two paths name the same file (symbolic links and `..` resolved). */
export async function samePath(a: string, b: string): Promise<boolean> {
  return await canonical(a) === await canonical(b);
}

/**
 * The exit code for an error a script reports in one line, without a stack trace: 2 for bad
 * input ({@link UsageError}, `DataFormatError`), 1 for failures while working (no GPU, a lost
 * device, a WebGPU error, a non-finite embedding, a file-system error). `undefined` for
 * anything else: an unexpected error, whose stack is worth showing.
 */
export function knownErrorExitCode(e: unknown): 1 | 2 | undefined {
  if (e instanceof UsageError || e instanceof DataFormatError) return 2;
  if (
    e instanceof GpuUnavailableError || e instanceof GpuDeviceLostError ||
    e instanceof GpuError || e instanceof NonFiniteEmbeddingError
  ) return 1;
  for (const cls of Object.values(Deno.errors)) if (e instanceof cls) return 1;
  return undefined;
}

/**
 * Checks a model name given with `flag` without loading it: `use-lite`, an existing directory,
 * or something shaped like a Hugging Face Hub name (`org/model`, fetched when loaded). A path
 * that starts with `.`, `/` or `~` (or a drive letter) must exist.
 */
export async function checkModelSpec(flag: string, spec: string): Promise<void> {
  if (spec === "use-lite") return;
  const info = await Deno.stat(spec).catch(() => null);
  if (info?.isDirectory) return;
  if (info) throw new UsageError(`${spec}: is a file, not a model directory (${flag})`);
  if (/^[./~]/.test(spec) || /^[a-z]:[\\/]/i.test(spec)) {
    throw new UsageError(`${spec}: no such model directory (${flag})`);
  }
  if (/^[\w.-]+\/[\w.-]+$/.test(spec)) return;
  throw new UsageError(
    `${flag} '${spec}' is neither 'use-lite', an existing model directory, nor a Hub name ` +
      `(org/model)`,
  );
}

/** The poolings `--pooling` accepts. */
const POOLINGS: readonly Pooling[] = ["cls", "mean", "max", "lasttoken", "pooler"];

/**
 * The flags every script that loads an encoder takes beside `--model` (for `parseArgs`):
 * `--pooling`, `--query-prompt`, `--document-prompt`.
 */
export const MODEL_FLAGS = {
  pooling: { type: "string" },
  "query-prompt": { type: "string" },
  "document-prompt": { type: "string" },
} as const;

/** `--help` lines of {@link MODEL_FLAGS}. */
export const MODEL_FLAGS_HELP =
  `  --pooling MODE     cls, mean, max, lasttoken or pooler (BERT's tanh pooler) instead of
                     what the model declares (its sentence-transformers modules.json /
                     1_Pooling/config.json) or its family's default
  --query-prompt S   prepended to every query instead of the model's own prompt
                     (config_sentence_transformers.json); "" for none
  --document-prompt S
                     the same for documents`;

/**
 * The loading options of {@link MODEL_FLAGS}' values, checked: an unknown pooling is a
 * {@link UsageError}.
 */
export function modelFlagOptions(
  values: { pooling?: string; "query-prompt"?: string; "document-prompt"?: string },
): Pick<LoadEncoderOptions, "pooling" | "prompts"> {
  const out: Pick<LoadEncoderOptions, "pooling" | "prompts"> = {};
  if (values.pooling !== undefined) {
    if (!POOLINGS.includes(values.pooling as Pooling)) {
      throw new UsageError(
        `--pooling must be one of ${POOLINGS.join(", ")} (got ${shown(values.pooling)})`,
      );
    }
    out.pooling = values.pooling as Pooling;
  }
  const q = values["query-prompt"], d = values["document-prompt"];
  if (q !== undefined || d !== undefined) {
    out.prompts = {};
    if (q !== undefined) out.prompts.query = q;
    if (d !== undefined) out.prompts.document = d;
  }
  return out;
}

/**
 * Loads the model named by `--model` for a CLI: errors the scripts already report in one line
 * pass through, anything else becomes a {@link UsageError} `cannot load model '...'`.
 */
export async function loadModelForCli(
  gpu: Gpu,
  spec: string,
  opts: LoadEncoderOptions = {},
): Promise<LoadedEncoder> {
  try {
    const model = await loadEncoder(gpu, spec, opts);
    for (const note of model.notes ?? []) console.error(`note: ${note}`);
    return model;
  } catch (e) {
    if (knownErrorExitCode(e) !== undefined) throw e;
    throw new UsageError(`cannot load model '${spec}': ${(e as Error).message}`);
  }
}

/**
 * Runs a script's `main`: bad flags and input, and the known failures, end it with one line
 * `name: message` on stderr and their exit code (2 or 1, {@link knownErrorExitCode}); with
 * `plainErrorsAreUsage`, a plain `Error` from the library (a dataset not found, say: its message
 * says what to do) counts as bad input too. Anything else is a bug and shows its stack.
 */
export async function runCli(
  name: string,
  main: () => Promise<void>,
  opts: { plainErrorsAreUsage?: boolean } = {},
): Promise<void> {
  try {
    await main();
  } catch (e) {
    const code = knownErrorExitCode(e) ??
      (opts.plainErrorsAreUsage && e instanceof Error && e.constructor === Error ? 2 : undefined);
    if (code === undefined) throw e;
    console.error(`${name}: ${(e as Error).message}`);
    Deno.exit(code);
  }
}

/**
 * `node:util`'s `parseArgs` for a script: an unknown flag or a missing value is a
 * {@link UsageError} pointing at `--help`.
 */
export function parseCliArgs<T extends ParseArgsConfig>(
  config: T,
): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n(see --help)`);
  }
}
