/**
 * Writing embeddings to disk, as `deno task encode` does: JSON Lines `{"id", "embedding": [..]}`
 * with each float32 printed in its shortest exact decimal form, or a NumPy `.npy` file (format
 * version 1.0, little-endian float32, shape [n, dim]) with the ids beside it. Non-finite values
 * are refused in both, and an existing output file is replaced only once the new one is complete.
 *
 * @module
 */
import { atomicFile } from "../util/fs.ts";

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

/**
 * A NaN or infinite value in an embedding: neither output format may hold one (JSON has no
 * NaN; a `.npy` with NaN rows poisons every score computed from it).
 */
export class NonFiniteEmbeddingError extends RangeError {
  /** The id of the text whose embedding it is. */
  readonly id: string;
  /** The row of the output (0-based, input order), when known. */
  readonly row: number | undefined;
  /** The dimension holding the value. */
  readonly dimension: number;
  /** The value (NaN, Infinity or -Infinity). */
  readonly value: number;

  /** Builds the error; the message names the text id, the row and the dimension. */
  constructor(id: string, row: number | undefined, dimension: number, value: number) {
    super(
      `the embedding of text "${id}"${
        row === undefined ? "" : ` (row ${row})`
      } has a non-finite value at dimension ${dimension}: ${value}`,
    );
    this.name = "NonFiniteEmbeddingError";
    this.id = id;
    this.row = row;
    this.dimension = dimension;
    this.value = value;
  }
}

/**
 * Throws a {@link NonFiniteEmbeddingError} for the first non-finite value of row-major `data`
 * (`ids.length` rows of width `dim`); `firstRow` is the output row of `ids[0]`.
 */
export function checkFinite(
  ids: readonly string[],
  data: Float32Array,
  dim: number,
  firstRow = 0,
): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      const r = Math.floor(i / dim);
      throw new NonFiniteEmbeddingError(ids[r], firstRow + r, i - r * dim, data[i]);
    }
  }
}

/**
 * One output line (without `\n`): `{"id":"..","embedding":[..]}`. Throws a
 * {@link NonFiniteEmbeddingError} on a non-finite value.
 */
