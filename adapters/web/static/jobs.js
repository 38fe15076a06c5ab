// The job list: one card per job, rendered from the server's job views (POST answers,
// Server-Sent Events, history and polling), newest first. Buttons carry only ids.

import { $, api, h, requestId } from "./util.js";

const STATUS_RANK = { queued: 0, running: 1, succeeded: 2, failed: 2, cancelled: 2 };
const STALE_MS = 4000;

// What the list needs from the page: the models (for sizes), whether the event stream is
// live, and what to do when money may have moved (refresh the budget line).
export const board = {
  models: new Map(),
  jobs: new Map(), // id -> {view, el, seen, signature}
  live: false,
  onMoneyChanged: () => {},
};

export function addPendingCard(prompt) {
  const card = h("li", { class: "job status-sending", "data-testid": "job-pending" },
    h("div", { class: "job-head" }, h("p", { class: "job-prompt", text: prompt || "(no prompt)" })),
    h("p", { class: "job-status" }, h("span", { class: "dot", "aria-hidden": "true" }), "Sending…"));
  $("jobs").prepend(card);
  updateEmpty();
  return card;
}

// --- jobs --------------------------------------------------------------------------

function statusText(view) {
  switch (view.status) {
    case "queued": return view.position ? `Queued #${view.position}` : "Queued";
    case "running": return "Generating…";
    case "succeeded": return view.images.length === 1 ? "Done" : `Done · ${view.images.length} images`;
    case "cancelled": return "Cancelled";
    default: return "Failed";
  }
}

function actionText(view) {
  if (!view.parent) return null;
  const which = `image ${view.parent.index + 1}`;
  const labels = { vary: `Variation of ${which}`, upscale: `4K upscale of ${which}`, edit: `Edit of ${which}` };
  return labels[view.action] || null;
}

function metaText(view) {
  const parts = [view.model_display];
  if (view.resolution) parts.push(view.resolution);
  if (view.aspect_ratio) parts.push(view.aspect_ratio);
  if (view.references) parts.push(view.references === 1 ? "1 reference" : `${view.references} references`);
  if (view.seed !== null && view.seed !== undefined) parts.push(`seed ${view.seed}`);
  const time = new Date(view.created_at);
  if (!Number.isNaN(time.getTime())) {
    parts.push(time.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  }
  return parts.join(" · ");
}

function signature(view) {
  return [view.status, view.position, view.images.length, view.error].join("|");
}

// Width / height of what a job will produce, for placeholders (1 when unknown).
function ratioOf(view) {
  const model = board.models.get(view.model);
  const tier = view.resolution || (model && model.default_tier);
  const table = model && tier ? model.sizes[tier] || {} : {};
  const size = view.aspect_ratio ? table[view.aspect_ratio] : null;
  if (size) return size[0] / size[1];
  const parts = (view.aspect_ratio || "").split(":").map(Number);
  return parts.length === 2 && parts[0] > 0 && parts[1] > 0 ? parts[0] / parts[1] : 1;
}

// Never taller than 70% of the window, whatever the aspect ratio.
function fitHeight(el, ratio) {
  el.style.maxWidth = `calc(70vh * ${ratio.toFixed(4)})`;
}

function renderResult(view, image) {
  const figure = h("figure", { class: "result", "data-testid": "result", "data-index": image.index });
  fitHeight(figure, image.width / image.height);
  if (image.withheld) {
    const text = "This image was flagged as NSFW and is withheld here.";
    figure.append(
      h("div", { class: "withheld", "data-testid": "withheld", text }),
      h("figcaption", { class: "caption", "data-testid": "caption", text: image.caption }));
    return figure;
  }
  const img = h("img", {
    src: image.url, alt: `Image ${image.index + 1} for: ${view.prompt.slice(0, 120)}`,
    width: image.width, height: image.height, "data-testid": "result-image", decoding: "async",
  });
  const link = { class: "result-link", href: image.url, target: "_blank", rel: "noopener" };
  figure.append(h("a", { ...link, title: "Open full size" }, img));
  if (image.sandbox) {
    // Sandbox pictures are simulated: say so on the picture, not only in the caption.
    figure.append(h("span", { class: "badge-sandbox", "data-testid": "sandbox-badge", text: "Sandbox" }));
  }
  figure.append(h("figcaption", { class: "caption", "data-testid": "caption", text: image.caption }));

  const input = h("input", {
    type: "text", class: "edit-input", "data-testid": "edit-instruction", required: true,
    placeholder: "Describe the change, e.g. make the sky pink", maxlength: 45000,
    "aria-label": `Edit instruction for image ${image.index + 1}`,
  });
  const editForm = h("form", { class: "edit-form", "data-testid": "edit-form", hidden: true },
    input,
    h("button", { type: "submit", class: "primary small", "data-testid": "edit-submit", text: "Apply edit" }),
    h("button", { type: "button", class: "ghost small", text: "Cancel", onclick: () => toggleEdit(false) }));
  const editButton = h("button", {
    type: "button", class: "secondary", "data-testid": "edit", "aria-expanded": "false", text: "Edit",
  });
  function toggleEdit(open) {
    editForm.hidden = !open;
    editButton.setAttribute("aria-expanded", String(open));
    if (open) input.focus();
  }
  editButton.addEventListener("click", () => toggleEdit(editForm.hidden));
  editForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (await act(view, image, "edit", figure, { instruction: input.value })) {
      input.value = "";
      toggleEdit(false);
    }
  });
  figure.append(
    h("div", { class: "result-actions" },
      h("button", {
        type: "button", class: "secondary", "data-testid": "vary", text: "Vary",
        onclick: () => act(view, image, "vary", figure),
      }),
      h("button", {
        type: "button", class: "secondary", "data-testid": "upscale", text: "Upscale 4K",
        disabled: !image.can_upscale, title: image.can_upscale ? null : "Already 4K",
        onclick: () => act(view, image, "upscale", figure),
      }),
      editButton),
    editForm);
  return figure;
}

