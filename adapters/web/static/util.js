// Small helpers shared by the playground's modules: DOM building, ids, money, fetch.

export const $ = (id) => document.getElementById(id);

// h("p", {class: "x", text: "hi", "data-testid": "t", onclick: fn}, child...)
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") el.textContent = value;
    else if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return el;
}

// A UUID for the idempotency key; randomUUID needs a secure context (not a LAN address).
export function requestId() {
  if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = Array.from(b, (v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

// Mirrors bot.money.format_usd: cents when exact, else at least four decimals.
export function formatUsd(micros) {
  const sign = micros < 0 ? "-" : "";
  const abs = Math.abs(micros);
  const dollars = abs / 1e6;
  if (abs % 10000 === 0) return `${sign}$${dollars.toFixed(2)}`;
  let text = dollars.toFixed(6).replace(/0+$/, "");
  if (text.split(".")[1].length < 4) text = dollars.toFixed(4);
  return `${sign}$${text}`;
}

// fetch() that never throws: {ok, status, data} or {ok: false, status, error: {code, message,
// field}} with the server's own words (bot.messages.render_error) whenever it sent them.
export async function api(path, options) {
  let response;
  try {
    response = await fetch(path, { credentials: "same-origin", ...options });
  } catch (err) {
    const message = "The playground server cannot be reached. Is bananabot still running?";
    return { ok: false, status: 0, error: { code: "network", message } };
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (!response.ok) {
    const error = (body && body.error)
      || { code: "http_error", message: `The server answered ${response.status}.` };
    return { ok: false, status: response.status, error };
  }
  return { ok: true, status: response.status, data: body };
}
