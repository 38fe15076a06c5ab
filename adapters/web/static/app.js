// bananabot playground: vanilla JS modules, no build step. The server is the source of
// truth: the page renders job views from POST answers, Server-Sent Events and (as a
// fallback) polling; this module runs the form, the budget line and the event stream.

import { addPendingCard, board, loadHistory, pollUnfinished, updateEmpty, upsert } from "./jobs.js";
import { $, api, formatUsd, h, requestId } from "./util.js";

const POLL_MS = 3000;
const FIELD_CONTROLS = {
  prompt: "prompt", model: "model", aspect_ratio: "aspect_ratio", resolution: "resolution",
  seed: "seed", number_results: "n", n: "n", references: "refs",
  safety_tolerance: "safety_tolerance",
};

const state = {
  config: null,
  refs: [], // {file, url}
  retry: null, // {id, fingerprint} of a submit the network lost
};

// --- the form ----------------------------------------------------------------------

const REMEMBERED = ["model", "resolution", "aspect_ratio"];

function remember() {
  try {
    const choice = Object.fromEntries(REMEMBERED.map((id) => [id, $(id).value]));
    localStorage.setItem("bananabot.form", JSON.stringify(choice));
  } catch (err) {
    // storage may be disabled; the defaults will do
  }
}

function recalled() {
  try {
    return JSON.parse(localStorage.getItem("bananabot.form") || "{}") || {};
  } catch (err) {
    return {};
  }
}

function currentModel() {
  return board.models.get($("model").value) || state.config.models[0];
}

function fillSelect(select, values, keep, fallback, label) {
  const previous = keep && values.includes(keep) ? keep : fallback;
  select.replaceChildren(...values.map((v) => h("option", { value: v, text: label ? label(v) : v })));
  select.value = values.includes(previous) ? previous : values[0];
}

function updateSizeOptions() {
  const model = currentModel();
  const tier = $("resolution").value;
  fillSelect($("resolution"), model.tiers, tier, model.default_tier);
  const newTier = $("resolution").value;
  const ratio = $("aspect_ratio").value;
  fillSelect($("aspect_ratio"), model.ratios[newTier], ratio, "1:1", (r) => {
    const size = model.sizes[newTier][r];
    return size ? `${r}  (${size[0]}×${size[1]})` : r;
  });
  $("n").max = String(Math.min(4, model.results_max));
  updateEstimate();
}

function updateEstimate() {
  if (!state.config) return;
  const model = currentModel();
  const tier = $("resolution").value;
  const n = Math.max(1, Math.min(Number($("n").value) || 1, model.results_max));
  const perImage = (model.base_price_micros[tier] || 0) + model.reference_price_micros * state.refs.length;
  const size = (model.sizes[tier] || {})[$("aspect_ratio").value];
  const pixels = size ? ` · ${size[0]}×${size[1]}` : "";
  $("estimate").textContent = `Estimate ${formatUsd(perImage * n)}${pixels}`;
}

function renderRefs() {
  const max = state.config ? state.config.max_references : 14;
  $("ref-count").textContent = state.refs.length
    ? `${state.refs.length} of ${max}` : `optional, up to ${max}`;
  const thumbs = state.refs.map((ref, i) => h("li", { class: "thumb", "data-testid": "reference-thumb" },
    h("img", { src: ref.url, alt: `Reference ${i + 1}: ${ref.file.name}` }),
    h("button", {
      type: "button", class: "thumb-remove", "aria-label": `Remove reference ${i + 1}`, text: "×",
      onclick: () => { URL.revokeObjectURL(ref.url); state.refs.splice(i, 1); renderRefs(); },
    })));
  $("ref-thumbs").replaceChildren(...thumbs);
  updateEstimate();
}

function addFiles(files) {
  const max = state.config ? state.config.max_references : 14;
  const limit = state.config ? state.config.max_upload_bytes : 20 * 1024 * 1024;
  clearFormError();
  for (const file of files) {
    if (!file.type.startsWith("image/")) {
      showFormError(`${file.name} is not an image.`, "references");
      continue;
    }
    if (file.size > limit) {
      const mib = (limit / 1048576).toFixed(0);
      showFormError(`${file.name} is larger than the limit of ${mib} MiB.`, "references");
      continue;
    }
    if (state.refs.length >= max) {
      showFormError(`At most ${max} reference images can be attached.`, "references");
      break;
    }
    state.refs.push({ file, url: URL.createObjectURL(file) });
  }
  renderRefs();
}

function clearFormError() {
  $("form-error").hidden = true;
  $("form-error").textContent = "";
  document.querySelectorAll("[aria-invalid=true]").forEach((el) => el.removeAttribute("aria-invalid"));
}

function showFormError(message, field) {
  $("form-error").textContent = message;
  $("form-error").hidden = false;
  const control = field && $(FIELD_CONTROLS[field] || "");
  if (control) {
    control.setAttribute("aria-invalid", "true");
    if (control.closest("details")) control.closest("details").open = true;
  }
}

