/**
 * An exclusive lock on an output directory, so two processes never write one run at once (two
 * trainings into one `--out` would interleave their logs and overwrite each other's
 * checkpoints). Any command that owns an output directory (`train`, `study`, `index`) takes it
 * with {@link lockDir} before it writes anything there and releases it when it is done.
 *
 * The lock is a file, `DIR/.lock`, created exclusively (it either did not exist and is now
 * ours, or the call fails), holding a {@link LockInfo} in JSON: who owns the directory, since
 * when, and running what. A lock whose owner is verifiably gone (its process no longer exists on
 * this host) is *stale*: it is reported, never taken over silently; the caller breaks it only
 * when asked (`breakStale`). A lock held by a process on another host, or one whose owner
 * cannot be checked, is never broken by this module: the message says which file to delete.
 *
 * While a lock is held, SIGINT and SIGTERM release it and then end the process with the status
 * the default action would give (130 and 143); `Deno.exit` elsewhere releases it too.
 *
 * @example
 * ```ts
 * const lock = await lockDir("runs/x");
 * try {
 *   // ... write into runs/x ...
 * } finally {
 *   await lock.release();
 * }
 * ```
 *
 * @module
 */

/** The lock file's name inside the locked directory. */
export const LOCK_FILE = ".lock";

/** What a lock file holds: its owner. */
export interface LockInfo {
  /** The owner's process id. */
  pid: number;
  /** The owner's host name ("unknown" when it cannot be read). */
  hostname: string;
  /** When the lock was taken (ISO 8601). */
  started: string;
  /** The owner's command line. */
  command: string[];
  /** The owner's start time in clock ticks since boot (Linux), to tell a reused pid apart. */
  procStart?: string;
  /** A random token that identifies this lock (released only by the process that holds it). */
  token: string;
}

/** Why {@link lockDir} refused. */
export type LockRefusal =
  /** The owner is alive (on this host). */
  | "held"
  /** The owner no longer runs on this host: the lock was left by a crash. */
  | "stale"
  /** The owner is on another host, or its liveness cannot be checked. */
  | "unknown"
  /** The lock file cannot be parsed (being written right now, or damaged). */
  | "unreadable";

/** Raised by {@link lockDir} when the directory is locked; the message says what to do. */
export class LockError extends Error {
  /**
   * A refusal to lock.
   *
   * @param path the lock file
   * @param reason why the lock could not be taken
   * @param holder the lock's owner, when the file could be read
   * @param detail the message
   */
  constructor(
    readonly path: string,
    readonly reason: LockRefusal,
    readonly holder: LockInfo | null,
    detail: string,
  ) {
    super(detail);
    this.name = "LockError";
  }
}

/** Options of {@link lockDir}. */
export interface LockOptions {
  /**
   * Take over a stale lock (its owner verifiably no longer runs on this host). Never breaks a
   * live lock, one of another host, or one whose owner cannot be checked. Default false.
   */
  breakStale?: boolean;
  /** How the user breaks a stale lock, for the message (default "pass breakStale: true"). */
  breakHint?: string;
  /** The command line recorded in the lock (default: the main module and `Deno.args`). */
  command?: string[];
  /** Release on SIGINT/SIGTERM and exit with 130/143 (default true). */
  signals?: boolean;
}

/** A held lock. */
export interface DirLock {
  /** The locked directory. */
  readonly dir: string;
  /** The lock file. */
  readonly path: string;
  /** What the lock file holds. */
  readonly info: LockInfo;
  /** The stale lock this one replaced (with `breakStale`), else null. */
  readonly broken: LockInfo | null;
  /** Removes the lock file if it is still ours; idempotent. */
  release(): Promise<void>;
  /** Same as {@link DirLock.release} (for `await using`). */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Locks whose files this process must remove when it ends. */
const held = new Map<string, LockInfo>();
let handlers: { signal: Deno.Signal; fn: () => void }[] = [];
const onUnload = () => releaseAllSync();

function releaseSync(path: string, info: LockInfo): void {
  held.delete(path);
  try {
    const now = JSON.parse(Deno.readTextFileSync(path)) as LockInfo;
    if (now.token === info.token) Deno.removeSync(path);
  } catch {
    // gone or replaced: not ours to remove
  }
  if (held.size === 0) uninstall();
}

function releaseAllSync(): void {
  for (const [path, info] of [...held]) releaseSync(path, info);
}

function installSignals(): void {
  for (const [signal, status] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    const fn = () => {
      releaseAllSync();
      Deno.exit(status);
    };
    try {
      Deno.addSignalListener(signal, fn);
      handlers.push({ signal, fn });
    } catch {
      // not supported here (SIGTERM on Windows)
    }
  }
}

function uninstall(): void {
  globalThis.removeEventListener("unload", onUnload);
  for (const { signal, fn } of handlers) Deno.removeSignalListener(signal, fn);
  handlers = [];
}

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown";
  }
}

