// The sentence-transformers layout: what a directory declares (modules.json, 1_Pooling,
// sentence_bert_config.json, config_sentence_transformers.json) decides pooling, normalisation,
// truncation, lower-casing and prompts; a saved checkpoint declares the same and loads back the
// same; modules the library does not implement are errors naming them.
//
// Embeddings are checked against the float64 BERT reference (tests/reference/bert_ref.ts) pooled
// as sentence-transformers pools (prompt tokens left out with include_prompt false: the first
// len(tokenize(prompt)) - 1 positions), at 1e-4 absolute as the other encoder tests (f32
// accumulation over H = 384 products of O(1) terms gives ~1e-5).
import { deepStrictEqual, ok, rejects, throws } from "node:assert/strict";
import { getGpu, type Gpu } from "../src/gpu/device.ts";
import { encodeTexts, formatTexts, promptPoolSkip } from "../src/models/encode.ts";
import { downloadHubModel, loadEncoder, saveEncoder } from "../src/models/load.ts";
import type { LoadedEncoder } from "../src/models/hf.ts";
import { writeSafetensors } from "../src/models/safetensors.ts";
import {
  readSentenceTransformersLayout,
  type SentenceTransformersLayout,
  writeSentenceTransformersLayout,
} from "../src/models/st_layout.ts";
import { renderModelCard } from "../src/models/model_card.ts";
import { modelFlagOptions, UsageError } from "../src/cli/cli_checks.ts";
import { DataFormatError } from "../src/data/types.ts";
import { bertFamilyForward } from "./reference/bert_ref.ts";
import { randomWeights } from "./reference/bert_weights.ts";
import { assertClose, withTempDir } from "./helpers.ts";

const dataDir = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";
const tokenizerDir = `${dataDir}/../models/minilm-l6-tokenizer`;

const json = (v: unknown) => JSON.stringify(v, null, 2);

