// The job view (#job/<id>): one job's phases and progress as they happen, read
// from its event stream (GET /api/jobs/{id}/events, docs/api.md "Job events")
// instead of polling the job.
//
// A browser EventSource cannot send the bearer key a keyed daemon needs, so the
// stream is read with fetch: the response body as a ReadableStream, decoded with
// a streaming TextDecoder and parsed by the event-stream rules of the WHATWG HTML
// standard ("Server-sent events", the event stream interpretation). A dropped
// connection is reopened with Last-Event-ID after a bounded backoff, as an
// EventSource would; a 204 means the job had already ended. A refused stream
// (an error status, or a browser without ReadableStream) falls back to polling
// the job every POLL_MS.
// Loaded after app.js, whose helpers (api, el, $, ago, when, durationInWords,
// progressBar, registerView, KEY_STORAGE, POLL_MS) it uses; it registers the "job" view.
"use strict";

// Reconnection delays: the first retry after RECONNECT_MIN_MS (or the stream's
// own `retry:`), doubling up to RECONNECT_MAX_MS. After RECONNECT_ATTEMPTS
// failed tries in a row without an event the view falls back to polling.
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 15000;
const RECONNECT_ATTEMPTS = 6;

// ---- the event-stream format ------------------------------------------------

// An incremental parser of `text/event-stream` text (already decoded from
// UTF-8): feed it text as it arrives, it returns the events it completed. Lines
// end in CRLF, LF or CR, and a chunk may end between the CR and LF of one line
// ending; a line starting with ":" is a comment; "field: value" loses one space
// after the colon; data lines join with LF; an id holding NUL is ignored; a
// blank line dispatches the event (setting the last event id, which carries
// over to later events and, through `lastEventId`, to the next connection's
// parser), unless it has no data.
class EventStreamParser {
  constructor(lastEventId) {
    this.lastEventId = lastEventId || "";
    this.idBuffer = this.lastEventId;
    this.retry = null;
    this.line = "";
    this.afterCr = false;
    this.data = "";
    this.type = "";
  }

  feed(text) {
    const out = [];
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (c !== "\n" && c !== "\r") continue;
      const prevCr = i === 0 ? this.afterCr : text[i - 1] === "\r";
      if (c === "\n" && prevCr) {
        // The LF of a CRLF: the CR already ended the line.
        start = i + 1;
        continue;
      }
      const line = this.line + text.slice(start, i);
      this.line = "";
      start = i + 1;
      const event = this.lineEnded(line);
      if (event) out.push(event);
    }
    this.line += text.slice(start);
    if (text.length) this.afterCr = text[text.length - 1] === "\r";
    return out;
  }

  lineEnded(line) {
    if (line === "") return this.dispatch();
    if (line[0] === ":") return null;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value[0] === " ") value = value.slice(1);
    if (field === "event") this.type = value;
    else if (field === "data") this.data += value + "\n";
    else if (field === "id") { if (!value.includes("\0")) this.idBuffer = value; }
    else if (field === "retry") { if (/^\d+$/.test(value)) this.retry = Number(value); }
    return null;
  }

  dispatch() {
    this.lastEventId = this.idBuffer;
    const type = this.type;
    const data = this.data;
    this.type = "";
    this.data = "";
    if (data === "") return null;
    return { type: type || "message", data: data.slice(0, -1), lastEventId: this.lastEventId };
  }
}

