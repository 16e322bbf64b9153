/**
 * The WebGPU adapter and device: acquired once, with the adapter's full limits and only the
 * optional features the code uses ({@link REQUESTED_FEATURES}).
 *
 * @module
 */

/**
 * The optional features the code uses, each with what uses it; requested when the adapter offers
 * them, and no others. A kernel that needs a feature declares it with its WGSL `enable`
 * directive (`enable f16;` needs `shader-f16`, `enable subgroups;` needs `subgroups`) and gets an
 * entry here; the kernel loader refuses a kernel whose feature the device was not given, naming
 * the kernel's file and line.
 */
export const REQUESTED_FEATURES: Readonly<Partial<Record<GPUFeatureName, string>>> = {
  "timestamp-query": "GPU-clock timing of launches (src/gpu/profile.ts, the benchmarks)",
};

/** Raised when no WebGPU adapter can be had; its message says what to install. */
export class GpuUnavailableError extends Error {
  /**
   * Creates the error.
   * @param detail what went wrong, appended to the installation advice
   */
  constructor(detail: string) {
    super(
      `No WebGPU adapter is available (${detail}).\n` +
        "selfmargin needs a WebGPU adapter: a GPU with a Vulkan, Metal or D3D12 driver, or a " +
        "software one.\nOn Debian/Ubuntu without a GPU: `sudo apt-get install mesa-vulkan-drivers` " +
        "(lavapipe) or the Mesa GL drivers (`libgl1-mesa-dri`, llvmpipe).",
    );
    this.name = "GpuUnavailableError";
  }
}

/** Raised by any GPU work after the device was lost. */
export class GpuDeviceLostError extends Error {
  /**
   * Creates the error.
   * @param info the loss information reported by the device
   */
  constructor(info: GPUDeviceLostInfo) {
    super(`The WebGPU device was lost (${info.reason}): ${info.message}`);
    this.name = "GpuDeviceLostError";
  }
}

/** A WebGPU validation or out-of-memory error that no error scope caught. */
export class GpuError extends Error {
  /**
   * Creates the error.
   * @param message the implementation's message
   */
  constructor(message: string) {
    super(`WebGPU error: ${message}`);
    this.name = "GpuError";
  }
}

/** The acquired adapter and device, and what they granted. */
export interface Gpu {
  /** The adapter the device came from. */
  readonly adapter: GPUAdapter;
  /** The device every buffer and pipeline belongs to. */
  readonly device: GPUDevice;
  /** A human-readable adapter name (description, else vendor/architecture). */
  readonly adapterName: string;
  /** Features granted to the device: those of {@link REQUESTED_FEATURES} the adapter offers. */
  readonly features: ReadonlySet<string>;
  /** Every feature the adapter offers (requested or not), for reports. */
  readonly adapterFeatures: ReadonlySet<string>;
  /** Limits granted to the device (the adapter's maxima). */
  readonly limits: GPUSupportedLimits;
  /** Whether the adapter is a CPU/software implementation (llvmpipe, lavapipe, WARP). */
  readonly isSoftware: boolean;
  /** Set when the device is lost; every later submission throws it. */
  lost: GpuDeviceLostError | null;
  /**
   * The first uncaptured WebGPU error since the last check; the next GPU call throws it (and
   * clears it), so a bad dispatch fails the operation instead of yielding garbage silently.
   */
  error: GpuError | null;
}

let cached: Promise<Gpu> | null = null;

/**
 * Returns the process-wide GPU, acquiring it on first use.
 *
 * @example
 * ```ts
 * import { getGpu } from "./device.ts";
 * const gpu = await getGpu();
 * console.log(gpu.adapterName, [...gpu.features], [...gpu.adapterFeatures]);
 * ```
 */
export function getGpu(): Promise<Gpu> {
  if (!cached) {
    cached = acquireGpu();
    cached.catch(() => (cached = null));
  }
  return cached;
}

