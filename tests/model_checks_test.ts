// Malformed model directories are clear errors, never silently wrong embeddings: config.json
// fields are checked (sizes, heads dividing the hidden width, activation) with messages naming
// the file and the field; the embedding tables are checked against the config and the tokenizer
// when loading (a lookup past a table's end reads zeros on the GPU, where Hugging Face raises an
// IndexError); ids past the tables are refused when encoding, naming the text.
import { deepStrictEqual, rejects, strictEqual, throws } from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { configFromHf } from "../src/models/config.ts";
import { encodeTexts, padBatch } from "../src/models/encode.ts";
import { encoderForward } from "../src/models/encoder.ts";
import { hfParameterNames, loadHfEncoder } from "../src/models/hf.ts";
import { loadEncoder, USE_LITE_MODEL_TYPE } from "../src/models/load.ts";
import { type NamedTensor, writeSafetensors } from "../src/models/safetensors.ts";
import { checkUseLiteWeights, readUseLiteWeights, useLiteShapes } from "../src/models/use_lite.ts";
import { batchLoss } from "../src/train/trainer.ts";
import { randn } from "./helpers.ts";

const dataDir = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";
const tokenizerDir = `${dataDir}/../models/minilm-l6-tokenizer`;

const BERT = {
  model_type: "bert",
  vocab_size: 512,
  hidden_size: 8,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 16,
  max_position_embeddings: 16,
  type_vocab_size: 2,
  hidden_act: "gelu",
};

Deno.test("config.json: bad fields are errors naming the file and the field", () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [
      { num_attention_heads: 3 },
      /field num_attention_heads \(3\) does not divide hidden_size \(8\)/,
    ],
    [{ hidden_size: undefined }, /field hidden_size is missing/],
    [{ hidden_size: -8 }, /field hidden_size is -8; expected an integer >= 1/],
    [{ intermediate_size: 16.5 }, /field intermediate_size is 16.5; expected an integer >= 1/],
    [{ vocab_size: "512" }, /field vocab_size is "512"; expected an integer >= 1/],
    [{ num_hidden_layers: 0 }, /field num_hidden_layers is 0/],
    [{ max_position_embeddings: null }, /field max_position_embeddings is missing/],
    [{ hidden_act: "swish" }, /field hidden_act is "swish", which is not supported \(gelu, relu\)/],
    [{ hidden_act: 3 }, /field hidden_act is 3, which is not supported/],
    [{ layer_norm_eps: -1 }, /field layer_norm_eps is -1; expected a positive number/],
    [{ type_vocab_size: 0 }, /field type_vocab_size is 0; expected an integer >= 1/],
    [{ pad_token_id: 512 }, /field pad_token_id \(512\) is not below vocab_size \(512\)/],
    [{ model_type: "gpt2" }, /field model_type "gpt2" is not supported/],
    [{ model_type: 7 }, /field model_type is 7; expected a string/],
  ];
  for (const [patch, re] of bad) {
    throws(
      () => configFromHf({ ...BERT, ...patch }, "m/config.json"),
      (e: Error) =>
        e.name === "ConfigError" && e.message.startsWith("m/config.json: ") &&
        re.test(e.message),
      JSON.stringify(patch),
    );
  }
  // DistilBERT's own field names appear in its messages.
  throws(
    () =>
      configFromHf({
        model_type: "distilbert",
        vocab_size: 10,
        dim: 10,
        n_heads: 4,
        n_layers: 1,
        hidden_dim: 8,
        max_position_embeddings: 8,
      }, "d/config.json"),
    /^ConfigError: d\/config.json: field n_heads \(4\) does not divide dim \(10\)/,
  );
  // MPNet counts positions from pad_token_id + 1: the table must leave room for a token.
  throws(
    () =>
      configFromHf({
        ...BERT,
        model_type: "mpnet",
        pad_token_id: 1,
        max_position_embeddings: 2,
      }, "p/config.json"),
    /p\/config.json: field max_position_embeddings \(2\) leaves no position/,
  );
  throws(
    () => configFromHf(null as never, "n/config.json"),
    /n\/config.json: expected a JSON object/,
  );
  // A good config still maps.
  strictEqual(configFromHf(BERT).heads, 2);
});

