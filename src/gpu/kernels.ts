/**
 * Loading WGSL kernels relative to this module (so a URL import finds them), splicing their
 * `//! include` directives (the shared preludes in `kernels/prelude/`) with a line map, compiling
 * them with errors that name the file and line each line really came from, caching pipelines,
 * checking parameter blocks against each kernel's `struct Params`, and recording dispatches into
 * one command encoder that is submitted on {@link flush}.
 *
 * @module
 */
import { assertAlive, type Gpu } from "./device.ts";
import {
  checkParams,
  KernelParamsError,
  type ParamBlock,
  parseParamsStruct,
  type StructField,
} from "./params.ts";

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

const textCache = new Map<string, Promise<string>>();

function readText(url: URL): Promise<string> {
  let text = textCache.get(url.href);
  if (!text) {
    text = fetch(url).then(async (response) => {
      if (!response.ok) throw new Error(`Cannot load kernel ${url}: HTTP ${response.status}`);
      return await response.text();
    });
    textCache.set(url.href, text);
    text.catch(() => textCache.delete(url.href));
  }
  return text;
}

/** Reads one kernel file's WGSL source as written (file: or http(s): URLs alike), unspliced. */
export function kernelSource(file: string): Promise<string> {
  return readText(new URL(file, KERNELS_URL));
}

/** Where a line of a spliced kernel came from. */
export interface LineOrigin {
  /** The file, as `kernels/PATH` (or its full URL when it lies outside `kernels/`). */
  readonly file: string;
  /** The 1-based line in that file. */
  readonly line: number;
}

/** A WGSL `enable` directive of a kernel, and the device feature it needs. */
export interface KernelEnable {
  /** The extension, as written (`f16`, `subgroups`). */
  readonly extension: string;
  /** The WebGPU feature it needs (`shader-f16`, `subgroups`). */
  readonly feature: string;
  /** The 1-based line of the spliced code. */
  readonly line: number;
  /** The 1-based column of the extension's name. */
  readonly column: number;
}

/**
 * A kernel as it is compiled: its source with every `//! include "PATH"` directive followed by
 * the included file (PATH relative to the including file; each file spliced once, the first time
 * it is included), with where every line came from, its parsed `struct Params` and its `enable`
 * directives. See {@link loadKernel}.
 */
export interface KernelModuleSource {
  /** The kernel file, relative to `kernels/`. */
  readonly file: string;
  /** The spliced WGSL. */
  readonly code: string;
  /** origins[i] is where line i + 1 of `code` came from. */
  readonly origins: readonly LineOrigin[];
  /** The members of its `struct Params` (lines of `code`), or null when it declares none. */
  readonly params: readonly StructField[] | null;
  /** Its `enable` directives. */
  readonly enables: readonly KernelEnable[];
  /** `kernels/FILE:LINE` of a 1-based line of `code` (the file alone without a line). */
  where(line?: number): string;
  /** Block signatures already checked against `params` (see {@link dispatch}). */
  readonly checked: Set<string>;
}

/** The display name of a kernel URL: `kernels/PATH` below {@link KERNELS_URL}, else the URL. */
function displayName(url: URL): string {
  return url.href.startsWith(KERNELS_URL.href)
    ? `kernels/${url.href.slice(KERNELS_URL.href.length)}`
    : url.href;
}

const DIRECTIVE = /^\s*\/\/!(.*)$/;
const INCLUDE = /^\s*include\s+"([^"]+)"\s*$/;

async function splice(
  url: URL,
  ancestors: string[],
  seen: Set<string>,
  lines: string[],
  origins: LineOrigin[],
  top: string,
): Promise<void> {
  const name = displayName(url);
  const source = (await readText(url)).split(/\r?\n/);
  if (ancestors.length > 1 && source.at(-1) === "") source.pop();
  for (let i = 0; i < source.length; i++) {
    lines.push(source[i]);
    origins.push({ file: name, line: i + 1 });
    const directive = DIRECTIVE.exec(source[i]);
    if (!directive) continue;
    const at = `${name}:${i + 1}`;
    const include = INCLUDE.exec(directive[1]);
    if (!include) {
      throw new KernelCompileError(top, [
        `${at}: error: unknown directive //!${directive[1]} (the loader knows //! include "FILE")`,
      ]);
    }
    let target: URL;
    try {
      target = new URL(include[1], url);
    } catch {
      throw new KernelCompileError(top, [`${at}: error: cannot include "${include[1]}": bad path`]);
    }
    if (ancestors.includes(target.href)) {
      const chain = [...ancestors.slice(ancestors.indexOf(target.href)), target.href];
      throw new KernelCompileError(top, [
        `${at}: error: include cycle: ${chain.map((h) => displayName(new URL(h))).join(" -> ")}`,
      ]);
    }
    if (seen.has(target.href)) continue;
    seen.add(target.href);
    try {
      await splice(target, [...ancestors, target.href], seen, lines, origins, top);
    } catch (e) {
      if (e instanceof KernelCompileError) throw e;
      throw new KernelCompileError(top, [
        `${at}: error: cannot include "${include[1]}": ${(e as Error).message}`,
      ]);
    }
  }
}

