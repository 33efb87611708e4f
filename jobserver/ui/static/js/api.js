// The dashboard's only way to the server: /v1 calls with the signed-in token.
// The token lives in sessionStorage (this tab, until it closes or the user signs out).

import { TOKEN_KEY, query } from "./reads.js";

export { query };
let me = null; // GET /v1/me of the current token
// The WAL position of this tab's last write (X-Jobserver-Lsn), sent back on reads so an API
// reading from a replica shows what the user just did (docs/operations.md, Read replicas).
let lastWrite = null;
const signedOutListeners = new Set();

export class ApiError extends Error {
  constructor(status, body) {
    const message = (body && body.error) || `HTTP ${status}`;
    super(message);
    this.status = status;
    this.code = (body && body.code) || "http_error";
    this.field = body && body.field;
    this.body = body;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function currentUser() {
  return me;
}

export function onSignedOut(fn) {
  signedOutListeners.add(fn);
  return () => signedOutListeners.delete(fn);
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  me = null;
  for (const fn of signedOutListeners) fn();
}

// Check a token with GET /v1/me; keep it only when the API accepts it.
export async function signIn(candidate) {
  const value = candidate.trim();
  if (!value) throw new ApiError(400, { error: "enter a token", code: "missing" });
  const answer = await request("GET", "/v1/me", { tokenValue: value, quiet: true });
  sessionStorage.setItem(TOKEN_KEY, value);
  me = answer;
  return me;
}

// Re-read who the stored token is (after a reload); null when there is none or it is refused.
export async function restore() {
  if (!token()) return null;
  try {
    me = await request("GET", "/v1/me", { quiet: true });
    return me;
  } catch (e) {
    if (e.status === 401) signOut();
    return null;
  }
}

function headers(tokenValue, extra) {
  const h = { Accept: "application/json", ...(extra || {}) };
  const t = tokenValue || token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

// One call. `body`: JSON (or a FormData, sent as is). Answers the parsed JSON (null for 204);
// throws ApiError carrying the API's `code` and `field`. A 401 signs out (unless `quiet`).
export async function request(method, path, options = {}) {
  const { body, params, tokenValue, quiet } = options;
  const init = { method, headers: headers(tokenValue), cache: "no-store" };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  if (method === "GET" && lastWrite) init.headers["X-Jobserver-Min-Lsn"] = lastWrite.text;
  const url = path + query(params);
  const r = await ((method === "GET" && takeEarly(url, init.headers.Authorization)) ||
    fetch(url, init));
  rememberWrite(r.headers.get("X-Jobserver-Lsn"));
  const text = await r.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { error: text.slice(0, 200), code: "not_json" };
    }
  }
  if (!r.ok) {
    if (r.status === 401 && !quiet && !tokenValue) signOut();
    throw new ApiError(r.status, parsed);
  }
  return parsed;
}

// Keep the later of the stored position and `text` (`16/B374D848`: two hex halves).
function rememberWrite(text) {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec((text || "").trim());
  if (!m) return;
  const next = { hi: parseInt(m[1], 16), lo: parseInt(m[2], 16), text: m[0] };
  const last = lastWrite;
  if (!last || next.hi > last.hi || (next.hi === last.hi && next.lo > last.lo)) lastWrite = next;
}

// The answer early.js already asked for, for the same URL and token (once, while fresh).
function takeEarly(url, authorization) {
  const started = window.__jobserverEarly;
  const hit = started && started.get(url);
  if (!hit) return null;
  started.delete(url);
  const fresh = Date.now() - hit.at < hit.maxAge;
  return fresh && authorization === `Bearer ${hit.token}` ? hit.response : null;
}

export const get = (path, params) => request("GET", path, { params });
export const post = (path, body) => request("POST", path, { body: body === undefined ? {} : body });
export const patch = (path, body) => request("PATCH", path, { body });
export const del = (path) => request("DELETE", path);

// The bytes of a file route (a <video> cannot send a bearer header): a blob: URL for them.
export async function blobUrl(path) {
  const r = await fetch(path, { headers: headers(), cache: "no-store" });
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
  return URL.createObjectURL(await r.blob());
}

// A multipart upload with upload progress (fetch has none): onProgress(fraction 0..1).
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("Authorization", `Bearer ${token()}`);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = { error: xhr.responseText.slice(0, 200), code: "not_json" };
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body));
    };
    xhr.onerror = () => reject(new ApiError(0, { error: "network error", code: "network" }));
    xhr.send(form);
  });
}
