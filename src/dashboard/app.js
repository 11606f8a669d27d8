// Heartbeat dashboard: plain JavaScript over the REST API, no dependencies.
// Views are selected by the URL hash; each view polls only what it shows, plus
// the heartbeat list (for the "down" badge) and the active job.
"use strict";

const KEY_STORAGE = "heartbeat.apiKey";
const POLL_MS = 2000;
const COCKPIT_POLL_MS = 15000;
const SPARK_POINTS = 48;

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  // A route this daemon does not serve (its feature is not built in).
  get missing() {
    return this.status === 404 && this.code === "not_found" && /no such route/.test(this.message);
  }
}

// ---- API client -----------------------------------------------------------

let keyPrompt = null;

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const key = localStorage.getItem(KEY_STORAGE);
  if (key) headers.Authorization = "Bearer " + key;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (_) { data = text; }
  }
  if (resp.status === 401) {
    askForKey(key ? "That key was refused." : null);
  }
  if (!resp.ok) {
    const err = data && data.error ? data.error : {};
    throw new ApiError(resp.status, err.code || String(resp.status), err.message || resp.statusText);
  }
  return data;
}

function askForKey(problem) {
  const dialog = $("key-dialog");
  if (keyPrompt) return keyPrompt;
  $("key-error").hidden = !problem;
  $("key-error").textContent = problem || "";
  keyPrompt = new Promise((resolve) => {
    $("key-form").onsubmit = (ev) => {
      ev.preventDefault();
      const key = new FormData(ev.target).get("key").trim();
      if (!key) return;
      localStorage.setItem(KEY_STORAGE, key);
      dialog.close();
      keyPrompt = null;
      updateKeyButton();
      resolve();
      refreshAll();
    };
  });
  if (!dialog.open) dialog.showModal();
  return keyPrompt;
}

function updateKeyButton() {
  $("forget-key").hidden = !localStorage.getItem(KEY_STORAGE);
}

// ---- formatting -----------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function ago(iso) {
  if (!iso) return "never";
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (!isFinite(s)) return "?";
  return age(s) + " ago";
}

// A duration in words, to its two largest units: "1 day", "5 minutes",
// "4 days 22 hours", "45 seconds".
function durationInWords(seconds) {
  let s = Math.max(0, Math.round(seconds));
  const units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  const parts = [];
  for (const [name, size] of units) {
    const n = Math.floor(s / size);
    s -= n * size;
    if (n > 0 || (parts.length === 0 && size === 1)) parts.push(n + " " + name + (n === 1 ? "" : "s"));
    else if (parts.length) break;
    if (parts.length === 2) break;
  }
  return parts.join(" ");
}

function age(seconds) {
  return durationInWords(seconds);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "long" }) : "";
}

// An instant relative to now, past or future: "5 minutes ago", "in 2 hours",
// "3 days 4 hours ago". Seconds are dropped past a minute and minutes past a
// day: the exact time is on hover.
function relative(iso) {
  const s = Math.round((Date.parse(iso) - Date.now()) / 1000);
  if (!isFinite(s)) return "?";
  if (s === 0) return "just now";
  const a = Math.abs(s);
  const words = durationInWords(a >= 86400 ? a - a % 3600 : a >= 60 ? a - a % 60 : a);
  return s > 0 ? "in " + words : words + " ago";
}

// An instant as the dashboard shows it everywhere: relative, with the exact
// time (in the viewer's zone) on hover; `empty` when there is none.
function timeEl(iso, empty) {
  if (!iso) return el("span", { class: "muted" }, empty || "never");
  return el("time", { datetime: iso, title: when(iso) }, relative(iso));
}

function num(v, digits) {
  if (v === null || v === undefined || v === "") return "–";
  const n = Number(v);
  if (!isFinite(n)) return String(v);
  if (digits !== undefined) return n.toFixed(digits);
  return Math.abs(n) >= 1000 ? Math.round(n).toLocaleString() : String(Math.round(n * 100) / 100);
}

// A run's or a phase's duration in words; tenths of a second for short ones,
// which are most phases.
function phaseTook(seconds) {
  if (!isFinite(seconds)) return "";
  return seconds < 10 ? seconds.toFixed(1) + " seconds" : durationInWords(seconds);
}

// How long a job or phase ran, from its two instants; "" while it runs.
function tookBetween(started, finished) {
  return started && finished ? phaseTook((Date.parse(finished) - Date.parse(started)) / 1000) : "";
}

function minutes(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return durationInWords(seconds);
}

