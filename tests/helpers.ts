/**
 * Test helpers: seeded random data, closeness assertions, and {@link checkOp}, the one helper that
 * compares a GPU op's forward and every input gradient against a float64 CPU reference.
 *
 * Gradients are checked against central finite differences of the float64 reference
 * (eps 1e-5 in float64: truncation error ~1e-10, far below the f32 tolerance), so the check
 * tests the hand-written WGSL backward against the numerical derivative of an independent
 * implementation of the forward.
 *
 * @module
 */
import { Tape } from "../src/autodiff/tape.ts";
import { getGpu, type Gpu } from "../src/gpu/device.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { Rng } from "../src/util/rng.ts";
import type { Doc, Qrels } from "../src/data/types.ts";
import { Bm25Index } from "../src/eval/bm25.ts";
import {
  beirTriples,
  splitValidation,
  type Triple,
  type ValidationData,
  validationData,
} from "../src/train/data.ts";

/** A seeded uniform [0, 1) generator (mulberry32). */
export function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

/** `n` seeded standard-normal samples (Box-Muller), scaled. */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  const u = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
    out[i] = r * scale;
  }
  return out;
}

/** Tolerances: |a - e| <= atol + rtol * |e| elementwise. */
export interface Tolerance {
  /** Absolute tolerance. */
  atol: number;
  /** Relative tolerance. */
  rtol: number;
}

/** Asserts elementwise closeness, reporting the worst element. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance,
  label = "values",
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${label}: length ${actual.length} != expected ${expected.length}`);
  }
  let worst = -1, worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i];
    const bound = tol.atol + tol.rtol * Math.abs(e);
    const err = Math.abs(a - e);
    if (!(err <= bound)) {
      const excess = Number.isFinite(err) ? err / bound : Infinity;
      if (excess > worstExcess || worst < 0) {
        worst = i;
        worstExcess = excess;
      }
    }
  }
  if (worst >= 0) {
    throw new Error(
      `${label}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} ` +
        `(|diff| ${Math.abs(actual[worst] - expected[worst]).toExponential(3)}, ` +
        `atol ${tol.atol}, rtol ${tol.rtol})`,
    );
  }
}

/** The shared GPU for tests. */
export function gpu(): Promise<Gpu> {
  return getGpu();
}

/** An input of {@link checkOp}. */
export interface OpInput {
  /** Its shape. */
  shape: number[];
  /** Its data; seeded normal samples by default. */
  data?: Float32Array;
  /** Whether its gradient is checked. Default true. */
  grad?: boolean;
  /** Element type; non-f32 inputs never get gradients. */
  dtype?: "f32" | "i32" | "u32";
}

/** What {@link checkOp} compares. */
export interface CheckOpSpec {
  /** Name used in failure messages. */
  name: string;
  /** The inputs. */
  inputs: OpInput[];
  /** The GPU op under test; it must record its backward on `tape`. */
  forward: (tape: Tape, ...inputs: Tensor[]) => Promise<Tensor>;
  /** The float64 CPU reference of the same function. */
  reference: (...inputs: Float64Array[]) => Float64Array;
  /** Forward tolerance. Default atol 1e-5, rtol 1e-5. */
  forwardTol?: Tolerance;
  /** Gradient tolerance. Default atol 1e-4, rtol 1e-3. */
  gradTol?: Tolerance;
  /** Seed of the data and of the random output cotangent. */
  seed?: number;
  /**
   * How many elements of each input get a finite-difference check (a seeded random subset;
   * all when the input is smaller). Default 48: enough to catch any indexing error, which
   * corrupts a large fraction of elements, while keeping the O(n·reference) cost small.
   */
  fdSamples?: number;
}

/**
 * Compares forward and every input gradient of a GPU op against a float64 reference. The loss
 * is L = Σ out · w for a seeded random w, so every output element's gradient path is exercised.
 */
export async function checkOp(spec: CheckOpSpec): Promise<void> {
  const g = await gpu();
  const seed = spec.seed ?? 1;
  const hostInputs = spec.inputs.map((inp, i) =>
    inp.data ?? randn(inp.shape.reduce((a, b) => a * b, 1), seed * 101 + i)
  );
  const tensors = spec.inputs.map((inp, i) =>
    Tensor.from(g, hostInputs[i], inp.shape, inp.dtype ?? "f32")
  );
  const tape = new Tape();
  const checked = spec.inputs.map((inp) => (inp.dtype ?? "f32") === "f32" && inp.grad !== false);
  tensors.forEach((t, i) => checked[i] && tape.watch(t));
  const out = await spec.forward(tape, ...tensors);
  const actual = await out.read();
  const f64Inputs = hostInputs.map((d) => Float64Array.from(d));
  const expected = spec.reference(...f64Inputs);
  assertClose(
    actual,
    expected,
    spec.forwardTol ?? { atol: 1e-5, rtol: 1e-5 },
    `${spec.name} forward`,
  );

  if (!checked.some(Boolean)) return;
  const w = randn(actual.length, seed * 7919 + 3);
  await tape.backward(out, w);
  const lossOf = (inputs: Float64Array[]) => {
    const o = spec.reference(...inputs);
    let s = 0;
    for (let i = 0; i < o.length; i++) s += o[i] * w[i];
    return s;
  };
  const eps = 1e-5;
  for (let i = 0; i < tensors.length; i++) {
    if (!checked[i]) continue;
    const gradGpu = await tape.grad(tensors[i])!.read();
    const x = f64Inputs[i];
    const picks = sampleIndices(x.length, spec.fdSamples ?? 48, seed * 31 + i);
    const numeric = new Float64Array(picks.length);
    for (const [n, j] of picks.entries()) {
      const keep = x[j];
      x[j] = keep + eps;
      const up = lossOf(f64Inputs);
      x[j] = keep - eps;
      const down = lossOf(f64Inputs);
      x[j] = keep;
      numeric[n] = (up - down) / (2 * eps);
    }
    assertClose(
      picks.map((j) => gradGpu[j]),
      numeric,
      spec.gradTol ?? { atol: 1e-4, rtol: 1e-3 },
      `${spec.name} gradient of input ${i}`,
    );
  }
  tape.dispose();
  tensors.forEach((t) => t.destroy());
}

