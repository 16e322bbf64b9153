/**
 * Optimizers on the GPU: {@link AdamW} (decoupled weight decay, as `torch.optim.AdamW`) and
 * {@link Adam} (as `torch.optim.Adam`), one WGSL dispatch per parameter tensor with the moments
 * `m`, `v` held as GPU tensors and the step counts on the host; and global gradient-norm
 * clipping ({@link clipGradNorm}, as `torch.nn.utils.clip_grad_norm_`) with a non-finite check.
 * WGSL in `kernels/optimizer.wgsl`.
 *
 * Dimension legend: every parameter tensor is updated as a flat array of n elements; its
 * gradient, `m` and `v` have the same n.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { dispatch, grid1d, pipeline } from "../gpu/kernels.ts";
import { withPhase } from "../gpu/profile.ts";
import { f32, type ParamBlock, params } from "../gpu/params.ts";
import { Tensor } from "../gpu/tensor.ts";

/** Invocations per workgroup of the kernels in `optimizer.wgsl` (its override `WG`). */
const WG = 64;
/** Most partial sums per tensor in the first clipping pass. */
const MAX_PARTIALS = 256;
/** Longest loop a kernel may run: llvmpipe silently ends shader loops after 65535 iterations. */
const MAX_LOOP = 65535;
const FILE = "optimizer.wgsl";

interface Fields {
  n?: number;
  offset?: number;
  count?: number;
  decayFactor?: number;
  l2?: number;
  beta1?: number;
  beta2?: number;
  stepSize?: number;
  bc2Sqrt?: number;
  eps?: number;
  maxNorm?: number;
}

/** The `Params` block of `optimizer.wgsl`, fields a launch does not use left at neutral values. */
function optimizerParams(f: Fields): ParamBlock {
  const beta1 = f.beta1 ?? 0, beta2 = f.beta2 ?? 0;
  return params({
    n: f.n ?? 0,
    offset: f.offset ?? 0,
    count: f.count ?? 0,
    pad: 0,
    decay_factor: f32(f.decayFactor ?? 1),
    l2: f32(f.l2 ?? 0),
    beta1: f32(beta1),
    one_minus_beta1: f32(1 - beta1),
    beta2: f32(beta2),
    one_minus_beta2: f32(1 - beta2),
    step_size: f32(f.stepSize ?? 0),
    bc2_sqrt: f32(f.bc2Sqrt ?? 1),
    eps: f32(f.eps ?? 0),
    max_norm: f32(f.maxNorm ?? 0),
  });
}

/**
 * The default no-decay predicate: biases and normalisation parameters (names ending in `bias`,
 * or containing `norm` in any case: `LayerNorm`, `layer_norm`, `sa_layer_norm`, ...).
 *
 * @example
 * ```ts
 * defaultNoDecay("encoder.layer.0.attention.output.LayerNorm.weight"); // true
 * defaultNoDecay("encoder.layer.0.attention.self.query.weight"); // false
 * ```
 */
export function defaultNoDecay(name: string): boolean {
  return name.endsWith("bias") || /norm/i.test(name);
}

/** Options of {@link AdamW} and {@link Adam}. */
export interface AdamOptions {
  /** Learning rate; {@link AdamW.step} may override it per step (schedules). */
  lr: number;
  /** Decay rate of the first moment. Default 0.9. */
  beta1?: number;
  /** Decay rate of the second moment. Default 0.999. */
  beta2?: number;
  /** Added to the denominator. Default 1e-8 (torch's default). */
  eps?: number;
  /**
   * Weight decay. AdamW: decoupled, p ← p·(1 − lr·wd), default 0.01 (torch's default). Adam:
   * L2 added to the gradient, g ← g + wd·p, default 0 (plain Adam).
   */
  weightDecay?: number;
  /**
   * Which parameters get no weight decay, by name. Default {@link defaultNoDecay} (biases and
   * normalisation parameters).
   */
  noDecay?: (name: string) => boolean;
}

/** The exported state of one parameter: its step count and its moments. */
export interface ParamState {
  /** Updates applied to this parameter (it skips steps where it had no gradient). */
  step: number;
  /** First moment, as stored on the GPU. */
  m: Float32Array;
  /** Second moment, as stored on the GPU. */
  v: Float32Array;
}

/** An optimizer's exported state, for checkpoints and resume (round-trips exactly). */
export interface OptimizerState {
  /** Calls of `step` so far. */
  step: number;
  /** Per-parameter state, by parameter name. */
  params: Record<string, ParamState>;
}

interface Slot {
  param: Tensor;
  m: Tensor<"f32">;
  v: Tensor<"f32">;
  step: number;
  decays: boolean;
}

