// RoBERTa and XLM-RoBERTa: a byte-level BPE tokenizer.json with RoBERTa's post-processor
// (<s> ... </s>), XLM-R's SentencePiece Unigram tokenizer.json (Metaspace, <s> <pad> </s> <unk>
// = 0 1 2 3), positions counted from pad_token_id + 1, one token type, the `roberta.` weight
// prefix, and the tanh pooler (the authors' pooling for RoBERTa) initialised anew when the
// checkpoint has none. Embeddings against the float64 reference (tests/reference/bert_ref.ts) at
// 1e-4 absolute, as the other encoder tests (f32 accumulation over H = 64 products of O(1)
// terms gives ~1e-6; the bound leaves room for LayerNorm's amplification). Checkpoints saved and
// loaded back must give bit-identical embeddings: same weights, same kernels, same inputs.
import { deepStrictEqual, ok } from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { configFromHf } from "../src/models/config.ts";
import { encodeTexts } from "../src/models/encode.ts";
import { newPooler } from "../src/models/hf.ts";
import { loadEncoder, saveEncoder } from "../src/models/load.ts";
import { type NamedTensor, writeSafetensors } from "../src/models/safetensors.ts";
import {
  readSentenceTransformersLayout,
  SELFMARGIN_POOLING_FIELD,
} from "../src/models/st_layout.ts";
import type { Pooling } from "../src/models/config.ts";
import { bertFamilyForward } from "./reference/bert_ref.ts";
import { randomWeights } from "./reference/bert_weights.ts";
import { assertBitEqual, assertClose, withTempDir } from "./helpers.ts";

const dataDir = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";
const tokenizerDir = `${dataDir}/../models/minilm-l6-tokenizer`;

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

/** An added special token of a `tokenizer.json`. */
function special(id: number, content: string, lstrip = false) {
  return {
    id,
    content,
    single_word: false,
    lstrip,
    rstrip: false,
    normalized: false,
    special: true,
  };
}

/** The pieces of {@link xlmrTokenizerJson} after XLM-R's four specials, with log-probabilities. */
const XLMR_PIECES: [string, number][] = [
  ["\u2581", -2],
  ["\u2581hello", -3],
  ["\u2581world", -3.5],
  ["\u2581hell", -6],
  ["\u2581wor", -6],
  ["ld", -6],
  ...[..."helowrdacfinuv,!42"].map((c): [string, number] => [c, -8]),
];

/**
 * A small XLM-RoBERTa-style tokenizer.json, as the real checkpoints ship it: a SentencePiece
 * Unigram model whose vocabulary starts `<s> <pad> </s> <unk>` (ids 0, 1, 2, 3), a Metaspace
 * pre-tokenizer (`▁` prepended), `<mask>` last, and RoBERTa's post-processor (`roberta`) or the
 * equivalent template (`template`, as newer exports write it).
 */
function xlmrTokenizerJson(post: "roberta" | "template"): Record<string, unknown> {
  const vocab: [string, number][] = [
    ["<s>", 0],
    ["<pad>", 0],
    ["</s>", 0],
    ["<unk>", 0],
    ...XLMR_PIECES,
    ["<mask>", 0],
  ];
  const mask = vocab.length - 1;
  const metaspace = {
    type: "Metaspace",
    replacement: "\u2581",
    add_prefix_space: true,
    prepend_scheme: "always",
  };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [
      special(0, "<s>"),
      special(1, "<pad>"),
      special(2, "</s>"),
      special(3, "<unk>"),
      special(mask, "<mask>", true),
    ],
    normalizer: {
      type: "Sequence",
      normalizers: [{ type: "Replace", pattern: { Regex: " {2,}" }, content: " " }],
    },
    pre_tokenizer: metaspace,
    post_processor: post === "roberta"
      ? {
        type: "RobertaProcessing",
        sep: ["</s>", 2],
        cls: ["<s>", 0],
        trim_offsets: true,
        add_prefix_space: true,
      }
      : {
        type: "TemplateProcessing",
        single: [
          { SpecialToken: { id: "<s>", type_id: 0 } },
          { Sequence: { id: "A", type_id: 0 } },
          { SpecialToken: { id: "</s>", type_id: 0 } },
        ],
        pair: [
          { SpecialToken: { id: "<s>", type_id: 0 } },
          { Sequence: { id: "A", type_id: 0 } },
          { SpecialToken: { id: "</s>", type_id: 0 } },
          { SpecialToken: { id: "</s>", type_id: 0 } },
          { Sequence: { id: "B", type_id: 0 } },
          { SpecialToken: { id: "</s>", type_id: 0 } },
        ],
        special_tokens: {
          "<s>": { id: "<s>", ids: [0], tokens: ["<s>"] },
          "</s>": { id: "</s>", ids: [2], tokens: ["</s>"] },
        },
      },
    decoder: metaspace,
    model: { type: "Unigram", unk_id: 3, vocab, byte_fallback: false },
  };
}

