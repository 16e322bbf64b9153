/**
 * `deno task encode`: embeds the texts of a JSONL file with an encoder on WebGPU and writes
 * JSON Lines (`{"id", "embedding": [..]}`) or a NumPy `.npy` array with the ids beside it.
 * `--help` lists everything.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { EmbeddingsWriter, idsPathFor } from "../src/cli/embeddings_out.ts";
import { formatCount, formatDuration, formatRate, ProgressBar } from "../src/cli/progress.ts";
import { readTextsJsonl } from "../src/cli/texts_jsonl.ts";
import { DataFormatError } from "../src/data/types.ts";
import { getGpu } from "../src/gpu/device.ts";
import { encodeTexts } from "../src/models/encode.ts";
import { loadEncoder } from "../src/models/load.ts";

const HELP = `deno task encode — embed texts with an encoder on WebGPU

  deno task encode --model use-lite|DIR|HUB_NAME --input IN.jsonl --out OUT.jsonl|OUT.npy
                   [--batch-size N] [--max-length N] [--field text] [--no-title] [--quiet]

Input: JSON Lines, one object per line: {"id": "...", "text": "..."}. BEIR files work as they
are: "_id" is accepted for "id", and when a record has a "title" the text encoded is
(title + " " + text).trim(), as BEIR's dense retrieval builds it. Blank lines are skipped;
malformed lines stop the run with FILE:LINE and what is wrong. Ids must be unique.

Output, by the extension of --out:
  .npy     float32 [n, dim] NumPy array (format 1.0, little-endian, C order), rows in input
           order, plus the ids in order in OUT.ids.json (a JSON array; see --ids)
  other    JSON Lines {"id": "...", "embedding": [...]}, in input order; each float32 printed
           in the shortest decimal that reads back to the same float32

Options:
  --model NAME       use-lite (the embedded default, 512-d), a model directory (Hugging Face
                     BERT/DistilBERT/MPNet or a selfmargin checkpoint), or a Hub name
                     (org/model; downloaded into the cache when online). Default use-lite
  --input FILE       the JSONL texts
  --out FILE         where to write (.npy or JSON Lines)
  --ids FILE         with .npy: where the ids go (.json array, or .txt one per line);
                     default OUT.ids.json
  --batch-size N     texts per GPU batch (default 64); texts are sorted by length and padded
                     per batch, so padding stays small
  --max-tokens N     padded tokens per batch at most (default 16384; bounds GPU memory)
  --max-length N     longest input in tokens, at most the model's (USE-lite: 128); longer
                     texts are truncated and counted in the summary
  --field NAME       the field holding the text (default text)
  --no-title         do not join a "title" field before the text
  --quiet            no progress bar and no summary
  -h, --help         this text

At the end (stderr): texts, texts/s and tokens/s of the encoding (model loading excluded),
and how many texts were truncated.`;

function fail(message: string, code = 2): never {
  console.error(`encode: ${message}`);
  Deno.exit(code);
}

function positiveInt(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) fail(`${name} expects a positive integer, got '${value}'`);
  return n;
}

/** Texts encoded per call of the encoder, so memory stays bounded for big inputs. */
const CHUNK = 16384;

async function main(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        model: { type: "string", default: "use-lite" },
        input: { type: "string" },
        out: { type: "string" },
        ids: { type: "string" },
        "batch-size": { type: "string" },
        "max-tokens": { type: "string" },
        "max-length": { type: "string" },
        field: { type: "string", default: "text" },
        "no-title": { type: "boolean", default: false },
        quiet: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    fail(`${(e as Error).message}\n(see --help)`);
  }
  const v = parsed.values;
  if (v.help) {
    console.log(HELP);
    return;
  }
  if (!v.input) fail("--input FILE is required (see --help)");
  if (!v.out) fail("--out FILE is required (see --help)");
  const batchSize = positiveInt(v["batch-size"], "--batch-size") ?? 64;
  const maxTokens = positiveInt(v["max-tokens"], "--max-tokens") ?? 16384;
  const maxLength = positiveInt(v["max-length"], "--max-length");
  const quiet = v.quiet;
  const say = (line: string) => {
    if (!quiet) console.error(line);
  };

  let records;
  try {
    records = await readTextsJsonl(v.input, { field: v.field, title: !v["no-title"] });
  } catch (e) {
    if (e instanceof DataFormatError) fail(e.message);
    throw e;
  }
  const t0 = performance.now();
  const gpu = await getGpu();
  let model;
  try {
    model = await loadEncoder(gpu, v.model, { maxLength });
  } catch (e) {
    fail(`cannot load model '${v.model}': ${(e as Error).message}`);
  }
  const dim = model.config.hidden;
  const length = Math.min(maxLength ?? model.maxLength, model.maxLength);
  say(
    `encode: ${records.length} texts from ${v.input}; model ${v.model} (${dim}-d, max ` +
      `${length} tokens) on ${gpu.adapterName}, loaded in ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s`,
  );

  const out = await EmbeddingsWriter.open(v.out, records.length, dim, {
    idsPath: v.ids ?? (/\.npy$/i.test(v.out) ? idsPathFor(v.out) : undefined),
  });
  const bar = new ProgressBar("encode", { total: records.length, unit: "texts", silent: quiet });
  const start = performance.now();
  let tokens = 0, truncated = 0;
  for (let c = 0; c < records.length; c += CHUNK) {
    const chunk = records.slice(c, c + CHUNK);
    const emb = await encodeTexts(gpu, model, chunk.map((r) => r.text), {
      batchSize,
      maxTokens,
      maxLength: length,
      onProgress: (done, tok) => bar.update(c + done, `${formatCount(tokens + tok)} tokens`),
    });
    tokens += emb.tokens;
    truncated += emb.truncated;
    await out.write(chunk.map((r) => r.id), emb.data);
  }
  const seconds = (performance.now() - start) / 1000;
  bar.finish(`${formatCount(tokens)} tokens`);
  const files = await out.close();
  say(
    `encode: ${records.length} texts in ${formatDuration(seconds)} (${seconds.toFixed(2)} s): ` +
      `${formatRate(records.length / seconds, "texts")}, ${
        formatRate(tokens / seconds, "tokens")
      }` +
      `; ${truncated} of ${records.length} texts truncated at ${length} tokens; wrote ` +
      files.join(", "),
  );
}

if (import.meta.main) {
  await main(Deno.args);
}
