// Channels page: where alerts go. Create a channel from a preset with a form
// (only the fields that preset takes), send a test and see its outcome, see a
// channel's recent deliveries, mute or delete it. Also the heartbeat form's
// channel picker (all channels, chosen ones, or none).
// Uses app.js's helpers (api, el, $, timeEl, minutes, registerView); it registers
// itself as the "channels" view, and app.js calls fillChannelPicker and
// pickedChannels when they exist.
"use strict";

// The fields each kind takes (docs/notifications.md); `secret` ones are shown
// masked afterwards by the API.
const CHANNEL_KINDS = {
  slack: [{ name: "url", label: "Incoming webhook URL", required: true, secret: true }],
  discord: [{ name: "url", label: "Webhook URL", required: true, secret: true }],
  teams: [{ name: "url", label: "Workflow webhook URL", required: true, secret: true }],
  mattermost: [{ name: "url", label: "Incoming webhook URL", required: true, secret: true }],
  google_chat: [{ name: "url", label: "Space webhook URL", required: true, secret: true }],
  ntfy: [
    { name: "topic", label: "Topic", required: true },
    { name: "url", label: "Server URL (default: ntfy.sh)" },
    { name: "token", label: "Access token", secret: true },
  ],
  gotify: [
    { name: "url", label: "Server URL", required: true },
    { name: "token", label: "Application token", required: true, secret: true },
  ],
  telegram: [
    { name: "bot_token", label: "Bot token", required: true, secret: true },
    { name: "chat_id", label: "Chat id", required: true },
  ],
  pagerduty: [{ name: "routing_key", label: "Integration (routing) key", required: true, secret: true }],
  opsgenie: [
    { name: "api_key", label: "API key", required: true, secret: true },
    { name: "url", label: "API URL (default: api.opsgenie.com)" },
  ],
  github: [
    { name: "repo", label: "Repository (owner/name)", required: true },
    { name: "token", label: "Token", required: true, secret: true },
  ],
  gitea: [
    { name: "url", label: "Server URL", required: true },
    { name: "repo", label: "Repository (owner/name)", required: true },
    { name: "token", label: "Token", required: true, secret: true },
  ],
  webhook: [
    { name: "url", label: "URL", required: true },
    { name: "secret", label: "Signing secret (16+ characters)", secret: true },
  ],
  email: [{ name: "to", label: "To (addresses, comma separated)", required: true, list: true }],
};

// Kinds that open incidents or issues take no digest.
const NO_DIGEST = ["pagerduty", "opsgenie", "github", "gitea"];

let channels = [];
let openDeliveries = null;

function channelFields(kind) {
  const box = $("channel-fields");
  box.replaceChildren(...(CHANNEL_KINDS[kind] || []).map((f) =>
    el("label", {}, f.label + " ",
      el("input", {
        name: "cfg_" + f.name,
        "data-field": f.name,
        type: f.secret ? "password" : "text",
        autocomplete: "off",
        ...(f.required ? { required: "" } : {}),
      }))));
  const digest = !NO_DIGEST.includes(kind);
  $("channel-digest").hidden = !digest;
}

function openChannelForm() {
  const form = $("channel-form");
  form.reset();
  form.hidden = false;
  $("channel-form-error").hidden = true;
  channelFields(form.elements.kind.value);
  form.elements.name.focus();
}

async function saveChannel(ev) {
  ev.preventDefault();
  const f = ev.target.elements;
  const kind = f.kind.value;
  const config = {};
  for (const spec of CHANNEL_KINDS[kind] || []) {
    const raw = f["cfg_" + spec.name].value.trim();
    if (!raw) continue;
    config[spec.name] = spec.list ? raw.split(",").map((s) => s.trim()).filter(Boolean) : raw;
  }
  const body = { kind, config };
  if (f.name.value.trim()) body.name = f.name.value.trim();
  const repeat = Number(f.repeat_minutes.value);
  if (repeat > 0) body.repeat_every_seconds = Math.round(repeat * 60);
  if (!NO_DIGEST.includes(kind) && f.digest_schedule.value.trim()) {
    body.digest_schedule = f.digest_schedule.value.trim();
    body.digest_tz = f.digest_tz.value.trim() || "UTC";
  }
  try {
    await api("POST", "/api/channels", body);
    ev.target.hidden = true;
    await loadChannels();
  } catch (err) {
    $("channel-form-error").hidden = false;
    $("channel-form-error").textContent = err.message;
  }
}

async function loadChannels() {
  let data;
  try {
    data = await api("GET", "/api/channels");
  } catch (err) {
    showUnavailable("channels-unavailable", err);
    $("channels-table").hidden = true;
    return;
  }
  $("channels-unavailable").hidden = true;
  $("channels-table").hidden = false;
  channels = listOf(data, "channels");
  $("channels-body").replaceChildren(...channels.map(channelRow));
  $("channels-empty").hidden = channels.length > 0;
  if (openDeliveries) await loadDeliveries(openDeliveries);
}

function channelState(c) {
  if (c.muted) return "muted";
  return c.failing ? "failing" : "ok";
}

