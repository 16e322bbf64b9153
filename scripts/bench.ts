/**
 * Benchmarks of the GPU core, one section per concern (`matmul`, `numpy`; later issues add
 * `encode`, `train`, ... by registering a function in {@link SECTIONS}).
 *
 * `deno task bench --json` prints one JSON object:
 * `{ adapter, features, isSoftware, timing, matmul: [{m, n, k, transA, transB, gflops, ms,
 * variant}], numpy?: [{m, n, k, transA, transB, gflops, ms}] | null, numpyNote?, ... }`.
 *
 * GPU time comes from `timestamp-query` (a compute pass with `timestampWrites` around the timed
 * dispatches, resolved with `resolveQuerySet`) when the device grants it, else from wall time
 * around `onSubmittedWorkDone`. The numpy section runs `a @ b` in a `python3` child process in
 * the same run, so the ratio is read from one machine state. The matmul path imports no npm
 * package, so a bare `deno compile`d binary runs it offline.
 *
 * @module
 */
import { getGpu, type Gpu } from "../src/gpu/device.ts";
import { beginComputePass, encoder, flush, synchronize } from "../src/gpu/kernels.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { matmulInto, matmulPlan, type MatmulVariant } from "../src/ops/matmul.ts";

/** One matmul problem: op(A) is m x k, op(B) is k x n. */
export interface Shape {
  /** Rows of op(A) and C. */
  m: number;
  /** Columns of op(B) and C. */
  n: number;
  /** Inner dimension. */
  k: number;
  /** A stored k x m. */
  transA: boolean;
  /** B stored n x k. */
  transB: boolean;
}

/** Parsed command-line options. */
export interface BenchOptions {
  /** Print one JSON object instead of a table. */
  json: boolean;
  /** Sections to run, in order. */
  only: string[];
  /** Problems for the matmul and numpy sections. */
  shapes: Shape[];
  /** Timed repetitions (the best is reported). */
  iters: number;
  /** Untimed runs first (pipeline compilation, caches). */
  warmup: number;
  /** Force a matmul kernel instead of the per-adapter choice. */
  variant?: MatmulVariant;
  /** Override the blocked kernel's block (row groups x column groups of 4, e.g. 2x2). */
  blocking?: { RG: number; CG: number };
  /** encode section: SciFact documents to encode (default 1000). */
  docs?: number;
  /** train section: triples per TF.js step (default 4; 0 skips TF.js). */
  tfjsBatch?: number;
}

/** What a section gets: the options, the GPU, and the result object to fill. */
export interface BenchContext {
  /** Parsed options. */
  options: BenchOptions;
  /** The acquired GPU. */
  gpu: Gpu;
  /** The JSON result; each section adds its own keys. */
  result: Record<string, unknown>;
  /** Progress lines (stderr), silent in `--json` mode only for stdout purity. */
  log: (line: string) => void;
}

const HELP = `deno task bench [options]

Benchmarks the WebGPU kernels (and numpy's a @ b beside them, when python3 + numpy exist).

Options:
  --json                 print one JSON object on stdout (progress goes to stderr)
  --only LIST            sections to run, comma-separated (default: ${"matmul,numpy"})
                         available: SECTIONS
  --shapes LIST          matmul problems MxNxK, comma-separated; suffix :NT, :TN or :TT for
                         transposed operands (A stored KxM with T first, B stored NxK with T
                         second). Default: 1024x1024x1024 in all four transpose variants,
                         4096x768x768, 4096x768x3072 (BERT-base layer shapes), 768x768x4093:TN
                         (a weight gradient Xᵀ·dY over a ragged batch·seq)
  --iters N              timed repetitions per problem, best reported (default 3)
  --warmup N             untimed runs before timing (default 1)
  --variant NAME         force the matmul kernel: naive | blocked
  --blocking RGxCG       blocked kernel's block in groups of 4 rows x 4 columns (RG 1..8,
                         CG 1..4), e.g. 8x4 = 32x16 outputs per invocation; default per adapter
  --docs N               encode section: first N SciFact documents (default 1000; TF.js's
                         cpu backend takes seconds per document, so e.g. --docs 100)
  --tfjs-batch N         train section: triples per TF.js step beside ours (default 4, 0 skips
                         TF.js; its cpu backend takes seconds per triple)
                         (torch section: the same step in PyTorch on the CPU, needs
                         python3-torch; after train, e.g. --only train,torch, it adds the ratio)
  --help                 this text
`;

