// The training loop's event stream: start, step, validation, checkpoint and stop events in the
// order they happen; log.jsonl is written from the same events (its line format unchanged); the
// CLI's progress bar is drawn from them; a resumed run that had ended reports start and stop only.
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { loadEncoder } from "../src/models/load.ts";
import { logLine, train, type TrainEvent, type TrainOptions } from "../src/train/trainer.ts";
import { trainProgress } from "../src/cli/train_progress.ts";
import { tinyTrainingData } from "./helpers.ts";

const TINY: Omit<TrainOptions, "outDir"> = {
  batchSize: 4,
  queryLength: 8,
  docLength: 16,
  lr: 1e-4,
  maxSteps: 2,
  evalEvery: 1,
  patience: 5,
  seed: 7,
};

/** A progress sink that keeps what is written (not a terminal: plain lines). */
function memorySink() {
  const chunks: string[] = [];
  const decoder = new TextDecoder();
  return {
    text: () => chunks.join(""),
    writeSync(p: Uint8Array) {
      chunks.push(decoder.decode(p));
      return p.length;
    },
    isTerminal: () => false,
  };
}

Deno.test("train reports its events in order; log.jsonl and the progress bar are drawn from them", async () => {
  const gpu = await getGpu();
  const data = await tinyTrainingData();
  const model = await loadEncoder(gpu, "use-lite");
  const dir = await Deno.makeTempDir();
  try {
    const events: TrainEvent[] = [];
    const sink = memorySink();
    const bar = trainProgress({ sink, intervalMs: 0 });
    const r = await train(gpu, model, data, {
      ...TINY,
      outDir: dir,
      onEvent: async (e) => {
        events.push(e);
        await bar(e);
      },
    });
    strictEqual(r.state.step, 2);

    // start; validation at step 0; then each step, its validation (evalEvery 1) and last/; stop.
    const shape = events.map((e) =>
      e.type === "checkpoint" ? `checkpoint ${e.kind} ${e.step}` : `${e.type} ${e.step}`
    );
    const expected = ["start 0"];
    for (const v of events.filter((e) => e.type === "validation")) {
      if (v.step > 0) expected.push(`step ${v.step}`);
      expected.push(`validation ${v.step}`);
      if (v.improved) expected.push(`checkpoint best ${v.step}`);
      if (v.step > 0) expected.push(`checkpoint last ${v.step}`);
    }
    expected.push("stop 2");
    deepStrictEqual(shape, expected);
    deepStrictEqual(
      events.filter((e) => e.type === "validation").map((e) => e.step),
      [0, 1, 2],
    );
    const start = events[0], stop = events.at(-1)!;
    deepStrictEqual(start, { type: "start", step: 0, totalSteps: 2, resumed: false, outDir: dir });
    deepStrictEqual(stop, { type: "stop", reason: "max-steps", step: 2, stepsRun: 2 });
    for (const e of events) {
      if (e.type === "step") {
        ok(Number.isFinite(e.loss) && e.gradNorm > 0 && e.lr === 1e-4 && e.triplesPerSecond > 0);
        strictEqual(e.stepsRun, e.step);
        strictEqual(e.totalSteps, 2);
      }
      if (e.type === "checkpoint") strictEqual(e.dir, `${dir}/${e.kind}`);
    }
    const history = events.flatMap((e) =>
      e.type === "validation" ? [{ step: e.step, ndcg10: e.ndcg10 }] : []
    );
    deepStrictEqual(r.state.history, history);

    // log.jsonl: one line per step and per validation, written from the events, format kept.
    const lines = (await Deno.readTextFile(`${dir}/log.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    deepStrictEqual(lines, events.map(logLine).filter((l) => l !== null));
    deepStrictEqual(
      Object.keys(lines.find((l) => l?.type === "step")!),
      ["type", "step", "epoch", "loss", "lr", "grad_norm", "triples_per_s", "seconds"],
    );
    deepStrictEqual(
      Object.keys(lines.find((l) => l?.type === "validation")!),
      ["type", "step", "ndcg_cut_10", "best", "best_step", "bad_validations", "seconds"],
    );

    // The progress bar: a line per validation and the end.
    const drawn = sink.text();
    ok(drawn.includes("step 0: validation nDCG@10 "), drawn);
    ok(/train \[#+\] 2\/2 .*done: max steps\n$/.test(drawn), drawn);

    // A resume of the finished run: start and stop only, nothing drawn, the log untouched.
    const logBefore = await Deno.readTextFile(`${dir}/log.jsonl`);
    const again: TrainEvent[] = [];
    const quiet = memorySink();
    const againBar = trainProgress({ sink: quiet, intervalMs: 0 });
    const done = await train(gpu, model, data, {
      ...TINY,
      outDir: dir,
      resume: true,
      onEvent: (e) => {
        again.push(e);
        return againBar(e);
      },
    });
    strictEqual(done.stepsRun, 0);
    deepStrictEqual(again, [
      { type: "start", step: 2, totalSteps: 2, resumed: true, outDir: dir },
      { type: "stop", reason: "max-steps", step: 2, stepsRun: 0 },
    ]);
    strictEqual(quiet.text(), "");
    strictEqual(await Deno.readTextFile(`${dir}/log.jsonl`), logBefore);
  } finally {
    for (const t of model.named.values()) t.destroy();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stopAfter ends with a stop-after event; a listener that throws fails the run", async () => {
  const gpu = await getGpu();
  const data = await tinyTrainingData();
  const model = await loadEncoder(gpu, "use-lite");
  const dir = await Deno.makeTempDir();
  try {
    const events: TrainEvent[] = [];
    const sink = memorySink();
    const bar = trainProgress({ sink, intervalMs: 0 });
    const r = await train(gpu, model, { triples: data.triples }, {
      ...TINY,
      maxSteps: 4,
      stopAfter: 1,
      outDir: `${dir}/a`,
      onEvent: (e) => {
        events.push(e);
        return bar(e);
      },
    });
    deepStrictEqual([r.stepsRun, r.state.stopReason], [1, null]);
    deepStrictEqual(events.map((e) => e.type), ["start", "step", "checkpoint", "stop"]);
    deepStrictEqual(events.at(-1), { type: "stop", reason: "stop-after", step: 1, stepsRun: 1 });
    ok(sink.text().endsWith("interrupted\n"), sink.text());

    // The listener's error is the run's; it still hears the stop, with that error.
    const heard: TrainEvent[] = [];
    const boom = new Error("listener failed");
    let thrown: unknown;
    try {
      await train(gpu, model, { triples: data.triples }, {
        ...TINY,
        outDir: `${dir}/b`,
        onEvent: (e) => {
          heard.push(e);
          if (e.type === "step") throw boom;
        },
      });
    } catch (e) {
      thrown = e;
    }
    strictEqual(thrown, boom);
    deepStrictEqual(heard.map((e) => e.type), ["start", "step", "stop"]);
    deepStrictEqual(heard.at(-1), {
      type: "stop",
      reason: "error",
      step: 1,
      stepsRun: 1,
      error: boom,
    });
  } finally {
    for (const t of model.named.values()) t.destroy();
    await Deno.remove(dir, { recursive: true });
  }
});
