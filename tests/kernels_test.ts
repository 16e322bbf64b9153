// The kernel layer's contracts: `//! include` splicing with compile errors at the file and line
// each line came from; parameter blocks checked against the kernel's `struct Params`; workgroup
// sizes and chunk lengths as override constants set from TypeScript only; kernels declaring the
// device features they need; the device given only the features the code uses.
import { deepStrictEqual, match, rejects, strictEqual, throws } from "node:assert/strict";
import { getGpu, REQUESTED_FEATURES } from "../src/gpu/device.ts";
import {
  dispatch,
  KernelCompileError,
  KERNELS_URL,
  loadKernel,
  pipeline,
} from "../src/gpu/kernels.ts";
import {
  checkParams,
  f32,
  i32,
  KernelParamsError,
  params,
  parseParamsStruct,
} from "../src/gpu/params.ts";
import { Tensor } from "../src/gpu/tensor.ts";

/** Writes `files` into a fresh directory below kernels/; returns its name relative to kernels/. */
async function kernelDir(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ dir: KERNELS_URL.pathname, prefix: "test-" });
  for (const [name, text] of Object.entries(files)) {
    await Deno.mkdir(`${dir}/${name}`.replace(/\/[^/]*$/, ""), { recursive: true });
    await Deno.writeTextFile(`${dir}/${name}`, text);
  }
  return dir.slice(dir.lastIndexOf("/") + 1);
}

