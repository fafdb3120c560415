// The import screen (#/import): choose a WhatsApp export, see what the parser found, settle
// the date order and who is who, then import into this device's encrypted store. The file
// goes to this app on 127.0.0.1 only; nothing here talks to the Baat server.

import { $, ApiError, api, h, toast } from "./dom.js";
import { stillOn } from "./app.js";
import * as chats from "./chats.js";

const PHASES = { parse: "Reading the transcript", media: "Storing attachments", messages: "Storing messages" };
let current = null; // {upload, chat, contacts, me, date_order, preview}

export function showImport() {
  current = null;
  $("#pane").replaceChildren(
    h("section", { class: "import", "aria-labelledby": "import-title" },
      h("header", { class: "pane-head" },
        h("a", { href: "#/", class: "back", "aria-label": "Back to chats" }, "←"),
        h("h2", { id: "import-title", tabindex: "-1" }, "Import a WhatsApp chat")),
      h("div", { class: "scroll" },
        h("p", {}, "In WhatsApp, open the chat, choose “Export chat” and save the file. Choose it here: ",
          "it goes only to the Baat app on this computer, is read here and stored encrypted on this ",
          "device. Nothing is sent to the server."),
        h("form", { id: "import-file-form", class: "import-file", onsubmit: (e) => e.preventDefault() },
          h("label", { for: "import-file" }, "WhatsApp export (.txt or .zip)"),
          h("input", { id: "import-file", type: "file", accept: ".txt,.zip,text/plain,application/zip",
            "aria-describedby": "import-error", onchange: chooseFile })),
        h("p", { id: "import-error", class: "form-error", role: "alert" }),
        h("p", { id: "import-status", class: "hint", role: "status", "aria-live": "polite" }),
        h("div", { id: "import-preview" }))));
  $("#import-title").focus();
}

function status(text) {
  const el = $("#import-status");
  if (el) el.textContent = text;
}

function fail(err) {
  const el = $("#import-error");
  if (el) el.textContent = err.message;
  status("");
}

