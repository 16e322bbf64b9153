// The output-directory lock: exclusive while its owner lives, a stale lock reported (and broken
// only when asked), another host's lock never broken, released on return, on Deno.exit and on
// SIGTERM/SIGINT.
import { deepStrictEqual, ok, rejects } from "node:assert/strict";
import { LOCK_FILE, lockDir, LockError, type LockInfo } from "../src/util/lock.ts";
import { withTempDir } from "./helpers.ts";

const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);

/** A pid that no longer runs: a child that has exited and been reaped. */
async function deadPid(): Promise<number> {
  const child = new Deno.Command("true").spawn();
  await child.status;
  return child.pid;
}

function fakeLock(over: Partial<LockInfo>): string {
  return JSON.stringify({
    pid: 1,
    hostname: Deno.hostname(),
    started: "2020-01-01T00:00:00.000Z",
    command: ["train", "--out", "x"],
    token: "t",
    ...over,
  });
}

Deno.test("a lock is exclusive, names its owner, and is released", () =>
  withTempDir(async (root) => {
    const dir = `${root}/out`;
    const lock = await lockDir(dir, { command: ["train", "--out", dir] });
    const info = JSON.parse(await Deno.readTextFile(`${dir}/${LOCK_FILE}`));
    deepStrictEqual(
      [info.pid, info.hostname, info.command],
      [Deno.pid, Deno.hostname(), ["train", "--out", dir]],
    );
    ok(!Number.isNaN(Date.parse(info.started)));
    await rejects(
      lockDir(dir),
      (e: Error) =>
        e instanceof LockError && e.reason === "held" &&
        e.message.includes(`${dir} is in use by another run`) &&
        e.message.includes(`pid ${Deno.pid} on this host, this process`),
    );
    await lock.release();
    ok(!(await exists(`${dir}/${LOCK_FILE}`)));
    await lock.release(); // idempotent
    const again = await lockDir(dir);
    await again.release();
  }));

Deno.test("another live process's lock is refused with its pid", () =>
  withTempDir(async (root) => {
    const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
    try {
      await Deno.writeTextFile(`${root}/${LOCK_FILE}`, fakeLock({ pid: child.pid }));
      await rejects(
        lockDir(root, { breakStale: true }),
        (e: Error) =>
          e instanceof LockError && e.reason === "held" &&
          e.message.includes(`pid ${child.pid} on this host`) &&
          e.message.includes("'train --out x'"),
      );
    } finally {
      child.kill();
      await child.status;
    }
    ok(await exists(`${root}/${LOCK_FILE}`));
  }));

Deno.test("a stale lock is reported, not taken; broken only when asked", () =>
  withTempDir(async (root) => {
    const pid = await deadPid();
    const stale = fakeLock({ pid });
    await Deno.writeTextFile(`${root}/${LOCK_FILE}`, stale);
    await rejects(
      lockDir(root, { breakHint: "pass --break-lock" }),
      (e: Error) =>
        e instanceof LockError && e.reason === "stale" && e.holder?.pid === pid &&
        e.message.includes(`${root} has a stale lock`) &&
        e.message.includes(`delete ${root}/${LOCK_FILE} or pass --break-lock`),
    );
    deepStrictEqual(await Deno.readTextFile(`${root}/${LOCK_FILE}`), stale);
    const lock = await lockDir(root, { breakStale: true });
    deepStrictEqual(lock.broken?.pid, pid);
    deepStrictEqual(JSON.parse(await Deno.readTextFile(lock.path)).pid, Deno.pid);
    await lock.release();
    // A pid that runs again, but as another process (its start time differs), is stale too.
    if (await exists("/proc/self/stat")) {
      await Deno.writeTextFile(`${root}/${LOCK_FILE}`, fakeLock({ pid: Deno.pid, procStart: "1" }));
      await rejects(lockDir(root), (e: Error) => e instanceof LockError && e.reason === "stale");
      await Deno.remove(`${root}/${LOCK_FILE}`);
    }
  }));

Deno.test("another host's lock and an unreadable lock are never broken", () =>
  withTempDir(async (root) => {
    await Deno.writeTextFile(
      `${root}/${LOCK_FILE}`,
      fakeLock({ pid: await deadPid(), hostname: "elsewhere.example" }),
    );
    await rejects(
      lockDir(root, { breakStale: true }),
      (e: Error) =>
        e instanceof LockError && e.reason === "unknown" &&
        e.message.includes("on host elsewhere.example") &&
        e.message.includes(`delete ${root}/${LOCK_FILE}`),
    );
    await Deno.writeTextFile(`${root}/${LOCK_FILE}`, "{");
    await rejects(
      lockDir(root, { breakStale: true }),
      (e: Error) => e instanceof LockError && e.reason === "unreadable",
    );
    ok(await exists(`${root}/${LOCK_FILE}`));
  }));

Deno.test("release leaves a lock that is no longer ours alone", () =>
  withTempDir(async (root) => {
    const lock = await lockDir(root);
    const other = fakeLock({ pid: 1, token: "someone else" });
    await Deno.writeTextFile(lock.path, other);
    await lock.release();
    deepStrictEqual(await Deno.readTextFile(lock.path), other);
  }));

Deno.test("Deno.exit, SIGTERM and SIGINT release the lock", () =>
  withTempDir(async (root) => {
    const script = `${root}/hold.ts`;
    await Deno.writeTextFile(
      script,
      `import { lockDir } from ${JSON.stringify(new URL("../src/util/lock.ts", import.meta.url))};
const lock = await lockDir(Deno.args[0]);
console.log(lock.path);
if (Deno.args[1] === "exit") Deno.exit(3);
await new Promise((r) => setTimeout(r, 30000));
`,
    );
    const run = async (how: "exit" | "SIGTERM" | "SIGINT") => {
      const dir = `${root}/${how}`;
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--no-check", script, dir, how],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const reader = child.stdout.getReader();
      const { value } = await reader.read(); // the lock is held
      deepStrictEqual(new TextDecoder().decode(value).trim(), `${dir}/${LOCK_FILE}`);
      ok(how === "exit" || await exists(`${dir}/${LOCK_FILE}`));
      if (how !== "exit") child.kill(how);
      const status = await child.status;
      reader.releaseLock();
      await child.stdout.cancel();
      deepStrictEqual(status.code, { exit: 3, SIGTERM: 143, SIGINT: 130 }[how], how);
      ok(!(await exists(`${dir}/${LOCK_FILE}`)), `${how}: the lock is still there`);
    };
    await Promise.all([run("exit"), run("SIGTERM"), run("SIGINT")]);
  }));
