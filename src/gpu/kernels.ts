/**
 * Loading WGSL kernels relative to this module (so a URL import finds them), compiling them with
 * errors that name the file and line, caching pipelines, and recording dispatches into one
 * command encoder that is submitted on {@link flush}.
 *
 * @module
 */
import { assertAlive, type Gpu } from "./device.ts";

/** Raised when a WGSL kernel fails to compile or its pipeline fails to build. */
export class KernelCompileError extends Error {
  /**
   * Creates an instance.
   * @param file the kernel file, relative to `kernels/`
   * @param messages the compiler's messages, formatted `file:line:col: kind: text`
   */
  constructor(readonly file: string, readonly messages: string[]) {
    super(`WGSL kernel ${file} failed to compile:\n${messages.join("\n")}`);
    this.name = "KernelCompileError";
  }
}

/** Where the kernels live: `kernels/` beside `src/`, resolved from this module's URL. */
export const KERNELS_URL = new URL("../../kernels/", import.meta.url);

const sourceCache = new Map<string, Promise<string>>();

/** Reads a kernel file's WGSL source (file: or http(s): URLs alike). */
export function kernelSource(file: string): Promise<string> {
  let source = sourceCache.get(file);
  if (!source) {
    const url = new URL(file, KERNELS_URL);
    source = fetch(url).then(async (response) => {
      if (!response.ok) throw new Error(`Cannot load kernel ${url}: HTTP ${response.status}`);
      return await response.text();
    });
    sourceCache.set(file, source);
    source.catch(() => sourceCache.delete(file));
  }
  return source;
}

/** Host-side counts of GPU traffic since the GPU was acquired (see {@link gpuCounters}). */
export interface GpuCounters {
  /** Kernel launches recorded. */
  dispatches: number;
  /** Queue submissions. */
  submits: number;
  /** Buffers mapped for reading (`mapAsync`): each blocks until the GPU is done. */
  readbacks: number;
  /** Explicit waits for the queue (`onSubmittedWorkDone`). */
  waits: number;
}

/**
 * Called for each launch with the pipeline's label (`file#entryPoint#constants`); a returned
 * descriptor puts the launch in a compute pass of its own with those timestamp writes.
 */
export type DispatchObserver = (
  label: string,
) => GPUComputePassTimestampWrites | undefined;

interface GpuCaches {
  counters: GpuCounters;
  observer: DispatchObserver | null;
  modules: Map<string, Promise<GPUShaderModule>>;
  pipelines: Map<string, Promise<GPUComputePipeline>>;
  encoder: GPUCommandEncoder | null;
  pass: GPUComputePassEncoder | null;
  pendingDispatches: number;
  transient: GPUBuffer[];
}

const caches = new WeakMap<Gpu, GpuCaches>();

function cachesOf(gpu: Gpu): GpuCaches {
  let c = caches.get(gpu);
  if (!c) {
    c = {
      counters: { dispatches: 0, submits: 0, readbacks: 0, waits: 0 },
      observer: null,
      modules: new Map(),
      pipelines: new Map(),
      encoder: null,
      pass: null,
      pendingDispatches: 0,
      transient: [],
    };
    caches.set(gpu, c);
  }
  return c;
}

/**
 * The live counters of `gpu`'s traffic (launches, submits, read-backs, waits); copy them to
 * compare two moments.
 */
export function gpuCounters(gpu: Gpu): GpuCounters {
  return cachesOf(gpu).counters;
}

/** Installs (or, with null, removes) the observer of every launch; used by the profiler. */
export function setDispatchObserver(gpu: Gpu, observer: DispatchObserver | null): void {
  cachesOf(gpu).observer = observer;
}

function formatMessages(file: string, info: GPUCompilationInfo): string[] {
  return info.messages.map((m) =>
    `kernels/${file}:${m.lineNum}:${m.linePos}: ${m.type}: ${m.message}`
  );
}