/** Field 22 of /proc/PID/stat: the process's start time (null without /proc). */
function procStart(pid: number | "self"): string | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

/** Whether `info`'s owner still runs: only this host's processes can be checked. */
async function liveness(info: LockInfo): Promise<"alive" | "dead" | "unknown"> {
  if (info.hostname !== hostname() || info.hostname === "unknown") return "unknown";
  if (!Number.isInteger(info.pid) || info.pid <= 0) return "unknown";
  if (procStart("self") !== null) {
    const start = procStart(info.pid);
    if (start === null) return "dead";
    return info.procStart && info.procStart !== start ? "dead" : "alive";
  }
  try {
    const { code } = await new Deno.Command("ps", {
      args: ["-p", String(info.pid)],
      stdout: "null",
      stderr: "null",
    }).output();
    return code === 0 ? "alive" : "dead";
  } catch {
    return "unknown";
  }
}

function describe(info: LockInfo): string {
  const host = info.hostname === hostname() ? "this host" : `host ${info.hostname}`;
  const me = info.pid === Deno.pid && host === "this host" ? ", this process" : "";
  return `pid ${info.pid} on ${host}${me}, since ${info.started}, running '${
    (info.command ?? []).join(" ")
  }'`;
}

function defaultCommand(): string[] {
  try {
    return [Deno.mainModule, ...Deno.args];
  } catch {
    return [...Deno.args];
  }
}

/**
 * Takes the exclusive lock of directory `dir` (created when missing): creates `dir/.lock`
 * exclusively with this process's {@link LockInfo}. Throws {@link LockError} when another lock
 * is there, naming its owner and what to do: wait or pick another directory (owner alive);
 * delete the file or break the lock (owner gone: stale); delete the file if that run is over
 * (another host, or liveness unknown). With `breakStale`, a stale lock is replaced, and the
 * returned lock's `broken` says whose it was.
 *
 * @example
 * ```ts
 * const lock = await lockDir("runs/x", { breakHint: "pass --break-lock" });
 * try {
 *   await Deno.writeTextFile("runs/x/log.jsonl", "");
 * } finally {
 *   await lock.release();
 * }
 * ```
 */
export async function lockDir(dir: string, opts: LockOptions = {}): Promise<DirLock> {
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir}/${LOCK_FILE}`;
  const info: LockInfo = {
    pid: Deno.pid,
    hostname: hostname(),
    started: new Date().toISOString(),
    command: opts.command ?? defaultCommand(),
    token: crypto.randomUUID(),
  };
  const start = procStart("self");
  if (start !== null) info.procStart = start;
  const text = JSON.stringify(info, null, 2) + "\n";
  let broken: LockInfo | null = null;
  for (let attempt = 0;; attempt++) {
    try {
      const file = await Deno.open(path, { write: true, createNew: true });
      try {
        await file.write(new TextEncoder().encode(text));
      } finally {
        file.close();
      }
      break;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    let raw: string;
    try {
      raw = await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound && attempt < 3) continue; // released meanwhile
      throw e;
    }
    let holder: LockInfo | null = null;
    try {
      holder = JSON.parse(raw);
      if (typeof holder?.pid !== "number") holder = null;
    } catch {
      holder = null;
    }
    if (!holder) {
      throw new LockError(
        path,
        "unreadable",
        null,
        `${dir} is locked: ${path} exists but does not name its owner (a run may be creating ` +
          `it right now, or it is damaged); if no run is using ${dir}, delete ${path}`,
      );
    }
    const state = await liveness(holder);
    if (state === "alive") {
      throw new LockError(
        path,
        "held",
        holder,
        `${dir} is in use by another run: ${path} is held by ${describe(holder)}; wait for it ` +
          "to finish or choose another directory",
      );
    }
    if (state === "unknown") {
      throw new LockError(
        path,
        "unknown",
        holder,
        `${dir} is locked by ${describe(holder)} (${path}), which cannot be checked from ` +
          `here; if that run is no longer running, delete ${path}`,
      );
    }
    if (!opts.breakStale || attempt >= 3) {
      throw new LockError(
        path,
        "stale",
        holder,
        `${dir} has a stale lock: ${path} was taken by ${describe(holder)}, which no longer ` +
          `runs (it crashed or was killed); if no run is using ${dir}, delete ${path} or ${
            opts.breakHint ?? "pass breakStale: true"
          }`,
      );
    }
    // Break it only if the file still holds what was judged stale.
    if ((await Deno.readTextFile(path).catch(() => null)) === raw) {
      await Deno.remove(path).catch(() => {});
      broken = holder;
    }
  }
  if (held.size === 0) globalThis.addEventListener("unload", onUnload);
  if (opts.signals !== false && handlers.length === 0) installSignals();
  held.set(path, info);
  const release = () => {
    if (held.get(path) === info) releaseSync(path, info);
    return Promise.resolve();
  };
  return { dir, path, info, broken, release, [Symbol.asyncDispose]: release };
}
