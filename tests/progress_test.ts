// The progress bar (src/cli/progress.ts): the pure formatters, and the bar's drawing policy on
// a terminal (redraw in place with \r, throttled) and off one (a line per interval), with a
// fake sink and a fake clock.
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  formatCount,
  formatDuration,
  formatProgress,
  formatRate,
  ProgressBar,
  type ProgressSink,
  renderBar,
} from "../src/cli/progress.ts";

Deno.test("formatDuration: m:ss, h:mm:ss, and --:-- when unknown", () => {
  strictEqual(formatDuration(0), "0:00");
  strictEqual(formatDuration(9.6), "0:10");
  strictEqual(formatDuration(75), "1:15");
  strictEqual(formatDuration(3599), "59:59");
  strictEqual(formatDuration(3725), "1:02:05");
  strictEqual(formatDuration(NaN), "--:--");
  strictEqual(formatDuration(Infinity), "--:--");
  strictEqual(formatDuration(-1), "--:--");
});

Deno.test("formatCount and formatRate: three significant digits, k/M/G above 10000", () => {
  strictEqual(formatCount(999), "999");
  strictEqual(formatCount(9999), "9999");
  strictEqual(formatCount(12345), "12.3k");
  strictEqual(formatCount(4567890), "4.57M");
  strictEqual(formatCount(2.5e9), "2.50G");
  strictEqual(formatRate(85.345, "texts"), "85.3 texts/s");
  strictEqual(formatRate(0.51234, "it"), "0.512 it/s");
  strictEqual(formatRate(12400, "tokens"), "12.4k tokens/s");
  strictEqual(formatRate(0, "it"), "0 it/s");
  strictEqual(formatRate(NaN, "it"), "- it/s");
});

Deno.test("renderBar fills floor(fraction * width) and clamps", () => {
  strictEqual(renderBar(0, 4), "[----]");
  strictEqual(renderBar(0.49, 4), "[#---]");
  strictEqual(renderBar(1, 4), "[####]");
  strictEqual(renderBar(1.7, 4), "[####]");
  strictEqual(renderBar(-1, 4), "[----]");
  strictEqual(renderBar(NaN, 4), "[----]");
});

Deno.test("formatProgress: bar, count, percentage, rate, ETA; elapsed when finished", () => {
  const base = { label: "encode", unit: "texts", width: 10 };
  strictEqual(
    formatProgress({ ...base, done: 250, total: 1000, elapsed: 5 }),
    "encode [##--------] 250/1000 25.0% 50 texts/s ETA 0:15",
  );
  strictEqual(
    formatProgress({ ...base, done: 0, total: 1000, elapsed: 0 }),
    "encode [----------] 0/1000 0.0% - texts/s ETA --:--",
  );
  strictEqual(
    formatProgress({ ...base, done: 1000, total: 1000, elapsed: 80, finished: true, note: "x" }),
    "encode [##########] 1000/1000 100.0% 12.5 texts/s 1:20 x",
  );
  // Unknown total: no bar, no percentage, no ETA.
  strictEqual(
    formatProgress({ ...base, done: 42, total: 0, elapsed: 2 }),
    "encode 42 21 texts/s 0:02",
  );
});

function fakeSink(tty: boolean): ProgressSink & { text: () => string } {
  const chunks: string[] = [];
  const dec = new TextDecoder();
  return {
    writeSync(p: Uint8Array) {
      chunks.push(dec.decode(p));
      return p.length;
    },
    isTerminal: () => tty,
    text: () => chunks.join(""),
  };
}

Deno.test("on a terminal the bar redraws in place, throttled, and finish ends the line", () => {
  let t = 0;
  const sink = fakeSink(true);
  const bar = new ProgressBar("enc", { total: 4, unit: "it", width: 4, sink, now: () => t });
  t = 1000;
  bar.update(1); // drawn
  t = 1050;
  bar.update(2); // within 100 ms: skipped
  t = 2000;
  bar.update(3, "n"); // drawn
  t = 4000;
  bar.finish();
  bar.finish(); // idempotent
  deepStrictEqual(sink.text().split("\r").slice(1), [
    "enc [#---] 1/4 25.0% 1 it/s ETA 0:03",
    "enc [###-] 3/4 75.0% 1.5 it/s ETA 0:01 n",
    "enc [###-] 3/4 75.0% 0.75 it/s 0:04 n   \n", // padded over the longer ETA frame
  ]);
});

Deno.test("on a terminal a shorter line is padded over the longer one before it", () => {
  let t = 0;
  const sink = fakeSink(true);
  const bar = new ProgressBar("e", { total: 10, width: 2, sink, now: () => t });
  t = 1000;
  bar.update(1, "a long note");
  t = 2000;
  bar.update(2, "");
  const frames = sink.text().split("\r").slice(1);
  strictEqual(frames[1].length, frames[0].length);
  ok(frames[1].trimEnd().endsWith("ETA 0:08"));
});

Deno.test("off a terminal the bar prints one line per interval and a final line", () => {
  let t = 0;
  const sink = fakeSink(false);
  const bar = new ProgressBar("enc", {
    total: 100,
    unit: "texts",
    width: 4,
    sink,
    intervalMs: 5000,
    now: () => t,
  });
  for (let i = 1; i <= 100; i++) {
    t = i * 200; // 20 s in all: lines at 5, 10, 15, 20 s
    bar.update(i);
  }
  bar.finish();
  const lines = sink.text().split("\n");
  strictEqual(lines.pop(), "");
  ok(!sink.text().includes("\r"));
  deepStrictEqual(lines.map((l) => l.split(" ")[2]), [
    "25/100",
    "50/100",
    "75/100",
    "100/100",
    "100/100",
  ]);
  strictEqual(lines[4], "enc [####] 100/100 100.0% 5 texts/s 0:20");
});

Deno.test("silent bars count but write nothing; log() clears the terminal line first", () => {
  const sink = fakeSink(true);
  const quiet = new ProgressBar("q", { total: 3, sink, silent: true });
  quiet.tick();
  quiet.tick(2);
  quiet.finish();
  strictEqual(quiet.done, 3);
  strictEqual(sink.text(), "");

  let t = 0;
  const bar = new ProgressBar("b", { total: 2, width: 2, sink, now: () => t });
  t = 500;
  bar.update(1);
  bar.log("hello");
  const frame = "b [#-] 1/2 50.0% 2 it/s ETA 0:01";
  strictEqual(sink.text(), `\r${frame}\r${" ".repeat(frame.length)}\rhello\n`);
});