function channelRow(c) {
  const state = channelState(c);
  return el("tr", { class: "channel-row", "data-id": c.id, "data-state": state },
    el("td", {}, c.name),
    el("td", {}, c.kind),
    el("td", {}, el("span", { class: "status-label channel-" + state, title: c.last_error || "" }, state)),
    el("td", { class: "muted-text" }, c.last_error || ""),
    el("td", {}, c.repeat_every_seconds ? minutes(c.repeat_every_seconds) : "-"),
    el("td", {}, c.digest_schedule ? c.digest_schedule + " (" + c.digest_tz + ")" : "-"),
    el("td", { class: "row-actions" },
      el("button", { type: "button", class: "secondary test-btn", onclick: () => testChannel(c) }, "Test"),
      el("button", { type: "button", class: "secondary deliveries-btn", onclick: () => loadDeliveries(c.id) }, "Deliveries"),
      el("button", { type: "button", class: "secondary", onclick: () => muteChannel(c) }, c.muted ? "Unmute" : "Mute"),
      el("button", { type: "button", class: "danger", onclick: () => deleteChannel(c) }, "Delete")),
  );
}

async function testChannel(c) {
  const box = $("channel-test-result");
  box.hidden = false;
  box.dataset.state = "sending";
  box.textContent = "Sending a test to " + c.name + "…";
  try {
    const r = await api("POST", "/api/channels/" + encodeURIComponent(c.id) + "/test", {});
    box.dataset.state = r.ok ? "ok" : "failed";
    const status = r.status == null ? "" : " (status " + r.status + ")";
    box.textContent = (r.ok ? "Test to " + c.name + " delivered" : "Test to " + c.name + " failed: " + (r.error || "no detail"))
      + status + " in " + r.duration_ms + " ms.";
  } catch (err) {
    box.dataset.state = "failed";
    box.textContent = "Test to " + c.name + " failed: " + err.message;
  }
  await loadChannels();
}

async function loadDeliveries(id) {
  openDeliveries = id;
  const c = channels.find((x) => x.id === id);
  const box = $("channel-deliveries");
  box.hidden = false;
  $("deliveries-title").textContent = "Recent deliveries" + (c ? " to " + c.name : "");
  let data;
  try {
    data = await api("GET", "/api/channels/" + encodeURIComponent(id) + "/alerts");
  } catch (err) {
    $("deliveries-body").replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "unavailable" }, err.message)));
    return;
  }
  const alerts = listOf(data, "alerts").slice(0, 50);
  $("deliveries-body").replaceChildren(...(alerts.length ? alerts.map((a) =>
    el("tr", { class: "delivery-row", "data-state": a.state, "data-event": a.event },
      el("td", {}, timeEl(a.created_at)),
      el("td", {}, a.event),
      el("td", {}, a.state),
      el("td", {}, String(a.attempts)),
      el("td", {}, a.last_status == null ? "-" : String(a.last_status)),
      el("td", { class: "muted-text" }, a.last_error || ""))) :
    [el("tr", {}, el("td", { colspan: 6, class: "empty" }, "Nothing sent yet."))]));
}

async function muteChannel(c) {
  try {
    await api("PATCH", "/api/channels/" + encodeURIComponent(c.id), { muted: !c.muted });
  } catch (err) {
    alert(err.message);
  }
  await loadChannels();
}

async function deleteChannel(c) {
  if (!confirm("Delete channel " + c.name + " and its delivery history?")) return;
  try {
    await api("DELETE", "/api/channels/" + encodeURIComponent(c.id));
  } catch (err) {
    alert(err.message);
  }
  if (openDeliveries === c.id) {
    openDeliveries = null;
    $("channel-deliveries").hidden = true;
  }
  await loadChannels();
}

// ---- the heartbeat form's channel picker ------------------------------------

// Fills the picker for `hb` (null: a new heartbeat, sent to every channel).
async function fillChannelPicker(hb) {
  const picker = $("heartbeat-channels");
  if (!picker) return;
  try {
    channels = listOf(await api("GET", "/api/channels"), "channels");
  } catch (_) {
    picker.hidden = true;
    return;
  }
  picker.hidden = false;
  const routing = hb ? hb.channels : "all";
  const mode = routing === "all" ? "all" : routing.length === 0 ? "none" : "chosen";
  picker.querySelector("select").value = mode;
  $("heartbeat-channel-list").replaceChildren(...channels.map((c) =>
    el("label", { class: "inline" },
      el("input", {
        type: "checkbox",
        value: c.id,
        ...(Array.isArray(routing) && routing.includes(c.id) ? { checked: "" } : {}),
      }),
      " " + c.name + " (" + c.kind + ")")));
  $("heartbeat-channel-list").hidden = mode !== "chosen";
}

// What the form's `channels` field says: "all", a list of ids, or [].
function pickedChannels() {
  const picker = $("heartbeat-channels");
  if (!picker || picker.hidden) return undefined;
  const mode = picker.querySelector("select").value;
  if (mode === "all") return "all";
  if (mode === "none") return [];
  return [...$("heartbeat-channel-list").querySelectorAll("input:checked")].map((i) => i.value);
}

document.addEventListener("DOMContentLoaded", () => {
  $("new-channel-btn").addEventListener("click", openChannelForm);
  $("channel-cancel").addEventListener("click", () => { $("channel-form").hidden = true; });
  $("channel-form").addEventListener("submit", saveChannel);
  $("channel-form").elements.kind.addEventListener("change", (ev) => channelFields(ev.target.value));
  $("heartbeat-channel-mode").addEventListener("change", (ev) => {
    $("heartbeat-channel-list").hidden = ev.target.value !== "chosen";
  });
});

registerView("channels", loadChannels);
