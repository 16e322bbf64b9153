/**
 * A profiler for GPU work: while it runs, every kernel launch is timed on the GPU clock
 * (`timestamp-query`: each dispatch gets its own compute pass with `timestampWrites`) and
 * attributed to its op family (the kernel file), its entry point, and the phase it ran in
 * (`forward` unless code marks another: {@link Tape.backward} marks `backward`, the optimizer
 * `optimizer`; callers may mark their own with {@link withPhase}). Without `timestamp-query` the
 * launches are still counted, per family and phase, and no per-kernel time is claimed.
 *
 * It also reports the host-side counters of the window: dispatches, queue submits, read-backs
 * (`mapAsync`) and waits (`onSubmittedWorkDone`), the figures that matter on Deno, whose
 * `mapAsync` and `onSubmittedWorkDone` block and then sleep about 10 ms each.
 *
 * @example
 * ```ts
 * import { getGpu } from "./device.ts";
 * import { startProfile } from "./profile.ts";
 * const gpu = await getGpu();
 * const profile = startProfile(gpu);
 * // ... run a training step ...
 * const report = await profile.stop();
 * console.log(report.rows, report.counters);
 * ```
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import {
  type DispatchObserver,
  encoder,
  flush,
  type GpuCounters,
  gpuCounters,
  setDispatchObserver,
} from "./kernels.ts";

/** Queries per query set: two timestamps per dispatch. */
const QUERIES_PER_SET = 4096;

/** One row of a profile: the launches of one kernel family in one phase. */
export interface ProfileRow {
  /** The phase: `forward`, `backward`, `optimizer`, or a caller's own. */
  phase: string;
  /** The op family: the kernel file without `.wgsl` (e.g. `matmul`). */
  family: string;
  /** Launches. */
  dispatches: number;
  /** GPU milliseconds summed over the launches; null without `timestamp-query`. */
  gpuMs: number | null;
  /** The entry points that ran, with their launches and GPU milliseconds. */
  entries: { entry: string; dispatches: number; gpuMs: number | null }[];
}

/** What {@link Profiler.stop} returns. */
export interface ProfileReport {
  /** How kernel times were taken: `timestamp-query`, or `none` (launches counted only). */
  timing: "timestamp-query" | "none";
  /** Wall milliseconds from start to stop (including the final wait for the GPU). */
  wallMs: number;
  /** GPU milliseconds summed over every launch (null without `timestamp-query`). */
  gpuMs: number | null;
  /** Host-side counters of the window. */
  counters: GpuCounters;
  /** One row per phase and family, phases in first-seen order, families by time (or count). */
  rows: ProfileRow[];
}

/** The running profiler of each GPU. */
const active = new WeakMap<Gpu, Profiler>();

interface Launch {
  phase: string;
  family: string;
  entry: string;
  set: number;
  index: number;
}

/** A running profile; {@link startProfile} makes one, {@link Profiler.stop} ends it. */
export class Profiler {
  readonly #gpu: Gpu;
  readonly #timed: boolean;
  readonly #sets: GPUQuerySet[] = [];
  readonly #launches: Launch[] = [];
  readonly #start: GpuCounters;
  readonly #t0 = performance.now();
  #used = QUERIES_PER_SET;
  #stopped = false;
  /** The phase that launches are attributed to now. */
  phase = "forward";

  /** Use {@link startProfile}. */
  constructor(gpu: Gpu) {
    this.#gpu = gpu;
    this.#timed = gpu.features.has("timestamp-query");
    this.#start = { ...gpuCounters(gpu) };
  }