/** The MiniLM tokenizer.json, its vocabulary cut to ids below `size`. */
async function smallTokenizer(size: number): Promise<string> {
  const tok = JSON.parse(await Deno.readTextFile(`${tokenizerDir}/tokenizer.json`));
  tok.model.vocab = Object.fromEntries(
    Object.entries(tok.model.vocab as Record<string, number>).filter(([, id]) => id < size),
  );
  return JSON.stringify(tok);
}

/** Writes a tiny BERT model directory; `rows` overrides a table's row count. */
async function tinyBert(
  dir: string,
  opts: { config?: Record<string, unknown>; rows?: Record<string, number>; tokenizer?: string },
) {
  const raw = { ...BERT, ...opts.config };
  const cfg = configFromHf(raw);
  const H = cfg.hidden, F = cfg.intermediate;
  const weights = new Map<string, NamedTensor>();
  let seed = 1;
  for (const name of hfParameterNames(cfg, false)) {
    let shape = [H];
    if (name === "embeddings.word_embeddings.weight") shape = [cfg.vocabSize, H];
    else if (name === "embeddings.position_embeddings.weight") shape = [cfg.maxPositions, H];
    else if (name === "embeddings.token_type_embeddings.weight") shape = [cfg.typeVocabSize, H];
    else if (name.endsWith("intermediate.dense.weight")) shape = [F, H];
    else if (name.endsWith("intermediate.dense.bias")) shape = [F];
    else if (/layer\.\d+\.output\.dense\.weight$/.test(name)) shape = [H, F];
    else if (name.endsWith(".weight") && !name.includes("LayerNorm")) shape = [H, H];
    if (opts.rows?.[name] !== undefined) shape = [opts.rows[name], H];
    weights.set(name, { shape, data: randn(shape.reduce((a, b) => a * b, 1), seed++, 0.1) });
  }
  await Deno.mkdir(dir, { recursive: true });
  await writeSafetensors(`${dir}/model.safetensors`, weights);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(raw));
  await Deno.writeTextFile(`${dir}/tokenizer.json`, opts.tokenizer ?? await smallTokenizer(512));
}

