/**
 * The training progress bar of the CLI scripts, drawn from a run's events (`train`'s
 * `onEvent`): a bar over the steps of this invocation with the last loss and throughput, a line
 * per validation, and the way the run ended.
 *
 * @example
 * ```ts
 * await train(gpu, model, data, { outDir: "runs/x", onEvent: trainProgress() });
 * ```
 *
 * @module
 */
import type { TrainEvent, TrainEventListener } from "../train/events.ts";
import { ProgressBar, type ProgressOptions } from "./progress.ts";

/** Options of {@link trainProgress}. */
export interface TrainProgressOptions
  extends Pick<ProgressOptions, "silent" | "sink" | "now" | "intervalMs" | "redrawMs"> {
  /** Label of the bar. Default `"train"`. */
  label?: string;
}

/** The line a validation event prints: its nDCG@10, and the best so far when it is not. */
export function validationLine(
  e: Extract<TrainEvent, { type: "validation" }>,
): string {
  return `step ${e.step}: validation nDCG@10 ${e.ndcg10.toFixed(4)}` +
    (e.improved ? " (best)" : ` (best ${e.best.toFixed(4)} at ${e.bestStep})`);
}

/**
 * A listener for `train`'s `onEvent` that draws a {@link ProgressBar} on stderr (or `sink`):
 * created at `start` over the steps left, advanced at each `step` with the loss and triples per
 * second, a line per `validation`, and finished at `stop` with `done: <reason>`,
 * `interrupted` (`stopAfter`) or `failed` (nothing is drawn for a resumed run that had already
 * ended).
 *
 * @example
 * ```ts
 * const onEvent = trainProgress({ silent: quiet });
 * ```
 */
export function trainProgress(opts: TrainProgressOptions = {}): TrainEventListener {
  const { label = "train", ...barOptions } = opts;
  let bar: ProgressBar | null = null;
  let active = false; // a step or validation happened (a run resumed after its end has none)
  return (e) => {
    switch (e.type) {
      case "start":
        bar = new ProgressBar(label, {
          ...barOptions,
          total: e.totalSteps - e.step,
          unit: "steps",
        });
        active = false;
        break;
      case "step":
        active = true;
        bar?.update(
          e.stepsRun,
          `loss ${e.loss.toFixed(4)} ${e.triplesPerSecond.toPrecision(3)} triples/s`,
        );
        break;
      case "validation":
        active = true;
        bar?.log(validationLine(e));
        break;
      case "stop":
        if (!active && e.reason !== "error") break;
        bar?.finish(
          e.reason === "error"
            ? "failed"
            : e.reason === "stop-after"
            ? "interrupted"
            : `done: ${e.reason.replace("-", " ")}`,
        );
        bar = null;
        break;
    }
  };
}
