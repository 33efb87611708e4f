// Runners: the worker processes; ping or shut one down, pause or resume them all.

import { html, useState } from "../lib.js";
import { get, post } from "../api.js";
import { useLoad, ErrorBox, Page, Table, Status, Action, ago } from "../ui.js";

export function Runners({ me }) {
  const list = useLoad(() => get("/v1/runners", { limit: 100 }), []);
  const [note, setNote] = useState(null);
  const id = (r) => encodeURIComponent(r.id);
  const broadcast = (command) => post("/v1/runners/broadcast", { command });
  const said = (what) => (a) => {
    setNote(`${what}: ${JSON.stringify(a)}`);
    list.reload();
  };
  return html`<${Page} title="Runners" right=${html`<button onClick=${list.reload}>Refresh</button>`}>
    <${ErrorBox} error=${list.error} />
    ${me.canManage && html`<div class="actions">
      <${Action} label="Pause all" testid="pause-all" run=${() => broadcast("pause")} done=${said("pause")} />
      <${Action} label="Resume all" testid="resume-all" run=${() => broadcast("resume")} done=${said("resume")} />
    </div>`}
    ${note && html`<pre class="note" data-testid="runner-note">${note}</pre>`}
    <${Table} testid="runners-table" rows=${list.data && list.data.items} rowKey=${(r) => r.id}
      empty="No worker has registered." columns=${[
        { label: "id", cell: (r) => r.id },
        { label: "status", cell: (r) => html`<${Status} status=${r.status} />` },
        { label: "host", cell: (r) => `${r.host} (pid ${r.pid})` },
        { label: "queues", cell: (r) => (r.queues ? r.queues.join(", ") : "all") },
        { label: "running", cell: (r) => `${r.running}/${r.maxConcurrency}`, cls: "num" },
        { label: "last seen", cell: (r) => ago(r.lastSeenAt) },
        { label: "definitions", cell: (r) => html`<span class="muted small">${(r.definitions || []).join(" ")}</span>` },
        { label: "", cell: (r) => (me.canManage && r.status === "active" ? html`<span class="row-actions">
          <${Action} label="Ping" testid="ping" run=${() => post(`/v1/runners/${id(r)}/ping`)} done=${said(`ping ${r.id}`)} />
          <${Action} label="Shut down" kind="danger" testid="shutdown" confirm=${`Shut down ${r.id}?`}
            run=${() => post(`/v1/runners/${id(r)}/shutdown`, { mode: "graceful" })} done=${said(`shutdown ${r.id}`)} />
          </span>` : "") },
      ]} />
  </${Page}>`;
}
