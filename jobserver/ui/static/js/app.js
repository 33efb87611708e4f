// The dashboard shell: sign-in, navigation and hash routing (#/jobs, #/jobs/<id>, ...).

import { html, render, useState, useEffect } from "./lib.js";
import { restore, signOut, onSignedOut, currentUser } from "./api.js";
import { parseHash } from "./reads.js";
import { SignIn } from "./pages/signin.js";
import { Overview } from "./pages/overview.js";
import { Jobs } from "./pages/jobs.js";
import { JobDetail } from "./pages/job.js";
import { Dlq } from "./pages/dlq.js";
import { Schedules } from "./pages/schedules.js";
import { SavedJobs } from "./pages/saved.js";
import { Workflows } from "./pages/workflows.js";
import { Runners } from "./pages/runners.js";
import { Queues } from "./pages/queues.js";
import { Definitions } from "./pages/definitions.js";
import { Videos } from "./pages/videos.js";

// [hash prefix, label, component, who may see it]
const PAGES = [
  ["overview", "Overview", Overview, (me) => me.canViewAll],
  ["jobs", "Jobs", Jobs, () => true],
  ["dlq", "DLQ", Dlq, (me) => me.canManage],
  ["schedules", "Schedules", Schedules, (me) => me.canManage],
  ["saved", "Saved jobs", SavedJobs, () => true],
  ["workflows", "Workflows", Workflows, (me) => me.canViewAll],
  ["runners", "Runners", Runners, (me) => me.canViewAll],
  ["queues", "Queues", Queues, (me) => me.canViewAll],
  ["definitions", "Definitions", Definitions, (me) => me.canViewAll],
  ["videos", "Videos", Videos, () => true],
];

function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return parseHash(hash);
}

function Shell({ me }) {
  const route = useHash();
  const visible = PAGES.filter(([, , , may]) => may(me));
  let entry = visible.find(([p]) => p === route.page);
  if (!entry) {
    entry = visible[0];
    if (route.page !== entry[0]) history.replaceState(null, "", `#/${entry[0]}`);
  }
  const [name, , Component] = entry;
  const Detail = name === "jobs" && route.rest.length ? JobDetail : Component;
  return html`<div class="shell">
    <nav class="nav">
      <a class="brand" href="#/">jobserver</a>
      ${visible.map(
        ([p, label]) => html`<a href=${`#/${p}`} class=${p === name ? "active" : ""}
          data-testid=${`nav-${p}`}>${label}</a>`,
      )}
      <span class="who" data-testid="who">${me.tokenName || "auth disabled"} · ${me.owner}</span>
      <button class="link" onClick=${signOut} data-testid="sign-out">Sign out</button>
    </nav>
    <main><${Detail} key=${name + route.rest.join("/")} route=${route} me=${me} /></main>
  </div>`;
}

function App() {
  const [me, setMe] = useState(undefined);
  useEffect(() => {
    restore().then((m) => setMe(m));
    return onSignedOut(() => setMe(null));
  }, []);
  if (me === undefined) return html`<p class="loading">Loading…</p>`;
  if (me === null) return html`<${SignIn} onSignedIn=${() => setMe(currentUser())} />`;
  return html`<${Shell} me=${me} />`;
}

render(html`<${App} />`, document.getElementById("app"));
