// Jobs: filters (status, queue, definition, event, tag, time), sort, cursor paging, live
// status changes, and a form to submit a job. Filters live in the hash (#/jobs?status=...).

import { html, useState, useRef } from "../lib.js";
import { get, post } from "../api.js";
import { jobFilters, jobsReads } from "../reads.js";
import {
  useLoad, useLive, LiveBadge, ErrorBox, Page, Table, Status, Progress, ago, short, Field,
  useJsonField, Loading,
} from "../ui.js";

const STATUSES = ["waiting", "queued", "running", "cancelling", "succeeded", "failed",
  "cancelled", "expired"];
const NEW_JOBS_RELOAD_MS = 2000; // at most one re-read per 2 s for jobs new to the page

function setFilters(f) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  location.hash = `#/jobs${q.toString() ? `?${q}` : ""}`;
}

function toIso(local) {
  return local ? new Date(local).toISOString() : "";
}

function FilterBar({ filters }) {
  const [draft, setDraft] = useState(filters);
  const set = (k) => (e) => setDraft({ ...draft, [k]: e.target.value });
  const statuses = new Set((draft.status || "").split(",").filter(Boolean));
  const toggle = (s) => {
    statuses.has(s) ? statuses.delete(s) : statuses.add(s);
    setDraft({ ...draft, status: [...statuses].join(",") });
  };
  const apply = (e) => {
    e.preventDefault();
    setFilters(draft);
  };
  return html`<form class="filters" onSubmit=${apply} data-testid="job-filters">
    <fieldset class="statuses"><legend>status</legend>
      ${STATUSES.map((s) => html`<label class="check"><input type="checkbox" checked=${statuses.has(s)}
        onChange=${() => toggle(s)} data-testid=${`filter-status-${s}`} />${s}</label>`)}
    </fieldset>
    <${Field} label="queue"><input value=${draft.queue || ""} onInput=${set("queue")} data-testid="filter-queue" /></${Field}>
    <${Field} label="definition"><input value=${draft.definitionKey || ""} onInput=${set("definitionKey")} data-testid="filter-definition" /></${Field}>
    <${Field} label="event"><input value=${draft.event || ""} onInput=${set("event")} /></${Field}>
    <${Field} label="tag"><input value=${draft.tag || ""} onInput=${set("tag")} /></${Field}>
    <${Field} label="created after"><input type="datetime-local"
      onChange=${(e) => setDraft({ ...draft, createdAfter: toIso(e.target.value) })} /></${Field}>
    <${Field} label="created before"><input type="datetime-local"
      onChange=${(e) => setDraft({ ...draft, createdBefore: toIso(e.target.value) })} /></${Field}>
    <${Field} label="sort"><select value=${draft.sortBy || "createdAt"} onChange=${set("sortBy")}>
      ${["createdAt", "priority", "status", "event"].map((s) => html`<option value=${s}>${s}</option>`)}
    </select></${Field}>
    <${Field} label="order"><select value=${draft.sortOrder || "desc"} onChange=${set("sortOrder")}>
      <option value="desc">newest/highest first</option><option value="asc">oldest/lowest first</option>
    </select></${Field}>
    <button type="submit" data-testid="apply-filters">Apply</button>
    <button type="button" class="link" onClick=${() => setFilters({})}>Clear</button>
  </form>`;
}