/** The id of an {@link xlmrTokenizerJson} piece. */
function xlmrId(piece: string): number {
  const i = XLMR_PIECES.findIndex(([p]) => p === piece);
  if (i < 0) throw new Error(`no piece ${piece}`);
  return 4 + i;
}

/**
 * A RoBERTa model directory with seeded weights (under `roberta.`, without a pooler) and `tok`
 * (default: the byte-level BPE of {@link robertaTokenizerJson}).
 */
async function writeRoberta(
  dir: string,
  modelType: "roberta" | "xlm-roberta",
  tok: Record<string, unknown> = robertaTokenizerJson(),
) {
  const v = (tok.model as { vocab: object }).vocab;
  const vocabSize = Math.max(
    Object.keys(v).length,
    ...(tok.added_tokens as { id: number }[]).map((t) => t.id + 1),
  );
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
  return { raw, weights: plain, vocab: v as Record<string, number> };
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
            robertaRefConfig(raw.layer_norm_eps),
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

/** The float64 reference's settings for this file's small RoBERTa (64 wide, 2 layers, 4 heads). */
function robertaRefConfig(eps: number) {
  return {
    model_type: "roberta",
    hidden: 64,
    layers: 2,
    heads: 4,
    eps,
    act: "gelu",
    padId: 1,
  } as const;
}

/** The float64 reference embedding (L2-normalised) of `ids` through a RoBERTa's first token. */
function robertaReference(
  raw: { layer_norm_eps: number },
  weights: Map<string, NamedTensor>,
  ids: number[],
): Float64Array {
  const f64 = new Map(
    [...weights].map(([k, v]) => [k, { shape: v.shape, data: Float64Array.from(v.data) }]),
  );
  const out = bertFamilyForward(
    robertaRefConfig(raw.layer_norm_eps),
    f64,
    ids,
    ids.map(() => 1),
  );
  const y = out.hidden[0];
  const norm = Math.hypot(...y);
  return y.map((x) => x / norm);
}

Deno.test("XLM-RoBERTa with a SentencePiece Unigram tokenizer.json: ids, specials, padding, positions (float64 reference)", async () => {
  const gpu = await getGpu();
  for (const post of ["roberta", "template"] as const) {
    await withTempDir(async (dir) => {
      const { raw, weights } = await writeRoberta(dir, "xlm-roberta", xlmrTokenizerJson(post));
      const model = await loadEncoder(gpu, dir);
      const texts = ["hello world", "hello  hello", "world hell", "hello \u00df"];
      // Metaspace prepends "▁" to the text and replaces spaces; Unigram keeps the likeliest
      // segmentation ("▁hello" at -3 beats "▁hell" + "o" at -14); "ß" is not in the vocabulary:
      // "▁" then <unk> (id 3). <s> = 0 and </s> = 2 around every text.
      const want = [
        [0, xlmrId("\u2581hello"), xlmrId("\u2581world"), 2],
        [0, xlmrId("\u2581hello"), xlmrId("\u2581hello"), 2],
        [0, xlmrId("\u2581world"), xlmrId("\u2581hell"), 2],
        [0, xlmrId("\u2581hello"), xlmrId("\u2581"), 3, 2],
      ];
      texts.forEach((t, i) => deepStrictEqual(model.tokenizer.encode(t, 20).ids, want[i], t));
      // Truncation keeps the closing </s>.
      deepStrictEqual(model.tokenizer.encode("hello world hello", 3).ids, [0, want[0][1], 2]);
      deepStrictEqual(
        [model.config.family, model.config.padId, model.tokenizer.padId, model.config.pooling],
        ["roberta", 1, 1, "cls"],
        `${post}: <pad> is id 1 in the tokenizer and the config`,
      );
      // Positions count from pad_token_id + 1 = 2: the reference looks them up there.
      deepStrictEqual(model.config.positionOffset, 2);
      const emb = await encodeTexts(gpu, model, texts, { batchSize: 4 });
      for (const [i, ids] of want.entries()) {
        assertClose(
          emb.data.subarray(i * 64, (i + 1) * 64),
          robertaReference(raw, weights, ids),
          { atol: 1e-4, rtol: 0 },
          `xlm-roberta (${post}), text ${i}`,
        );
      }
      // Padding (id 1) in a batch of unequal lengths must not move the real tokens' positions.
      const alone = await encodeTexts(gpu, model, [texts[0]]);
      assertClose(emb.data.subarray(0, 64), alone.data, { atol: 1e-5, rtol: 0 }, "padding");
      for (const t of model.named.values()) t.destroy();
    });
  }
});

/** A small BERT directory: MiniLM's tokenizer and config cut to 2 layers of width 64. */
async function writeSmallBert(dir: string) {
  const raw = JSON.parse(await Deno.readTextFile(`${tokenizerDir}/config.json`));
  Object.assign(raw, {
    hidden_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    intermediate_size: 96,
    max_position_embeddings: 32,
  });
  await writeSafetensors(`${dir}/model.safetensors`, randomWeights(raw, 9));
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(raw));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(`${tokenizerDir}/${f}`, `${dir}/${f}`);
  }
}