export function embeddingLine(id: string, row: Float32Array): string {
  const values = new Array<number>(row.length);
  for (let i = 0; i < row.length; i++) {
    if (!Number.isFinite(row[i])) throw new NonFiniteEmbeddingError(id, undefined, i, row[i]);
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

/** Where {@link EmbeddingsWriter} puts the ids of an `.npy` output: `OUT.npy` -> `OUT.ids.json`. */
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

type Pending = Awaited<ReturnType<typeof atomicFile>>;

/**
 * Streams embeddings to `path` in chunks: `.npy` gives a float32 [count, dim] array plus an ids
 * file, anything else JSON Lines. The row count of an `.npy` file is fixed when it is opened;
 * closing with fewer rows is an error. A NaN or infinite value is refused in both formats
 * ({@link NonFiniteEmbeddingError}).
 *
 * Nothing is lost on failure: the rows go to a temporary file beside `path` (see
 * {@link atomicFile}), which only {@link EmbeddingsWriter.close} puts in place; until then an
 * existing `path` (and ids file) keeps its old bytes. After an error, call
 * {@link EmbeddingsWriter.abort} to remove the temporary files.
 *
 * For `.npy`, the two files cannot be replaced in one step. `close` writes both temporary files
 * completely, then removes the old ids file, renames the new `.npy` into place, and renames the
 * new ids file last. A crash between these steps leaves either the old pair, or an `.npy` with
 * no ids file beside it (an error for whoever reads it), but never a new `.npy` beside old ids
 * (or the other way round), which would pair rows with the wrong ids without a sound.
 *
 * @example
 * ```ts
 * const out = await EmbeddingsWriter.open("vectors.npy", ids.length, 512);
 * try {
 *   await out.write(ids, data); // any number of times, rows in order
 *   const files = await out.close(); // ["vectors.npy", "vectors.ids.json"]
 * } catch (e) {
 *   await out.abort(); // vectors.npy and vectors.ids.json as they were
 *   throw e;
 * }
 * ```
 */
export class EmbeddingsWriter {
  readonly #file: Deno.FsFile;
  readonly #npy: boolean;
  readonly #ids: string[] = [];
  readonly #out: Pending;
  readonly #idsOut: Pending | undefined;
  readonly #count: number;
  #closed = false;
  #committing = false;
  /** Embedding width. */
  readonly dim: number;

  private constructor(
    file: Deno.FsFile,
    out: Pending,
    idsOut: Pending | undefined,
    count: number,
    dim: number,
  ) {
    this.#file = file;
    this.#out = out;
    this.#idsOut = idsOut;
    this.#npy = idsOut !== undefined;
    this.#count = count;
    this.dim = dim;
  }

  /**
   * Starts writing `path` (`count` rows of width `dim` are expected for `.npy`): creates the
   * temporary file(s) beside it and the ids file; `path` itself is untouched until
   * {@link EmbeddingsWriter.close}.
   */
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
    const out = await atomicFile(path);
    let idsOut: Pending | undefined;
    let file: Deno.FsFile | undefined;
    try {
      if (npy) idsOut = await atomicFile(options.idsPath ?? idsPathFor(path));
      file = await Deno.open(out.tmp, { write: true, truncate: true });
      if (npy) await writeAll(file, npyHeader([count, dim]));
    } catch (e) {
      file?.close();
      await out.abort();
      await idsOut?.abort();
      throw e;
    }
    return new EmbeddingsWriter(file, out, idsOut, count, dim);
  }

  /** Rows written so far. */
  get written(): number {
    return this.#ids.length;
  }

  /** The temporary files being written (removed by {@link EmbeddingsWriter.abort}). */
  get temporaryFiles(): string[] {
    return [this.#out.tmp, ...(this.#idsOut ? [this.#idsOut.tmp] : [])];
  }

  /**
   * Appends `ids.length` rows (row-major `data`, `ids.length * dim` values). Throws a
   * {@link NonFiniteEmbeddingError} naming the text id and row before writing any of them when
   * a value is NaN or infinite.
   */
  async write(ids: readonly string[], data: Float32Array): Promise<void> {
    const dim = this.dim;
    if (data.length !== ids.length * dim) {
      throw new RangeError(`${ids.length} ids x ${dim} dims != ${data.length} values`);
    }
    checkFinite(ids, data, dim, this.#ids.length);
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

  #closeFile(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }

  /**
   * Finishes the file(s) and puts them in place (for `.npy`: writes the ids, then replaces the
   * files in the order described above); returns the paths written. When it throws before the
   * renames, the old files are untouched; call {@link EmbeddingsWriter.abort}.
   */
  async close(): Promise<string[]> {
    await this.#file.syncData();
    this.#closeFile();
    const path = this.#out.path;
    if (!this.#npy) {
      this.#committing = true;
      await this.#out.commit();
      return [path];
    }
    if (this.#ids.length !== this.#count) {
      throw new RangeError(
        `${path}: ${this.#ids.length} rows written, the header says ${this.#count}`,
      );
    }
    const idsOut = this.#idsOut!;
    const ids = this.#ids;
    await Deno.writeTextFile(
      idsOut.tmp,
      /\.txt$/i.test(idsOut.path)
        ? ids.map((id) => `${id}\n`).join("")
        : JSON.stringify(ids) + "\n",
    );
    this.#committing = true;
    await Deno.remove(idsOut.path).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
    await this.#out.commit();
    await idsOut.commit();
    return [path, idsOut.path];
  }

  /** Closes the file and removes the temporary files; the destination keeps its old bytes. */
  abort(): Promise<void> {
    this.abortSync();
    return Promise.resolve();
  }

  /**
   * {@link EmbeddingsWriter.abort} for signal handlers: synchronous. Returns false, doing
   * nothing, once {@link EmbeddingsWriter.close} has started replacing the files (they must
   * then be left to finish), true otherwise.
   */
  abortSync(): boolean {
    if (this.#committing) return false;
    this.#closeFile();
    this.#out.abortSync();
    this.#idsOut?.abortSync();
    return true;
  }
}
