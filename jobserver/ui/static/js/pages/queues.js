// Queues: every queue's counts and health, pause (with a reason) and resume. After an action
// the row takes the answer at once, and the list is re-read past the API's snapshot cache.

import { html, useRef } from "../lib.js";
import { get, post } from "../api.js";
import { useLoad, useLive, LiveBadge, ErrorBox, Page, Table, Status, Action, ago } from "../ui.js";

export function Queues({ me }) {
  const fresh = useRef(true); // the first read too: a snapshot may predate a new queue
  const list = useLoad(() => {
    const ttl = fresh.current ? 0 : undefined;
    fresh.current = false;
    return get("/v1/queues", { limit: 100, ttl });
  }, []);
  const live = useLive({}, null, list.reload);
  const name = (q) => encodeURIComponent(q.name);
  const changed = (answer) => {
    const paused = answer.paused
      ? { pausedAt: answer.pausedAt, pausedBy: answer.pausedBy, reason: answer.reason }
      : null;
    const items = list.data.items.map((q) => (q.name === answer.queue ? { ...q, paused } : q));
    list.setData({ ...list.data, items });
    fresh.current = true;
    list.reload();
  };
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
            ? html`<${Action} label="Resume" testid="resume" run=${() => post(`/v1/queues/${name(q)}/resume`)} done=${changed} />`
            : html`<${Action} label="Pause" testid="pause" run=${() => post(`/v1/queues/${name(q)}/pause`, { reason: "paused from the dashboard" })} done=${changed} />`)
          : "") },
      ]} />
  </${Page}>`;
}