/** `count` distinct indices in [0, n), seeded; all of them when n <= count. */
export function sampleIndices(n: number, count: number, seed: number): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  if (n <= count) return all;
  const u = rng(seed);
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(u() * (n - i));
    [all[i], all[j]] = [all[j], all[i]];
  }
  return all.slice(0, count).sort((a, b) => a - b);
}

/**
 * Bitwise equality of float arrays, reporting the first difference. Use it instead of
 * deepStrictEqual for large arrays: a failing deepStrictEqual builds a diff of every element.
 */
export function assertBitEqual(
  actual: ArrayLike<number> | undefined,
  expected: ArrayLike<number>,
  name = "values",
): void {
  if (!actual) throw new Error(`${name} missing`);
  if (actual.length !== expected.length) {
    throw new Error(`${name}: length ${actual.length} != expected ${expected.length}`);
  }
  const a = new Uint32Array(Float32Array.from(actual).buffer);
  const e = new Uint32Array(Float32Array.from(expected).buffer);
  const i = a.findIndex((x, k) => x !== e[k]);
  if (i >= 0) throw new Error(`${name}[${i}]: ${actual[i]} != ${expected[i]}`);
}

/** Runs `f` with a fresh temporary directory that is removed afterwards, whatever happens. */
export async function withTempDir<T>(f: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "selfmargin_test_" });
  try {
    return await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A tiny BEIR dataset (8 documents, 4 queries, train and test qrels). */
export async function tinyBeir(dir: string, corpusLines?: string[]): Promise<string> {
  await Deno.mkdir(`${dir}/qrels`, { recursive: true });
  const texts = [
    "cell biology study",
    "protein folding in the cell",
    "virus gene encode",
    "brain blood drug",
    "cells encode protein",
    "the study of the gene",
    "blood drug cell",
    "what does a virus encode",
  ];
  const corpus = corpusLines ??
    texts.map((text, i) => JSON.stringify({ _id: `d${i + 1}`, title: "", text }));
  await Deno.writeTextFile(`${dir}/corpus.jsonl`, corpus.join("\n") + "\n");
  const queries = ["cell study", "protein", "virus", "brain drug"];
  await Deno.writeTextFile(
    `${dir}/queries.jsonl`,
    queries.map((text, i) => JSON.stringify({ _id: `q${i + 1}`, text })).join("\n") + "\n",
  );
  const qrels = "query-id\tcorpus-id\tscore\n" +
    queries.map((_, i) => `q${i + 1}\td${i + 1}\t1\n`).join("");
  await Deno.writeTextFile(`${dir}/qrels/train.tsv`, qrels);
  await Deno.writeTextFile(`${dir}/qrels/test.tsv`, qrels);
  return dir;
}

const TINY_WORDS = ["cell", "protein", "virus", "gene", "brain", "heart", "blood", "drug", "mouse"];

/** The tiny training corpus of {@link tinyTrainingData}: 24 documents over 9 words. */
export const TINY_CORPUS: Doc[] = Array.from({ length: 24 }, (_, i) => ({
  id: `d${i}`,
  title: "",
  text: `${TINY_WORDS[i % 9]} ${TINY_WORDS[(i * 7 + 3) % 9]} and ${
    TINY_WORDS[(i * 5 + 1) % 9]
  } study ${i}`,
}));

/**
 * Tiny training data for trainer tests: 9 queries with two positives each, 3 carved for
 * validation, BM25 negatives (seed 2), validation candidates from BM25's top 5.
 */
export async function tinyTrainingData(): Promise<
  { triples: Triple[]; validation: ValidationData }
> {
  const queries = new Map(
    Array.from({ length: 9 }, (_, i) => [`q${i}`, `${TINY_WORDS[i]} effects`]),
  );
  const qrels: Qrels = new Map(
    [...queries.keys()].map((q, i) => [q, new Map([[`d${i}`, 1], [`d${i + 9}`, 1]])]),
  );
  const { train, validation } = splitValidation({ queries, qrels }, { count: 3, seed: 1 });
  const bm25 = Bm25Index.build(TINY_CORPUS);
  const { triples } = await beirTriples(TINY_CORPUS, train, {
    negatives: { kind: "bm25", depth: 8 },
    seed: 2,
    bm25,
  });
  return { triples, validation: validationData(TINY_CORPUS, validation, 5, bm25) };
}

/** What {@link runScript} returns. */
export interface ScriptResult {
  /** The exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/**
 * Runs `deno run -A --no-check scripts/NAME.ts ARGS...` (no colours), and returns its exit code
 * and output.
 */
export async function runScript(name: string, ...args: string[]): Promise<ScriptResult> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", `scripts/${name}.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return {
    code: r.code,
    stdout: new TextDecoder().decode(r.stdout),
    stderr: new TextDecoder().decode(r.stderr),
  };
}