const DEFAULT_SHAPES = "1024x1024x1024,1024x1024x1024:NT,1024x1024x1024:TN,1024x1024x1024:TT," +
  "4096x768x768,4096x768x3072,768x768x4093:TN";

function parseShapes(list: string): Shape[] {
  return list.split(",").filter((s) => s.trim()).map((item) => {
    const [dims, trans = "NN"] = item.trim().split(":");
    const parts = dims.split("x").map(Number);
    if (parts.length !== 3 || parts.some((d) => !Number.isInteger(d) || d <= 0)) {
      throw new RangeError(`bad shape "${item}": expected MxNxK, e.g. 1024x768x3072`);
    }
    if (!/^[NT][NT]$/.test(trans)) throw new RangeError(`bad transpose "${trans}" in "${item}"`);
    return {
      m: parts[0],
      n: parts[1],
      k: parts[2],
      transA: trans[0] === "T",
      transB: trans[1] === "T",
    };
  });
}

/** Parses command-line arguments; throws with a clear message on bad input. */
export function parseArgs(args: string[]): BenchOptions | "help" {
  const options: BenchOptions = {
    json: false,
    only: ["matmul", "numpy"],
    shapes: parseShapes(DEFAULT_SHAPES),
    iters: 3,
    warmup: 1,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const [flag, inline] = arg.includes("=") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = () => {
      const v = inline ?? args[++i];
      if (v === undefined) throw new RangeError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--help":
      case "-h":
        return "help";
      case "--json":
        options.json = true;
        break;
      case "--only":
        options.only = value().split(",").map((s) => s.trim()).filter(Boolean);
        for (const s of options.only) {
          if (!(s in SECTIONS)) {
            throw new RangeError(`unknown section "${s}" (have ${Object.keys(SECTIONS)})`);
          }
        }
        break;
      case "--shapes":
        options.shapes = parseShapes(value());
        break;
      case "--iters":
        options.iters = Math.max(1, parseInt(value()));
        break;
      case "--warmup":
        options.warmup = Math.max(0, parseInt(value()));
        break;
      case "--variant": {
        const v = value();
        if (v !== "naive" && v !== "blocked") throw new RangeError(`unknown variant "${v}"`);
        options.variant = v;
        break;
      }
      case "--docs": {
        const n = Number(value());
        if (!Number.isInteger(n) || n <= 0) throw new RangeError("--docs takes a positive integer");
        options.docs = n;
        break;
      }
      case "--tfjs-batch": {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 0) {
          throw new RangeError("--tfjs-batch takes a non-negative integer");
        }
        options.tfjsBatch = n;
        break;
      }
      case "--blocking": {
        const [RG, CG] = value().split("x").map(Number);
        if (!(RG >= 1 && RG <= 8 && CG >= 1 && CG <= 4) || !Number.isInteger(RG + CG)) {
          throw new RangeError("--blocking takes RGxCG with RG in 1..8 and CG in 1..4");
        }
        options.blocking = { RG, CG };
        break;
      }
      default:
        throw new RangeError(`unknown option "${arg}" (see --help)`);
    }
  }
  if (!Number.isFinite(options.iters) || !Number.isFinite(options.warmup)) {
    throw new RangeError("--iters and --warmup take integers");
  }
  return options;
}

function shapeLabel(s: Shape): string {
  return `${s.m}x${s.n}x${s.k}:${s.transA ? "T" : "N"}${s.transB ? "T" : "N"}`;
}

