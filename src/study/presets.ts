/**
 * Built-in studies for `deno task study --preset NAME`: a spec (as a study file would hold it,
 * checked by {@link parseStudySpec}) and the data preparation that goes with it.
 *
 * @module
 */
import type { StudyData } from "./run.ts";
import { parseStudySpec, type StudySpec } from "./spec.ts";

/** A built-in study: its spec and data preparation. */
export interface StudyPreset {
  /** One line saying what it is. */
  description: string;
  /** The checked spec. */
  spec: StudySpec;
  /** Data preparation beyond the spec. */
  data: StudyData;
}

/**
 * `tiny`: every arm of the paper's comparison on a SciFact slice, small enough for a test (a
 * couple of minutes on a CPU WebGPU adapter): 60 train queries (8 carved for validation, each
 * re-ranking its BM25 top 8), 20 test queries, the judged documents plus 100 others; USE-lite, batches of 8, 16 query and 32
 * document tokens, at most 6 steps, validation every 3; one seed, budgets 0.5 and 1. The
 * Margin-MSE teacher is the untrained USE-lite itself (an encoder teacher standing in for a
 * cross-encoder, which this preset cannot load offline): its numbers test the machinery, not
 * the claims.
 */
function tiny(): StudyPreset {
  return {
    description: "SciFact slice, every arm, a few steps (a smoke test of the study machinery)",
    spec: parseStudySpec({
      dataset: "scifact",
      model: "use-lite",
      training: {
        batchSize: 8,
        lr: 1e-4,
        queryLength: 16,
        docLength: 32,
        maxSteps: 6,
        validateEvery: 3,
        patience: 4,
        negativesPerPositive: 1,
        validationQueries: 8,
      },
      seeds: [1],
      budgets: [0.5, 1],
      dataSeed: 1,
      teachers: { "use-lite": { kind: "encoder", model: "use-lite" } },
      arms: [
        { name: "margin-mse", kind: "margin-mse", teacher: "use-lite" },
        { name: "adaptive", kind: "margin", target: "adaptive" },
        { name: "distributed", kind: "margin", target: "distributed" },
        { name: "static-sweep", kind: "static-sweep", margins: [0.1, 0.3] },
      ],
      reference: "margin-mse",
      tostMargin: 0.02,
    }, "preset tiny"),
    data: {
      slice: { trainQueries: 60, testQueries: 20, extraDocs: 100 },
      validationDepth: 8,
      k: 100,
      evalLength: 32,
    },
  };
}

/**
 * `scifact`: the full SciFact study with USE-lite: 3 seeds, budgets 0.25/0.5/1, four BM25
 * negatives per positive, every arm. The numbers (learning rate, lengths, steps, validation
 * cadence, the sweep's margins) are sensible guesses, not tuned: they are to be chosen on the
 * validation split (carved from train) before the study's results are read. The Margin-MSE
 * teacher is the untrained USE-lite (an encoder teacher) unless a cross-encoder directory is
 * put in its place in a study file.
 */
function scifact(): StudyPreset {
  return {
    description: "full SciFact, USE-lite, every arm, 3 seeds (settings to be tuned on validation)",
    spec: parseStudySpec({
      dataset: "scifact",
      model: "use-lite",
      training: {
        batchSize: 16,
        lr: 1e-4,
        queryLength: 32,
        docLength: 128,
        maxSteps: 400,
        validateEvery: 20,
        patience: 5,
        negativesPerPositive: 4,
        validationQueries: 40,
      },
      seeds: [1, 2, 3],
      budgets: [0.25, 0.5, 1],
      dataSeed: 1,
      teachers: { "use-lite": { kind: "encoder", model: "use-lite" } },
      arms: [
        { name: "margin-mse", kind: "margin-mse", teacher: "use-lite" },
        { name: "adaptive", kind: "margin", target: "adaptive" },
        { name: "distributed", kind: "margin", target: "distributed" },
        { name: "static-sweep", kind: "static-sweep", margins: [0.05, 0.1, 0.2, 0.3, 0.5] },
        { name: "infonce", kind: "infonce", scale: 20 },
      ],
      reference: "margin-mse",
      tostMargin: 0.02,
    }, "preset scifact"),
    data: { validationDepth: 100, k: 1000 },
  };
}

/** The preset names `--preset` accepts. */
export const PRESET_NAMES: readonly string[] = Object.freeze(["tiny", "scifact"]);

/** The preset called `name`, or null when there is none. */
export function studyPreset(name: string): StudyPreset | null {
  switch (name) {
    case "tiny":
      return tiny();
    case "scifact":
      return scifact();
    default:
      return null;
  }
}
