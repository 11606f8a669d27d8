// The heartbeat detail view (#heartbeat/<id>): the heartbeat's state, a
// timeline of its pings, runs and status changes over the last 24 hours or the
// last 30 days, its runs with their durations (start to finish, `?rid=` runs
// included), its pings with their bodies, and its status changes.
// The timeline is SVG built through the DOM (the page's CSP allows no inline
// script or style); pings and flips come from
// GET /api/heartbeats/{id}/pings|flips?since=, so a day's view reads a day.
// Uses app.js's helpers (api, el, $, timeEl, durationInWords, minutes, when,
// pingUrl, listOf, withheldLabels); app.js calls loadHeartbeatDetail(id) while
// the view is shown.
"use strict";

const HB_RANGES = {
  day: { label: "Last 24 hours", seconds: 86400 },
  month: { label: "Last 30 days", seconds: 30 * 86400 },
};
// Rows in the ping table; the timeline draws every ping of the range.
const HB_PING_ROWS = 50;
// The history changes with each ping; reread it now and then, not on every poll.
const HB_DETAIL_POLL_MS = 10000;
const SVG_NS = "http://www.w3.org/2000/svg";
const TIMELINE_WIDTH = 1000;

let hbRange = "day";
let hbShown = { key: "", at: 0 };
let hbPings = [];
let hbOpenPing = null;

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

// A run's length in words; under ten seconds to a tenth of a second, since
// short jobs are common and "0 seconds" says nothing.
function runDuration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 10000) return (Math.round(ms / 100) / 10) + " seconds";
  return durationInWords(ms / 1000);
}

// A ping's result, as its kind and exit code say. An ignored ping (`ign`: the
// heartbeat takes only POST pings, docs/healthchecks-compat.md) keeps its exit
// code but changed nothing, so it is shown as ignored, not as a failure.
function pingResult(p) {
  if (p.kind === "ign") return "ign";
  if (p.exit_code !== null && p.exit_code !== undefined && p.exit_code !== 0) return "fail (exit " + p.exit_code + ")";
  return p.event ? p.kind + " (" + p.event.replace("_", " ") + ")" : p.kind;
}

// Finished runs from the pings (a finish carries its time since the matching
// start), newest first, then the runs still open.
function runsOf(pings, hb) {
  const runs = pings.filter((p) => p.duration_ms !== null && p.duration_ms !== undefined).map((p) => ({
    seq: p.seq,
    started_at: new Date(Date.parse(p.at) - p.duration_ms).toISOString(),
    finished_at: p.at,
    duration_ms: p.duration_ms,
    result: pingResult(p),
    ok: p.kind === "success" && !p.event,
    rid: p.rid,
  }));
  const open = (hb.open_runs || []).map((r) => ({
    started_at: r.started_at, finished_at: null, duration_ms: Date.now() - Date.parse(r.started_at),
    result: "running", ok: true, rid: r.rid,
  }));
  return [...open, ...runs];
}

// The stored status over [from, to] as segments, from the flips of the range
// (newest first); before the first one, the status it left.
function statusSegments(flips, hb, from, to) {
  const asc = [...flips].reverse();
  const now = hb.status === "late" ? "up" : hb.status;
  let status = asc.length ? asc[0].from : now;
  let start = from;
  const out = [];
  for (const f of asc) {
    const at = Date.parse(f.at);
    if (at > start) out.push({ status, from: start, to: at });
    status = f.to;
    start = Math.max(start, at);
  }
  out.push({ status, from: start, to });
  return out;
}

