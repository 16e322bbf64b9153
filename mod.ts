/**
 * selfmargin: train and evaluate bi-encoder retrieval models on WebGPU, with hand-written WGSL
 * kernels and hand-derived backward passes.
 *
 * @example
 * ```ts
 * import { getGpu, matmul, Tensor } from "./mod.ts";
 * const gpu = await getGpu();
 * const a = Tensor.from(gpu, [1, 2, 3, 4], [2, 2]);
 * const c = await matmul(a, a);
 * console.log(await c.read()); // Float32Array [7, 10, 15, 22]
 * ```
 *
 * @module
 */
export { getGpu, GpuDeviceLostError, GpuUnavailableError } from "./src/gpu/device.ts";
export type { Gpu } from "./src/gpu/device.ts";
export { KernelCompileError, synchronize } from "./src/gpu/kernels.ts";
export { Tensor } from "./src/gpu/tensor.ts";
export type { DType } from "./src/gpu/tensor.ts";
export { Tape } from "./src/autodiff/tape.ts";
export { matmul } from "./src/ops/matmul.ts";
export type { MatmulOptions } from "./src/ops/matmul.ts";
