// The BERT cross-encoder teacher (src/models/cross_encoder.ts) against the independent float64
// reference (tests/reference/bert_ref.ts crossEncoderLogit), on seeded random weights saved in
// the layout of cross-encoder/ms-marco-MiniLM-L-6-v2 (bert.* + pooler + a one-logit
// classifier) with the real MiniLM tokenizer, 2 layers.
//
// Tolerance 1e-4 absolute on the logit: the hidden states match to ~1e-5 (tests/
// bert_encoder_test.ts's bound is 1e-4 per component), the pooler's tanh is 1-Lipschitz, and
// the classifier sums H = 384 products with weights of ~0.08, so f32 errors stay near 1e-5.
import { deepStrictEqual, ok, rejects, throws } from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { crossEncoderScores, loadCrossEncoder, pairBatch } from "../src/models/cross_encoder.ts";
import { bertPair, loadHfTokenizer } from "../src/text/tokenizer.ts";
import { crossEncoderLogit } from "./reference/bert_ref.ts";
import { tokenizerDir, writeCrossEncoder } from "./reference/cross_encoder_fixture.ts";
import { withTempDir } from "./helpers.ts";

const PAIRS: [string, string][] = [
  ["what causes scurvy", "Scurvy is a disease resulting from a lack of vitamin C."],
  ["do statins lower cholesterol", "Statins reduce LDL cholesterol in most patients."],
  ["", "An empty query still gets a [CLS] and two [SEP]s."],
  ["a rather long query about protein folding and chaperones in the cell", "short doc"],
];

Deno.test("the cross-encoder's logits equal the float64 reference, pairs padded in one batch", async () => {
  const gpu = await getGpu();
  await withTempDir(async (dir) => {
    const { ref, refCfg } = await writeCrossEncoder(dir, 5);
    const ce = await loadCrossEncoder(gpu, dir);
    try {
      const scores = await crossEncoderScores(gpu, ce, PAIRS, { batchSize: 3 });
      deepStrictEqual(scores.length, PAIRS.length);
      const tokenizer = ce.body.tokenizer;
      PAIRS.forEach(([q, d], i) => {
        const { ids, typeIds } = tokenizer.encodePair(q, d, ce.maxLength);
        const want = crossEncoderLogit(refCfg, ref, ids, ids.map(() => 1), typeIds);
        ok(Math.abs(scores[i] - want) <= 1e-4, `pair ${i}: ${scores[i]} vs ${want}`);
      });
      // Segment ids matter: the same tokens as one segment give another logit.
      const { ids } = tokenizer.encodePair(PAIRS[0][0], PAIRS[0][1], ce.maxLength);
      const oneSegment = crossEncoderLogit(refCfg, ref, ids, ids.map(() => 1), ids.map(() => 0));
      ok(Math.abs(oneSegment - scores[0]) > 1e-3, "token types change the logit");
    } finally {
      for (const t of ce.body.named.values()) t.destroy();
      ce.classifierWeight.destroy();
      ce.classifierBias.destroy();
    }
  });
});

Deno.test("pairs are [CLS] a [SEP] b [SEP] with segment ids, cut longest-first", async () => {
  const tok = await loadHfTokenizer(tokenizerDir);
  const full = tok.encodePair("what causes scurvy", "lack of vitamin c", 64);
  const cls = full.ids[0], sep = full.ids[full.ids.length - 1];
  deepStrictEqual(full.truncated, false);
  const firstSep = full.ids.indexOf(sep);
  deepStrictEqual(full.typeIds, full.ids.map((_, i) => (i <= firstSep ? 0 : 1)));
  // longest-first: one token at a time from the longer text, the second on ties.
  const a = [1, 2, 3, 4, 5], b = [11, 12, 13, 14, 15, 16, 17, 18, 19, 20];
  deepStrictEqual(bertPair(a, b, 101, 102, 10), {
    ids: [101, 1, 2, 3, 4, 102, 11, 12, 13, 102],
    typeIds: [0, 0, 0, 0, 0, 0, 1, 1, 1, 1],
    truncated: true,
  });
  deepStrictEqual(bertPair(a, [11], 101, 102, 6).ids, [101, 1, 2, 102, 11, 102]);
  deepStrictEqual(bertPair([], [], 101, 102, 3).ids, [101, 102, 102]);
  throws(() => bertPair(a, b, cls, sep, 2), RangeError);
  const cut = tok.encodePair("a query", "a document ".repeat(100), 32);
  deepStrictEqual([cut.ids.length, cut.truncated, cut.ids[31]], [32, true, sep]);
  const batch = pairBatch([full, cut], 0);
  deepStrictEqual([batch.batch, batch.seq], [2, 32]);
  deepStrictEqual(Array.from(batch.typeIds!.subarray(0, full.ids.length)), full.typeIds);
  deepStrictEqual(batch.mask[full.ids.length], 0);
});

Deno.test("a directory that is not a one-logit BERT cross-encoder is refused by name", async () => {
  const gpu = await getGpu();
  await withTempDir(async (dir) => {
    await writeCrossEncoder(dir, 6, 2);
    await rejects(() => loadCrossEncoder(gpu, dir), (e: Error) => {
      ok(
        e.message.includes(dir) && /classifier\.weight has shape \[2,384\]/.test(e.message),
        e.message,
      );
      return true;
    });
  });
});
