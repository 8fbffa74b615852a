// tooldag ui: the runs list. Filter by status, search the goals; refreshed every two seconds.
"use strict";

const STATUSES = [
  "pending", "running", "succeeded", "failed", "cancelled", "paused", "rejected",
  "budget_exceeded", "interrupted",
];

const statusBox = document.getElementById("status");
const searchBox = document.getElementById("search");
const tbody = document.querySelector("#runs tbody");
let timer = null;
let pending = null;

for (const status of STATUSES) statusBox.append(el("option", { value: status, text: status }));
const initial = new URLSearchParams(location.search);
statusBox.value = initial.get("status") || "";
searchBox.value = initial.get("q") || "";

function stepsText(steps) {
  const total = Object.values(steps || {}).reduce((a, b) => a + b, 0);
  if (!total) return "";
  const parts = Object.entries(steps).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${v} ${k}`);
  return `${total}: ${parts.join(", ")}`;
}

async function refresh() {
  const query = new URLSearchParams();
  if (statusBox.value) query.set("status", statusBox.value);
  if (searchBox.value.trim()) query.set("q", searchBox.value.trim());
  const answer = await api("/api/runs?" + query.toString());
  const message = document.getElementById("message");
  if (!answer.ok) {
    message.textContent = (answer.body && answer.body.error) || `the viewer answered ${answer.status}`;
    return;
  }
  message.textContent = "";
  const { runs, palette, store } = answer.body;
  document.getElementById("store").textContent = store || "";
  document.getElementById("count").textContent = `${runs.length} run${runs.length === 1 ? "" : "s"}`;
  const rows = runs.map((run) => {
    const link = el("a", { href: withToken("/runs/" + encodeURIComponent(run.id)), text: run.id });
    const took = run.finished_at ? run.finished_at - run.created_at : null;
    return el(
      "tr", { "data-id": run.id },
      el("td", {}, link),
      el("td", { text: run.goal || "" }),
      el("td", {}, badge(run.status, palette)),
      el("td", { class: "muted", text: stepsText(run.steps) }),
      el("td", { text: clock(run.created_at) }),
      el("td", { class: "num", text: seconds(took) }),
      el("td", { class: "num", text: run.usage.total_tokens ? number(run.usage.total_tokens) : "" }),
    );
  });
  tbody.replaceChildren(...rows);
  if (!runs.length) {
    tbody.append(el("tr", {}, el("td", { colspan: "7", class: "muted", text: "no runs match" })));
  }
}

function schedule(delay) {
  clearTimeout(pending);
  pending = setTimeout(refresh, delay);
}

statusBox.addEventListener("change", () => schedule(0));
searchBox.addEventListener("input", () => schedule(200));
refresh();
timer = setInterval(() => { if (!document.hidden) refresh(); }, 2000);