// The form as name -> value pairs; blank optional fields are left out (server defaults).
function formFields() {
  const fields = [
    ["prompt", $("prompt").value],
    ["model", $("model").value],
    ["resolution", $("resolution").value],
    ["aspect_ratio", $("aspect_ratio").value],
    ["n", $("n").value || "1"],
  ];
  if ($("seed").value.trim()) fields.push(["seed", $("seed").value.trim()]);
  if ($("safety_tolerance").value) fields.push(["safety_tolerance", $("safety_tolerance").value]);
  return fields;
}

async function onGenerate(event) {
  event.preventDefault();
  clearFormError();
  const button = $("generate");
  if (button.disabled) return;
  const fields = formFields();
  // After a network failure the same form is retried with the same request id, so a
  // request that did reach the server is not queued twice (idempotency key web:<id>).
  const fingerprint = JSON.stringify([fields, state.refs.map((r) => [r.file.name, r.file.size])]);
  const id = state.retry && state.retry.fingerprint === fingerprint ? state.retry.id : requestId();
  const form = new FormData();
  form.append("request_id", id);
  for (const [name, value] of fields) form.append(name, value);
  for (const ref of state.refs) form.append("ref", ref.file, ref.file.name);

  button.disabled = true;
  button.textContent = state.refs.length ? "Uploading…" : "Sending…";
  const pending = addPendingCard($("prompt").value);
  const result = await api("/api/imagine", { method: "POST", body: form });
  pending.remove();
  button.disabled = false;
  button.textContent = "Generate";
  state.retry = result.status === 0 ? { id, fingerprint } : null;
  if (!result.ok) {
    showFormError(result.error.message, result.error.field);
    if (result.status === 402) loadBudget();
    updateEmpty();
    return;
  }
  upsert(result.data.job);
  loadBudget();
}

// --- server state ------------------------------------------------------------------

async function loadBudget() {
  const result = await api("/api/budget");
  const el = $("budget");
  if (!result.ok) {
    el.textContent = "Budget unavailable.";
    return;
  }
  el.textContent = result.data.line;
  el.title = result.data.caps
    .map((c) => `${c.line} (spent ${c.spent}, reserved ${c.held})`).join("\n");
  const tight = result.data.caps[0];
  el.classList.toggle("low", Boolean(tight && tight.left_micros < tight.limit_micros * 0.1));
}

function setConnection(text, live) {
  board.live = live;
  $("conn").textContent = text;
  $("conn").classList.toggle("live", live);
}

function connectEvents() {
  if (!window.EventSource) return;
  const source = new EventSource("/api/events");
  for (const type of ["queued", "generating", "done", "failed"]) {
    source.addEventListener(type, (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (err) {
        return;
      }
      upsert(event.job, event);
      if (type === "done" || type === "failed") loadBudget();
    });
  }
  source.addEventListener("open", () => {
    setConnection("Live", true);
    pollUnfinished(true);
  });
  source.addEventListener("error", () => setConnection("Reconnecting…", false));
}

// --- start -------------------------------------------------------------------------

async function start() {
  const result = await api("/api/config");
  if (!result.ok) {
    showFormError(result.error.message);
    return;
  }
  state.config = result.data;
  board.onMoneyChanged = loadBudget;
  for (const model of state.config.models) board.models.set(model.name, model);
  const models = state.config.models.map((m) => m.name);
  const saved = recalled();
  fillSelect($("model"), models, saved.model, state.config.default_model,
    (name) => board.models.get(name).display_name);
  const levels = state.config.safety_tolerances;
  const allowed = levels.slice(0, levels.indexOf(state.config.safety_max) + 1);
  $("safety_tolerance").replaceChildren(
    h("option", { value: "", text: `Default (${state.config.safety_max})` }),
    ...allowed.map((v) => h("option", { value: v, text: v })));
  $("sandbox-banner").hidden = !state.config.sandbox;
  updateSizeOptions();
  for (const id of ["resolution", "aspect_ratio"]) {
    if (saved[id] && [...$(id).options].some((o) => o.value === saved[id])) $(id).value = saved[id];
    updateSizeOptions();
  }
  renderRefs();

  $("model").addEventListener("change", () => { updateSizeOptions(); remember(); });
  $("resolution").addEventListener("change", () => { updateSizeOptions(); remember(); });
  $("aspect_ratio").addEventListener("change", () => { updateEstimate(); remember(); });
  $("n").addEventListener("input", updateEstimate);
  $("prompt").addEventListener("input", () => {
    $("prompt-count").textContent = $("prompt").value.length.toLocaleString();
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("imagine-form").requestSubmit();
  });
  $("imagine-form").addEventListener("submit", onGenerate);
  $("refs").addEventListener("change", (event) => {
    addFiles(event.target.files);
    event.target.value = ""; // choosing the same file again adds it again
  });
  const zone = $("dropzone");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    addFiles(event.dataTransfer.files);
  });

  connectEvents();
  await Promise.all([loadHistory(), loadBudget()]);
  setInterval(() => pollUnfinished(false), POLL_MS);
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);
