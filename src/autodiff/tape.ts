/**
 * The tape: during forward, each op that has an input needing a gradient records its
 * hand-written backward step here; {@link Tape.backward} runs the steps in reverse. Gradients are
 * accumulated (`d += ...`) into zero-initialised buffers, as in llm.c, so an activation used twice
 * simply receives two contributions.
 *
 * @module
 */
import { Tensor } from "../gpu/tensor.ts";

/** A recorded backward step; it reads `tape.grad(output)` and accumulates into its inputs. */
export type BackwardStep = () => void | Promise<void>;

/** Records backward steps and owns the gradient buffers. */
export class Tape {
  readonly #steps: { step: BackwardStep; output: Tensor; name: string }[] = [];
  readonly #needs = new Set<Tensor>();
  readonly #leaves = new Set<Tensor>();
  readonly #grads = new Map<Tensor, Tensor>();

  /** Marks tensors (parameters, inputs) whose gradients are wanted. */
  watch(...tensors: Tensor[]): void {
    for (const t of tensors) {
      this.#needs.add(t);
      this.#leaves.add(t);
    }
  }

  /** Whether a gradient flows into `t`. */
  needsGrad(t: Tensor): boolean {
    return this.#needs.has(t);
  }

  /**
   * Records the backward step of an op producing `output` from `inputs`, if any input needs a
   * gradient; returns whether it recorded.
   */
  record(name: string, inputs: Tensor[], output: Tensor, step: BackwardStep): boolean {
    if (!inputs.some((t) => this.#needs.has(t))) return false;
    this.#needs.add(output);
    this.#steps.push({ step, output, name });
    return true;
  }

  /**
   * The gradient buffer of `t` (allocated zeroed on first use), or `null` when no gradient
   * flows into `t`, so backward steps can skip work.
   */
  grad(t: Tensor): Tensor | null {
    if (!this.#needs.has(t)) return null;
    let g = this.#grads.get(t);
    if (!g) {
      g = Tensor.zeros(t.gpu, t.shape, "f32", "grad");
      this.#grads.set(t, g);
    }
    return g;
  }

  /** Number of recorded steps. */
  get length(): number {
    return this.#steps.length;
  }

  /**
   * Runs the recorded steps in reverse. `seed` is d(loss)/d(output); by default ones (for a
   * scalar loss, 1). Gradients of intermediate tensors are freed once their step has run; those
   * of watched tensors stay readable through {@link Tape.grad}.
   */
  async backward(output: Tensor, seed?: ArrayLike<number>): Promise<void> {
    const g = this.grad(output);
    if (!g) throw new Error("backward: the output does not depend on any watched tensor");
    g.write(seed ?? new Float32Array(output.size).fill(1));
    for (let i = this.#steps.length - 1; i >= 0; i--) {
      const { step, output: out } = this.#steps[i];
      if (!this.#grads.has(out)) continue; // nothing flowed back into this op
      await step();
      if (!this.#leaves.has(out)) {
        this.#grads.get(out)!.destroy();
        this.#grads.delete(out);
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
