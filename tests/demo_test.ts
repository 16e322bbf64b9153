// The main job end to end on a tiny BEIR-layout dataset made here (the real run takes minutes):
// every stage runs and the outputs keep the contract of DESIGN.md (metrics.json with zero_shot
// and fine_tuned keyed by trec_eval names and wall_seconds, report.md, SVG plots with their data,
// a model directory that loads back, TREC runs).
import { ok, strictEqual } from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { loadEncoder } from "../src/models/load.ts";

const TOPICS = [
  ["aspirin", "Aspirin lowers the risk of colorectal cancer in adults."],
  ["brca1", "BRCA1 mutations raise the risk of breast cancer."],
  ["insulin", "Insulin regulates blood glucose in the liver and muscle."],
  ["vaccine", "Measles vaccination prevents outbreaks in schools."],
  ["statin", "Statins reduce LDL cholesterol and heart attacks."],
  ["sleep", "Sleep deprivation impairs memory consolidation."],
  ["smoking", "Smoking causes lung cancer and chronic bronchitis."],
  ["exercise", "Aerobic exercise improves cardiovascular fitness."],
];

async function tinyBeir(dir: string) {
  await Deno.mkdir(`${dir}/scifact/qrels`, { recursive: true });
  const corpus: string[] = [];
  const queries: string[] = [];
  const train = ["query-id\tcorpus-id\tscore"], test = ["query-id\tcorpus-id\tscore"];
  TOPICS.forEach(([key, text], i) => {
    corpus.push(JSON.stringify({ _id: `d${i}`, title: key, text }));
    corpus.push(
      JSON.stringify({ _id: `x${i}`, title: "", text: `An unrelated note number ${i}.` }),
    );
    queries.push(JSON.stringify({ _id: `q${i}`, text: `What does ${key} do?` }));
    (i < 6 ? train : test).push(`q${i}\td${i}\t1`);
  });
  await Deno.writeTextFile(`${dir}/scifact/corpus.jsonl`, corpus.join("\n") + "\n");
  await Deno.writeTextFile(`${dir}/scifact/queries.jsonl`, queries.join("\n") + "\n");
  await Deno.writeTextFile(`${dir}/scifact/qrels/train.tsv`, train.join("\n") + "\n");
  await Deno.writeTextFile(`${dir}/scifact/qrels/test.tsv`, test.join("\n") + "\n");
}

Deno.test("deno task demo runs every stage and writes the contract's outputs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await tinyBeir(dir);
    const out = `${dir}/out`;
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "scripts/demo.ts",
        "--data",
        `${dir}/scifact`,
        "--out",
        out,
        "--max-steps",
        "2",
        "--eval-every",
        "1",
        "--val-queries",
        "2",
        "--val-depth",
        "3",
        "--batch-size",
        "2",
        "--query-length",
        "8",
        "--doc-length",
        "8",
        "--eval-length",
        "8",
        "--k",
        "10",
        "--no-cache",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(r.stderr);
    strictEqual(r.code, 0, err);
    const m = JSON.parse(await Deno.readTextFile(`${out}/metrics.json`));
    for (const key of ["zero_shot", "fine_tuned", "bm25"]) {
      for (const measure of ["ndcg_cut_10", "recip_rank", "map", "P_10", "recall_100"]) {
        ok(typeof m[key][measure] === "number", `${key}.${measure}`);
      }
    }
    ok(m.wall_seconds > 0);
    strictEqual(m.paired.queries, 2);
    strictEqual(m.training.steps, 2);
    const report = await Deno.readTextFile(`${out}/report.md`);
    ok(report.includes("| USE-lite fine-tuned |") && report.includes("paired t-test"));
    for (const f of ["training_loss.svg", "validation_ndcg10.svg", "per_query_ndcg10_change.svg"]) {
      ok((await Deno.readTextFile(`${out}/${f}`)).startsWith("<svg"), f);
    }
    // The validation curve has its points: steps 0, 1 and 2 (--eval-every 1).
    const curve = await Deno.readTextFile(`${out}/validation_ndcg10.svg`);
    strictEqual(curve.split('aria-roledescription="point"').length - 1, 3);
    for (const f of ["bm25.run", "zero_shot.run", "fine_tuned.run"]) {
      ok((await Deno.readTextFile(`${out}/${f}`)).split("\n").length > 2, f);
    }
    const tuned = await loadEncoder(await getGpu(), `${out}/model`);
    strictEqual(tuned.config.family, "use-lite");
    // Its model card carries the test measures of this run.
    const card = await Deno.readTextFile(`${out}/model/README.md`);
    ok(card.includes(`| ndcg_cut_10 | ${m.fine_tuned.ndcg_cut_10.toFixed(4)} |`), card);
    ok(card.includes("deno task demo"), card);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
