/**
 * A small progress bar for long work, written to stderr: label, done/total, percentage, rate and
 * ETA. On a terminal it redraws one line in place with `\r` (at most every `redrawMs`); when
 * stderr is a file or a pipe (CI logs) it prints a plain line every `intervalMs` instead, so logs
 * stay readable. Formatting is done by pure functions ({@link formatProgress},
 * {@link formatDuration}, {@link formatCount}, {@link formatRate}, {@link renderBar}) that the
 * class calls with a clock reading, so they are tested without a terminal.
 *
 * Written here rather than taken from npm (`cli-progress`): that package writes through Node's
 * `process.stderr` stream and its TTY detection, has no pure formatting entry point to test, and
 * would be the first npm dependency of every script that wants a bar; this module uses only
 * `Deno.stderr` and imports nothing.
 *
 * @example Known total, updated by absolute count
 * ```ts
 * import { ProgressBar } from "./progress.ts";
 * const bar = new ProgressBar("encode", { total: texts.length, unit: "texts" });
 * for (let done = 0; done < texts.length; done += 64) {
 *   // ... work ...
 *   bar.update(Math.min(done + 64, texts.length), `${tokens} tokens`);
 * }
 * bar.finish(); // final line, newline; prints e.g. "encode [#####] 1000/1000 100% 85.2 texts/s 11.7s"
 * ```
 *
 * @example Unknown total, incremented
 * ```ts
 * const bar = new ProgressBar("read", { unit: "lines" });
 * for await (const _ of lines) bar.tick();
 * bar.finish();
 * ```
 *
 * @module
 */

/** Where a bar writes: `Deno.stderr` by default; anything with these two methods works. */
export interface ProgressSink {
  /** Writes bytes synchronously (as `Deno.stderr.writeSync`). */
  writeSync(p: Uint8Array): number;
  /** Whether the sink is an interactive terminal (redraw in place) or not (periodic lines). */
  isTerminal(): boolean;
}

/** Options of {@link ProgressBar}. */
export interface ProgressOptions {
  /** Units of work expected; 0 or absent when unknown (then no bar, percentage or ETA). */
  total?: number;
  /** Name of one unit, for the rate (`texts/s`). Default `"it"`. */
  unit?: string;
  /** Characters of the bar itself. Default 24. */
  width?: number;
  /** Where to write. Default `Deno.stderr`. */
  sink?: ProgressSink;
  /** On a terminal: least milliseconds between redraws. Default 100. */
  redrawMs?: number;
  /** Not on a terminal: least milliseconds between printed lines. Default 5000. */
  intervalMs?: number;
  /** Write nothing at all (e.g. `--quiet`); the bar still counts. Default false. */
  silent?: boolean;
  /** Clock in milliseconds (for tests). Default `performance.now`. */
  now?: () => number;
}

/** A snapshot of progress, the input of {@link formatProgress}. */
export interface ProgressState {
  /** Label printed first. */
  label: string;
  /** Units done so far. */
  done: number;
  /**
   * Of `done`, units not done by this process (e.g. work resumed from an earlier run): counted
   * in the bar and percentage but not in the rate, so the rate and ETA reflect only work timed
   * here. Default 0.
   */
  skipped?: number;
  /** Units expected; 0 when unknown. */
  total: number;
  /** Seconds since the start. */
  elapsed: number;
  /** Name of one unit. */
  unit: string;
  /** Bar width in characters. */
  width: number;
  /** Free text appended at the end (e.g. `"51234 tokens"`). */
  note?: string;
  /** The work is over: show the elapsed time instead of the ETA. */
  finished?: boolean;
}

/**
 * Formats seconds as `m:ss`, or `h:mm:ss` from one hour on; `--:--` when not finite or
 * negative (an ETA that cannot be estimated yet).
 *
 * @example
 * ```ts
 * formatDuration(75); // "1:15"
 * formatDuration(3725); // "1:02:05"
 * ```
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--:--";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/**
 * Formats a count compactly: as is below 10000, else with a `k`/`M`/`G` suffix and three
 * significant digits (`12.3k`, `4.57M`).
 */