async function compileModule(gpu: Gpu, file: string): Promise<GPUShaderModule> {
  const code = await kernelSource(file);
  gpu.device.pushErrorScope("validation");
  const module = gpu.device.createShaderModule({ label: file, code });
  const [info, error] = await Promise.all([
    module.getCompilationInfo(),
    gpu.device.popErrorScope(),
  ]);
  const errors = info.messages.filter((m) => m.type === "error");
  if (errors.length > 0 || error) {
    const messages = formatMessages(file, info);
    if (messages.length === 0 && error) messages.push(`kernels/${file}: ${error.message}`);
    throw new KernelCompileError(file, messages);
  }
  return module;
}

/** Override constants for a pipeline (WGSL `override` declarations). */
export type KernelConstants = Record<string, number>;

/**
 * Returns the compute pipeline for `entryPoint` in `kernels/<file>`, compiled once and cached per
 * set of override constants.
 */
export function pipeline(
  gpu: Gpu,
  file: string,
  entryPoint: string,
  constants: KernelConstants = {},
): Promise<GPUComputePipeline> {
  const c = cachesOf(gpu);
  const constantKey = Object.keys(constants).sort().map((k) => `${k}=${constants[k]}`).join(",");
  const key = `${file}#${entryPoint}#${constantKey}`;
  let p = c.pipelines.get(key);
  if (!p) {
    let module = c.modules.get(file);
    if (!module) {
      module = compileModule(gpu, file);
      c.modules.set(file, module);
      module.catch(() => c.modules.delete(file));
    }
    p = module.then(async (m) => {
      gpu.device.pushErrorScope("validation");
      let built: GPUComputePipeline | null = null;
      let failure = "";
      try {
        built = await gpu.device.createComputePipelineAsync({
          label: key,
          layout: "auto",
          compute: { module: m, entryPoint, constants },
        });
      } catch (e) {
        failure = (e as Error).message;
      }
      const error = await gpu.device.popErrorScope();
      if (error) failure ||= error.message;
      if (!built || failure) throw new KernelCompileError(file, [`${entryPoint}: ${failure}`]);
      return built;
    });
    c.pipelines.set(key, p);
    p.catch(() => c.pipelines.delete(key));
  }
  return p;
}

/** A buffer binding: a raw GPU buffer or anything holding one (a tensor). */
export type Bindable = GPUBuffer | { readonly buffer: GPUBuffer };

/** One kernel launch. */
export interface Dispatch {
  /** The pipeline from {@link pipeline}. */
  pipeline: GPUComputePipeline;
  /**
   * Storage buffers bound at `@group(0) @binding(1..n)` in order; binding 0 is the uniform
   * parameter block when `params` is given.
   */
  buffers: Bindable[];
  /** The uniform parameter block, bound at `@binding(0)`. */
  params?: ArrayBufferView | ArrayBuffer;
  /** Workgroup counts in x, y, z. */
  workgroups: [number, number?, number?];
}

function bufferOf(b: Bindable): GPUBuffer {
  return b instanceof GPUBuffer ? b : b.buffer;
}

/** Records a kernel launch into the current command encoder; it runs at the next {@link flush}. */
export function dispatch(gpu: Gpu, d: Dispatch): void {
  assertAlive(gpu);
  const c = cachesOf(gpu);
  const [x, y = 1, z = 1] = d.workgroups;
  const maxGroups = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (x > maxGroups || y > maxGroups || z > maxGroups) {
    throw new RangeError(`dispatch of ${x}x${y}x${z} workgroups exceeds the limit ${maxGroups}`);
  }
  if (x === 0 || y === 0 || z === 0) return;
  const entries: GPUBindGroupEntry[] = [];
  if (d.params) {
    const bytes = d.params instanceof ArrayBuffer
      ? new Uint8Array(d.params)
      : new Uint8Array(d.params.buffer, d.params.byteOffset, d.params.byteLength);
    const size = Math.max(16, Math.ceil(bytes.byteLength / 16) * 16);
    const uniform = gpu.device.createBuffer({
      size,
      usage: GPUBufferUsage.UNIFORM,
      mappedAtCreation: true,
    });
    new Uint8Array(uniform.getMappedRange()).set(bytes);
    uniform.unmap();
    c.transient.push(uniform);
    entries.push({ binding: 0, resource: { buffer: uniform } });
  }
  d.buffers.forEach((b, i) => entries.push({ binding: i + 1, resource: { buffer: bufferOf(b) } }));
  const bindGroup = gpu.device.createBindGroup({
    layout: d.pipeline.getBindGroupLayout(0),
    entries,
  });
  if (!c.encoder) c.encoder = gpu.device.createCommandEncoder();
  const timestampWrites = c.observer?.(d.pipeline.label);
  if (timestampWrites) {
    // Profiling: the launch gets a pass of its own, timed on the GPU clock.
    c.pass?.end();
    c.pass = c.encoder.beginComputePass({ timestampWrites });
  }
  if (!c.pass) c.pass = c.encoder.beginComputePass();
  c.pass.setPipeline(d.pipeline);
  c.pass.setBindGroup(0, bindGroup);
  c.pass.dispatchWorkgroups(x, y, z);
  if (timestampWrites) {
    c.pass.end();
    c.pass = null;
  }
  c.pendingDispatches++;
  c.counters.dispatches++;
  // Keep command buffers bounded so memory for transient uniforms stays small.
  if (c.pendingDispatches >= 256) flush(gpu);
}

