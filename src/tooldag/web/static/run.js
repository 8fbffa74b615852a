// tooldag ui: one run. The snapshot draws the page; then the event stream brings, in batches,
// what happened since, and only the steps it names are redrawn (the timeline at most once a
// second while the run goes).
"use strict";

const RUN_ID = decodeURIComponent(location.pathname.split("/").pop());
const FINISHING = {
  step_succeeded: "succeeded", step_failed: "failed", step_skipped: "skipped",
  step_blocked: "blocked", step_cancelled: "cancelled", step_reused: "succeeded",
};

const state = {
  run: null, palette: {}, plans: [], steps: new Map(), order: [], attempts: new Map(),
  llm: [], cursor: 0, nodes: new Map(), rows: new Map(), selected: null, zoom: null,
  queue: [], flushing: false, ganttAt: 0, ganttTimer: null, source: null, t0: null,
};

document.getElementById("run-id").textContent = RUN_ID;
document.getElementById("home").href = withToken("/");
document.title = "tooldag · run " + RUN_ID;

// ------------------------------------------------------------------ the model

function stepOf(id) {
  let step = state.steps.get(id);
  if (!step) {
    step = { id, tool: "", status: "pending", attempts: 0 };
    state.steps.set(id, step);
    state.order.push(id);
  }
  return step;
}

function attemptsOf(id) {
  let list = state.attempts.get(id);
  if (!list) state.attempts.set(id, (list = []));
  return list;
}

function closeAttempt(id, ts, outcome, error) {
  const list = attemptsOf(id);
  const open = list.length ? list[list.length - 1] : null;
  if (open && open.end === null) {
    open.end = ts;
    open.outcome = outcome;
    if (error) open.error = error;
  }
}

function errorText(error) {
  if (!error) return "";
  return error.type ? `${error.type}: ${error.message || ""}` : String(error);
}

// One journal event into the model; with `live`, statuses change too (the snapshot's step rows
// are newer than its events, so replaying those only rebuilds the attempts and LLM calls).
function apply(event, live, touched) {
  const data = event.data || {};
  const id = event.step_id;
  const ts = event.ts;
  // An LLM call's event comes at its end: it began `duration` before.
  const began = event.type === "llm_call" ? ts - (event.duration || 0) : ts;
  if (state.t0 === null || began < state.t0) state.t0 = began;
  switch (event.type) {
    case "llm_call":
      state.llm.push({ ts, duration: event.duration || 0, attempt: event.attempt || 0, ...data });
      return;
    case "step_started": {
      const list = attemptsOf(id);
      closeAttempt(id, ts, "abandoned");
      list.push({ n: event.attempt || list.length + 1, start: ts, end: null, outcome: "running" });
      if (live) {
        const step = stepOf(id);
        step.status = "running";
        step.attempts = event.attempt || step.attempts;
        step.tool = data.tool || step.tool;
        if (!step.started_at) step.started_at = ts;
        delete step.error;
      }
      break;
    }
    case "step_retrying":
      closeAttempt(id, ts, "retrying", errorText(data.error));
      if (live) stepOf(id).error = errorText(data.error);
      break;
    case "step_compensated":
      if (live) stepOf(id).status = "compensated";
      break;
    case "step_compensation_failed":
      if (live) stepOf(id).reason = "compensation failed: " + errorText(data.error);
      break;
    default:
      if (FINISHING[event.type] && id) {
        const outcome = FINISHING[event.type];
        closeAttempt(id, ts, outcome, errorText(data.error));
        if (live) {
          const step = stepOf(id);
          step.status = outcome;
          step.finished_at = ts;
          step.attempts = Math.max(step.attempts || 0, event.attempt || 0);
          if (data.error) step.error = errorText(data.error);
          if (data.reason) step.reason = data.reason;
          step.reused = event.type === "step_reused";
        }
      }
  }
  if (id && touched) touched.add(id);
}

// ------------------------------------------------------------------ drawing

function colours(status) {
  return state.palette[status] || state.palette.pending || ["#eeeeee", "#8c8c8c"];
}

function paintNode(id) {
  const node = state.nodes.get(id);
  const step = state.steps.get(id);
  if (!node || !step) return;
  const [fill, stroke] = colours(step.status);
  node.rect.setAttribute("fill", fill);
  node.rect.setAttribute("stroke", stroke);
  node.g.setAttribute("data-status", step.status);
  node.g.setAttribute("class", `node status-${step.status}${state.selected === id ? " selected" : ""}`);
  node.title.textContent = `${id} · ${step.tool} · ${step.status}`;
}