function renderJob(view, el, extra) {
  el.className = `job status-${view.status}`;
  el.dataset.jobId = view.id;
  el.dataset.status = view.status;
  const origin = actionText(view);
  const children = [
    h("div", { class: "job-head" },
      h("p", { class: "job-prompt", "data-testid": "job-prompt", text: view.prompt }),
      h("p", { class: "job-meta" },
        origin ? h("span", { class: "job-origin", text: origin }) : null, metaText(view))),
    h("p", { class: "job-status", "data-testid": "job-status", role: "status" },
      h("span", { class: "dot", "aria-hidden": "true" }), statusText(view)),
  ];
  if (view.notices.length) {
    const notices = view.notices.map((text) => h("li", { text }));
    children.push(h("ul", { class: "notices", "data-testid": "notices" }, notices));
  }
  if (view.status === "succeeded") {
    const single = view.images.length === 1 ? "results single" : "results";
    children.push(h("div", { class: single }, view.images.map((image) => renderResult(view, image))));
  } else if (!view.finished) {
    const ratio = ratioOf(view);
    const boxes = Array.from({ length: Math.min(view.number_results, 4) }, () => {
      const box = h("div", { class: "placeholder", "aria-hidden": "true" });
      box.style.aspectRatio = String(ratio);
      fitHeight(box, ratio);
      return box;
    });
    children.push(h("div", { class: view.number_results === 1 ? "results single" : "results" }, boxes));
  }
  if (view.error) {
    children.push(h("p", { class: "job-error", "data-testid": "job-error", role: "alert", text: view.error }));
  }
  const summary = (extra && extra.summary) || view.summary;
  let money = `Estimate ${view.estimate} (reserved until it finishes).`;
  if (view.status === "succeeded" && summary) money = summary;
  else if (view.finished) money = `Estimate was ${view.estimate}.`;
  children.push(h("p", { class: "job-money", "data-testid": "job-cost", text: money }));
  children.push(
    h("p", { class: "action-error", "data-testid": "action-error", role: "alert", hidden: true }));
  el.replaceChildren(...children);
}

export function upsert(view, extra) {
  let entry = board.jobs.get(view.id);
  if (entry && STATUS_RANK[view.status] < STATUS_RANK[entry.view.status]) {
    entry.seen = Date.now(); // a late event (e.g. an old queue position): keep the newer state
    return;
  }
  const sig = signature(view);
  if (entry && entry.signature === sig) {
    entry.seen = Date.now();
    return;
  }
  if (!entry) {
    entry = { el: h("li", { "data-testid": "job" }) };
    board.jobs.set(view.id, entry);
    insertInOrder(entry.el, view);
  }
  entry.view = view;
  entry.seen = Date.now();
  entry.signature = sig;
  renderJob(view, entry.el, extra);
  updateEmpty();
}

function insertInOrder(el, view) {
  el.dataset.created = view.created_at;
  const list = $("jobs");
  for (const other of list.children) {
    if (other.dataset.created && other.dataset.created < view.created_at) {
      list.insertBefore(el, other);
      return;
    }
  }
  list.append(el);
}

export function updateEmpty() {
  $("empty").hidden = $("jobs").children.length > 0;
}

async function act(view, image, action, figure, body) {
  const buttons = figure.querySelectorAll("button");
  buttons.forEach((b) => { b.dataset.wasDisabled = b.disabled ? "1" : ""; b.disabled = true; });
  const card = figure.closest(".job");
  const errorEl = card && card.querySelector("[data-testid=action-error]");
  if (errorEl) errorEl.hidden = true;
  const result = await api(`/api/jobs/${encodeURIComponent(view.id)}/${action}/${image.index}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ request_id: requestId(), ...(body || {}) }),
  });
  buttons.forEach((b) => { b.disabled = b.dataset.wasDisabled === "1"; });
  if (!result.ok) {
    if (errorEl) {
      errorEl.textContent = result.error.message;
      errorEl.hidden = false;
    }
    if (result.status === 402) board.onMoneyChanged();
    return false;
  }
  upsert(result.data.job);
  const entry = board.jobs.get(result.data.job.id);
  if (entry) entry.el.scrollIntoView({ behavior: "smooth", block: "nearest" });
  board.onMoneyChanged();
  return true;
}

// --- server state ------------------------------------------------------------------

export async function loadHistory() {
  const result = await api("/api/history");
  if (!result.ok) return;
  for (const view of result.data.jobs.slice().reverse()) upsert(view);
  updateEmpty();
}

export async function pollUnfinished(force) {
  const now = Date.now();
  const due = [...board.jobs.values()].filter((e) => e.view && !e.view.finished
    && (force || !board.live || now - e.seen > STALE_MS));
  for (const entry of due) {
    const result = await api(`/api/jobs/${encodeURIComponent(entry.view.id)}`);
    if (result.ok) {
      const before = entry.view.status;
      upsert(result.data);
      if (result.data.finished && before !== result.data.status) board.onMoneyChanged();
    } else if (result.status === 404) {
      entry.seen = now;
    }
  }
}
