// The chat list, the conversation view, starting a chat, and searching the history.
// The app's store is the source of truth: events say what changed, and the affected
// conversation is reloaded from /api/messages and merged into what is on screen. How a
// message is drawn, replies, edits, typing and the timer are shared with groups (convo.js).

import { $, api, debounce, h, shortWhen, toast } from "./dom.js";
import { go, stillOn } from "./app.js";
import { acceptFiles, composerAttach, forget as forgetAttachments, uploadsList } from "./attachments.js";
import { businessCard } from "./business.js";
import * as convo from "./convo.js";
import { Timeline } from "./timeline.js";
import { setUnread } from "./notify.js";

const chatsById = new Map(); // chat id -> row of /api/chats
const names = new Map(); // chat id -> username, also for chats not in the list yet
let view = null; // the open conversation
let allMessages = null; // cached for search; dropped when anything arrives

export function init() {
  $("#new-chat-form").addEventListener("submit", startChat);
  $("#search").addEventListener("input", debounce(runSearch, 120));
  $("#search").addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      e.currentTarget.value = "";
      runSearch();
    }
  });
}

export function reset() {
  chatsById.clear();
  names.clear();
  view = null;
  allMessages = null;
  forgetAttachments();
}

// -- the list ----------------------------------------------------------------------------

export async function refreshList() {
  let data;
  try {
    data = await api("/api/chats");
  } catch (err) {
    if (err.code !== "locked" && err.code !== "not_registered") toast(err.message, "error");
    return;
  }
  chatsById.clear();
  for (const c of data.chats) {
    chatsById.set(c.chat, c);
    names.set(c.chat, c.username);
  }
  const list = $("#chat-list");
  list.replaceChildren(...data.chats.map(chatItem));
  $("#chat-empty").hidden = data.chats.length > 0;
  setUnread(data.chats.reduce((sum, c) => sum + (c.unread || 0), 0));
  if (view) updateHeader();
}

function chatItem(c) {
  const last = c.last;
  const preview = !last ? "No messages yet"
    : last.text === null ? "Held message"
    : last.deleted ? "message deleted"
    : `${last.direction === "out" ? "You: " : ""}${last.text || (last.attachment ? `📎 ${last.attachment.file_name}` : "")}`;
  const current = view && view.chat === c.chat;
  return h("li", {},
    h("a", { href: `#/chat/${encodeURIComponent(c.chat)}`, class: "chat-item", "aria-current": current ? "page" : null },
      h("span", { class: "avatar", "aria-hidden": "true" }, (c.username || "?").slice(0, 1).toUpperCase()),
      h("span", { class: "chat-main" },
        h("span", { class: "chat-name", dir: "auto" }, c.username || "unknown",
          c.identity_changed ? h("span", { class: "warn-mark", title: "Safety number changed" }, " ⚠",
            h("span", { class: "sr-only" }, "safety number changed")) : null,
          c.name_doubt ? h("span", { class: "warn-mark", title: "Name not confirmed" }, " ?",
            h("span", { class: "sr-only" }, "name not confirmed by the server")) : null),
        h("span", { class: "chat-last", dir: "auto" }, preview)),
      h("span", { class: "chat-side" },
        last ? h("time", { datetime: new Date(last.sent_at).toISOString() }, shortWhen(last.sent_at)) : null,
        c.read_only ? h("span", { class: "tag" }, "imported") : null,
        c.unread ? h("span", { class: "badge" }, String(c.unread),
          h("span", { class: "sr-only" }, c.unread === 1 ? " unread message" : " unread messages")) : null)));
}

