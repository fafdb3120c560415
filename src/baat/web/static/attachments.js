// Files in a conversation: the attach button, drag-and-drop and paste, a dialog to add a
// caption before sending, the uploads, and how an attachment is drawn in a message (image
// inline, opening a viewer with keyboard navigation; other files as a download link;
// progress; failures). 1:1 chats and groups alike.
// The page hands the file to the app only; the app encrypts and sends it. Progress of the
// app's upload to the server and of its downloads arrives as "upload"/"download" events.

import { $, ApiError, h, toast } from "./dom.js";

const IMAGES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);
const drawn = new Map(); // "direction:id" -> { sig, el }: kept across redraws of a message

function sizeText(bytes) {
  if (!bytes) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

function percent(done, total) {
  return total > 0 ? Math.min(100, Math.floor((done * 100) / total)) : 0;
}

function bar(label) {
  return h("progress", { max: "100", value: "0", "aria-label": label });
}

// -- in a message ------------------------------------------------------------------------

export function attachmentView(m) {
  const a = m.attachment;
  const key = `${m.direction}:${m.id}`;
  const sig = `${a.state}|${a.error || ""}`;
  const known = drawn.get(key);
  if (known && known.sig === sig) return known.el;
  const el = draw(m, a);
  drawn.set(key, { sig, el });
  return el;
}

function draw(m, a) {
  const name = a.file_name || "attachment";
  const url = `/api/attachments/${encodeURIComponent(m.id)}`;
  const dataset = { att: `${m.direction}:${m.id}`, state: a.state };
  if (a.state === "failed") {
    return h("p", { class: "attachment failed", dataset },
      h("strong", {}, `⚠ ${name} could not be received`),
      a.error ? `: ${a.error}` : ".",
      " Ask the sender to send it again.");
  }
  const isImage = IMAGES.has(a.content_type);
  const size = {};
  if (a.width && a.height) Object.assign(size, { width: String(a.width), height: String(a.height) });
  if (a.state === "pending") {
    return h("div", { class: "attachment pending", dataset },
      isImage && a.thumbnail ? h("img", { class: "thumb", src: `${url}/thumbnail`, alt: `${name} (preview)`, ...size }) : null,
      h("span", {}, `${name} ${sizeText(a.size)} · downloading…`),
      bar(`Downloading ${name}`));
  }
  if (a.state !== "ready") {
    // Not a file sent with Baat (an imported chat's attachment, say): name and size only.
    return h("p", { class: "attachment", dataset }, `📎 ${name} ${sizeText(a.size)}`);
  }
  if ((a.content_type || "").startsWith("audio/")) {
    return h("figure", { class: "attachment audio", dataset },
      h("audio", { controls: "", preload: "none", src: url, "aria-label": name }),
      h("figcaption", {}, h("a", { href: `${url}?download=1`, download: name }, `📎 ${name}`),
        h("span", { class: "hint" }, ` ${sizeText(a.size)}`)));
  }
  if (isImage) {
    // A click opens the viewer (Escape closes it, arrows go through the chat's images);
    // downloading is the link under it.
    return h("figure", { class: "attachment image", dataset },
      h("button", { type: "button", class: "image-open", "aria-label": `Open ${name}`,
        onclick: (e) => openViewer(e.currentTarget.querySelector("img")) },
      h("img", { src: url, alt: name, ...size })),
      h("figcaption", { class: "hint" }, h("a", { href: `${url}?download=1`, download: name }, `Download ${name}`),
        ` ${sizeText(a.size)}`));
  }
  return h("p", { class: "attachment file", dataset },
    h("a", { href: `${url}?download=1`, download: name }, `📎 ${name}`),
    h("span", { class: "hint" }, ` ${sizeText(a.size)}`));
}

// -- sending -----------------------------------------------------------------------------

// The composer's attach button (a real button: focusable, labelled) and its file input.
// `target()` answers the open chat as { chat, username }, or null; `sent()` reloads it.
export function composerAttach(target, sent) {
  const input = h("input", { id: "composer-file", type: "file", multiple: true, hidden: true, tabindex: "-1",
    "aria-hidden": "true", onchange: () => {
      const files = [...input.files];
      input.value = "";
      stage(files, target, sent);
    } });
  const button = h("button", { id: "composer-attach", type: "button", class: "attach",
    "aria-label": "Attach a file or image", title: "Attach a file or image", onclick: () => input.click() }, "📎");
  return [button, input];
}

// Files dropped on the conversation or pasted into the composer go the same way as
// chosen ones: through the caption dialog.
export function acceptFiles(section, composer, target, sent) {
  const has = (e) => [...(e.dataTransfer?.types || [])].includes("Files");
  section.addEventListener("dragover", (e) => {
    if (!has(e)) return;
    e.preventDefault();
    section.classList.add("dropping");
  });
  section.addEventListener("dragleave", (e) => {
    if (!section.contains(e.relatedTarget)) section.classList.remove("dropping");
  });
  section.addEventListener("drop", (e) => {
    section.classList.remove("dropping");
    if (!has(e)) return;
    e.preventDefault();
    stage([...e.dataTransfer.files], target, sent);
  });
  composer.addEventListener("paste", (e) => {
    const files = [...(e.clipboardData?.files || [])];
    if (!files.length) return; // text is pasted as usual
    e.preventDefault();
    stage(files, target, sent);
  });
}

// What is about to be sent, with a caption field: Send or Cancel.
function stage(files, target, sent) {
  const to = target();
  if (!files.length || !to || document.getElementById("send-files")) return;
  const back = document.activeElement;
  const caption = h("textarea", { id: "send-files-caption", rows: "2", maxlength: "16000", dir: "auto",
    placeholder: "Add a caption" });
  const title = files.length === 1 ? `Send ${files[0].name}` : `Send ${files.length} files`;
  const dialog = h("dialog", { id: "send-files", class: "dialog", "aria-labelledby": "send-files-title" },
    h("form", { method: "dialog" },
      h("h2", { id: "send-files-title", dir: "auto" }, title),
      h("ul", { class: "staged", "aria-label": "Files" }, ...files.map((f) => h("li", { dir: "auto" },
        `📎 ${f.name}`, h("span", { class: "hint" }, ` ${sizeText(f.size)}`)))),
      h("label", { for: "send-files-caption" }, files.length === 1 ? "Caption" : "Caption (with the first file)"),
      caption,
      h("div", { class: "actions" },
        h("button", { value: "cancel", type: "submit" }, "Cancel"),
        h("button", { value: "send", type: "submit", class: "primary" }, "Send"))));
  caption.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      dialog.close("send");
    }
  });
  document.body.append(dialog);
  dialog.addEventListener("close", () => {
    const go = dialog.returnValue === "send";
    const text = caption.value.trim();
    dialog.remove();
    if (back && back.isConnected) back.focus();
    if (go) uploadAll(files, to, sent, text);
  });
  dialog.showModal();
  caption.focus();
}

