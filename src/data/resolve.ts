/**
 * Finding a dataset on disk. Order: an explicit directory (`--data DIR`), then
 * `$SELFMARGIN_DATA_DIR/<name>`, then the local cache (`$SELFMARGIN_CACHE_DIR`, else
 * `$XDG_CACHE_HOME/selfmargin`, else `~/.cache/selfmargin`, each + `/datasets/<name>`).
 * Nothing is downloaded: when none holds the dataset the error says how to provide it.
 *
 * @module
 */

/** Options of {@link resolveDataset}. */
export interface ResolveOptions {
  /**
   * An explicit location (the CLI's `--data`): either the dataset directory itself or a
   * directory holding `<name>/`.
   */
  data?: string;
  /** Environment lookup, replaceable in tests (default `Deno.env.get`). */
  env?: (key: string) => string | undefined;
}

/** Files whose presence marks a directory as a dataset (BEIR or MS MARCO layout). */
const MARKERS = ["corpus.jsonl", "collection.tsv"];

async function isDataset(dir: string): Promise<boolean> {
  for (const m of MARKERS) {
    try {
      if ((await Deno.stat(`${dir}/${m}`)).isFile) return true;
    } catch {
      // not there
    }
  }
  return false;
}

/** The cache directory for datasets (may not exist). */
export function datasetCacheDir(env: (key: string) => string | undefined = Deno.env.get): string {
  const base = env("SELFMARGIN_CACHE_DIR") ??
    (env("XDG_CACHE_HOME") ? `${env("XDG_CACHE_HOME")}/selfmargin` : undefined) ??
    `${env("HOME") ?? "."}/.cache/selfmargin`;
  return `${base}/datasets`;
}

/**
 * Returns the directory of dataset `name` (e.g. "scifact"), or throws an error that lists the
 * places searched and how to provide the data.
 *
 * @example
 * ```ts
 * import { resolveDataset } from "./resolve.ts";
 * const dir = await resolveDataset("scifact", { data: "../shared/datasets" });
 * ```
 */
export async function resolveDataset(name: string, options: ResolveOptions = {}): Promise<string> {
  const env = options.env ?? ((k: string) => Deno.env.get(k));
  const tried: string[] = [];
  if (options.data !== undefined) {
    for (const dir of [options.data, `${options.data}/${name}`]) {
      tried.push(dir);
      if (await isDataset(dir)) return dir;
    }
    throw new Error(
      `dataset '${name}' not found at --data ${options.data} (looked for ${
        MARKERS.join(" or ")
      } in: ${tried.join(", ")})`,
    );
  }
  const envDir = env("SELFMARGIN_DATA_DIR");
  if (envDir) {
    tried.push(`${envDir}/${name}`);
    if (await isDataset(`${envDir}/${name}`)) return `${envDir}/${name}`;
  }
  const cached = `${datasetCacheDir(env)}/${name}`;
  tried.push(cached);
  if (await isDataset(cached)) return cached;
  throw new Error(
    `dataset '${name}' not found (searched: ${tried.join(", ")}). Provide it with ` +
      `--data DIR (the dataset directory, BEIR layout: corpus.jsonl, queries.jsonl, ` +
      `qrels/<split>.tsv), or set SELFMARGIN_DATA_DIR to a directory holding '${name}/', or ` +
      `unpack it into ${cached}. No download is attempted (BEIR zips: ` +
      `https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/${name}.zip).`,
  );
}
