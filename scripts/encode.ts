/**
 * `deno task encode`: embeds the texts of a JSONL file with an encoder on WebGPU and writes
 * JSON Lines (`{"id", "embedding": [..]}`) or a NumPy `.npy` array with the ids beside it.
 * `--help` lists everything.
 *
 * @module
 */
import {
  checkInputFile,
  checkModelSpec,
  checkOutputFile,
  knownErrorExitCode,
  loadModelForCli,
  MODEL_FLAGS,
  MODEL_FLAGS_HELP,
  modelFlagOptions,
  parseCliArgs,
  positiveIntFlag,
  runCli,
  samePath,
  UsageError,
} from "../src/cli/cli_checks.ts";
import { EmbeddingsWriter, idsPathFor } from "../src/cli/embeddings_out.ts";
import { formatCount, formatDuration, formatRate, ProgressBar } from "../src/cli/progress.ts";
import { readTextsJsonl } from "../src/cli/texts_jsonl.ts";
import { getGpu } from "../src/gpu/device.ts";
import { encodeTexts } from "../src/models/encode.ts";
import type { TextRole } from "../src/models/st_layout.ts";

const HELP = `deno task encode — embed texts with an encoder on WebGPU

  deno task encode --model use-lite|DIR|HUB_NAME --input IN.jsonl --out OUT.jsonl|OUT.npy
                   [--role query|document] [--batch-size N] [--max-length N] [--field text]
                   [--no-title] [--pooling MODE] [--query-prompt S] [--document-prompt S]
                   [--quiet]

Input: JSON Lines, one object per line: {"id": "...", "text": "..."}. BEIR files work as they
are: "_id" is accepted for "id", and when a record has a "title" the text encoded is
(title + " " + text).trim(), as BEIR's dense retrieval builds it. Blank lines are skipped;
malformed lines stop the run with FILE:LINE and what is wrong. Ids must be unique.

Output, by the extension of --out:
  .npy     float32 [n, dim] NumPy array (format 1.0, little-endian, C order), rows in input
           order, plus the ids in order in OUT.ids.json (a JSON array; see --ids)
  other    JSON Lines {"id": "...", "embedding": [...]}, in input order; each float32 printed
           in the shortest decimal that reads back to the same float32
The output is written to a temporary file beside it and renamed into place at the end: on any
error (a NaN or infinite embedding is one, in both formats) or Ctrl-C, an existing OUT (and its
ids file) keeps its old content and no temporary file is left behind.

Options:
  --model NAME       use-lite (the embedded default, 512-d), a model directory (Hugging Face
                     BERT, DistilBERT, MPNet, RoBERTa or XLM-RoBERTa, a sentence-transformers
                     directory, or a selfmargin checkpoint), or a Hub name (org/model;
                     downloaded into the cache when online). Default use-lite. A
                     sentence-transformers directory is encoded as it declares: pooling,
                     normalisation, max_seq_length, lower-casing
  --role R           query or document: the texts get the model's prompt for that role
                     (e5's "query: ", bge's query instruction...); default none
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
${MODEL_FLAGS_HELP}
  --quiet            no progress bar and no summary
  -h, --help         this text

At the end (stderr): texts, texts/s and tokens/s of the encoding (model loading excluded),
and how many texts were truncated.

Every flag is checked before anything is loaded. Exit status: 0 done, 2 bad flags or input
(one line on stderr, naming the file and line or the flag), 1 failure while encoding (no GPU,
a non-finite embedding, a write error), 130 interrupted.`;

/** Texts encoded per call of the encoder, so memory stays bounded for big inputs. */
const CHUNK = 16384;

/** The exit codes of a process ended by SIGINT (Ctrl-C) and SIGTERM, as shells report them. */
const SIGNALS = { SIGINT: 130, SIGTERM: 143 } as const;

/**
 * Ctrl-C and SIGTERM: the temporary output files are removed and the process exits (130, 143),
 * leaving --out as it was. While temporary files are being created or renamed into place
 * (inside {@link Interrupts.guard}), a signal waits for that step to finish, so that no file is
 * left behind and no rename is cut short.
 */
class Interrupts {
  /** The writer whose temporary files a signal removes. */
  writer: EmbeddingsWriter | undefined;
  readonly #out: string;
  #depth = 0;
  #pending = 0;
  readonly #handlers: [Deno.Signal, () => void][] = [];

