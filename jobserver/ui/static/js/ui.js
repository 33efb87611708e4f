// Small shared components and hooks: loading an API answer, tables, JSON, status badges,
// progress bars, buttons that call the API and show its error.

import { html, useState, useEffect, useCallback, useRef } from "./lib.js";
import { openStream } from "./stream.js";

// Load `fn()` now and whenever `deps` change; reload() re-runs it keeping the old data shown.
export function useLoad(fn, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const seq = useRef(0);
  const reload = useCallback(() => {
    const n = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    return fn().then(
      (data) => n === seq.current && setState({ data, error: null, loading: false }),
      (error) => n === seq.current && setState((s) => ({ ...s, error, loading: false })),
    );
  }, deps);
  useEffect(() => {
    reload();
  }, [reload]);
  return { ...state, reload, setData: (data) => setState((s) => ({ ...s, data })) };
}

// Live updates while mounted: onJob per job event (a page without one re-reads, at most once
// per RELOAD_MS), reload on resync (or every 5 s without a stream route). Answers the stream
// state for the header badge.
const RELOAD_MS = 2000;
export function useLive(filters, onJob, reload) {
  const [state, setState] = useState("connecting");
  const handlers = useRef({});
  const timer = useRef(null);
  const last = useRef(0);
  handlers.current = { onJob, reload };
  const key = JSON.stringify(filters || {});
  const reloadSoon = () => {
    if (timer.current) return;
    const wait = Math.max(0, last.current + RELOAD_MS - Date.now());
    timer.current = setTimeout(() => {
      timer.current = null;
      last.current = Date.now();
      if (handlers.current.reload) handlers.current.reload();
    }, wait);
  };
  useEffect(() => {
    const close = openStream(filters || {}, {
      onJob: (j) => (handlers.current.onJob ? handlers.current.onJob(j) : reloadSoon()),
      onResync: () => handlers.current.reload && handlers.current.reload(),
      onState: setState,
    });
    return () => {
      close();
      if (timer.current) clearTimeout(timer.current);
      timer.current = null;
    };
  }, [key]);
  return state;
}

export function LiveBadge({ state }) {
  const label = { live: "live", polling: "refreshing every 5 s", connecting: "connecting…",
    reconnecting: "reconnecting…" }[state] || state;
  return html`<span class=${`live live-${state}`} data-testid="live">${label}</span>`;
}

export function ErrorBox({ error }) {
  if (!error) return null;
  const where = error.field ? ` (${error.field})` : "";
  return html`<p class="error" role="alert">${error.message}${where}
    ${error.code ? html` <code>${error.code}</code>` : null}</p>`;
}

export function Loading({ loading }) {
  return loading ? html`<span class="spinner" aria-label="loading">…</span>` : null;
}

export function Status({ status }) {
  return html`<span class=${`status status-${status}`} data-status=${status}>${status}</span>`;
}

export function percentOf(progress) {
  if (progress === null || progress === undefined) return null;
  if (typeof progress === "number") return progress;
  if (typeof progress.percent === "number") return progress.percent;
  if (progress.total) return (100 * progress.done) / progress.total;
  return null;
}

export function Progress({ progress, status }) {
  let pct = percentOf(progress);
  if (status === "succeeded") pct = 100;
  if (pct === null) return html`<span class="muted">–</span>`;
  const message = progress && progress.message;
  return html`<span class="progress">
    <progress max="100" value=${pct} aria-label="progress"></progress>
    <span class="progress-pct" data-testid="progress-pct">${Math.round(pct)}%</span>
    ${message ? html`<span class="muted">${message}</span>` : null}
  </span>`;
}

export function Json({ value }) {
  if (value === undefined) return null;
  return html`<pre class="json">${JSON.stringify(value, null, 2)}</pre>`;
}

export function when(ts) {
  if (!ts) return "–";
  const d = new Date(ts);
  return d.toLocaleString(undefined, { hour12: false });
}

export function ago(ts) {
  if (!ts) return "–";
  const s = Math.round((Date.now() - new Date(ts).getTime()) / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

export function ms(v) {
  if (v === null || v === undefined) return "–";
  if (v < 1000) return `${Math.round(v)} ms`;
  return `${(v / 1000).toFixed(1)} s`;
}

export function short(id) {
  return id ? `…${String(id).slice(-8)}` : "–";
}

// A button that runs an API call, disables itself meanwhile and shows the call's error.
export function Action({ label, run, confirm, kind, testid, done }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const click = async (e) => {
    e.preventDefault();
    if (confirm && !window.confirm(confirm)) return;
    setBusy(true);
    setError(null);
    try {
      const answer = await run();
      if (done) done(answer);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<span class="action">
    <button class=${kind || ""} disabled=${busy} onClick=${click} data-testid=${testid}>
      ${label}</button>${error ? html`<${ErrorBox} error=${error} />` : null}</span>`;
}

// A table from rows and [{label, cell(row)}] columns.
export function Table({ rows, columns, empty, rowKey, testid }) {
  if (!rows) return null;
  if (!rows.length) return html`<p class="muted" data-testid=${testid && `${testid}-empty`}>
    ${empty || "Nothing here."}</p>`;
  return html`<table data-testid=${testid}>
    <thead><tr>${columns.map((c) => html`<th>${c.label}</th>`)}</tr></thead>
    <tbody>${rows.map(
      (r, i) => html`<tr key=${rowKey ? rowKey(r) : i} data-key=${rowKey ? rowKey(r) : i}>
        ${columns.map((c) => html`<td class=${c.cls || ""}>${c.cell(r)}</td>`)}</tr>`,
    )}</tbody>
  </table>`;
}

export function Page({ title, children, right }) {
  return html`<section class="page">
    <header class="page-head"><h1>${title}</h1><div class="page-right">${right}</div></header>
    ${children}
  </section>`;
}

// A JSON textarea field: answers [value, setText, text, error].
export function useJsonField(initial) {
  const [text, setText] = useState(initial);
  let value = null;
  let error = null;
  try {
    value = text.trim() ? JSON.parse(text) : {};
  } catch (e) {
    error = e.message;
  }
  return { text, setText, value, error };
}

export function Field({ label, children }) {
  return html`<label class="field"><span>${label}</span>${children}</label>`;
}
