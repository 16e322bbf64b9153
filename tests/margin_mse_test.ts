import { deepStrictEqual, ok } from "node:assert/strict";
import { marginMseLoss, readTeacherScores } from "../src/losses/margin_mse.ts";
import { type MinedTuple, writeMined } from "../src/train/mine.ts";
import { teacherScoresFor, type Triple } from "../src/train/data.ts";
import { assertClose, randn, withTempDir } from "./helpers.ts";
import { checkGradients, rejection, triples } from "./loss_fixtures.ts";
import { marginMseRef } from "./reference/margin_ref.ts";

Deno.test("Margin-MSE value and dQ, dP, dN match the float64 reference", async () => {
  for (const [b, d, seed] of [[16, 33, 31], [5, 7, 32], [1, 3, 33]]) {
    const data = triples(b, d, seed);
    // Teacher scores on a cross-encoder-like scale (margins of several units), rounded to f32.
    const tPos = Array.from(randn(b, seed + 10, 2)).map((v) => v + 8);
    const tNeg = Array.from(randn(b, seed + 11, 2)).map((v) => v + 4);
    const f = () => marginMseRef(data.q, data.p, data.n, b, d, tPos, tNeg);
    const result = await marginMseLoss(data.rows.q, data.rows.p, data.rows.n, {
      pos: tPos,
      neg: tNeg,
    });
    // Residuals are several units, the loss ~10: measured |GPU - float64| 2.6e-7 at B = 16 (loss
    // 13.2), i.e. 2e-8 relative; rtol 1e-5 leaves a wide margin for other shapes.
    assertClose([result.loss], [f()], { atol: 1e-6, rtol: 1e-5 }, `B=${b} loss`);
    checkGradients(`Margin-MSE B=${b} D=${d}`, f, [["dQ", data.q, result.dq], [
      "dP",
      data.p,
      result.dp,
    ], [
      "dN",
      data.n,
      result.dn,
    ]], seed);
  }
});

Deno.test("Margin-MSE is zero with zero gradients when the margins equal the teacher's", async () => {
  const data = triples(4, 6, 40);
  // Teacher margins chosen as the student's own (from the float64 reference's cosines).
  const cos = (a: Float64Array, c: Float64Array, j: number) => {
    let dot = 0, aa = 0, cc = 0;
    for (let k = 0; k < 6; k++) {
      dot += a[j * 6 + k] * c[j * 6 + k];
      aa += a[j * 6 + k] ** 2;
      cc += c[j * 6 + k] ** 2;
    }
    return dot / Math.sqrt(aa * cc);
  };
  const tPos = [0, 1, 2, 3].map((j) => cos(data.q, data.p, j));
  const tNeg = [0, 1, 2, 3].map((j) => cos(data.q, data.n, j));
  const r = await marginMseLoss(data.rows.q, data.rows.p, data.rows.n, { pos: tPos, neg: tNeg });
  // Only f32 rounding of the cosines remains: residuals ~1e-7, loss ~1e-14, gradients ~1e-7.
  assertClose([r.loss, ...r.dq.flat(), ...r.dp.flat()], new Array(1 + 48).fill(0), {
    atol: 1e-6,
    rtol: 0,
  });
});

Deno.test("Margin-MSE refuses teacher scores of the wrong length or non-finite", async () => {
  const { rows } = triples(3, 4, 41);
  for (
    const [teacher, pattern] of [
      [{ pos: [1, 2], neg: [0, 0, 0] }, /teacher.pos has 2 scores for 3 triples/],
      [{ pos: [1, 2, 3], neg: [0, NaN, 0] }, /teacher.neg\[1\] is NaN/],
    ] as const
  ) {
    const e = await rejection(() => marginMseLoss(rows.q, rows.p, rows.n, teacher));
    if (!pattern.test(e.message)) {
      throw new Error(`message ${JSON.stringify(e.message)} lacks ${pattern}`);
    }
  }
});

