/**
 * A reader for TF.js weights manifests (the `weightsManifest` of a `model.json`) and their binary
 * shards, without TF.js.
 *
 * Format: `weightsManifest` is a list of groups `{ paths, weights }`. The shards in `paths`
 * (relative to the manifest's directory) are concatenated; the group's `weights` are laid out
 * back to back in that byte stream, in order, each `prod(shape)` elements of its stored type.
 * Stored types: `float32`, `int32` (4 bytes, little-endian), `bool` (1 byte), or a quantized form
 * `quantization: { dtype: "uint8" | "uint16", scale, min }` (value = q * scale + min, rounded for
 * int32 weights) or `{ dtype: "float16" }` (IEEE half precision), decoded to the weight's dtype
 * as TF.js's `io.decodeWeights` does.
 *
 * @example
 * ```ts
 * import { loadTfjsWeights } from "./tfjs_weights.ts";
 * const w = await loadTfjsWeights(new URL("file:///path/to/model.json"));
 * const emb = w.get("module/Embeddings_en")!; // { shape: [8002, 256], dtype: "float32", data }
 * ```
 *
 * @module
 */
import { readAsset, readJsonAsset } from "./use_lite_assets.ts";

/** A quantization record of a manifest entry. */
export interface TfjsQuantization {
  /** The stored type. */
  dtype: "uint8" | "uint16" | "float16";
  /** Affine scale (uint8/uint16 only). */
  scale?: number;
  /** Affine offset (uint8/uint16 only). */
  min?: number;
  /** The original dtype (informational; the entry's `dtype` decides the decoded type). */
  original_dtype?: string;
}

/** One weight spec of a manifest group. */
export interface TfjsWeightSpec {
  /** The graph node name of the weight (a `Const` node). */
  name: string;
  /** Dimensions, row-major; `[]` for a scalar. */
  shape: number[];
  /** The decoded type. */
  dtype: "float32" | "int32" | "bool" | string;
  /** Present when the stored bytes are quantized. */
  quantization?: TfjsQuantization;
}

/** One group of a manifest: shards concatenated, then weights back to back. */
export interface TfjsWeightsGroup {
  /** Shard file names relative to the manifest directory. */
  paths: string[];
  /** The weights, in byte order. */
  weights: TfjsWeightSpec[];
}

/** A decoded weight. */
export interface TfjsWeight {
  /** The graph node name. */
  name: string;
  /** Dimensions, row-major. */
  shape: number[];
  /** The decoded type: float32 as `Float32Array`; int32 and bool as `Int32Array`. */
  dtype: "float32" | "int32" | "bool";
  /** The values, row-major. */
  data: Float32Array | Int32Array;
}

/** Options for {@link readTfjsWeights}. */
export interface ReadTfjsWeightsOptions {
  /** Reads one shard; defaults to {@link readAsset} (file: via Deno, http(s): via fetch). */
  read?: (url: URL) => Promise<Uint8Array>;
}

const BYTES: Record<string, number> = {
  float32: 4,
  int32: 4,
  bool: 1,
  uint8: 1,
  uint16: 2,
  float16: 2,
};

/** Decodes an IEEE 754 half-precision number. */
export function float16ToFloat32(h: number): number {
  const s = (h & 0x8000) ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24; // subnormal (and zero)
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function decodeOne(
  spec: TfjsWeightSpec,
  bytes: Uint8Array,
  where: string,
): TfjsWeight {
  const n = numel(spec.shape);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const q = spec.quantization;
  const dtype = spec.dtype as TfjsWeight["dtype"];
  const isInt = dtype === "int32" || dtype === "bool";
  const out = isInt ? new Int32Array(n) : new Float32Array(n);
  if (q === undefined) {
    if (dtype === "float32") { for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true); }
    else if (dtype === "int32") { for (let i = 0; i < n; i++) out[i] = view.getInt32(4 * i, true); }
    else for (let i = 0; i < n; i++) out[i] = bytes[i] ? 1 : 0;
  } else if (q.dtype === "float16") {
    if (isInt) throw new Error(`${where}: float16 quantization of a ${dtype} weight`);
    for (let i = 0; i < n; i++) out[i] = float16ToFloat32(view.getUint16(2 * i, true));
  } else {
    const { scale, min } = q;
    if (typeof scale !== "number" || typeof min !== "number") {
      throw new Error(`${where}: ${q.dtype} quantization without numeric scale and min`);
    }
    const get = q.dtype === "uint8"
      ? (i: number) => bytes[i]
      : (i: number) => view.getUint16(2 * i, true);
    if (isInt) { for (let i = 0; i < n; i++) out[i] = Math.round(get(i) * scale + min); }
    else for (let i = 0; i < n; i++) out[i] = get(i) * scale + min;
  }
  return { name: spec.name, shape: spec.shape.slice(), dtype, data: out };
}

