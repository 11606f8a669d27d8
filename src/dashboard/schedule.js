// The schedule view: the cron table (GET /api/schedule) with each entry's
// expression in words, its next fire time in the viewer's zone and the table's,
// its last success and age, its counters, and pause / resume / trigger buttons.
// Loaded after app.js, whose helpers (api, el, $, durationInWords, timeEl, when,
// registerView) it uses; it registers itself as the "schedule" view.
"use strict";

const DAY_NAMES = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const DAY_ABBR = { SUN: 0, MON: 1, TUE: 2, WED: 3, THU: 4, FRI: 5, SAT: 6 };
const MONTH_NAMES = ["January", "February", "March", "April", "May", "June", "July",
  "August", "September", "October", "November", "December"];
const MONTH_ABBR = { JAN: 1, FEB: 2, MAR: 3, APR: 4, MAY: 5, JUN: 6, JUL: 7, AUG: 8, SEP: 9, OCT: 10, NOV: 11, DEC: 12 };
const MACROS = {
  "@hourly": "at minute 0 of every hour",
  "@daily": "every day at 00:00",
  "@midnight": "every day at 00:00",
  "@weekly": "every Sunday at 00:00",
  "@monthly": "on day 1 of every month at 00:00",
  "@yearly": "on January 1 at 00:00",
  "@annually": "on January 1 at 00:00",
};

function pad2(n) {
  return String(n).padStart(2, "0");
}

// A day-of-week or month field in words ("Monday to Friday", "Monday, Thursday"),
// or null when it is not a plain list or range of names or numbers.
function namedField(field, names, abbr, offset) {
  const one = (t) => {
    const u = t.toUpperCase();
    const n = u in abbr ? abbr[u] : (/^\d+$/.test(t) ? Number(t) : NaN);
    return names[n - offset];
  };
  const parts = field.split(",").map((part) => {
    const range = part.split("-");
    if (range.length === 2) {
      const a = one(range[0]);
      const b = one(range[1]);
      return a && b ? a + " to " + b : null;
    }
    return range.length === 1 ? one(part) || null : null;
  });
  return parts.includes(null) ? null : parts.join(", ");
}

// A five-field Vixie expression (or a macro) in words; the expression itself
// when it is beyond these common shapes, so the view never says something false.
function cronInWords(expr) {
  const e = expr.trim();
  if (MACROS[e.toLowerCase()]) return MACROS[e.toLowerCase()];
  const f = e.split(/\s+/);
  if (f.length !== 5) return e;
  const [min, hour, dom, mon, dow] = f;
  const num = (s) => /^\d+$/.test(s);
  let time;
  if (num(min) && hour === "*") time = "at minute " + Number(min) + " of every hour";
  else if (min.startsWith("*/") && num(min.slice(2)) && hour === "*") time = "every " + Number(min.slice(2)) + " minutes";
  else if (min === "*" && hour === "*") time = "every minute";
  else if (num(min) && num(hour)) time = "at " + pad2(hour) + ":" + pad2(min);
  else if (num(min) && hour.startsWith("*/") && num(hour.slice(2))) time = "at minute " + Number(min) + " of every " + Number(hour.slice(2)) + " hours";
  else return e;
  const days = [];
  if (dom !== "*") {
    if (!/^[\d,-]+$/.test(dom)) return e;
    days.push("on day " + dom.replace(/,/g, ", ").replace(/-/g, " to ") + (mon === "*" ? " of every month" : ""));
  }
  if (dow !== "*") {
    const words = namedField(dow, DAY_NAMES, DAY_ABBR, 0);
    if (!words) return e;
    days.push("on " + words);
  }
  let monthWords = "";
  if (mon !== "*") {
    const words = namedField(mon, MONTH_NAMES, MONTH_ABBR, 1);
    if (!words) return e;
    monthWords = " in " + words;
  }
  const daily = time.startsWith("at ") && !time.includes("minute");
  if (!days.length) return (daily ? "every day " : "") + time + monthWords;
  // Vixie: with both day fields restricted, either one matching is enough.
  return days.join(" or ") + monthWords + ", " + time;
}

