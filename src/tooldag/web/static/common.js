// tooldag ui: what both pages share. The token comes from the address tooldag ui printed; every
// request carries it in a header (the event stream, which cannot send headers, in the query).
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token") || "";

function withToken(path) {
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN);
}

async function api(path, options = {}) {
  const headers = Object.assign({ "X-Tooldag-Token": TOKEN }, options.headers || {});
  let response;
  try {
    response = await fetch(path, Object.assign({}, options, { headers }));
  } catch (e) {
    return { ok: false, status: 0, body: { error: "the viewer is not answering (stopped?)" } };
  }
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null;
  }
  return { ok: response.ok, status: response.status, body };
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

function badge(status, palette) {
  const span = el("span", { class: "badge", text: status });
  paintBadge(span, status, palette);
  return span;
}

function paintBadge(span, status, palette) {
  const colours = (palette && palette[status]) || ["#ffffff", "#5f6b7a"];
  span.textContent = status;
  span.style.background = colours[0];
  span.style.borderColor = colours[1];
  span.style.color = "#1f2933";
}

function seconds(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "";
  if (value < 1) return value.toFixed(3) + "s";
  if (value < 60) return value.toFixed(2) + "s";
  const m = Math.floor(value / 60);
  return m + "m" + String(Math.round(value - m * 60)).padStart(2, "0") + "s";
}

function clock(epoch) {
  if (!epoch) return "";
  const d = new Date(epoch * 1000);
  return d.toLocaleString(undefined, { hour12: false });
}

function number(value) {
  return (value || 0).toLocaleString("en-US");
}
