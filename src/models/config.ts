/**
 * The encoder configuration: one description that covers the BERT family (BERT, DistilBERT,
 * MPNet) and Universal Sentence Encoder Lite, read from a Hugging Face `config.json` or built in.
 *
 * @module
 */

/** Model families the encoder can express. */
export type EncoderFamily = "bert" | "distilbert" | "mpnet" | "use-lite";

/** How token states become one embedding. */
export type Pooling = "cls" | "mean" | "pooler";

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

/** Raised for a config.json this project cannot map; names the file and the field. */
export class ConfigError extends Error {
  /**
   * Creates an instance.
   * @param file the offending config
   * @param detail what is wrong
   */
  constructor(readonly file: string, detail: string) {
    super(`${file}: ${detail}`);
    this.name = "ConfigError";
  }
}

function num(cfg: Record<string, unknown>, file: string, ...keys: string[]): number {
  for (const key of keys) {
    const v = cfg[key];
    if (typeof v === "number" && Number.isFinite(v)) return v;
  }
  throw new ConfigError(file, `missing numeric field ${keys.join(" / ")}`);
}

/**
 * Maps a Hugging Face `config.json` (BERT, DistilBERT, MPNet) onto an {@link EncoderConfig}.
 * `pooling` defaults to the family's convention: BERT's pooler where the checkpoint has one,
 * CLS otherwise.
 */
export function configFromHf(
  cfg: Record<string, unknown>,
  file = "config.json",
  opts: { pooling?: Pooling; hasPooler?: boolean; normalize?: boolean } = {},
): EncoderConfig {
  const type = String(cfg.model_type ?? "");
  const act = String(cfg.hidden_act ?? cfg.activation ?? "gelu");
  if (act !== "gelu" && act !== "relu") {
    throw new ConfigError(file, `activation ${act} is not supported (gelu, relu)`);
  }
  const common = {
    normalize: opts.normalize ?? false,
    activation: act as "gelu" | "relu",
    embeddingScale: 1,
  };
  switch (type) {
    case "bert":
      if ((cfg.position_embedding_type ?? "absolute") !== "absolute") {
        throw new ConfigError(
          file,
          `position_embedding_type ${cfg.position_embedding_type} is not supported`,
        );
      }
      return {
        ...common,
        family: "bert",
        vocabSize: num(cfg, file, "vocab_size"),
        hidden: num(cfg, file, "hidden_size"),
        layers: num(cfg, file, "num_hidden_layers"),
        heads: num(cfg, file, "num_attention_heads"),
        intermediate: num(cfg, file, "intermediate_size"),
        norm: "post",
        layerNormEps: (cfg.layer_norm_eps as number) ?? 1e-12,
        positions: "learned",
        maxPositions: num(cfg, file, "max_position_embeddings"),
        positionOffset: 0,
        typeVocabSize: (cfg.type_vocab_size as number) ?? 2,
        relativeAttentionBuckets: 0,
        relativeAttentionMaxDistance: 0,
        pooling: opts.pooling ?? (opts.hasPooler === false ? "cls" : "pooler"),
        padId: (cfg.pad_token_id as number) ?? 0,
      };
    case "distilbert":
      if (cfg.sinusoidal_pos_embds) {
        throw new ConfigError(
          file,
          "sinusoidal_pos_embds DistilBERT checkpoints are not supported",
        );
      }
      return {
        ...common,
        family: "distilbert",
        vocabSize: num(cfg, file, "vocab_size"),
        hidden: num(cfg, file, "dim", "hidden_size"),
        layers: num(cfg, file, "n_layers", "num_hidden_layers"),
        heads: num(cfg, file, "n_heads", "num_attention_heads"),
        intermediate: num(cfg, file, "hidden_dim", "intermediate_size"),
        norm: "post",
        layerNormEps: 1e-12,
        positions: "learned",
        maxPositions: num(cfg, file, "max_position_embeddings"),
        positionOffset: 0,
        typeVocabSize: 0,
        relativeAttentionBuckets: 0,
        relativeAttentionMaxDistance: 0,
        pooling: opts.pooling ?? "cls",
        padId: (cfg.pad_token_id as number) ?? 0,
      };
    case "mpnet": {
      const padId = (cfg.pad_token_id as number) ?? 1;
      return {
        ...common,
        family: "mpnet",
        vocabSize: num(cfg, file, "vocab_size"),
        hidden: num(cfg, file, "hidden_size"),
        layers: num(cfg, file, "num_hidden_layers"),
        heads: num(cfg, file, "num_attention_heads"),
        intermediate: num(cfg, file, "intermediate_size"),
        norm: "post",
        layerNormEps: (cfg.layer_norm_eps as number) ?? 1e-5,
        positions: "learned",
        // Positions run from padId + 1, so the longest input is max_position_embeddings - padId - 1.
        maxPositions: num(cfg, file, "max_position_embeddings") - padId - 1,
        positionOffset: padId + 1,
        typeVocabSize: 0,
        relativeAttentionBuckets: (cfg.relative_attention_num_buckets as number) ?? 32,
        relativeAttentionMaxDistance: 128,
        pooling: opts.pooling ?? "cls",
        padId,
      };
    }
    default:
      throw new ConfigError(
        file,
        `model_type "${type}" is not supported (bert, distilbert, mpnet)`,
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
