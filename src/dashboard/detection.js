// Heartbeat dashboard, a heartbeat's detection rules at work: the failures in a
// row against its threshold, what took it down, and its detection events, so
// a missed deadline or an early run below the threshold, which changes no
// status, is still seen (docs/monitoring.md, "Detection events"). Uses app.js's
// `api`, `el`, `$`, `when` and `listOf`; heartbeat_detail.js calls `showDetection` when it
// shows a heartbeat.
"use strict";

async function showDetection(hb, path) {
  const section = $("hb-detection");
  section.hidden = false;
  const streak = el("p", { id: "hb-streak" },
    "Failures in a row: ", el("strong", {}, String(hb.failure_streak ?? 0)),
    " of " + (hb.failure_threshold ?? 1) + " to go down",
    " · successes in a row: " + (hb.success_streak ?? 0) + " of " + (hb.recovery_threshold ?? 1) + " to recover",
    hb.down_cause ? " · down: " + hb.down_cause : "");
  let rows;
  try {
    const data = await api("GET", path + "/events");
    rows = listOf(data, "events").map((e) => el("tr", { class: "hb-event", "data-event": e.event },
      el("td", {}, when(e.at)),
      el("td", {}, el("span", { class: "status-label status-down" }, e.event)),
      el("td", {}, e.reason || ""),
      el("td", {}, e.failure_streak != null ? String(e.failure_streak) : e.ping_seq != null ? "ping #" + e.ping_seq : "")));
    if (rows.length === 0) rows = [el("tr", {}, el("td", { colspan: 4, class: "unavailable" }, "No missed, timed-out, early or too fast runs."))];
  } catch (err) {
    rows = [el("tr", {}, el("td", { colspan: 4, class: "unavailable" }, err.missing ? "Not available" : err.message))];
  }
  $("hb-streak-line").replaceChildren(streak);
  $("hb-events").replaceChildren(...rows);
}