async function compileError(file: string, entry = "main"): Promise<string> {
  const gpu = await getGpu();
  let message = "";
  await rejects(pipeline(gpu, file, entry, { WG: 64 }), (e: unknown) => {
    if (!(e instanceof KernelCompileError)) return false;
    message = e.message;
    return true;
  });
  return message;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

// A kernel that includes the reduction prelude and a file of its own (which includes another),
// so the lines after the includes sit far from where they are in the file.
const MAIN = [
  "// line 1",
  "override WG: u32;",
  '//! include "../prelude/reduce.wgsl"',
  '//! include "lib/helpers.wgsl"',
  "@group(0) @binding(1) var<storage, read_write> out: array<f32>;",
  "@compute @workgroup_size(WG)",
  "fn main(@builtin(local_invocation_index) lid: u32) {",
  "  out[lid] = workgroup_sum(lid, helper(1.0));",
  "  let x: f32 = undefined_after_include;", // line 9
  "}",
  "",
].join("\n");
const HELPERS = [
  "// helpers, line 1",
  '//! include "deeper.wgsl"',
  "fn helper(v: f32) -> f32 {",
  "  return deeper(v) + 1.0;",
  "}",
  "",
].join("\n");
const DEEPER_OK = "fn deeper(v: f32) -> f32 {\n  return v;\n}\n";
const DEEPER_BROKEN =
  "// deeper, line 1\nfn deeper(v: f32) -> f32 {\n  return v * undefined_inside;\n}\n";

Deno.test("a compile error after an include names the kernel's own file and line", async () => {
  const dir = await kernelDir({
    "main.wgsl": MAIN,
    "lib/helpers.wgsl": HELPERS,
    "lib/deeper.wgsl": DEEPER_OK,
  });
  try {
    const message = await compileError(`${dir}/main.wgsl`);
    match(message, new RegExp(`kernels/${escape(dir)}/main\\.wgsl:9:16: error: `));
    // The compiler's excerpt points at the same place, with the file's own line number.
    match(message, new RegExp(`┌─ kernels/${escape(dir)}/main\\.wgsl:9:16`));
    match(message, /\n9 │ {3}let x: f32 = undefined_after_include;/);
  } finally {
    await Deno.remove(`${KERNELS_URL.pathname}${dir}`, { recursive: true });
  }
});

Deno.test("a compile error inside an included file names that file and its line", async () => {
  const dir = await kernelDir({
    "main.wgsl": MAIN.replace("  let x: f32 = undefined_after_include;", ""),
    "lib/helpers.wgsl": HELPERS,
    "lib/deeper.wgsl": DEEPER_BROKEN,
  });
  try {
    const message = await compileError(`${dir}/main.wgsl`);
    match(message, new RegExp(`kernels/${escape(dir)}/lib/deeper\\.wgsl:3:14: error: `));
    match(message, /undefined_inside/);
    match(message, new RegExp(`┌─ kernels/${escape(dir)}/lib/deeper\\.wgsl:3:14`));
  } finally {
    await Deno.remove(`${KERNELS_URL.pathname}${dir}`, { recursive: true });
  }
});

Deno.test("a compile error inside the shared prelude names the prelude's file and line", async () => {
  // The prelude needs the includer's WG: without it, the error is in the prelude's own lines.
  const dir = await kernelDir({
    "main.wgsl":
      '//! include "../prelude/reduce.wgsl"\n@compute @workgroup_size(1)\nfn main() {}\n',
  });
  try {
    const message = await compileError(`${dir}/main.wgsl`);
    const prelude = (await Deno.readTextFile(new URL("prelude/reduce.wgsl", KERNELS_URL)))
      .split("\n");
    const line = prelude.findIndex((l) => /var<workgroup> red: array<f32, WG>/.test(l)) + 1;
    match(message, new RegExp(`kernels/prelude/reduce\\.wgsl:${line}:\\d+: error: [\\s\\S]*WG`));
  } finally {
    await Deno.remove(`${KERNELS_URL.pathname}${dir}`, { recursive: true });
  }
});

Deno.test("include cycles, missing includes and unknown directives name the directive's line", async () => {
  const dir = await kernelDir({
    "a.wgsl": '// a\n//! include "b.wgsl"\n',
    "b.wgsl": '// b\n// b\n//! include "a.wgsl"\n',
    "missing.wgsl": '// m\n//! include "nowhere.wgsl"\n',
    "unknown.wgsl": "//! import foo\n",
    "twice.wgsl": [
      "override WG: u32;",
      '//! include "../prelude/grid.wgsl"',
      '//! include "../prelude/grid.wgsl"',
      "@compute @workgroup_size(WG)",
      "fn main(@builtin(global_invocation_id) gid: vec3<u32>,",
      "        @builtin(num_workgroups) nwg: vec3<u32>) {",
      "  _ = flat_index(gid, nwg);",
      "}",
    ].join("\n"),
  });
  try {
    const at = `kernels/${dir}`;
    match(
      await compileError(`${dir}/a.wgsl`),
      new RegExp(
        `${escape(at)}/b\\.wgsl:3: error: include cycle: ${escape(at)}/a\\.wgsl -> ` +
          `${escape(at)}/b\\.wgsl -> ${escape(at)}/a\\.wgsl`,
      ),
    );
    match(
      await compileError(`${dir}/missing.wgsl`),
      new RegExp(`${escape(at)}/missing\\.wgsl:2: error: cannot include "nowhere\\.wgsl"`),
    );
    match(
      await compileError(`${dir}/unknown.wgsl`),
      new RegExp(`${escape(at)}/unknown\\.wgsl:1: error: unknown directive //! import foo`),
    );
    // A file included twice is spliced once (no duplicate declarations).
    const gpu = await getGpu();
    await pipeline(gpu, `${dir}/twice.wgsl`, "main", { WG: 64 });
    const twice = await loadKernel(`${dir}/twice.wgsl`);
    strictEqual(twice.code.match(/fn flat_index/g)?.length, 1);
  } finally {
    await Deno.remove(`${KERNELS_URL.pathname}${dir}`, { recursive: true });
  }
});

Deno.test("a kernel's enable directive needs a feature the device was given", async () => {
  const gpu = await getGpu();
  if (gpu.features.has("shader-f16")) throw new Error("shader-f16 is requested: pick another");
  const dir = await kernelDir({
    "half.wgsl": "// needs f16\nenable f16;\n@compute @workgroup_size(1)\nfn main() {}\n",
  });
  try {
    match(
      await compileError(`${dir}/half.wgsl`),
      new RegExp(
        `kernels/${escape(dir)}/half\\.wgsl:2:8: error: enable f16 needs the device feature ` +
          "shader-f16, which this device was not given",
      ),
    );
  } finally {
    await Deno.remove(`${KERNELS_URL.pathname}${dir}`, { recursive: true });
  }
});

Deno.test("the device is given only the features the code uses", async () => {
  const gpu = await getGpu();
  for (const f of gpu.features) {
    if (!(f in REQUESTED_FEATURES)) throw new Error(`feature ${f} granted but not requested`);
    if (!gpu.adapterFeatures.has(f)) throw new Error(`feature ${f} granted, not offered`);
  }
  for (const f of Object.keys(REQUESTED_FEATURES)) {
    strictEqual(gpu.features.has(f), gpu.adapterFeatures.has(f), f);
  }
});

Deno.test("params packs named fields in order and checks them against struct Params", () => {
  const block = params({ rows: 3, eps: f32(0.5), shift: i32(-2), on: true });
  deepStrictEqual(
    block.fields.map((f) => [f.name, f.type, f.value]),
    [["rows", "u32", 3], ["eps", "f32", 0.5], ["shift", "i32", -2], ["on", "u32", 1]],
  );
  const view = new DataView(block.bytes);
  deepStrictEqual(
    [view.getUint32(0, true), view.getFloat32(4, true), view.getInt32(8, true)],
    [3, 0.5, -2],
  );
  strictEqual(block.bytes.byteLength, 16);
  throws(() => params({ rows: -1 }), /u32 field rows out of range: -1/);
  throws(() => params({ rows: 1.5 }), /u32 field rows out of range/);

  const wgsl = [
    "/* a block comment, /* nested */ with struct Params { x: f32 } inside */",
    "struct Params {",
    "  rows: u32, // a trailing comment, with a comma",
    "  eps: f32, shift: i32,",
    "  on: u32,",
    "}",
    "@group(0) @binding(0) var<uniform> p: Params;",
  ].join("\n");
  const where = (line?: number) => `kernels/x.wgsl${line ? `:${line}` : ""}`;
  const struct = parseParamsStruct(wgsl, where)!;
  deepStrictEqual(struct.map((f) => [f.name, f.type, f.line]), [
    ["rows", "u32", 3],
    ["eps", "f32", 4],
    ["shift", "i32", 4],
    ["on", "u32", 5],
  ]);
  checkParams(struct, block, where);
  const fails = (b: ReturnType<typeof params>, re: RegExp) =>
    throws(
      () => checkParams(struct, b, where),
      (e: unknown) => e instanceof KernelParamsError && re.test((e as Error).message),
    );
  fails(
    params({ eps: f32(0.5), rows: 3, shift: i32(-2), on: 1 }),
    /^kernels\/x\.wgsl:3: struct Params member 1 is rows: u32, the launcher packed eps there \(struct Params declares it elsewhere: the order differs\)/,
  );
  fails(
    params({ rows: 3, eps: 0, shift: i32(-2), on: 1 }),
    /^kernels\/x\.wgsl:4: struct Params member eps: f32 was packed as u32 \(wrap it in f32\(\)\)/,
  );
  fails(
    params({ rows: 3, eps: f32(0), shift: i32(0) }),
    /^kernels\/x\.wgsl:5: struct Params member on: u32 was not packed/,
  );
  fails(
    params({ rows: 3, eps: f32(0), shift: i32(0), on: 1, more: 2 }),
    /^kernels\/x\.wgsl: the launcher packed field more, which struct Params does not declare/,
  );
  fails(
    params({ rows: 3, epsilon: f32(0), shift: i32(0), on: 1 }),
    /member 2 is eps: f32, the launcher packed epsilon there \(no such member\)/,
  );

  strictEqual(parseParamsStruct("fn main() {}", where), null);
  throws(
    () => parseParamsStruct("struct Params {\n  v: vec2<f32>,\n}", where),
    /^KernelParamsError: kernels\/x\.wgsl:2: struct Params member v has type vec2<f32>: only u32, i32 and f32/,
  );
  throws(
    () => parseParamsStruct("struct Params {\n  @align(16) v: f32,\n}", where),
    /kernels\/x\.wgsl:2: struct Params member "@align\(16\) v: f32" is not a plain/,
  );
  throws(
    () => parseParamsStruct("struct Q { a: u32 }\n\nvar<uniform> q: Q;", where),
    /kernels\/x\.wgsl:3: uniform q has type Q: a kernel's only uniform block is its struct Params/,
  );
});

Deno.test("a dispatch whose parameters do not match the kernel's struct Params names both", async () => {
  const gpu = await getGpu();
  const p = await pipeline(gpu, "layout.wgsl", "swap12", { WG: 64 });
  const x = Tensor.zeros(gpu, [16]), y = Tensor.zeros(gpu, [16]);
  const struct = (await Deno.readTextFile(new URL("layout.wgsl", KERNELS_URL))).split("\n");
  const line = struct.findIndex((l) => /^\s*A: u32, B: u32/.test(l)) + 1;
  try {
    throws(
      () =>
        dispatch(gpu, {
          pipeline: p,
          buffers: [x, y],
          params: params({ A: 1, C: 2, B: 2, D: 4 }),
          workgroups: [1],
        }),
      (e: unknown) =>
        e instanceof KernelParamsError &&
        e.message ===
          `kernels/layout.wgsl:${line}: struct Params member 2 is B: u32, the launcher packed C ` +
            "there (struct Params declares it elsewhere: the order differs)",
    );
    // The right block passes (and its signature is remembered).
    dispatch(gpu, {
      pipeline: p,
      buffers: [x, y],
      params: params({ A: 1, B: 2, C: 2, D: 4 }),
      workgroups: [1],
    });
    await y.read();
  } finally {
    x.destroy();
    y.destroy();
  }
});

Deno.test("kernels set workgroup sizes and chunk lengths from TypeScript, and share one prelude", async () => {
  const dir = new URL("../kernels/", import.meta.url);
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".wgsl")) files.push(e.name);
  }
  for (const name of files.sort()) {
    const text = await Deno.readTextFile(new URL(name, dir));
    // No number written in WGSL that the launcher must repeat (a dimension of 1 repeats none).
    for (const m of text.matchAll(/@workgroup_size\(([^)]*)\)/g)) {
      if (m[1].split(",").some((d) => /^\s*\d+u?\s*$/.test(d) && !/^\s*1u?\s*$/.test(d))) {
        throw new Error(`${name}: a numeric @workgroup_size(${m[1]})`);
      }
    }
    const constant = /^\s*const\s+(WG|CHUNK|SEGMENT|TILE|T|T_RADIX)\b/m.exec(text);
    if (constant) {
      throw new Error(`${name}: const ${constant[1]} (make it an override set from TypeScript)`);
    }
    const defaulted =
      /^\s*override\s+(WG|CHUNK|SEGMENT|TILE|GRAD_WG|RG|CG|T|T_RADIX)\s*:\s*u32\s*=/m.exec(text);
    if (defaulted) throw new Error(`${name}: override ${defaulted[1]} has a default`);
    // The reductions live in the prelude only.
    const own = /^\s*fn\s+(workgroup_sum|workgroup_max|workgroup_sum2|flat_index|group_index)\b/m
      .exec(text);
    if (own) throw new Error(`${name}: defines ${own[1]} (include the prelude instead)`);
    // Every kernel loads, with a parseable struct Params.
    const kernel = await loadKernel(name);
    if (/var\s*<\s*uniform\s*>/.test(text) && !kernel.params) {
      throw new Error(`${name}: a uniform block without struct Params`);
    }
  }
});
