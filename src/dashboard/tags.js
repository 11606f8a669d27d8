// Heartbeat dashboard, tags on the Heartbeats view: each heartbeat's tags beside
// its name, and a filter that shows only the heartbeats carrying one tag, as
// `GET /api/heartbeats?tag=` and `heartbeat status --tag` do (docs/monitoring.md,
// "Tags"). Uses app.js's `el` and `$`; app.js calls `filterByTag` after it
// draws the list.
"use strict";

let tagShown = "";

function filterByTag(heartbeats) {
  const select = $("tag-filter-select");
  const tags = [...new Set(heartbeats.flatMap((hb) => hb.tags || []))].sort();
  if (tagShown && !tags.includes(tagShown)) tagShown = "";
  select.replaceChildren(el("option", { value: "" }, "every tag"),
    ...tags.map((t) => el("option", { value: t }, t)));
  select.value = tagShown;
  $("tag-filter").hidden = tags.length === 0;
  const byId = new Map(heartbeats.map((hb) => [hb.id, hb]));
  for (const row of document.querySelectorAll("tr.hb-row")) {
    const hb = byId.get(row.dataset.id);
    if (!hb) continue;
    const tagsOf = hb.tags || [];
    row.dataset.tags = tagsOf.join(" ");
    const cell = row.children[1];
    if (cell && !cell.querySelector(".tag")) {
      cell.append(...tagsOf.map((t) => el("span", { class: "tag" }, t)));
    }
    row.hidden = tagShown !== "" && !tagsOf.includes(tagShown);
  }
  select.onchange = () => {
    tagShown = select.value;
    filterByTag(heartbeats);
  };
}