  /** The observer the kernel dispatcher calls for each launch. */
  observer(): DispatchObserver {
    return (label) => {
      const [file = "?", entry = "?"] = label.split("#");
      const family = file.replace(/\.wgsl$/, "");
      if (!this.#timed) {
        this.#launches.push({ phase: this.phase, family, entry, set: -1, index: -1 });
        return undefined;
      }
      if (this.#used + 2 > QUERIES_PER_SET) {
        this.#sets.push(
          this.#gpu.device.createQuerySet({ type: "timestamp", count: QUERIES_PER_SET }),
        );
        this.#used = 0;
      }
      const set = this.#sets.length - 1, index = this.#used;
      this.#used += 2;
      this.#launches.push({ phase: this.phase, family, entry, set, index });
      return {
        querySet: this.#sets[set],
        beginningOfPassWriteIndex: index,
        endOfPassWriteIndex: index + 1,
      };
    };
  }

  /** Ends the profile: waits for the GPU, reads the timestamps, and returns the report. */
  async stop(): Promise<ProfileReport> {
    if (this.#stopped) throw new Error("profile already stopped");
    this.#stopped = true;
    setDispatchObserver(this.#gpu, null);
    active.delete(this.#gpu);
    const gpu = this.#gpu;
    const times = new Map<Launch, number>();
    if (this.#timed && this.#sets.length > 0) {
      const bytes = this.#sets.length * QUERIES_PER_SET * 8;
      const resolved = gpu.device.createBuffer({
        size: bytes,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      });
      const staging = gpu.device.createBuffer({
        size: bytes,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      const enc = encoder(gpu);
      this.#sets.forEach((set, i) => {
        const count = i === this.#sets.length - 1 ? this.#used : QUERIES_PER_SET;
        if (count > 0) enc.resolveQuerySet(set, 0, count, resolved, i * QUERIES_PER_SET * 8);
      });
      enc.copyBufferToBuffer(resolved, 0, staging, 0, bytes);
      flush(gpu);
      await staging.mapAsync(GPUMapMode.READ);
      const stamps = new BigInt64Array(staging.getMappedRange().slice(0));
      staging.unmap();
      for (const b of [staging, resolved]) b.destroy();
      for (const s of this.#sets) s.destroy();
      for (const l of this.#launches) {
        const at = l.set * QUERIES_PER_SET + l.index;
        const ns = Number(stamps[at + 1] - stamps[at]);
        times.set(l, ns > 0 ? ns / 1e6 : 0);
      }
    } else {
      flush(gpu);
      await gpu.device.queue.onSubmittedWorkDone();
    }
    const wallMs = performance.now() - this.#t0;
    const now = gpuCounters(gpu);
    const counters: GpuCounters = {
      dispatches: now.dispatches - this.#start.dispatches,
      submits: now.submits - this.#start.submits,
      readbacks: now.readbacks - this.#start.readbacks,
      waits: now.waits - this.#start.waits,
    };
    const rows = new Map<string, ProfileRow>();
    const entries = new Map<string, ProfileRow["entries"][number]>();
    for (const l of this.#launches) {
      const ms = this.#timed ? times.get(l) ?? 0 : null;
      const key = `${l.phase}\u0000${l.family}`;
      let row = rows.get(key);
      if (!row) {
        row = {
          phase: l.phase,
          family: l.family,
          dispatches: 0,
          gpuMs: ms === null ? null : 0,
          entries: [],
        };
        rows.set(key, row);
      }
      row.dispatches++;
      if (ms !== null) row.gpuMs! += ms;
      const ekey = `${key}\u0000${l.entry}`;
      let e = entries.get(ekey);
      if (!e) {
        e = { entry: l.entry, dispatches: 0, gpuMs: ms === null ? null : 0 };
        entries.set(ekey, e);
        row.entries.push(e);
      }
      e.dispatches++;
      if (ms !== null) e.gpuMs! += ms;
    }
    const phases = [...new Set([...rows.values()].map((r) => r.phase))];
    const weight = (r: { gpuMs: number | null; dispatches: number }) => r.gpuMs ?? r.dispatches;
    const sorted = phases.flatMap((p) =>
      [...rows.values()].filter((r) => r.phase === p).sort((a, b) => weight(b) - weight(a))
    );
    for (const r of sorted) r.entries.sort((a, b) => weight(b) - weight(a));
    return {
      timing: this.#timed ? "timestamp-query" : "none",
      wallMs,
      gpuMs: this.#timed ? sorted.reduce((s, r) => s + r.gpuMs!, 0) : null,
      counters,
      rows: sorted,
    };
  }
}

/**
 * Starts profiling every kernel launch on `gpu` until {@link Profiler.stop}. Work recorded
 * before this call is submitted first, so it is not counted.
 */
export function startProfile(gpu: Gpu): Profiler {
  if (active.get(gpu)) throw new Error("a profile is already running on this GPU");
  flush(gpu);
  const profiler = new Profiler(gpu);
  active.set(gpu, profiler);
  setDispatchObserver(gpu, profiler.observer());
  return profiler;
}

/**
 * Runs `fn` with launches attributed to `phase` when a profile is running (and restores the
 * previous phase after); without a profile it just runs `fn`.
 */
export async function withPhase<T>(gpu: Gpu, phase: string, fn: () => Promise<T>): Promise<T> {
  const profiler = active.get(gpu);
  if (!profiler) return await fn();
  const previous = profiler.phase;
  profiler.phase = phase;
  try {
    return await fn();
  } finally {
    profiler.phase = previous;
  }
}