function describeAdapter(info: GPUAdapterInfo | undefined): string {
  if (!info) return "unknown adapter";
  const parts = [info.description, info.vendor && `vendor ${info.vendor}`, info.architecture]
    .filter((s) => s && String(s).length > 0);
  return parts.length ? parts.join(", ") : "unknown adapter";
}

/**
 * On Linux, Mesa's Vulkan drivers (lavapipe included) look for a Wayland display when the
 * adapter is requested, and libwayland prints `error: XDG_RUNTIME_DIR is invalid or not set in
 * the environment.` (twice) when that variable is unset, before anything has gone wrong. When
 * it is unset (or not an absolute path), point it at a private directory: `<tmp>/selfmargin-
 * runtime-<uid>`, created with mode 0700 (or a fresh temporary directory if that name is taken
 * by someone else or is not private). No Wayland socket is there, so the probe fails quietly, as
 * it does under a desktop session without a compositor. Child processes inherit the variable.
 * Without the permissions to do this, nothing changes but the message.
 */
function ensureRuntimeDir(): string | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    const current = Deno.env.get("XDG_RUNTIME_DIR");
    if (current && current.startsWith("/")) return current;
    const tmp = Deno.env.get("TMPDIR");
    const base = tmp && tmp.startsWith("/") ? tmp.replace(/\/+$/, "") || "/" : "/tmp";
    const uid = Deno.uid();
    let dir = `${base}/selfmargin-runtime-${uid}`;
    try {
      Deno.mkdirSync(dir, { mode: 0o700 });
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    const st = Deno.lstatSync(dir);
    if (!st.isDirectory || st.uid !== uid || ((st.mode ?? 0) & 0o077) !== 0) {
      dir = Deno.makeTempDirSync({ prefix: "selfmargin-runtime-" }); // mode 0700, unique
    }
    Deno.env.set("XDG_RUNTIME_DIR", dir);
    return dir;
  } catch {
    return undefined; // no env, sys or write permission: only the message remains
  }
}

async function acquireGpu(): Promise<Gpu> {
  if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) {
    throw new GpuUnavailableError("this runtime exposes no navigator.gpu");
  }
  ensureRuntimeDir();
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch (e) {
    throw new GpuUnavailableError(`requestAdapter failed: ${(e as Error).message}`);
  }
  if (!adapter) throw new GpuUnavailableError("requestAdapter returned null");

  const requiredFeatures = (Object.keys(REQUESTED_FEATURES) as GPUFeatureName[])
    .filter((f) => adapter.features.has(f));
  // Ask for every limit at the adapter's maximum: the defaults (128 MiB per binding, 16 KiB of
  // workgroup memory) are far too small for real models.
  const requiredLimits: Record<string, number> = {};
  const limits = adapter.limits as unknown as Record<string, number>;
  for (const key in limits) {
    const value = limits[key];
    if (typeof value === "number") requiredLimits[key] = value;
  }
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  const info = (adapter as GPUAdapter & { info?: GPUAdapterInfo }).info;
  const adapterName = describeAdapter(info);
  const isSoftware = Boolean(
    (info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter,
  ) || /llvmpipe|lavapipe|swiftshader|warp|software/i.test(adapterName);
  const gpu: Gpu = {
    adapter,
    device,
    adapterName,
    features: new Set([...device.features]),
    adapterFeatures: new Set([...adapter.features]),
    limits: device.limits,
    isSoftware,
    lost: null,
    error: null,
  };
  device.lost.then((lostInfo) => {
    if (lostInfo.reason === "destroyed") return;
    gpu.lost = new GpuDeviceLostError(lostInfo);
    console.error(gpu.lost.message);
  });
  device.addEventListener("uncapturederror", (event) => {
    const message = (event as GPUUncapturedErrorEvent).error.message;
    gpu.error ??= new GpuError(message);
  });
  return gpu;
}

/** Throws the device-lost error if the device is gone, or a pending uncaptured GPU error. */
export function assertAlive(gpu: Gpu): void {
  if (gpu.lost) throw gpu.lost;
  if (gpu.error) {
    const e = gpu.error;
    gpu.error = null;
    throw e;
  }
}
