// Live updates from GET /v1/stream (server-sent events read with fetch + a ReadableStream:
// EventSource cannot send the bearer header). Reconnects with back-off, sends Last-Event-ID,
// and calls onResync when the server says so or after a reconnect (events may have been
// missed). Where the route does not exist (404) it falls back to onResync every 5 s.

import { query, signOut, token } from "./api.js";

const POLL_MS = 5000;
const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 30000;

// Parse an SSE byte stream; calls onMessage({id, event, data}) per message.
export async function readEvents(body, onMessage) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let message = { event: "message", data: [], id: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let nl;
    while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + (buffer.startsWith("\r\n", nl) ? 2 : 1));
      if (line === "") {
        if (message.data.length || message.event !== "message") {
          onMessage({ id: message.id, event: message.event, data: message.data.join("\n") });
        }
        message = { event: "message", data: [], id: null };
        continue;
      }
      if (line.startsWith(":")) continue; // a comment: the server's ping
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? "" : line.slice(colon + 1);
      if (val.startsWith(" ")) val = val.slice(1);
      if (field === "data") message.data.push(val);
      else if (field === "event") message.event = val;
      else if (field === "id") message.id = val;
    }
  }
}

// Open the stream with optional filters {queue, jobId, status}. Handlers: onJob(job),
// onResync(), onState("connecting"|"live"|"reconnecting"|"polling"). Returns close().
export function openStream(filters, { onJob, onResync, onState }) {
  let stopped = false;
  let controller = null;
  let pollTimer = null;
  let lastId = null;
  let delay = MIN_DELAY_MS;
  const state = (s) => onState && onState(s);

  const poll = () => {
    state("polling");
    pollTimer = setInterval(() => {
      if (document.visibilityState !== "hidden") onResync();
    }, POLL_MS);
  };

  const run = async () => {
    let connectedBefore = false;
    while (!stopped) {
      state(connectedBefore ? "reconnecting" : "connecting");
      controller = new AbortController();
      try {
        const h = { Accept: "text/event-stream", Authorization: `Bearer ${token()}` };
        if (lastId) h["Last-Event-ID"] = lastId;
        const r = await fetch(`/v1/stream${query(filters)}`, {
          headers: h,
          signal: controller.signal,
          cache: "no-store",
        });
        if (r.status === 404) return poll();
        if (r.status === 401) return signOut();
        if (r.ok && r.body) {
          state("live");
          delay = MIN_DELAY_MS;
          if (connectedBefore) onResync();
          connectedBefore = true;
          await readEvents(r.body, (m) => {
            if (m.id) lastId = m.id;
            if (m.event === "job") {
              try {
                onJob(JSON.parse(m.data));
              } catch {
                /* a malformed message: skip it */
              }
            } else if (m.event === "resync") onResync();
          });
        }
      } catch {
        if (stopped) return;
      }
      if (stopped) return;
      state("reconnecting");
      await new Promise((ok) => setTimeout(ok, delay * (0.75 + Math.random() / 2)));
      delay = Math.min(MAX_DELAY_MS, delay * 2);
    }
  };
  run();
  return () => {
    stopped = true;
    if (controller) controller.abort();
    if (pollTimer) clearInterval(pollTimer);
  };
}