  constructor(out: string) {
    this.#out = out;
    for (const [signal, code] of Object.entries(SIGNALS)) {
      if (signal !== "SIGINT" && Deno.build.os === "windows") continue;
      const handler = () => {
        this.#pending = code;
        if (this.#depth === 0) this.#stop();
      };
      Deno.addSignalListener(signal as Deno.Signal, handler);
      this.#handlers.push([signal as Deno.Signal, handler]);
    }
  }

  /** Runs `step` with signals held back until it has finished. */
  async guard<T>(step: () => Promise<T>): Promise<T> {
    this.#depth++;
    try {
      return await step();
    } finally {
      this.#depth--;
      if (this.#pending && this.#depth === 0) this.#stop();
    }
  }

  #stop(): never {
    if (this.writer === undefined || this.writer.abortSync()) {
      console.error(`\nencode: interrupted; nothing was written (${this.#out} is as it was)`);
    } else {
      console.error(`\nencode: interrupted once ${this.#out} was in place`);
    }
    Deno.exit(this.#pending);
  }

  /** Stops listening. */
  dispose(): void {
    for (const [signal, handler] of this.#handlers) Deno.removeSignalListener(signal, handler);
  }
}

async function main(argv: string[]): Promise<void> {
  const { values: v } = parseCliArgs({
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
      role: { type: "string" },
      ...MODEL_FLAGS,
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (v.help) {
    console.log(HELP);
    return;
  }

  if (!v.input) throw new UsageError("--input FILE is required (see --help)");
  if (!v.out) throw new UsageError("--out FILE is required (see --help)");
  const interrupts = new Interrupts(v.out);
  try {
    await run({ ...v, input: v.input, out: v.out }, interrupts);
  } finally {
    interrupts.dispose();
  }
}

/** The flags of the command line, as parsed. */
interface Flags {
  model: string;
  input: string;
  out: string;
  ids?: string;
  "batch-size"?: string;
  "max-tokens"?: string;
  "max-length"?: string;
  field: string;
  "no-title": boolean;
  quiet: boolean;
  role?: string;
  pooling?: string;
  "query-prompt"?: string;
  "document-prompt"?: string;
}

async function run(v: Flags, interrupts: Interrupts): Promise<void> {
  // Every flag is checked before the texts and the model are loaded.
  const batchSize = positiveIntFlag("--batch-size", v["batch-size"]) ?? 64;
  const maxTokens = positiveIntFlag("--max-tokens", v["max-tokens"]) ?? 16384;
  const maxLength = positiveIntFlag("--max-length", v["max-length"]);
  if (v.field === "") throw new UsageError("--field needs a field name");
  if (v.role !== undefined && v.role !== "query" && v.role !== "document") {
    throw new UsageError(`--role must be query or document (got ${v.role || "an empty value"})`);
  }
  const role = v.role as TextRole | undefined;
  const modelOptions = modelFlagOptions(v);
  await checkModelSpec("--model", v.model);
  await checkInputFile("--input", v.input);
  const npy = /\.npy$/i.test(v.out);
  if (v.ids !== undefined && !npy) {
    throw new UsageError(`--ids applies to .npy output only (${v.out} is written as JSON Lines)`);
  }
  if (v.ids !== undefined && !/\.(json|txt)$/i.test(v.ids)) {
    throw new UsageError(
      `--ids must end in .json (a JSON array) or .txt (one id per line) (got ${v.ids})`,
    );
  }
  const idsGiven = npy ? (v.ids ?? idsPathFor(v.out)) : undefined;
  if (await samePath(v.out, v.input)) {
    throw new UsageError(`--out ${v.out} is the --input file; it would be overwritten`);
  }
  if (idsGiven !== undefined) {
    if (await samePath(idsGiven, v.input)) {
      throw new UsageError(`the ids file ${idsGiven} is the --input file; it would be overwritten`);
    }
    if (await samePath(idsGiven, v.out)) {
      throw new UsageError(`--ids ${idsGiven} is the --out file`);
    }
  }
  // (These create and remove a file in the output directories: guarded against signals.)
  const outPath = await interrupts.guard(() => checkOutputFile("--out", v.out));
  const idsPath = idsGiven === undefined
    ? undefined
    : await interrupts.guard(() =>
      checkOutputFile(v.ids === undefined ? "ids file" : "--ids", idsGiven)
    );
  const quiet = v.quiet;
  const say = (line: string) => {
    if (!quiet) console.error(line);
  };

  const records = await readTextsJsonl(v.input, { field: v.field, title: !v["no-title"] });
  const t0 = performance.now();
  const gpu = await getGpu();
  const model = await loadModelForCli(gpu, v.model, { maxLength, ...modelOptions });
  const dim = model.config.hidden;
  if (role === undefined && (model.text?.queryPrompt || model.text?.documentPrompt)) {
    say(
      `encode: ${v.model} declares prompts (query ${JSON.stringify(model.text.queryPrompt)}, ` +
        `document ${JSON.stringify(model.text.documentPrompt)}); without --role none is applied`,
    );
  }
  const length = Math.min(maxLength ?? model.maxLength, model.maxLength);
  say(
    `encode: ${records.length} texts from ${v.input}; model ${v.model} (${dim}-d, max ` +
      `${length} tokens) on ${gpu.adapterName}, loaded in ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s`,
  );

  const out = await interrupts.guard(async () => {
    interrupts.writer = await EmbeddingsWriter.open(outPath, records.length, dim, { idsPath });
    return interrupts.writer;
  });
  let files: string[];
  const bar = new ProgressBar("encode", { total: records.length, unit: "texts", silent: quiet });
  const start = performance.now();
  let tokens = 0, truncated = 0;
  try {
    for (let c = 0; c < records.length; c += CHUNK) {
      const chunk = records.slice(c, c + CHUNK);
      const emb = await encodeTexts(gpu, model, chunk.map((r) => r.text), {
        batchSize,
        maxTokens,
        maxLength: length,
        role,
        onProgress: (done, tok) => bar.update(c + done, `${formatCount(tokens + tok)} tokens`),
      });
      tokens += emb.tokens;
      truncated += emb.truncated;
      await out.write(chunk.map((r) => r.id), emb.data);
    }
    files = await interrupts.guard(() => out.close());
  } catch (e) {
    bar.finish(); // ends the bar's line, so that the error gets its own
    if (out.abortSync() && e instanceof Error && knownErrorExitCode(e) !== undefined) {
      e.message += `; nothing was written (${v.out} is as it was)`;
    }
    throw e;
  }
  const seconds = (performance.now() - start) / 1000;
  bar.finish(`${formatCount(tokens)} tokens`);
  say(
    `encode: ${records.length} texts in ${formatDuration(seconds)} (${seconds.toFixed(2)} s): ` +
      `${formatRate(records.length / seconds, "texts")}, ${
        formatRate(tokens / seconds, "tokens")
      }` +
      `; ${truncated} of ${records.length} texts truncated at ${length} tokens; wrote ` +
      files.join(", "),
  );
}

if (import.meta.main) await runCli("encode", () => main(Deno.args));
