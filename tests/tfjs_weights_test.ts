/**
 * The TF.js weights-manifest reader (src/models/tfjs_weights.ts) and the USE-lite asset locator
 * (src/models/use_lite_assets.ts): the shipped model (float32 + int32 only), and synthetic
 * manifests for the forms it does not use (bool, uint8/uint16 affine quantization, float16),
 * split across shards, plus the errors.
 */
import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import {
  float16ToFloat32,
  loadTfjsWeights,
  readTfjsWeights,
  type TfjsWeightsGroup,
} from "../src/models/tfjs_weights.ts";
import { loadUseLiteVocab, locateUseLite } from "../src/models/use_lite_assets.ts";

Deno.test("tfjs weights: the USE-lite model loads with the shapes and constants of its graph", async () => {
  const assets = await locateUseLite();
  assertEquals(assets.source === "npm" || assets.source === "env", true);
  const w = await loadTfjsWeights(assets.modelJson);
  assertEquals(w.size, 61);
  const count = (d: string) => [...w.values()].filter((x) => x.dtype === d).length;
  assertEquals([count("float32"), count("int32")], [35, 26]);
  const emb = w.get("module/Embeddings_en")!;
  assertEquals(emb.shape, [8002, 256]);
  assertEquals(emb.data instanceof Float32Array && emb.data.length, 8002 * 256);
  const S = "module_apply_default/Encoder_en/KonaTransformer/Encode/TransformerStack/";
  assertEquals(
    w.get("module_apply_default/Encoder_en/KonaTransformer/ClipToMaxLength/Less/y")!.data[0],
    128,
  );
  assertEquals(w.get(S + "Layer_0/TransformerLayer/MultiheadAttention/mul/y")!.data[0], 0.125);
  assertEquals(
    w.get(S + "Layer_1/TransformerLayer/MultiheadAttention/split_heads/transpose/perm")!.data,
    Int32Array.from([0, 2, 1, 3]),
  );
  // the timing signal's inverse timescales: exp(-i ln(1e4) / 127), float32
  const inv = w.get(S + "Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1")!;
  assertEquals(inv.shape, [1, 128]);
  for (let i = 0; i < 128; i++) {
    const f = Math.exp(-i * Math.log(1e4) / 127);
    if (Math.abs(inv.data[i] - f) > 1e-6 * f) throw new Error(`inv[${i}] = ${inv.data[i]}`);
  }
  const vocab = await loadUseLiteVocab(assets);
  assertEquals(vocab.length, 8000);
  assertEquals(vocab[9], ["▁the", -3.56637144089]);
});

function le(bytes: number[], type: "f32" | "i32" | "u16"): number[] {
  const size = type === "u16" ? 2 : 4;
  const b = new DataView(new ArrayBuffer(bytes.length * size));
  bytes.forEach((v, i) => {
    if (type === "f32") b.setFloat32(i * 4, v, true);
    else if (type === "i32") b.setInt32(i * 4, v, true);
    else b.setUint16(i * 2, v, true);
  });
  return [...new Uint8Array(b.buffer)];
}

