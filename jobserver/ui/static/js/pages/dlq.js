// Dead-letter queue: inspect each failed job's attempt history, redrive one or many (each a
// POST /v1/dlq/{id}/retry), discard.

import { html, useState } from "../lib.js";
import { get, post, del } from "../api.js";
import { useLoad, useLive, LiveBadge, ErrorBox, Page, Table, Action, ago, short, Json } from "../ui.js";

export function Dlq() {
  const [cursors, setCursors] = useState([null]);
  const list = useLoad(() => get("/v1/dlq", { limit: 50, cursor: cursors[cursors.length - 1] }), [cursors]);
  const [picked, setPicked] = useState(new Set());
  const [open, setOpen] = useState(null);
  const [note, setNote] = useState(null);
  const live = useLive({ status: "failed" }, () => list.reload(), list.reload);
  const toggle = (id) => {
    const next = new Set(picked);
    next.has(id) ? next.delete(id) : next.add(id);
    setPicked(next);
  };
  const redriveMany = async () => {
    const ids = [...picked];
    const made = [];
    for (const id of ids) made.push(await post(`/v1/dlq/${id}/retry`));
    setPicked(new Set());
    setNote(`Redriven ${made.length}: ${made.map((j) => short(j.id || j.jobId)).join(", ")}`);
    list.reload();
  };
  const items = list.data ? list.data.items : null;
  return html`<${Page} title="Dead-letter queue" right=${html`<${LiveBadge} state=${live} />`}>
    <${ErrorBox} error=${list.error} />
    <div class="actions">
      <${Action} label=${`Redrive selected (${picked.size})`} testid="redrive-selected"
        run=${redriveMany} />
    </div>
    ${note && html`<p class="note" data-testid="dlq-note">${note}</p>`}
    <${Table} testid="dlq-table" rows=${items} rowKey=${(d) => d.id} empty="The dead-letter queue is empty."
      columns=${[
        { label: "", cell: (d) => html`<input type="checkbox" checked=${picked.has(d.id)}
            onChange=${() => toggle(d.id)} aria-label="select" data-testid="dlq-pick" />` },
        { label: "job", cell: (d) => html`<a href=${`#/jobs/${d.jobId}`}>${short(d.jobId)}</a>` },
        { label: "definition", cell: (d) => `${d.definitionKey}@${d.definitionVersion}` },
        { label: "queue", cell: (d) => d.queue },
        { label: "attempts", cell: (d) => `${d.attempts}/${d.maxAttempts}`, cls: "num" },
        { label: "error", cell: (d) => html`<span class="error-text">${d.lastError}</span>` },
        { label: "failed", cell: (d) => ago(d.failedAt) },
        { label: "redriven", cell: (d) => (d.redrivenJobId
          ? html`<a href=${`#/jobs/${d.redrivenJobId}`} data-testid="redriven-link">${short(d.redrivenJobId)}</a>` : "–") },
        { label: "", cell: (d) => html`<span class="row-actions">
          <button class="link" onClick=${() => setOpen(open === d.id ? null : d.id)}>inspect</button>
          <${Action} label="Redrive" testid="redrive" run=${() => post(`/v1/dlq/${d.id}/retry`)}
            done=${(j) => { setNote(`Redriven as ${short(j.id || j.jobId)}`); list.reload(); }} />
          <${Action} label="Discard" kind="danger" testid="discard" confirm="Discard this dead letter?"
            run=${() => del(`/v1/dlq/${d.id}`)} done=${list.reload} /></span>` },
      ]} />
    ${items && open && html`<div class="panel" data-testid="dlq-inspect">
      <h2>History of ${short(open)}</h2>
      <${Json} value=${(items.find((d) => d.id === open) || {}).params} />
      ${((items.find((d) => d.id === open) || {}).history || []).map((h) => html`<article class="attempt">
        <header><strong>Attempt ${h.attempt}</strong> ${h.outcome} on ${h.workerId}</header>
        <p class="error-text">${h.error}</p>
        ${h.traceback && html`<pre class="out">${h.traceback}</pre>`}</article>`)}
    </div>`}
    <div class="pager">
      <button disabled=${cursors.length < 2} onClick=${() => setCursors(cursors.slice(0, -1))}>← Newer</button>
      <button disabled=${!(list.data && list.data.nextCursor)} onClick=${() => setCursors([...cursors, list.data.nextCursor])}>Older →</button>
    </div>
  </${Page}>`;
}
