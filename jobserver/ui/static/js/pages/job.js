// One job: status and a live progress bar, params and result, the events timeline, every
// attempt (error and traceback, webhook request/response, SSH stdout/stderr), and cancel /
// retry / clone where the token may (its own job, or manage_jobs).

import { html } from "../lib.js";
import { get, post } from "../api.js";
import {
  useLoad, useLive, LiveBadge, ErrorBox, Page, Status, Progress, Json, when, ms, Action, Table,
} from "../ui.js";

const LIVE = new Set(["queued", "waiting", "running", "cancelling"]);

async function load(id) {
  const [job, events, attempts] = await Promise.all([
    get(`/v1/jobs/${id}`),
    get(`/v1/jobs/${id}/events`, { limit: 1000 }),
    get(`/v1/jobs/${id}/attempts`, { limit: 100 }),
  ]);
  return { job, events: events.items, attempts: attempts.items };
}

function Exchange({ value }) {
  // http.request / call.api record {request, response}; ssh.command {stdout, stderr, exitStatus}
  if (!value || typeof value !== "object") return null;
  const parts = [];
  if (value.request) parts.push(html`<h4>Request</h4><${Json} value=${value.request} />`);
  if (value.response) parts.push(html`<h4>Response</h4><${Json} value=${value.response} />`);
  if (typeof value.stdout === "string") parts.push(html`<h4>stdout</h4><pre class="out">${value.stdout}</pre>`);
  if (typeof value.stderr === "string" && value.stderr) parts.push(html`<h4>stderr</h4><pre class="out">${value.stderr}</pre>`);
  return parts.length ? html`<div class="exchange">${parts}</div>` : null;
}

function Attempt({ a, events }) {
  const exchanges = events.filter((e) => e.event === "http_exchange" && e.attempt === a.attempt);
  return html`<article class="attempt" data-testid="attempt">
    <header><strong>Attempt ${a.attempt}</strong> <${Status} status=${a.outcome || "running"} />
      <span class="muted"> on ${a.workerId || "–"}, ${when(a.startedAt)}, ${ms(a.durationMs)}</span></header>
    ${a.error && html`<p class="error-text">${a.error}</p>`}
    ${a.traceback && html`<details><summary>traceback</summary><pre class="out">${a.traceback}</pre></details>`}
    <${Exchange} value=${a.result} />
    ${exchanges.map((e) => html`<${Exchange} value=${e.details} />`)}
  </article>`;
}

export function JobDetail({ route, me }) {
  const id = route.rest[0];
  const { data, error, reload, setData } = useLoad(() => load(id), [id]);
  const onJob = (ev) => {
    if (!data || ev.id !== data.job.id) return;
    const changed = ev.status !== data.job.status;
    setData({ ...data, job: { ...data.job, status: ev.status, progress: ev.progress ?? data.job.progress } });
    if (changed) reload();
  };
  const live = useLive({ jobId: id }, onJob, reload);
  if (!data) return html`<${Page} title="Job"><${ErrorBox} error=${error} /></${Page}>`;
  const { job, events, attempts } = data;
  const mine = me.canManage || job.owner === me.owner;
  const go = (j) => (location.hash = `#/jobs/${j.id || j.jobId}`);
  return html`<${Page} title=${`Job ${job.id}`} right=${html`<${LiveBadge} state=${live} />`}>
    <${ErrorBox} error=${error} />
    <div class="job-head" data-testid="job-head">
      <${Status} status=${job.status} />
      <span data-testid="job-definition">${job.definitionKey}@${job.definitionVersion}</span>
      <span>queue <a href=${`#/jobs?queue=${encodeURIComponent(job.queue)}`}>${job.queue}</a></span>
      <span>attempt ${job.attempt}/${job.maxAttempts}</span>
      <span>owner ${job.owner}</span>
      <${Progress} progress=${job.progress} status=${job.status} />
    </div>
    ${mine && html`<div class="actions" data-testid="job-actions">
      ${LIVE.has(job.status) && job.status !== "cancelling" &&
        html`<${Action} label="Cancel" kind="danger" testid="cancel" run=${() => post(`/v1/jobs/${id}/cancel`)} done=${reload} />`}
      ${job.isRetriable && html`<${Action} label="Retry" testid="retry" run=${() => post(`/v1/jobs/${id}/retry`)} done=${go} />`}
      <${Action} label="Clone" testid="clone" run=${() => post(`/v1/jobs/${id}/clone`)} done=${go} />
    </div>`}
    <dl class="facts">
      <dt>created</dt><dd>${when(job.createdAt)}</dd>
      <dt>started</dt><dd>${when(job.startedAt)}</dd>
      <dt>finished</dt><dd>${when(job.finishedAt)}</dd>
      <dt>queue time</dt><dd>${ms(job.queueTimeMs)}</dd>
      <dt>processing</dt><dd>${ms(job.processingTimeMs)}</dd>
      <dt>worker</dt><dd>${job.workerId || "–"}</dd>
      <dt>priority</dt><dd>${job.priority}</dd>
      ${job.retriedFrom && html`<dt>retry of</dt><dd><a href=${`#/jobs/${job.retriedFrom}`}>${job.retriedFrom}</a></dd>`}
      ${job.clonedFrom && html`<dt>clone of</dt><dd><a href=${`#/jobs/${job.clonedFrom}`}>${job.clonedFrom}</a></dd>`}
    </dl>
    ${job.lastError && html`<p class="error-text" data-testid="last-error">${job.lastError}</p>`}
    <div class="two">
      <div><h2>Params</h2><${Json} value=${job.params} /></div>
      <div><h2>Result</h2><div data-testid="job-result"><${Json} value=${job.result} /></div></div>
    </div>
    <h2>Timeline</h2>
    <${Table} testid="events" rows=${events} rowKey=${(e) => e.id} columns=${[
      { label: "#", cell: (e) => e.id, cls: "num" },
      { label: "event", cell: (e) => html`<span class="event" data-event=${e.event}>${e.event}</span>` },
      { label: "at", cell: (e) => when(e.at) },
      { label: "attempt", cell: (e) => e.attempt ?? "–", cls: "num" },
      { label: "worker", cell: (e) => e.workerId || "–" },
      { label: "details", cell: (e) => (e.details ? html`<code class="details">${JSON.stringify(e.details)}</code>` : "") },
    ]} />
    <h2>Attempts</h2>
    ${attempts.length ? attempts.map((a) => html`<${Attempt} a=${a} events=${events} />`) : html`<p class="muted">Not run yet.</p>`}
  </${Page}>`;
}