Deno.test("teacher files: scores read as strtod reads them; inf and nan refused by name", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = async (name: string, text: string) => {
      await Deno.writeTextFile(`${dir}/${name}`, text);
      return `${dir}/${name}`;
    };
    const ok = await readTeacherScores(
      await file("ok.tsv", "1.5E1\t-.5\tq0\td0\td1\n0x10 +2 q1 d1 d2\n"),
    );
    const scores = ok.rows.map((r) => [r.scorePos, r.scoreNeg]);
    if (JSON.stringify(scores) !== JSON.stringify([[15, -0.5], [16, 2]])) {
      throw new Error(`scores ${JSON.stringify(scores)}`);
    }
    for (
      const [name, text, pattern] of [
        ["inf.tsv", "1\t2\tq0\td0\td1\nINF\t2\tq0\td0\td2\n", /:2: score_pos 'INF' .*infinite/],
        ["nan.tsv", "1\tnan\tq0\td0\td1\n", /:1: score_neg 'nan' .*NaN/],
        ["junk.tsv", "1\t2x\tq0\td0\td1\n", /:1: score_neg '2x' is not a finite number$/],
        // Before, Number() read these as 1 and 7; strtod (and so the teacher's tools) would not.
        ["bin.tsv", "0b1\t2\tq0\td0\td1\n", /:1: score_pos '0b1' is not a finite number$/],
        ["oct.tsv", "1\t0o7\tq0\td0\td1\n", /:1: score_neg '0o7' is not a finite number$/],
        [
          "inf.jsonl",
          '{"qid": "q", "pos": "a", "neg": "b", "score_pos": "-inf", "score_neg": 0}\n',
          /:1: score_pos '-inf' .*infinite/,
        ],
      ] as const
    ) {
      const path = await file(name, text);
      const e = await rejection(() => readTeacherScores(path));
      if (!e.message.startsWith(path) || !pattern.test(e.message)) {
        throw new Error(`message ${JSON.stringify(e.message)} lacks ${pattern}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("teacher files: numeric ids beyond 2^53 and invalid UTF-8 are errors at their line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, Uint8Array, RegExp][] = [
      // Before: read as the id '12345678901234567000', silently another query.
      [
        "big.jsonl",
        new TextEncoder().encode(
          '{"qid": 1, "pos": "a", "neg": "b", "score_pos": 2, "score_neg": 1}\n' +
            '{"qid": 12345678901234567890, "pos": "a", "neg": "b", "score_pos": 2, ' +
            '"score_neg": 1}\n',
        ),
        /:2: numeric "qid" is beyond 2\^53 - 1.*write the id as a JSON string/,
      ],
      [
        "frac.jsonl",
        new TextEncoder().encode(
          '{"qid": "q", "pos": 1.5, "neg": "b", "score_pos": 2, "score_neg": 1}\n',
        ),
        /:1: numeric "pos" is not an integer/,
      ],
      // Before: 'd\xff' and 'd\xfe' both read as 'd\uFFFD', and the second line was taken for
      // the first triple scored differently (or, with equal scores, silently dropped).
      [
        "bytes.tsv",
        Uint8Array.from("9 3 q1 d\xff d2\n9 4 q1 d\xfe d2\n", (c) => c.charCodeAt(0)),
        /:1: invalid UTF-8/,
      ],
      [
        "bytes.jsonl",
        Uint8Array.from(
          '{"qid": "q\xff", "pos": "a", "neg": "b", "score_pos": 2, "score_neg": 1}\n',
          (c) => c.charCodeAt(0),
        ),
        /:1: invalid UTF-8/,
      ],
    ];
    for (const [name, bytes, pattern] of cases) {
      const path = `${dir}/${name}`;
      await Deno.writeFile(path, bytes);
      const e = await rejection(() => readTeacherScores(path));
      if (!e.message.startsWith(`${path}:`) || !pattern.test(e.message)) {
        throw new Error(`message ${JSON.stringify(e.message)} lacks ${pattern}`);
      }
    }
    // Safe integer ids still read as their decimal text.
    await Deno.writeTextFile(
      `${dir}/ok.jsonl`,
      '{"qid": 9007199254740991, "pos": -3, "neg": "b", "score_pos": 2, "score_neg": 1}\n',
    );
    const row = (await readTeacherScores(`${dir}/ok.jsonl`)).rows[0];
    if (row.qid !== "9007199254740991" || row.pos !== "-3") throw new Error(JSON.stringify(row));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Mined tuples as the miner gives them: scores with fractions, an id that looks numeric. */
const MINED: MinedTuple[] = [
  { qid: "q1", pos: "p1", negs: ["d1", "d2", "d3"], scorePos: 0.8125, scoresNeg: [0.75, 0.5, 0.1] },
  { qid: "q1", pos: "p2", negs: ["d1"], scorePos: 0.6, scoresNeg: [0.7] },
  { qid: "7", pos: "p3", negs: [], scorePos: 1, scoresNeg: [] }, // no negative: not written
  { qid: "7", pos: "p4", negs: ["d9", "d2"], scorePos: -1.5e-3, scoresNeg: [-2, 3] },
];

Deno.test("teacher files: the miner's triples and tuples both read as teacher scores, every triple found", async () => {
  await withTempDir(async (dir) => {
    // Every (qid, pos, negs[i]) with (score_pos, scores_neg[i]), in mining order.
    const want = MINED.flatMap((t) =>
      t.negs.map((neg, i) => [t.qid, t.pos, neg, t.scorePos, t.scoresNeg[i]])
    );
    const triples: Triple[] = want.map(([qid, pos, neg]) => ({
      qid: String(qid),
      posId: String(pos),
      negId: String(neg),
      query: "",
      positive: "",
      negative: "",
    }));
    for (const format of ["triples", "tuples"] as const) {
      const path = `${dir}/${format}.jsonl`;
      await writeMined(path, MINED, format);
      const teacher = await readTeacherScores(path);
      // Scores pass through JSON as the numbers they were (no tolerance: same f64 values).
      deepStrictEqual(
        teacher.rows.map((r) => [r.qid, r.pos, r.neg, r.scorePos, r.scoreNeg]),
        want,
        format,
      );
      deepStrictEqual(
        teacher.rows.map((r) => r.lineNo),
        format === "tuples" ? [1, 1, 1, 2, 3, 3] : [1, 2, 3, 4, 5, 6],
        `${format}: each row keeps its line`,
      );
      // The trainer's lookup finds every triple, with the pair of scores (rounded to f32).
      const { pos, neg } = teacherScoresFor(triples, teacher);
      deepStrictEqual([...pos], want.map((w) => Math.fround(w[3] as number)), format);
      deepStrictEqual([...neg], want.map((w) => Math.fround(w[4] as number)), format);
      ok(!teacher.get("7", "p3", "d1"), "a pair mined without negatives scores nothing");
    }
  });
});

Deno.test("teacher files: malformed tuples are errors at their line", async () => {
  await withTempDir(async (dir) => {
    const good = '{"qid": "q", "pos": "p", "negs": ["a"], "score_pos": 1, "scores_neg": [0]}';
    for (
      const [name, line, pattern] of [
        [
          "lengths",
          '{"qid": "q", "pos": "p", "negs": ["a", "b"], "score_pos": 1, "scores_neg": [0]}',
          /:2: "negs" has 2 ids but "scores_neg" has 1 scores/,
        ],
        [
          "nopos",
          '{"qid": "q", "pos": "p", "negs": ["a"], "scores_neg": [0]}',
          /:2: missing "score_pos"$/,
        ],
        [
          "noscores",
          '{"qid": "q", "pos": "p", "negs": ["a"], "score_pos": 1}',
          /:2: missing "scores_neg"$/,
        ],
        [
          "notarray",
          '{"qid": "q", "pos": "p", "negs": "a", "score_pos": 1, "scores_neg": [0]}',
          /:2: "negs" must be an array of ids, found "a"/,
        ],
        [
          "empty",
          '{"qid": "q", "pos": "p", "negs": [], "score_pos": 1, "scores_neg": []}',
          /:2: "negs" is empty/,
        ],
        [
          "both",
          '{"qid": "q", "pos": "p", "neg": "a", "negs": ["a"], "score_pos": 1, "scores_neg": [0]}',
          /:2: both "neg" \(a triple\) and "negs"/,
        ],
        [
          "badscore",
          '{"qid": "q", "pos": "p", "negs": ["a", "b"], "score_pos": 1, "scores_neg": [0, "nan"]}',
          /:2: scores_neg\[1\] 'nan' .*NaN/,
        ],
        [
          "badid",
          '{"qid": "q", "pos": "p", "negs": ["a", ""], "score_pos": 1, "scores_neg": [0, 1]}',
          /:2: missing or empty "negs\[1\]"/,
        ],
        [
          "conflict",
          '{"qid": "q", "pos": "p", "neg": "a", "score_pos": 1, "score_neg": 0.5}',
          /:2: triple \(q, p, a\) scored differently on line 1/,
        ],
        [
          "repeated",
          '{"qid": "x", "pos": "p", "negs": ["a", "a"], "score_pos": 1, "scores_neg": [0, 1]}',
          /:2: triple \(x, p, a\) scored differently earlier on this line/,
        ],
      ] as const
    ) {
      const path = `${dir}/${name}.jsonl`;
      await Deno.writeTextFile(path, `${good}\n${line}\n`);
      const e = await rejection(() => readTeacherScores(path));
      ok(e.message.startsWith(`${path}:2:`) && pattern.test(e.message), `${name}: ${e.message}`);
    }
  });
});