// Follows an event stream at `url` with the dashboard's key until `onEvent`
// returns false, the server answers 204, or `signal` aborts. Resolves with
// "done" (onEvent stopped it, or 204), "refused" (an error status, no readable
// body, or too many failed reconnections; the status is passed to onRefused) or
// "aborted". `options.fetch` and `options.delay` exist for tests.
async function followEventStream(url, handlers, options) {
  const opts = options || {};
  const doFetch = opts.fetch || ((u, init) => fetch(u, init));
  const delay = opts.delay || ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  const signal = opts.signal;
  let lastEventId = opts.lastEventId || "";
  let retryMs = RECONNECT_MIN_MS;
  let failures = 0;
  const refused = (status) => {
    if (handlers.onRefused) handlers.onRefused(status);
    return "refused";
  };
  if (typeof ReadableStream === "undefined" || typeof TextDecoder === "undefined") return refused(0);
  for (;;) {
    if (signal && signal.aborted) return "aborted";
    const headers = { Accept: "text/event-stream" };
    const key = localStorage.getItem(KEY_STORAGE);
    if (key) headers.Authorization = "Bearer " + key;
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    let resp = null;
    try {
      resp = await doFetch(url, { headers, cache: "no-store", signal });
    } catch (_) {
      if (signal && signal.aborted) return "aborted";
    }
    if (resp) {
      if (resp.status === 204) return "done";
      const type = resp.headers.get("Content-Type") || "";
      if (!resp.ok || !type.startsWith("text/event-stream")) return refused(resp.status);
      if (!resp.body || typeof resp.body.getReader !== "function") return refused(resp.status);
      const parser = new EventStreamParser(lastEventId);
      const decoder = new TextDecoder();
      const reader = resp.body.getReader();
      if (handlers.onOpen) handlers.onOpen();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const ev of parser.feed(decoder.decode(value, { stream: true }))) {
            failures = 0;
            if (handlers.onEvent(ev) === false) {
              reader.cancel().catch(() => {});
              return "done";
            }
          }
          lastEventId = parser.lastEventId;
        }
      } catch (_) {
        if (signal && signal.aborted) return "aborted";
      }
      // A connection's unfinished event is discarded (the standard's rule),
      // its id with it: only dispatched ids count for the reconnection.
      lastEventId = parser.lastEventId;
      if (parser.retry !== null) retryMs = Math.max(parser.retry, 100);
    }
    failures += 1;
    if (failures > RECONNECT_ATTEMPTS) return refused(resp ? resp.status : 0);
    const wait = Math.min(RECONNECT_MAX_MS, retryMs * 2 ** (failures - 1));
    if (handlers.onReconnect) handlers.onReconnect(wait, lastEventId);
    await delay(wait);
  }
}

// ---- the job view ------------------------------------------------------------

// The job followed now: { id, abort, job (its JSON from the one GET), phases
// (name -> { started, finished }), order (phase names as they arrived), last
// (the last event's data) }.
let followedJob = null;

function progressUnit(job, phase) {
  if (!job || job.kind !== "recompute") return "";
  if (phase === "ingest") return "sources";
  if (phase === "compute") return job.scope && typeof job.scope === "object" && job.scope.ranges ? "buckets" : "metrics";
  return "";
}

function scopeInWords(scope) {
  if (scope === "all" || scope == null) return "all metrics";
  if (Array.isArray(scope)) return scope.join(", ");
  const parts = [];
  if (scope.metrics) parts.push(scopeInWords(scope.metrics) + " (incremental)");
  for (const [metric, ranges] of Object.entries(scope.ranges || {})) {
    parts.push(metric + " " + ranges.map((r) => when(r.from) + " → " + when(r.to)).join(", "));
  }
  return parts.join("; ");
}


function renderJob() {
  const f = followedJob;
  if (!f) return;
  const job = f.job || {};
  const last = f.last || { state: job.state, phase: job.phase, progress: job.progress };
  const box = $("job-live");
  box.dataset.state = last.state || "";
  box.dataset.phase = last.phase || "";
  $("job-title").textContent = (job.kind || "job") + " " + f.id;
  $("job-summary").replaceChildren(...[
    el("strong", { class: "job-state job-" + last.state }, last.state || "…"),
    last.phase ? [" · phase ", el("strong", {}, last.phase)] : null,
    job.trigger ? " · " + job.trigger : null,
    job.scope !== undefined ? " · " + scopeInWords(job.scope) : null,
    job.created_at ? [" · created ", el("span", { title: when(job.created_at) }, ago(job.created_at))] : null,
  ].flat().filter((c) => c !== null));
  const p = last.progress;
  const unit = progressUnit(job, last.phase);
  const bar = progressBar(p);
  if (bar && unit) bar.lastChild.textContent += " " + unit;
  $("job-progress").replaceChildren(...(bar ? [bar] : []));
  $("job-phases").replaceChildren(...f.order.map((name) => {
    const ph = f.phases[name];
    return el("li", { class: ph.finished ? "done" : "running", "data-phase": name },
      name, " ", el("small", {}, ph.finished
        ? phaseTook((Date.parse(ph.finished) - Date.parse(ph.started)) / 1000)
          + (ph.total ? " · " + ph.total + (progressUnit(job, name) ? " " + progressUnit(job, name) : "") : "")
        : "running"));
  }));
  const error = job.error || null;
  $("job-error").hidden = !error;
  $("job-error").textContent = error || "";
}

