// `deno task study --preset tiny` end to end on a SciFact slice (../shared/datasets through
// SELFMARGIN_DATA_DIR): every report field is written; a second run skips every finished run
// without training; a spec whose runs have the same keys but other data into the same --out is
// refused before anything trains; a bad spec exits 2 naming the field.
import { ok, strictEqual } from "node:assert/strict";
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
    for (const key of ["arms", "tost", "data_efficiency", "time_ratio", "verdicts"]) {
      ok(key in r, `results.json has ${key}`);
    }
    for (const arm of ["margin-mse", "adaptive", "distributed", "static-sweep"]) {
      const a = r.arms[arm];
      ok(a, `arm ${arm}`);
      strictEqual(a.budget, 1);
      for (const b of ["0.5", "1"]) ok(a.budgets[b], `${arm} budget ${b}`);
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
    for (const k of ["adaptive vs margin-mse", "distributed vs margin-mse"]) {
      ok(r.tost[k]?.tost && r.tost[k]?.ttest && r.tost[k]?.bootstrap, `tost ${k}`);
      ok(k in r.data_efficiency, `data_efficiency ${k}`);
    }
    ok(r.tost["margin-mse vs static-sweep"], "claim (d)'s comparison");
    ok(r.time_ratio["static-sweep vs adaptive"].toStop > 0, "time ratio");
    for (const c of ["a", "b", "c", "d"]) {
      ok(r.verdicts[c].status && r.verdicts[c].detail, `verdict ${c}`);
    }
    const md = await Deno.readTextFile(`${out}/report.md`);
    ok(md.includes("## Verdicts") && md.includes("| adaptive |"), "report.md tables");
    for (const f of ["validation_vs_triples.svg", "validation_vs_seconds.svg"]) {
      ok((await Deno.readTextFile(`${out}/${f}`)).startsWith("<svg"), f);
    }
    ok((await Deno.stat(`${out}/teachers/use-lite-infonce.jsonl`)).isFile, "teacher scores kept");

    // A second run trains nothing: every run has its result.json.
    const second = await study(["--preset", "tiny", "--out", out]);
    strictEqual(second.code, 0, second.err);
    ok(/10 runs: 10 finished, 0 to run/.test(second.err), second.err);
    ok(!/training on/.test(second.err), second.err);
    ok(second.seconds < first.seconds / 2, `rerun took ${second.seconds} s`);
    const again = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
    strictEqual(JSON.stringify(again.arms), JSON.stringify(r.arms));

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
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
