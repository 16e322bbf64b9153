/**
 * Embedding tables as Parquet files (ZSTD): an `id` column (UTF-8), an `embedding` column
 * (FixedSizeList<Float32> of the embedding width), and string key-value metadata in the Arrow
 * schema (the model identity, the shard, the corpus fingerprint). Written with `apache-arrow`
 * and `parquet-wasm`, both imported lazily, so nothing else in the library loads them.
 *
 * @example
 * ```ts
 * await writeEmbeddingParquet("shard-0001-of-0002.parquet", {
 *   ids: ["d1", "d2"], dim: 2, data: Float32Array.of(1, 0, 0, 1), meta: { model: "..." },
 * });
 * const back = await readEmbeddingParquet("shard-0001-of-0002.parquet");
 * ```
 *
 * @module
 */
import { DataFormatError } from "../data/types.ts";
import { writeFileAtomic } from "../util/fs.ts";

/** The versions pinned here are those measured to work together in Deno (see the README). */
const ARROW = "npm:apache-arrow@18.1.0";
const PARQUET = "npm:parquet-wasm@0.8.0";

/** Rows of embeddings with their ids and metadata. */
export interface EmbeddingRows {
  /** Document ids, one per row. */
  ids: string[];
  /** Embedding width. */
  dim: number;
  /** Row-major embeddings [ids.length, dim]. */
  data: Float32Array;
  /** String metadata kept in the file's schema. */
  meta: Record<string, string>;
}

/** Writes `rows` as a Parquet file (ZSTD), replacing `path` only once complete. */
export async function writeEmbeddingParquet(path: string, rows: EmbeddingRows): Promise<void> {
  const n = rows.ids.length;
  if (rows.data.length !== n * rows.dim) {
    throw new RangeError(`${n} ids and ${rows.data.length} values do not make ${rows.dim}-d rows`);
  }
  const arrow = await import(ARROW);
  const pw = await import(PARQUET);
  const listType = new arrow.FixedSizeList(
    rows.dim,
    new arrow.Field("item", new arrow.Float32(), false),
  );
  const values = arrow.makeData({
    type: new arrow.Float32(),
    length: n * rows.dim,
    data: rows.data,
  });
  const embedding = arrow.makeVector(
    arrow.makeData({ type: listType, length: n, nullCount: 0, child: values }),
  );
  const schema = new arrow.Schema(
    [
      new arrow.Field("id", new arrow.Utf8(), false),
      new arrow.Field("embedding", listType, false),
    ],
    new Map(Object.entries(rows.meta)),
  );
  const table = new arrow.Table(schema, {
    id: arrow.vectorFromArray(rows.ids, new arrow.Utf8()),
    embedding,
  });
  const props = new pw.WriterPropertiesBuilder().setCompression(pw.Compression.ZSTD).build();
  const bytes: Uint8Array = pw.writeParquet(
    pw.Table.fromIPCStream(arrow.tableToIPC(table, "stream")),
    props,
  );
  await writeFileAtomic(path, bytes);
}

/** Only the metadata of a Parquet embedding file (reads the file, but builds no rows). */
export async function readEmbeddingMeta(path: string): Promise<Record<string, string>> {
  return (await readEmbeddingParquet(path, { metaOnly: true })).meta;
}

/**
 * Reads a file written by {@link writeEmbeddingParquet}. A file without the two columns, or
 * with an embedding column of another type, is a {@link DataFormatError} naming it.
 */
export async function readEmbeddingParquet(
  path: string,
  opts: { metaOnly?: boolean } = {},
): Promise<EmbeddingRows> {
  const arrow = await import(ARROW);
  const pw = await import(PARQUET);
  let table;
  try {
    table = arrow.tableFromIPC(pw.readParquet(await Deno.readFile(path)).intoIPCStream());
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw e;
    throw new DataFormatError(path, 0, `not a readable Parquet file (${(e as Error).message})`);
  }
  const meta: Record<string, string> = Object.fromEntries(table.schema.metadata);
  const idCol = table.getChild("id"), embCol = table.getChild("embedding");
  const embType = embCol?.type;
  if (!idCol || !embCol || !(embType instanceof arrow.FixedSizeList)) {
    throw new DataFormatError(
      path,
      0,
      "expected an id column and an embedding column of fixed-size float32 lists",
    );
  }
  const dim = (embType as { listSize: number }).listSize;
  if (opts.metaOnly) return { ids: [], dim, data: new Float32Array(0), meta };
  const n = table.numRows;
  const data = new Float32Array(n * dim);
  let at = 0;
  for (const chunk of embCol.data) {
    const child = chunk.children[0];
    const start = chunk.offset * dim + child.offset;
    const values = (child.values as Float32Array).subarray(start, start + chunk.length * dim);
    data.set(values, at);
    at += chunk.length * dim;
  }
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(String(idCol.get(i)));
  return { ids, dim, data, meta };
}