async function startChat(event) {
  event.preventDefault();
  const input = $("#new-chat-name");
  const error = $("#new-chat-error");
  error.textContent = "";
  input.setAttribute("aria-describedby", "new-chat-error");
  const username = input.value.trim();
  if (!username) return;
  try {
    const found = await api("/api/lookup", { method: "POST", body: { username } });
    names.set(found.chat, found.username);
    input.value = "";
    input.removeAttribute("aria-invalid"); // the last failed lookup is over
    go(`#/chat/${encodeURIComponent(found.chat)}`);
  } catch (err) {
    error.textContent = err.code === "unknown_contact" ? `Nobody is called ${username} on this server.`
      : err.code === "not_connected" ? "Cannot reach the server to look the name up. Try again when online."
      : err.message;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

// -- the conversation --------------------------------------------------------------------

// Another screen takes the pane: events stop touching the conversation.
export function leave() {
  if (view) {
    convo.typingStop(view.chat);
    if (view.timeline) view.timeline.destroy();
  }
  view = null;
  highlightCurrent();
}

export function showNothing() {
  leave();
  $("#pane").replaceChildren(h("section", { class: "empty", "aria-label": "No chat open" },
    h("p", {}, "Pick a chat, or start one with a username."),
    h("p", { class: "hint" }, "Messages are end-to-end encrypted: only the people in a chat can read them.")));
}

export async function showChat(chat) {
  if (!names.has(chat)) await refreshList();
  if (!stillOn("chat", chat)) return;
  const username = names.get(chat);
  if (!username) {
    $("#pane").replaceChildren(h("section", { class: "empty" }, h("p", {}, "This chat does not exist."),
      h("a", { href: "#/" }, "Back to chats")));
    return;
  }
  if (view && view.timeline) view.timeline.destroy();
  view = { chat, username, timeline: null, highlight: takeHighlight() };
  // An imported chat nobody in it is linked to: there is no one to write to.
  const readOnly = Boolean((chatsById.get(chat) || {}).read_only);
  const jumping = Boolean(view.highlight); // a search hit takes the focus, not the composer
  const title = "chat-title";
  const text = h("textarea", { id: "composer-text", rows: "1", maxlength: "16000", placeholder: "Message",
    "aria-describedby": "composer-hint", dir: "auto", onkeydown: (e) => convo.composerKey(e, context()),
    oninput: (e) => { autosize(e); if (view) convo.typingInput(view.chat); } });
  $("#pane").replaceChildren(
    h("section", { class: "chat", "aria-labelledby": title },
      h("header", { class: "pane-head" },
        h("a", { href: "#/", class: "back", "aria-label": "Back to chats" }, "←"),
        h("h2", { id: title, dir: "auto" }, username),
        h("span", { id: "chat-verified", class: "pill", hidden: true }, "Verified"),
        readOnly ? h("span", { class: "pill" }, "Imported") : convo.timerPill(),
        ...(readOnly ? [] : convo.headOptions(convo.timerSelect(chat),
          h("a", { href: `#/contact/${encodeURIComponent(chat)}`, class: "head-link" }, "Safety number")))),
      h("div", { id: "chat-warning", class: "banner warn", role: "alert", hidden: true }),
      h("div", { id: "chat-doubt", class: "banner warn", role: "alert", hidden: true }),
      h("div", { id: "messages", class: "messages", role: "log", "aria-live": "polite",
        "aria-label": `Messages with ${username}`, tabindex: "0" }),
      ...(readOnly ? [h("p", { id: "chat-readonly", class: "hint readonly" },
        "Imported from WhatsApp and read-only: nobody in it is linked to a Baat contact. ",
        "To continue it in Baat, link it to a contact: ", h("code", {}, `baat chats map "${username}" --map "NAME=USERNAME"`))] : []),
      readOnly ? null : convo.typingLine(),
      readOnly ? null : uploadsList(),
      ...(readOnly ? [] : convo.composerContext(chat)),
      readOnly ? null : h("form", { class: "composer", onsubmit: send },
        ...composerAttach(() => view && { chat: view.chat, username: view.username }, () => reloadSoon()),
        h("label", { for: "composer-text", class: "sr-only" }, `Message to ${username}`),
        text,
        h("span", { id: "composer-hint", class: "sr-only" }, "Enter sends, Shift+Enter starts a new line, Escape cancels a reply or an edit, Up edits your last message."),
        h("button", { type: "submit", class: "primary" }, "Send"))));
  view.timeline = new Timeline($("#messages"), { draw: (m) => messageNode(m), seen: (ids) => markSeen(chat, ids) });
  $("#messages").addEventListener("keydown", (e) => {
    if (e.key === "Escape" && view) view.hitKey = null; // the log drops the highlight
  });
  if (!readOnly) {
    acceptFiles($("#pane > section.chat"), text, () => view && view.chat === chat && { chat, username }, () => reloadSoon());
  }
  highlightCurrent();
  updateHeader();
  if (!readOnly) businessCard(chat, username); // a business's disclosure (business.js)
  const focusNow = document.activeElement;
  await reloadChat();
  // Only if the person has not moved the focus meanwhile (to the attach button, say).
  const untouched = document.activeElement === focusNow || document.activeElement === document.body;
  if (!jumping && !readOnly && view && view.chat === chat && untouched) text.focus();
}

function highlightCurrent() {
  for (const a of document.querySelectorAll("#chat-list a")) {
    const current = view && a.getAttribute("href") === `#/chat/${encodeURIComponent(view.chat)}`;
    a.toggleAttribute("aria-current", Boolean(current));
    if (current) a.setAttribute("aria-current", "page");
  }
}

function updateHeader() {
  const row = chatsById.get(view.chat) || {};
  const pill = $("#chat-verified");
  if (!pill) return;
  pill.hidden = !row.verified;
  convo.showTimer(row.timer || 0);
  const warning = $("#chat-warning");
  warning.hidden = !row.identity_changed;
  if (row.identity_changed) {
    warning.replaceChildren(
      h("strong", {}, `${view.username}'s safety number changed.`), " ",
      row.held ? `${row.held} message${row.held === 1 ? " is" : "s are"} held and sending is paused until you compare it. `
        : "Sending is paused until you compare it. ",
      h("a", { href: `#/contact/${encodeURIComponent(view.chat)}` }, "Compare the safety number"));
  }
  const doubt = $("#chat-doubt");
  doubt.hidden = !row.name_doubt;
  if (row.name_doubt) {
    doubt.replaceChildren(h("strong", {}, `The name "${view.username}" is not confirmed: `),
      `${row.name_doubt}. This account named itself; someone may be pretending. `,
      h("a", { href: `#/contact/${encodeURIComponent(view.chat)}` }, "Compare the safety number"),
      " in person before you trust it.");
  }
  const composer = $("#composer-text");
  if (composer) composer.disabled = Boolean(row.identity_changed);
  const attach = $("#composer-attach");
  if (attach) attach.disabled = Boolean(row.identity_changed);
}

const reloadSoon = debounce(() => reloadChat());

async function reloadChat() {
  if (!view) return;
  const chat = view.chat;
  let data;
  try {
    data = await api(`/api/messages?chat=${encodeURIComponent(chat)}`);
  } catch (err) {
    toast(err.message, "error");
    return;
  }
  if (!view || view.chat !== chat || !$("#messages")) return;
  view.timeline.merge(data.messages);
  if (view.highlight) {
    const node = view.timeline.nodes.get(view.highlight);
    view.highlight = null;
    if (node) jumpTo(node);
  }
  // A redraw must not lose the message the person jumped to (until Escape ends it).
  const hit = view.hitKey && view.timeline.nodes.get(view.hitKey);
  if (hit) hit.classList.add("hit");
}

function messageNode(m) {
  const node = h("div", { class: `msg ${m.direction}${m.deleted ? " deleted" : ""}${m.notice ? " notice" : ""}`,
    dataset: { status: m.status } }, ...convo.messageParts(m, context()));
  node.baatMessage = m;
  return node;
}

// What convo.js needs to draw and act on this conversation's messages.
function context() {
  const chat = view.chat;
  return {
    chat,
    group: false,
    peer: view.username,
    reload: reloadSoon,
    jump: (id) => jumpTo(view && view.timeline.node(id)),
    lastOwn: () => view && view.timeline.lastOwn(),
    held: () => ["Held: this came with a new safety number. ",
      h("a", { href: `#/contact/${encodeURIComponent(chat)}` }, "Compare it"), " to show the message."],
  };
}

function jumpTo(node) {
  if (!node) return;
  for (const other of document.querySelectorAll("#messages .msg.hit")) other.classList.remove("hit");
  node.classList.add("hit");
  if (view) view.hitKey = node.dataset.key;
  node.scrollIntoView({ block: "center" });
  node.focus();
}

function autosize(event) {
  const el = event.currentTarget;
  el.style.height = "auto";
  el.style.height = `${Math.min(el.scrollHeight, 160)}px`;
}

async function send(event) {
  event.preventDefault();
  const area = $("#composer-text");
  const text = area.value;
  if (!text.trim() || !view) return;
  if (await convo.submitMode(text, context())) return;
  convo.typingStop(view.chat);
  area.value = "";
  area.style.height = "auto";
  const node = view.timeline.appendPending({ id: `pending-${Date.now()}`, direction: "out", status: "sending", text, sent_at: Date.now() });
  try {
    await api("/api/send", { method: "POST", body: { chat: view.chat, to: view.username, text } });
    reloadSoon();
  } catch (err) {
    node.remove();
    area.value = text;
    toast(err.code === "identity_changed"
      ? `${view.username}'s safety number changed: compare it before sending.`
      : `Not sent: ${err.message}`, "error");
    refreshList();
  }
}

// Messages that were on screen (timeline.js decides): only these become read.
async function markSeen(chat, ids) {
  try {
    const r = await api(`/api/chats/${encodeURIComponent(chat)}/seen`, { method: "POST", body: { ids } });
    if (r.seen) refreshList();
  } catch {
    // Seen marks are cosmetic here; the message stays unread and is reported again.
  }
}

// -- events ------------------------------------------------------------------------------

export function onMessage(m) {
  allMessages = null;
  if ($("#search").value.trim()) runSearch();
  if (view && view.chat === m.chat) {
    if (m.direction === "in") convo.typingGone(m.sender);
    reloadSoon();
  }
}

// A reaction, edit, delete, receipt or timer change (here or on another device).
export function onChanged(chat) {
  allMessages = null;
  if (view && view.chat === chat) reloadSoon();
}

export function onTyping(event) {
  if (view && view.chat === event.chat) convo.onTyping(event);
}

export function onExpired() {
  allMessages = null;
  if (view) reloadSoon();
}

export function onStatus(id, status) {
  const node = view && view.timeline && view.timeline.nodes.get(`out:${id}`);
  if (node && node.baatMessage) view.timeline.refill(node, { ...node.baatMessage, status });
  else if (view) reloadSoon();
}

export function onIncident(event) {
  if (view && view.chat === event.chat) reloadSoon();
}

export function onContact(chat) {
  allMessages = null;
  if (view && view.chat === chat) reloadSoon();
}

export function onVisible() {
  if (view && document.visibilityState === "visible") reloadSoon();
}

// -- search --------------------------------------------------------------------------------

async function runSearch() {
  const query = $("#search").value.trim();
  const results = $("#search-results");
  const summary = $("#search-summary");
  $("#chat-list").hidden = Boolean(query);
  results.hidden = !query;
  if (!query) {
    summary.textContent = "";
    return;
  }
  if (!allMessages) {
    try {
      allMessages = (await api("/api/messages")).messages;
    } catch (err) {
      summary.textContent = err.message;
      return;
    }
  }
  const needle = query.toLocaleLowerCase();
  // A file is found by its name too (its caption is its text).
  const fileName = (m) => (m.attachment && m.attachment.file_name) || "";
  const hits = allMessages.filter((m) => !m.deleted && ((m.text || "").toLocaleLowerCase().includes(needle)
    || fileName(m).toLocaleLowerCase().includes(needle))).reverse().slice(0, 100);
  // Chats (imported ones too) whose name matches come first.
  const named = [...chatsById.values()].filter((c) => (c.username || "").toLocaleLowerCase().includes(needle));
  summary.textContent = (named.length ? `${named.length} chat${named.length === 1 ? "" : "s"}, ` : "")
    + (hits.length ? `${hits.length} message${hits.length === 1 ? "" : "s"} found` : "No messages found");
  results.replaceChildren(...named.map((c) => h("li", { class: "chat-hit" },
    h("a", { href: `#/chat/${encodeURIComponent(c.chat)}`, class: "chat-item" },
      h("span", { class: "chat-main" }, h("span", { class: "chat-name", dir: "auto" }, c.username),
        h("span", { class: "chat-last" }, c.read_only ? "Imported chat" : "Chat"))))),
  ...hits.map((m) => h("li", {},
    h("a", { href: `#/chat/${encodeURIComponent(m.chat)}`, class: "chat-item",
      onclick: (e) => {
        e.preventDefault();
        pendingHighlight = `${m.direction}:${m.id}`;
        go(`#/chat/${encodeURIComponent(m.chat)}`);
      } },
      h("span", { class: "chat-main" },
        h("span", { class: "chat-name", dir: "auto" }, m.direction === "out" ? `You to ${m.peer}` : m.peer || "unknown"),
        h("span", { class: "chat-last", dir: "auto" },
          ...((m.text || "").toLocaleLowerCase().includes(needle) ? highlighted(m.text, needle)
            : ["📎 ", ...highlighted(fileName(m), needle)]))),
      h("span", { class: "chat-side" }, h("time", {}, shortWhen(m.sent_at)))))));
}

// The search hit to show, carried into showChat when the conversation opens.
let pendingHighlight = null;
function takeHighlight() {
  const key = pendingHighlight;
  pendingHighlight = null;
  return key;
}

function highlighted(text, needle) {
  const at = text.toLocaleLowerCase().indexOf(needle);
  const start = Math.max(0, at - 30);
  return [start > 0 ? "…" : "", text.slice(start, at), h("mark", {}, text.slice(at, at + needle.length)),
    text.slice(at + needle.length, at + needle.length + 60)];
}
