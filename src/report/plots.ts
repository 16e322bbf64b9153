/**
 * Plots as SVG, rendered headless with Vega-Lite (compiled to Vega, rendered by Vega's SVG
 * string renderer; no browser, no canvas).
 *
 * @module
 */
import { parse, View } from "npm:vega@6.4.0";
import { compile, type TopLevelSpec } from "npm:vega-lite@6.5.0";

/** Renders any Vega-Lite specification to an SVG string. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Options of {@link lineChart}. */
export interface LineChartOptions {
  /** The chart title. */
  title: string;
  /** Field and axis title of x. */
  x: { field: string; title: string };
  /** Field and axis title of y. */
  y: { field: string; title: string; zero?: boolean };
  /** Optional field that splits the data into coloured series. */
  series?: string;
  /** Draw points on the line. */
  points?: boolean;
}

/**
 * A line chart of `rows` (e.g. training loss over steps).
 *
 * @example
 * ```ts
 * const svg = await lineChart([{ step: 1, loss: 0.4 }, { step: 2, loss: 0.3 }], {
 *   title: "Training loss", x: { field: "step", title: "step" }, y: { field: "loss", title: "loss" },
 * });
 * ```
 */
export function lineChart(
  rows: Record<string, unknown>[],
  opts: LineChartOptions,
): Promise<string> {
  return renderSvg({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: opts.title,
    width: 560,
    height: 280,
    data: { values: rows },
    mark: { type: "line", point: opts.points ?? false },
    encoding: {
      x: { field: opts.x.field, type: "quantitative", title: opts.x.title },
      y: {
        field: opts.y.field,
        type: "quantitative",
        title: opts.y.title,
        scale: { zero: opts.y.zero ?? false },
      },
      ...(opts.series ? { color: { field: opts.series, type: "nominal" } } : {}),
    },
  } as TopLevelSpec);
}

/**
 * Per-query changes as a sorted bar chart (e.g. nDCG@10 fine-tuned minus zero-shot), one bar
 * per query, gains and losses coloured apart.
 */
export function deltaChart(
  deltas: { query: string; delta: number }[],
  opts: { title: string; measure: string },
): Promise<string> {
  const rows = [...deltas].sort((a, b) => b.delta - a.delta || (a.query < b.query ? -1 : 1))
    .map((d, rank) => ({ ...d, rank, sign: d.delta > 0 ? "gain" : d.delta < 0 ? "loss" : "none" }));
  return renderSvg({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: opts.title,
    width: 560,
    height: 280,
    data: { values: rows },
    mark: { type: "bar" },
    encoding: {
      x: { field: "rank", type: "ordinal", title: "queries, sorted by change", axis: null },
      y: { field: "delta", type: "quantitative", title: `change in ${opts.measure}` },
      color: {
        field: "sign",
        type: "nominal",
        scale: { domain: ["gain", "loss", "none"], range: ["#2e7d32", "#c62828", "#9e9e9e"] },
        title: null,
      },
      tooltip: [{ field: "query" }, { field: "delta" }],
    },
  } as TopLevelSpec);
}
