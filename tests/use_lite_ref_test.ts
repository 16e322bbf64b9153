/**
 * The float64 USE-lite reference (tests/reference/use_lite_ref.ts) against TF.js executing the
 * shipped graph on tfjs-backend-cpu: the reference is what the WebGPU encoder is later checked
 * against, so this test is what makes it a trustworthy reference.
 */
import { Tokenizer as TfjsUseTokenizer } from "npm:@tensorflow-models/universal-sentence-encoder@1.3.3/dist/tokenizer/index.js";
import { assertClose } from "./helpers.ts";
import { loadTfjsWeights } from "../src/models/tfjs_weights.ts";
import { loadUseLiteVocab, locateUseLite } from "../src/models/use_lite_assets.ts";
import { useLiteRefForward } from "./reference/use_lite_ref.ts";
import { tfjsUseLite, USE_LITE_OUTPUT } from "./reference/use_lite_tfjs.ts";

const P = "module_apply_default/Encoder_en/KonaTransformer/";
const NODES = [
  P + "Encode/TransformerStack/Layer_0/add", // 2 * embedding + timing signal
  P + "div", // pooled
  "module_apply_default/Encoder_en/hidden_layers/tanh_layer_0/Tanh",
  USE_LITE_OUTPUT,
];

// 8 varied texts: short, punctuation, digits, unicode + unknown chars, a middle empty text (its
// row exists; see docs), whitespace, and one over 128 tokens (clipped by the graph).
const TEXTS = [
  "Hello world.",
  "Aspirin reduces the risk of colorectal cancer in adults over 50 (HR 0.76; 95% CI 0.66-0.88).",
  "",
  "Ünïcödé façade — naïve café; 😀 中文 Ελληνικά",
  "   leading and  double spaces ",
  "a",
  "The BRCA1 gene encodes a nuclear phosphoprotein that maintains genomic stability.",
  "Proteins fold into three-dimensional structures determined by their sequence. ".repeat(14),
];

Deno.test("USE-lite float64 reference equals the TF.js graph model (8 texts)", async () => {
  const assets = await locateUseLite();
  const weights = await loadTfjsWeights(assets.modelJson);
  const vocab = await loadUseLiteVocab(assets);
  // deno-lint-ignore no-explicit-any
  const tok = new TfjsUseTokenizer(vocab as any);
  const ids = TEXTS.map((t) => tok.encode(t));
  if (!(ids[7].length > 128)) throw new Error(`long text has only ${ids[7].length} tokens`);
  const tf = await tfjsUseLite();
  // TF.js pads a batch to its longest text and costs ~2 s per 128 positions on this CPU: the 7
  // short texts go as one batch, the long one alone.
  const batches = [[0, 1, 2, 3, 4, 5, 6], [7]];
  for (const batch of batches) {
    const [input, pooled, head, out] = await tf.execute(batch.map((b) => ids[b]), NODES);
    const T = input.shape[1];
    const longest = Math.min(128, Math.max(...batch.map((b) => ids[b].length)));
    if (out.shape[0] !== batch.length || out.shape[1] !== 512 || T !== longest) {
      throw new Error(`unexpected TF.js shapes ${out.shape} / ${input.shape}`);
    }
    for (const [r, b] of batch.entries()) {
      const { embedding, trace } = useLiteRefForward(weights, ids[b]);
      const n = Math.min(ids[b].length, 128);
      const label = `text ${b} (${n} tokens)`;
      const row = (o: { data: Float32Array }, w: number) => o.data.subarray(r * w, (r + 1) * w);
      // Input x = 2 E + signal, |x| < 3: float32 rounding of TF.js's sum, ~2e-7 measured.
      assertClose(
        input.data.subarray(r * T * 256, (r * T + n) * 256),
        trace.input,
        { atol: 2e-6, rtol: 0 },
        `${label} input`,
      );
      // Pooled: after two float32 layers with values up to ~80; measured <= 4.6e-5 abs where
      // the largest pooled component is 12.5 (3.7e-6 of it): allow 2e-5 of the largest one.
      const maxPool = Math.max(...trace.pooled.map(Math.abs));
      assertClose(row(pooled, 512), trace.pooled, {
        atol: 2e-5 * Math.max(1, maxPool),
        rtol: 0,
      }, `${label} pooled`);
      // |tanh| <= 1, measured <= 3.5e-6.
      assertClose(row(head, 512), trace.head, { atol: 2e-5, rtol: 0 }, `${label} tanh head`);
      // The embedding (L2-normalised, components < ~0.1): float32 TF.js vs float64 reference,
      // measured <= 2e-7; 1e-5 leaves 50x margin while a misread op (the factor 2, a scale,
      // the pooling mask) moves components by >= 1e-3.
      assertClose(row(out, 512), embedding, { atol: 1e-5, rtol: 0 }, `${label} embedding`);
    }
  }
});