/**
 * Gives access to the current command encoder for copies and clears, ending any open compute
 * pass so the commands keep their order relative to recorded dispatches.
 */
export function encoder(gpu: Gpu): GPUCommandEncoder {
  assertAlive(gpu);
  const c = cachesOf(gpu);
  if (c.pass) {
    c.pass.end();
    c.pass = null;
  }
  if (!c.encoder) c.encoder = gpu.device.createCommandEncoder();
  return c.encoder;
}

/**
 * Ends any open compute pass and opens a new one with `descriptor` (for example with
 * `timestampWrites`); dispatches recorded after this go into it until {@link encoder} or
 * {@link flush} ends it. Benchmarks use it to time a run of dispatches on the GPU clock.
 */
export function beginComputePass(gpu: Gpu, descriptor?: GPUComputePassDescriptor): void {
  const enc = encoder(gpu);
  cachesOf(gpu).pass = enc.beginComputePass(descriptor);
}

/** Submits everything recorded so far. */
export function flush(gpu: Gpu): void {
  assertAlive(gpu);
  const c = cachesOf(gpu);
  if (!c.encoder) return;
  if (c.pass) {
    c.pass.end();
    c.pass = null;
  }
  gpu.device.queue.submit([c.encoder.finish()]);
  c.counters.submits++;
  c.encoder = null;
  c.pendingDispatches = 0;
  for (const b of c.transient) b.destroy();
  c.transient = [];
}

/** Submits recorded work and waits until the GPU has finished it. */
export async function synchronize(gpu: Gpu): Promise<void> {
  flush(gpu);
  cachesOf(gpu).counters.waits++;
  await gpu.device.queue.onSubmittedWorkDone();
  assertAlive(gpu);
}

/**
 * Workgroup counts for a flat 1-D launch of `invocations` invocations, `workgroupSize` per
 * workgroup, folded into a second dimension when one dimension would exceed the device's
 * `maxComputeWorkgroupsPerDimension` (65535 on most devices). The kernel recovers its flat index
 * as `gid.x + gid.y * (nwg.x * workgroupSize)` (with `@builtin(num_workgroups) nwg`), or, for one
 * workgroup per item (`workgroupSize` 1 here), `wid.x + wid.y * nwg.x`; it must skip indices at
 * or past `invocations`, since the folded grid may overshoot.
 *
 * @example
 * ```ts
 * dispatch(gpu, { pipeline: p, buffers: [x, y], workgroups: grid1d(gpu, n, 64) });
 * ```
 */
export function grid1d(gpu: Gpu, invocations: number, workgroupSize = 1): [number, number] {
  const groups = Math.ceil(invocations / workgroupSize);
  const maxGroups = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= maxGroups) return [groups, 1];
  const y = Math.ceil(groups / maxGroups);
  if (y > maxGroups) throw new RangeError(`grid1d: ${invocations} invocations are too many`);
  return [Math.ceil(groups / y), y];
}