// An instant in the viewer's zone, and in `zone` when that differs.
function inZones(iso, zone) {
  if (!iso) return [el("span", {}, "–")];
  const d = new Date(iso);
  const opts = { dateStyle: "medium", timeStyle: "short" };
  const local = d.toLocaleString(undefined, opts);
  const viewer = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const out = [timeEl(iso), el("br"), el("span", { title: d.toISOString() }, local + " (" + viewer + ")")];
  if (zone && zone !== viewer) {
    let there;
    try {
      there = d.toLocaleString(undefined, { ...opts, timeZone: zone });
    } catch (_) {
      there = d.toISOString();
    }
    out.push(el("br"), el("span", { class: "muted" }, there + " (" + zone + ")"));
  }
  return out;
}

function scheduleButton(label, entry, verb, cls) {
  return el("button", {
    type: "button",
    class: cls || "secondary",
    "data-entry": entry.name,
    "data-verb": verb,
    onclick: () => scheduleAction(entry, verb),
  }, label);
}

async function scheduleAction(entry, verb) {
  const note = $("schedule-result");
  try {
    const answer = await api("POST", "/api/schedule/" + encodeURIComponent(entry.name) + "/" + verb);
    note.textContent = verb === "trigger"
      ? entry.name + " triggered: job " + answer.job_id + (answer.coalesced ? " (joined a job already there)" : "")
      : entry.name + (verb === "pause" ? " paused on every node" : " resumed; it catches up once");
    note.className = "note";
  } catch (err) {
    note.textContent = entry.name + ": " + err.message;
    note.className = "note error";
  }
  note.hidden = false;
  await loadSchedule();
}

function counterText(c) {
  if (!c) return "–";
  return c.fired + " fired · " + c.absorbed + " absorbed · " + c.missed + " missed · " + c.caught_up + " caught up";
}

async function loadSchedule() {
  let view;
  try {
    view = await api("GET", "/api/schedule");
  } catch (err) {
    showUnavailable("schedule-unavailable", err);
    $("schedule-body").replaceChildren();
    return;
  }
  $("schedule-unavailable").hidden = true;
  $("schedule-zone").textContent = "Table zone: " + view.timezone + (view.running ? "" : " · the internal scheduler is off on this daemon");
  const rows = view.entries.map((e) => {
    const state = !e.enabled ? "disabled" : e.paused ? "paused" : "active";
    const pausedNote = e.paused
      ? el("div", { class: "muted" },
        e.paused_until ? ["until ", timeEl(e.paused_until)] : "until resumed",
        " · " + e.missed_while_paused + " fire time(s) skipped")
      : "";
    const success = e.last_success_at
      ? [timeEl(e.last_success_at)]
      : [el("span", { class: "muted" }, "never")];
    return el("tr", { "data-entry": e.name },
      el("td", {}, el("strong", {}, e.name), el("div", { class: "muted" }, e.job)),
      el("td", {}, el("span", { class: "cron-words" }, cronInWords(e.cron)), el("div", { class: "muted" }, el("code", {}, e.cron), " · " + view.timezone + " time")),
      el("td", {}, ...(e.paused || !e.enabled ? [el("span", { class: "muted" }, "–")] : inZones(e.next_fire_at, view.timezone))),
      el("td", {}, ...success),
      el("td", {}, counterText(e.counters)),
      el("td", {}, el("span", { class: "state state-" + state }, state), pausedNote),
      el("td", { class: "row-actions" },
        e.paused ? scheduleButton("Resume", e, "resume", "") : scheduleButton("Pause", e, "pause"),
        scheduleButton("Trigger now", e, "trigger")),
    );
  });
  $("schedule-body").replaceChildren(...rows);
}

registerView("schedule", loadSchedule);
