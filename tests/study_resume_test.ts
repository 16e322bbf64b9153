// A study run interrupted after its first `last/` checkpoint resumes from it on the next call
// and ends where an uninterrupted run ends: the same steps, the same validation curve and the
// same test measures (the trainer's resume is bit-exact; see tests/train_trainer_test.ts).
import { deepStrictEqual, ok, rejects } from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { studyPreset } from "../src/study/presets.ts";
import { runStudy } from "../src/study/run.ts";
import { parseStudySpec } from "../src/study/spec.ts";
import { withTempDir } from "./helpers.ts";

const DATA = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";

Deno.test("an interrupted study run resumes from last/ and ends as an uninterrupted one", async () => {
  const gpu = await getGpu();
  const tiny = studyPreset("tiny")!;
  const spec = parseStudySpec({
    dataset: "scifact",
    training: { ...tiny.spec.training, maxSteps: 4, validateEvery: 2 },
    seeds: [1],
    arms: [{ name: "adaptive", kind: "margin", target: "adaptive" }],
  }, "resume spec");
  const data = { ...tiny.data, slice: { trainQueries: 30, testQueries: 10, extraDocs: 40 } };
  await withTempDir(async (dir) => {
    const quiet = () => {};
    const plain = await runStudy(gpu, spec, {
      out: `${dir}/plain`,
      data: `${DATA}/scifact`,
      studyData: data,
      log: quiet,
    });
    class Interrupt extends Error {}
    await rejects(
      () =>
        runStudy(gpu, spec, {
          out: `${dir}/cut`,
          data: `${DATA}/scifact`,
          studyData: data,
          log: quiet,
          onEvent: (_run, e) => {
            if (e.type === "checkpoint" && e.kind === "last") throw new Interrupt("cut");
          },
        }),
      Interrupt,
    );
    const runs = [...Deno.readDirSync(`${dir}/cut/runs`)].map((e) => e.name);
    deepStrictEqual(runs.length, 1);
    ok(Deno.statSync(`${dir}/cut/runs/${runs[0]}/last`).isDirectory, "a last/ checkpoint");
    const lines: string[] = [];
    const resumed = await runStudy(gpu, spec, {
      out: `${dir}/cut`,
      data: `${DATA}/scifact`,
      studyData: data,
      log: (m) => lines.push(m),
    });
    ok(lines.some((l) => /resuming/.test(l)), lines.join("\n"));
    deepStrictEqual(resumed.trained, [runs[0]], "the interrupted run is the one trained now");
    const a = [...plain.results.values()][0], b = resumed.results.get(runs[0])!;
    deepStrictEqual(b.key, a.key);
    deepStrictEqual(b.cost.steps, a.cost.steps);
    deepStrictEqual(b.cost.triples, a.cost.triples);
    deepStrictEqual(
      b.cost.curve.map((p) => [p.step, p.triples, p.ndcg10]),
      a.cost.curve.map((p) => [p.step, p.triples, p.ndcg10]),
    );
    deepStrictEqual(b.test, a.test);
    deepStrictEqual(b.perQueryNdcg10, a.perQueryNdcg10);
  });
});
