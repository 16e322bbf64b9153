/**
 * Reading and writing safetensors files (the Hugging Face weight format): an 8-byte
 * little-endian header length, a JSON header `{name: {dtype, shape, data_offsets}}`, then the raw
 * little-endian data. Sharded checkpoints (`model.safetensors.index.json`) are read too.
 * Weights are returned as float32 (F16, BF16 and F64 are converted; integer tensors kept as is).
 *
 * @module
 */
import { DataFormatError } from "../data/types.ts";
import { decodeUtf8, readTextFileStrict } from "../data/lines.ts";
import { exists } from "../util/fs.ts";

/** A named tensor read from or written to a safetensors file. */
export interface NamedTensor {
  /** The dimensions, row-major. */
  shape: number[];
  /** The values: float32 for floating-point dtypes, Int32Array for I32/I64 (checked to fit). */
  data: Float32Array | Int32Array;
}

/**
 * Raised for a file that is not valid safetensors; names the file. A {@link DataFormatError}
 * (line 0), so scripts report it in one line as bad input.
 */
export class SafetensorsError extends DataFormatError {
  /**
   * Creates an instance.
   * @param file the offending file
   * @param detail what is wrong
   */
  constructor(file: string, detail: string) {
    super(file, 0, `malformed safetensors: ${detail}`);
    this.name = "SafetensorsError";
  }
}

const BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

function decode(
  file: string,
  name: string,
  dtype: string,
  bytes: Uint8Array,
  count: number,
): Float32Array | Int32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case "F32": {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    }
    case "F64": {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(i * 8, true);
      return out;
    }
    case "F16": {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = f16ToF32(view.getUint16(i * 2, true));
      return out;
    }
    case "BF16": {
      const out = new Float32Array(count);
      const word = new Uint32Array(1);
      const asFloat = new Float32Array(word.buffer);
      for (let i = 0; i < count; i++) {
        word[0] = view.getUint16(i * 2, true) << 16;
        out[i] = asFloat[0];
      }
      return out;
    }
    case "I32": {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(i * 4, true);
      return out;
    }
    case "I64": {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const v = view.getBigInt64(i * 8, true);
        if (v > 2147483647n || v < -2147483648n) {
          throw new SafetensorsError(file, `${name}: I64 value ${v} does not fit in int32`);
        }
        out[i] = Number(v);
      }
      return out;
    }
    default:
      throw new SafetensorsError(file, `${name}: unsupported dtype ${dtype}`);
  }
}

/**
 * Parses safetensors bytes into named tensors.
 *
 * @param bytes the whole file
 * @param file its name, for error messages
 * @param wanted if given, only these tensors are decoded
 */
