// `deno task study --preset tiny` end to end on a SciFact slice (../shared/datasets through
// SELFMARGIN_DATA_DIR): every report field is written (results.json, report.md's tables, the
// plots, the conditions), each evaluated checkpoint's model card carries its test measures; a
// second run skips every finished run without training; a spec whose runs have the same keys but
// other data into the same --out is refused before anything trains; a bad spec, or a spec whose
// training.negatives file is missing or malformed, exits 2 naming the field before the GPU
// starts or anything is written.
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { studyPreset } from "../src/study/presets.ts";

const DATA = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";

async function study(args: string[]) {
  const t0 = performance.now();
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "scripts/study.ts", ...args],
    env: { SELFMARGIN_DATA_DIR: DATA },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: r.code,
    err: new TextDecoder().decode(r.stderr),
    seconds: (performance.now() - t0) / 1000,
  };
}

const MEASURES = ["ndcg_cut_10", "mrr_10", "recall_100", "recall_1000"];

Deno.test("study --preset tiny: every report field; a rerun skips; other data is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "study_run_test_" });
  try {
    const out = `${dir}/out`;
    const first = await study(["--preset", "tiny", "--out", out]);
    strictEqual(first.code, 0, first.err);
    const r = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
    deepStrictEqual(Object.keys(r).sort(), [
      "arms",
      "budget_curve",
      "budgets",
      "conditions",
      "data_efficiency",
      "dataset",
      "model",
      "notes",
      "reference",
      "seeds",
      "teachers",
      "time_ratio",
      "tost",
      "verdicts",
    ]);
    strictEqual(r.dataset, "scifact");
    strictEqual(r.model, "use-lite");
    deepStrictEqual(r.seeds, [1]);
    deepStrictEqual(r.budgets, [0.5, 1]);
    strictEqual(r.reference, "margin-mse");
    ok(r.notes.length > 0 && r.notes.every((n: unknown) => typeof n === "string"), "notes");
    // The teacher: trained by the study, its training and scoring both counted.
    const teacher = r.teachers["use-lite-infonce"];
    deepStrictEqual(Object.keys(r.teachers), ["use-lite-infonce"]);
    ok(/trained by the study with InfoNCE/.test(teacher.description), teacher.description);
    ok(teacher.trainSeconds > 0 && teacher.seconds > teacher.trainSeconds, "teacher seconds");
    // The conditions, recorded at run time.
    const c = r.conditions;
    strictEqual(c.recorded, "at run time");
    ok(c.cpu === null || (typeof c.cpu === "string" && c.cpu.length > 0), `cpu ${c.cpu}`);
    strictEqual(c.cores, navigator.hardwareConcurrency);
    ok(typeof c.adapter === "string" && c.adapter.length > 0, "adapter");
    strictEqual(typeof c.softwareAdapter, "boolean");
    strictEqual(c.deno, Deno.version.deno);
    const [start, end] = [Date.parse(c.start), Date.parse(c.end)];
    ok(start <= end && Math.abs((end - start) / 1000 - c.wallSeconds) < 1e-6, "start/end");
    ok(c.wallSeconds > 0 && c.wallSeconds <= first.seconds, `wall ${c.wallSeconds}`);
    strictEqual(c.runsTrained, 10);
    for (const arm of ["margin-mse", "adaptive", "distributed", "static-sweep"]) {
      const a = r.arms[arm];
      ok(a, `arm ${arm}`);
      strictEqual(a.budget, 1);
      for (const b of ["0.5", "1"]) {
        const e = a.budgets[b];
        ok(e, `${arm} budget ${b}`);
        const l = e.seeds["1"].ledger;
        // The best validation: a step within the run, 8 triples a step.
        ok(Number.isInteger(l.bestStep) && l.bestStep >= 0 && l.bestStep <= l.steps, `${arm}`);
        strictEqual(l.bestTriples, 8 * l.bestStep);
        ok(Number.isFinite(l.bestNdcg10) && Number.isFinite(l.bestSeconds), `${arm} best`);
      }
      // The curve over the budgets, read off the budgets.
      deepStrictEqual(
        r.budget_curve[arm],
        [0.5, 1].map((b) => {
          const s = a.budgets[String(b)].seeds["1"];
          return {
            budget: b,
            seeds: 1,
            triples: s.ledger.triples,
            bestValidationNdcg10: s.ledger.bestNdcg10,
            testNdcg10: s.test.ndcg_cut_10,
          };
        }),
      );
      const s = a.seeds["1"];
      for (const m of MEASURES) {
        ok(Number.isFinite(s.test[m]), `${arm} seed 1 ${m}`);
        ok(Number.isFinite(a.mean[m]), `${arm} mean ${m}`);
        ok(m in a.std, `${arm} std ${m}`);
      }
      for (
        const k of ["teacherSeconds", "trainSeconds", "validationSeconds", "triples", "tokens"]
      ) {
        ok(Number.isFinite(a.ledger[k]), `${arm} ledger ${k}`);
      }
      ok(a.ledger.steps >= 1, `${arm} trained`);
    }
    ok(r.arms["margin-mse"].ledger.teacherSeconds > 0, "the teacher's time is charged");
    ok(r.arms["static-sweep"].seeds["1"].sweepValue !== null, "the sweep reports its winner");
    strictEqual(
      r.arms["static-sweep"].ledger.steps,
      2 * r.arms.adaptive.ledger.steps,
      "the sweep's cost is both of its runs",
    );
    const md = await Deno.readTextFile(`${out}/report.md`);
    const f4 = (x: number | null) => x === null ? "n/a" : x.toFixed(4);
    for (const k of ["adaptive vs margin-mse", "distributed vs margin-mse"]) {
      const t = r.tost[k];
      ok(t?.tost && t?.ttest && t?.bootstrap, `tost ${k}`);
      strictEqual(t.queries, 20);
      ok(md.includes(`| ${k} | 20 | ${f4(t.meanDiff)} |`), `report.md comparison ${k}`);
      const e = r.data_efficiency[k];
      ok(e && "target" in e && "perSeed" in e && "mean" in e && "smallestBudget" in e, k);
      ok(md.includes(`| ${k} | ${f4(e.target)} |`), `report.md data efficiency ${k}`);
    }
    const d = r.tost["margin-mse vs static-sweep"];
    ok(d, "claim (d)'s comparison");
    ok(md.includes(`| margin-mse vs static-sweep | 20 | ${f4(d.meanDiff)} |`), "report.md (d)");
    for (const k of ["static-sweep vs adaptive", "static-sweep vs distributed"]) {
      const t = r.time_ratio[k];
      ok(t.toStop > 0 && "toBest" in t && t.perSeed["1"], `time ratio ${k}`);
      ok(md.includes(`| ${k} | ${t.toStop.toFixed(2)} |`), `report.md time ratio ${k}`);
    }
    for (const c of ["a", "b", "c", "d"]) {
      ok(r.verdicts[c].status && r.verdicts[c].detail, `verdict ${c}`);
      ok(md.includes(`- **${r.verdicts[c].claim}**: ${r.verdicts[c].status}.`), `verdict ${c}`);
    }
    for (
      const h of [
        "## Conditions",
        "## Verdicts",
        "## Test measures",
        "| best step | best triples |",
        "## Paired comparisons",
        "## Data efficiency",
        "### Curve over the data budgets",
        "## Time ratio",
        "## Teachers",
        "- use-lite-infonce: encoder use-lite trained by the study",
        `- Deno ${Deno.version.deno}`,
        "10 runs trained",
        "](budget_curve.svg)",
      ]
    ) ok(md.includes(h), `report.md: ${h}`);
    for (const [arm, points] of Object.entries(r.budget_curve)) {
      for (const p of points as { budget: number; testNdcg10: number }[]) {
        ok(
          new RegExp(
            `\\| ${arm} \\| ${p.budget} \\| 1 \\| [0-9.]+ \\| [0-9.]+ \\| ${f4(p.testNdcg10)} \\|`,
          ).test(md),
          `report.md curve row ${arm} ${p.budget}`,
        );
      }
    }
    const ad = r.arms.adaptive.budgets["1"].seeds["1"].ledger;
    ok(
      md.includes(`| ${ad.steps} | ${ad.bestStep} | ${ad.bestTriples} |`),
      "report.md cost table: best step and triples",
    );
    for (
      const f of ["validation_vs_triples.svg", "validation_vs_seconds.svg", "budget_curve.svg"]
    ) ok((await Deno.readTextFile(`${out}/${f}`)).startsWith("<svg"), f);
    // Each evaluated checkpoint's model card carries the test measures result.json holds.
    let cards = 0;
    for await (const e of Deno.readDir(`${out}/runs`)) {
      const res = JSON.parse(await Deno.readTextFile(`${out}/runs/${e.name}/result.json`));
      const card = await Deno.readTextFile(`${out}/runs/${e.name}/${res.checkpoint}/README.md`);
      ok(card.includes("## Test\n\nOn scifact test (20 queries"), card);
      for (const m of MEASURES) {
        ok(card.includes(`| ${m} | ${res.test[m].toFixed(4)} |`), `${e.name} card ${m}`);
      }
      ok(!card.includes("Not evaluated"), card);
      cards++;
    }
    strictEqual(cards, 10);
    ok((await Deno.stat(`${out}/teachers/use-lite-infonce.jsonl`)).isFile, "teacher scores kept");

    // A second run trains nothing: every run has its result.json.
    const second = await study(["--preset", "tiny", "--out", out]);
    strictEqual(second.code, 0, second.err);
    ok(/10 runs: 10 finished, 0 to run/.test(second.err), second.err);
    ok(!/training on/.test(second.err), second.err);
    ok(second.seconds < first.seconds / 2, `rerun took ${second.seconds} s`);
    const again = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
    strictEqual(JSON.stringify(again.arms), JSON.stringify(r.arms));
    strictEqual(again.conditions.runsTrained, 0);

    // The same spec without the preset's data slice: same run keys, other data: refused.
    const spec = `${dir}/spec.json`;
    await Deno.writeTextFile(spec, JSON.stringify(studyPreset("tiny")!.spec));
    const refused = await study(["--spec", spec, "--out", out]);
    strictEqual(refused.code, 2, refused.err);
    ok(
      /runs\/[0-9a-f]{64}\/plan\.json: run [0-9a-f]{12} \(arm margin-mse/.test(refused.err),
      refused.err,
    );
    ok(!/training on/.test(refused.err), refused.err);

    // A bad spec: exit 2, the field named, nothing written.
    await Deno.writeTextFile(spec, JSON.stringify({ dataset: "scifact", seeds: [], arms: [] }));
    const bad = await study(["--spec", spec, "--out", `${dir}/bad`]);
    strictEqual(bad.code, 2, bad.err);
    ok(/spec\.json: seeds: must not be empty/.test(bad.err), bad.err);
    ok(!(await Deno.stat(`${dir}/bad`).then(() => true, () => false)), "nothing written");

    // A missing or malformed negatives file: exit 2 naming the field and the file, before the
    // GPU starts (no adapter line) or the output directory is made.
    const malformed = `${dir}/negatives.tsv`;
    await Deno.writeTextFile(malformed, "q1 d1 d2\nq2 d3\n");
    for (
      const [path, why] of [
        [`${dir}/none.jsonl`, /cannot read it/],
        [malformed, /line 2: expected 3 fields/],
      ] as const
    ) {
      await Deno.writeTextFile(
        spec,
        JSON.stringify({
          dataset: "scifact",
          seeds: [1],
          training: { negatives: path },
          arms: [{ name: "adaptive", kind: "margin", target: "adaptive" }],
        }),
      );
      const neg = await study(["--spec", spec, "--out", `${dir}/neg`]);
      strictEqual(neg.code, 2, neg.err);
      ok(neg.err.includes(`spec.json: training.negatives: ${path}: `), neg.err);
      ok(why.test(neg.err), neg.err);
      ok(!/WebGPU adapter/.test(neg.err), neg.err);
      ok(!(await Deno.stat(`${dir}/neg`).then(() => true, () => false)), "nothing written");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