async function upload(file) {
  let response;
  try {
    response = await fetch("/api/import/upload", {
      method: "POST",
      credentials: "same-origin",
      // Not JSON: the custom header is what a form on another site cannot send.
      headers: { accept: "application/json", "content-type": "application/octet-stream",
        "x-baat-request": "1", "x-file-name": encodeURIComponent(file.name) },
      body: file,
    });
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

async function chooseFile(event) {
  const file = event.currentTarget.files[0];
  $("#import-error").textContent = "";
  $("#import-preview").replaceChildren();
  current = null;
  if (!file) return;
  status(`Reading ${file.name}…`);
  try {
    const data = await upload(file);
    if (!stillOn("import")) return;
    current = { ...data, date_order: null };
    status("");
    render();
  } catch (err) {
    if (stillOn("import")) fail(err);
  }
}

async function chooseOrder(event) {
  const order = event.currentTarget.value;
  try {
    const data = await api(`/api/import/${current.upload}/preview`, { method: "POST", body: { date_order: order } });
    Object.assign(current, data, { date_order: order, ambiguous: current.ambiguous });
    $("#import-error").textContent = "";
    render(`order-${order}`);
  } catch (err) {
    fail(err);
  }
}

// -- the preview -------------------------------------------------------------------------

function render(focusId = null) {
  const box = $("#import-preview");
  if (!box || !current) return;
  // replaceChildren would write a null as the text "null": only real nodes go in.
  box.replaceChildren(...[
    current.ambiguous ? orderChooser() : null,
    current.preview ? summary(current.preview) : null,
    current.preview ? people(current.preview) : null,
    current.preview ? h("div", { class: "actions" },
      h("button", { id: "import-confirm", type: "button", class: "primary", onclick: confirmImport },
        `Import ${counted(current.preview.messages, current.preview.system_events)}`)) : null,
    h("div", { id: "import-run" })].filter(Boolean));
  if (focusId) document.getElementById(focusId)?.focus();
}

// "5 messages and 1 notice": the import stores both, and says so before and after.
function counted(messages, notices) {
  const m = `${messages} message${messages === 1 ? "" : "s"}`;
  return notices ? `${m} and ${notices} notice${notices === 1 ? "" : "s"}` : m;
}

function orderChooser() {
  const option = (value, label) => h("label", { class: "choice" },
    h("input", { type: "radio", name: "date-order", id: `order-${value}`, value, onchange: chooseOrder,
      checked: current.date_order === value }), h("span", {}, label));
  return h("fieldset", { class: "import-order" },
    h("legend", {}, "Which way are the dates written?"),
    h("p", { class: "hint" }, "No day in this file is above 12, so its dates read two ways. ",
      "Pick the order your phone uses; the first dates read both ways:"),
    h("table", { class: "samples" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Line"), h("th", { scope: "col" }, "In the file"),
        h("th", { scope: "col" }, "Day first"), h("th", { scope: "col" }, "Month first"))),
      h("tbody", {}, ...current.ambiguous.map((s) => h("tr", {},
        h("td", {}, String(s.line)), h("td", {}, h("code", {}, s.raw)),
        h("td", {}, s.dmy || "no such date"), h("td", {}, s.mdy || "no such date"))))),
    option("dmy", "Day first (31/12/2024)"),
    option("mdy", "Month first (12/31/2024)"));
}

function row(label, value, id) {
  return [h("dt", {}, label), h("dd", { id }, value)];
}

function summary(p) {
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
  const authors = Object.entries(p.authors).map(([a, n]) => `${a} (${n})`).join(", ") || "none";
  const att = p.attachments;
  return h("section", { class: "import-summary", "aria-labelledby": "import-summary-title" },
    h("h3", { id: "import-summary-title" }, `Chat “${p.chat}”`),
    h("dl", {},
      ...row("Messages", String(p.messages), "import-messages"),
      ...row("Authors", authors, "import-authors"),
      ...row("From", when(p.first)),
      ...row("To", when(p.last)),
      ...row("Dates read", p.date_order === "dmy" ? "day first" : p.date_order === "mdy" ? "month first" : p.date_order),
      ...row("System events", String(p.system_events), "import-system"),
      ...row("Attachments in the file", String(att.linked), "import-linked"),
      ...row("Attachments missing", String(att.not_in_export + att.omitted), "import-missing"),
      ...row("Lines not understood", String(p.lines_not_understood_total), "import-unparsed")),
    p.lines_not_understood.length ? h("ul", { class: "unparsed", "aria-label": "Lines not understood" },
      ...p.lines_not_understood.slice(0, 20).map((u) => h("li", {}, `Line ${u.line}: `, h("code", {}, u.text)))) : null);
}

function people(p) {
  const authors = Object.keys(p.authors);
  const mine = current.me ? authors.find((a) => a.toLowerCase() === current.me.toLowerCase()) : undefined;
  const me = h("select", { id: "import-me", onchange: () => drawMap(authors) },
    h("option", { value: "" }, "None of them"),
    ...authors.map((a) => h("option", { value: a, selected: a === mine }, a)));
  return h("fieldset", { class: "import-people" },
    h("legend", {}, "Who is who"),
    h("label", { for: "import-me" }, "Which author are you? Your messages become sent ones."),
    me,
    h("div", { id: "import-map" }, mapRows(authors, mine || "")));
}

function drawMap(authors) {
  $("#import-map").replaceChildren(...mapRows(authors, $("#import-me").value));
}

function mapRows(authors, me) {
  const others = authors.filter((a) => a !== me);
  if (!others.length || !current.contacts.length) return [];
  return [h("p", { class: "hint" }, "Optionally, tell which Baat contact each other author is: ",
    "a chat with one contact then joins your conversation with them.")].concat(
    others.map((a, i) => h("div", { class: "map-row" },
      h("label", { for: `import-map-${i}` }, `${a} is`),
      h("select", { id: `import-map-${i}`, dataset: { author: a } },
        h("option", { value: "" }, "not a contact (keep the name)"),
        ...current.contacts.map((c) => h("option", { value: c }, c))))));
}

// -- importing ---------------------------------------------------------------------------

async function confirmImport(event) {
  const button = event.currentTarget;
  const map = {};
  for (const sel of document.querySelectorAll("#import-map select")) {
    if (sel.value) map[sel.dataset.author] = sel.value;
  }
  const body = { date_order: current.date_order, me: $("#import-me").value || null, map };
  const bar = h("progress", { id: "import-progress", max: "1", value: "0", "aria-labelledby": "import-phase" });
  const phase = h("p", { id: "import-phase" }, "Starting the import…");
  $("#import-run").replaceChildren(phase, bar);
  button.disabled = true;
  $("#import-file").disabled = true;
  try {
    let job = await api(`/api/import/${current.upload}/start`, { method: "POST", body });
    while (job.state === "running") {
      bar.max = String(Math.max(job.total, 1));
      bar.value = String(job.done);
      phase.textContent = `${PHASES[job.phase] || job.phase}…`;
      await new Promise((resolve) => setTimeout(resolve, 150));
      job = await api(`/api/import/${current.upload}`);
    }
    if (job.state === "failed") throw new ApiError(400, job.error.code, job.error.message);
    bar.max = "1";
    bar.value = "1";
    finished(job.result, phase);
  } catch (err) {
    $("#import-run").replaceChildren();
    button.disabled = false;
    fail(err);
  } finally {
    const input = $("#import-file");
    if (input) input.disabled = false;
  }
}

function finished(r, phase) {
  const p = current.preview;
  // The result counts messages and notices together, as the button did.
  const all = p.messages + p.system_events;
  const added = r.added === 0 ? "Nothing new: every message was already imported."
    : r.added === all ? `Imported ${counted(p.messages, p.system_events)}.`
      : `Imported ${r.added} of ${counted(p.messages, p.system_events)}; ${r.already_present} were already there.`;
  phase.textContent = "Done.";
  $("#import-run").append(
    h("p", { id: "import-result", role: "status" }, added),
    h("a", { href: `#/chat/${encodeURIComponent(r.conversation)}`, id: "import-open" }, `Open “${r.chat}”`));
  $("#import-confirm").remove();
  $("#import-open").focus();
  toast(added);
  chats.refreshList();
}
