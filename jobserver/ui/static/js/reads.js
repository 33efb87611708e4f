// What a page reads first, known from the URL alone: shared by early.js (which starts those
// reads before the rest of the dashboard has loaded) and by the pages and api.js, so both ask
// for exactly the same URLs. No imports: early.js must not wait for other modules.

export const TOKEN_KEY = "jobserver.token";

// {a: 1, b: [x, y], c: null} -> "?a=1&b=x,y" (empty values left out)
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) {
      if (v.length) q.set(k, v.join(","));
    } else q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

// "#/jobs/abc?status=running" -> {page: "jobs", rest: ["abc"], params: URLSearchParams}
export function parseHash(hash) {
  const raw = (hash || "").replace(/^#\/?/, "");
  const [path, q] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { page: parts[0] || "", rest: parts.slice(1), params: new URLSearchParams(q || "") };
}

// The jobs page's filters, kept in its hash (#/jobs?status=...).
export const JOB_FILTERS = ["status", "queue", "definitionKey", "event", "tag", "createdAfter",
  "createdBefore", "sortBy", "sortOrder", "limit"];
export const JOBS_PAGE_SIZE = 25;

export function jobFilters(params) {
  const f = {};
  for (const k of JOB_FILTERS) if (params.get(k)) f[k] = params.get(k);
  return f;
}

// The jobs page's first page of rows and its count.
export function jobsReads(filters, cursor = null) {
  const { sortBy, sortOrder, limit, ...counted } = filters;
  return {
    list: ["/v1/jobs", { limit: JOBS_PAGE_SIZE, ...filters, cursor }],
    count: ["/v1/jobs/count", counted],
  };
}

// Every read the page at `hash` starts with: [path, params] pairs (GET).
export function firstReads(hash) {
  const reads = [["/v1/me", {}]];
  const route = parseHash(hash);
  if (route.page === "jobs" && !route.rest.length) {
    const { list, count } = jobsReads(jobFilters(route.params));
    reads.push(list, count);
  }
  return reads;
}
