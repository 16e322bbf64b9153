/**
 * A run's `log.jsonl`: one JSON line per step and per validation, and one for a step that met
 * NaN or Inf. It is written from the run's events ({@link RunLog.record}), as the progress bar
 * is drawn from them; created by a fresh run ({@link createRunLog}) and only appended to, except
 * that a resume drops (atomically) the lines written after its checkpoint's step by the
 * interrupted run ({@link truncateLog}).
 *
 * Lines (fields in this order):
 * - `{"type":"step","step","epoch","loss","lr","grad_norm","triples_per_s","seconds"}`
 * - `{"type":"validation","step","ndcg_cut_10","best","best_step","bad_validations","seconds"}`
 * - `{"type":"error","step","message"}` (the step that met NaN or Inf, and what was not finite)
 *
 * @module
 */
import { writeTextFileAtomic } from "../util/fs.ts";
import type { TrainEvent } from "./events.ts";
import { NonFiniteTrainingError } from "./step.ts";

/**
 * The `log.jsonl` line of an event, or null for events that have none (start, checkpoint, a
 * stop other than a NaN or Inf error).
 *
 * @example
 * ```ts
 * logLine({ type: "validation", step: 10, ndcg10: 0.5, best: 0.5, bestStep: 10, improved: true,
 *   badValidations: 0, seconds: 3 });
 * // {type: "validation", step: 10, ndcg_cut_10: 0.5, best: 0.5, best_step: 10, ...}
 * ```
 */
export function logLine(event: TrainEvent): Record<string, unknown> | null {
  switch (event.type) {
    case "step":
      return {
        type: "step",
        step: event.step,
        epoch: event.epoch,
        loss: event.loss,
        lr: event.lr,
        grad_norm: event.gradNorm,
        triples_per_s: event.triplesPerSecond,
        seconds: event.seconds,
      };
    case "validation":
      return {
        type: "validation",
        step: event.step,
        ndcg_cut_10: event.ndcg10,
        best: event.best,
        best_step: event.bestStep,
        bad_validations: event.badValidations,
        seconds: event.seconds,
      };
    case "stop":
      return event.error instanceof NonFiniteTrainingError
        ? { type: "error", step: event.error.step, message: event.error.message }
        : null;
    default:
      return null;
  }
}

/** Creates an empty `log.jsonl` for a fresh run; never replaces an existing file. */
export async function createRunLog(path: string): Promise<void> {
  await Deno.writeTextFile(path, "", { createNew: true });
}

/** An open `log.jsonl`, appended to from a run's events. */
export class RunLog {
  readonly #file: Deno.FsFile;
  readonly #encoder = new TextEncoder();

  private constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  /**
   * Opens `path` for appending (creating it when missing).
   *
   * @example
   * ```ts
   * using log = await RunLog.open("runs/x/log.jsonl");
   * log.record(event);
   * ```
   */
  static async open(path: string): Promise<RunLog> {
    return new RunLog(await Deno.open(path, { append: true, create: true }));
  }

  /** Appends the event's line ({@link logLine}), if it has one. */
  record(event: TrainEvent): void {
    const line = logLine(event);
    if (line) this.#file.writeSync(this.#encoder.encode(JSON.stringify(line) + "\n"));
  }

  /** Closes the file. */
  close(): void {
    this.#file.close();
  }

  /** Same as {@link RunLog.close} (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Drops log lines after `step` (written by an interrupted run after its last checkpoint), and a
 * line cut short by the interruption; rewrites the file atomically, only when something goes (or
 * its last line lacks its newline). A missing file is left missing.
 * Returns how many lines were dropped.
 *
 * @example
 * ```ts
 * const dropped = await truncateLog("runs/x/log.jsonl", 40); // resuming at step 40
 * ```
 */
export async function truncateLog(path: string, step: number): Promise<number> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
  const lines = text.split("\n").filter((line) => line.trim());
  const kept = lines.filter((line) => {
    try {
      return (JSON.parse(line).step ?? 0) <= step;
    } catch {
      return false;
    }
  });
  if (kept.length === lines.length && (text === "" || text.endsWith("\n"))) return 0;
  await writeTextFileAtomic(path, kept.map((l) => l + "\n").join(""));
  return lines.length - kept.length;
}