Deno.test("loading checks the tables against config.json and the tokenizer", async () => {
  const gpu = await getGpu();
  const root = await Deno.makeTempDir();
  try {
    // The whole MiniLM tokenizer (30522 ids) on a 512-row model: before, ids >= 512 read zeros.
    await tinyBert(`${root}/tok`, {
      tokenizer: await Deno.readTextFile(`${tokenizerDir}/tokenizer.json`),
    });
    await rejects(
      loadHfEncoder(gpu, `${root}/tok`),
      (e: Error) =>
        e.message.startsWith(`${root}/tok/tokenizer.json: the tokenizer has ids up to 30521 `) &&
        e.message.includes(`${root}/tok/config.json has vocab_size 512`),
    );
    // A position table shorter than max_position_embeddings: before, it was accepted and
    // positions past it read zeros.
    await tinyBert(`${root}/pos`, { rows: { "embeddings.position_embeddings.weight": 8 } });
    await rejects(
      loadEncoder(gpu, `${root}/pos`),
      (e: Error) =>
        e.message.startsWith(
          `${root}/pos: embeddings.position_embeddings.weight has shape [8,8]`,
        ) &&
        e.message.includes("max_position_embeddings (16)"),
    );
    await tinyBert(`${root}/type`, { rows: { "embeddings.token_type_embeddings.weight": 1 } });
    await rejects(loadHfEncoder(gpu, `${root}/type`), /type_vocab_size \(2\)/);
    // A malformed tokenizer_config.json is an error, not silently ignored.
    await tinyBert(`${root}/tc`, {});
    await Deno.writeTextFile(`${root}/tc/tokenizer_config.json`, "{oops");
    await rejects(loadHfEncoder(gpu, `${root}/tc`), /tc\/tokenizer_config.json: .*not valid JSON/);
    await rejects(
      loadHfEncoder(gpu, `${root}/tc`, { maxLength: 0 }),
      /maxLength must be a positive/,
    );
    // Heads that do not divide the hidden width: a ConfigError, not a stack trace from a kernel.
    await tinyBert(`${root}/heads`, {});
    await Deno.writeTextFile(
      `${root}/heads/config.json`,
      JSON.stringify({ ...BERT, num_attention_heads: 3 }),
    );
    await rejects(
      loadEncoder(gpu, `${root}/heads`),
      /heads\/config.json: field num_attention_heads \(3\) does not divide hidden_size \(8\)/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("encoding refuses ids past the tables, naming the text or the sequence", async () => {
  const gpu = await getGpu();
  const root = await Deno.makeTempDir();
  try {
    await tinyBert(`${root}/ok`, {});
    const model = await loadHfEncoder(gpu, `${root}/ok`, { normalize: false });
    strictEqual(model.maxLength, 16);
    // A tokenizer that yields an id past the word table (as a mismatched tokenizer would).
    const rogue = {
      ...model,
      tokenizer: { padId: 0, encode: () => ({ ids: [101, 600, 102], truncated: false }) },
    };
    await rejects(
      encodeTexts(gpu, rogue, ["first", "the second text"]),
      /^RangeError: text 0 \("first"\): the tokenizer gives id 600, outside the model's 512-row/,
    );
    // Training tokenizes through the same check, naming the text (before: only the forward's
    // "token id 600 (sequence 0, position 1)", which does not say which text).
    await rejects(
      batchLoss(
        { gpu, model: rogue, loss: "infonce", infonceScale: 20, queryLength: 8, docLength: 8 },
        [{ query: "a query", positive: "a document", negative: "another" }],
      ),
      /^RangeError: text 0 \("a query"\): the tokenizer gives id 600, outside the model's 512-row/,
    );
    // The forward itself checks too (training calls it directly).
    await rejects(
      encoderForward(gpu, model.config, model.params, padBatch([[101, 102], [101, 512]], 0)),
      /token id 512 \(sequence 1, position 1\) is outside the 512-row word embedding table/,
    );
    // A config that claims more positions than the table holds (hand-built, past the loader).
    const long = Array.from({ length: 20 }, () => 1000 % 512);
    await rejects(
      encoderForward(
        gpu,
        { ...model.config, maxPositions: 32 },
        model.params,
        padBatch([long], 0),
      ),
      /position id 16 \(sequence 0, position 16\) is outside the 16-row position embedding/,
    );
    for (const t of model.named.values()) t.destroy();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("USE-lite checkpoints: missing weights and wrong shapes name the directory and tensor", async () => {
  // The pre-trained weights have exactly the expected names and shapes.
  const real = await readUseLiteWeights();
  deepStrictEqual([...real.keys()].sort(), [...useLiteShapes().keys()].sort());
  checkUseLiteWeights(real, "pretrained");
  // One tensor transposed, or with too few values for its shape.
  const transposed = new Map(real);
  transposed.set("layers.0.residual.weight", {
    ...real.get("layers.0.residual.weight")!,
    shape: [512, 256],
  });
  throws(
    () => checkUseLiteWeights(transposed, "ckpt"),
    /^DataFormatError: ckpt: weight layers.0.residual.weight has shape \[512, 256\], but USE-lite's needs \[256, 512\]/,
  );
  const short = new Map(real);
  short.set("head.bias", { shape: [512], data: new Float32Array(3) });
  throws(() => checkUseLiteWeights(short, "ckpt"), /ckpt: weight head.bias has 3 values/);

  const gpu = await getGpu();
  const root = await Deno.makeTempDir();
  try {
    const checkpoint = async (name: string, weights: Map<string, NamedTensor>) => {
      const dir = `${root}/${name}`;
      await Deno.mkdir(dir);
      await Deno.writeTextFile(
        `${dir}/config.json`,
        JSON.stringify({ model_type: USE_LITE_MODEL_TYPE }),
      );
      await writeSafetensors(`${dir}/model.safetensors`, weights);
      return dir;
    };
    // Before: "use-lite: missing weight layers.0.attention.query.weight", no directory named.
    const missing = await checkpoint(
      "missing",
      new Map([["other", { shape: [1], data: new Float32Array(1) }]]),
    );
    await rejects(
      loadEncoder(gpu, missing),
      new RegExp(
        `^DataFormatError: ${missing}: not a USE-lite checkpoint: missing weights ` +
          `embeddings.word_embeddings.weight, .* \\(37 of 37 missing\\)`,
      ),
    );
    // Before: every tensor of shape [1] loaded silently (and encoded garbage).
    const ones = new Map<string, NamedTensor>();
    for (const name of useLiteShapes().keys()) {
      ones.set(name, { shape: [1], data: new Float32Array(1) });
    }
    const tiny = await checkpoint("tiny", ones);
    await rejects(
      loadEncoder(gpu, tiny),
      new RegExp(
        `^DataFormatError: ${tiny}: weight embeddings.word_embeddings.weight has shape \\[1\\], ` +
          `but USE-lite's needs \\[8002, 256\\]`,
      ),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
