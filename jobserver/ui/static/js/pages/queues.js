// Queues: every queue's counts and health, pause (with a reason) and resume.

import { html } from "../lib.js";
import { get, post } from "../api.js";
import { useLoad, useLive, LiveBadge, ErrorBox, Page, Table, Status, Action, ago } from "../ui.js";

export function Queues({ me }) {
  const list = useLoad(() => get("/v1/queues", { limit: 100 }), []);
  const live = useLive({}, null, list.reload);
  const name = (q) => encodeURIComponent(q.name);
  return html`<${Page} title="Queues" right=${html`<${LiveBadge} state=${live} />`}>
    <${ErrorBox} error=${list.error} />
    <${Table} testid="queues-table" rows=${list.data && list.data.items} rowKey=${(q) => q.name}
      empty="No queue has jobs or workers yet." columns=${[
        { label: "queue", cell: (q) => html`<a href=${`#/jobs?queue=${name(q)}`}>${q.name}</a>` },
        { label: "state", cell: (q) => html`<span data-testid="queue-state">${q.paused ? html`<${Status} status="paused" />` : html`<${Status} status="active" />`}</span>` },
        { label: "health", cell: (q) => html`<${Status} status=${q.status} />` },
        { label: "waiting", cell: (q) => q.counts.waiting + q.counts.pending, cls: "num" },
        { label: "running", cell: (q) => q.counts.running, cls: "num" },
        { label: "stuck", cell: (q) => q.counts.stuck, cls: "num" },
        { label: "oldest waiting", cell: (q) => ago(q.oldestWaitingSince) },
        { label: "paused", cell: (q) => (q.paused ? `${q.paused.reason || ""} (${q.paused.pausedBy || "?"}, ${ago(q.paused.pausedAt)})` : "") },
        { label: "", cell: (q) => (me.canManage
          ? (q.paused
            ? html`<${Action} label="Resume" testid="resume" run=${() => post(`/v1/queues/${name(q)}/resume`)} done=${list.reload} />`
            : html`<${Action} label="Pause" testid="pause" run=${() => post(`/v1/queues/${name(q)}/pause`, { reason: "paused from the dashboard" })} done=${list.reload} />`)
          : "") },
      ]} />
  </${Page}>`;
}
