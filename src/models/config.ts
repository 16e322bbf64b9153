/**
 * The encoder configuration: one description that covers the BERT family (BERT, DistilBERT,
 * MPNet, RoBERTa, XLM-RoBERTa) and Universal Sentence Encoder Lite, read from a Hugging Face `config.json` or built in.
 *
 * @module
 */
import { DataFormatError } from "../data/types.ts";

/**
 * Model families the encoder can express (`roberta` covers RoBERTa and XLM-RoBERTa: BERT's
 * layers and weight names, positions counted from `pad_token_id + 1`, one token type).
 */
export type EncoderFamily = "bert" | "distilbert" | "mpnet" | "roberta" | "use-lite";

/**
 * How token states become one embedding: the first token (`cls`), BERT's tanh pooler over it
 * (`pooler`), or the mean, the max or the last of the kept tokens.
 */
export type Pooling = "cls" | "mean" | "pooler" | "max" | "lasttoken";

/** Everything the config-driven encoder needs to know about a model's architecture. */
export interface EncoderConfig {
  /** The family, which fixes the weight names. */
  family: EncoderFamily;
  /** Vocabulary size. */
  vocabSize: number;
  /** Width of the token states. */
  hidden: number;
  /** Number of transformer layers. */
  layers: number;
  /** Number of attention heads. */
  heads: number;
  /** Width of the feed-forward inner layer. */
  intermediate: number;
  /** Feed-forward activation. */
  activation: "gelu" | "relu";
  /** LayerNorm after each residual (BERT: "post") or before each sub-layer ("pre"). */
  norm: "post" | "pre";
  /** LayerNorm epsilon. */
  layerNormEps: number;
  /** Factor applied to token embeddings before positions are added (USE-lite: 2). */
  embeddingScale: number;
  /** Learned absolute positions (BERT) or a fixed sinusoidal signal. */
  positions: "learned" | "sinusoidal";
  /** Maximum number of positions (the longest input the model takes). */
  maxPositions: number;
  /**
   * Added to a token's position index before the position lookup (MPNet/RoBERTa count positions
   * from padding_idx + 1; BERT from 0).
   */
  positionOffset: number;
  /** Number of token types (segment embeddings); 0 for none. */
  typeVocabSize: number;
  /** MPNet's relative-position attention bias: number of buckets (0 for none). */
  relativeAttentionBuckets: number;
  /** MPNet's maximum relative distance for the buckets. */
  relativeAttentionMaxDistance: number;
  /** Pooling of the final token states. */
  pooling: Pooling;
  /** Whether the pooled embedding is L2-normalised. */
  normalize: boolean;
  /** Padding token id. */
  padId: number;
}

/**
 * Raised for a config.json this project cannot map; names the file and the field. A
 * {@link DataFormatError} (line 0), so scripts report it in one line as bad input.
 */
export class ConfigError extends DataFormatError {
  /**
   * Creates an instance.
   * @param file the offending config
   * @param detail what is wrong
   */
  constructor(file: string, detail: string) {
    super(file, 0, detail);
    this.name = "ConfigError";
  }
}

/** The first of `keys` that the config sets (not undefined/null), else the first key. */
function present(cfg: Record<string, unknown>, keys: readonly string[]): string {
  return keys.find((k) => cfg[k] !== undefined && cfg[k] !== null) ?? keys[0];
}

function show(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

/**
 * An integer field (the first of `keys` that is set) of at least `min`; `fallback` when none is
 * set, an error naming the field when none is set and there is no fallback, or when the value is
 * not an integer >= min.
 */
function int(
  cfg: Record<string, unknown>,
  file: string,
  keys: string | readonly string[],
  min: number,
  fallback?: number,
): number {
  const names = typeof keys === "string" ? [keys] : keys;
  const key = present(cfg, names);
  const v = cfg[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ConfigError(file, `field ${names.join(" / ")} is missing (an integer >= ${min})`);
  }
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
    throw new ConfigError(file, `field ${key} is ${show(v)}; expected an integer >= ${min}`);
  }
  return v;
}

/** A positive finite number field, or `fallback` when it is not set. */
function positive(
  cfg: Record<string, unknown>,
  file: string,
  key: string,
  fallback: number,
): number {
  const v = cfg[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw new ConfigError(file, `field ${key} is ${show(v)}; expected a positive number`);
  }
  return v;
}

