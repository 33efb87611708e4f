// Workflows: stored workflows, their runs, and a run's step graph with each step's state
// (#/workflows/<workflowId>/<runId>).

import { html } from "../lib.js";
import { get, post } from "../api.js";
import { useLoad, useLive, LiveBadge, ErrorBox, Page, Table, Status, Action, when, short, Json } from "../ui.js";

const BOX_W = 170;
const BOX_H = 46;
const COL = 230;
const ROW = 62;

// Steps placed in columns by dependency depth: [{step, x, y}] and edges [[from, to]].
export function layout(steps) {
  const byName = new Map(steps.map((s) => [s.name, s]));
  const depth = new Map();
  const depthOf = (s, seen = new Set()) => {
    if (depth.has(s.name)) return depth.get(s.name);
    if (seen.has(s.name)) return 0; // a cycle cannot be stored; stay safe anyway
    seen.add(s.name);
    const parents = (s.dependsOn || []).map((n) => byName.get(n)).filter(Boolean);
    const d = parents.length ? 1 + Math.max(...parents.map((p) => depthOf(p, seen))) : 0;
    depth.set(s.name, d);
    return d;
  };
  const rows = new Map();
  const placed = steps.map((s) => {
    const d = depthOf(s);
    const r = rows.get(d) || 0;
    rows.set(d, r + 1);
    return { step: s, x: 10 + d * COL, y: 10 + r * ROW };
  });
  const at = new Map(placed.map((p) => [p.step.name, p]));
  const edges = [];
  for (const p of placed) for (const n of p.step.dependsOn || []) if (at.has(n)) edges.push([at.get(n), p]);
  return { placed, edges };
}

function StepGraph({ steps }) {
  const { placed, edges } = layout(steps);
  const width = Math.max(...placed.map((p) => p.x)) + BOX_W + 20;
  const height = Math.max(...placed.map((p) => p.y)) + BOX_H + 20;
  return html`<svg class="graph" width=${width} height=${height} viewBox=${`0 0 ${width} ${height}`}
      role="img" aria-label="step graph" data-testid="step-graph">
    ${edges.map(([a, b]) => html`<line class="edge" x1=${a.x + BOX_W} y1=${a.y + BOX_H / 2} x2=${b.x} y2=${b.y + BOX_H / 2} />`)}
    ${placed.map((p) => html`<g class=${`step step-${p.step.status}`} data-step=${p.step.name}>
      <rect x=${p.x} y=${p.y} width=${BOX_W} height=${BOX_H} rx="6" />
      <text x=${p.x + 10} y=${p.y + 19} class="step-name">${p.step.name}</text>
      <text x=${p.x + 10} y=${p.y + 36} class="step-state">${p.step.status} · ${p.step.jobType}</text>
    </g>`)}
  </svg>`;
}

function Run({ runId, me }) {
  const run = useLoad(() => get(`/v1/workflows/runs/${runId}`), [runId]);
  const live = useLive({}, () => run.reload(), run.reload);
  const r = run.data;
  return html`<div class="panel" data-testid="workflow-run">
    <${ErrorBox} error=${run.error} />
    ${r && html`<h2>Run ${short(r.runId)} of ${r.workflowName} v${r.version} <${Status} status=${r.status} /> <${LiveBadge} state=${live} /></h2>
      ${me.canManage && !r.finishedAt && html`<${Action} label="Cancel run" kind="danger" run=${() => post(`/v1/workflows/runs/${runId}/cancel`)} done=${run.reload} />`}
      <${StepGraph} steps=${r.steps} />
      <${Table} rows=${r.steps} rowKey=${(s) => s.name} columns=${[
        { label: "step", cell: (s) => s.name },
        { label: "state", cell: (s) => html`<${Status} status=${s.status} />` },
        { label: "job", cell: (s) => (s.jobId ? html`<a href=${`#/jobs/${s.jobId}`}>${short(s.jobId)}</a>` : "–") },
        { label: "attempt", cell: (s) => s.attempt ?? "–", cls: "num" },
        { label: "started", cell: (s) => when(s.startedAt) },
        { label: "finished", cell: (s) => when(s.finishedAt) },
        { label: "error", cell: (s) => (s.error ? JSON.stringify(s.error) : "") },
      ]} />
      ${r.result && html`<h3>Result</h3><${Json} value=${r.result} />`}`}
  </div>`;
}

function Runs({ workflowId, me, runId }) {
  const runs = useLoad(() => get(`/v1/workflows/${workflowId}/runs`, { limit: 50 }), [workflowId]);
  return html`<div class="panel" data-testid="workflow-runs">
    <h2>Runs ${me.canManage && html`<${Action} label="Start a run" testid="start-run"
      run=${() => post(`/v1/workflows/${workflowId}/runs`, {})}
      done=${(r) => (location.hash = `#/workflows/${workflowId}/${r.runId}`)} />`}</h2>
    <${ErrorBox} error=${runs.error} />
    <${Table} rows=${runs.data && runs.data.items} rowKey=${(r) => r.runId} empty="No runs yet." columns=${[
      { label: "run", cell: (r) => html`<a href=${`#/workflows/${workflowId}/${r.runId}`}>${short(r.runId)}</a>` },
      { label: "status", cell: (r) => html`<${Status} status=${r.status} />` },
      { label: "started", cell: (r) => when(r.createdAt) },
      { label: "finished", cell: (r) => when(r.finishedAt) },
    ]} />
    ${runId && html`<${Run} key=${runId} runId=${runId} me=${me} />`}
  </div>`;
}

export function Workflows({ route, me }) {
  const [workflowId, runId] = route.rest;
  const list = useLoad(() => get("/v1/workflows", { limit: 100 }), []);
  return html`<${Page} title="Workflows">
    <${ErrorBox} error=${list.error} />
    <${Table} testid="workflows-table" rows=${list.data && list.data.items} rowKey=${(w) => w.id}
      empty="No workflows yet (POST /v1/workflows)." columns=${[
        { label: "name", cell: (w) => html`<a href=${`#/workflows/${w.id}`}>${w.name}</a>` },
        { label: "version", cell: (w) => w.version, cls: "num" },
        { label: "steps", cell: (w) => w.steps.map((s) => s.name).join(", ") },
        { label: "owner", cell: (w) => w.owner },
        { label: "updated", cell: (w) => when(w.updatedAt) },
      ]} />
    ${workflowId && html`<${Runs} key=${workflowId} workflowId=${workflowId} runId=${runId} me=${me} />`}
  </${Page}>`;
}