function randomData(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 4294967296 - 0.5;
  }
  return out;
}

/**
 * Times `record` (which records GPU work) with the GPU clock when `timestamp-query` is
 * granted, else by wall time to `onSubmittedWorkDone`; returns milliseconds per call.
 */
async function timeGpu(gpu: Gpu, record: () => Promise<void>, calls: number): Promise<number> {
  await synchronize(gpu);
  if (gpu.features.has("timestamp-query")) {
    const querySet = gpu.device.createQuerySet({ type: "timestamp", count: 2 });
    const resolve = gpu.device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    const readback = gpu.device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    beginComputePass(gpu, {
      timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 },
    });
    for (let i = 0; i < calls; i++) await record();
    const enc = encoder(gpu); // ends the timed pass
    enc.resolveQuerySet(querySet, 0, 2, resolve, 0);
    enc.copyBufferToBuffer(resolve, 0, readback, 0, 16);
    flush(gpu);
    await readback.mapAsync(GPUMapMode.READ);
    const [t0, t1] = new BigInt64Array(readback.getMappedRange());
    const ns = Number(t1 - t0);
    readback.unmap();
    for (const b of [readback, resolve]) b.destroy();
    querySet.destroy();
    if (ns > 0) return ns / 1e6 / calls;
    // A zero or negative span means the clock did not tick: fall through to wall time.
  }
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) await record();
  await synchronize(gpu);
  return (performance.now() - t0) / calls;
}

/** matmul: GFLOPS of the library's matmul over the requested problems. */
async function matmulSection(ctx: BenchContext): Promise<void> {
  const { gpu, options } = ctx;
  const rows: Record<string, unknown>[] = [];
  for (const s of options.shapes) {
    const a = Tensor.from(gpu, randomData(s.m * s.k, 1), s.transA ? [s.k, s.m] : [s.m, s.k]);
    const b = Tensor.from(gpu, randomData(s.k * s.n, 2), s.transB ? [s.n, s.k] : [s.k, s.n]);
    const c = Tensor.zeros(gpu, [s.m, s.n]);
    const opts = {
      transA: s.transA,
      transB: s.transB,
      variant: options.variant,
      blocking: options.blocking,
    };
    const plan = matmulPlan(gpu, a, b, opts);
    const run = () => matmulInto(gpu, a, b, c, opts);
    for (let i = 0; i < options.warmup; i++) await run();
    await synchronize(gpu);
    let best = Infinity;
    for (let i = 0; i < options.iters; i++) best = Math.min(best, await timeGpu(gpu, run, 1));
    const gflops = (2 * s.m * s.n * s.k) / (best * 1e6);
    const variant = plan.blocking
      ? `${plan.variant} ${4 * plan.blocking.RG}x${4 * plan.blocking.CG} wg${plan.blocking.WG}`
      : plan.variant;
    rows.push({
      m: s.m,
      n: s.n,
      k: s.k,
      transA: s.transA,
      transB: s.transB,
      gflops: round(gflops),
      ms: round(best),
      variant,
    });
    ctx.log(
      `matmul ${shapeLabel(s)}: ${best.toFixed(2)} ms, ${gflops.toFixed(2)} GFLOPS (${variant})`,
    );
    for (const t of [a, b, c]) t.destroy();
  }
  ctx.result.matmul = rows;
}