/** The architecture sizes shared by the families, checked against each other. */
function sizes(
  cfg: Record<string, unknown>,
  file: string,
  keys: { hidden: string[]; layers: string[]; heads: string[]; intermediate: string[] },
) {
  const vocabSize = int(cfg, file, "vocab_size", 1);
  const hidden = int(cfg, file, keys.hidden, 1);
  const layers = int(cfg, file, keys.layers, 1);
  const heads = int(cfg, file, keys.heads, 1);
  const intermediate = int(cfg, file, keys.intermediate, 1);
  if (hidden % heads !== 0) {
    throw new ConfigError(
      file,
      `field ${present(cfg, keys.heads)} (${heads}) does not divide ${
        present(cfg, keys.hidden)
      } (${hidden}): every attention head needs the same width`,
    );
  }
  const maxPositionEmbeddings = int(cfg, file, "max_position_embeddings", 1);
  return { vocabSize, hidden, layers, heads, intermediate, maxPositionEmbeddings };
}

/**
 * The sizes of a config with BERT's field names (BERT, MPNet, RoBERTa); with `absolute`, only
 * absolute position embeddings are accepted.
 */
function bertSizes(cfg: Record<string, unknown>, file: string, absolute: boolean) {
  if (absolute && (cfg.position_embedding_type ?? "absolute") !== "absolute") {
    throw new ConfigError(
      file,
      `field position_embedding_type ${show(cfg.position_embedding_type)} is not supported ` +
        "(absolute)",
    );
  }
  return sizes(cfg, file, {
    hidden: ["hidden_size"],
    layers: ["num_hidden_layers"],
    heads: ["num_attention_heads"],
    intermediate: ["intermediate_size"],
  });
}

/** The pad token id: an integer in [0, vocab_size). */
function padId(cfg: Record<string, unknown>, file: string, vocabSize: number, fallback: number) {
  const id = int(cfg, file, "pad_token_id", 0, fallback);
  if (id >= vocabSize) {
    throw new ConfigError(
      file,
      `field pad_token_id (${id}) is not below vocab_size (${vocabSize})`,
    );
  }
  return id;
}

const ACTIVATIONS = ["gelu", "relu"] as const;

/**
 * Maps a Hugging Face `config.json` (BERT, DistilBERT, MPNet, RoBERTa, XLM-RoBERTa) onto an
 * {@link EncoderConfig}.
 * `pooling` defaults to the family's convention: BERT's pooler where the checkpoint has one,
 * CLS otherwise. Every field is checked: sizes must be positive integers, the heads must divide
 * the hidden width, the activation must be one the encoder has; a bad field is a
 * {@link ConfigError} naming the file and the field.
 */