/** WGSL enable-extensions and the device features they need (others: `_` becomes `-`). */
const EXTENSION_FEATURES: Record<string, string> = { f16: "shader-f16" };

function parseEnables(code: string): KernelEnable[] {
  const enables: KernelEnable[] = [];
  code.split("\n").forEach((text, i) => {
    const m = /^(\s*enable\s+)([^;]*);/.exec(text);
    if (!m) return;
    let column = m[1].length + 1;
    for (const part of m[2].split(",")) {
      const extension = part.trim();
      if (extension) {
        enables.push({
          extension,
          feature: EXTENSION_FEATURES[extension] ?? extension.replaceAll("_", "-"),
          line: i + 1,
          column: column + part.length - part.trimStart().length,
        });
      }
      column += part.length + 1;
    }
  });
  return enables;
}

const kernelCache = new Map<string, Promise<KernelModuleSource>>();

/**
 * Loads a kernel (`file` relative to `kernels/`) with its includes spliced in, its `struct
 * Params` parsed and its `enable` directives listed; cached per file. An include directive is a
 * WGSL comment line, `//! include "prelude/reduce.wgsl"` (the path relative to the including
 * file, so http(s) URL imports work alike); a file already spliced into this kernel is not
 * spliced again, and an include cycle, an unreadable include or an unknown `//!` directive is a
 * {@link KernelCompileError} naming the directive's file and line. WGSL wants `enable`
 * directives before any declaration, so only a top-level kernel file carries them.
 */