// -- the image viewer --------------------------------------------------------------------

function openViewer(img) {
  const images = [...document.querySelectorAll("#messages .attachment.image img")];
  let at = Math.max(0, images.indexOf(img));
  const back = document.activeElement;
  const shown = h("img", { class: "viewer-image", alt: "" });
  const where = h("p", { class: "hint", "aria-live": "polite" });
  const download = h("a", { class: "button" }, "Download");
  const prev = h("button", { type: "button", "aria-label": "Previous image", onclick: () => step(-1) }, "←");
  const next = h("button", { type: "button", "aria-label": "Next image", onclick: () => step(1) }, "→");
  const dialog = h("dialog", { id: "viewer", class: "dialog viewer", "aria-label": "Image viewer" },
    h("form", { method: "dialog" },
      h("figure", {}, shown, h("figcaption", { dir: "auto" }, where)),
      h("div", { class: "actions" }, prev, next, download,
        h("button", { type: "submit", class: "primary" }, "Close"))));
  function show() {
    const src = images[at];
    shown.src = src.src;
    shown.alt = src.alt;
    where.textContent = `${src.alt} (${at + 1} of ${images.length})`;
    download.href = `${new URL(src.src).pathname}?download=1`;
    download.setAttribute("download", src.alt);
    prev.disabled = at === 0;
    next.disabled = at === images.length - 1;
  }
  function step(delta) {
    at = Math.min(images.length - 1, Math.max(0, at + delta));
    show();
  }
  // On the document: a button disabled at either end drops the focus out of the dialog.
  const keys = (e) => {
    if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
      e.preventDefault();
      step(e.key === "ArrowLeft" ? -1 : 1);
    }
  };
  document.addEventListener("keydown", keys);
  document.body.append(dialog);
  dialog.addEventListener("close", () => {
    document.removeEventListener("keydown", keys);
    dialog.remove();
    if (back && back.isConnected) back.focus();
  });
  show();
  dialog.showModal();
}