function timeline(hb, pings, flips, runs, from, to) {
  const x = (t) => Math.max(0, Math.min(TIMELINE_WIDTH, (t - from) / (to - from) * TIMELINE_WIDTH));
  const tip = (text) => svg("title", {}, text);
  const band = statusSegments(flips, hb, from, to).map((s) => svg("rect", {
    class: "tl-status tl-" + s.status, x: x(s.from), y: 0, width: Math.max(0.5, x(s.to) - x(s.from)), height: 12,
    "data-status": s.status,
  }, tip(s.status + " from " + when(new Date(s.from).toISOString()) + " to " + when(new Date(s.to).toISOString()))));
  const runBars = runs.map((r) => {
    const a = x(Date.parse(r.started_at));
    const b = r.finished_at ? x(Date.parse(r.finished_at)) : TIMELINE_WIDTH;
    return svg("rect", {
      class: "tl-run" + (r.ok ? "" : " tl-run-failed") + (r.finished_at ? "" : " tl-run-open"),
      x: a, y: 20, width: Math.max(2, b - a), height: 12,
    }, tip("run " + r.result + ", " + runDuration(r.duration_ms) + ", started " + when(r.started_at)));
  });
  const marks = pings.map((p) => svg("rect", {
    class: "tl-ping tl-" + (pingResult(p) === p.kind ? p.kind : "fail"),
    x: x(Date.parse(p.at)) - 1.5, y: 38, width: 3, height: 16,
    "data-seq": p.seq,
    onclick: () => showPingBody(p),
  }, tip(pingResult(p) + " · " + when(p.at) + (p.body ? " · has a body (click)" : ""))));
  const flipMarks = flips.map((f) => svg("line", {
    class: "tl-flip tl-" + f.to, x1: x(Date.parse(f.at)), x2: x(Date.parse(f.at)), y1: 0, y2: 56,
  }, tip(f.from + " → " + f.to + (f.cause ? " (" + f.cause + ")" : "") + " · " + when(f.at))));
  const chart = svg("svg", {
    viewBox: "0 0 " + TIMELINE_WIDTH + " 56", preserveAspectRatio: "none", class: "tl-chart", id: "hb-timeline-svg",
    role: "img", "aria-label": pings.length + " pings and " + flips.length + " status changes",
  }, ...band, ...runBars, ...flipMarks, ...marks);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const iso = new Date(from + f * (to - from)).toISOString();
    return el("span", {}, f === 1 ? "now" : timeEl(iso));
  });
  return [
    el("div", { class: "tl-lanes" }, el("span", {}, "status"), el("span", {}, "runs"), el("span", {}, "pings")),
    el("div", { class: "tl-body" }, chart, el("div", { class: "tl-axis" }, ...ticks)),
  ];
}

function showPingBody(p) {
  hbOpenPing = p.seq;
  const box = $("hb-ping-body");
  box.hidden = false;
  box.dataset.seq = p.seq;
  $("hb-ping-body-title").replaceChildren("Ping #" + p.seq + ", " + pingResult(p) + ", ", timeEl(p.at),
    p.source ? " from " + p.source : "");
  // textContent: a body is whatever the pinging job printed, never markup.
  $("hb-ping-body-text").textContent = p.body || "(no body)";
  for (const row of document.querySelectorAll("#hb-pings tr")) row.classList.toggle("selected", row.dataset.seq === String(p.seq));
}

