/**
 * Reading texts to encode from JSON Lines, `{"id", "text"}` per line, as `deno task encode` and
 * the encode benchmark take them. BEIR files work as they are: `_id` is accepted for `id`, and a
 * `title` is joined before the text with one space, as BEIR's dense retrieval does.
 *
 * @module
 */
import { numericJsonId, readLines } from "../data/lines.ts";
import { DataFormatError } from "../data/types.ts";

/** One text and its id. */
export interface IdText {
  /** The id (`id` or `_id`; numbers are turned into strings). */
  id: string;
  /** The text to encode (title joined, see {@link joinTitle}). */
  text: string;
}

/** Options of {@link readTextsJsonl} and {@link parseTextRecord}. */
export interface ReadTextsOptions {
  /** The field holding the text. Default `"text"`. */
  field?: string;
  /** Join a `title` field before the text when there is one. Default true. */
  title?: boolean;
  /** Stop after this many records. */
  limit?: number;
}

/**
 * The text BEIR encodes for a document: `(title + " " + text).trim()` when the record has a
 * title (a string field, even empty), else the text unchanged.
 *
 * @example
 * ```ts
 * joinTitle("Title", "Body."); // "Title Body."
 * joinTitle("", " Body. "); // "Body."
 * joinTitle(undefined, " Body. "); // " Body. "
 * ```
 */
export function joinTitle(title: string | undefined, text: string): string {
  return title === undefined ? text : `${title} ${text}`.trim();
}

/**
 * Turns one parsed JSON line into an {@link IdText}; throws a {@link DataFormatError} naming
 * `file` and `lineNo` when the id or the text is missing or of the wrong type.
 */
export function parseTextRecord(
  file: string,
  lineNo: number,
  o: unknown,
  options: ReadTextsOptions = {},
): IdText {
  if (typeof o !== "object" || o === null || Array.isArray(o)) {
    throw new DataFormatError(file, lineNo, `expected a JSON object like {"id": ..., "text": ...}`);
  }
  const rec = o as Record<string, unknown>;
  const rawId = rec.id ?? rec._id;
  let id: string;
  if (typeof rawId === "string" && rawId !== "") id = rawId;
  else if (typeof rawId === "number" && Number.isFinite(rawId)) {
    id = numericJsonId(file, lineNo, rec.id !== undefined && rec.id !== null ? "id" : "_id", rawId);
  } else {
    throw new DataFormatError(
      file,
      lineNo,
      rawId === undefined || rawId === null
        ? `missing "id" (or BEIR "_id")`
        : `"id" must be a non-empty string or a number, got ${JSON.stringify(rawId)}`,
    );
  }
  const field = options.field ?? "text";
  const text = rec[field];
  if (typeof text !== "string") {
    throw new DataFormatError(
      file,
      lineNo,
      text === undefined || text === null
        ? `missing "${field}"`
        : `"${field}" must be a string, got ${Array.isArray(text) ? "an array" : typeof text}`,
    );
  }
  let title: string | undefined;
  if ((options.title ?? true) && rec.title !== undefined && rec.title !== null) {
    if (typeof rec.title !== "string") {
      throw new DataFormatError(file, lineNo, `"title" must be a string`);
    }
    title = rec.title;
  }
  return { id, text: joinTitle(title, text) };
}

/**
 * Reads every record of a JSONL file (blank lines skipped). Errors are {@link DataFormatError}s
 * naming the file and line: invalid JSON, a missing id or text, a duplicate id (with the line of
 * its first use); or the file alone when it cannot be read (missing, a directory).
 *
 * @example
 * ```ts
 * const docs = await readTextsJsonl("scifact/corpus.jsonl", { limit: 1000 });
 * console.log(docs[0].id, docs[0].text.slice(0, 40));
 * ```
 */
export async function readTextsJsonl(
  path: string,
  options: ReadTextsOptions = {},
): Promise<IdText[]> {
  const out: IdText[] = [];
  const seen = new Map<string, number>();
  const limit = options.limit ?? Infinity;
  const unreadable = (why: string) =>
    new DataFormatError(path, 0, `cannot read the input (${why})`);
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    throw unreadable(e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message);
  }
  if (info.isDirectory) throw unreadable("it is a directory");
  // Read errors (of the file, not its content) become DataFormatErrors naming the file.
  async function* lines() {
    const it = readLines(path);
    try {
      while (true) {
        let r: IteratorResult<{ text: string; lineNo: number }>;
        try {
          r = await it.next();
        } catch (e) {
          throw unreadable((e as Error).message);
        }
        if (r.done) return;
        yield r.value;
      }
    } finally {
      await it.return(undefined); // closes the file when the caller stops early
    }
  }
  for await (const { text, lineNo } of lines()) {
    if (out.length >= limit) break;
    if (text.trim() === "") continue;
    let o: unknown;
    try {
      o = JSON.parse(text);
    } catch (e) {
      throw new DataFormatError(path, lineNo, `invalid JSON: ${(e as Error).message}`);
    }
    const rec = parseTextRecord(path, lineNo, o, options);
    const first = seen.get(rec.id);
    if (first !== undefined) {
      throw new DataFormatError(path, lineNo, `duplicate id "${rec.id}" (first on line ${first})`);
    }
    seen.set(rec.id, lineNo);
    out.push(rec);
  }
  return out;
}