export function formatCount(n: number): string {
  const a = Math.abs(n);
  if (a < 10000) return String(Math.round(n * 100) / 100);
  for (const [div, suffix] of [[1e9, "G"], [1e6, "M"], [1e3, "k"]] as const) {
    if (a >= div) return `${(n / div).toPrecision(3)}${suffix}`;
  }
  return String(n);
}

/**
 * Formats a rate in units per second with three significant digits (`85.3 texts/s`,
 * `12.4k tokens/s`, `0.512 it/s`); `- unit/s` when not finite (nothing timed yet).
 */
export function formatRate(perSecond: number, unit: string): string {
  if (!Number.isFinite(perSecond)) return `- ${unit}/s`;
  const body = Math.abs(perSecond) >= 10000
    ? formatCount(perSecond)
    : perSecond === 0
    ? "0"
    : String(Number(perSecond.toPrecision(3)));
  return `${body} ${unit}/s`;
}

/** Draws `[####------]` of `width` inner characters for a fraction in [0, 1] (clamped). */
export function renderBar(fraction: number, width: number): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const full = Math.floor(f * width);
  return `[${"#".repeat(full)}${"-".repeat(width - full)}]`;
}

/**
 * One line of progress, without a terminator:
 * `label [####----] done/total pct% rate ETA m:ss note` with a known total,
 * `label done rate m:ss note` without. When finished, the elapsed time replaces the ETA. The rate
 * is `(done - skipped) / elapsed` and the ETA `(total - done) / rate`: units done before this
 * process started (`skipped`) count toward done, never toward the rate.
 *
 * @example
 * ```ts
 * formatProgress({ label: "encode", done: 250, total: 1000, elapsed: 5, unit: "texts", width: 10 });
 * // "encode [##--------] 250/1000 25.0% 50 texts/s ETA 0:15"
 * ```
 */
export function formatProgress(s: ProgressState): string {
  const rate = s.elapsed > 0 ? (s.done - (s.skipped ?? 0)) / s.elapsed : NaN;
  const parts = [s.label];
  if (s.total > 0) {
    parts.push(
      renderBar(s.done / s.total, s.width),
      `${s.done}/${s.total}`,
      `${((100 * s.done) / s.total).toFixed(1)}%`,
    );
  } else {
    parts.push(`${s.done}`);
  }
  parts.push(formatRate(rate, s.unit));
  if (s.finished || !(s.total > 0)) parts.push(formatDuration(s.elapsed));
  else parts.push(`ETA ${formatDuration(rate > 0 ? (s.total - s.done) / rate : NaN)}`);
  if (s.note) parts.push(s.note);
  return parts.join(" ");
}

const encoder = new TextEncoder();

/** The process's stderr. */
function defaultSink(): ProgressSink {
  return Deno.stderr;
}

/**
 * A progress bar on stderr. Create it when the work starts (the clock starts then), call
 * {@link ProgressBar.update} or {@link ProgressBar.tick} as work completes (cheap: drawing is
 * throttled), and {@link ProgressBar.finish} once at the end (it always prints the final state
 * and ends the line). Writes nothing when `silent`.
 */
export class ProgressBar {
  /** Label printed first on every line. */
  readonly label: string;
  /** Units expected (0: unknown). */
  total: number;
  /** Units done so far. */
  done = 0;
  /** Of {@link done}, units not done by this process (resumed work), left out of the rate. */
  skipped = 0;
  /** The last note given to {@link update}. */
  note = "";
  readonly #unit: string;
  readonly #width: number;
  readonly #sink: ProgressSink | null;
  readonly #tty: boolean;
  readonly #throttle: number;
  readonly #now: () => number;
  readonly #start: number;
  #lastDraw = -Infinity;
  #lastLength = 0;
  #finished = false;

