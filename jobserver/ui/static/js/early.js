// Started at once, before the dashboard's other modules have loaded: the first reads of the
// page the URL names (GET /v1/me, and the jobs page's rows and count), so they travel while the
// modules load instead of after. api.js takes each answer once (takeEarly), within EARLY_MS.

import { TOKEN_KEY, firstReads, query } from "./reads.js";

const EARLY_MS = 10000;
const started = new Map(); // url -> {at, token, response: Promise<Response>}
window.__jobserverEarly = started;

const token = sessionStorage.getItem(TOKEN_KEY);
if (token) {
  for (const [path, params] of firstReads(location.hash)) {
    const url = path + query(params);
    const response = fetch(url, {
      headers: { Accept: "application/json", Authorization: `Bearer ${token}` },
      cache: "no-store",
    });
    response.catch(() => {}); // a failure is met again by the page's own request
    started.set(url, { at: Date.now(), token, response, maxAge: EARLY_MS });
  }
}
