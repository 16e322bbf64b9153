// Teachers (src/study/teacher.ts): the encoder teacher equals float64 cosines of embeddings
// computed one text at a time; the cross-encoder teacher maps each triple to its pairs' logits;
// the mean teacher averages z-normalised scores (known answers); teacher files round-trip
// through the trainer's reader and are replaced only when complete.
import { deepStrictEqual, ok, rejects } from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { readTeacherScores } from "../src/losses/margin_mse.ts";
import { crossEncoderScores, loadCrossEncoder } from "../src/models/cross_encoder.ts";
import { encodeTexts } from "../src/models/encode.ts";
import { loadEncoder } from "../src/models/load.ts";
import {
  crossEncoderTeacher,
  encoderTeacher,
  meanTeacher,
  type Teacher,
  type TripleScores,
  writeTeacherFile,
  zNormalise,
} from "../src/study/teacher.ts";
import type { Triple } from "../src/train/data.ts";
import { writeCrossEncoder } from "./reference/cross_encoder_fixture.ts";
import { withTempDir } from "./helpers.ts";

const TRIPLES: Triple[] = [
  {
    qid: "q1",
    posId: "d1",
    negId: "d2",
    query: "vitamin c and scurvy",
    positive: "Scurvy follows a lack of vitamin C.",
    negative: "The stock market fell.",
  },
  {
    qid: "q1",
    posId: "d1",
    negId: "d3",
    query: "vitamin c and scurvy",
    positive: "Scurvy follows a lack of vitamin C.",
    negative: "Citrus fruit holds vitamin C.",
  },
  {
    qid: "q2",
    posId: "d4",
    negId: "d2",
    query: "statins",
    positive: "Statins lower LDL cholesterol.",
    negative: "The stock market fell.",
  },
];

Deno.test("the encoder teacher scores by cosine, each distinct text encoded once", async () => {
  const gpu = await getGpu();
  const model = await loadEncoder(gpu, "use-lite");
  const got = await encoderTeacher(gpu, model, "use-lite").score(TRIPLES);
  // Independent: each text alone, float64 cosine.
  const one = async (text: string) => (await encodeTexts(gpu, model, [text])).data;
  const cos = (a: Float32Array, b: Float32Array) => {
    let ab = 0, aa = 0, bb = 0;
    for (let i = 0; i < a.length; i++) {
      ab += a[i] * b[i];
      aa += a[i] * a[i];
      bb += b[i] * b[i];
    }
    return ab / Math.sqrt(aa * bb);
  };
  for (const [j, t] of TRIPLES.entries()) {
    const [q, p, n] = [await one(t.query), await one(t.positive), await one(t.negative)];
    // Batched and single encodings of USE-lite agree to ~4e-7 per component (its encoder
    // test); a cosine of unit vectors moves by at most ~2·512·4e-7.
    ok(Math.abs(got.pos[j] - cos(q, p)) < 1e-5, `pos ${j}: ${got.pos[j]} vs ${cos(q, p)}`);
    ok(Math.abs(got.neg[j] - cos(q, n)) < 1e-5, `neg ${j}: ${got.neg[j]} vs ${cos(q, n)}`);
  }
  ok(got.pos[0] > got.neg[0], "the relevant document scores higher");
  for (const t of model.named.values()) t.destroy();
});

Deno.test("the cross-encoder teacher gives each triple its pairs' logits", async () => {
  const gpu = await getGpu();
  await withTempDir(async (dir) => {
    await writeCrossEncoder(dir, 7);
    const ce = await loadCrossEncoder(gpu, dir);
    try {
      const got = await crossEncoderTeacher(gpu, ce, "tiny", { batchSize: 2 }).score(TRIPLES);
      const direct = await crossEncoderScores(
        gpu,
        ce,
        TRIPLES.flatMap((t) =>
          [[t.query, t.positive], [t.query, t.negative]] as [string, string][]
        ),
      );
      for (let j = 0; j < TRIPLES.length; j++) {
        // Same pairs, other batch compositions: equal to f32 rounding of the padded batch.
        ok(Math.abs(got.pos[j] - direct[2 * j]) < 1e-5, `pos ${j}`);
        ok(Math.abs(got.neg[j] - direct[2 * j + 1]) < 1e-5, `neg ${j}`);
      }
    } finally {
      for (const t of ce.body.named.values()) t.destroy();
      ce.classifierWeight.destroy();
      ce.classifierBias.destroy();
    }
  });
});

function fixed(name: string, pos: number[], neg: number[]): Teacher {
  return {
    name,
    score: () => Promise.resolve({ pos: Float64Array.from(pos), neg: Float64Array.from(neg) }),
  };
}

Deno.test("the mean teacher averages z-normalised scores", async () => {
  // a: scores 1, 3 | 2, 6 -> mean 3, std sqrt(((4 + 0) + (1 + 9)) / 4) = sqrt(3.5)
  const z = zNormalise({ pos: Float64Array.from([1, 3]), neg: Float64Array.from([2, 6]) });
  const s = Math.sqrt(3.5);
  deepStrictEqual(Array.from(z.pos), [-2 / s, 0]);
  deepStrictEqual(Array.from(z.neg), [-1 / s, 3 / s]);
  // b is a scaled and shifted a: z-normalisation makes them one teacher.
  const a = fixed("a", [1, 3], [2, 6]), b = fixed("b", [110, 130], [120, 160]);
  const mean: TripleScores = await meanTeacher([a, b]).score(TRIPLES.slice(0, 2));
  for (let j = 0; j < 2; j++) {
    ok(Math.abs(mean.pos[j] - z.pos[j]) < 1e-12 && Math.abs(mean.neg[j] - z.neg[j]) < 1e-12);
  }
  // A constant teacher contributes zeros; an empty list is refused.
  const flat = await meanTeacher([fixed("c", [5, 5], [5, 5])]).score(TRIPLES.slice(0, 2));
  deepStrictEqual([...flat.pos, ...flat.neg], [0, 0, 0, 0]);
  let threw = false;
  try {
    meanTeacher([]);
  } catch {
    threw = true;
  }
  ok(threw);
});

Deno.test("teacher files round-trip through the trainer's reader and replace only when complete", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/teacher.jsonl`;
    const scores = {
      pos: Float64Array.from([0.9, 0.9, 0.7]),
      neg: Float64Array.from([0.1, 0.4, 0.2]),
    };
    await writeTeacherFile(path, TRIPLES, scores);
    const read = await readTeacherScores(path);
    deepStrictEqual(read.rows.length, 3);
    deepStrictEqual(read.get("q1", "d1", "d3")?.scoreNeg, 0.4);
    deepStrictEqual(read.get("q2", "d4", "d2")?.scorePos, 0.7);
    const before = await Deno.readFile(path);
    await rejects(
      () => writeTeacherFile(path, TRIPLES, { ...scores, neg: Float64Array.from([0.1, NaN, 0.2]) }),
      /triple 1 \(q1\) has scores 0\.9, NaN/,
    );
    await rejects(() =>
      writeTeacherFile(path, [{ ...TRIPLES[0], qid: undefined }], {
        pos: Float64Array.from([1]),
        neg: Float64Array.from([0]),
      }), /has no ids/);
    deepStrictEqual(await Deno.readFile(path), before);
    deepStrictEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), [
      "teacher.jsonl",
    ]);
  });
});