async function loadHeartbeatDetail(id) {
  const key = id + " " + hbRange;
  if (hbShown.key === key && Date.now() - hbShown.at < HB_DETAIL_POLL_MS) return;
  if (hbShown.key.split(" ")[0] !== id) {
    hbOpenPing = null;
    $("hb-ping-body").hidden = true;
  }
  // A newer load (another range, another heartbeat) supersedes this one: its
  // answers, if they come later, must not overwrite the newer ones.
  const mine = hbShown = { key, at: Date.now() };
  const path = "/api/heartbeats/" + encodeURIComponent(id);
  const detail = $("hb-detail");
  let hb;
  try {
    hb = await api("GET", path);
  } catch (err) {
    if (hbShown === mine) detail.replaceChildren(el("p", { class: "unavailable" }, err.message));
    return;
  }
  if (hbShown !== mine) return;
  $("hb-detail-name").textContent = hb.name;
  detail.replaceChildren(
    el("p", {}, el("span", { class: "status-label status-" + hb.status }, hb.status), ...withheldLabels(hb),
      // For an up heartbeat the API's status_since is its last success, which
      // the status changes below say better.
      hb.status_since && hb.status !== "up" ? [" since ", timeEl(hb.status_since)] : "",
      " · last ping ", timeEl(hb.last_ping_at),
      hb.next_deadline ? [" · down ", timeEl(hb.next_deadline), " unless pinged"] : ""),
    el("p", {}, hb.schedule ? "Schedule " + hb.schedule + " (" + hb.tz + ")" : "Every " + minutes(hb.period_seconds),
      " · grace " + minutes(hb.grace_seconds),
      hb.max_runtime_seconds ? " · a run may take " + minutes(hb.max_runtime_seconds) : ""),
    el("div", { class: "copy-row" }, el("code", { id: "detail-url" }, pingUrl(hb)),
      el("button", { type: "button", "data-copy": "detail-url" }, "Copy")),
  );
  if (typeof showDetection === "function") showDetection(hb, path); // detection.js
  const to = Date.now();
  const from = to - HB_RANGES[hbRange].seconds * 1000;
  const since = "?since=" + encodeURIComponent(new Date(from).toISOString());
  const [pings, flips] = await Promise.all([
    api("GET", path + "/pings" + since).catch((e) => e),
    api("GET", path + "/flips" + since).catch((e) => e),
  ]);
  if (hbShown !== mine) return;
  for (const b of document.querySelectorAll("#hb-range button")) b.classList.toggle("selected", b.dataset.range === hbRange);
  const problem = [pings, flips].find((r) => r instanceof Error);
  if (problem) {
    $("hb-timeline").replaceChildren(el("p", { class: "unavailable" }, problem.missing ? "Not available" : problem.message));
    return;
  }
  hbPings = listOf(pings, "pings");
  const flipList = listOf(flips, "flips");
  const runs = runsOf(hbPings, hb);
  $("hb-range-note").textContent = hbPings.length + " ping" + (hbPings.length === 1 ? "" : "s") + ", "
    + runs.length + " run" + (runs.length === 1 ? "" : "s") + ", "
    + flipList.length + " status change" + (flipList.length === 1 ? "" : "s") + " in this range";
  $("hb-timeline").replaceChildren(...timeline(hb, hbPings, flipList, runs, from, to));
  $("hb-runs").replaceChildren(...(runs.length ? runs.slice(0, HB_PING_ROWS).map((r) => el("tr", { class: "run-row", "data-result": r.result },
    el("td", {}, timeEl(r.started_at)),
    el("td", {}, r.finished_at ? timeEl(r.finished_at) : el("span", { class: "muted" }, "running")),
    el("td", {}, runDuration(r.duration_ms)),
    el("td", {}, el("span", { class: "job-state " + (r.finished_at ? (r.ok ? "job-succeeded" : "job-failed") : "job-running") }, r.result)),
    el("td", {}, r.rid ? el("code", { title: r.rid }, r.rid.slice(0, 8)) : "")))
    : [el("tr", {}, el("td", { colspan: 5, class: "empty" }, "No timed runs in this range: a run is timed when a start ping precedes its finish."))]));
  $("hb-pings").replaceChildren(...(hbPings.length ? hbPings.slice(0, HB_PING_ROWS).map((p) => el("tr", {
    class: "ping-row" + (p.seq === hbOpenPing ? " selected" : ""), "data-seq": p.seq, "data-kind": p.kind, onclick: () => showPingBody(p),
  },
  el("td", {}, timeEl(p.at)),
  el("td", {}, p.kind),
  el("td", {}, p.exit_code ?? ""),
  el("td", {}, runDuration(p.duration_ms)),
  el("td", { title: p.user_agent || "" }, p.source || ""),
  el("td", {}, p.body ? el("code", { class: "excerpt" }, p.body.length > 80 ? p.body.slice(0, 80) + "…" : p.body) : el("span", { class: "muted" }, "–"))))
    : [el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No pings in this range."))]));
  $("hb-pings-note").textContent = hbPings.length > HB_PING_ROWS ? "The newest " + HB_PING_ROWS + " of " + hbPings.length + "; the timeline shows all." : "";
  $("hb-flips").replaceChildren(...(flipList.length ? flipList.map((f) => el("tr", { class: "flip-row" },
    el("td", {}, timeEl(f.at)),
    el("td", {}, el("span", { class: "status-label status-" + f.from }, f.from)),
    el("td", {}, el("span", { class: "status-label status-" + f.to }, f.to)),
    el("td", {}, f.cause || "", f.withheld ? el("span", { class: "muted" }, " (alert " + f.withheld + ")") : "")))
    : [el("tr", {}, el("td", { colspan: 4, class: "empty" }, "No status changes in this range."))]));
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("#hb-range button")) {
    b.addEventListener("click", () => {
      hbRange = b.dataset.range;
      hbShown = { key: "", at: 0 };
      refreshAll();
    });
  }
});