function drawGraph() {
  const latest = state.plans[state.plans.length - 1];
  const box = document.getElementById("graph");
  state.nodes.clear();
  if (!latest) {
    box.replaceChildren(el("p", { class: "muted", style: "padding:10px", text: "no plan stored for this run" }));
    return;
  }
  box.innerHTML = latest.svg; // drawn by the server (tooldag.plan.svg), every text escaped
  const svg = box.querySelector("svg");
  for (const g of svg.querySelectorAll("g.node")) {
    const id = g.getAttribute("data-id");
    state.nodes.set(id, { g, rect: g.querySelector("rect"), title: g.querySelector("title") });
  }
  for (const id of state.nodes.keys()) paintNode(id);
  if (state.zoom === null) {
    const width = Number(svg.getAttribute("width"));
    state.zoom = Math.max(0.2, Math.min(1, (box.clientWidth - 4) / width));
  }
  zoom(state.zoom);
}

function zoom(level) {
  const svg = document.querySelector("#graph svg");
  if (!svg) return;
  state.zoom = Math.max(0.05, Math.min(3, level));
  svg.style.width = Number(svg.getAttribute("width")) * state.zoom + "px";
  svg.style.height = Number(svg.getAttribute("height")) * state.zoom + "px";
  document.getElementById("zoom-level").textContent = Math.round(state.zoom * 100) + "%";
}

function drawLegend() {
  const used = new Set([...state.steps.values()].map((s) => s.status));
  const legend = document.getElementById("legend");
  legend.replaceChildren(...[...used].sort().map((s) => badge(s, state.palette)));
}

function rowCells(step) {
  const start = step.started_at && state.t0 !== null ? step.started_at - state.t0 : null;
  const took = step.started_at && step.finished_at ? step.finished_at - step.started_at : null;
  let why = step.error || step.reason || (step.reused ? "reused" : "");
  const latest = state.plans[state.plans.length - 1];
  if (latest && state.plans.length > 1 && !latest.steps.includes(step.id)) {
    why = "an earlier plan's step" + (why ? ": " + why : "");
  }
  return [step.id, step.tool, null, String(step.attempts || 0), start === null ? "" : seconds(start), seconds(took), why];
}

function drawRow(id) {
  const step = state.steps.get(id);
  const row = state.rows.get(id);
  if (!row) return; // not in the table's window: drawn when scrolled to
  const cells = rowCells(step);
  row.children[0].textContent = cells[0];
  row.children[1].textContent = cells[1];
  row.children[2].innerHTML = badgeHtml(step.status);
  for (let i = 3; i < 7; i++) row.children[i].textContent = cells[i];
  row.children[6].title = cells[6];
  row.classList.toggle("selected", state.selected === id);
}

