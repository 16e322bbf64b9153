// The training options' one defaults object: `train` resolves absent options from it, and
// `deno task train --help` prints its defaults from it (change a default there and the help
// follows). Library code draws no progress bars: nothing outside src/cli/ imports from it.
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  DEFAULT_TRAIN_OPTIONS,
  planTraining,
  type TrainDefaults,
  withTrainDefaults,
} from "../src/train/trainer.ts";
import { helpText } from "../scripts/train.ts";

/** The help line of `--flag` (its first line). */
function helpLine(text: string, flag: string): string {
  const line = text.split("\n").find((l) => l.startsWith(`  ${flag} `));
  ok(line, `no help line for ${flag}`);
  return line!;
}

Deno.test("train --help prints the defaults of DEFAULT_TRAIN_OPTIONS, whatever they are", () => {
  const text = helpText();
  const expected: [string, string][] = [
    ["--loss", `(default ${DEFAULT_TRAIN_OPTIONS.loss})`],
    ["--target", `(default ${DEFAULT_TRAIN_OPTIONS.target})`],
    ["--error", `(default ${DEFAULT_TRAIN_OPTIONS.error})`],
    ["--per-query", `(default indexing: ${DEFAULT_TRAIN_OPTIONS.inBatchIndexing})`],
    ["--scale", `(default ${DEFAULT_TRAIN_OPTIONS.infonceScale})`],
    ["--batch-size", `(default ${DEFAULT_TRAIN_OPTIONS.batchSize})`],
    ["--query-length", `(default ${DEFAULT_TRAIN_OPTIONS.queryLength})`],
    ["--doc-length", `(default ${DEFAULT_TRAIN_OPTIONS.docLength};`],
    ["--lr", `(default ${DEFAULT_TRAIN_OPTIONS.lr},`],
    ["--weight-decay", `(default ${DEFAULT_TRAIN_OPTIONS.weightDecay}:`],
    ["--schedule", `(default ${DEFAULT_TRAIN_OPTIONS.schedule};`],
    ["--gamma", `(default ${DEFAULT_TRAIN_OPTIONS.gamma})`],
    ["--warmup", `(default ${DEFAULT_TRAIN_OPTIONS.warmup})`],
    ["--clip", "(default: off, norm measured)"],
    ["--eval-every", `(default ${DEFAULT_TRAIN_OPTIONS.evalEvery})`],
    ["--patience", `(default ${DEFAULT_TRAIN_OPTIONS.patience})`],
    ["--seed", `(default ${DEFAULT_TRAIN_OPTIONS.seed})`],
  ];
  for (const [flag, shown] of expected) {
    ok(helpLine(text, flag).includes(shown), `${flag}: ${helpLine(text, flag)}`);
  }
  // Other defaults: the help changes with them (nothing is written twice).
  const other: TrainDefaults = {
    ...DEFAULT_TRAIN_OPTIONS,
    loss: "infonce",
    lr: 2e-8,
    evalEvery: 123,
    patience: 7,
    batchSize: 64,
    maxGradNorm: 1,
    schedule: "linear",
  };
  const changed = helpText(other);
  ok(helpLine(changed, "--loss").includes("(default infonce)"));
  ok(helpLine(changed, "--lr").includes("(default 2e-8, the reference's)"));
  ok(helpLine(changed, "--eval-every").includes("(default 123)"));
  ok(helpLine(changed, "--patience").includes("(default 7)"));
  ok(helpLine(changed, "--batch-size").includes("(default 64)"));
  ok(helpLine(changed, "--clip").includes("(default: 1)"));
  ok(helpLine(changed, "--schedule").includes("(default linear;"));
});

Deno.test("train --help runs and lists every section", async () => {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", "scripts/train.ts", "--help"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  strictEqual(r.code, 0, new TextDecoder().decode(r.stderr));
  const out = new TextDecoder().decode(r.stdout);
  strictEqual(out.trim(), helpText().trim());
  for (const s of ["Data:", "Model and loss:", "Optimisation:", "Output:", "-h, --help"]) {
    ok(out.includes(s), s);
  }
  ok(out.split("\n").every((l) => l.length <= 100), "a help line is over 100 characters");
});

