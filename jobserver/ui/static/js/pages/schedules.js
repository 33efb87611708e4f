// Schedules: create, edit, enable/disable, trigger now, delete, and each one's run history.

import { html, useState } from "../lib.js";
import { get, post, patch, del } from "../api.js";
import { ConfigForm } from "../config_form.js";
import { useLoad, ErrorBox, Page, Table, Status, Action, when, ago, short, ms } from "../ui.js";

function Runs({ name }) {
  const runs = useLoad(() => get(`/v1/schedules/${encodeURIComponent(name)}/runs`, { limit: 50 }), [name]);
  return html`<div class="panel" data-testid="schedule-runs"><h2>Runs of ${name}
      <button class="link" onClick=${runs.reload}>refresh</button></h2>
    <${ErrorBox} error=${runs.error} />
    <${Table} rows=${runs.data && runs.data.items} rowKey=${(r) => r.jobId} empty="Never fired." columns=${[
      { label: "job", cell: (r) => html`<a href=${`#/jobs/${r.jobId}`}>${short(r.jobId)}</a>` },
      { label: "status", cell: (r) => html`<${Status} status=${r.status} />` },
      { label: "fire time", cell: (r) => when(r.scheduledFor) },
      { label: "duration", cell: (r) => ms(r.durationMs), cls: "num" },
      { label: "error", cell: (r) => r.lastError || "" },
    ]} /></div>`;
}

export function Schedules() {
  const list = useLoad(() => get("/v1/schedules", { limit: 100 }), []);
  const [editing, setEditing] = useState(null); // null, "new" or a schedule
  const [shown, setShown] = useState(null);
  const path = (s) => `/v1/schedules/${encodeURIComponent(s.name)}`;
  const save = async (body) => {
    if (editing === "new") await post("/v1/schedules", body);
    else await patch(path(editing), body);
    setEditing(null);
    list.reload();
  };
  return html`<${Page} title="Schedules" right=${html`<button onClick=${() => setEditing("new")} data-testid="new-schedule">New schedule</button>`}>
    <${ErrorBox} error=${list.error} />
    ${editing && html`<${ConfigForm} key=${editing === "new" ? "new" : editing.name} testid="schedule-form" needsTrigger
      initial=${editing === "new" ? null : editing} onSave=${save} onCancel=${() => setEditing(null)} />`}
    <${Table} testid="schedules-table" rows=${list.data && list.data.items} rowKey=${(s) => s.name}
      empty="No schedules yet." columns=${[
        { label: "name", cell: (s) => html`<button class="link" onClick=${() => setShown(s.name)}>${s.name}</button>` },
        { label: "when", cell: (s) => html`<code>${s.cron || `every ${s.everySeconds} s`}</code> ${s.timezone}` },
        { label: "definition", cell: (s) => s.definitionKey + (s.definitionVersion ? `@${s.definitionVersion}` : "") },
        { label: "enabled", cell: (s) => html`<${Status} status=${s.enabled ? "enabled" : "disabled"} />${s.disabledReason ? ` ${s.disabledReason}` : ""}` },
        { label: "next fire", cell: (s) => when(s.nextFireAt) },
        { label: "last fire", cell: (s) => ago(s.lastFireAt) },
        { label: "", cell: (s) => html`<span class="row-actions">
          <${Action} label="Trigger" testid="trigger" run=${() => post(`${path(s)}/trigger`)} done=${() => { setShown(s.name); list.reload(); }} />
          <${Action} label=${s.enabled ? "Disable" : "Enable"} testid="toggle" run=${() => patch(path(s), { enabled: !s.enabled })} done=${list.reload} />
          <button class="link" onClick=${() => setEditing(s)}>edit</button>
          <${Action} label="Delete" kind="danger" confirm=${`Delete schedule ${s.name}?`} run=${() => del(path(s))} done=${list.reload} />
        </span>` },
      ]} />
    ${shown && html`<${Runs} key=${shown} name=${shown} />`}
  </${Page}>`;
}
