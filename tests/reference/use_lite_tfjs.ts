/**
 * TF.js executing the USE-lite graph (`model.json`) on `tfjs-backend-cpu`, the ground truth the
 * float64 reference and the WebGPU encoder are compared with. The graph is loaded through a
 * custom IO handler that reads the package files (no network), and fed the sparse
 * `indices`/`values` batch exactly as `@tensorflow-models/universal-sentence-encoder`'s `embed`
 * builds it.
 *
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { type GraphModel, loadGraphModel } from "npm:@tensorflow/tfjs-converter@4.22.0";
import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
import { locateUseLite, type UseLiteAssets } from "../../src/models/use_lite_assets.ts";
import { readTfjsGraphArtifacts } from "../../src/models/tfjs_weights.ts";

/** The graph's output node (the L2-normalised embedding). */
export const USE_LITE_OUTPUT = "module_apply_default/Encoder_en/hidden_layers/l2_normalize";

/** A tensor read back from TF.js. */
export interface TfjsOut {
  /** Dimensions. */
  shape: number[];
  /** Values, row-major. */
  data: Float32Array;
}

/** The USE-lite graph under TF.js. */
export interface TfjsUseLite {
  /** The loaded graph model. */
  model: GraphModel;
  /** Runs a batch of tokenized texts; returns the requested nodes (default: the embedding). */
  execute(ids: number[][], outputs?: string[]): Promise<TfjsOut[]>;
}

let loaded: Promise<TfjsUseLite> | null = null;

async function load(assets: UseLiteAssets): Promise<TfjsUseLite> {
  await tf.setBackend("cpu");
  const handler = { load: () => readTfjsGraphArtifacts(assets.modelJson) };
  // deno-lint-ignore no-explicit-any
  const model = await loadGraphModel(handler as any);
  return {
    model,
    async execute(ids, outputs = [USE_LITE_OUTPUT]) {
      const pairs = ids.flatMap((x, b) => x.map((_, t) => [b, t]));
      const indices = tf.tensor2d(pairs.flat(), [pairs.length, 2], "int32");
      const values = tf.tensor1d(ids.flat(), "int32");
      const res = await model.executeAsync({ indices, values }, outputs);
      const list = Array.isArray(res) ? res : [res];
      const out = list.map((t) => ({ shape: t.shape.slice(), data: t.dataSync() as Float32Array }));
      tf.dispose([indices, values, ...list]);
      return out;
    },
  };
}

/** Loads (once per process) the USE-lite graph model on tfjs-backend-cpu. */
export function tfjsUseLite(): Promise<TfjsUseLite> {
  loaded ??= locateUseLite().then(load);
  return loaded;
}
