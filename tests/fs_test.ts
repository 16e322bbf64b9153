// replaceDir and recoverDir through every crash window of the directory swap: the on-disk states
// an interrupted swap leaves are built directly, and in each the only complete copy survives.
import { deepStrictEqual, rejects } from "node:assert/strict";
import { recoverDir, replaceDir } from "../src/util/fs.ts";
import { withTempDir } from "./helpers.ts";

async function tree(dir: string, text: string): Promise<void> {
  await Deno.mkdir(`${dir}/sub`, { recursive: true });
  await Deno.writeTextFile(`${dir}/a.txt`, text);
  await Deno.writeTextFile(`${dir}/sub/b.txt`, text);
}

/** `dir`'s content as "a.txt/sub-b.txt", or null when it does not exist. */
async function content(dir: string): Promise<string | null> {
  try {
    return `${await Deno.readTextFile(`${dir}/a.txt`)}/${await Deno.readTextFile(
      `${dir}/sub/b.txt`,
    )}`;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

async function names(dir: string): Promise<string[]> {
  const out = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

Deno.test("replaceDir moves a ready directory in, first time and over an old one", () =>
  withTempDir(async (root) => {
    await tree(`${root}/ready`, "v1");
    await replaceDir(`${root}/ready`, `${root}/d`);
    deepStrictEqual(await content(`${root}/d`), "v1/v1");
    await tree(`${root}/ready`, "v2");
    await replaceDir(`${root}/ready`, `${root}/d`);
    deepStrictEqual(await content(`${root}/d`), "v2/v2");
    deepStrictEqual(await names(root), ["d"]);
  }));

Deno.test("crash between the two renames: dir.old, the only complete copy, is never deleted", () =>
  withTempDir(async (root) => {
    // The state an interrupted swap leaves: d moved aside to d.old, the new one not moved in.
    await tree(`${root}/d.old`, "v1");
    // A swap whose new directory cannot be moved in fails, and the old copy survives.
    await rejects(replaceDir(`${root}/missing`, `${root}/d`), Deno.errors.NotFound);
    deepStrictEqual(await content(`${root}/d`) ?? await content(`${root}/d.old`), "v1/v1");
    // recoverDir renames it back.
    await Deno.remove(`${root}/d`, { recursive: true }).catch(() => {});
    await tree(`${root}/d.old`, "v1");
    deepStrictEqual(await recoverDir(`${root}/d`), "restored");
    deepStrictEqual(await content(`${root}/d`), "v1/v1");
    deepStrictEqual(await names(root), ["d"]);
    // A later swap over that state replaces it normally.
    await Deno.rename(`${root}/d`, `${root}/d.old`);
    await tree(`${root}/ready`, "v2");
    await replaceDir(`${root}/ready`, `${root}/d`);
    deepStrictEqual(await content(`${root}/d`), "v2/v2");
    deepStrictEqual(await names(root), ["d"]);
  }));

Deno.test("crash after the second rename: the new dir stands, the leftover dir.old goes", () =>
  withTempDir(async (root) => {
    await tree(`${root}/d`, "v2");
    await tree(`${root}/d.old`, "v1");
    await Deno.remove(`${root}/d.old/sub`, { recursive: true }); // half removed
    deepStrictEqual(await recoverDir(`${root}/d`), "intact");
    deepStrictEqual(await content(`${root}/d`), "v2/v2");
    deepStrictEqual(await names(root), ["d"]);
    await tree(`${root}/d.old`, "v1");
    await tree(`${root}/ready`, "v3");
    await replaceDir(`${root}/ready`, `${root}/d`);
    deepStrictEqual(await content(`${root}/d`), "v3/v3");
    deepStrictEqual(await names(root), ["d"]);
  }));

Deno.test("a failed swap moves the old directory back", () =>
  withTempDir(async (root) => {
    await tree(`${root}/d`, "v1");
    await rejects(replaceDir(`${root}/missing`, `${root}/d`), Deno.errors.NotFound);
    deepStrictEqual(await content(`${root}/d`), "v1/v1");
    deepStrictEqual(await names(root), ["d"]);
    deepStrictEqual(await recoverDir(`${root}/nothing`), "missing");
    deepStrictEqual(await recoverDir(`${root}/d`), "intact");
  }));
