/**
 * Downloading BEIR datasets into the local cache, verified against the MD5 checksums BEIR
 * publishes, and the resolution order the CLIs use: `--data`, `$SELFMARGIN_DATA_DIR/<name>`,
 * the cache, else a download; offline without data, one error that says how to provide it.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { unzipSync } from "npm:fflate@0.8.3";
import { replaceDir } from "../util/fs.ts";
import { datasetCacheDir, resolveDataset, type ResolveOptions } from "./resolve.ts";

/** Where BEIR's zips live. */
export const BEIR_BASE_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets";

/** MD5 checksums of BEIR's zips, as BEIR publishes them. */
export const BEIR_MD5: Readonly<Record<string, string>> = Object.freeze({
  scifact: "5f7d1de60b170fc8027bb7898e2efca1",
});

/** Options of {@link downloadBeir}. */
export interface DownloadOptions {
  /** Base URL of the zips (default {@link BEIR_BASE_URL}). */
  baseUrl?: string;
  /** Expected MD5 of the zip (default from {@link BEIR_MD5}; unknown datasets are refused). */
  md5?: string;
  /** Directory that receives `<name>/` (default the dataset cache). */
  into?: string;
  /** Called with bytes received so far and the total when known. */
  onProgress?: (received: number, total: number | null) => void;
}

/**
 * Downloads `<baseUrl>/<name>.zip`, checks its MD5, and unpacks `<name>/...` into the cache
 * (atomically: a temporary directory renamed into place). Returns the dataset directory.
 */
export async function downloadBeir(name: string, opts: DownloadOptions = {}): Promise<string> {
  const md5 = opts.md5 ?? BEIR_MD5[name];
  if (!md5) {
    throw new Error(`no published checksum for BEIR dataset '${name}'; provide it with --data DIR`);
  }
  const url = `${opts.baseUrl ?? BEIR_BASE_URL}/${name}.zip`;
  const into = opts.into ?? datasetCacheDir();
  let response: Response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Error(
      `cannot download ${url} (${(e as Error).message}). Offline? Provide the dataset with ` +
        `--data DIR (BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv), or set ` +
        `SELFMARGIN_DATA_DIR to a directory holding '${name}/', or unzip ${name}.zip into ${into}.`,
    );
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new Error(`cannot download ${url}: HTTP ${response.status}`);
  }
  const total = Number(response.headers.get("content-length")) || null;
  const chunks: Uint8Array[] = [];
  let received = 0;
  for await (const chunk of response.body) {
    chunks.push(chunk);
    received += chunk.byteLength;
    opts.onProgress?.(received, total);
  }
  const zip = new Uint8Array(received);
  let at = 0;
  for (const c of chunks) {
    zip.set(c, at);
    at += c.byteLength;
  }
  const digest = createHash("md5").update(zip).digest("hex");
  if (digest !== md5) {
    throw new Error(`${url}: MD5 ${digest} does not match the published ${md5}; not unpacked`);
  }
  const files = unzipSync(zip);
  const tmp = `${into}/.${name}.partial-${crypto.randomUUID()}`;
  let written = 0;
  for (const [path, bytes] of Object.entries(files)) {
    if (path.endsWith("/") || !path.startsWith(`${name}/`) || path.includes("..")) continue;
    const target = `${tmp}/${path.slice(name.length + 1)}`;
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
    await Deno.writeFile(target, bytes);
    written++;
  }
  if (written === 0) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw new Error(`${url}: the zip holds no '${name}/' directory`);
  }
  const dir = `${into}/${name}`;
  await replaceDir(tmp, dir);
  return dir;
}

/**
 * Finds dataset `name` as {@link resolveDataset} does; if it is nowhere and `download` is not
 * false, downloads it into the cache. An explicit `data` location is never replaced by a download.
 */
export async function resolveOrDownload(
  name: string,
  opts: ResolveOptions & DownloadOptions & { download?: boolean } = {},
): Promise<string> {
  try {
    return await resolveDataset(name, opts);
  } catch (e) {
    if (opts.data !== undefined || opts.download === false || !(name in BEIR_MD5)) throw e;
    return await downloadBeir(name, opts);
  }
}
