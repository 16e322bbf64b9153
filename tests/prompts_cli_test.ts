// Prompts through the command line: `deno task encode --role query|document` applies the query
// or document prompt a sentence-transformers directory declares (config_sentence_transformers
// .json), `--query-prompt`/`--document-prompt` win over the directory, and `deno task eval
// --model` prompts queries and documents. Each is compared with the library encoding the
// explicitly prefixed texts with the prompts switched off: the same texts through the same
// kernels and batching, so the JSONL embeddings (printed as the shortest decimal that reads back
// to the same float32) are bit-identical, and eval's run has the same ranking with scores within
// 1e-6 (the TREC run file prints scores in decimal; cosines are at most 1).
//
// The model is tiny (MiniLM's tokenizer, one layer of width 32, seeded weights) and the texts
// few, so the suite stays fast.
import { deepStrictEqual, ok } from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { encodeTexts } from "../src/models/encode.ts";
import { loadEncoder } from "../src/models/load.ts";
import { writeSafetensors } from "../src/models/safetensors.ts";
import { writeSentenceTransformersLayout } from "../src/models/st_layout.ts";
import { denseRetrieve } from "../src/eval/dense.ts";
import { loadBeir } from "../src/data/beir.ts";
import { readTrecRun } from "../src/data/trec.ts";
import { randomWeights } from "./reference/bert_weights.ts";
import { assertBitEqual, runScript, tinyBeir, withTempDir } from "./helpers.ts";

const dataDir = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";
const tokenizerDir = `${dataDir}/../models/minilm-l6-tokenizer`;

const QUERY_PROMPT = "query: ";
const DOCUMENT_PROMPT = "passage: ";

/**
 * A tiny sentence-transformers BERT directory (mean pooling, normalised) whose
 * config_sentence_transformers.json declares a query and a document ("passage") prompt.
 */
async function writePromptedModel(dir: string): Promise<void> {
  const raw = JSON.parse(await Deno.readTextFile(`${tokenizerDir}/config.json`));
  Object.assign(raw, {
    hidden_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 64,
    max_position_embeddings: 64,
  });
  await Deno.mkdir(dir, { recursive: true });
  await writeSafetensors(`${dir}/model.safetensors`, randomWeights(raw, 17));
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(raw));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(`${tokenizerDir}/${f}`, `${dir}/${f}`);
  }
  await writeSentenceTransformersLayout(dir, {
    transformerPath: "",
    pooling: "mean",
    includePrompt: true,
    normalize: true,
    similarity: "cosine",
    lowerCase: false,
    prompts: { query: QUERY_PROMPT, passage: DOCUMENT_PROMPT },
    defaultPromptName: null,
  }, 32);
}

const TEXTS = ["Protein folding", "What does BRCA1 encode?", "cells"];

/** Runs a script, failing with its stderr unless it exits 0. */
async function run(name: string, ...args: string[]): Promise<string> {
  const r = await runScript(name, ...args);
  ok(r.code === 0, `${name} ${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
  return r.stdout;
}

/** The embeddings of a JSONL output of `deno task encode`, rows in order. */
async function readEmbeddings(path: string): Promise<Float32Array> {
  const rows = (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
  deepStrictEqual(rows.map((r) => r.id), TEXTS.map((_, i) => `t${i}`));
  return Float32Array.from(rows.flatMap((r) => r.embedding));
}

Deno.test("encode CLI: --role applies the directory's query or document prompt; the prompt flags win", async () => {
  const gpu = await getGpu();
  await withTempDir(async (dir) => {
    const model = `${dir}/model`;
    await writePromptedModel(model);
    await Deno.writeTextFile(
      `${dir}/in.jsonl`,
      TEXTS.map((text, i) => JSON.stringify({ id: `t${i}`, text })).join("\n") + "\n",
    );
    // The reference: the model with its prompts switched off, given the prefixed texts.
    const plain = await loadEncoder(gpu, model, { prompts: { query: "", document: "" } });
    const expected = async (prefix: string) =>
      (await encodeTexts(gpu, plain, TEXTS.map((t) => prefix + t), { batchSize: 64 })).data;
    const cases: [string, string[], string][] = [
      ["--role query", ["--role", "query"], QUERY_PROMPT],
      ["--role document", ["--role", "document"], DOCUMENT_PROMPT],
      ["--query-prompt wins", ["--role", "query", "--query-prompt", "search: "], "search: "],
      ["--document-prompt '' wins", ["--role", "document", "--document-prompt", ""], ""],
    ];
    const got = new Map<string, Float32Array>();
    for (const [what, flags, prefix] of cases) {
      const out = `${dir}/out.jsonl`;
      await run(
        "encode",
        "--model",
        model,
        "--input",
        `${dir}/in.jsonl`,
        "--out",
        out,
        "--quiet",
        ...flags,
      );
      const emb = await readEmbeddings(out);
      assertBitEqual(emb, await expected(prefix), what);
      got.set(what, emb);
    }
    // The prompts change the embeddings (else the comparisons above would prove nothing).
    const differ = (a: string, b: string) => got.get(a)!.some((x, i) => x !== got.get(b)![i]);
    const none = "--document-prompt '' wins";
    ok(differ(none, "--role query") && differ(none, "--role document"));
    ok(differ("--role query", "--role document") && differ("--role query", "--query-prompt wins"));
    for (const t of plain.named.values()) t.destroy();
  });
});

Deno.test("eval CLI: --model with a prompted directory prompts queries and documents", async () => {
  const gpu = await getGpu();
  await withTempDir(async (dir) => {
    const model = `${dir}/model`;
    await writePromptedModel(model);
    const data = await tinyBeir(`${dir}/beir`);
    const out = `${dir}/run.trec`;
    await run("eval", "--model", model, "--data", data, "--k", "8", "--no-cache", "--out", out);
    const got = (await readTrecRun(out)).run;

    // The same retrieval by the library, the prompts written into the texts by hand.
    const { corpus, queries } = await loadBeir(data, "test");
    const plain = await loadEncoder(gpu, model, { prompts: { query: "", document: "" } });
    const prefixed = (q: string, d: string) => ({
      corpus: corpus.map((doc) => ({
        ...doc,
        title: "",
        text: d + (doc.title ? `${doc.title} ${doc.text}` : doc.text),
      })),
      queries: new Map([...queries].map(([id, text]) => [id, q + text])),
      k: 8,
      cacheDir: null,
    });
    const want = await denseRetrieve(gpu, plain, prefixed(QUERY_PROMPT, DOCUMENT_PROMPT));
    const unprompted = await denseRetrieve(gpu, plain, prefixed("", ""));
    deepStrictEqual([...got.keys()].sort(), [...want.keys()].sort());
    let differs = false;
    for (const [qid, w] of want) {
      const g = got.get(qid)!;
      deepStrictEqual(g.docIds, w.docIds, `${qid}: the ranking of the prompted texts`);
      Array.from(g.scores).forEach((s, i) => {
        ok(Math.abs(s - w.scores[i]) <= 1e-6, `${qid}, rank ${i + 1}: ${s} vs ${w.scores[i]}`);
      });
      const u = unprompted.get(qid)!;
      differs ||= u.docIds.some((d, i) => d !== w.docIds[i]) ||
        Array.from(u.scores).some((s, i) => Math.abs(s - w.scores[i]) > 1e-4);
    }
    ok(differs, "the prompts change the run (else the comparison would prove nothing)");
    for (const t of plain.named.values()) t.destroy();
  });
});
