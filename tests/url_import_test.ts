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
    const lib = await import(`http://127.0.0.1:${port}/mod.ts`);
    const gpu = await lib.getGpu();
    const a = lib.Tensor.from(gpu, [1, 2, 3, 4], [2, 2]);
    const c = await lib.matmul(a, a);
    deepStrictEqual(Array.from(await c.read()), [7, 10, 15, 22]);
    // reduce.wgsl includes kernels/prelude/grid.wgsl and kernels/prelude/reduce.wgsl.
    const total = await lib.sumAll(a);
    deepStrictEqual(Array.from(await total.read()), [10]);
  } finally {
    await server.shutdown();
  }
});