function SubmitForm({ me }) {
  const [opened, setOpened] = useState(false); // the definitions are read when it opens
  const defs = useLoad(
    () => (me.canViewAll && opened ? get("/v1/definitions", { limit: 100 }) : Promise.resolve({ items: [] })),
    [opened],
  );
  const [key, setKey] = useState("");
  const [queue, setQueue] = useState("");
  const [priority, setPriority] = useState("");
  const params = useJsonField("{}");
  const [error, setError] = useState(null);
  const latest = ((defs.data && defs.data.items) || []).filter((d) => d.latest);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    if (params.error) return setError({ message: `params: ${params.error}`, field: "params" });
    const body = { definitionKey: key, params: params.value };
    if (queue) body.queue = queue;
    if (priority) body.priority = Number(priority);
    try {
      const job = await post("/v1/jobs", body);
      location.hash = `#/jobs/${job.id}`;
    } catch (err) {
      setError(err);
    }
  };
  return html`<details class="panel" data-testid="submit-panel" onToggle=${(e) => setOpened(e.target.open)}><summary>Submit a job</summary>
    <form onSubmit=${submit} class="form">
      <${Field} label="definition">
        <input list="definition-keys" value=${key} onInput=${(e) => setKey(e.target.value)} data-testid="submit-definition" required />
        <datalist id="definition-keys">${latest.map((d) => html`<option value=${d.key} />`)}</datalist>
      </${Field}>
      <${Field} label="params (JSON)"><textarea rows="4" value=${params.text}
        onInput=${(e) => params.setText(e.target.value)} data-testid="submit-params"></textarea></${Field}>
      <${Field} label="queue"><input value=${queue} placeholder="default" onInput=${(e) => setQueue(e.target.value)} data-testid="submit-queue" /></${Field}>
      <${Field} label="priority"><input type="number" value=${priority} onInput=${(e) => setPriority(e.target.value)} /></${Field}>
      <button type="submit" data-testid="submit-job">Submit</button>
      <${ErrorBox} error=${error} />
    </form></details>`;
}

export function Jobs({ route, me }) {
  const filters = jobFilters(route.params);
  const [cursors, setCursors] = useState([null]); // the cursor of each page seen
  const cursor = cursors[cursors.length - 1];
  const reads = jobsReads(filters, cursor); // early.js may have started the first ones
  const list = useLoad(() => get(...reads.list), [route.params.toString(), cursor]);
  const count = useLoad(() => get(...reads.count), [route.params.toString()]);
  const pending = useRef(null);
  const onJob = (ev) => {
    if (!list.data) return;
    if (!list.data.items.some((j) => j.id === ev.id)) {
      // a job this page does not show: on the first page it may belong at the top
      if (cursor === null && !pending.current) {
        pending.current = setTimeout(() => {
          pending.current = null;
          list.reload();
        }, NEW_JOBS_RELOAD_MS);
      }
      return;
    }
    const items = list.data.items.map((j) =>
      j.id === ev.id ? { ...j, status: ev.status, progress: ev.progress ?? j.progress, attempt: ev.attempt ?? j.attempt } : j,
    );
    list.setData({ ...list.data, items });
  };
  const live = useLive(filters.queue ? { queue: filters.queue } : {}, onJob, list.reload);
  const data = list.data;
  return html`<${Page} title="Jobs" right=${html`<${Loading} loading=${list.loading} /> <${LiveBadge} state=${live} />`}>
    <${SubmitForm} me=${me} />
    <${FilterBar} key=${route.params.toString()} filters=${filters} />
    <${ErrorBox} error=${list.error} />
    <p class="muted" data-testid="job-count">${count.data
      ? `${count.data.isEstimate ? "about " : ""}${count.data.total.toLocaleString()} jobs` : ""}</p>
    ${data && html`<${Table} testid="jobs-table" rows=${data.items} rowKey=${(j) => j.id}
      empty="No jobs match these filters." columns=${[
        { label: "id", cell: (j) => html`<a href=${`#/jobs/${j.id}`} data-testid="job-link">${short(j.id)}</a>` },
        { label: "definition", cell: (j) => `${j.definitionKey}@${j.definitionVersion}` },
        { label: "queue", cell: (j) => j.queue },
        { label: "status", cell: (j) => html`<${Status} status=${j.status} />` },
        { label: "progress", cell: (j) => html`<${Progress} progress=${j.progress} status=${j.status} />` },
        { label: "attempt", cell: (j) => `${j.attempt}/${j.maxAttempts}`, cls: "num" },
        { label: "priority", cell: (j) => j.priority, cls: "num" },
        { label: "owner", cell: (j) => j.owner },
        { label: "created", cell: (j) => ago(j.createdAt) },
        { label: "tags", cell: (j) => (j.tags || []).join(", ") },
      ]} />
      <div class="pager">
        <button disabled=${cursors.length < 2} onClick=${() => setCursors(cursors.slice(0, -1))}>← Newer</button>
        <span>page ${cursors.length}</span>
        <button disabled=${!data.nextCursor} onClick=${() => setCursors([...cursors, data.nextCursor])}
          data-testid="next-page">Older →</button>
      </div>`}
  </${Page}>`;
}