function showUnavailable(id, err) {
  const p = $(id);
  p.hidden = false;
  p.textContent = err.missing
    ? "Not available: this daemon does not serve this API."
    : "Could not load: " + err.message;
}

function listOf(data, field) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data[field])) return data[field];
  return [];
}

// ---- heartbeats -----------------------------------------------------------

let heartbeats = [];

function pingUrl(hb) {
  if (hb.ping_url) return hb.ping_url;
  return location.origin + "/hb/" + (hb.token || "");
}

function curlLine(hb) {
  return hb.curl || "curl -fsS -m 10 --retry 5 -o /dev/null " + pingUrl(hb);
}

function cronLine(hb) {
  if (hb.crontab) return hb.crontab;
  const m = Math.max(1, Math.round((hb.period_seconds || 3600) / 60));
  const spec = m < 60 && 60 % m === 0 ? "*/" + m + " * * * *" : m === 1440 ? "0 3 * * *" : "0 * * * *";
  return spec + " /path/to/your-job.sh && " + curlLine(hb);
}

async function loadHeartbeats() {
  let data;
  try {
    data = await api("GET", "/api/heartbeats");
  } catch (err) {
    showUnavailable("heartbeats-unavailable", err);
    $("heartbeats-table").hidden = true;
    $("new-heartbeat-btn").disabled = err.missing;
    return;
  }
  $("heartbeats-unavailable").hidden = true;
  $("heartbeats-table").hidden = false;
  $("new-heartbeat-btn").disabled = false;
  heartbeats = listOf(data, "heartbeats");
  const down = heartbeats.filter((h) => h.status === "down").length;
  $("down-badge").textContent = down;
  $("down-badge").hidden = down === 0;
  document.title = (down ? "(" + down + " down) " : "") + "Heartbeat";
  renderHeartbeats();
}

// The daemon's own job:* heartbeats get their own section: an operator sees
// them beside their own, and they can only be paused.
function renderHeartbeats() {
  const own = heartbeats.filter((hb) => !hb.job);
  const jobs = heartbeats.filter((hb) => hb.job);
  $("heartbeats-body").replaceChildren(...own.map((hb) => heartbeatRow(hb, true)));
  $("job-heartbeats-body").replaceChildren(...jobs.map((hb) => heartbeatRow(hb, false)));
  $("job-heartbeats").hidden = jobs.length === 0;
  $("heartbeats-empty").hidden = own.length > 0;
  if (typeof filterByTag === "function") filterByTag(heartbeats); // tags.js
}

function heartbeatRow(hb, editable) {
  return el("tr", { "data-id": hb.id, "data-status": hb.status, class: "hb-row" },
    el("td", {}, el("span", { class: "dot status-" + hb.status, title: hb.status })),
    el("td", {}, el("a", { href: "#heartbeat/" + encodeURIComponent(hb.id) }, hb.name)),
    el("td", {}, el("span", { class: "status-label status-" + hb.status }, hb.status), ...withheldLabels(hb)),
    el("td", {}, hb.schedule ? scheduleCell(hb) : minutes(hb.period_seconds)),
    el("td", {}, minutes(hb.grace_seconds)),
    el("td", {}, timeEl(hb.last_ping_at)),
    el("td", { class: "row-actions" },
      el("button", { type: "button", class: "secondary", onclick: () => togglePause(hb) }, hb.paused || hb.status === "paused" ? "Resume" : "Pause"),
      ...(editable ? [
        el("button", { type: "button", class: "secondary", onclick: () => editHeartbeat(hb) }, "Edit"),
        el("button", { type: "button", class: "danger", onclick: () => deleteHeartbeat(hb) }, "Delete")] : [])),
  );
}

// A cron schedule in words (schedule.js's cronInWords), the expression on hover.
function scheduleCell(hb) {
  const zone = hb.tz ? " (" + hb.tz + ")" : "";
  const words = typeof cronInWords === "function" ? cronInWords(hb.schedule) : hb.schedule;
  return el("span", { title: hb.schedule + zone }, words + zone);
}

// A silenced heartbeat, or one whose down alert a silence or a down parent
// holds back, says so beside its status: its flips are recorded, no alert goes
// out (docs/monitoring.md, "Silences", "Dependencies").
function withheldLabels(hb) {
  const out = [];
  if (hb.silenced_until) {
    out.push(el("span", { class: "status-label status-silenced", title: "silenced until " + when(hb.silenced_until) }, "silenced"));
  }
  if (hb.alert_withheld === "suppressed") {
    out.push(el("span", { class: "status-label status-silenced", title: "alert withheld: a parent is down" }, "suppressed"));
  }
  return out;
}

