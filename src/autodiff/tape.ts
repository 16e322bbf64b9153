/**
 * The tape: during forward, each op that has an input needing a gradient records its
 * hand-written backward step here; {@link Tape.backward} runs the steps in reverse. Gradients are
 * accumulated (`d += ...`) into zero-initialised buffers, as in llm.c, so an activation used twice
 * simply receives two contributions.
 *
 * Tensors are identified by their GPU buffer, not by the Tensor object, so a reshape (a view of
 * the same buffer) shares its source's gradient: reshaping needs no backward step.
 *
 * @module
 */
import { withPhase } from "../gpu/profile.ts";
import { copyElements, Tensor } from "../gpu/tensor.ts";

/** A recorded backward step; it reads `tape.grad(output)` and accumulates into its inputs. */
export type BackwardStep = () => void | Promise<void>;

/** Records backward steps and owns the gradient buffers. */
export class Tape {
  readonly #steps: { step: BackwardStep; output: Tensor; name: string }[] = [];
  readonly #needs = new Set<GPUBuffer>();
  readonly #leaves = new Set<GPUBuffer>();
  readonly #grads = new Map<GPUBuffer, Tensor>();

  /** Marks tensors (parameters, inputs) whose gradients are wanted. */
  watch(...tensors: Tensor[]): void {
    for (const t of tensors) {
      this.#needs.add(t.buffer);
      this.#leaves.add(t.buffer);
    }
  }

  /** Whether a gradient flows into `t`. */
  needsGrad(t: Tensor): boolean {
    return this.#needs.has(t.buffer);
  }

  /**
   * Records the backward step of an op producing `output` from `inputs`, if any input needs a
   * gradient; returns whether it recorded.
   */
  record(name: string, inputs: Tensor[], output: Tensor, step: BackwardStep): boolean {
    if (!inputs.some((t) => this.#needs.has(t.buffer))) return false;
    this.#needs.add(output.buffer);
    this.#steps.push({ step, output, name });
    return true;
  }

  /**
   * The gradient buffer of `t` (allocated zeroed on first use), or `null` when no gradient
   * flows into `t`, so backward steps can skip work.
   */
  grad(t: Tensor): Tensor | null {
    if (!this.#needs.has(t.buffer)) return null;
    let g = this.#grads.get(t.buffer);
    if (!g) {
      g = Tensor.zeros(t.gpu, t.shape, "f32", "grad");
      this.#grads.set(t.buffer, g);
    }
    return g.shape.length === t.shape.length && g.shape.every((d, i) => d === t.shape[i])
      ? g
      : g.reshape(t.shape);
  }

  /** Number of recorded steps. */
  get length(): number {
    return this.#steps.length;
  }

  /**
   * Runs the recorded steps in reverse. `seed` is d(loss)/d(output), host values or a GPU tensor
   * of the output's size; by default ones (for a
   * scalar loss, 1). Gradients of intermediate tensors are freed once their step has run; those
   * of watched tensors stay readable through {@link Tape.grad}.
   */
  async backward(output: Tensor, seed?: ArrayLike<number> | Tensor): Promise<void> {
    await withPhase(output.gpu, "backward", () => this.#backward(output, seed));
  }

  async #backward(output: Tensor, seed?: ArrayLike<number> | Tensor): Promise<void> {
    const g = this.grad(output);
    if (!g) throw new Error("backward: the output does not depend on any watched tensor");
    if (seed instanceof Tensor) {
      if (seed.size !== output.size) {
        throw new RangeError(
          `backward: a seed of [${seed.shape}] for an output of [${output.shape}]`,
        );
      }
      copyElements(seed, 0, g, 0, seed.size);
    } else g.write(seed ?? new Float32Array(output.size).fill(1));
    for (let i = this.#steps.length - 1; i >= 0; i--) {
      const { step, output: out } = this.#steps[i];
      if (!this.#grads.has(out.buffer)) continue; // nothing flowed back into this op
      await step();
      if (!this.#leaves.has(out.buffer)) {
        this.#grads.get(out.buffer)!.destroy();
        this.#grads.delete(out.buffer);
      }
    }
    this.#steps.length = 0;
  }

  /** Frees every gradient buffer and forgets all steps. */
  dispose(): void {
    for (const g of this.#grads.values()) g.destroy();
    this.#grads.clear();
    this.#steps.length = 0;
    this.#needs.clear();
    this.#leaves.clear();
  }
}
