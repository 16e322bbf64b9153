// RoBERTa and XLM-RoBERTa: a byte-level BPE tokenizer.json with RoBERTa's post-processor
// (<s> ... </s>), positions counted from pad_token_id + 1, one token type, the `roberta.` weight
// prefix, and the tanh pooler (the authors' pooling for RoBERTa) initialised anew when the
// checkpoint has none. Embeddings against the float64 reference (tests/reference/bert_ref.ts) at
// 1e-4 absolute, as the other encoder tests (f32 accumulation over H = 64 products of O(1)
// terms gives ~1e-6; the bound leaves room for LayerNorm's amplification).
import { deepStrictEqual, ok } from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { configFromHf } from "../src/models/config.ts";
import { encodeTexts } from "../src/models/encode.ts";
import { newPooler } from "../src/models/hf.ts";
import { loadEncoder } from "../src/models/load.ts";
import { type NamedTensor, writeSafetensors } from "../src/models/safetensors.ts";
import { bertFamilyForward } from "./reference/bert_ref.ts";
import { randomWeights } from "./reference/bert_weights.ts";
import { assertClose, withTempDir } from "./helpers.ts";

/** GPT-2's reversible map of bytes to printable characters (byte-level BPE's alphabet). */
function bytesToUnicode(): Map<number, string> {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const map = new Map<number, string>();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    map.set(b, String.fromCodePoint(keep.includes(b) ? b : 256 + n++));
  }
  return map;
}

const MERGES = [
  "h e",
  "l l",
  "he ll",
  "hell o",
  "Ġ w",
  "Ġw o",
  "Ġwo r",
  "Ġwor l",
  "Ġworl d",
];

/** A small RoBERTa tokenizer.json: specials, the 256 byte characters, and {@link MERGES}. */
function robertaTokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = { "<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3 };
  for (const c of bytesToUnicode().values()) vocab[c] = Object.keys(vocab).length;
  for (const m of MERGES) vocab[m.replace(" ", "")] = Object.keys(vocab).length;
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [special(0, "<s>"), special(1, "<pad>"), special(2, "</s>"), special(3, "<unk>")],
    normalizer: null,
    pre_tokenizer: {
      type: "ByteLevel",
      add_prefix_space: false,
      trim_offsets: true,
      use_regex: true,
    },
    post_processor: {
      type: "RobertaProcessing",
      sep: ["</s>", 2],
      cls: ["<s>", 0],
      trim_offsets: true,
      add_prefix_space: false,
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: MERGES,
    },
  };
}

/** A RoBERTa model directory with seeded weights (under `roberta.`, without a pooler). */
async function writeRoberta(dir: string, modelType: "roberta" | "xlm-roberta") {
  const tok = robertaTokenizerJson();
  const vocabSize = Object.keys((tok.model as { vocab: object }).vocab).length;
  const raw = {
    model_type: modelType,
    vocab_size: vocabSize,
    hidden_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    intermediate_size: 96,
    max_position_embeddings: 20,
    type_vocab_size: 1,
    layer_norm_eps: 1e-5,
    pad_token_id: 1,
    hidden_act: "gelu",
  };
  const plain = randomWeights(raw, 21);
  for (const k of [...plain.keys()]) if (k.startsWith("pooler.")) plain.delete(k);
  const prefixed = new Map([...plain].map(([k, v]) => [`roberta.${k}`, v]));
  await writeSafetensors(`${dir}/model.safetensors`, prefixed);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(raw));
  await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(tok));
  await Deno.writeTextFile(
    `${dir}/tokenizer_config.json`,
    JSON.stringify({ pad_token: "<pad>", model_max_length: 512 }),
  );
  return { raw, weights: plain, vocab: (tok.model as { vocab: Record<string, number> }).vocab };
}

Deno.test("RoBERTa's config maps to positions from pad_token_id + 1 and one token type", () => {
  const cfg = configFromHf({
    model_type: "xlm-roberta",
    vocab_size: 250002,
    hidden_size: 768,
    num_hidden_layers: 12,
    num_attention_heads: 12,
    intermediate_size: 3072,
    max_position_embeddings: 514,
    type_vocab_size: 1,
    pad_token_id: 1,
  });
  deepStrictEqual(
    [cfg.family, cfg.maxPositions, cfg.positionOffset, cfg.typeVocabSize, cfg.padId, cfg.pooling],
    ["roberta", 512, 2, 1, 1, "cls"],
  );
});

Deno.test("RoBERTa and XLM-RoBERTa encode as the float64 reference: tokenizer, positions, pooler", async () => {
  const gpu = await getGpu();
  for (const modelType of ["roberta", "xlm-roberta"] as const) {
    await withTempDir(async (dir) => {
      const { raw, weights, vocab } = await writeRoberta(dir, modelType);
      const texts = ["hello world", "hello"];
      // Byte-level BPE by hand: "hello" and " world" are single merged tokens.
      const want = [
        [0, vocab.hello, vocab["Ġworld"], 2],
        [0, vocab.hello, 2],
      ];
      const cls = await loadEncoder(gpu, dir);
      deepStrictEqual(cls.tokenizer.encode(texts[0], 20).ids, want[0]);
      deepStrictEqual(cls.tokenizer.encode(texts[1], 20).ids, want[1]);
      deepStrictEqual(cls.config.padId, 1);
      ok(!cls.notes, "no note without a pooler asked for");

      const pooled = await loadEncoder(gpu, dir, { pooling: "pooler" });
      ok(/no pooler\.dense weights; the pooler starts from N\(0, 0\.02\)/.test(pooled.notes![0]));
      const pooler = newPooler(64, 0.02);
      const withPooler = new Map<string, NamedTensor>([...weights, ...pooler]);
      const f64 = new Map(
        [...withPooler].map(([k, v]) => [k, { shape: v.shape, data: Float64Array.from(v.data) }]),
      );
      for (const [model, usePooler] of [[cls, false], [pooled, true]] as const) {
        const emb = await encodeTexts(gpu, model, texts);
        for (let i = 0; i < 2; i++) {
          const ids = want[i];
          const out = bertFamilyForward(
            {
              model_type: "roberta",
              hidden: 64,
              layers: 2,
              heads: 4,
              eps: raw.layer_norm_eps,
              act: "gelu",
              padId: 1,
            },
            usePooler ? f64 : new Map([...f64].filter(([k]) => !k.startsWith("pooler."))),
            ids,
            ids.map(() => 1),
          );
          const y = usePooler ? out.pooler! : out.hidden[0];
          const norm = Math.hypot(...y);
          assertClose(
            emb.data.subarray(i * 64, (i + 1) * 64),
            y.map((v) => v / norm),
            { atol: 1e-4, rtol: 0 },
            `${modelType}, ${usePooler ? "pooler" : "cls"}, text ${i}`,
          );
        }
      }
      // Padding in a batch must not move the real tokens' positions.
      const batch = await encodeTexts(gpu, cls, texts, { batchSize: 2 });
      const alone = await encodeTexts(gpu, cls, [texts[1]]);
      assertClose(batch.data.subarray(64, 128), alone.data, { atol: 1e-5, rtol: 0 }, "padding");
      for (const m of [cls, pooled]) for (const t of m.named.values()) t.destroy();
    });
  }
});