function openForm(hb) {
  const form = $("heartbeat-form");
  form.hidden = false;
  $("created").hidden = true;
  $("heartbeat-form-error").hidden = true;
  $("heartbeat-form-title").textContent = hb ? "Edit " + hb.name : "New heartbeat";
  form.elements.id.value = hb ? hb.id : "";
  form.elements.name.value = hb ? hb.name : "";
  form.elements.period_minutes.value = hb ? Math.round((hb.period_seconds || 3600) / 60) : 60;
  form.elements.grace_minutes.value = hb ? Math.round((hb.grace_seconds || 0) / 60) : 5;
  form.elements.name.focus();
  if (typeof fillChannelPicker === "function") fillChannelPicker(hb); // channels.js
}

function editHeartbeat(hb) {
  openForm(hb);
}

async function saveHeartbeat(ev) {
  ev.preventDefault();
  const f = ev.target.elements;
  const body = {
    name: f.name.value.trim(),
    period_seconds: Math.round(Number(f.period_minutes.value) * 60),
    grace_seconds: Math.round(Number(f.grace_minutes.value) * 60),
  };
  const routing = typeof pickedChannels === "function" ? pickedChannels() : undefined; // channels.js
  if (routing !== undefined) body.channels = routing;
  const id = f.id.value;
  try {
    const hb = id
      ? await api("PATCH", "/api/heartbeats/" + encodeURIComponent(id), body)
      : await api("POST", "/api/heartbeats", body);
    ev.target.hidden = true;
    if (!id) showCreated(hb);
    await loadHeartbeats();
  } catch (err) {
    $("heartbeat-form-error").hidden = false;
    $("heartbeat-form-error").textContent = err.message;
  }
}

function showCreated(hb) {
  $("created").hidden = false;
  $("created-name").textContent = hb.name;
  $("created-url").textContent = pingUrl(hb);
  $("created-curl").textContent = curlLine(hb);
  $("created-cron").textContent = cronLine(hb);
}

async function togglePause(hb) {
  const paused = !(hb.paused || hb.status === "paused");
  try {
    await api("PATCH", "/api/heartbeats/" + encodeURIComponent(hb.id), { paused });
  } catch (err) {
    alert(err.message);
  }
  loadHeartbeats();
}

async function deleteHeartbeat(hb) {
  if (!confirm("Delete heartbeat “" + hb.name + "” and its history?")) return;
  try {
    await api("DELETE", "/api/heartbeats/" + encodeURIComponent(hb.id));
  } catch (err) {
    alert(err.message);
  }
  loadHeartbeats();
}

// The detail view (#heartbeat/<id>) is heartbeat_detail.js's loadHeartbeatDetail.

// ---- cockpit --------------------------------------------------------------

function sparkline(values) {
  const pts = values.filter((v) => v !== null && v !== undefined && isFinite(v));
  const w = 120, h = 28;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 " + w + " " + h);
  svg.setAttribute("class", "spark");
  if (pts.length < 2) return svg;
  const min = Math.min(...pts), max = Math.max(...pts);
  const span = max - min || 1;
  const d = pts.map((v, i) => (i ? "L" : "M") + (i * w / (pts.length - 1)).toFixed(1) + "," + (h - 2 - (v - min) / span * (h - 4)).toFixed(1)).join(" ");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", d);
  svg.append(path);
  return svg;
}

async function loadCockpit() {
  let data;
  try {
    data = await api("GET", "/api/metrics");
  } catch (err) {
    showUnavailable("cockpit-unavailable", err);
    return;
  }
  $("cockpit-unavailable").hidden = true;
  const metrics = listOf(data, "metrics");
  const series = await Promise.all(metrics.map((m) =>
    api("GET", "/api/metrics/" + encodeURIComponent(m.id) + "/values").then((s) => listOf(s, "values").slice(-SPARK_POINTS).map((p) => p.value)).catch(() => [])));
  $("metrics").replaceChildren(...metrics.map((m, i) => el("div", { class: "card metric band-" + (m.band || "none"), "data-metric": m.id },
    el("div", { class: "metric-title", title: m.description || "" }, m.title || m.id),
    el("div", { class: "metric-value" }, num(m.latest_value)),
    sparkline(series[i]),
    el("div", { class: "metric-stats" },
      "μ ", num(m.mean), " · σ ", num(m.stddev), " · z ", m.z == null ? "–" : num(m.z, 2)),
    el("div", { class: "metric-meta" }, m.kind + " · " + m.grain, m.latest_bucket ? [" · latest bucket ", timeEl(m.latest_bucket)] : ""),
  )));
  if (metrics.length === 0) $("metrics").replaceChildren(el("p", { class: "empty" }, "No metrics yet."));
}