/** Writes a sentence-transformers directory's layout files (no model files). */
async function writeLayoutFiles(
  dir: string,
  o: {
    modules?: unknown;
    pooling?: Record<string, unknown>;
    sb?: Record<string, unknown>;
    st?: Record<string, unknown>;
  },
): Promise<void> {
  await Deno.mkdir(`${dir}/1_Pooling`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/modules.json`,
    json(
      o.modules ?? [
        { idx: 0, name: "0", path: "", type: "sentence_transformers.models.Transformer" },
        { idx: 1, name: "1", path: "1_Pooling", type: "sentence_transformers.models.Pooling" },
        { idx: 2, name: "2", path: "2_Normalize", type: "sentence_transformers.models.Normalize" },
      ],
    ),
  );
  await Deno.writeTextFile(
    `${dir}/1_Pooling/config.json`,
    json(o.pooling ?? { word_embedding_dimension: 384, pooling_mode_mean_tokens: true }),
  );
  if (o.sb) await Deno.writeTextFile(`${dir}/sentence_bert_config.json`, json(o.sb));
  if (o.st) await Deno.writeTextFile(`${dir}/config_sentence_transformers.json`, json(o.st));
}

Deno.test("a sentence-transformers directory's layout is read as it declares", async () => {
  await withTempDir(async (dir) => {
    await writeLayoutFiles(dir, {
      pooling: { pooling_mode_max_tokens: true, include_prompt: false },
      sb: { max_seq_length: 256, do_lower_case: true },
      st: {
        prompts: { query: "query: ", passage: "passage: " },
        default_prompt_name: null,
        similarity_fn_name: "cosine",
      },
    });
    deepStrictEqual(
      await readSentenceTransformersLayout(dir),
      {
        transformerPath: "",
        pooling: "max",
        includePrompt: false,
        normalize: true,
        similarity: "cosine",
        maxSeqLength: 256,
        lowerCase: true,
        prompts: { query: "query: ", passage: "passage: " },
        defaultPromptName: null,
      } satisfies SentenceTransformersLayout,
    );
    // No Normalize module and no similarity named: ranked by the dot product, unnormalised.
    await writeLayoutFiles(dir, {
      modules: [
        { idx: 0, path: "0_Transformer", type: "sentence_transformers.models.Transformer" },
        { idx: 1, path: "1_Pooling", type: "sentence_transformers.models.Pooling" },
      ],
      pooling: { pooling_mode_cls_token: true },
      st: {},
    });
    await Deno.remove(`${dir}/sentence_bert_config.json`);
    const l = (await readSentenceTransformersLayout(dir))!;
    deepStrictEqual(
      [l.transformerPath, l.pooling, l.normalize, l.similarity, l.maxSeqLength, l.lowerCase],
      ["0_Transformer", "cls", false, "dot", undefined, false],
    );
  });
  ok((await readSentenceTransformersLayout(tokenizerDir)) === null, "no modules.json: null");
});

Deno.test("what the layout cannot express is an error naming the file and the module or field", async () => {
  const base = [
    { idx: 0, path: "", type: "sentence_transformers.models.Transformer" },
    { idx: 1, path: "1_Pooling", type: "sentence_transformers.models.Pooling" },
  ];
  const cases: [Parameters<typeof writeLayoutFiles>[1], RegExp][] = [
    [
      {
        modules: [...base, { idx: 2, path: "2_Dense", type: "sentence_transformers.models.Dense" }],
      },
      /modules\.json.*module 2 \(sentence_transformers\.models\.Dense, path 2_Dense\) is not implemented/,
    ],
    [{ modules: [base[1], base[0]] }, /module 0 .* is out of order: expected Transformer/],
    [{ modules: [base[0]] }, /no Pooling module/],
    [
      { pooling: { pooling_mode_mean_tokens: true, pooling_mode_max_tokens: true } },
      /1_Pooling\/config\.json.*several pooling modes at once/,
    ],
    [
      { pooling: { pooling_mode_mean_sqrt_len_tokens: true } },
      /pooling_mode_mean_sqrt_len_tokens is not supported/,
    ],
    [{ pooling: {} }, /no pooling_mode_\* field is true/],
    [
      { st: { similarity_fn_name: "euclidean" } },
      /config_sentence_transformers\.json.*similarity_fn_name: "euclidean" is not supported/,
    ],
    [
      { st: { prompts: { query: "q: " }, default_prompt_name: "doc" } },
      /default_prompt_name: "doc" is not one of the prompts/,
    ],
    [{ sb: { max_seq_length: 0 } }, /sentence_bert_config\.json.*max_seq_length/],
  ];
  for (const [files, pattern] of cases) {
    await withTempDir(async (dir) => {
      await writeLayoutFiles(dir, { modules: base, ...files });
      await rejects(readSentenceTransformersLayout(dir), (e: unknown) => {
        ok(e instanceof DataFormatError, `${pattern}: ${e}`);
        ok(pattern.test(e.message), `${e.message} !~ ${pattern}`);
        return true;
      });
    });
  }
});

/** The MiniLM config cut to 2 layers, seeded weights and the MiniLM tokenizer, in `dir`. */
/** `b` is `a`: the same text settings, config, and query and document embeddings, bit for bit. */
async function assertSameEncoder(gpu: Gpu, a: LoadedEncoder, b: LoadedEncoder, what: string) {
  deepStrictEqual(b.text, a.text);
  deepStrictEqual(b.config, a.config);
  for (const role of ["query", "document"] as const) {
    const ea = await encodeTexts(gpu, a, ["Protein folding"], { role });
    const eb = await encodeTexts(gpu, b, ["Protein folding"], { role });
    deepStrictEqual(eb.data, ea.data, `${role}: ${what}`);
  }
}

async function writeMiniLm(dir: string) {
  const raw = JSON.parse(await Deno.readTextFile(`${tokenizerDir}/config.json`));
  raw.num_hidden_layers = 2;
  const weights = randomWeights(raw, 5);
  await writeSafetensors(`${dir}/model.safetensors`, weights);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(raw));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(`${tokenizerDir}/${f}`, `${dir}/${f}`);
  }
  return { raw, weights };
}

/**
 * The float64 reference of one text's embedding: the BERT reference's hidden states pooled
 * over positions [skip, len) as sentence-transformers pools (cls: position 0), L2-normalised.
 */
function referenceEmbedding(
  raw: Record<string, number>,
  weights: Awaited<ReturnType<typeof writeMiniLm>>["weights"],
  ids: number[],
  pooling: string,
  skip: number,
): Float64Array {
  const { hidden } = bertFamilyForward(
    {
      model_type: "bert",
      hidden: raw.hidden_size,
      layers: 2,
      heads: raw.num_attention_heads,
      eps: raw.layer_norm_eps,
      act: "gelu",
      padId: 0,
    },
    weights,
    ids,
    ids.map(() => 1),
  );
  const H = raw.hidden_size;
  const kept = hidden.slice(skip);
  const y = new Float64Array(H);
  for (let j = 0; j < H; j++) {
    const col = kept.map((row) => row[j]);
    y[j] = pooling === "cls"
      ? hidden[0][j]
      : pooling === "mean"
      ? col.reduce((a, b) => a + b, 0) / col.length
      : pooling === "max"
      ? Math.max(...col)
      : col[col.length - 1];
  }
  const norm = Math.hypot(...y);
  return y.map((v) => v / norm);
}

Deno.test("a sentence-transformers BERT directory pools, truncates, lower-cases and prompts as declared (float64 reference)", async () => {
  const gpu = await getGpu();
  await withTempDir(async (dir) => {
    const { raw, weights } = await writeMiniLm(dir);
    const texts = [
      "The Cell Cycle of YEAST",
      "short",
      "a much longer text about proteins and genes",
    ];
    for (const pooling of ["mean", "max", "lasttoken", "cls"]) {
      for (const includePrompt of [true, false]) {
        await writeLayoutFiles(dir, {
          pooling: {
            [
              `pooling_mode_${
                pooling === "cls"
                  ? "cls_token"
                  : pooling === "lasttoken"
                  ? "lasttoken"
                  : `${pooling}_tokens`
              }`
            ]: true,
            include_prompt: includePrompt,
          },
          sb: { max_seq_length: 12, do_lower_case: true },
          st: { prompts: { query: "Query: ", passage: "passage: " }, similarity_fn_name: "cosine" },
        });
        const model = await loadEncoder(gpu, dir);
        const what = `${pooling}, include_prompt ${includePrompt}`;
        deepStrictEqual(model.config.pooling, pooling, what);
        deepStrictEqual(model.maxLength, 12, `${what}: max_seq_length caps the length`);
        deepStrictEqual(formatTexts(model, ["AB"], "query"), ["query: ab"]);
        deepStrictEqual(formatTexts(model, ["AB"], "document"), ["passage: ab"]);
        for (const role of ["query", "document"] as const) {
          const emb = await encodeTexts(gpu, model, texts, { role });
          const skip = promptPoolSkip(model, role);
          const prompt = role === "query" ? "query: " : "passage: ";
          // [CLS] + the prompt's tokens (sentence-transformers: len(tokenize(prompt)) - 1).
          deepStrictEqual(
            skip,
            includePrompt ? 0 : model.tokenizer.encode(prompt, 12).ids.length - 1,
            `${what}: prompt tokens left out of pooling`,
          );
          for (const [i, t] of texts.entries()) {
            const ids = model.tokenizer.encode((prompt + t).toLowerCase(), 12).ids;
            ok(ids.length <= 12);
            assertClose(
              emb.data.subarray(i * 384, (i + 1) * 384),
              referenceEmbedding(raw, weights, ids, pooling, pooling === "cls" ? 0 : skip),
              { atol: 1e-4, rtol: 0 },
              `${what}, ${role} ${i}`,
            );
          }
        }
        for (const t of model.named.values()) t.destroy();
      }
    }
  });
});

Deno.test("flags override the directory; a checkpoint saves the layout and a model card, and loads back the same", async () => {
  const gpu = await getGpu();
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/src`);
    await writeMiniLm(`${dir}/src`);
    await writeLayoutFiles(`${dir}/src`, {
      pooling: { pooling_mode_mean_tokens: true, include_prompt: false },
      sb: { max_seq_length: 16, do_lower_case: false },
      st: { prompts: { query: "query: ", passage: "passage: " }, default_prompt_name: null },
    });
    const over = await loadEncoder(gpu, `${dir}/src`, {
      pooling: "cls",
      prompts: { query: "" },
    });
    deepStrictEqual(over.config.pooling, "cls");
    deepStrictEqual([over.text!.queryPrompt, over.text!.documentPrompt], ["", "passage: "]);

    const model = await loadEncoder(gpu, `${dir}/src`);
    await saveEncoder(model, `${dir}/out`, {}, {
      baseModel: "minilm-2",
      training: { loss: "margin", target: "distributed", lr: 1e-5 },
      steps: 30,
      data: "120 triples from scifact",
      validation: [{ step: 10, ndcg10: 0.5 }, { step: 20, ndcg10: 0.625 }],
      checkpointStep: 20,
      command: "deno task train --model minilm-2",
    });
    deepStrictEqual(
      await readSentenceTransformersLayout(`${dir}/out`),
      {
        ...(await readSentenceTransformersLayout(`${dir}/src`))!,
        similarity: "cosine",
        normalize: true,
        maxSeqLength: 16,
      },
    );
    const card = await Deno.readTextFile(`${dir}/out/README.md`);
    for (
      const want of [
        "library_name: sentence-transformers",
        'base_model: "minilm-2"',
        "self-distillation margin loss",
        "| target | distributed |",
        "| 20 | 0.6250 | these weights |",
        "deno task train --model minilm-2",
        "120 triples from scifact",
      ]
    ) ok(card.includes(want), `model card lacks ${want}:\n${card}`);
    const back = await loadEncoder(gpu, `${dir}/out`);
    await assertSameEncoder(gpu, model, back, "the same embedding after the round trip");
  });
});

