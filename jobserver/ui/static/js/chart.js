// A completed/failed bar-ish line chart with uPlot (vendor/uPlot.esm.js). uPlot (145 KB) is
// imported when a chart first draws, so pages without one never load nor compile it.

import { html, useEffect, useRef, useState } from "./lib.js";

let loading = null;
function loadUPlot() {
  loading = loading || import("../vendor/uPlot.esm.js").then((m) => m.default);
  return loading;
}

// buckets: [{t: Date, completed, failed}]
export function ThroughputChart({ buckets, title, testid }) {
  const el = useRef(null);
  const plot = useRef(null);
  const [uPlot, setUPlot] = useState(null);
  useEffect(() => {
    loadUPlot().then((u) => setUPlot(() => u));
  }, []);
  useEffect(() => {
    if (!el.current || !buckets || !uPlot) return undefined;
    const data = [
      buckets.map((b) => b.t.getTime() / 1000),
      buckets.map((b) => b.completed),
      buckets.map((b) => b.failed),
    ];
    const width = Math.max(300, el.current.clientWidth || 600);
    if (plot.current) {
      plot.current.setData(data);
      return undefined;
    }
    const bars = uPlot.paths.bars({ size: [0.7, 40] });
    plot.current = new uPlot(
      {
        width,
        height: 180,
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
        series: [
          {},
          { label: "completed", stroke: "#2f855a", fill: "rgba(47,133,90,0.35)", paths: bars },
          { label: "failed", stroke: "#c53030", fill: "rgba(197,48,48,0.35)", paths: bars },
        ],
        axes: [{}, { size: 40 }],
      },
      data,
      el.current,
    );
    return undefined;
  }, [buckets, uPlot]);
  useEffect(() => () => plot.current && plot.current.destroy(), []);
  const total = (buckets || []).reduce((n, b) => n + b.completed + b.failed, 0);
  return html`<figure class="chart" data-testid=${testid}>
    <figcaption>${title} <span class="muted">(${total} finished)</span></figcaption>
    <div ref=${el} class="chart-area"></div>
  </figure>`;
}
