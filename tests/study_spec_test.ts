import { deepStrictEqual as assertEquals, ok as assert, rejects, throws } from "node:assert/strict";
import {
  budgetSubset,
  canonicalJson,
  checkStudyFiles,
  DEFAULT_STUDY_TRAINING,
  DEFAULT_TOST_MARGIN,
  expandRuns,
  parseStudySpec,
  resolveTeacher,
  StudySpecError,
} from "../src/study/spec.ts";
import { studyPreset } from "../src/study/presets.ts";
import { buildStudyResults } from "../src/study/report.ts";
import type { RunResult } from "../src/study/run.ts";
import {
  dataEfficiency,
  ledgerLine,
  type RunCost,
  sumLedger,
  sweepWinner,
  timeRatio,
  type ValidationPoint,
} from "../src/study/analysis.ts";

const SPEC = {
  dataset: "scifact",
  seeds: [1, 2],
  budgets: [0.5, 0.25, 1],
  teachers: { big: { kind: "encoder", model: "teacher-dir" } },
  arms: [
    { name: "mse", kind: "margin-mse", teacher: "big" },
    { name: "adaptive", kind: "margin", target: "adaptive" },
    { name: "distributed", kind: "margin", target: "distributed", detachTarget: true },
    { name: "sweep", kind: "static-sweep", margins: [0.1, 0.3], inBatch: true },
    { name: "nce", kind: "infonce" },
  ],
};

