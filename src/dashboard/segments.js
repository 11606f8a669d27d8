// The segments view: one day's client tier snapshot (GET /api/segments) with the
// count per tier, a page of each tier's clients by rank, and a client's tier
// history (GET /api/segments/{client_id}). The day defaults to the newest
// snapshot; a date picker and previous / next buttons move to another day.
// Uses app.js's helpers (api, el, $, timeEl, registerView); it registers itself
// as the "segments" view.
"use strict";

const SEGMENT_TIERS = ["top", "mid", "micro"];
const SEGMENT_PAGE = 25;
// A snapshot changes once a day: reread it now and then, not on every poll.
const SEGMENTS_POLL_MS = 30000;

const segState = { date: null, tier: "top", offset: 0, client: null };
let segShown = { key: "", at: 0 };

function segKey() {
  return JSON.stringify(segState);
}

function segQuery() {
  const q = new URLSearchParams({ tier: segState.tier, limit: SEGMENT_PAGE, offset: segState.offset });
  if (segState.date) q.set("date", segState.date);
  return "/api/segments?" + q;
}

// `YYYY-MM-DD` moved by `days`, in plain calendar arithmetic (no zone involved).
function shiftDate(date, days) {
  const d = new Date(date + "T00:00:00Z");
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

async function loadSegments(force) {
  if (!force && segShown.key === segKey() && Date.now() - segShown.at < SEGMENTS_POLL_MS) return;
  // A newer load (another day, tier or page) supersedes this one: its answer,
  // if it comes later, must not overwrite the newer one.
  const mine = segShown = { key: segKey(), at: Date.now() };
  let day;
  try {
    day = await api("GET", segQuery());
  } catch (err) {
    if (segShown !== mine) return;
    showSegmentsProblem(err);
    await loadClientHistory(mine);
    return;
  }
  if (segShown !== mine) return;
  $("segments-unavailable").hidden = true;
  $("segments-empty").hidden = true;
  $("segments-day").hidden = false;
  if (document.activeElement !== $("segments-date")) $("segments-date").value = day.date;
  $("segments-meta").replaceChildren(
    "Snapshot of ", el("strong", { id: "segments-shown-date" }, day.date),
    " · computed ", timeEl(day.computed_at),
    " · ", day.total + " client" + (day.total === 1 ? "" : "s"),
    day.window_days ? " · activity over " + durationInWords(day.window_days * 86400) : "");
  $("segments-tiers").replaceChildren(...SEGMENT_TIERS.map((t) => el("button", {
    type: "button",
    class: "tier-card tier-" + t + (t === segState.tier ? " selected" : ""),
    "data-tier": t,
    onclick: () => { segState.tier = t; segState.offset = 0; loadSegments(true); },
  }, el("span", { class: "tier-name" }, t), el("span", { class: "tier-count" }, String(day.counts[t] ?? 0)))));
  const inTier = day.counts[segState.tier] ?? 0;
  $("segments-page-title").textContent = "Tier " + segState.tier + (inTier
    ? ": " + (segState.offset + 1) + "–" + Math.min(segState.offset + SEGMENT_PAGE, inTier) + " of " + inTier
    : ": no clients");
  $("segments-body").replaceChildren(...day.clients.map((c) => el("tr", { class: "segment-row", "data-client": c.client_id },
    el("td", {}, String(c.rank)),
    el("td", {}, el("button", { type: "button", class: "link", onclick: () => showClient(c.client_id) }, c.client_id)),
    el("td", {}, el("span", { class: "tier-label tier-" + c.tier }, c.tier)),
    el("td", {}, num(c.score)))));
  $("segments-prev-page").disabled = segState.offset === 0;
  $("segments-next-page").disabled = segState.offset + SEGMENT_PAGE >= inTier;
  await loadClientHistory(mine);
}

function showSegmentsProblem(err) {
  $("segments-day").hidden = true;
  if (err.status === 404 && err.code === "no_snapshot") {
    const p = $("segments-empty");
    p.hidden = false;
    // The newest snapshot missing means none was ever made; a picked day may
    // just have none.
    p.textContent = segState.date
      ? "No snapshot for " + segState.date + ". Pick another day, or go back to the latest."
      : "No segment snapshot yet. The segments job makes one a day (cron entry \"segments\"); "
        + "the Schedule view's Trigger now button or POST /api/jobs/segments makes one now.";
    $("segments-unavailable").hidden = true;
    return;
  }
  $("segments-empty").hidden = true;
  showUnavailable("segments-unavailable", err);
}

function showClient(id) {
  segState.client = id;
  $("segment-client").value = id;
  loadSegments(true);
}

async function loadClientHistory(mine) {
  const box = $("segment-history");
  if (!segState.client) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  let data;
  try {
    data = await api("GET", "/api/segments/" + encodeURIComponent(segState.client) + "?limit=90");
  } catch (err) {
    if (segShown !== mine) return;
    $("segment-history-title").textContent = "Client " + segState.client;
    $("segment-history-body").replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "unavailable" }, err.message)));
    return;
  }
  if (segShown !== mine) return;
  const now = data.history[0];
  $("segment-history-title").textContent = "Client " + data.client_id + ": " + now.tier + " on " + now.date
    + " (" + data.history.length + " day" + (data.history.length === 1 ? "" : "s") + " of history)";
  $("segment-history-body").replaceChildren(...data.history.map((d, i) => {
    const before = data.history[i + 1];
    const moved = before && before.tier !== d.tier ? before.tier + " → " + d.tier : "";
    return el("tr", { class: "history-row", "data-date": d.date, "data-tier": d.tier },
      el("td", {}, d.date),
      el("td", {}, el("span", { class: "tier-label tier-" + d.tier }, d.tier), moved ? el("span", { class: "muted" }, " (" + moved + ")") : ""),
      el("td", {}, String(d.rank)),
      el("td", {}, num(d.score)),
      el("td", {}, durationInWords(d.window_days * 86400)));
  }));
}

function moveDay(days) {
  const shown = $("segments-date").value;
  if (!shown) return;
  segState.date = shiftDate(shown, days);
  $("segments-date").value = segState.date;
  segState.offset = 0;
  loadSegments(true);
}

document.addEventListener("DOMContentLoaded", () => {
  $("segments-date").addEventListener("change", (ev) => {
    segState.date = ev.target.value || null;
    segState.offset = 0;
    loadSegments(true);
  });
  $("segments-prev-day").addEventListener("click", () => moveDay(-1));
  $("segments-next-day").addEventListener("click", () => moveDay(1));
  $("segments-latest").addEventListener("click", () => { segState.date = null; segState.offset = 0; loadSegments(true); });
  $("segments-prev-page").addEventListener("click", () => { segState.offset = Math.max(0, segState.offset - SEGMENT_PAGE); loadSegments(true); });
  $("segments-next-page").addEventListener("click", () => { segState.offset += SEGMENT_PAGE; loadSegments(true); });
  $("segment-client-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = $("segment-client").value.trim();
    if (id) showClient(id);
  });
});

registerView("segments", () => loadSegments(false));
