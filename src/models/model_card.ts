/**
 * A model card (`README.md`) in the sentence-transformers style for a fine-tuned checkpoint:
 * the base model, the loss and its options, the data, the steps, the validation curve, test
 * measures when they are known, and the command that trained it, with the YAML front matter
 * the Hugging Face Hub reads (`library_name`, `base_model`, `pipeline_tag`, `tags`).
 *
 * @example
 * ```ts
 * await writeModelCard("runs/x/best", {
 *   baseModel: "sentence-transformers/all-MiniLM-L6-v2",
 *   training: { loss: "margin", target: "distributed", lr: 1e-5, batchSize: 32 },
 *   steps: 400,
 *   validation: [{ step: 100, ndcg10: 0.61 }],
 * });
 * ```
 *
 * @module
 */
import { writeTextFileAtomic } from "../util/fs.ts";

/** What a model card says. */
export interface ModelCardInfo {
  /** The model training started from (a name, a path, or `use-lite`). */
  baseModel: string;
  /** The training options (loss, its options, lengths, learning rate...). */
  training: Record<string, unknown>;
  /** Optimizer steps taken. */
  steps: number;
  /** What the model was trained on (e.g. `1740 triples from SciFact train`). */
  data?: string;
  /** Validation nDCG@10 by step. */
  validation?: { step: number; ndcg10: number }[];
  /** The step whose weights these are, when it is not the last (the best validation). */
  checkpointStep?: number;
  /** Test measures (trec_eval names) and what they were measured on. */
  test?: { dataset: string; measures: Record<string, number> };
  /** The command that trained it. */
  command?: string;
  /** Whether the directory holds the sentence-transformers layout (modules.json...). */
  sentenceTransformers?: boolean;
}

const LOSS_NAMES: Record<string, string> = {
  margin: "self-distillation margin loss (Gienapp et al., ICTIR 2025)",
  "margin-mse": "Margin-MSE teacher distillation (Hofstätter et al., 2020)",
  infonce: "InfoNCE with in-batch negatives",
};

function cell(v: unknown): string {
  return (typeof v === "string" ? v : JSON.stringify(v)).replaceAll("|", "\\|");
}

/** The card's Markdown. */
export function renderModelCard(info: ModelCardInfo): string {
  const loss = String(info.training.loss ?? "unknown");
  const front = [
    "---",
    ...(info.sentenceTransformers ? ["library_name: sentence-transformers"] : []),
    `base_model: ${JSON.stringify(info.baseModel)}`,
    "pipeline_tag: sentence-similarity",
    "tags:",
    "- selfmargin",
    "- sentence-transformers",
    "- feature-extraction",
    `- loss:${loss}`,
    "---",
  ];
  const options = Object.entries(info.training)
    .map(([k, v]) => `| ${k} | ${cell(v)} |`);
  const curve = (info.validation ?? []).map((v) =>
    `| ${v.step} | ${v.ndcg10.toFixed(4)} |${
      v.step === info.checkpointStep ? " these weights |" : ""
    }`
  );
  const test = info.test
    ? Object.entries(info.test.measures).map(([k, v]) => `| ${k} | ${v.toFixed(4)} |`)
    : [];
  const lines = [
    ...front,
    "",
    `# A retrieval encoder fine-tuned from ${info.baseModel} with selfmargin`,
    "",
    `Fine-tuned with the ${LOSS_NAMES[loss] ?? loss} for ${info.steps} steps` +
    (info.checkpointStep !== undefined
      ? `; these are the weights of step ${info.checkpointStep}, the best validation.`
      : "."),
    ...(info.data ? ["", `Data: ${info.data}.`] : []),
    "",
    "## Usage",
    "",
    ...(info.sentenceTransformers
      ? [
        "```python",
        "from sentence_transformers import SentenceTransformer",
        'model = SentenceTransformer("path/to/this/directory")',
        'embeddings = model.encode(["a query", "a document"])',
        "```",
        "",
      ]
      : []),
    "```sh",
    "deno task encode --model path/to/this/directory --input texts.jsonl --out embeddings.npy",
    "```",
    "",
    "## Training",
    "",
    "| option | value |",
    "| --- | --- |",
    ...options,
    ...(info.command ? ["", "Command:", "", "```sh", info.command, "```"] : []),
    "",
    "## Validation",
    "",
    ...(curve.length
      ? ["| step | nDCG@10 |", "| --- | --- |", ...curve]
      : ["No validation was run."]),
    "",
    "## Test",
    "",
    ...(test.length
      ? [`On ${info.test!.dataset}:`, "", "| measure | value |", "| --- | --- |", ...test]
      : [
        "Not evaluated by the run that saved it: `deno task eval --model path/to/this/directory`.",
      ]),
    "",
  ];
  return lines.join("\n");
}

/** Writes `dir/README.md` (atomically). */
export async function writeModelCard(dir: string, info: ModelCardInfo): Promise<void> {
  await writeTextFileAtomic(`${dir}/README.md`, renderModelCard(info));
}