export function uploadsList() {
  return h("ul", { id: "uploads", class: "uploads", "aria-label": "Files being sent", "aria-live": "polite", hidden: true });
}

const uploads = new Map(); // upload token -> its row

async function uploadAll(files, to, sent, caption = "") {
  for (const [i, file] of files.entries()) await uploadOne(file, to, sent, i === 0 ? caption : "");
}

function token() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function uploadOne(file, to, sent, caption = "") {
  const list = $("#uploads");
  const id = token();
  const progress = bar(`Sending ${file.name}`);
  const state = h("span", { class: "upload-state" }, "0 %");
  const row = h("li", { class: "upload", dataset: { upload: id } },
    h("span", { class: "upload-name" }, file.name), progress, state);
  uploads.set(id, { row, progress, state });
  if (list) {
    list.append(row);
    list.hidden = false;
  }
  const query = new URLSearchParams({ chat: to.chat, to: to.username || "", name: file.name, upload: id });
  if (caption) query.set("caption", caption);
  try {
    const response = await fetch(`/api/attachments?${query}`, {
      method: "POST",
      credentials: "same-origin",
      headers: { accept: "application/json", "content-type": "application/octet-stream", "x-baat-request": "1" },
      body: file,
    });
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const e = (data && data.error) || {};
      throw new ApiError(response.status, e.code || "http_error", e.message || `HTTP ${response.status}`);
    }
    setProgress(id, 1, 1);
    state.textContent = "100 % · sent";
    sent();
    setTimeout(() => finish(id), 4000);
  } catch (err) {
    row.classList.add("failed");
    state.textContent = `Not sent: ${err.message}`;
    toast(err.code === "identity_changed" ? `${to.username}'s safety number changed: compare it before sending.`
      : err.code === "app_unreachable" || !err.code ? "The Baat app is not running." : `Not sent: ${err.message}`, "error");
    setTimeout(() => finish(id), 10000);
  }
}

function finish(id) {
  const up = uploads.get(id);
  uploads.delete(id);
  if (!up) return;
  up.row.remove();
  const list = $("#uploads");
  if (list && !list.children.length) list.hidden = true;
}

function setProgress(id, done, total) {
  const up = uploads.get(id);
  if (!up) return;
  const p = percent(done, total);
  up.progress.value = p;
  up.row.dataset.percent = String(p);
  if (!up.row.classList.contains("failed")) up.state.textContent = `${p} %`;
}

// -- events ------------------------------------------------------------------------------

export function onProgress(event) {
  if (event.type === "upload") {
    setProgress(event.upload, event.done, event.total);
    return;
  }
  const el = document.querySelector(`[data-att="in:${CSS.escape(event.id)}"] progress`);
  if (el) el.value = percent(event.done, event.total);
}

// A chat was closed or the app locked: drawn elements belong to the old screen.
export function forget() {
  drawn.clear();
}
