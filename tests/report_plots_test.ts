import { match, ok } from "node:assert/strict";
import { deltaChart, lineChart } from "../src/report/plots.ts";

Deno.test("lineChart renders an SVG with the title and axis titles", async () => {
  const svg = await lineChart(
    [{ step: 0, loss: 0.5 }, { step: 10, loss: 0.31 }, { step: 20, loss: 0.27 }],
    {
      title: "Training loss",
      x: { field: "step", title: "step" },
      y: { field: "loss", title: "loss" },
    },
  );
  match(svg, /^<svg /);
  ok(svg.includes("Training loss") && svg.includes(">step<") && svg.includes(">loss<"));
  match(svg, /<path [^>]*d="M/); // the line itself
});

Deno.test("deltaChart draws one bar per query", async () => {
  const deltas = [{ query: "q1", delta: 0.2 }, { query: "q2", delta: -0.1 }, {
    query: "q3",
    delta: 0,
  }];
  const svg = await deltaChart(deltas, { title: "Per-query change", measure: "nDCG@10" });
  ok(svg.includes("Per-query change"));
  // Vega's SVG renderer draws each bar as a path inside the mark group.
  const bars = svg.match(/role-mark[^"]*"[^>]*>(.*?)<\/g>/s)?.[1].match(/<path /g) ?? [];
  ok(bars.length >= 3, `expected 3 bars, found ${bars.length}`);
});
