// mod.ts imported through an http:// URL (a local server over the repository) must find its
// kernels relative to import.meta.url and run them, their `//! include`s fetched alike.
import { deepStrictEqual } from "node:assert/strict";

const TYPES: Record<string, string> = {
  ".ts": "application/typescript",
  ".js": "application/javascript",
  ".wgsl": "text/plain",
  ".json": "application/json",
};

Deno.test("mod.ts imported by URL runs a WGSL kernel", async () => {
  const root = new URL("..", import.meta.url);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    if (path.includes("..")) return new Response("bad path", { status: 400 });
    try {
      const body = await Deno.readFile(new URL(`.${path}`, root));
      const ext = path.slice(path.lastIndexOf("."));
      return new Response(body, { headers: { "content-type": TYPES[ext] ?? "text/plain" } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  try {
    const { port } = server.addr as Deno.NetAddr;
    // In a child process with --no-lock: an import by URL in this process would record the
    // server's per-run port in deno.lock on every test run.
    const child = `
      const lib = await import("http://127.0.0.1:${port}/mod.ts");
      const gpu = await lib.getGpu();
      const a = lib.Tensor.from(gpu, [1, 2, 3, 4], [2, 2]);
      const c = await lib.matmul(a, a);
      // reduce.wgsl includes kernels/prelude/grid.wgsl and kernels/prelude/reduce.wgsl.
      const total = await lib.sumAll(a);
      console.log(JSON.stringify([Array.from(await c.read()), Array.from(await total.read())]));
    `;
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-lock", "--no-check", child],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const err = new TextDecoder().decode(r.stderr);
    deepStrictEqual(r.code, 0, err);
    const [product, sum] = JSON.parse(new TextDecoder().decode(r.stdout));
    deepStrictEqual(product, [7, 10, 15, 22]);
    deepStrictEqual(sum, [10]);
  } finally {
    await server.shutdown();
  }
});
