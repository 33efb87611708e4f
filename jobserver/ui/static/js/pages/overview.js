// Overview: throughput (per minute for the last hour, per hour for the last week), every
// queue's depth and health, workers and the DLQ size; refreshed on job events.

import { html, useRef } from "../lib.js";
import { get } from "../api.js";
import { ThroughputChart } from "../chart.js";
import { useLoad, useLive, LiveBadge, ErrorBox, Page, Table, Status, ms } from "../ui.js";

const REFRESH_MIN_MS = 2000; // at most one refresh per 2 s however many events arrive

async function load(me) {
  const [minutes, hours, queues, health, dlq] = await Promise.all([
    get("/v1/metrics/throughput/minutes", { minutes: 60 }),
    get("/v1/metrics/throughput", { hours: 168 }),
    get("/v1/queues", { limit: 100 }),
    get("/v1/health"),
    me.canManage ? get("/v1/dlq", { limit: 100 }) : Promise.resolve(null),
  ]);
  return {
    minutes: minutes.buckets.map((b) => ({ ...b, t: new Date(b.minute) })),
    hours: hours.buckets.map((b) => ({ ...b, t: new Date(b.hour) })),
    queues: queues.items,
    health,
    dlq: dlq && { size: dlq.items.length, more: Boolean(dlq.nextCursor) },
  };
}

export function Overview({ me }) {
  const { data, error, reload } = useLoad(() => load(me), []);
  const last = useRef(0);
  const pending = useRef(null);
  const soon = () => {
    if (pending.current) return;
    const wait = Math.max(0, last.current + REFRESH_MIN_MS - Date.now());
    pending.current = setTimeout(() => {
      pending.current = null;
      last.current = Date.now();
      reload();
    }, wait);
  };
  const live = useLive({}, soon, reload);
  const w = data && data.health.workers;
  return html`<${Page} title="Overview" right=${html`<${LiveBadge} state=${live} />`}>
    <${ErrorBox} error=${error} />
    ${data &&
    html`<div class="cards">
        <div class="card" data-testid="card-health"><h3>System</h3>
          <${Status} status=${data.health.status} />
          <p>database ${data.health.database.ok ? "up" : "down"}
            ${data.health.database.latencyMs != null ? ` (${data.health.database.latencyMs} ms)` : ""}</p>
          <p>scheduler leader: ${(data.health.scheduler && data.health.scheduler.leader) || "none"}</p></div>
        <div class="card" data-testid="card-workers"><h3>Workers</h3>
          <p class="big">${w.active}</p><p>active · ${w.stopping} stopping · ${w.gone} gone</p></div>
        <div class="card" data-testid="card-dlq"><h3>Dead letters</h3>
          <p class="big">${data.dlq ? `${data.dlq.size}${data.dlq.more ? "+" : ""}` : "–"}</p>
          <p><a href="#/dlq">inspect</a></p></div>
      </div>
      <div class="charts">
        <${ThroughputChart} buckets=${data.minutes} title="Last hour, per minute" testid="chart-hour" />
        <${ThroughputChart} buckets=${data.hours} title="Last week, per hour" testid="chart-week" />
      </div>
      <h2>Queues</h2>
      <${Table} testid="overview-queues" rows=${data.queues} rowKey=${(q) => q.name} columns=${[
        { label: "queue", cell: (q) => html`<a href=${`#/jobs?queue=${encodeURIComponent(q.name)}`}>${q.name}</a>` },
        { label: "health", cell: (q) => html`<${Status} status=${q.paused ? "paused" : q.status} />` },
        { label: "waiting", cell: (q) => q.counts.waiting + q.counts.pending, cls: "num" },
        { label: "scheduled", cell: (q) => q.counts.scheduled, cls: "num" },
        { label: "running", cell: (q) => q.counts.running, cls: "num" },
        { label: "stuck", cell: (q) => q.counts.stuck, cls: "num" },
        { label: "runners", cell: (q) => `${q.runners.active}/${q.runners.total}`, cls: "num" },
        { label: "jobs/min", cell: (q) => q.metrics.jobsPerMinute, cls: "num" },
        { label: "avg", cell: (q) => ms(q.metrics.avgDurationMs), cls: "num" },
        { label: "alerts", cell: (q) => q.alerts.map((a) => a.message || a.code || JSON.stringify(a)).join("; ") },
      ]} />`}
  </${Page}>`;
}