/**
 * Decodes the weights of a manifest from its shards. `baseUrl` is the directory the shard paths
 * are relative to (the directory of `model.json`). Throws naming the file on a missing shard, a
 * size mismatch, an unsupported dtype or a duplicate name.
 */
export async function readTfjsWeights(
  manifest: TfjsWeightsGroup[],
  baseUrl: URL,
  options: ReadTfjsWeightsOptions = {},
): Promise<Map<string, TfjsWeight>> {
  const read = options.read ?? readAsset;
  const out = new Map<string, TfjsWeight>();
  if (!Array.isArray(manifest)) throw new Error(`weightsManifest is not an array`);
  for (const [g, group] of manifest.entries()) {
    const urls = group.paths.map((p) => new URL(p, baseUrl));
    const shards = await Promise.all(urls.map(async (u) => {
      try {
        return await read(u);
      } catch (e) {
        throw new Error(
          `weights shard ${u.href} (group ${g}): ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    }));
    const total = shards.reduce((a, s) => a + s.byteLength, 0);
    let need = 0;
    for (const w of group.weights) {
      const stored = w.quantization?.dtype ?? w.dtype;
      const size = BYTES[stored];
      if (size === undefined || !["float32", "int32", "bool"].includes(w.dtype)) {
        throw new Error(
          `weight ${w.name} in ${group.paths.join(", ")}: unsupported dtype ${w.dtype}` +
            (w.quantization ? ` (quantized as ${w.quantization.dtype})` : ""),
        );
      }
      need += size * numel(w.shape);
    }
    if (need !== total) {
      throw new Error(
        `weights group ${g} (${urls.map((u) => u.href).join(", ")}): shards hold ${total} ` +
          `bytes but the manifest describes ${need}`,
      );
    }
    const all = new Uint8Array(total);
    let o = 0;
    for (const s of shards) {
      all.set(s, o);
      o += s.byteLength;
    }
    o = 0;
    for (const w of group.weights) {
      const size = BYTES[w.quantization?.dtype ?? w.dtype] * numel(w.shape);
      if (out.has(w.name)) throw new Error(`weight ${w.name} appears twice in the manifest`);
      out.set(w.name, decodeOne(w, all.subarray(o, o + size), `weight ${w.name}`));
      o += size;
    }
  }
  return out;
}

/** The parts of a TF.js `model.json` this module reads. */
export interface TfjsModelJson {
  /** The graph (GraphDef as JSON); kept opaque here. */
  modelTopology?: unknown;
  /** The weight groups. */
  weightsManifest: TfjsWeightsGroup[];
}

/** Reads `model.json` at `modelJson` and all weights of its manifest. */
export async function loadTfjsWeights(
  modelJson: URL,
  options: ReadTfjsWeightsOptions = {},
): Promise<Map<string, TfjsWeight>> {
  const model = await readJsonAsset<TfjsModelJson>(modelJson);
  if (!model || !Array.isArray(model.weightsManifest)) {
    throw new Error(`${modelJson.href}: no weightsManifest`);
  }
  return await readTfjsWeights(model.weightsManifest, new URL("./", modelJson), options);
}

/** A TF.js graph model's artifacts, the shape TF.js's `loadGraphModel` takes from an IO handler. */
export interface TfjsGraphArtifacts {
  /** The graph (GraphDef as JSON). */
  modelTopology: unknown;
  /** Every weight spec, in byte order. */
  weightSpecs: TfjsWeightSpec[];
  /** All shards, concatenated. */
  weightData: ArrayBuffer;
  /** Always "graph-model". */
  format: "graph-model";
}

/**
 * Reads `model.json` and its shards into the artifacts TF.js loads a graph model from, without
 * TF.js: `loadGraphModel({ load: () => readTfjsGraphArtifacts(url) })` (tests and benchmarks
 * run the original graph this way as an independent reference).
 */
export async function readTfjsGraphArtifacts(
  modelJson: URL,
  options: ReadTfjsWeightsOptions = {},
): Promise<TfjsGraphArtifacts> {
  const read = options.read ?? readAsset;
  const mj = await readJsonAsset<TfjsModelJson>(modelJson);
  if (!mj || !Array.isArray(mj.weightsManifest)) {
    throw new Error(`${modelJson.href}: no weightsManifest`);
  }
  const shards = await Promise.all(
    mj.weightsManifest.flatMap((g) => g.paths).map((p) => read(new URL(p, modelJson))),
  );
  const all = new Uint8Array(shards.reduce((a, s) => a + s.byteLength, 0));
  let at = 0;
  for (const s of shards) {
    all.set(s, at);
    at += s.byteLength;
  }
  return {
    modelTopology: mj.modelTopology,
    weightSpecs: mj.weightsManifest.flatMap((g) => g.weights),
    weightData: all.buffer,
    format: "graph-model",
  };
}
