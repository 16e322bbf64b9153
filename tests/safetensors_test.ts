import { deepStrictEqual, match, throws } from "node:assert/strict";
import {
  parseSafetensors,
  readModelWeights,
  SafetensorsError,
  serializeSafetensors,
  writeSafetensors,
} from "../src/models/safetensors.ts";

function rawFile(header: unknown, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

Deno.test("safetensors round trip keeps names, shapes, f32 and i32 values", async () => {
  const tensors = {
    "encoder.layer.0.weight": { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 1e-8, 0, 7]) },
    "ids": { shape: [3], data: Int32Array.from([5, -1, 2147483647]) },
    "scalar": { shape: [], data: Float32Array.from([0.25]) },
  };
  const bytes = serializeSafetensors(tensors, { format: "pt" });
  const headerSize = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  deepStrictEqual((8 + headerSize) % 8, 0, "data starts 8-byte aligned");
  const { tensors: back, metadata } = parseSafetensors(bytes);
  deepStrictEqual(metadata, { format: "pt" });
  for (const [name, t] of Object.entries(tensors)) {
    deepStrictEqual(back.get(name)!.shape, t.shape);
    deepStrictEqual(Array.from(back.get(name)!.data), Array.from(t.data));
  }
  const dir = await Deno.makeTempDir();
  await writeSafetensors(`${dir}/model.safetensors`, tensors);
  const loaded = await readModelWeights(dir);
  deepStrictEqual([...loaded.keys()].sort(), Object.keys(tensors).sort());
  await Deno.remove(dir, { recursive: true });
});

Deno.test("safetensors decodes F16, BF16, F64 and I64 to float32/int32", () => {
  const data = new Uint8Array(2 * 2 + 2 * 2 + 8 + 8);
  const v = new DataView(data.buffer);
  v.setUint16(0, 0x3c00, true); // f16 1.0
  v.setUint16(2, 0xc100, true); // f16 -2.5
  v.setUint16(4, 0x3f80, true); // bf16 1.0
  v.setUint16(6, 0x4049, true); // bf16 3.140625
  v.setFloat64(8, 0.1, true);
  v.setBigInt64(16, -7n, true);
  const { tensors } = parseSafetensors(rawFile({
    h: { dtype: "F16", shape: [2], data_offsets: [0, 4] },
    b: { dtype: "BF16", shape: [2], data_offsets: [4, 8] },
    d: { dtype: "F64", shape: [1], data_offsets: [8, 16] },
    i: { dtype: "I64", shape: [1], data_offsets: [16, 24] },
  }, data));
  deepStrictEqual(Array.from(tensors.get("h")!.data), [1, -2.5]);
  deepStrictEqual(Array.from(tensors.get("b")!.data), [1, 3.140625]);
  deepStrictEqual(tensors.get("d")!.data[0], Math.fround(0.1));
  deepStrictEqual(Array.from(tensors.get("i")!.data), [-7]);
});

Deno.test("a malformed safetensors header is refused with the file name", () => {
  const file = "bad/model.safetensors";
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(3), /shorter than its 8-byte header/],
    [rawFile({}, new Uint8Array(0)).subarray(0, 9), /header size/],
    [
      (() => {
        const b = rawFile({ a: 1 }, new Uint8Array(0));
        b[8] = 0x7b;
        b[9] = 0x7b;
        return b;
      })(),
      /header is not JSON|data_offsets/,
    ],
    [rawFile({ w: { dtype: "F32", shape: [2] } }, new Uint8Array(8)), /needs dtype, shape/],
    [
      rawFile({ w: { dtype: "Q4", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /unknown dtype Q4/,
    ],
    [
      rawFile({ w: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /8 bytes for 3/,
    ],
    [
      rawFile({ w: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)),
      /outside the data/,
    ],
    // Two tensors on the same bytes, a gap, trailing bytes, non-integer offsets, bad metadata.
    [
      rawFile({
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        b: { dtype: "F32", shape: [1], data_offsets: [4, 8] },
      }, new Uint8Array(8)),
      /b: data_offsets \[4, 8\] overlap the previous tensor's 8/,
    ],
    [
      rawFile({ a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)),
      /a: data_offsets \[4, 8\] leave a gap after byte 0/,
    ],
    [
      rawFile({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, new Uint8Array(8)),
      /the tensors cover 4 of the 8 data bytes/,
    ],
    [
      rawFile({ a: { dtype: "F32", shape: [1], data_offsets: ["0", "4"] } }, new Uint8Array(4)),
      /a: data_offsets \["0","4"\] are not integers/,
    ],
    [rawFile({ __metadata__: { step: 7 } }, new Uint8Array(0)), /__metadata__ must map/],
  ];
  for (const [bytes, pattern] of cases) {
    throws(() => parseSafetensors(bytes, file), (e: unknown) => {
      if (!(e instanceof SafetensorsError)) return false;
      match(e.message, /^bad\/model\.safetensors: malformed safetensors/);
      match(e.message, pattern);
      return true;
    });
  }
});
