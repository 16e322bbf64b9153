// The GPU runtime's error paths: a WGSL compile error names the kernel file and line; an
// uncaptured validation error fails the next GPU call instead of passing silently.
import { match, rejects, throws } from "node:assert/strict";
import { getGpu, GpuError } from "../src/gpu/device.ts";
import { dispatch, flush, KernelCompileError, pipeline } from "../src/gpu/kernels.ts";
import { Tensor } from "../src/gpu/tensor.ts";

Deno.test("a WGSL compile error names the kernel file, line and the compiler's message", async () => {
  const gpu = await getGpu();
  const dir = await Deno.makeTempDir({ dir: new URL("../kernels/", import.meta.url).pathname });
  const name = `${dir.slice(dir.lastIndexOf("/") + 1)}/broken.wgsl`;
  try {
    await Deno.writeTextFile(
      `${dir}/broken.wgsl`,
      "@compute @workgroup_size(1)\nfn main() {\n  let x: f32 = undefined_name;\n}\n",
    );
    await rejects(pipeline(gpu, name, "main"), (e: unknown) => {
      if (!(e instanceof KernelCompileError)) return false;
      match(
        e.message,
        new RegExp(`kernels/${name.replace(".", "\\.")}:3:\\d+: error: [\\s\\S]*undefined_name`),
      );
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an uncaptured validation error fails the next GPU call", async () => {
  const gpu = await getGpu();
  const p = await pipeline(gpu, "layout.wgsl", "swap12", { WG: 64 });
  const small = Tensor.zeros(gpu, [1]);
  // Too few buffers for the pipeline's bind group layout: a validation error that WebGPU
  // reports asynchronously, as an uncaptured error.
  dispatch(gpu, { pipeline: p, buffers: [small], workgroups: [1] });
  flush(gpu);
  await gpu.device.queue.onSubmittedWorkDone();
  await new Promise((r) => setTimeout(r, 10));
  throws(
    () => small.zero(),
    (e: unknown) => e instanceof GpuError && /bind|layout|entries/i.test((e as Error).message),
  );
  // Cleared after it was thrown once.
  small.zero();
  small.destroy();
});

Deno.test("acquiring the GPU without XDG_RUNTIME_DIR prints no 'error:' line on stderr", async () => {
  // libwayland, probed by Mesa's Vulkan drivers, printed "error: XDG_RUNTIME_DIR is invalid or
  // not set in the environment." twice when the caller had not set it (the README's commands).
  const env = Deno.env.toObject();
  delete env.XDG_RUNTIME_DIR;
  const device = new URL("../src/gpu/device.ts", import.meta.url).href;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { getGpu } from "${device}";\n` +
      `const gpu = await getGpu();\n` +
      `console.log(JSON.stringify({ adapter: gpu.adapterName, ` +
      `runtime: Deno.env.get("XDG_RUNTIME_DIR") }));\n` +
      `gpu.device.destroy();`,
    ],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success || stderr.includes("XDG_RUNTIME_DIR") || /^error:/m.test(stderr)) {
    throw new Error(`exit ${out.code}, stderr:\n${stderr}`);
  }
  const { runtime } = JSON.parse(new TextDecoder().decode(out.stdout));
  // The private directory stands in for the variable: the caller's own, mode 0700.
  const st = await Deno.stat(runtime);
  if (!st.isDirectory || st.uid !== Deno.uid() || (st.mode! & 0o777) !== 0o700) {
    throw new Error(`${runtime}: not a private directory (mode ${st.mode?.toString(8)})`);
  }
});