const NUMPY_SCRIPT = `
import json, sys, time
import numpy as np
cfg = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
out = []
for s in cfg["shapes"]:
    m, n, k = s["m"], s["n"], s["k"]
    a = rng.random((k, m) if s["transA"] else (m, k), dtype=np.float32) - 0.5
    b = rng.random((n, k) if s["transB"] else (k, n), dtype=np.float32) - 0.5
    opa = a.T if s["transA"] else a
    opb = b.T if s["transB"] else b
    for _ in range(cfg["warmup"]):
        opa @ opb
    best = float("inf")
    for _ in range(cfg["iters"]):
        t0 = time.perf_counter()
        opa @ opb
        best = min(best, time.perf_counter() - t0)
    out.append({"m": m, "n": n, "k": k, "transA": s["transA"], "transB": s["transB"],
                "gflops": 2 * m * n * k / best / 1e9, "ms": best * 1e3})
cfg_info = {}
try:
    cfg_info = {"numpy": np.__version__}
except Exception:
    pass
print(json.dumps({"rows": out, "info": cfg_info}))
`;

async function runPython(args: string[]): Promise<{ ok: boolean; out: string; err: string }> {
  try {
    const r = await new Deno.Command("python3", { args, stdout: "piped", stderr: "piped" })
      .output();
    const dec = new TextDecoder();
    return { ok: r.success, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
  } catch (e) {
    return { ok: false, out: "", err: (e as Error).message };
  }
}

/** numpy: `a @ b` (OpenBLAS or whatever numpy links) on the same problems, for the ratio. */
async function numpySection(ctx: BenchContext): Promise<void> {
  const { options } = ctx;
  let probe = await runPython(["-c", "import numpy"]);
  if (!probe.ok && /No module named/.test(probe.err)) {
    ctx.log("numpy: not installed; trying `python3 -m pip install --user numpy`");
    await runPython(["-m", "pip", "install", "--quiet", "--user", "numpy"]);
    probe = await runPython(["-c", "import numpy"]);
  }
  if (!probe.ok) {
    ctx.result.numpy = null;
    ctx.result.numpyNote = `numpy unavailable: ${probe.err.trim().split("\n").pop()}`;
    ctx.log(String(ctx.result.numpyNote));
    return;
  }
  const cfg = JSON.stringify({
    shapes: options.shapes,
    iters: Math.max(options.iters, 3),
    warmup: Math.max(options.warmup, 1),
  });
  const r = await runPython(["-c", NUMPY_SCRIPT, cfg]);
  if (!r.ok) {
    ctx.result.numpy = null;
    ctx.result.numpyNote = `numpy run failed: ${r.err.trim().split("\n").pop()}`;
    ctx.log(String(ctx.result.numpyNote));
    return;
  }
  const parsed = JSON.parse(r.out) as {
    rows: Record<string, number | boolean>[];
    info: Record<string, string>;
  };
  ctx.result.numpy = parsed.rows.map((row) => ({
    ...row,
    gflops: round(row.gflops as number),
    ms: round(row.ms as number),
  }));
  ctx.result.numpyInfo = parsed.info;
  for (const row of parsed.rows) {
    ctx.log(
      `numpy ${row.m}x${row.n}x${row.k}:${row.transA ? "T" : "N"}${row.transB ? "T" : "N"}: ` +
        `${(row.ms as number).toFixed(2)} ms, ${(row.gflops as number).toFixed(2)} GFLOPS`,
    );
  }
  // The ratio, when both sections ran in this process.
  const ours = ctx.result.matmul as Record<string, number | boolean>[] | undefined;
  if (ours) {
    ctx.result.matmulVsNumpy = parsed.rows.map((row) => {
      const mine = ours.find((o) =>
        o.m === row.m && o.n === row.n && o.k === row.k && o.transA === row.transA &&
        o.transB === row.transB
      );
      return {
        m: row.m,
        n: row.n,
        k: row.k,
        transA: row.transA,
        transB: row.transB,
        ratio: mine ? round((mine.gflops as number) / (row.gflops as number)) : null,
      };
    });
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** The benchmark sections, by name; `--only` picks among them. */
export const SECTIONS: Record<string, (ctx: BenchContext) => Promise<void>> = {
  matmul: matmulSection,
  numpy: numpySection,
  // Loaded only when selected: it imports the tokenizer and TF.js (npm packages). The
  // specifier is computed so Deno does not pre-resolve those packages for the other sections.
  encode: async (ctx) => {
    const mod: typeof import("./bench/encode.ts") = await import(
      new URL("./bench/encode.ts", import.meta.url).href
    );
    await mod.encodeSection(ctx);
  },
  retrieval: (ctx) => import("./bench/retrieval.ts").then((m) => m.retrievalSection(ctx)),
  // Needs no npm package: random weights and token ids (runs on a bare Deno on GPU machines).
  "train-synthetic": (ctx) =>
    import("./bench/train_synthetic.ts").then((m) => m.trainSyntheticSection(ctx)),
  // Real USE-lite training steps through the trainer on SciFact texts (npm: the tokenizer).
  train: (ctx) => import("./bench/train.ts").then((m) => m.trainSection(ctx)),
  // The train step in PyTorch on the CPU (python3-torch), with the ratio after `train`.
  torch: (ctx) => import("./bench/torch.ts").then((m) => m.torchSection(ctx)),
  // Where one training step's and one encode batch's time goes, per op family and phase.
  profile: (ctx) => import("./bench/profile.ts").then((m) => m.profileSection(ctx)),
  // Sharded encoding, a LanceDB IVF-PQ index over a synthetic corpus, and its recall curve.
  index: (ctx) => import("./bench/index.ts").then((m) => m.indexSection(ctx)),
};

/**
 * The machine the figures were taken on: CPU model, logical CPUs, the vector extensions that
 * matter to a software adapter (AVX2, AVX-512F), and the Vulkan driver package when dpkg knows
 * it (a software adapter's speed depends on all of these, so ratios are only read within one
 * run on one machine).
 */
async function hostInfo(): Promise<Record<string, unknown>> {
  const info: Record<string, unknown> = { cpus: navigator.hardwareConcurrency };
  try {
    const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
    info.cpu = cpuinfo.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? null;
    const flags = new Set(cpuinfo.match(/^flags\s*:\s*(.*)$/m)?.[1].split(/\s+/) ?? []);
    info.avx2 = flags.has("avx2");
    info.avx512f = flags.has("avx512f");
  } catch { /* not Linux */ }
  try {
    const { stdout, success } = await new Deno.Command("dpkg-query", {
      args: ["-W", "-f", "${Version}", "mesa-vulkan-drivers"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (success) info.mesaVulkanDrivers = new TextDecoder().decode(stdout);
  } catch { /* no dpkg */ }
  const icd = Deno.env.get("VK_ICD_FILENAMES");
  if (icd) info.vkIcdFilenames = icd;
  return info;
}

/** Runs the selected sections and returns the result object. */
export async function runBench(options: BenchOptions): Promise<Record<string, unknown>> {
  const gpu = await getGpu();
  const result: Record<string, unknown> = {
    adapter: gpu.adapterName,
    features: [...gpu.features].sort(),
    adapterFeatures: [...gpu.adapterFeatures].sort(),
    isSoftware: gpu.isSoftware,
    timing: gpu.features.has("timestamp-query") ? "timestamp-query" : "wall-clock",
    iters: options.iters,
    warmup: options.warmup,
    host: await hostInfo(),
  };
  const log = (line: string) => console.error(line);
  for (const name of options.only) {
    await SECTIONS[name]({ options, gpu, result, log });
  }
  return result;
}

if (import.meta.main) {
  let parsed: BenchOptions | "help";
  try {
    parsed = parseArgs(Deno.args);
  } catch (e) {
    console.error(`bench: ${(e as Error).message}`);
    Deno.exit(2);
  }
  if (parsed === "help") {
    console.log(HELP.replace("SECTIONS", Object.keys(SECTIONS).join(", ")));
  } else {
    const result = await runBench(parsed);
    if (parsed.json) console.log(JSON.stringify(result));
    else {
      console.log(`adapter: ${result.adapter} (${result.timing})`);
      console.log(JSON.stringify(result, null, 2));
    }
  }
}
