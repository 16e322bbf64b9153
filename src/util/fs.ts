/**
 * File-system helpers for writing results that must never be seen half-written.
 *
 * @module
 */

/**
 * Moves the complete directory `ready` to `dir`, replacing what was there. The old directory is
 * moved aside to `dir.old` first and removed after, so at every moment one complete version
 * exists under `dir` or `dir.old`:
 *
 * - `dir` present (with or without a `dir.old`): `dir` is complete (it only ever appears by a
 *   rename of a complete directory); a `dir.old` beside it is a leftover, possibly half removed;
 * - `dir` missing, `dir.old` present: a swap was interrupted between its two renames, and
 *   `dir.old` is the only complete copy. {@link recoverDir} (which this function runs first)
 *   renames it back; it is never removed while `dir` is missing.
 *
 * When `ready` cannot be moved in, the old directory is moved back and the error rethrown.
 */
export async function replaceDir(ready: string, dir: string): Promise<void> {
  const old = `${dir}.old`;
  await recoverDir(dir);
  const hadOld = await Deno.rename(dir, old).then(() => true, (e) => {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  });
  try {
    await Deno.rename(ready, dir);
  } catch (e) {
    if (hadOld) await Deno.rename(old, dir).catch(() => {});
    throw e;
  }
  if (hadOld) await Deno.remove(old, { recursive: true });
}

/**
 * Brings `dir` back to a consistent state after an interrupted {@link replaceDir}: when `dir` is
 * missing and `dir.old` exists, renames `dir.old` back to `dir` ("restored"); when both exist,
 * removes the leftover `dir.old` ("intact"). Returns "intact" when `dir` exists, "missing" when
 * neither does.
 *
 * @example
 * ```ts
 * if (await recoverDir("runs/x/last") === "restored") console.error("recovered runs/x/last");
 * ```
 */
export async function recoverDir(dir: string): Promise<"intact" | "restored" | "missing"> {
  const old = `${dir}.old`;
  const present = (path: string) =>
    Deno.lstat(path).then(() => true, (e) => {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    });
  const [hasDir, hasOld] = [await present(dir), await present(old)];
  if (!hasOld) return hasDir ? "intact" : "missing";
  if (hasDir) {
    await Deno.remove(old, { recursive: true });
    return "intact";
  }
  await Deno.rename(old, dir);
  return "restored";
}

/**
 * Starts writing the file `path` without touching it: creates an empty temporary file beside it
 * (`path.tmp-XXXXXXXX`, same directory, so the final rename is atomic), with the mode of the
 * file it will replace. Write the content to `tmp`, then `commit()` renames it over `path` in
 * one step; until then `path` keeps its old bytes, whatever happens. `abort()` (or
 * `abortSync()`, for signal handlers) removes the temporary file; both ignore a file already
 * gone. Creating the temporary file up front makes a missing or read-only directory an error
 * here, before any work is done.
 *
 * @example
 * ```ts
 * const f = await atomicFile("run.txt");
 * try {
 *   await Deno.writeTextFile(f.tmp, "q1 Q0 d1 1 0.5 x\n");
 *   await f.commit();
 * } catch (e) {
 *   await f.abort();
 *   throw e;
 * }
 * ```
 */
export async function atomicFile(path: string): Promise<{
  /** The destination, as given. */
  readonly path: string;
  /** The temporary file to write, in the same directory as `path`. */
  readonly tmp: string;
  /** Renames `tmp` over `path`. */
  commit(): Promise<void>;
  /** Removes `tmp`. */
  abort(): Promise<void>;
  /** Removes `tmp`, synchronously. */
  abortSync(): void;
}> {
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  (await Deno.open(tmp, { write: true, createNew: true })).close();
  try {
    const mode = (await Deno.stat(path).catch(() => null))?.mode;
    if (mode != null && Deno.build.os !== "windows") await Deno.chmod(tmp, mode & 0o7777);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  const gone = (e: unknown) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  };
  return {
    path,
    tmp,
    commit: () => Deno.rename(tmp, path),
    abort: () => Deno.remove(tmp).catch(gone),
    abortSync: () => {
      try {
        Deno.removeSync(tmp);
      } catch (e) {
        gone(e);
      }
    },
  };
}

/** Whether `path` exists (following links: a dangling link does not). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Writes `text` to `path` in one step: `path` is replaced only once all of it is written. */
export async function writeTextFileAtomic(path: string, text: string): Promise<void> {
  await writeFileAtomic(path, new TextEncoder().encode(text));
}

/** Writes `bytes` to `path` through {@link atomicFile}: the old file stays until the new one is whole. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const f = await atomicFile(path);
  try {
    await Deno.writeFile(f.tmp, bytes);
    await f.commit();
  } catch (e) {
    await f.abort();
    throw e;
  }
}