/** Shared Adam machinery; {@link AdamW} and {@link Adam} fix how weight decay applies. */
export abstract class AdamBase {
  /** The default learning rate of {@link step}. */
  lr: number;
  /** Decay rate of the first moment. */
  readonly beta1: number;
  /** Decay rate of the second moment. */
  readonly beta2: number;
  /** Added to the denominator. */
  readonly eps: number;
  /** Weight decay (decoupled for AdamW, L2 for Adam). */
  readonly weightDecay: number;
  readonly #slots = new Map<string, Slot>();
  readonly #gpu: Gpu;
  #step = 0;

  /** Shared set-up of Adam and AdamW; see their constructors. */
  protected constructor(
    params: Map<string, Tensor>,
    opts: AdamOptions,
    defaultWeightDecay: number,
    private readonly decoupled: boolean,
  ) {
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? defaultWeightDecay;
    for (const [key, value] of [["beta1", this.beta1], ["beta2", this.beta2]] as const) {
      if (!(value >= 0 && value < 1)) throw new RangeError(`${key} must lie in [0, 1): ${value}`);
    }
    if (!(this.eps >= 0)) throw new RangeError(`eps must be non-negative: ${this.eps}`);
    if (!(this.weightDecay >= 0)) {
      throw new RangeError(`weightDecay must be non-negative: ${this.weightDecay}`);
    }
    checkLr(this.lr);
    const noDecay = opts.noDecay ?? defaultNoDecay;
    let gpu: Gpu | null = null;
    for (const [name, param] of params) {
      if (param.dtype !== "f32") {
        throw new TypeError(`parameter ${name} is ${param.dtype}, not f32`);
      }
      gpu ??= param.gpu;
      if (param.gpu !== gpu) throw new Error(`parameter ${name} lives on another GPU`);
      this.#slots.set(name, {
        param,
        m: Tensor.zeros(gpu, param.shape, "f32", `adam m ${name}`),
        v: Tensor.zeros(gpu, param.shape, "f32", `adam v ${name}`),
        step: 0,
        decays: !noDecay(name),
      });
    }
    if (!gpu) throw new RangeError("the optimizer got no parameters");
    this.#gpu = gpu;
  }

  /** Calls of {@link step} so far. */
  get stepCount(): number {
    return this.#step;
  }

  /** Whether weight decay applies to the named parameter. */
  decays(name: string): boolean {
    const slot = this.#slots.get(name);
    if (!slot) throw new RangeError(`unknown parameter ${name}`);
    return slot.decays;
  }

  /**
   * Applies one update to every parameter that has a gradient in `grads` (a missing gradient
   * skips that parameter, whose own step count then stays, as in torch). `lr` overrides the
   * default learning rate for this step (pass a schedule's value). The update is recorded into
   * the current command encoder; it runs at the next flush or read.
   */
  async step(grads: Map<string, Tensor>, lr: number = this.lr): Promise<void> {
    await withPhase(this.#gpu, "optimizer", () => this.#update(grads, lr));
  }

  async #update(grads: Map<string, Tensor>, lr: number): Promise<void> {
    checkLr(lr);
    for (const [name, g] of grads) {
      const slot = this.#slots.get(name);
      if (!slot) throw new RangeError(`gradient for unknown parameter ${name}`);
      if (g.size !== slot.param.size) {
        throw new RangeError(
          `gradient of ${name} has shape [${g.shape}], the parameter [${slot.param.shape}]`,
        );
      }
    }
    this.#step++;
    const p = await pipeline(this.#gpu, FILE, "adam_step", { WG });
    for (const [name, slot] of this.#slots) {
      const g = grads.get(name);
      if (!g) continue;
      slot.step++;
      const wd = slot.decays ? this.weightDecay : 0;
      // Step-dependent scalars in float64, as torch computes them in Python floats.
      const bc1 = 1 - this.beta1 ** slot.step;
      const bc2 = 1 - this.beta2 ** slot.step;
      dispatch(this.#gpu, {
        pipeline: p,
        buffers: [slot.param, g, slot.m, slot.v],
        params: optimizerParams({
          n: slot.param.size,
          decayFactor: this.decoupled ? 1 - lr * wd : 1,
          l2: this.decoupled ? 0 : wd,
          beta1: this.beta1,
          beta2: this.beta2,
          stepSize: lr / bc1,
          bc2Sqrt: Math.sqrt(bc2),
          eps: this.eps,
        }),
        workgroups: grid1d(this.#gpu, slot.param.size, WG),
      });
    }
  }

  /** Exports the step counts and moments (host copies) for a checkpoint. */
  async state(): Promise<OptimizerState> {
    const out: OptimizerState = { step: this.#step, params: {} };
    for (const [name, slot] of this.#slots) {
      out.params[name] = { step: slot.step, m: await slot.m.read(), v: await slot.v.read() };
    }
    return out;
  }

  /**
   * Restores state exported by {@link state}: every parameter of this optimizer must be present
   * with moments of its size (a mismatch is an error naming the parameter).
   */
  loadState(state: OptimizerState): void {
    if (!Number.isInteger(state.step) || state.step < 0) {
      throw new RangeError(`optimizer state: bad step count ${state.step}`);
    }
    for (const name of Object.keys(state.params)) {
      if (!this.#slots.has(name)) {
        throw new RangeError(`optimizer state: unknown parameter ${name}`);
      }
    }
    for (const [name, slot] of this.#slots) {
      const s = state.params[name];
      if (!s) throw new RangeError(`optimizer state: parameter ${name} is missing`);
      if (s.m.length !== slot.param.size || s.v.length !== slot.param.size) {
        throw new RangeError(
          `optimizer state: ${name} has moments of ${s.m.length}/${s.v.length} elements, ` +
            `the parameter ${slot.param.size}`,
        );
      }
      if (!Number.isInteger(s.step) || s.step < 0) {
        throw new RangeError(`optimizer state: ${name} has a bad step count ${s.step}`);
      }
    }
    for (const [name, slot] of this.#slots) {
      const s = state.params[name];
      slot.m.write(s.m);
      slot.v.write(s.v);
      slot.step = s.step;
    }
    this.#step = state.step;
  }

  /** Frees the moment buffers (the parameters belong to the caller). */
  destroy(): void {
    for (const slot of this.#slots.values()) {
      slot.m.destroy();
      slot.v.destroy();
    }
  }
}

function checkLr(lr: number): void {
  if (!(lr >= 0) || !Number.isFinite(lr)) {
    throw new RangeError(`learning rate must be finite and >= 0: ${lr}`);
  }
}

/**
 * AdamW with decoupled weight decay, as `torch.optim.AdamW`: p ← p·(1 − lr·wd); m ← β1·m +
 * (1 − β1)·g; v ← β2·v + (1 − β2)·g²; p ← p − lr·m̂/(√v̂ + eps) with m̂ = m/(1 − β1^t),
 * v̂ = v/(1 − β2^t). No decay on biases and normalisation parameters by default.
 *
 * @example
 * ```ts
 * const opt = new AdamW(model.named, { lr: 2e-5, weightDecay: 0.01 });
 * await opt.step(grads, schedule(opt.stepCount));
 * const saved = await opt.state(); // later: opt.loadState(saved)
 * ```
 */
export class AdamW extends AdamBase {
  /**
   * Creates an instance.
   * @param params the parameters, by name (updated in place)
   * @param opts learning rate, betas, eps, weight decay (default 0.01), no-decay predicate
   */
  constructor(params: Map<string, Tensor>, opts: AdamOptions) {
    super(params, opts, 0.01, true);
  }
}

/**
 * Adam, as `torch.optim.Adam`: plain Adam by default (weightDecay 0); a weight decay is added to
 * the gradient as an L2 term, g ← g + wd·p (except for no-decay names).
 *
 * @example
 * ```ts
 * const opt = new Adam(model.named, { lr: 5e-7 });
 * await opt.step(grads);
 * ```
 */
export class Adam extends AdamBase {
  /**
   * Creates an instance.
   * @param params the parameters, by name (updated in place)
   * @param opts learning rate, betas, eps, L2 weight decay (default 0), no-decay predicate
   */
  constructor(params: Map<string, Tensor>, opts: AdamOptions) {
    super(params, opts, 0, false);
  }
}

/** The result of {@link clipGradNorm}. */
export interface GradNorm {
  /** The global L2 norm of all gradients before clipping. */
  norm: number;
  /** Whether the norm is finite (no NaN or Inf in any gradient, and no overflow). */
  finite: boolean;
  /** Names of the gradients whose sum of squares is not finite (empty when finite). */
  nonFinite: string[];
}

/** Options of {@link clipGradNorm}. */
export interface ClipOptions {
  /** Throw a {@link NonFiniteGradientError} when the norm is not finite. Default false. */
  errorIfNonFinite?: boolean;
}

/** Raised by {@link clipGradNorm} with `errorIfNonFinite` when a gradient holds NaN or Inf. */
export class NonFiniteGradientError extends Error {
  /**
   * Creates an instance.
   * @param norm the non-finite global norm
   * @param names the gradients whose sum of squares is not finite
   */
  constructor(readonly norm: number, readonly names: string[]) {
    super(
      `The gradient norm is ${norm}: NaN or Inf in ${
        names.length ? names.join(", ") : "the total (overflow)"
      }`,
    );
    this.name = "NonFiniteGradientError";
  }
}

/**
 * Global gradient-norm clipping, as `torch.nn.utils.clip_grad_norm_` (L2): computes the norm of
 * all gradients together on the GPU (per-tensor sums of squares, then their total), then scales
 * every gradient in place by min(1, maxNorm / (norm + 1e-6)). Returns the pre-clip norm and a
 * finite check, read back once after the scaling is recorded. Unlike torch, a non-finite norm
 * leaves the gradients unscaled (torch would multiply them by NaN); the caller decides. Pass
 * `maxNorm = Infinity` to measure the norm without scaling.
 *
 * @example
 * ```ts
 * const { norm, finite, nonFinite } = await clipGradNorm(grads, 1.0);
 * if (!finite) throw new Error(`NaN/Inf gradients in ${nonFinite.join(", ")}`);
 * ```
 */
export async function clipGradNorm(
  grads: Map<string, Tensor> | Tensor[],
  maxNorm: number,
  opts: ClipOptions = {},
): Promise<GradNorm> {
  const first = grads instanceof Map ? grads.values().next().value : grads[0];
  if (!first) return await gradNorm(grads, maxNorm, opts);
  return await withPhase(first.gpu, "optimizer", () => gradNorm(grads, maxNorm, opts));
}

async function gradNorm(
  grads: Map<string, Tensor> | Tensor[],
  maxNorm: number,
  opts: ClipOptions,
): Promise<GradNorm> {
  if (!(maxNorm > 0)) throw new RangeError(`maxNorm must be positive: ${maxNorm}`);
  const named: [string, Tensor][] = grads instanceof Map
    ? [...grads]
    : grads.map((t, i) => [`#${i}`, t]);
  const entries = named.filter(([, t]) => t.size > 0);
  if (entries.length === 0) return { norm: 0, finite: true, nonFinite: [] };
  const gpu = entries[0][1].gpu;
  for (const [name, t] of entries) {
    if (t.dtype !== "f32") throw new TypeError(`gradient ${name} is ${t.dtype}, not f32`);
  }
  const count = entries.length;
  if (count > MAX_LOOP) throw new RangeError(`clipGradNorm: ${count} tensors`);
  // Pass 1: per tensor, up to MAX_PARTIALS workgroup partial sums of squares.
  const segments = new Uint32Array(2 * count);
  let total = 0;
  entries.forEach(([name, t], i) => {
    const groups = Math.min(Math.ceil(t.size / WG), MAX_PARTIALS);
    if (Math.ceil(t.size / (groups * WG)) > MAX_LOOP) {
      throw new RangeError(`clipGradNorm: gradient ${name} has ${t.size} elements, too many`);
    }
    segments[2 * i] = total;
    segments[2 * i + 1] = total + groups;
    total += groups;
  });
  const partials = Tensor.zeros(gpu, [total]);
  const segmentBuffer = Tensor.from(gpu, segments, [segments.length], "u32");
  const stats = Tensor.zeros(gpu, [2 + count]);
  const sumsq = await pipeline(gpu, FILE, "sumsq_partial", { WG });
  entries.forEach(([, t], i) => {
    const groups = segments[2 * i + 1] - segments[2 * i];
    dispatch(gpu, {
      pipeline: sumsq,
      buffers: [t, partials],
      params: optimizerParams({ n: t.size, offset: segments[2 * i] }),
      workgroups: [groups, 1],
    });
  });
  // Pass 2: per-tensor sums; pass 3: the norm and the clip coefficient.
  dispatch(gpu, {
    pipeline: await pipeline(gpu, FILE, "sum_segments", { WG }),
    buffers: [partials, segmentBuffer, stats],
    params: optimizerParams({ count }),
    workgroups: [count, 1],
  });
  const finiteMax = Number.isFinite(maxNorm);
  dispatch(gpu, {
    pipeline: await pipeline(gpu, FILE, "finish_norm", { WG }),
    buffers: [stats],
    params: optimizerParams({ count, maxNorm: finiteMax ? maxNorm : 0 }),
    workgroups: [1, 1],
  });
  // Pass 4: scale every gradient by the coefficient, without a round trip to the host.
  if (finiteMax) {
    const scale = await pipeline(gpu, FILE, "scale_by_coefficient", { WG });
    for (const [, t] of entries) {
      dispatch(gpu, {
        pipeline: scale,
        buffers: [stats, t],
        params: optimizerParams({ n: t.size }),
        workgroups: grid1d(gpu, t.size, WG),
      });
    }
  }
  const host = await stats.read();
  partials.destroy();
  segmentBuffer.destroy();
  stats.destroy();
  const norm = host[0];
  const finite = Number.isFinite(norm);
  const nonFinite = finite ? [] : entries
    .filter((_, i) => !Number.isFinite(host[2 + i]))
    .map(([name]) => name);
  if (!finite && opts.errorIfNonFinite) throw new NonFiniteGradientError(norm, nonFinite);
  return { norm, finite, nonFinite };
}
