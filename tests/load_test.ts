// Checkpoints load back: saveEncoder then loadEncoder reproduces every parameter exactly and the
// same embeddings; for the embedded default and for a BERT-family directory.
import { assertBitEqual } from "./helpers.ts";
import { deepStrictEqual, rejects } from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { encodeTexts } from "../src/models/encode.ts";
import { loadEncoder, saveEncoder } from "../src/models/load.ts";

const TEXTS = ["a short query", "Aspirin reduces the risk of colorectal cancer.", ""];

Deno.test("a saved USE-lite checkpoint loads back with identical weights and embeddings", async () => {
  const gpu = await getGpu();
  const model = await loadEncoder(gpu, "use-lite");
  const dir = await Deno.makeTempDir();
  try {
    await saveEncoder(model, `${dir}/ckpt`, { step: "7" });
    const back = await loadEncoder(gpu, `${dir}/ckpt`);
    deepStrictEqual([...back.named.keys()].sort(), [...model.named.keys()].sort());
    for (const [name, t] of model.named) {
      assertBitEqual(await back.named.get(name)!.read(), await t.read(), name);
    }
    const a = await encodeTexts(gpu, model, TEXTS);
    const b = await encodeTexts(gpu, back, TEXTS);
    assertBitEqual(b.data, a.data, "embeddings");
    // Saving again over an existing checkpoint replaces it.
    await saveEncoder(back, `${dir}/ckpt`);
    deepStrictEqual((await loadEncoder(gpu, `${dir}/ckpt`)).named.size, model.named.size);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a BERT-family checkpoint copies config and tokenizer and loads back", async () => {
  const gpu = await getGpu();
  const src = new URL("./fixtures/hf_parity/bert", import.meta.url).pathname;
  const dir = await Deno.makeTempDir();
  try {
    // The parity fixture has no tokenizer: give it the MiniLM one, cut to the fixture's 512-id
    // vocabulary (the whole one would give ids past its embedding table, a load error).
    const dataDir = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";
    await Deno.mkdir(`${dir}/src`);
    for (const f of ["config.json", "model.safetensors"]) {
      await Deno.copyFile(`${src}/${f}`, `${dir}/src/${f}`);
    }
    const tok = JSON.parse(
      await Deno.readTextFile(`${dataDir}/../models/minilm-l6-tokenizer/tokenizer.json`),
    );
    tok.model.vocab = Object.fromEntries(
      Object.entries(tok.model.vocab as Record<string, number>).filter(([, id]) => id < 512),
    );
    await Deno.writeTextFile(`${dir}/src/tokenizer.json`, JSON.stringify(tok));
    const model = await loadEncoder(gpu, `${dir}/src`);
    await saveEncoder(model, `${dir}/out`);
    const back = await loadEncoder(gpu, `${dir}/out`);
    for (const [name, t] of model.named) {
      assertBitEqual(await back.named.get(name)!.read(), await t.read(), name);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an unknown model name is a clear error", async () => {
  const gpu = await getGpu();
  await rejects(loadEncoder(gpu, "no such model"), /neither 'use-lite', a model directory/);
});