Deno.test("a mined negatives file is part of every run's key, by its content", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/negatives.jsonl`;
    await Deno.writeTextFile(file, '{"qid":"1","pos":"a","neg":"b"}\n');
    const keys = async (training: Record<string, unknown>) =>
      (await expandRuns(parseStudySpec({ ...SPEC, training }, "s.json"))).map((r) => r.key);
    const bm25 = await keys({});
    const mined = await keys({ negatives: file });
    assert(mined.every((k, i) => k !== bm25[i]), "mined negatives change every key");
    assertEquals(await keys({ negatives: file }), mined, "the same file, the same keys");
    await Deno.writeTextFile(file, '{"qid":"1","pos":"a","neg":"c"}\n');
    assert(
      (await keys({ negatives: file })).every((k, i) => k !== mined[i]),
      "new content, new keys",
    );
    await rejects(
      keys({ negatives: `${dir}/none.jsonl` }),
      /training\.negatives: .*none\.jsonl: cannot read it/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a trained teacher takes the shared training settings it does not name", () => {
  const spec = parseStudySpec({
    ...SPEC,
    training: { docLength: 40, maxSteps: 9 },
    teachers: { a: { kind: "trained" }, b: { kind: "trained", scale: 5, docLength: 96 } },
    arms: [{ name: "mse", kind: "margin-mse", teacher: "b" }],
  }, "s.json");
  assertEquals(spec.teachers.a, { kind: "trained", scale: 20, docLength: 40, maxSteps: 9 });
  assertEquals(spec.teachers.b, { kind: "trained", scale: 5, docLength: 96, maxSteps: 9 });
});

Deno.test("a study spec expands to arm x sweep value x budget x seed, with defaults filled", async () => {
  const spec = parseStudySpec(SPEC, "s.json");
  assertEquals(spec.model, "use-lite");
  assertEquals(spec.training, DEFAULT_STUDY_TRAINING);
  assertEquals(spec.budgets, [0.25, 0.5, 1]); // sorted
  assertEquals(spec.reference, "mse"); // the first Margin-MSE arm, when not named
  assertEquals(spec.tostMargin, DEFAULT_TOST_MARGIN);
  const runs = await expandRuns(spec);
  // 4 single arms + a sweep of 2 values, each x 3 budgets x 2 seeds.
  assertEquals(runs.length, (4 + 2) * 3 * 2);
  const sweep = runs.filter((r) => r.arm === "sweep");
  assertEquals(sweep.length, 12);
  assertEquals([...new Set(sweep.map((r) => r.sweepValue))], [0.1, 0.3]);
  for (const r of sweep) {
    assert(r.settings.loss.loss === "margin" && r.settings.loss.target === r.sweepValue);
    assert(r.settings.loss.loss === "margin" && r.settings.loss.inBatch);
  }
  const mse = runs.find((r) => r.arm === "mse")!;
  assertEquals(mse.settings.teacher, { kind: "encoder", model: "teacher-dir" });
  assertEquals(runs.find((r) => r.arm === "nce")!.settings.loss, { loss: "infonce", scale: 20 });
  // Keys: distinct runs hash apart, and the same settings hash alike in another expansion.
  assertEquals(new Set(runs.map((r) => r.key)).size, runs.length);
  assertEquals((await expandRuns(parseStudySpec(SPEC))).map((r) => r.key), runs.map((r) => r.key));
  for (const r of runs) assert(/^[0-9a-f]{64}$/.test(r.key));
});

Deno.test("a run's key changes with any setting that changes the run, and only then", async () => {
  const key = async (spec: unknown) => (await expandRuns(parseStudySpec(spec)))[0].key;
  const base = { dataset: "d", seeds: [1], arms: [{ name: "a", kind: "margin", target: 0.2 }] };
  const k0 = await key(base);
  assertEquals(
    await key({ ...base, arms: [{ name: "renamed", kind: "margin", target: 0.2 }] }),
    k0,
  );
  assertEquals(await key({ ...base, tostMargin: 0.05 }), k0); // analysis only
  for (
    const changed of [
      { ...base, seeds: [2] },
      { ...base, dataset: "e" },
      { ...base, model: "other" },
      { ...base, dataSeed: 7 },
      { ...base, budgets: [0.5] },
      { ...base, training: { lr: 3e-5 } },
      { ...base, arms: [{ name: "a", kind: "margin", target: 0.3 }] },
      { ...base, arms: [{ name: "a", kind: "margin", target: 0.2, error: "l1" }] },
      { ...base, arms: [{ name: "a", kind: "margin", target: 0.2, detachTarget: true }] },
    ]
  ) assert((await key(changed)) !== k0, JSON.stringify(changed));
});

Deno.test("an arm's own training settings: the merged settings are its key; a teacher's stay shared", async () => {
  const arm = (training?: Record<string, unknown>) => ({
    name: "a",
    kind: "margin",
    target: "adaptive",
    ...(training ? { training } : {}),
  });
  const mse = (training?: Record<string, unknown>) => ({
    name: "m",
    kind: "margin-mse",
    teacher: "t",
    ...(training ? { training } : {}),
  });
  const spec = (shared: Record<string, unknown>, arms: unknown[]) =>
    parseStudySpec({
      dataset: "d",
      seeds: [1],
      training: { lr: 1e-4, ...shared },
      teachers: { t: { kind: "trained" } },
      arms,
    });
  const [own] = await expandRuns(spec({}, [arm({ lr: 3e-4, maxSteps: 40 })]));
  const [shared] = await expandRuns(spec({ lr: 3e-4, maxSteps: 40 }, [arm()]));
  assertEquals(own.settings.training.lr, 3e-4);
  assertEquals(own.settings.training.maxSteps, 40);
  assertEquals(own.key, shared.key, "an arm's own lr is keyed as if it were shared");
  const [same] = await expandRuns(spec({}, [arm({ lr: 1e-4 })]));
  const [none] = await expandRuns(spec({}, [arm()]));
  assertEquals(same.key, none.key, "an override equal to the shared value changes nothing");
  // Margin-MSE: the trained teacher learns with the shared lr, so it is part of the key.
  const [mOwn] = await expandRuns(spec({}, [mse({ lr: 3e-4 })]));
  const [mShared] = await expandRuns(spec({ lr: 3e-4 }, [mse()]));
  assertEquals(mOwn.settings.teacherTraining?.lr, 1e-4);
  assertEquals(mShared.settings.teacherTraining, undefined);
  assert(mOwn.key !== mShared.key, "another teacher, another key");
  const [mOther] = await expandRuns(spec({ lr: 2e-4 }, [mse({ lr: 3e-4 })]));
  assert(mOther.key !== mOwn.key, "the teacher's lr changed");
  const [mSame] = await expandRuns(spec({}, [mse({ lr: 1e-4 })]));
  assertEquals(mSame.key, (await expandRuns(spec({}, [mse()])))[0].key);
});

Deno.test("canonical JSON sorts keys at every depth", () => {
  assertEquals(
    canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: null } }),
    '{"a":{"c":null,"d":[2,{"e":0,"f":1}]},"b":1}',
  );
});

Deno.test("budgets are nested subsets of one seeded permutation", () => {
  const n = 101;
  const quarter = budgetSubset(n, 0.25, 3), half = budgetSubset(n, 0.5, 3);
  const all = budgetSubset(n, 1, 3);
  assertEquals(quarter.length, 26); // ceil(25.25)
  assertEquals(half.length, 51);
  assertEquals([...all].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
  assertEquals(half.slice(0, quarter.length), quarter);
  assert(half.every((i) => all.includes(i)));
  assertEquals(budgetSubset(n, 0.5, 3), half); // deterministic
  assert(budgetSubset(n, 0.5, 4).join() !== half.join(), "another data seed, another subset");
  assertEquals(budgetSubset(5, 0.01, 1).length, 1);
  throws(() => budgetSubset(5, 0, 1), RangeError);
});

Deno.test("a bad spec is one clear error naming the field, before anything runs", () => {
  const cases: [unknown, RegExp][] = [
    [
      { ...SPEC, arms: [{ name: "x", kind: "teacherless" }] },
      /^s\.json: arms\[0\]\.kind: unknown arm kind "teacherless"/,
    ],
    [
      { ...SPEC, arms: [{ name: "x", kind: "margin-mse", teacher: "nobody" }] },
      /arms\[0\]\.teacher: no teacher named "nobody"/,
    ],
    [{ ...SPEC, budgets: [0.5, 1.5] }, /budgets\[1\]: expected a fraction in \(0, 1\], got 1\.5/],
    [{ ...SPEC, budgets: [0] }, /budgets\[0\]: expected a fraction in \(0, 1\]/],
    [{ ...SPEC, seeds: [] }, /seeds: must not be empty/],
    [{ ...SPEC, seeds: undefined }, /seeds: expected an array, got nothing/],
    [{ ...SPEC, seeds: [1, 1] }, /seeds: repeats a seed/],
    [{ ...SPEC, dataset: undefined }, /dataset: expected a non-empty string/],
    [{ ...SPEC, arms: [] }, /arms: must not be empty/],
    [
      { ...SPEC, arms: [{ ...SPEC.arms[1], training: { lr: 0 } }] },
      /arms\[0\]\.training\.lr: expected a positive number/,
    ],
    [
      { ...SPEC, arms: [{ ...SPEC.arms[1], training: { negativesPerPositive: 4 } }] },
      /arms\[0\]\.training\.negativesPerPositive: unknown field/,
    ],
    [
      { ...SPEC, arms: [{ ...SPEC.arms[0], training: { batchSize: 2.5 } }] },
      /arms\[0\]\.training\.batchSize: expected an integer/,
    ],
    [
      { ...SPEC, arms: [SPEC.arms[1], SPEC.arms[1]] },
      /arms\[1\]\.name: repeats the arm name "adaptive"/,
    ],
    [
      { ...SPEC, arms: [{ name: "d", kind: "margin", target: "distributed", inBatch: true }] },
      /arms\[0\]: .*distributed/i,
    ],
    [
      { ...SPEC, arms: [{ name: "m", kind: "margin", target: "huge" }] },
      /arms\[0\]\.target: expected "adaptive", "distributed" or a number/,
    ],
    [
      { ...SPEC, arms: [{ name: "m", kind: "margin", target: 0.1, error: "l3" }] },
      /arms\[0\]\.error: expected "l1", "l2" or "soft"/,
    ],
    [
      { ...SPEC, arms: [{ name: "s", kind: "static-sweep", margins: [] }] },
      /arms\[0\]\.margins: must not be empty/,
    ],
    [
      { ...SPEC, arms: [{ name: "s", kind: "static-sweep", margins: [0.1, 0.1] }] },
      /arms\[0\]\.margins: repeats a value/,
    ],
    [
      { ...SPEC, arms: [{ name: "m", kind: "margin", target: 0.1, temperature: 2 }] },
      /arms\[0\]\.temperature: unknown field/,
    ],
    [{ ...SPEC, training: { lr: 0 } }, /training\.lr: expected a positive number/],
    [{ ...SPEC, training: { batchSize: 2.5 } }, /training\.batchSize: expected an integer >= 1/],
    [{ ...SPEC, training: { epochs: 2 } }, /training\.epochs: unknown field/],
    [{ ...SPEC, training: { chunkSize: 0 } }, /training\.chunkSize: expected an integer >= 1/],
    [{ ...SPEC, reference: "nope" }, /reference: no arm named "nope"/],
    [
      { ...SPEC, teachers: { m: { kind: "mean", of: ["x"] } } },
      /teachers\.m\.of\[0\]: no teacher named "x"/,
    ],
    [
      { ...SPEC, teachers: { t: { kind: "oracle" } } },
      /teachers\.t\.kind: unknown teacher kind "oracle"/,
    ],
    [
      { ...SPEC, teachers: { t: { kind: "trained", model: "x" } } },
      /teachers\.t\.model: unknown field/,
    ],
    [
      { ...SPEC, teachers: { t: { kind: "trained", docLength: 0 } } },
      /teachers\.t\.docLength: expected an integer >= 1/,
    ],
    [{ ...SPEC, extra: 1 }, /s\.json: extra: unknown field/],
    [[1, 2], /\(top level\): expected an object/],
  ];
  for (const [spec, pattern] of cases) {
    throws(() => parseStudySpec(spec, "s.json"), (e: unknown) => {
      assert(e instanceof StudySpecError, `${JSON.stringify(spec).slice(0, 80)}: ${e}`);
      assert(pattern.test(e.message), `${e.message} !~ ${pattern}`);
      return true;
    });
  }
});

function curve(points: [number, number, number][]): ValidationPoint[] {
  return points.map(([step, seconds, ndcg10]) => ({ step, triples: step * 32, seconds, ndcg10 }));
}

Deno.test("the ledger sums a run's costs and marks its best validation", () => {
  const cost: RunCost = {
    teacherSeconds: 5,
    trainSeconds: 100,
    validationSeconds: 20,
    triples: 3200,
    tokens: 3200 * 288,
    steps: 100,
    curve: curve([[0, 0, 0.3], [50, 60, 0.5], [100, 120, 0.5]]),
  };
  const line = ledgerLine(cost);
  assertEquals(line.totalSeconds, 125);
  assertEquals([line.bestStep, line.bestTriples, line.bestSeconds, line.bestNdcg10], [
    50,
    1600,
    60,
    0.5,
  ]);
  const sum = sumLedger([line, line]);
  assertEquals(sum, {
    teacherSeconds: 10,
    trainSeconds: 200,
    validationSeconds: 40,
    totalSeconds: 250,
    triples: 6400,
    tokens: 2 * 3200 * 288,
    steps: 200,
  });
  assertEquals(ledgerLine({ ...cost, curve: [] }).bestStep, null);
});

Deno.test("data efficiency: the share of the reference's triples at which an arm first reaches its best", () => {
  // The reference reaches its best 0.50 after 200 steps (6400 triples).
  const arm = curve([[0, 0, 0.2], [20, 10, 0.45], [40, 20, 0.51], [60, 30, 0.49]]);
  assertEquals(dataEfficiency(arm, 0.5, 6400), (40 * 32) / 6400); // 0.2
  assertEquals(dataEfficiency(arm, 0.6, 6400), null);
  assertEquals(dataEfficiency([], 0.5, 6400), null);
  throws(() => dataEfficiency(arm, 0.5, 0), RangeError);
});

Deno.test("time ratio: a sweep's total time over a parameter-free arm's time to best and to stop", () => {
  const arm = ledgerLine({
    teacherSeconds: 0,
    trainSeconds: 80,
    validationSeconds: 20,
    triples: 0,
    tokens: 0,
    steps: 0,
    curve: curve([[10, 25, 0.4], [20, 50, 0.6], [30, 75, 0.55]]),
  });
  // Three sweep runs of 100 s each.
  const sweepTotal = sumLedger([arm, arm, arm]).totalSeconds;
  assertEquals(timeRatio(sweepTotal, arm), { toBest: 300 / 50, toStop: 300 / 100 });
  const winner = sweepWinner([
    { margin: 0.1, line: { ...arm, bestNdcg10: 0.5 } },
    { margin: 0.2, line: { ...arm, bestNdcg10: 0.7 } },
    { margin: 0.3, line: { ...arm, bestNdcg10: 0.7 } },
    { margin: 0.4, line: { ...arm, bestNdcg10: null } },
  ]);
  assertEquals(winner?.margin, 0.2); // validation decides; the earliest of equal bests
  assertEquals(sweepWinner([]), null);
});

Deno.test("a mean teacher's members' settings are part of the run key, recursively", async () => {
  const spec = (a: unknown, c: unknown = { kind: "encoder", model: "c-dir" }) => ({
    dataset: "d",
    seeds: [1],
    teachers: {
      a,
      b: { kind: "cross-encoder", model: "b-dir" },
      c,
      ab: { kind: "mean", of: ["a", "b"] },
      top: { kind: "mean", of: ["ab", "c"] },
    },
    arms: [
      { name: "mse", kind: "margin-mse", teacher: "top" },
      { name: "adaptive", kind: "margin", target: "adaptive" },
    ],
  });
  const keys = async (s: unknown) =>
    (await expandRuns(parseStudySpec(s, "s.json"))).map((r) => r.key);
  const base = spec({ kind: "encoder", model: "a-dir" });
  const k0 = await keys(base);
  const parsed = parseStudySpec(base, "s.json");
  assertEquals(resolveTeacher(parsed, "top"), {
    kind: "mean",
    of: [
      {
        kind: "mean",
        of: [{ kind: "encoder", model: "a-dir" }, { kind: "cross-encoder", model: "b-dir" }],
      },
      { kind: "encoder", model: "c-dir" },
    ],
  });
  // A member two means deep, then a direct member: the Margin-MSE run's key changes; the
  // adaptive run's does not.
  for (
    const changed of [
      spec({ kind: "encoder", model: "other-a" }),
      spec({ kind: "cross-encoder", model: "a-dir" }),
      spec({ kind: "encoder", model: "a-dir" }, { kind: "trained" }),
    ]
  ) {
    const k = await keys(changed);
    assert(k[0] !== k0[0], JSON.stringify(changed.teachers));
    assertEquals(k[1], k0[1]);
  }
  assertEquals(await keys(spec({ kind: "encoder", model: "a-dir" })), k0, "same members, same key");
});

Deno.test("the scifact preset's run keys are those of docs/study_scifact/results.json", async () => {
  const runs = await expandRuns(studyPreset("scifact")!.spec);
  const key = (arm: string, budget: number, sweep: number | null = null) =>
    runs.find((r) => r.arm === arm && r.budget === budget && r.sweepValue === sweep)!.key;
  // Pinned from docs/study_scifact/results.json (arms.<arm>.seeds["1"].run, budget 1).
  assertEquals(
    key("margin-mse", 1),
    "a432b896ca5efb2f63eabe315278125a9fb5505aefb910e5d9338d9c0e10b67c",
  );
  assertEquals(
    key("adaptive", 1),
    "2fa9d4ed0209cdbbb05ab1d029d050c62af8b8e888b72c8e837ab73b34beeeff",
  );
  assertEquals(
    key("static-sweep", 1, 0.3),
    "269805b0b7e113821127fce0631bacc636a3062fbdb2dbdba806f16714a9b53b",
  );
  // And every run the committed report names.
  const results = JSON.parse(await Deno.readTextFile("docs/study_scifact/results.json"));
  const have = new Set(runs.map((r) => r.key));
  for (
    const [name, arm] of Object.entries(
      results.arms as Record<
        string,
        { budgets: Record<string, { seeds: Record<string, { run: string }> }> }
      >,
    )
  ) {
    for (const [b, e] of Object.entries(arm.budgets)) {
      for (const s of Object.values(e.seeds)) assert(have.has(s.run), `${name} budget ${b}`);
    }
  }
});

Deno.test("means that average each other are refused, naming the field", () => {
  throws(
    () =>
      parseStudySpec({
        dataset: "d",
        seeds: [1],
        teachers: {
          a: { kind: "mean", of: ["b"] },
          b: { kind: "mean", of: ["c", "a"] },
          c: { kind: "encoder", model: "x" },
        },
        arms: [{ name: "mse", kind: "margin-mse", teacher: "a" }],
      }, "s.json"),
    (e: Error) =>
      e instanceof StudySpecError &&
      /^s\.json: teachers\.a\.of: the means average each other: a -> b -> a$/.test(e.message),
  );
});

Deno.test("checkStudyFiles: an unreadable or malformed negatives file is one error naming field and file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const spec = (negatives?: string) =>
      parseStudySpec({ ...SPEC, training: negatives ? { negatives } : {} }, "s.json");
    assertEquals(await checkStudyFiles(spec(), "s.json"), undefined);
    const good = `${dir}/good.jsonl`;
    await Deno.writeTextFile(
      good,
      '# mined\n{"qid":"1","pos":"a","neg":"b"}\n{"qid":2,"pos":"a","negs":["b","c"]}\n\n3 a b\n',
    );
    assert(/^[0-9a-f]{64}$/.test((await checkStudyFiles(spec(good), "s.json"))!));
    const cases: [string, string | Uint8Array, RegExp][] = [
      ["bad.jsonl", '{"qid":"1","pos":"a","neg":"b"}\n{"qid":"1",\n', /line 2: not valid JSON/],
      ["noneg.jsonl", '{"qid":"1","pos":"a"}\n', /line 1: expected \{"qid", "pos", "neg"\}/],
      ["emptynegs.jsonl", '{"qid":"1","pos":"a","negs":[]}\n', /line 1: expected/],
      ["fields.tsv", "1 a b\n1 a\n", /line 2: expected 3 fields \(qid pos_id neg_id\), found 2/],
      ["empty.tsv", "# nothing\n\n", /holds no negatives/],
      ["latin1.tsv", new Uint8Array([0x31, 0x20, 0x61, 0x20, 0xe9, 0x0a]), /UTF-8/],
    ];
    for (const [name, content, re] of cases) {
      const path = `${dir}/${name}`;
      if (typeof content === "string") await Deno.writeTextFile(path, content);
      else await Deno.writeFile(path, content);
      await rejects(checkStudyFiles(spec(path), "s.json"), (e: Error) => {
        assert(e instanceof StudySpecError, e.message);
        assert(e.message.startsWith(`s.json: training.negatives: ${path}: `), e.message);
        assert(re.test(e.message), `${name}: ${e.message}`);
        return true;
      });
    }
    await rejects(
      checkStudyFiles(spec(`${dir}/missing.jsonl`), "s.json"),
      /^StudySpecError: s\.json: training\.negatives: .*missing\.jsonl: cannot read it/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a run shared by a margin arm and a sweep is the sweep's margin in the report", async () => {
  // The fixed arm asks for margin 0.3 first, so the shared run's result says sweepValue null;
  // the sweep must still report 0.3 as the value it tried and won with.
  const spec = parseStudySpec({
    dataset: "d",
    seeds: [1],
    arms: [
      { name: "fixed", kind: "margin", target: 0.3 },
      { name: "sweep", kind: "static-sweep", margins: [0.1, 0.3] },
    ],
  });
  const plans = await expandRuns(spec);
  assertEquals(plans[0].key, plans[2].key, "fixed and the sweep's 0.3 share one run");
  const result = (key: string, best: number): RunResult => ({
    key,
    arm: "fixed",
    seed: 1,
    budget: 1,
    sweepValue: null,
    checkpoint: "best",
    test: { ndcg_cut_10: best, recip_rank: best, recall_100: best, recall_1000: best },
    perQueryNdcg10: { q1: best },
    cost: {
      teacherSeconds: 0,
      trainSeconds: 10,
      validationSeconds: 1,
      triples: 100,
      tokens: 1000,
      steps: 10,
      curve: [{ step: 10, triples: 100, seconds: 11, ndcg10: best }],
    },
    tokensApproximate: true,
    stopReason: null,
    testSeconds: 1,
  });
  const results = new Map([
    [plans[0].key, result(plans[0].key, 0.6)],
    [plans[1].key, { ...result(plans[1].key, 0.4), arm: "sweep", sweepValue: 0.1 }],
  ]);
  const r = buildStudyResults(spec, { plans, results, trained: [], teachers: {} });
  const seed = r.arms.sweep.budgets["1"].seeds["1"];
  assertEquals(seed.sweepValue, 0.3);
  assertEquals(seed.sweep, { "0.1": 0.4, "0.3": 0.6 });
  assertEquals(r.arms.sweep.budgets["1"].ledger.steps, 20, "the sweep pays for both runs");
});

Deno.test("the README's study spec, which uses every key, parses and expands", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const block = /```json\n(\{\n {2}"dataset"[\s\S]*?\n\})\n```/.exec(readme);
  assert(block, "README.md holds a JSON study spec");
  const { training: { negatives: _, ...training }, ...rest } = JSON.parse(block[1]);
  const spec = parseStudySpec({ ...rest, training }, "README.md");
  assertEquals(spec.arms.find((a) => a.name === "adaptive")?.training, { lr: 6e-5 });
  const runs = await expandRuns(spec);
  // 5 arms, the sweep as 4 margins: 8 trainings x 4 budgets x 3 seeds.
  assertEquals(runs.length, 8 * 4 * 3);
  assert(runs.filter((r) => r.arm === "adaptive").every((r) => r.settings.training.lr === 6e-5));
  assert(runs.filter((r) => r.arm !== "adaptive").every((r) => r.settings.training.lr === 2e-5));
});