Deno.test("a saved checkpoint reloads with the pooling it was saved with, for every pooling (RoBERTa and BERT)", async () => {
  const gpu = await getGpu();
  const poolings: Pooling[] = ["cls", "mean", "max", "lasttoken", "pooler"];
  const texts = ["hello world", "hello"];
  for (const family of ["roberta", "bert"] as const) {
    await withTempDir(async (dir) => {
      await Deno.mkdir(`${dir}/src`);
      if (family === "roberta") await writeRoberta(`${dir}/src`, "roberta");
      else await writeSmallBert(`${dir}/src`);
      for (const pooling of poolings) {
        const what = `${family}, ${pooling}`;
        // A query prompt too: the layout that records the pooling also carries the prompts.
        const model = await loadEncoder(gpu, `${dir}/src`, {
          pooling,
          prompts: { query: "hello " },
        });
        deepStrictEqual(model.config.pooling, pooling, what);
        const out = `${dir}/out-${pooling}`;
        await saveEncoder(model, out);
        const layout = (await readSentenceTransformersLayout(out))!;
        deepStrictEqual(layout.pooling, pooling, `${what}: the saved layout`);
        // sentence-transformers' view: the Pooling module says cls for the tanh pooler, and the
        // pooler is recorded beside the prompts.
        const pc = JSON.parse(await Deno.readTextFile(`${out}/1_Pooling/config.json`));
        const stc = JSON.parse(await Deno.readTextFile(`${out}/config_sentence_transformers.json`));
        deepStrictEqual(
          [pc.pooling_mode_cls_token, stc[SELFMARGIN_POOLING_FIELD]],
          pooling === "pooler" || pooling === "cls"
            ? [true, pooling === "pooler" ? "pooler" : undefined]
            : [false, undefined],
          what,
        );
        const back = await loadEncoder(gpu, out);
        deepStrictEqual(back.config, model.config, `${what}: the config`);
        deepStrictEqual(back.text, model.text, `${what}: the prompts`);
        deepStrictEqual(back.maxLength, model.maxLength, `${what}: the length`);
        ok(!back.notes, `${what}: no pooler initialised anew (${back.notes})`);
        deepStrictEqual([...back.named.keys()].sort(), [...model.named.keys()].sort(), what);
        ok(pooling !== "pooler" || back.named.has("pooler.dense.weight"), what);
        for (const [name, t] of model.named) {
          assertBitEqual(await back.named.get(name)!.read(), await t.read(), `${what}: ${name}`);
        }
        for (const role of ["query", "document"] as const) {
          const a = await encodeTexts(gpu, model, texts, { role });
          const b = await encodeTexts(gpu, back, texts, { role });
          assertBitEqual(b.data, a.data, `${what}, ${role}: embeddings after the round trip`);
        }
        for (const m of [model, back]) for (const t of m.named.values()) t.destroy();
      }
    });
  }
});