Deno.test("tfjs weights: float32, int32, bool, uint8/uint16 quantized and float16, across shards", async () => {
  const groups: TfjsWeightsGroup[] = [{
    paths: ["a.bin", "b.bin"],
    weights: [
      { name: "f", shape: [2, 2], dtype: "float32" },
      { name: "i", shape: [3], dtype: "int32" },
      { name: "b", shape: [3], dtype: "bool" },
      {
        name: "q8",
        shape: [3],
        dtype: "float32",
        quantization: { dtype: "uint8", scale: 0.5, min: -1 },
      },
      {
        name: "q8i",
        shape: [2],
        dtype: "int32",
        quantization: { dtype: "uint8", scale: 0.3, min: 1 },
      },
      {
        name: "q16",
        shape: [2],
        dtype: "float32",
        quantization: { dtype: "uint16", scale: 0.25, min: 2 },
      },
      { name: "h", shape: [3], dtype: "float32", quantization: { dtype: "float16" } },
    ],
  }];
  const bytes = [
    ...le([1.5, -2, 3.25, 1e-3], "f32"),
    ...le([7, -8, 2147483647], "i32"),
    1,
    0,
    5,
    0,
    2,
    255,
    10,
    11,
    ...le([0, 65535], "u16"),
    ...le([0x3c00, 0xc000, 0x7bff], "u16"),
  ];
  // Split inside the int32 weight so one weight spans two shards.
  const files: Record<string, Uint8Array> = {
    "a.bin": Uint8Array.from(bytes.slice(0, 21)),
    "b.bin": Uint8Array.from(bytes.slice(21)),
  };
  const read = (u: URL) => {
    const f = files[u.pathname.split("/").at(-1)!];
    return f ? Promise.resolve(f) : Promise.reject(new Error("No such file"));
  };
  const w = await readTfjsWeights(groups, new URL("file:///m/"), { read });
  assertEquals(w.get("f")!.data, Float32Array.from([1.5, -2, 3.25, 1e-3]));
  assertEquals(w.get("i")!.data, Int32Array.from([7, -8, 2147483647]));
  assertEquals(w.get("b")!.data, Int32Array.from([1, 0, 1]));
  assertEquals(w.get("q8")!.data, Float32Array.from([-1, 0, 126.5]));
  assertEquals(w.get("q8i")!.data, Int32Array.from([4, 4])); // round(10*0.3+1), round(11*0.3+1)
  assertEquals(w.get("q16")!.data, Float32Array.from([2, 65535 * 0.25 + 2]));
  assertEquals(w.get("h")!.data, Float32Array.from([1, -2, 65504]));
  assertEquals(w.get("f")!.shape, [2, 2]);

  // errors name the file
  const missing = { "a.bin": files["a.bin"] } as Record<string, Uint8Array>;
  await rejects(
    readTfjsWeights(groups, new URL("file:///m/"), {
      read: (u) =>
        missing[u.pathname.slice(3)]
          ? Promise.resolve(missing[u.pathname.slice(3)])
          : Promise.reject(new Error("No such file")),
    }),
    /weights shard file:\/\/\/m\/b\.bin .*No such file/,
  );
  await rejects(
    readTfjsWeights(groups, new URL("file:///m/"), {
      read: (u) =>
        Promise.resolve(u.pathname.endsWith("b.bin") ? files["b.bin"].slice(1) : files["a.bin"]),
    }),
    /a\.bin, file:\/\/\/m\/b\.bin\): shards hold 45 bytes but the manifest describes 46/,
  );
  await rejects(
    readTfjsWeights(
      [{ paths: ["a.bin"], weights: [{ name: "s", shape: [1], dtype: "string" }] }],
      new URL("file:///m/"),
      { read },
    ),
    /weight s in a\.bin: unsupported dtype string/,
  );
});

Deno.test("tfjs weights: float16 decoding (normal, subnormal, zero, inf, nan)", () => {
  assertEquals(float16ToFloat32(0x3c00), 1);
  assertEquals(float16ToFloat32(0x3555), 0.333251953125);
  assertEquals(float16ToFloat32(0x0001), 2 ** -24);
  assertEquals(float16ToFloat32(0x8000), -0);
  assertEquals(float16ToFloat32(0x7c00), Infinity);
  assertEquals(float16ToFloat32(0xfc00), -Infinity);
  assertEquals(Number.isNaN(float16ToFloat32(0x7e00)), true);
});

Deno.test("use-lite assets: an explicit directory without the files is a clear error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await rejects(
      locateUseLite({ dir }),
      /model\.json does not exist \(directory from the dir option/,
    );
    const real = await locateUseLite();
    const viaDir = await locateUseLite({ dir: real.dir });
    assertEquals([viaDir.source, viaDir.modelJson.href], ["option", real.modelJson.href]);
    // a missing shard names the file
    const mj = await Deno.readTextFile(real.modelJson);
    await Deno.writeTextFile(`${dir}/model.json`, mj);
    await rejects(
      loadTfjsWeights((await locateUseLite({ dir })).modelJson),
      /weights shard file:.*group1-shard\dof7 .*No such file/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
