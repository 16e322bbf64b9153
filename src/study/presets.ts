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
 * document tokens, at most 4 steps, validation every 2; one seed, budgets 0.5 and 1. The
 * Margin-MSE teacher is USE-lite trained by the study with InfoNCE for 3 steps on 48-token
 * documents (standing in for a cross-encoder, which this preset cannot load offline): its
 * numbers test the machinery, not the claims.
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
        maxSteps: 4,
        validateEvery: 2,
        patience: 4,
        negativesPerPositive: 1,
        validationQueries: 8,
      },
      seeds: [1],
      budgets: [0.5, 1],
      dataSeed: 1,
      teachers: { "use-lite-infonce": { kind: "trained", scale: 20, docLength: 48, maxSteps: 3 } },
      arms: [
        { name: "margin-mse", kind: "margin-mse", teacher: "use-lite-infonce" },
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
 * `scifact`: SciFact with USE-lite, every arm, cut to fit a session on a 2-core CPU through
 * lavapipe (docs/study_scifact/): one seed, budgets 0.25 and 1 of the training triples (two BM25
 * negatives per positive: 1,740), batches of 16, 24 query and 48 document tokens, at most 80
 * steps, validation every 10 steps on 40 train queries each re-ranking its BM25 top 15, patience
 * 3, the whole corpus encoded at 48 tokens for test.
 *
 * The learning rate is each arm's own, chosen on validation (best validation nDCG@10 at budget 1,
 * seed 1; never test) by `docs/study_scifact/tune.ts` (docs/study_scifact/tuning.json): 3e-4 for
 * the adaptive and distributed arms (of 3e-5, 1e-4, 3e-4, 1e-3), 1e-4 for Margin-MSE and the
 * static sweep (of 3e-5, 1e-4, 3e-4; the sweep tuned at its margin 0.3, then run at 0.1, 0.3 and
 * 0.5) and for InfoNCE (of 1e-4 and 3e-4). The shared 1e-4, chosen on validation in `deno task
 * demo`, is also what the teacher trains with. The lengths and the 80-step cap were set by CPU time, not tuned, and the batch size
 * was not tuned. The Margin-MSE teacher is USE-lite trained by the study with InfoNCE on all the
 * triples with 96-token documents (the offline, small-scale analogue of the paper's cross-encoder
 * teachers); its training and scoring are charged to the Margin-MSE arm.
 */
function scifact(): StudyPreset {
  return {
    description:
      "SciFact, USE-lite, every arm at its own learning rate (chosen on validation), one seed, " +
      "budgets 0.25 and 1",
    spec: parseStudySpec({
      dataset: "scifact",
      model: "use-lite",
      training: {
        batchSize: 16,
        lr: 1e-4,
        queryLength: 24,
        docLength: 48,
        maxSteps: 80,
        validateEvery: 10,
        patience: 3,
        negativesPerPositive: 2,
        validationQueries: 40,
      },
      seeds: [1],
      budgets: [0.25, 1],
      dataSeed: 1,
      teachers: {
        "use-lite-infonce": { kind: "trained", scale: 20, docLength: 96, maxSteps: 100 },
      },
      arms: [
        { name: "margin-mse", kind: "margin-mse", teacher: "use-lite-infonce" },
        { name: "adaptive", kind: "margin", target: "adaptive", training: { lr: 3e-4 } },
        { name: "distributed", kind: "margin", target: "distributed", training: { lr: 3e-4 } },
        { name: "static-sweep", kind: "static-sweep", margins: [0.1, 0.3, 0.5] },
        { name: "infonce", kind: "infonce", scale: 20 },
      ],
      reference: "margin-mse",
      tostMargin: 0.02,
    }, "preset scifact"),
    data: { validationDepth: 15, k: 1000, evalLength: 48 },
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