Deno.test("absent or undefined options take DEFAULT_TRAIN_OPTIONS; the plan checks them", () => {
  const o = withTrainDefaults({ outDir: "x", lr: undefined, patience: 3, gamma: undefined });
  deepStrictEqual(
    { ...o },
    { ...DEFAULT_TRAIN_OPTIONS, outDir: "x", patience: 3 },
  );
  ok(Object.isFrozen(DEFAULT_TRAIN_OPTIONS));
  const plan = planTraining({ outDir: "x", batchSize: 4 }, { triples: 10, teacher: false });
  strictEqual(plan.totalSteps, 2); // one epoch of two full batches
  strictEqual(plan.schedule(0), DEFAULT_TRAIN_OPTIONS.lr);
  deepStrictEqual(plan.trajectory, {
    loss: "margin",
    batchSize: 4,
    queryLength: DEFAULT_TRAIN_OPTIONS.queryLength,
    docLength: DEFAULT_TRAIN_OPTIONS.docLength,
    lr: DEFAULT_TRAIN_OPTIONS.lr,
    weightDecay: 0,
    schedule: "constant",
    warmup: 0,
    gamma: 0.99999,
    totalSteps: 2,
    evalEvery: 500,
    patience: 16,
    maxGradNorm: "Infinity",
    seed: 1,
    target: "adaptive",
    inBatch: false,
    error: "l2",
    detachTarget: false,
    inBatchIndexing: "reference",
  });
  strictEqual(
    planTraining({ outDir: "x", batchSize: 4, maxSteps: 5, epochs: 3 }, {
      triples: 10,
      teacher: false,
    }).totalSteps,
    5,
  );
  throws(
    () => planTraining({ outDir: "x", evalEvery: 0 }, { triples: 100, teacher: false }),
    /evalEvery must be a positive integer: 0/,
  );
  throws(
    () => planTraining({ outDir: "x", loss: "margin-mse" }, { triples: 100, teacher: false }),
    /Margin-MSE needs teacher scores/,
  );
  throws(
    () => planTraining({ outDir: "x", batchSize: 8 }, { triples: 5, teacher: false }),
    /5 triples do not fill one batch of 8/,
  );
});

/** Relative paths of the .ts files under `dir`. */
async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await tsFiles(path));
    else if (e.name.endsWith(".ts")) out.push(path);
  }
  return out.sort();
}

Deno.test("library code imports nothing from src/cli/ (only scripts draw bars)", async () => {
  // dense.ts still draws encodeCached's bar (its `progress` flag, used by scripts/eval.ts); it is
  // listed so the test tells when that changes.
  const known: string[] = [];
  const offenders: string[] = [];
  for (const file of await tsFiles("src")) {
    if (file.startsWith("src/cli/")) continue;
    const text = await Deno.readTextFile(file);
    if (/from\s+["'][./]*\/cli\//.test(text)) offenders.push(file);
  }
  deepStrictEqual(offenders, known);
});

Deno.test("bad option values are refused before --out, the data or the model is touched", async () => {
  const out = await Deno.makeTempDir();
  await Deno.remove(out); // the directory must not be created by a refused run
  const cases: [string[], RegExp][] = [
    [["--query-length", "0"], /queryLength must be a positive integer: 0/],
    [["--lr=-1"], /learning rate must be finite and >= 0: -1/],
    [["--target", "distributed", "--in-batch"], /distributed targets cannot be combined/],
    [["--clip", "0"], /maxGradNorm must be positive/],
    [["--chunk-size=-2"], /chunkSize must be a non-negative integer/],
    [["--pooling", "weighted"], /--pooling must be one of/],
  ];
  for (const [flags, pattern] of cases) {
    const t0 = performance.now();
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "scripts/train.ts",
        "--data",
        "/nonexistent-data",
        "--out",
        out,
        ...flags,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const stderr = new TextDecoder().decode(r.stderr).trim();
    strictEqual(r.code, 2, `${flags.join(" ")}: ${stderr}`);
    ok(pattern.test(stderr), `${flags.join(" ")}: ${stderr}`);
    ok(!stderr.includes("    at "), `a stack trace: ${stderr}`);
    // The data path does not exist: had it been read first, the message would be about it.
    ok(!/nonexistent-data/.test(stderr), stderr);
    ok(performance.now() - t0 < 60_000);
    await Deno.stat(out).then(
      () => ok(false, `${flags.join(" ")} created ${out}`),
      (e) => ok(e instanceof Deno.errors.NotFound),
    );
  }
});