export function configFromHf(
  cfg: Record<string, unknown>,
  file = "config.json",
  opts: { pooling?: Pooling; hasPooler?: boolean; normalize?: boolean } = {},
): EncoderConfig {
  if (typeof cfg !== "object" || cfg === null || Array.isArray(cfg)) {
    throw new ConfigError(file, `expected a JSON object, found ${JSON.stringify(cfg)}`);
  }
  if (cfg.model_type !== undefined && typeof cfg.model_type !== "string") {
    throw new ConfigError(file, `field model_type is ${show(cfg.model_type)}; expected a string`);
  }
  const type = String(cfg.model_type ?? "");
  const actKey = present(cfg, ["hidden_act", "activation"]);
  const act = cfg[actKey] ?? "gelu";
  if (!ACTIVATIONS.includes(act as typeof ACTIVATIONS[number])) {
    throw new ConfigError(
      file,
      `field ${actKey} is ${show(act)}, which is not supported (${ACTIVATIONS.join(", ")})`,
    );
  }
  const common = {
    normalize: opts.normalize ?? false,
    activation: act as "gelu" | "relu",
    embeddingScale: 1,
  };
  switch (type) {
    case "bert": {
      const z = bertSizes(cfg, file, true);
      return {
        ...common,
        family: "bert",
        vocabSize: z.vocabSize,
        hidden: z.hidden,
        layers: z.layers,
        heads: z.heads,
        intermediate: z.intermediate,
        norm: "post",
        layerNormEps: positive(cfg, file, "layer_norm_eps", 1e-12),
        positions: "learned",
        maxPositions: z.maxPositionEmbeddings,
        positionOffset: 0,
        // Type 0 is looked up for every token, so the table needs a row.
        typeVocabSize: int(cfg, file, "type_vocab_size", 1, 2),
        relativeAttentionBuckets: 0,
        relativeAttentionMaxDistance: 0,
        pooling: opts.pooling ?? (opts.hasPooler === false ? "cls" : "pooler"),
        padId: padId(cfg, file, z.vocabSize, 0),
      };
    }
    case "distilbert": {
      if (cfg.sinusoidal_pos_embds) {
        throw new ConfigError(
          file,
          "field sinusoidal_pos_embds: sinusoidal DistilBERT checkpoints are not supported",
        );
      }
      const z = sizes(cfg, file, {
        hidden: ["dim", "hidden_size"],
        layers: ["n_layers", "num_hidden_layers"],
        heads: ["n_heads", "num_attention_heads"],
        intermediate: ["hidden_dim", "intermediate_size"],
      });
      return {
        ...common,
        family: "distilbert",
        vocabSize: z.vocabSize,
        hidden: z.hidden,
        layers: z.layers,
        heads: z.heads,
        intermediate: z.intermediate,
        norm: "post",
        layerNormEps: 1e-12,
        positions: "learned",
        maxPositions: z.maxPositionEmbeddings,
        positionOffset: 0,
        typeVocabSize: 0,
        relativeAttentionBuckets: 0,
        relativeAttentionMaxDistance: 0,
        pooling: opts.pooling ?? "cls",
        padId: padId(cfg, file, z.vocabSize, 0),
      };
    }
    case "mpnet":
    case "roberta":
    case "xlm-roberta": {
      // MPNet and RoBERTa (create_position_ids_from_input_ids) count positions from
      // padding_idx + 1; RoBERTa has BERT's layers and one token type, MPNet a relative bias.
      const mpnet = type === "mpnet";
      const z = bertSizes(cfg, file, !mpnet);
      const pad = padId(cfg, file, z.vocabSize, 1);
      const maxPositions = z.maxPositionEmbeddings - pad - 1;
      if (maxPositions < 1) {
        throw new ConfigError(
          file,
          `field max_position_embeddings (${z.maxPositionEmbeddings}) leaves no position for ` +
            `tokens: ${mpnet ? "MPNet" : type} counts positions from pad_token_id + 1 (${pad + 1})`,
        );
      }
      return {
        ...common,
        family: mpnet ? "mpnet" : "roberta",
        vocabSize: z.vocabSize,
        hidden: z.hidden,
        layers: z.layers,
        heads: z.heads,
        intermediate: z.intermediate,
        norm: "post",
        layerNormEps: positive(cfg, file, "layer_norm_eps", 1e-5),
        positions: "learned",
        maxPositions,
        positionOffset: pad + 1,
        typeVocabSize: mpnet ? 0 : int(cfg, file, "type_vocab_size", 1, 1),
        relativeAttentionBuckets: mpnet
          ? int(cfg, file, "relative_attention_num_buckets", 4, 32)
          : 0,
        relativeAttentionMaxDistance: mpnet ? 128 : 0,
        // Sentence-transformers layouts say how to pool; without one, the first token.
        pooling: opts.pooling ?? "cls",
        padId: pad,
      };
    }
    default:
      throw new ConfigError(
        file,
        `field model_type ${
          show(type)
        } is not supported (bert, distilbert, mpnet, roberta, xlm-roberta)`,
      );
  }
}

/** USE-lite's architecture (docs/use_lite_graph.md). */
export const USE_LITE_CONFIG: Readonly<EncoderConfig> = Object.freeze({
  family: "use-lite",
  vocabSize: 8002,
  hidden: 512,
  layers: 2,
  heads: 4,
  intermediate: 1536,
  activation: "relu",
  norm: "pre",
  layerNormEps: 1e-6,
  embeddingScale: 2,
  positions: "sinusoidal",
  maxPositions: 128, // the graph clips inputs to 128 tokens (ClipToMaxLength)
  positionOffset: 0,
  typeVocabSize: 0,
  relativeAttentionBuckets: 0,
  relativeAttentionMaxDistance: 0,
  pooling: "mean",
  normalize: true,
  padId: 0,
});