// ---- jobs -----------------------------------------------------------------

function progressBar(p) {
  if (!p || !p.total) return null;
  const pct = Math.min(100, Math.round(p.done / p.total * 100));
  const fill = el("div", { class: "progress-fill" });
  fill.style.width = pct + "%"; // CSSOM, which the page's CSP allows (style attributes it does not)
  return el("div", { class: "progress", title: p.done + " / " + p.total }, fill, el("span", {}, p.done + " / " + p.total));
}

function phaseList(job) {
  return el("ol", { class: "phases" }, (job.phases || []).map((ph) => el("li", { class: ph.finished_at ? "done" : "running", "data-phase": ph.name },
    ph.name, " ", el("small", {}, ph.finished_at ? tookBetween(ph.started_at, ph.finished_at) : "running"))));
}

async function loadActiveJob() {
  let data;
  try {
    data = await api("GET", "/api/metrics/active-job");
  } catch (err) {
    $("active-job").replaceChildren(el("p", { class: "unavailable" }, err.message));
    return;
  }
  const job = data && data.job;
  $("job-indicator").hidden = !job;
  const box = $("active-job");
  box.dataset.state = job ? job.state : "idle";
  box.dataset.phase = job && job.phase ? job.phase : "";
  if (!job) {
    box.replaceChildren(el("p", { class: "muted" }, "No recompute running."));
    return;
  }
  box.replaceChildren(...[
    el("p", {}, el("strong", {}, "Recompute " + job.state), " · phase ", el("strong", { id: "active-phase" }, job.phase || "–"),
      " · ", job.trigger, " · started ", ago(job.started_at || job.created_at),
      " · ", el("a", { href: "#job/" + job.job_id }, "follow live")),
    progressBar(job.progress),
    phaseList(job),
    data.queued ? el("p", { class: "muted" }, "A follow-up is queued.") : null,
  ].filter(Boolean));
}

async function loadJobs() {
  let data;
  try {
    data = await api("GET", "/api/jobs?limit=20");
  } catch (err) {
    $("jobs-body").replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "unavailable" }, err.message)));
    return;
  }
  $("jobs-body").replaceChildren(...listOf(data, "jobs").map((j) => el("tr", { "data-job": j.job_id, "data-state": j.state },
    el("td", { title: j.job_id }, el("a", { href: "#job/" + j.job_id }, timeEl(j.created_at))),
    el("td", {}, j.kind),
    el("td", {}, j.trigger),
    el("td", {}, el("span", { class: "job-state job-" + j.state }, j.state)),
    el("td", {}, (j.phases || []).map((p) => p.name).join(" → ")),
    el("td", { class: "took" }, tookBetween(j.started_at, j.finished_at)),
    el("td", { class: "error" }, j.error || ""))));
}

async function recompute() {
  const note = $("recompute-result");
  note.hidden = false;
  try {
    const r = await api("POST", "/api/metrics/recompute", { metric_ids: "all", trigger: "user" });
    note.dataset.coalesced = r.coalesced;
    note.textContent = r.coalesced
      ? "Coalesced: the running job " + r.job_id + " already covers this."
      : r.queued
        ? "Queued job " + r.job_id + " to run after the current one."
        : "Started job " + r.job_id + ".";
    note.append(" ", el("a", { href: "#job/" + r.job_id, id: "recompute-follow" }, "Follow it live"));
  } catch (err) {
    note.textContent = "Could not start: " + err.message;
  }
  loadActiveJob();
  loadJobs();
}

// ---- audit cuts -----------------------------------------------------------

async function loadCuts() {
  let data;
  try {
    data = await api("GET", "/api/audit/cuts");
  } catch (err) {
    showUnavailable("audit-unavailable", err);
    return;
  }
  $("audit-unavailable").hidden = true;
  $("cuts-body").replaceChildren(...listOf(data, "cuts").map((c) => el("tr", {},
    el("td", {}, el("code", {}, c.cut_id)),
    el("td", { title: c.description || "" }, c.title),
    el("td", {}, (c.windows || []).map((w) => el("button", {
      type: "button", class: "secondary window" + (w.stale ? " stale" : ""),
      onclick: () => loadCut(c.cut_id, w.window),
      title: w.computed_at ? "computed " + when(w.computed_at) + (w.stale ? " (cut changed since)" : "") : "awaiting its first refresh",
    }, w.window, " ", el("small", {}, w.age_seconds != null ? age(w.age_seconds) + " old" : "pending")))))));
}

