/**
 * File-system helpers for writing results that must never be seen half-written.
 *
 * @module
 */

/**
 * Moves the complete directory `ready` to `dir`, replacing what was there. The old directory is
 * moved aside to `dir.old` first and removed after, so at every moment one complete version
 * exists under `dir` or `dir.old`.
 */
export async function replaceDir(ready: string, dir: string): Promise<void> {
  const old = `${dir}.old`;
  await Deno.remove(old, { recursive: true }).catch(() => {});
  const hadOld = await Deno.rename(dir, old).then(() => true, () => false);
  await Deno.rename(ready, dir);
  if (hadOld) await Deno.remove(old, { recursive: true });
}
