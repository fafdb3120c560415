// Small helpers shared by every screen: building elements, calling the app's JSON API,
// formatting times, and the status toast. No framework: the screens are small.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Every call sends JSON (the app refuses unsafe requests without it) and throws ApiError
// with the app's stable error code, so screens switch on codes, never on wording.
export async function api(path, { method = "GET", body } = {}) {
  const init = { method, headers: { accept: "application/json" }, credentials: "same-origin" };
  if (method !== "GET") {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body || {});
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "app_unreachable", "The Baat app is not running. Start it again with 'baat app'.");
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(response.status, e.code || "http_error", e.message || `HTTP ${response.status}`);
  }
  return data;
}

// h("p", {class: "x", onclick: fn}, "text", child) -> element. Strings become text nodes,
// so message text can never turn into markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric" });
const shortDayFmt = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });

export function timeOf(ms) {
  return timeFmt.format(new Date(ms));
}

export function dayKey(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

export function dayLabel(ms) {
  const today = new Date();
  const yesterday = new Date(Date.now() - 86400000);
  if (dayKey(ms) === dayKey(today.getTime())) return "Today";
  if (dayKey(ms) === dayKey(yesterday.getTime())) return "Yesterday";
  return dayFmt.format(new Date(ms));
}

// Chat list times: the time today, else the day.
export function shortWhen(ms) {
  return dayKey(ms) === dayKey(Date.now()) ? timeOf(ms) : shortDayFmt.format(new Date(ms));
}

// Server exports count days since 1970-01-01 (the server keeps days, not times).
export function dateOfDay(days) {
  return new Date(days * 86400000).toISOString().slice(0, 10);
}

let toastTimer = 0;
export function toast(message, kind = "info") {
  const el = $("#toast");
  el.textContent = message;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, kind === "error" ? 8000 : 4000);
}

// Call fn at most once per frame-ish burst: many events in a row make one reload.
export function debounce(fn, ms = 60) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// A confirmation dialog (native <dialog>: focus trap, Escape to cancel).
export function confirmDialog({ title, body, confirm, danger = false, input = null }) {
  return new Promise((resolve) => {
    const field = input
      ? h("input", { id: "dialog-input", autocomplete: "off", spellcheck: "false" })
      : null;
    const dialog = h("dialog", { "aria-labelledby": "dialog-title", class: "dialog" },
      h("form", { method: "dialog" },
        h("h2", { id: "dialog-title" }, title),
        ...[].concat(body).map((p) => (p instanceof Node ? p : h("p", {}, p))),
        input ? h("label", { for: "dialog-input" }, input.label) : null,
        field,
        h("div", { class: "actions" },
          h("button", { value: "cancel", type: "submit" }, "Cancel"),
          h("button", { value: "ok", type: "submit", class: danger ? "danger" : "primary" }, confirm))));
    document.body.append(dialog);
    dialog.addEventListener("close", () => {
      const okd = dialog.returnValue === "ok";
      const value = field ? field.value : null;
      dialog.remove();
      resolve(okd ? (field ? value : true) : null);
    });
    dialog.showModal();
    if (field) field.focus();
  });
}