async function loadCut(cutId, window) {
  const box = $("cut-detail");
  box.hidden = false;
  try {
    const s = await api("GET", "/api/audit/cuts/" + encodeURIComponent(cutId) + "?window=" + encodeURIComponent(window));
    const cols = s.columns || [];
    const rows = Array.isArray(s.rows) ? s.rows : [];
    box.replaceChildren(
      el("h3", {}, s.title + " · " + s.window),
      el("p", { class: "muted" }, rows.length + " rows · computed ", timeEl(s.computed_at), s.stale ? " · the cut changed since" : ""),
      el("div", { class: "scroll" }, el("table", {},
        el("thead", {}, el("tr", {}, cols.map((c) => el("th", {}, c)))),
        el("tbody", {}, rows.map((r) => el("tr", {}, cols.map((c, i) => {
          const v = Array.isArray(r) ? r[i] : r[c];
          return el("td", {}, v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : v);
        })))))));
  } catch (err) {
    box.replaceChildren(el("p", { class: "unavailable" }, err.message));
  }
}

// ---- views and polling ----------------------------------------------------

// Views other scripts add (schedule.js...): name -> loader run on each refresh.
const extraViews = {};

function registerView(name, load) {
  extraViews[name] = load;
}

let view = "heartbeats";
let detailId = null;
let lastCockpit = 0;

function route() {
  const hash = decodeURIComponent(location.hash.replace(/^#/, ""));
  detailId = null;
  const slash = hash.indexOf("/");
  if (hash.startsWith("heartbeat/")) {
    view = "heartbeat";
    detailId = hash.slice("heartbeat/".length);
  } else if (slash > 0 && extraViews[hash.slice(0, slash)]) {
    // A view of one thing (job/<id>): its loader gets the id.
    view = hash.slice(0, slash);
    detailId = hash.slice(slash + 1);
  } else {
    view = ["heartbeats", "cockpit", "jobs", "audit", ...Object.keys(extraViews)].includes(hash) ? hash : "heartbeats";
  }
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== "view-" + view;
  for (const a of document.querySelectorAll("#sidebar a")) a.classList.toggle("active", a.dataset.view === (view === "heartbeat" ? "heartbeats" : view));
  lastCockpit = 0;
  refreshAll();
}

async function refreshAll() {
  const work = [loadHeartbeats(), loadActiveJob()];
  if (view === "heartbeat" && detailId) work.push(loadHeartbeatDetail(detailId));
  if (view === "jobs") work.push(loadJobs());
  if (view === "audit") work.push(loadCuts());
  if (extraViews[view]) work.push(extraViews[view](detailId));
  if (view === "cockpit" && Date.now() - lastCockpit > COCKPIT_POLL_MS) {
    lastCockpit = Date.now();
    work.push(loadCockpit());
  }
  await Promise.allSettled(work);
  $("clock").textContent = "updated " + new Date().toLocaleTimeString();
}

function copyFrom(id, button) {
  const text = $(id).textContent;
  const done = () => { button.textContent = "Copied"; setTimeout(() => { button.textContent = "Copy"; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => selectText(id));
  } else {
    selectText(id);
    try { document.execCommand("copy"); done(); } catch (_) { /* the text stays selected */ }
  }
}

function selectText(id) {
  const range = document.createRange();
  range.selectNodeContents($(id));
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
}

document.addEventListener("DOMContentLoaded", () => {
  $("new-heartbeat-btn").addEventListener("click", () => openForm(null));
  $("heartbeat-cancel").addEventListener("click", () => { $("heartbeat-form").hidden = true; });
  $("heartbeat-form").addEventListener("submit", saveHeartbeat);
  $("created-close").addEventListener("click", () => { $("created").hidden = true; });
  $("recompute-btn").addEventListener("click", recompute);
  $("forget-key").addEventListener("click", () => { localStorage.removeItem(KEY_STORAGE); updateKeyButton(); refreshAll(); });
  document.body.addEventListener("click", (ev) => {
    const target = ev.target.closest("[data-copy]");
    if (target) copyFrom(target.dataset.copy, target);
  });
  window.addEventListener("hashchange", route);
  updateKeyButton();
  route();
  setInterval(() => { if (!document.hidden) refreshAll(); }, POLL_MS);
});
