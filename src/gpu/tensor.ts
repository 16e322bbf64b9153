/**
 * A small tensor: a GPU storage buffer with a shape and a dtype, plus upload and read-back.
 *
 * @module
 */
import { assertAlive, type Gpu } from "./device.ts";
import { encoder, flush, gpuCounters } from "./kernels.ts";

/** Element types a tensor can hold. */
export type DType = "f32" | "i32" | "u32";

/** The host array type of a dtype. */
export type HostArray<D extends DType> = D extends "f32" ? Float32Array
  : D extends "i32" ? Int32Array
  : Uint32Array;

const ARRAY_OF = { f32: Float32Array, i32: Int32Array, u32: Uint32Array } as const;

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

// The innermost open arena (see withArena): tensors allocated while it is open are recorded in it.
let currentArena: Tensor[] | null = null;

/**
 * Runs `fn` and then frees every tensor allocated during it, except those `keep` returns (and
 * tensors sharing their buffers, such as reshapes). Kept tensors pass to an enclosing arena.
 * Arenas nest, but must not be interleaved by concurrently running async tasks.
 *
 * @example
 * ```ts
 * const embeddings = await withArena(() => encoder.encode(batch), (e) => [e]);
 * ```
 */
export async function withArena<T>(
  fn: () => Promise<T>,
  keep: (result: T) => Tensor[],
): Promise<T> {
  const outer = currentArena;
  const mine: Tensor[] = [];
  currentArena = mine;
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    currentArena = outer;
    for (const t of mine) t.destroy();
    throw e;
  }
  currentArena = outer;
  const kept = keep(result);
  const keptBuffers = new Set(kept.map((t) => t.buffer));
  for (const t of mine) {
    if (keptBuffers.has(t.buffer)) outer?.push(t);
    else t.destroy();
  }
  return result;
}

/**
 * Copies `count` elements of `src` starting at `srcOffset` into `dst` at `dstOffset`, recorded
 * in order with the dispatches (for gathering chunks into one tensor and slicing them out).
 *
 * @example
 * ```ts
 * copyElements(chunkEmbeddings, 0, batchEmbeddings, start * dim, rows * dim);
 * ```
 */
export function copyElements(
  src: Tensor,
  srcOffset: number,
  dst: Tensor,
  dstOffset: number,
  count: number,
): void {
  if (src.dtype !== dst.dtype) throw new TypeError(`copyElements: ${src.dtype} into ${dst.dtype}`);
  if (
    !(srcOffset >= 0 && dstOffset >= 0 && count >= 0 && srcOffset + count <= src.size &&
      dstOffset + count <= dst.size)
  ) {
    throw new RangeError(
      `copyElements: ${count} elements from ${srcOffset} of [${src.shape}] to ${dstOffset} of ` +
        `[${dst.shape}] do not fit`,
    );
  }
  if (count > 0) {
    encoder(src.gpu).copyBufferToBuffer(
      src.buffer,
      srcOffset * 4,
      dst.buffer,
      dstOffset * 4,
      count * 4,
    );
  }
}

/** A GPU buffer with a shape (row-major) and a dtype. */
export class Tensor<D extends DType = DType> {
  /** Whether {@link destroy} was called. */
  destroyed = false;

  /**
   * Wraps an existing buffer; prefer {@link Tensor.zeros} and {@link Tensor.from}.
   * @param gpu the GPU the buffer belongs to
   * @param buffer a storage buffer of at least `numel(shape) * 4` bytes
   * @param shape the dimensions, row-major
   * @param dtype the element type
   */
  constructor(
    readonly gpu: Gpu,
    readonly buffer: GPUBuffer,
    readonly shape: readonly number[],
    readonly dtype: D,
  ) {}

  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }

  /** Allocates a zero-filled tensor. */
  static zeros<D extends DType = "f32">(
    gpu: Gpu,
    shape: readonly number[],
    dtype: D = "f32" as D,
    label?: string,
  ): Tensor<D> {
    assertAlive(gpu);
    const bytes = Math.max(4, numel(shape) * 4);
    if (bytes > gpu.limits.maxStorageBufferBindingSize) {
      throw new RangeError(
        `tensor [${shape}] needs ${bytes} bytes, over the device's binding limit ` +
          `${gpu.limits.maxStorageBufferBindingSize}`,
      );
    }
    // New WebGPU buffers are zero-initialised by the specification.
    const buffer = gpu.device.createBuffer({
      label,
      size: Math.ceil(bytes / 4) * 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    const t = new Tensor(gpu, buffer, [...shape], dtype);
    currentArena?.push(t);
    return t;
  }

  /** Uploads host data into a new tensor of the given shape. */
  static from<D extends DType = "f32">(
    gpu: Gpu,
    data: ArrayLike<number>,
    shape: readonly number[] = [data.length],
    dtype: D = "f32" as D,
    label?: string,
  ): Tensor<D> {
    if (numel(shape) !== data.length) {
      throw new RangeError(`data of length ${data.length} does not fit shape [${shape}]`);
    }
    const t = Tensor.zeros(gpu, shape, dtype, label);
    t.write(data);
    return t;
  }

  /** Overwrites the whole tensor with host data. */
  write(data: ArrayLike<number>): void {
    if (data.length !== this.size) {
      throw new RangeError(`data of length ${data.length} does not fit shape [${this.shape}]`);
    }
    const typed = data instanceof ARRAY_OF[this.dtype]
      ? data as HostArray<D>
      : ARRAY_OF[this.dtype].from(data as ArrayLike<number>);
    // Flush first so earlier recorded dispatches that read this buffer see the old contents.
    flush(this.gpu);
    this.gpu.device.queue.writeBuffer(
      this.buffer,
      0,
      typed.buffer as ArrayBuffer,
      typed.byteOffset,
      typed.byteLength,
    );
  }

  /** Sets every element to zero (recorded in order with dispatches). */
  zero(): void {
    encoder(this.gpu).clearBuffer(this.buffer);
  }

  /** Reads the tensor back to the host, after all recorded work. */
  async read(): Promise<HostArray<D>> {
    const bytes = this.size * 4;
    const staging = this.gpu.device.createBuffer({
      size: Math.max(4, Math.ceil(bytes / 4) * 4),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    if (bytes > 0) encoder(this.gpu).copyBufferToBuffer(this.buffer, 0, staging, 0, bytes);
    flush(this.gpu);
    gpuCounters(this.gpu).readbacks++;
    await staging.mapAsync(GPUMapMode.READ);
    assertAlive(this.gpu);
    const out = new ARRAY_OF[this.dtype](staging.getMappedRange().slice(0, bytes));
    staging.unmap();
    staging.destroy();
    return out as HostArray<D>;
  }

  /** A tensor sharing this buffer with another shape of the same size. */
  reshape(shape: readonly number[]): Tensor<D> {
    if (numel(shape) !== this.size) {
      throw new RangeError(`cannot reshape [${this.shape}] to [${shape}]`);
    }
    return new Tensor(this.gpu, this.buffer, [...shape], this.dtype);
  }

  /** Releases the GPU memory (after recorded work that uses it has been submitted). */
  destroy(): void {
    if (this.destroyed) return;
    flush(this.gpu);
    this.buffer.destroy();
    this.destroyed = true;
  }
}
