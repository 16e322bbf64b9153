/**
 * Writing embeddings to disk, as `deno task encode` does: JSON Lines `{"id", "embedding": [..]}`
 * with each float32 printed in its shortest exact decimal form, or a NumPy `.npy` file (format
 * version 1.0, little-endian float32, shape [n, dim]) with the ids beside it.
 *
 * @module
 */

/**
 * The shortest decimal (as a JS number) that rounds back to the same float32: `0.1` for
 * `Math.fround(0.1)` rather than `0.10000000149011612`. `Math.fround` of the result is `v` again,
 * bit for bit (NaN and infinities, which JSON cannot hold, come back unchanged).
 */
export function shortestFloat32(v: number): number {
  if (!Number.isFinite(v) || v === 0) return v;
  for (let p = 1; p < 9; p++) {
    const x = Number(v.toPrecision(p));
    if (Math.fround(x) === v) return x;
  }
  return Number(v.toPrecision(9)); // 9 significant digits always identify a float32
}

/** One output line (without `\n`): `{"id":"..","embedding":[..]}`. Throws on a non-finite value. */
export function embeddingLine(id: string, row: Float32Array): string {
  const values = new Array<number>(row.length);
  for (let i = 0; i < row.length; i++) {
    if (!Number.isFinite(row[i])) {
      throw new RangeError(`embedding of "${id}" has a non-finite value at ${i}: ${row[i]}`);
    }
    values[i] = shortestFloat32(row[i]);
  }
  return `{"id":${JSON.stringify(id)},"embedding":[${values.join(",")}]}`;
}

/**
 * The header of a version 1.0 `.npy` file for a C-order little-endian float32 array: magic
 * `\x93NUMPY`, version 1 0, header length (uint16 LE), then the dict
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (n, dim), }` padded with spaces and ended
 * with `\n` so the data starts at a multiple of 64 bytes.
 */
export function npyHeader(shape: readonly number[]): Uint8Array {
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': ${dims}, }`;
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const headerLen = total - 10;
  if (headerLen > 65535) throw new RangeError("npy header too long for format 1.0");
  const out = new Uint8Array(total);
  out.set([0x93, ...new TextEncoder().encode("NUMPY"), 1, 0], 0);
  new DataView(out.buffer).setUint16(8, headerLen, true);
  const text = dict.padEnd(headerLen - 1, " ") + "\n";
  out.set(new TextEncoder().encode(text), 10);
  return out;
}

/** Where {@link writeEmbeddings} put the ids of an `.npy` output: `OUT.npy` -> `OUT.ids.json`. */
export function idsPathFor(npyPath: string): string {
  return `${npyPath.replace(/\.npy$/i, "")}.ids.json`;
}

/** Options of {@link EmbeddingsWriter.open}. */
export interface WriteEmbeddingsOptions {
  /** For `.npy`: the ids file (`.json`: a JSON array; `.txt`: one id per line). */
  idsPath?: string;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await file.write(bytes.subarray(off));
}

/**
 * Streams embeddings to `path` in chunks: `.npy` gives a float32 [count, dim] array plus an ids
 * file (written at {@link EmbeddingsWriter.close}), anything else JSON Lines. The row count of
 * an `.npy` file is fixed when it is opened; closing with fewer rows is an error.
 *
 * @example
 * ```ts
 * const out = await EmbeddingsWriter.open("vectors.npy", ids.length, 512);
 * await out.write(ids, data); // any number of times, rows in order
 * const files = await out.close(); // ["vectors.npy", "vectors.ids.json"]
 * ```
 */
export class EmbeddingsWriter {
  readonly #file: Deno.FsFile;
  readonly #npy: boolean;
  readonly #ids: string[] = [];
  readonly #path: string;
  readonly #idsPath: string;
  readonly #count: number;
  /** Embedding width. */
  readonly dim: number;

  private constructor(
    file: Deno.FsFile,
    path: string,
    count: number,
    dim: number,
    idsPath: string,
  ) {
    this.#file = file;
    this.#path = path;
    this.#npy = /\.npy$/i.test(path);
    this.#count = count;
    this.dim = dim;
    this.#idsPath = idsPath;
  }

  /** Creates (truncates) `path`; `count` rows of width `dim` are expected for `.npy`. */
  static async open(
    path: string,
    count: number,
    dim: number,
    options: WriteEmbeddingsOptions = {},
  ): Promise<EmbeddingsWriter> {
    const npy = /\.npy$/i.test(path);
    if (npy && new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
      throw new Error("big-endian host: .npy output ('<f4') not supported");
    }
    const file = await Deno.open(path, { write: true, create: true, truncate: true });
    const w = new EmbeddingsWriter(file, path, count, dim, options.idsPath ?? idsPathFor(path));
    if (npy) await writeAll(file, npyHeader([count, dim]));
    return w;
  }

  /** Rows written so far. */
  get written(): number {
    return this.#ids.length;
  }

  /** Appends `ids.length` rows (row-major `data`, `ids.length * dim` values). */
  async write(ids: readonly string[], data: Float32Array): Promise<void> {
    const dim = this.dim;
    if (data.length !== ids.length * dim) {
      throw new RangeError(`${ids.length} ids x ${dim} dims != ${data.length} values`);
    }
    if (this.#npy) {
      if (this.#ids.length + ids.length > this.#count) {
        throw new RangeError(`more than the ${this.#count} rows announced in the .npy header`);
      }
      await writeAll(this.#file, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    } else {
      const enc = new TextEncoder();
      for (let start = 0; start < ids.length; start += 256) {
        const lines: string[] = [];
        for (let i = start; i < Math.min(ids.length, start + 256); i++) {
          lines.push(embeddingLine(ids[i], data.subarray(i * dim, (i + 1) * dim)));
        }
        await writeAll(this.#file, enc.encode(lines.join("\n") + "\n"));
      }
    }
    this.#ids.push(...ids);
  }

  /** Closes the file (and writes the ids file for `.npy`); returns the paths written. */
  async close(): Promise<string[]> {
    this.#file.close();
    if (!this.#npy) return [this.#path];
    if (this.#ids.length !== this.#count) {
      throw new RangeError(
        `${this.#path}: ${this.#ids.length} rows written, the header says ${this.#count}`,
      );
    }
    const ids = this.#ids;
    await Deno.writeTextFile(
      this.#idsPath,
      /\.txt$/i.test(this.#idsPath)
        ? ids.map((id) => `${id}\n`).join("")
        : JSON.stringify(ids) + "\n",
    );
    return [this.#path, this.#idsPath];
  }
}