export function loadKernel(file: string): Promise<KernelModuleSource> {
  let kernel = kernelCache.get(file);
  if (!kernel) {
    kernel = (async () => {
      const url = new URL(file, KERNELS_URL);
      const lines: string[] = [], origins: LineOrigin[] = [];
      await splice(url, [url.href], new Set([url.href]), lines, origins, file);
      const code = lines.join("\n");
      const name = displayName(url);
      const where = (line?: number) => {
        const o = line === undefined ? undefined : origins[line - 1];
        return o ? `${o.file}:${o.line}` : name;
      };
      let params: StructField[] | null;
      try {
        params = parseParamsStruct(code, where);
      } catch (e) {
        throw new KernelCompileError(file, [`${(e as Error).message}`]);
      }
      return {
        file,
        code,
        origins,
        params,
        enables: parseEnables(code),
        where,
        checked: new Set(),
      };
    })();
    kernelCache.set(file, kernel);
    kernel.catch(() => kernelCache.delete(file));
  }
  return kernel;
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

/**
 * Rewrites the line numbers of a compiler message's source excerpt (`┌─ wgsl:LINE:COL` and the
 * numbered gutter) to the lines' own files and lines, keeping the excerpt aligned.
 */
function remapExcerpt(message: string, src: KernelModuleSource, primary: string): string {
  const mapped = message.replace(/\bwgsl:(\d+):(\d+)/g, (all, line: string, col: string) => {
    const o = src.origins[Number(line) - 1];
    return o ? `${o.file}:${o.line}:${col}` : all;
  });
  const lines = mapped.split("\n");
  const head = lines.find((l) => /^ *┌─/.test(l));
  if (!head) return mapped;
  const width = head.indexOf("┌─");
  const gutter = /^ *(\d*) ?$/;
  const labels = lines.map((l) => {
    const m = gutter.exec(l.slice(0, width));
    if (!m || !/^[│┌·=]/.test(l.slice(width))) return null;
    if (!m[1]) return "";
    const o = src.origins[Number(m[1]) - 1];
    if (!o) return m[1];
    return o.file === primary ? String(o.line) : `${o.file}:${o.line}`;
  });
  const newWidth = Math.max(...labels.map((l) => (l === null ? 0 : l.length))) + 1;
  return lines.map((l, i) => {
    const label = labels[i];
    return label === null ? l : `${label.padStart(newWidth - 1)} ${l.slice(width)}`;
  }).join("\n");
}

function formatMessages(src: KernelModuleSource, info: GPUCompilationInfo): string[] {
  return info.messages.map((m) => {
    const o = m.lineNum > 0 ? src.origins[m.lineNum - 1] : undefined;
    const at = o ? `${o.file}:${o.line}:${m.linePos}` : src.where();
    return `${at}: ${m.type}: ${remapExcerpt(m.message, src, o?.file ?? src.where())}`;
  });
}

function checkFeatures(gpu: Gpu, src: KernelModuleSource): void {
  const missing = src.enables.filter((e) => !gpu.features.has(e.feature));
  if (missing.length === 0) return;
  throw new KernelCompileError(
    src.file,
    missing.map((e) => {
      const o = src.origins[e.line - 1];
      const offered = gpu.adapterFeatures.has(e.feature)
        ? "the adapter offers it: add it to REQUESTED_FEATURES in src/gpu/device.ts"
        : "this adapter does not offer it";
      return `${o.file}:${o.line}:${e.column}: error: enable ${e.extension} needs the device ` +
        `feature ${e.feature}, which this device was not given (${offered})`;
    }),
  );
}

async function compileModule(gpu: Gpu, file: string): Promise<GPUShaderModule> {
  const src = await loadKernel(file);
  checkFeatures(gpu, src);
  gpu.device.pushErrorScope("validation");
  const module = gpu.device.createShaderModule({ label: file, code: src.code });
  const [info, error] = await Promise.all([
    module.getCompilationInfo(),
    gpu.device.popErrorScope(),
  ]);
  const errors = info.messages.filter((m) => m.type === "error");
  if (errors.length > 0 || error) {
    const messages = formatMessages(src, info);
    if (messages.length === 0 && error) messages.push(`${src.where()}: ${error.message}`);
    throw new KernelCompileError(file, messages);
  }
  return module;
}

/** Override constants for a pipeline (WGSL `override` declarations). */
export type KernelConstants = Record<string, number>;

/** The kernel each pipeline was built from, for the parameter check of {@link dispatch}. */
const pipelineKernels = new WeakMap<GPUComputePipeline, KernelModuleSource>();

/**
 * Returns the compute pipeline for `entryPoint` in `kernels/<file>`, compiled once and cached per
 * set of override constants. Workgroup sizes and chunk lengths are `override` constants without
 * a default in the WGSL, given here from the launcher's one TypeScript constant (a missing one
 * fails the build, naming it).
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
      const src = await loadKernel(file);
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
      if (!built || failure) {
        throw new KernelCompileError(file, [`${src.where()}: ${entryPoint}: ${failure}`]);
      }
      pipelineKernels.set(built, src);
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
  /**
   * The uniform parameter block (from {@link params}), bound at `@binding(0)`; checked against
   * the kernel's `struct Params` the first time a block of its signature is dispatched.
   */
  params?: ParamBlock;
  /** Workgroup counts in x, y, z. */
  workgroups: [number, number?, number?];
}

function bufferOf(b: Bindable): GPUBuffer {
  return b instanceof GPUBuffer ? b : b.buffer;
}

/**
 * Checks a parameter block against the `struct Params` of the pipeline's kernel, once per kernel
 * file and block signature; throws a {@link KernelParamsError} naming the file and the field.
 */
function checkBlock(p: GPUComputePipeline, block: ParamBlock): void {
  const src = pipelineKernels.get(p);
  if (!src || src.checked.has(block.signature)) return;
  if (!src.params) {
    throw new KernelParamsError(
      `${src.where()}: the launcher packed parameters, but the kernel declares no struct Params`,
    );
  }
  checkParams(src.params, block, src.where);
  src.checked.add(block.signature);
}

/**
 * Records a kernel launch into the current command encoder; it runs at the next {@link flush}.
 * Its parameter block is checked against the kernel's `struct Params` first.
 */
export function dispatch(gpu: Gpu, d: Dispatch): void {
  assertAlive(gpu);
  const c = cachesOf(gpu);
  const [x, y = 1, z = 1] = d.workgroups;
  const maxGroups = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (x > maxGroups || y > maxGroups || z > maxGroups) {
    throw new RangeError(`dispatch of ${x}x${y}x${z} workgroups exceeds the limit ${maxGroups}`);
  }
  if (d.params) checkBlock(d.pipeline, d.params);
  if (x === 0 || y === 0 || z === 0) return;
  const entries: GPUBindGroupEntry[] = [];
  if (d.params) {
    const bytes = new Uint8Array(d.params.bytes);
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
