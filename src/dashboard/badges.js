// Heartbeat dashboard, Badges view: each badge of the project (one for every
// heartbeat, one per tag) with its URLs and a Markdown line to paste into a
// README. Uses app.js's `api`, `el`, `$` and `registerView`; it registers itself
// as the "badges" view, so app.js calls `loadBadges` while that view is shown.
"use strict";

const BADGES_POLL_MS = 30000;
let badgesLoadedAt = 0;

async function loadBadges() {
  // Badge URLs change only when a tag appears or goes: no need to redraw (and
  // reset a half-made selection) on every poll.
  if (Date.now() - badgesLoadedAt < BADGES_POLL_MS) return;
  const body = $("badges-body");
  let data;
  try {
    data = await api("GET", "/api/badges");
  } catch (err) {
    body.replaceChildren(el("p", { class: "error" }, "Could not load badges: " + err.message));
    return;
  }
  badgesLoadedAt = Date.now();
  body.replaceChildren(...data.badges.map(badgeCard));
}

// The preview loads the badge from the page's own origin: the URL to paste is
// built from `monitor.public_url`, which the operator's browser may not reach
// under that name, and the page's CSP allows images from its own origin only.
function ownOrigin(url) {
  try {
    const u = new URL(url, location.href);
    return u.pathname + u.search;
  } catch (_) {
    return url;
  }
}

function badgeCard(b, i) {
  const title = b.tag === "*" ? "All heartbeats" : "Tag " + b.tag;
  const row = (label, text, id) => el("div", { class: "copy-row" },
    el("span", {}, label + " "),
    el("code", { id }, text),
    el("button", { type: "button", "data-copy": id }, "Copy"));
  return el("div", { class: "card" },
    el("h3", {}, title),
    el("p", {}, el("img", { src: ownOrigin(b.svg3), alt: b.tag + " badge", class: "badge-preview" })),
    row("Markdown", b.markdown, "badge-md-" + i),
    row("SVG, 2-state", b.svg, "badge-svg-" + i),
    row("SVG, 3-state", b.svg3, "badge-svg3-" + i),
    row("JSON", b.json3, "badge-json-" + i),
    row("shields.io endpoint", b.shields3, "badge-shields-" + i));
}

registerView("badges", loadBadges);