  /**

   * Creates an instance.
   * @param label printed first on every line (e.g. `"encode"`)
   * @param options total, unit, width, sink, throttling, silence and clock
   */
  constructor(label: string, options: ProgressOptions = {}) {
    this.label = label;
    this.total = Math.max(0, options.total ?? 0);
    this.#unit = options.unit ?? "it";
    this.#width = options.width ?? 24;
    this.#sink = options.silent ? null : options.sink ?? defaultSink();
    let tty = false;
    try {
      tty = this.#sink?.isTerminal() ?? false;
    } catch {
      tty = false;
    }
    this.#tty = tty;
    this.#throttle = tty ? options.redrawMs ?? 100 : options.intervalMs ?? 5000;
    this.#now = options.now ?? (() => performance.now());
    this.#start = this.#now();
    // Off a terminal the first line is printed after one interval, not at once.
    if (!tty) this.#lastDraw = this.#start;
  }

  /** Seconds since the bar was created. */
  get elapsed(): number {
    return (this.#now() - this.#start) / 1000;
  }

  /** The current line, as {@link formatProgress} renders it. */
  line(finished = false): string {
    return formatProgress({
      label: this.label,
      done: this.done,
      skipped: this.skipped,
      total: this.total,
      elapsed: this.elapsed,
      unit: this.#unit,
      width: this.#width,
      note: this.note || undefined,
      finished,
    });
  }

  /** Sets the units done (absolute) and optionally the note; redraws when due. */
  update(done: number, note?: string): void {
    this.done = done;
    if (note !== undefined) this.note = note;
    this.#maybeDraw();
  }

  /** Adds `n` units done (default 1); redraws when due. */
  tick(n = 1, note?: string): void {
    this.update(this.done + n, note);
  }

  /** Prints the final state (elapsed time instead of ETA) and ends the line. Idempotent. */
  finish(note?: string): void {
    if (this.#finished) return;
    if (note !== undefined) this.note = note;
    this.#finished = true;
    this.#draw(this.line(true), true);
  }

  /**
   * Prints a message on its own line without garbling the bar (on a terminal the bar is
   * cleared first and redrawn at the next update).
   */
  log(message: string): void {
    if (!this.#sink) return;
    if (this.#tty && this.#lastLength > 0) {
      this.#write(`\r${" ".repeat(this.#lastLength)}\r`);
      this.#lastLength = 0;
      this.#lastDraw = -Infinity;
    }
    this.#write(`${message}\n`);
  }

  #maybeDraw(): void {
    if (!this.#sink || this.#finished) return;
    const t = this.#now();
    if (t - this.#lastDraw < this.#throttle) return;
    this.#lastDraw = t;
    this.#draw(this.line(false), false);
  }

  #draw(text: string, final: boolean): void {
    if (!this.#sink) return;
    if (this.#tty) {
      // Pad over the previous, possibly longer, line; end with a newline only when finished.
      const pad = Math.max(0, this.#lastLength - text.length);
      this.#write(`\r${text}${" ".repeat(pad)}${final ? "\n" : ""}`);
      this.#lastLength = final ? 0 : text.length;
    } else {
      this.#write(`${text}\n`);
    }
  }

  #write(text: string): void {
    const bytes = encoder.encode(text);
    let off = 0;
    try {
      while (off < bytes.length) off += this.#sink!.writeSync(bytes.subarray(off));
    } catch {
      // A closed stderr must not fail the work being reported on.
    }
  }
}

/**
 * An `onProgress` for `encodeCached`, `denseRetrieve` and `rerank` (src/eval/dense.ts) that draws
 * one progress bar per label on stderr (`silent`: none).
 */
export function encodeProgress(
  options: { silent?: boolean } = {},
): (label: string, done: number, total: number, tokens: number) => void {
  let bar: ProgressBar | null = null;
  let current = "";
  return (label, done, total, tokens) => {
    if (!bar || label !== current) {
      bar = new ProgressBar(label, { total, unit: "texts", silent: options.silent });
      current = label;
    }
    if (done >= total) {
      bar.update(done, `${tokens} tokens`);
      bar.finish(`${tokens} tokens`);
      bar = null;
    } else bar.update(done, `${tokens} tokens`);
  };
}