function esc(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function badgeHtml(status) {
  const [fill, stroke] = colours(status);
  return `<span class="badge" style="background:${fill};border-color:${stroke}">${esc(status)}</span>`;
}

// The table draws only the rows in (and near) its scrolled window, between two spacers: a
// 2,000-step run costs what a 100-step one does. A batch redraws the drawn rows it names.
const ROW_H = 29; // px: #steps rows have one fixed height (viewer.css)

function drawTable() {
  state.window = null;
  drawWindow();
}

function drawWindow() {
  const box = document.getElementById("steps-box");
  const tbody = document.querySelector("#steps tbody");
  const n = state.order.length;
  const first = Math.max(0, Math.floor(box.scrollTop / ROW_H) - 20);
  const last = Math.min(n, first + Math.ceil((box.clientHeight || 420) / ROW_H) + 40);
  if (state.window && state.window[0] === first && state.window[1] === last) return;
  state.window = [first, last];
  const spacer = (rows) => rows ? `<tr class="spacer"><td colspan="7" style="height:${rows * ROW_H}px"></td></tr>` : "";
  const html = [spacer(first)];
  for (const id of state.order.slice(first, last)) {
    const step = state.steps.get(id);
    const c = rowCells(step);
    html.push(
      `<tr class="pick${state.selected === id ? " selected" : ""}" data-id="${esc(id)}">` +
      `<td>${esc(c[0])}</td><td>${esc(c[1])}</td><td>${badgeHtml(step.status)}</td>` +
      `<td class="num">${c[3]}</td><td class="num">${c[4]}</td><td class="num">${c[5]}</td>` +
      `<td title="${esc(c[6])}">${esc(c[6])}</td></tr>`,
    );
  }
  html.push(spacer(n - last));
  tbody.innerHTML = html.join("");
  state.rows.clear();
  for (const row of tbody.querySelectorAll("tr[data-id]")) state.rows.set(row.getAttribute("data-id"), row);
}

function drawSummary() {
  const run = state.run;
  paintBadge(document.getElementById("run-status"), run.status, state.palette);
  document.getElementById("goal").textContent = run.goal || "(no goal)";
  const counts = {};
  for (const step of state.steps.values()) counts[step.status] = (counts[step.status] || 0) + 1;
  const end = run.finished_at || (run.status === "running" ? Date.now() / 1000 : run.updated_at);
  const items = [
    ["started", clock(run.created_at)],
    ["time", seconds(end - run.created_at)],
    ["steps", `${state.steps.size}` + Object.entries(counts).map(([k, v]) => ` · ${v} ${k}`).join("")],
    ["plan versions", String(run.plan_versions)],
    ["tokens", `${number(run.usage.total_tokens)} in ${run.usage.calls} LLM call${run.usage.calls === 1 ? "" : "s"}`],
    ["process", run.owner || ""],
  ];
  document.getElementById("summary").replaceChildren(
    ...items.map(([k, v]) => el("div", {}, el("b", { text: k }), v)),
  );
  const resume = document.getElementById("resume");
  const cancel = document.getElementById("cancel");
  resume.disabled = !run.resumable;
  cancel.disabled = !run.cancellable;
  const answer = document.getElementById("answer");
  answer.hidden = !run.answer;
  answer.textContent = run.answer || "";
  const error = document.getElementById("run-error");
  error.hidden = !run.error;
  error.textContent = run.error || "";
  drawLegend();
}

// The Gantt of attempts: one row per step that ran, one bar per attempt, coloured by outcome.
function drawGantt() {
  state.ganttAt = Date.now();
  const rows = state.order.filter((id) => attemptsOf(id).length);
  const box = document.getElementById("gantt");
  if (!rows.length) {
    box.replaceChildren(el("p", { class: "muted", style: "padding:8px", text: "no step has started yet" }));
    return;
  }
  const now = Date.now() / 1000;
  let t0 = Infinity, t1 = -Infinity;
  for (const id of rows) {
    for (const a of attemptsOf(id)) {
      t0 = Math.min(t0, a.start);
      t1 = Math.max(t1, a.end === null ? now : a.end);
    }
  }
  for (const call of state.llm) {
    t0 = Math.min(t0, call.ts - call.duration);
    t1 = Math.max(t1, call.ts);
  }
  const span = Math.max(t1 - t0, 1e-3);
  const rowH = rows.length > 80 ? Math.max(3, Math.floor(1200 / rows.length)) : 18;
  const labels = rowH >= 12;
  const left = labels ? 150 : 10;
  const width = Math.max(600, (box.clientWidth || 900) - 4);
  const plot = width - left - 14;
  const llmRows = state.llm.length ? 1 : 0;
  const height = (rows.length + llmRows) * rowH + 30;
  const x = (t) => left + ((t - t0) / span) * plot;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-size="11" font-family="system-ui, sans-serif">`];
  for (let i = 0; i <= 5; i++) {
    const t = t0 + (span * i) / 5;
    const gx = x(t).toFixed(1);
    parts.push(`<line x1="${gx}" y1="0" x2="${gx}" y2="${height - 18}" stroke="#e4e7eb"/>`);
    const anchor = i === 0 ? "start" : i === 5 ? "end" : "middle";
    parts.push(`<text x="${gx}" y="${height - 5}" text-anchor="${anchor}" fill="#616e7c">${seconds(t - t0)}</text>`);
  }
  const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  let y = 0;
  if (llmRows) {
    if (labels) parts.push(`<text x="4" y="${y + rowH - 5}" fill="#52606d">LLM</text>`);
    for (const call of state.llm) {
      const a = x(call.ts - call.duration), b = Math.max(x(call.ts), a + 2);
      parts.push(`<rect x="${a.toFixed(1)}" y="${y + 2}" width="${(b - a).toFixed(1)}" height="${rowH - 4}" fill="#e8dcff" stroke="#7b3fe4"><title>${esc(call.purpose)} · ${esc(call.model || "")} · ${number((call.usage || {}).total_tokens)} tokens</title></rect>`);
    }
    y += rowH;
  }
  for (const id of rows) {
    if (labels) parts.push(`<text x="4" y="${y + rowH - 5}" fill="#1f2933">${esc(id.length > 22 ? id.slice(0, 21) + "…" : id)}</text>`);
    for (const a of attemptsOf(id)) {
      const end = a.end === null ? now : a.end;
      const x1 = x(a.start), x2 = Math.max(x(end), x1 + 2);
      const [fill, stroke] = colours(a.outcome === "retrying" ? "failed" : a.outcome === "abandoned" ? "cancelled" : a.outcome);
      const tip = `${id} · attempt ${a.n} · ${a.outcome} · ${seconds(end - a.start)}${a.error ? " · " + a.error : ""}`;
      parts.push(`<rect class="bar" data-id="${esc(id)}" x="${x1.toFixed(1)}" y="${y + 1}" width="${(x2 - x1).toFixed(1)}" height="${Math.max(1, rowH - 3)}" rx="2" fill="${fill}" stroke="${stroke}"><title>${esc(tip)}</title></rect>`);
    }
    y += rowH;
  }
  parts.push("</svg>");
  box.innerHTML = parts.join("");
  const attempts = rows.reduce((n, id) => n + attemptsOf(id).length, 0);
  document.getElementById("gantt-note").textContent = `· ${rows.length} steps, ${attempts} attempts`;
}

function scheduleGantt() {
  const running = state.run && state.run.status === "running";
  const wait = running ? Math.max(0, 1000 - (Date.now() - state.ganttAt)) : 0;
  if (state.ganttTimer !== null) return;
  state.ganttTimer = setTimeout(() => {
    state.ganttTimer = null;
    drawGantt();
  }, wait);
}

const DRAW_AT_ONCE = 400; // steps of a plan version drawn without asking

function drawPlans() {
  const box = document.getElementById("plans");
  if (state.plans.length === 1) {
    box.replaceChildren(el("p", { class: "muted", text: "one version: the graph above. A replan adds versions here, side by side." }));
    return;
  }
  const cards = state.plans.map((plan) => {
    const d = plan.diff;
    const diff = plan.version === 1
      ? "the first plan"
      : [
        d.added.length ? `+ added ${d.added.join(", ")}` : "",
        d.removed.length ? `− removed ${d.removed.join(", ")}` : "",
        d.changed.length ? `~ changed ${d.changed.join(", ")}` : "",
      ].filter(Boolean).join(" · ") || "the same steps";
    const pic = el("div", { class: "pic" });
    const draw = () => {
      pic.innerHTML = plan.svg;
      for (const g of pic.querySelectorAll("g.node")) {
        const id = g.getAttribute("data-id");
        if (d.added.includes(id)) g.classList.add("added");
        if (d.changed.includes(id)) g.classList.add("changed");
      }
      const svg = pic.querySelector("svg");
      const scale = Math.min(1, 520 / Number(svg.getAttribute("width")));
      svg.style.width = Number(svg.getAttribute("width")) * scale + "px";
      svg.style.height = Number(svg.getAttribute("height")) * scale + "px";
    };
    if (plan.steps.length <= DRAW_AT_ONCE) draw();
    else {
      const button = el("button", { type: "button", text: `draw its ${plan.steps.length} steps` });
      button.addEventListener("click", draw);
      pic.append(button);
    }
    return el("div", { class: "plan-card", "data-version": String(plan.version) },
      el("h4", { text: `plan ${plan.version} · ${plan.steps.length} steps` }),
      el("div", { class: "diff", text: diff }), pic);
  });
  if (!cards.length) cards.push(el("p", { class: "muted", text: "no plan stored" }));
  box.replaceChildren(...cards);
}

function drawUsage() {
  const run = state.run;
  const box = document.getElementById("usage");
  const total = el("p", {
    text: `${number(run.usage.prompt_tokens)} prompt + ${number(run.usage.completion_tokens)} completion = ${number(run.usage.total_tokens)} tokens in ${run.usage.calls} call${run.usage.calls === 1 ? "" : "s"}`,
  });
  if (!state.llm.length) {
    box.replaceChildren(total, el("p", { class: "muted", text: "no LLM call in this run's journal (a hand-written plan needs none)" }));
    return;
  }
  const head = el("tr", {}, ...["at", "purpose", "model", "mode", "prompt", "completion", "time"].map((h, i) => el("th", { class: i >= 4 ? "num" : null, text: h })));
  const rows = state.llm.map((c) => el("tr", {},
    el("td", { text: seconds(c.ts - c.duration - state.t0) }), el("td", { text: c.purpose || "" }),
    el("td", { text: c.model || "" }), el("td", { text: c.mode || "" }),
    el("td", { class: "num", text: number((c.usage || {}).prompt_tokens) }),
    el("td", { class: "num", text: number((c.usage || {}).completion_tokens) }),
    el("td", { class: "num", text: c.duration ? seconds(c.duration) : "" })));
  box.replaceChildren(total, el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)));
}

// ------------------------------------------------------------------ a step's details

async function select(id) {
  const previous = state.selected;
  state.selected = id;
  if (previous) { paintNode(previous); if (state.rows.has(previous)) drawRow(previous); }
  paintNode(id);
  if (state.rows.has(id)) drawRow(id);
  const panel = document.getElementById("detail");
  panel.replaceChildren(el("h3", { text: id }), el("p", { class: "muted", text: "loading…" }));
  const answer = await api(`/api/runs/${encodeURIComponent(RUN_ID)}/steps/${encodeURIComponent(id)}`);
  if (state.selected !== id) return;
  if (!answer.ok) {
    panel.replaceChildren(el("h3", { text: id }), el("p", { class: "error-text", text: (answer.body && answer.body.error) || "not found" }));
    return;
  }
  const s = answer.body;
  const attempts = (state.attempts.get(id) || []).map((a) => el("li", {
    text: `attempt ${a.n}: ${a.outcome}, ${seconds((a.end === null ? Date.now() / 1000 : a.end) - a.start)}${a.error ? " · " + a.error : ""}`,
  }));
  const block = (title, text, cut) => [el("b", { text: title + (cut ? " (cut: too long to show whole)" : "") }), el("pre", { text })];
  panel.replaceChildren(...[
    el("h3", { text: s.id }),
    el("p", {}, badge(s.status, state.palette), "  ", el("span", { class: "muted", text: s.tool })),
    s.error ? el("p", { class: "error-text", text: s.error }) : null,
    s.reason ? el("p", { class: "muted", text: s.reason }) : null,
    el("b", { text: `attempts (${s.attempts})` }),
    attempts.length ? el("ul", {}, ...attempts) : el("p", { class: "muted", text: s.reused ? "reused from an earlier execution" : "never started" }),
    ...block("arguments", s.args, s.args_cut),
    ...block("output", s.output, s.output_cut),
    ...block("as planned", s.planned, false),
  ].filter(Boolean));
}

// ------------------------------------------------------------------ live

function flush() {
  state.flushing = false;
  const began = performance.now();
  const batch = state.queue.splice(0);
  const touched = new Set();
  const known = state.order.length;
  let count = 0;
  let run = null;
  for (const message of batch) {
    for (const event of message.events || []) apply(event, true, touched);
    count += (message.events || []).length;
    if (message.run) run = message.run;
    if (message.cursor) state.cursor = Math.max(state.cursor, message.cursor);
  }
  let reload = false;
  if (run) {
    // A new plan version (a replan): the snapshot has its graph. What the batch says is
    // drawn first all the same.
    reload = run.plan_versions > state.plans.length;
    if (state.run && state.run.status === "running" && run.status !== "running") {
      performance.mark("tooldag-ended", { detail: { at: Date.now() / 1000 } }); // for benchmarks
    }
    state.run = run;
  }
  for (const id of touched) {
    drawRow(id);
    paintNode(id);
  }
  if (state.order.length !== known) drawTable(); // steps the plan did not name (a resume)
  drawSummary();
  drawUsage();
  scheduleGantt();
  if (state.selected && touched.has(state.selected)) select(state.selected);
  document.body.dataset.cursor = String(state.cursor);
  // What benchmarks/viewer.py reads: how long each redraw took, for how many events.
  performance.measure("tooldag-flush", { start: began, detail: { events: count, messages: batch.length } });
  if (reload) load();
}

function listen() {
  if (state.source) state.source.close();
  const path = withToken(`/api/runs/${encodeURIComponent(RUN_ID)}/stream`) + "&after=" + state.cursor;
  const source = new EventSource(path);
  state.source = source;
  const live = document.getElementById("live");
  source.onopen = () => { live.className = "live on"; live.textContent = "live"; };
  source.onerror = () => {
    live.className = "live off";
    if (state.run && state.run.status !== "running") {
      // The run is over and its viewer gone (tooldag exec --ui ends with its run): the page
      // shows the end; `tooldag ui` shows it again later.
      source.close();
      live.textContent = "viewer stopped";
    } else {
      live.textContent = "the viewer is not answering (stopped?); retrying";
    }
  };
  const take = (message) => {
    state.queue.push(JSON.parse(message.data));
    if (!state.flushing) {
      state.flushing = true;
      requestAnimationFrame(flush);
    }
  };
  source.addEventListener("batch", take);
  source.addEventListener("run", (message) => take({ run: JSON.parse(message.data) }));
}

async function load() {
  const answer = await api(`/api/runs/${encodeURIComponent(RUN_ID)}`);
  if (!answer.ok) {
    const text = answer.status === 404 ? `waiting for run ${RUN_ID} to be journalled…` : (answer.body && answer.body.error) || `the viewer answered ${answer.status}`;
    document.getElementById("graph").replaceChildren(el("p", { class: "muted", style: "padding:10px", text }));
    if (answer.status === 404) setTimeout(load, 500);
    return;
  }
  const snap = answer.body;
  state.run = snap.run;
  state.palette = snap.palette;
  state.plans = snap.plans;
  state.steps = new Map();
  state.order = [];
  state.attempts = new Map();
  state.llm = [];
  state.t0 = null;
  const latest = snap.plans[snap.plans.length - 1];
  if (latest) latest.steps.forEach((id, i) => { stepOf(id).tool = latest.tools[i]; });
  // Each step's story is its events (the store's step rows are made from the same).
  for (const event of snap.events) apply(event, true, null);
  state.cursor = Math.max(state.cursor, snap.cursor);
  drawGraph();
  drawTable();
  drawSummary();
  drawGantt();
  drawPlans();
  drawUsage();
  document.body.dataset.loaded = "1";
  performance.mark("tooldag-drawn");
  document.body.dataset.cursor = String(state.cursor);
  if (state.selected) select(state.selected);
  listen();
}

async function act(what) {
  const message = document.getElementById("message");
  message.className = "";
  message.textContent = what === "resume" ? "resuming…" : "cancelling (undoing what it did)…";
  const answer = await api(`/api/runs/${encodeURIComponent(RUN_ID)}/${what}`, { method: "POST" });
  if (answer.ok) {
    message.textContent = what === "resume" ? "resumed in the viewer's process" : `cancelled: ${answer.body.status}`;
  } else {
    message.className = "error";
    message.textContent = (answer.body && answer.body.error) || `the viewer answered ${answer.status}`;
  }
}

document.getElementById("graph").addEventListener("click", (e) => {
  const g = e.target.closest("g.node");
  if (g) select(g.getAttribute("data-id"));
});
document.querySelector("#steps tbody").addEventListener("click", (e) => {
  const row = e.target.closest("tr[data-id]");
  if (row) select(row.getAttribute("data-id"));
});
let scrolling = false;
document.getElementById("steps-box").addEventListener("scroll", () => {
  if (scrolling) return;
  scrolling = true;
  requestAnimationFrame(() => { scrolling = false; drawWindow(); });
});
document.getElementById("resume").addEventListener("click", () => act("resume"));
document.getElementById("cancel").addEventListener("click", () => {
  if (confirm(`Cancel run ${RUN_ID} and undo what its steps did?`)) act("cancel");
});
document.getElementById("zoom-in").addEventListener("click", () => zoom(state.zoom * 1.25));
document.getElementById("zoom-out").addEventListener("click", () => zoom(state.zoom / 1.25));
document.getElementById("zoom-fit").addEventListener("click", () => {
  const svg = document.querySelector("#graph svg");
  if (svg) zoom((document.getElementById("graph").clientWidth - 4) / Number(svg.getAttribute("width")));
});
load();