Deno.test("a BERT tanh pooler is written as cls plus a recorded pooler, and loads back as the pooler; USE-lite refuses another pooling", async () => {
  const gpu = await getGpu();
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/src`);
    await writeMiniLm(`${dir}/src`);
    const model = await loadEncoder(gpu, `${dir}/src`, { pooling: "pooler" });
    await saveEncoder(model, `${dir}/out`, {}, { baseModel: "x", training: {}, steps: 1 });
    const saved = (await readSentenceTransformersLayout(`${dir}/out`))!;
    deepStrictEqual([saved.pooling, saved.normalize], ["pooler", true]);
    // sentence-transformers reads cls (its nearest mode) and ignores the recorded field, so the
    // card does not offer it as a sentence-transformers model (its embeddings would differ).
    const pc = JSON.parse(await Deno.readTextFile(`${dir}/out/1_Pooling/config.json`));
    deepStrictEqual([pc.pooling_mode_cls_token, pc.pooling_mode_mean_tokens], [true, false]);
    ok(!(await Deno.readTextFile(`${dir}/out/README.md`)).includes("library_name"));
    const back = await loadEncoder(gpu, `${dir}/out`);
    deepStrictEqual(back.config.pooling, "pooler");
    const a = await encodeTexts(gpu, model, ["Protein folding"]);
    const b = await encodeTexts(gpu, back, ["Protein folding"]);
    deepStrictEqual(b.data, a.data, "the same embedding after the round trip");
    for (const m of [model, back]) for (const t of m.named.values()) t.destroy();

    const layout: SentenceTransformersLayout = {
      transformerPath: "",
      pooling: "lasttoken",
      includePrompt: true,
      normalize: false,
      similarity: "dot",
      lowerCase: false,
      prompts: {},
      defaultPromptName: null,
    };
    await Deno.mkdir(`${dir}/w`);
    await writeSentenceTransformersLayout(`${dir}/w`, layout, 8);
    deepStrictEqual(await readSentenceTransformersLayout(`${dir}/w`), layout);
    await writeSentenceTransformersLayout(`${dir}/w`, { ...layout, pooling: "pooler" }, 8);
    deepStrictEqual(await readSentenceTransformersLayout(`${dir}/w`), {
      ...layout,
      pooling: "pooler",
    });
    // The recorded pooling is checked: only "pooler", and only over a cls Pooling module.
    for (
      const [pooling, recorded, pattern] of [
        [{ pooling_mode_cls_token: true }, "max", /selfmargin_pooling: "max" is not supported/],
        [
          { pooling_mode_mean_tokens: true },
          "pooler",
          /config_sentence_transformers\.json.*"pooler" pools the first token, but .*1_Pooling\/config\.json declares pooling_mode_mean_tokens/,
        ],
      ] as const
    ) {
      await writeLayoutFiles(`${dir}/w`, { pooling, st: { selfmargin_pooling: recorded } });
      await rejects(readSentenceTransformersLayout(`${dir}/w`), (e: unknown) => {
        ok(e instanceof DataFormatError && pattern.test(e.message), `${e} !~ ${pattern}`);
        return true;
      });
    }
  });
  await rejects(loadEncoder(gpu, "use-lite", { pooling: "cls" }), /USE-lite pools by the mean/);
  ok(!renderModelCard({ baseModel: "x", training: {}, steps: 1 }).includes("library_name"));
});

Deno.test("--pooling and the prompt flags are checked before anything loads", () => {
  deepStrictEqual(modelFlagOptions({}), {});
  deepStrictEqual(
    modelFlagOptions({ pooling: "max", "query-prompt": "query: ", "document-prompt": "" }),
    { pooling: "max", prompts: { query: "query: ", document: "" } },
  );
  throws(() => modelFlagOptions({ pooling: "weightedmean" }), (e: unknown) => {
    ok(e instanceof UsageError);
    ok(/--pooling must be one of cls, mean, max, lasttoken, pooler/.test(e.message));
    return true;
  });
});

Deno.test("a Hub download (HF_ENDPOINT-style mirror) fetches the sentence-transformers files and loads as the source directory", async () => {
  const gpu = await getGpu();
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await writeMiniLm(src);
    await writeLayoutFiles(src, {
      pooling: { pooling_mode_mean_tokens: true, include_prompt: false },
      sb: { max_seq_length: 16, do_lower_case: false },
      st: { prompts: { query: "query: ", passage: "passage: " }, default_prompt_name: null },
    });
    // A local mirror of the Hub's URL scheme: /<org>/<name>/resolve/main/<file>.
    const requested: string[] = [];
    const prefix = "/org/mini/resolve/main/";
    await using server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (req) => {
        const path = decodeURIComponent(new URL(req.url).pathname);
        requested.push(path);
        if (!path.startsWith(prefix) || path.includes("..")) {
          return new Response(null, { status: 404 });
        }
        try {
          return new Response(await Deno.readFile(`${src}/${path.slice(prefix.length)}`));
        } catch {
          return new Response(null, { status: 404 });
        }
      },
    );
    const endpoint = `http://127.0.0.1:${server.addr.port}/`;
    const got = await downloadHubModel("org/mini", `${dir}/cache`, endpoint);
    deepStrictEqual(got, `${dir}/cache/org--mini`);
    for (
      const f of [
        "modules.json",
        "1_Pooling/config.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
      ]
    ) {
      deepStrictEqual(await Deno.readFile(`${got}/${f}`), await Deno.readFile(`${src}/${f}`), f);
    }
    const a = await loadEncoder(gpu, src);
    const b = await loadEncoder(gpu, got);
    await assertSameEncoder(gpu, a, b, "the downloaded model encodes as its source");
    // Cached: a second call fetches nothing.
    const n = requested.length;
    deepStrictEqual(await downloadHubModel("org/mini", `${dir}/cache`, endpoint), got);
    deepStrictEqual(requested.length, n, "a cached model is not fetched again");
    // A model without weights: an error naming it, and no partial directory left behind.
    await Deno.remove(`${src}/model.safetensors`);
    await rejects(
      downloadHubModel("org/mini", `${dir}/cache2`, endpoint),
      /org\/mini has no safetensors weights/,
    );
    deepStrictEqual([...Deno.readDirSync(`${dir}/cache2`)], [], "no partial download left");
    for (const m of [a, b]) for (const t of m.named.values()) t.destroy();
  });
});
