// Saved jobs: named job configurations (optionally on a trigger): create, edit,
// enable/disable, run now, and each one's executions.

import { html, useState } from "../lib.js";
import { get, post, patch, del } from "../api.js";
import { ConfigForm } from "../config_form.js";
import { useLoad, ErrorBox, Page, Table, Status, Action, when, short, ms } from "../ui.js";

function Executions({ saved }) {
  const runs = useLoad(() => get(`/v1/saved-jobs/${saved.id}/executions`, { limit: 50 }), [saved.id]);
  return html`<div class="panel" data-testid="saved-executions"><h2>Executions of ${saved.name}
      <button class="link" onClick=${runs.reload}>refresh</button></h2>
    <${ErrorBox} error=${runs.error} />
    <${Table} rows=${runs.data && runs.data.items} rowKey=${(r) => r.jobId} empty="Never run." columns=${[
      { label: "job", cell: (r) => html`<a href=${`#/jobs/${r.jobId}`}>${short(r.jobId)}</a>` },
      { label: "status", cell: (r) => html`<${Status} status=${r.status} />` },
      { label: "trigger", cell: (r) => r.trigger },
      { label: "created", cell: (r) => when(r.createdAt) },
      { label: "duration", cell: (r) => ms(r.durationMs), cls: "num" },
      { label: "error", cell: (r) => r.lastError || "" },
    ]} /></div>`;
}

export function SavedJobs() {
  const list = useLoad(() => get("/v1/saved-jobs", { limit: 100 }), []);
  const [editing, setEditing] = useState(null);
  const [shown, setShown] = useState(null);
  const save = async (body) => {
    if (editing === "new") await post("/v1/saved-jobs", body);
    else await patch(`/v1/saved-jobs/${editing.id}`, body);
    setEditing(null);
    list.reload();
  };
  return html`<${Page} title="Saved jobs" right=${html`<button onClick=${() => setEditing("new")} data-testid="new-saved">New saved job</button>`}>
    <${ErrorBox} error=${list.error} />
    ${editing && html`<${ConfigForm} key=${editing === "new" ? "new" : editing.id} testid="saved-form"
      initial=${editing === "new" ? null : editing} onSave=${save} onCancel=${() => setEditing(null)} />`}
    <${Table} testid="saved-table" rows=${list.data && list.data.items} rowKey=${(s) => s.id}
      empty="No saved jobs yet." columns=${[
        { label: "name", cell: (s) => html`<button class="link" onClick=${() => setShown(s)}>${s.name}</button>` },
        { label: "definition", cell: (s) => s.definitionKey },
        { label: "trigger", cell: (s) => (s.cron ? html`<code>${s.cron}</code>` : s.everySeconds ? `every ${s.everySeconds} s` : "manual") },
        { label: "enabled", cell: (s) => html`<${Status} status=${s.enabled ? "enabled" : "disabled"} />` },
        { label: "owner", cell: (s) => s.owner },
        { label: "updated", cell: (s) => when(s.updatedAt) },
        { label: "", cell: (s) => html`<span class="row-actions">
          <${Action} label="Run now" testid="execute" run=${() => post(`/v1/saved-jobs/${s.id}/execute`)} done=${() => setShown({ ...s })} />
          <${Action} label=${s.enabled ? "Disable" : "Enable"} run=${() => patch(`/v1/saved-jobs/${s.id}`, { enabled: !s.enabled })} done=${list.reload} />
          <button class="link" onClick=${() => setEditing(s)}>edit</button>
          <${Action} label="Delete" kind="danger" confirm=${`Delete ${s.name}?`} run=${() => del(`/v1/saved-jobs/${s.id}`)} done=${list.reload} />
        </span>` },
      ]} />
    ${shown && html`<${Executions} key=${shown.id + Math.random()} saved=${shown} />`}
  </${Page}>`;
}
