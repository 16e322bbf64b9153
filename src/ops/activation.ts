/**
 * Activations: GELU (exact erf form, as in BERT), ReLU and tanh, each recording its hand-written
 * backward on the tape. WGSL in `kernels/activation.wgsl`.
 *
 * Dimension legend: any shape; the ops act on each of the n elements.
 *
 * @module
 */
import type { Tape } from "../autodiff/tape.ts";
import type { Gpu } from "../gpu/device.ts";
import { type Bindable, dispatch, grid1d, pipeline } from "../gpu/kernels.ts";
import { params } from "../gpu/params.ts";
import { Tensor } from "../gpu/tensor.ts";

/** Invocations per workgroup of the kernels in `activation.wgsl` (its override `WG`). */
const WG = 64;

/** Options of the activation ops. */
export interface ActivationOptions {
  /** Record the backward step here. */
  tape?: Tape;
}

async function launch(gpu: Gpu, entry: string, buffers: Bindable[], n: number): Promise<void> {
  const p = await pipeline(gpu, "activation.wgsl", entry, { WG });
  dispatch(gpu, { pipeline: p, buffers, params: params({ n }), workgroups: grid1d(gpu, n, WG) });
}

async function activation(
  kind: "gelu" | "relu" | "tanh",
  x: Tensor,
  opts: ActivationOptions,
): Promise<Tensor> {
  if (x.dtype !== "f32") throw new TypeError(`${kind} takes an f32 tensor, got ${x.dtype}`);
  const gpu = x.gpu;
  const y = Tensor.zeros(gpu, x.shape);
  await launch(gpu, `${kind}_forward`, [x, y], y.size);
  const tape = opts.tape;
  tape?.record(kind, [x], y, async () => {
    const dx = tape.grad(x);
    // GELU and ReLU differentiate from the saved input, tanh from its saved output.
    if (dx) {
      await launch(gpu, `${kind}_backward`, [tape.grad(y)!, kind === "tanh" ? y : x, dx], y.size);
    }
  });
  return y;
}

/**
 * GELU in the exact form y = x·Φ(x) = x/2·(1 + erf(x/√2)) used by BERT (not the tanh
 * approximation); backward dx += dy·(Φ(x) + x·φ(x)). erf is computed in WGSL from a Chebyshev fit
 * with relative error below 1.2e-7; tests/activation_test.ts measures the f32 result against a
 * float64 erf.
 *
 * @example
 * ```ts
 * const h = await gelu(await biasAdd(await matmul(x, w1, { tape }), b1, { tape }), { tape });
 * ```
 */
export function gelu(x: Tensor, opts: ActivationOptions = {}): Promise<Tensor> {
  return activation("gelu", x, opts);
}

/**
 * ReLU, y = max(x, 0); backward dx += dy·[x > 0].
 *
 * @example
 * ```ts
 * const h = await relu(x, { tape });
 * ```
 */
export function relu(x: Tensor, opts: ActivationOptions = {}): Promise<Tensor> {
  return activation("relu", x, opts);
}

/**
 * tanh, safe for any |x| (no overflow: ±1 for large |x|); backward dx += dy·(1 - y²).
 *
 * @example
 * ```ts
 * const pooled = await tanh(await biasAdd(await matmul(cls, wp, { tape }), bp, { tape }), { tape });
 * ```
 */
export function tanh(x: Tensor, opts: ActivationOptions = {}): Promise<Tensor> {
  return activation("tanh", x, opts);
}