// Applies one event's data to the view: a new phase closes the one before it;
// the final state's whole job gives each phase its exact timings.
function noteEvent(data) {
  const f = followedJob;
  const at = data.at || new Date().toISOString();
  const current = f.order.length ? f.order[f.order.length - 1] : null;
  if (data.phase && data.phase !== current) {
    if (current && !f.phases[current].finished) f.phases[current].finished = at;
    f.order.push(data.phase);
    f.phases[data.phase] = { started: at, finished: null, total: 0 };
  }
  if (data.phase && data.progress) f.phases[data.phase].total = data.progress.total;
  if (jobEnded(data.state) && data.phase && !f.phases[data.phase].finished) f.phases[data.phase].finished = at;
  if (data.job) {
    f.job = data.job;
    for (const ph of data.job.phases || []) {
      if (!f.phases[ph.name]) {
        f.order.push(ph.name);
        f.phases[ph.name] = { total: 0 };
      }
      f.phases[ph.name].started = ph.started_at;
      f.phases[ph.name].finished = ph.finished_at || f.phases[ph.name].finished;
    }
  } else if (f.job && data.state) {
    f.job.state = data.state;
  }
  f.last = data;
  renderJob();
}

function jobEnded(state) {
  return state === "succeeded" || state === "failed" || state === "cancelled";
}

function setSource(source, words) {
  $("job-live").dataset.source = source;
  $("job-follow").textContent = words;
}

// The fallback: the job's JSON every POLL_MS until it ends.
async function pollJob(f, why) {
  setSource("poll", "Polling every " + POLL_MS / 1000 + " s: " + why + ".");
  while (followedJob === f && !f.abort.signal.aborted) {
    let job;
    try {
      job = await api("GET", "/api/jobs/" + encodeURIComponent(f.id));
    } catch (err) {
      setSource("poll", "Could not read the job: " + err.message);
      return;
    }
    f.job = job;
    f.order = [];
    f.phases = {};
    for (const ph of job.phases || []) {
      f.order.push(ph.name);
      f.phases[ph.name] = { started: ph.started_at, finished: ph.finished_at, total: 0 };
    }
    f.last = { state: job.state, phase: job.phase, progress: job.progress };
    renderJob();
    if (jobEnded(job.state)) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function openJob(id) {
  if (followedJob && followedJob.id === id) return;
  if (followedJob) followedJob.abort.abort();
  const f = { id, abort: new AbortController(), job: null, phases: {}, order: [], last: null };
  followedJob = f;
  setSource("", "");
  $("job-phases").replaceChildren();
  $("job-progress").replaceChildren();
  $("job-summary").replaceChildren("…");
  // Once, for what the events do not carry (kind, trigger, scope, created).
  try {
    f.job = await api("GET", "/api/jobs/" + encodeURIComponent(id));
  } catch (err) {
    // The view stays on this id (no retry every refresh): an unknown or
    // expired job will not come back; reloading the page tries again.
    if (followedJob === f) $("job-summary").replaceChildren(el("span", { class: "unavailable" }, err.message));
    return;
  }
  if (followedJob !== f) return;
  renderJob();
  setSource("stream", "Following live.");
  const outcome = await followEventStream("/api/jobs/" + encodeURIComponent(id) + "/events", {
    onOpen: () => setSource("stream", "Following live."),
    onEvent: (ev) => {
      if (followedJob !== f) return false;
      let data;
      try { data = JSON.parse(ev.data); } catch (_) { return true; }
      noteEvent(data);
      if (jobEnded(data.state)) {
        setSource("stream", "Followed live to the end.");
        return false;
      }
      return true;
    },
    onReconnect: (wait) => setSource("stream", "Connection lost; reconnecting in " + Math.round(wait / 1000) + " s."),
  }, { signal: f.abort.signal });
  if (followedJob !== f) return;
  if (outcome === "refused") {
    pollJob(f, "the daemon refused the event stream");
  } else if (outcome === "done" && !(f.last && jobEnded(f.last.state))) {
    // 204: it had ended before we looked; show how.
    pollJob(f, "the job had ended");
  }
}

function loadJobView(id) {
  if (!id) return;
  openJob(id);
}

window.addEventListener("hashchange", () => {
  if (followedJob && location.hash !== "#job/" + followedJob.id) {
    followedJob.abort.abort();
    followedJob = null;
  }
});

registerView("job", loadJobView);