export function parseSafetensors(
  bytes: Uint8Array,
  file = "<memory>",
  wanted?: ReadonlySet<string>,
): { tensors: Map<string, NamedTensor>; metadata: Record<string, string> } {
  if (bytes.byteLength < 8) throw new SafetensorsError(file, "shorter than its 8-byte header size");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerSize = Number(view.getBigUint64(0, true));
  if (headerSize > bytes.byteLength - 8 || headerSize > 100_000_000) {
    throw new SafetensorsError(
      file,
      `header size ${headerSize} exceeds the file (${bytes.byteLength} bytes)`,
    );
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(decodeUtf8(bytes.subarray(8, 8 + headerSize), file));
  } catch (e) {
    throw new SafetensorsError(file, `header is not JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new SafetensorsError(file, "header is not a JSON object");
  }
  const dataStart = 8 + headerSize;
  const dataLength = bytes.byteLength - dataStart;
  const tensors = new Map<string, NamedTensor>();
  let metadata: Record<string, string> = {};
  const spans: [begin: number, end: number, name: string][] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (
        typeof entry !== "object" || entry === null || Array.isArray(entry) ||
        !Object.values(entry).every((v) => typeof v === "string")
      ) {
        throw new SafetensorsError(file, "__metadata__ must map names to strings");
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (
      typeof e !== "object" || e === null || typeof e.dtype !== "string" ||
      !Array.isArray(e.shape) || !Array.isArray(e.data_offsets) || e.data_offsets.length !== 2
    ) {
      throw new SafetensorsError(file, `${name}: entry needs dtype, shape and data_offsets`);
    }
    const shape = e.shape as number[];
    if (!shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new SafetensorsError(file, `${name}: bad shape ${JSON.stringify(shape)}`);
    }
    const width = BYTES[e.dtype];
    if (!width) throw new SafetensorsError(file, `${name}: unknown dtype ${e.dtype}`);
    const [begin, end] = e.data_offsets as number[];
    const count = shape.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end)) {
      throw new SafetensorsError(
        file,
        `${name}: data_offsets ${JSON.stringify(e.data_offsets)} are not integers`,
      );
    }
    if (!(begin >= 0 && end >= begin && end <= dataLength)) {
      throw new SafetensorsError(
        file,
        `${name}: data_offsets [${begin}, ${end}] outside the data (${dataLength} bytes)`,
      );
    }
    if (end - begin !== count * width) {
      throw new SafetensorsError(
        file,
        `${name}: ${end - begin} bytes for ${count} ${e.dtype} values of shape [${shape}]`,
      );
    }
    spans.push([begin, end, name]);
    if (wanted && !wanted.has(name)) continue;
    const slice = bytes.subarray(dataStart + begin, dataStart + end);
    tensors.set(name, { shape, data: decode(file, name, e.dtype, slice, count) });
  }
  // As the reference reader requires: the tensors tile the data, with no overlap, gap or tail
  // (an overlap would give two tensors the same bytes; a tail hints at a truncated header).
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let at = 0;
  for (const [begin, end, name] of spans) {
    if (begin !== at) {
      throw new SafetensorsError(
        file,
        `${name}: data_offsets [${begin}, ${end}] ${
          begin < at ? "overlap the previous tensor's" : "leave a gap after byte"
        } ${at}`,
      );
    }
    at = end;
  }
  if (at !== dataLength) {
    throw new SafetensorsError(file, `the tensors cover ${at} of the ${dataLength} data bytes`);
  }
  return { tensors, metadata };
}

/** Reads one safetensors file. */
export async function readSafetensors(path: string | URL): Promise<Map<string, NamedTensor>> {
  const bytes = await Deno.readFile(path);
  return parseSafetensors(bytes, String(path)).tensors;
}

/**
 * Reads a model directory's weights: `model.safetensors`, or the shards listed by
 * `model.safetensors.index.json`.
 */
export async function readModelWeights(dir: string): Promise<Map<string, NamedTensor>> {
  const single = `${dir}/model.safetensors`;
  const index = `${dir}/model.safetensors.index.json`;
  if (await exists(single)) return await readSafetensors(single);
  if (!(await exists(index))) {
    throw new DataFormatError(dir, 0, "no model.safetensors or model.safetensors.index.json");
  }
  let map: Record<string, string>;
  try {
    map = JSON.parse(await readTextFileStrict(index))?.weight_map;
  } catch (e) {
    throw new DataFormatError(index, 0, `not a valid index (${(e as Error).message})`);
  }
  if (!map || typeof map !== "object" || Array.isArray(map)) {
    throw new DataFormatError(index, 0, "no weight_map object");
  }
  for (const [name, shard] of Object.entries(map)) {
    if (typeof shard !== "string" || shard === "" || shard.includes("/") || shard.startsWith(".")) {
      throw new DataFormatError(
        index,
        0,
        `weight_map entry ${name} names no shard file (${JSON.stringify(shard)})`,
      );
    }
  }
  const out = new Map<string, NamedTensor>();
  for (const shard of new Set(Object.values(map))) {
    for (const [k, v] of await readSafetensors(`${dir}/${shard}`)) out.set(k, v);
  }
  const missing = Object.keys(map).filter((k) => !out.has(k));
  if (missing.length) {
    throw new DataFormatError(index, 0, `tensors missing from shards: ${missing.join(", ")}`);
  }
  return out;
}

/** Serialises named tensors (F32, or I32 for Int32Array data) as safetensors bytes. */
export function serializeSafetensors(
  tensors: Map<string, NamedTensor> | Record<string, NamedTensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new RangeError(`${name}: ${t.data.length} values do not fit shape [${t.shape}]`);
    }
    const dtype = t.data instanceof Int32Array ? "I32" : "F32";
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + count * 4] };
    offset += count * 4;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
  json += " ".repeat((8 - ((8 + new TextEncoder().encode(json).length) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const [, t] of entries) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (t.data instanceof Float32Array) {
      for (let i = 0; i < t.data.length; i++) view.setFloat32(at + i * 4, t.data[i], true);
    } else out.set(bytes, at);
    at += t.data.byteLength;
  }
  return out;
}

/** Writes safetensors atomically (to a temporary file, then renamed over `path`). */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, NamedTensor> | Record<string, NamedTensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  await Deno.writeFile(tmp, serializeSafetensors(tensors, metadata));
  await Deno.rename(tmp, path);
}
