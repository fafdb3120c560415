// What 1:1 chats (chats.js) and groups (groups.js) share in a conversation: drawing a
// message (quote, edited / deleted, reactions, sent / delivered / read ticks, actions),
// the composer's reply and edit modes, typing indicators both ways, and the
// disappearing-message timer. Each view owns its pane and passes a small context.

import { $, api, confirmDialog, dayLabel, h, timeOf, toast } from "./dom.js";
import { app } from "./app.js";
import { attachmentView } from "./attachments.js";

export const REACTION = "👍";
const MORE_REACTIONS = ["❤️", "😂", "😮", "😢", "🙏"];
const STATUS_TEXT = { sending: "Sending…", sent: "Sent ✓", delivered: "Delivered ✓✓", read: "Read ✓✓", failed: "Not delivered" };

// -- one message -------------------------------------------------------------------------

function whoOf(m, ctx) {
  return m.direction === "out" ? "You" : m.sender || ctx.peer || "?";
}

function receiptsTitle(m) {
  const entries = Object.entries(m.receipts || {});
  if (!entries.length) return null;
  return entries.map(([name, kind]) => `${kind === "read" ? "Read by" : "Delivered to"} ${name}`).join(", ");
}

function quoteView(q, ctx) {
  const who = q.direction === "out" ? "You" : q.sender || "?";
  const text = q.missing ? "The original message is not on this device."
    : q.deleted ? "message deleted" : q.text === null ? "Held message" : q.text;
  // Named by what it shows (WCAG 2.5.3, label in name); the hint says what it does.
  return h("button", { type: "button", class: "quote", title: "Show the quoted message", onclick: () => ctx.jump(q.id) },
    h("span", { class: "quote-who", dir: "auto" }, who), h("span", { class: "quote-body", dir: "auto" }, text));
}

// Links become clickable, nothing else: no preview is fetched (it would tell the linked
// site who is reading the chat, and when).
const URL_RE = /\bhttps?:\/\/[^\s<>"]+[^\s<>".,:;'!?)\]]/g;

function linked(text) {
  const parts = [];
  let at = 0;
  for (const match of text.matchAll(URL_RE)) {
    parts.push(text.slice(at, match.index));
    parts.push(h("a", { href: match[0], target: "_blank", rel: "noopener noreferrer nofollow" }, match[0]));
    at = match.index + match[0].length;
  }
  parts.push(text.slice(at));
  return parts.filter((p) => p !== "");
}

const EMOJI_ONLY = /^[\p{Extended_Pictographic}\p{Emoji_Modifier}\u200d\ufe0f\u20e3\s]+$/u;
const segmenter = typeof Intl.Segmenter === "function" ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;

// One to three emoji and nothing else are drawn large, as phones do.
export function emojiOnly(text) {
  const t = (text || "").trim();
  if (!t || !EMOJI_ONLY.test(t) || !/\p{Extended_Pictographic}/u.test(t)) return false;
  const count = segmenter ? [...segmenter.segment(t.replace(/\s+/g, ""))].length : t.length;
  return count <= 3;
}

function reactionChips(m, who, ctx) {
  const by = new Map(); // emoji -> names, in the order they came
  for (const [name, emoji] of Object.entries(m.reactions || {})) {
    if (!by.has(emoji)) by.set(emoji, []);
    by.get(emoji).push(name === app.info.username ? "You" : name);
  }
  if (!by.size) return null;
  return h("ul", { class: "reactions", "aria-label": `Reactions to ${who}'s message` },
    ...[...by.entries()].map(([emoji, names]) => h("li", { class: "chip", title: names.join(", "), dir: "auto" },
      h("span", { "aria-hidden": "true" }, emoji, names.length > 1 ? ` ${names.length}` : ""),
      h("span", { class: "sr-only" }, `${emoji} from ${names.join(", ")}`))));
}

// The children of a message bubble. ``ctx``: { chat, group, peer, jump(id), held() }.
export function messageParts(m, ctx) {
  const who = whoOf(m, ctx);
  if (m.notice) return [h("p", { class: "text", dir: "auto" }, m.text)];
  const big = !m.deleted && m.text && !m.attachment && emojiOnly(m.text);
  const body = m.deleted ? h("p", { class: "text deleted" }, "message deleted")
    : m.text === null ? h("p", { class: "text held" }, ...ctx.held())
    : m.text === "" && m.attachment ? null
    : m.text === "" ? h("p", { class: "text deleted" }, "empty message")
    : h("p", { class: big ? "text emoji-only" : "text", dir: "auto" }, ...linked(m.text));
  const status = m.direction === "out"
    ? h("span", { class: `status ${m.status}`, title: receiptsTitle(m) }, " · ", STATUS_TEXT[m.status] || m.status) : null;
  return [
    h("span", { class: ctx.group && m.direction === "in" ? "chat-name" : "sr-only", dir: "auto" }, `${who}:`),
    m.quote ? quoteView(m.quote, ctx) : null,
    m.attachment && !m.deleted ? attachmentView(m) : null,
    body,
    h("span", { class: "meta" },
      h("time", { datetime: new Date(m.sent_at).toISOString() }, timeOf(m.sent_at)),
      m.edited && !m.deleted ? h("span", { class: "edited" }, " · edited") : null,
      status),
    m.deleted ? null : reactionChips(m, who, ctx),
    m.text === null || m.deleted ? null : actions(m, who, ctx),
  ].filter(Boolean);
}

function actions(m, who, ctx) {
  const mine = Object.entries(m.reactions || {}).find(([name]) => name === app.info.username);
  const pressed = Boolean(mine && mine[1] === REACTION);
  const more = h("select", { class: "small", "aria-label": `Other reaction to ${who}'s message`,
    onchange: (e) => { if (e.currentTarget.value) react(m, e.currentTarget.value, ctx); } },
  h("option", { value: "" }, "+"), ...MORE_REACTIONS.map((e) => h("option", { value: e }, e)));
  return h("span", { class: "actions" },
    h("button", { type: "button", class: "small", "aria-label": `Reply to ${who}'s message`, onclick: () => startReply(m, who) }, "Reply"),
    h("button", { type: "button", class: "small react", id: `react-${m.id}`, "aria-label": `React ${REACTION} to ${who}'s message`,
      "aria-pressed": pressed ? "true" : "false", onclick: () => react(m, pressed ? "" : REACTION, ctx) }, REACTION),
    more,
    m.direction === "out" ? h("button", { type: "button", class: "small", "aria-label": "Message info",
      onclick: () => showInfo(m) }, "Info") : null,
    m.direction === "out" ? h("button", { type: "button", class: "small", "aria-label": "Edit your message",
      onclick: () => startEdit(m) }, "Edit") : null,
    m.direction === "out" ? h("button", { type: "button", class: "small danger", "aria-label": "Delete your message for everyone",
      onclick: () => remove(m, ctx) }, "Delete") : null);
}

// "Message info": who it went to, and when each one received and read it.
async function showInfo(m) {
  let data;
  try {
    data = await api(`/api/messages/${encodeURIComponent(m.id)}/info`);
  } catch (err) {
    showError(err, "info");
    return;
  }
  const when = (ms) => (ms ? h("time", { datetime: new Date(ms).toISOString() }, `${dayLabel(ms)} ${timeOf(ms)}`) : "not yet");
  const rows = data.recipients.map((r) => h("tr", {},
    h("th", { scope: "row", dir: "auto" }, r.name), h("td", {}, when(r.delivered_at)), h("td", {}, when(r.read_at))));
  const back = document.activeElement;
  const dialog = h("dialog", { class: "dialog info", "aria-labelledby": "info-title" },
    h("form", { method: "dialog" },
      h("h2", { id: "info-title" }, "Message info"),
      m.text ? h("p", { class: "info-text", dir: "auto" }, m.text) : null,
      h("p", {}, "Sent ", when(data.sent_at)),
      h("table", { class: "info-table" },
        h("caption", { class: "sr-only" }, "Delivered and read, per person"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Person"), h("th", { scope: "col" }, "Delivered"),
          h("th", { scope: "col" }, "Read"))),
        h("tbody", {}, ...rows)),
      h("p", { class: "hint" }, "Read means it was on their screen. Someone who turned read receipts off never shows as read."),
      h("div", { class: "actions" }, h("button", { value: "close", type: "submit", class: "primary" }, "Close"))));
  document.body.append(dialog);
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (back && back.isConnected) back.focus();
  });
  dialog.showModal();
}

// Why an action was refused, in words; the codes are the SDK's (features.py).
const REFUSED = {
  too_late: (what) => (what === "edit" ? "Too late to edit: a message can be edited for 15 minutes after it was sent."
    : "Too late to delete: a message can be deleted for everyone for 24 hours after it was sent."),
  not_author: () => "Only the person who wrote a message can change or delete it.",
  unknown_message: () => "That message is no longer on this device.",
  not_member: () => "You are not a member of this group any more.",
  identity_changed: () => "The safety number changed: compare it before writing.",
};

export function showError(err, what = "") {
  const text = REFUSED[err.code] ? REFUSED[err.code](what) : err.message;
  const el = $("#convo-error");
  if (el) {
    el.textContent = text;
    el.hidden = false;
  } else toast(text, "error");
}

function clearError() {
  const el = $("#convo-error");
  if (el) {
    el.textContent = "";
    el.hidden = true;
  }
}

async function react(m, emoji, ctx) {
  try {
    await api("/api/react", { method: "POST", body: { id: m.id, emoji } });
    ctx.reload();
  } catch (err) {
    showError(err, "react");
  }
}

async function remove(m, ctx) {
  const yes = await confirmDialog({ title: "Delete for everyone?", body: "Everyone in the chat sees “message deleted” instead.",
    confirm: "Delete", danger: true });
  if (!yes) return;
  clearError();
  try {
    await api("/api/delete", { method: "POST", body: { id: m.id } });
    ctx.reload();
  } catch (err) {
    showError(err, "delete");
  }
}

// -- the composer: reply and edit modes --------------------------------------------------

let mode = null; // { kind: "reply" | "edit", id, text, who, chat }
let modeChat = null; // the chat whose composer is on screen

// The composer's context line. The same chat drawn again (the app reconnecting, a route
// run again) keeps the reply or edit in progress; another chat starts without one.
export function composerContext(chat) {
  if (!mode || mode.chat !== chat) mode = null;
  modeChat = chat;
  const box = h("div", { id: "composer-context", class: "composer-context", hidden: true });
  if (mode) {
    drawMode(box);
    const kept = mode;
    if (kept.kind === "edit") {
      // The composer is drawn after this line: give it the text being edited again.
      queueMicrotask(() => {
        const el = area();
        if (el && !el.value && mode === kept) el.value = kept.text;
      });
    }
  }
  return [
    h("p", { id: "convo-error", class: "form-error convo-error", role: "alert", hidden: true }),
    box,
  ];
}

function area() {
  return document.querySelector(".composer textarea");
}

function drawMode(box = $("#composer-context")) {
  if (!box) return;
  box.hidden = !mode;
  if (!mode) return box.replaceChildren();
  box.replaceChildren(
    h("span", { class: "context-text" }, mode.kind === "reply" ? `Replying to ${mode.who}: ` : "Editing your message: ",
      h("q", { dir: "auto" }, mode.text.length > 80 ? `${mode.text.slice(0, 80)}…` : mode.text)),
    h("button", { type: "button", class: "small", "aria-label": mode.kind === "reply" ? "Cancel the reply" : "Cancel editing",
      onclick: () => cancelMode(true) }, "✕"));
}

function startReply(m, who) {
  clearError();
  mode = { kind: "reply", id: m.id, who, chat: modeChat, text: m.text || (m.attachment ? `📎 ${m.attachment.file_name}` : "") };
  drawMode();
  area()?.focus();
}

function startEdit(m) {
  clearError();
  mode = { kind: "edit", id: m.id, chat: modeChat, text: m.text || "" };
  drawMode();
  const el = area();
  if (el) {
    el.value = m.text || "";
    el.focus();
  }
}

export function cancelMode(focus = false) {
  const wasEdit = mode && mode.kind === "edit";
  mode = null;
  drawMode();
  const el = area();
  if (el && wasEdit) el.value = "";
  if (el && focus) el.focus();
}

// The composer was submitted: a reply or an edit is handled here (true); a plain message
// is left to the view (false).
export async function submitMode(text, ctx) {
  if (!mode) return false;
  clearError();
  const current = mode;
  try {
    if (current.kind === "reply") await api("/api/reply", { method: "POST", body: { id: current.id, text } });
    else await api("/api/edit", { method: "POST", body: { id: current.id, text } });
    cancelMode();
    const el = area();
    if (el) el.value = "";
    ctx.reload();
  } catch (err) {
    showError(err, current.kind);
  }
  typingStop(ctx.chat);
  return true;
}

// Keys of the composer: Enter sends (Shift+Enter is a new line), Escape cancels a reply or
// an edit, ArrowUp in an empty composer edits your last message.
export function composerKey(event, ctx) {
  const el = event.currentTarget;
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    el.form.requestSubmit();
  } else if (event.key === "Escape" && mode) {
    event.preventDefault();
    cancelMode(true);
  } else if (event.key === "ArrowUp" && !el.value && !mode && ctx.lastOwn) {
    const last = ctx.lastOwn();
    if (last) {
      event.preventDefault();
      startEdit(last);
    }
  }
}

// -- typing indicators -------------------------------------------------------------------

const TYPING_EVERY = 4000; // "started" again while typing, so the other side keeps showing it
const TYPING_IDLE = 3000; // no key for this long: "stopped"
const TYPING_SHOWN = 7000; // a "started" with no "stopped" after it fades after this long
let typingSentAt = 0;
let typingIdle = 0;

function sendTyping(chat, typing) {
  api("/api/typing", { method: "POST", body: { chat, typing } }).catch(() => {}); // cosmetic
}

export function typingInput(chat) {
  const now = Date.now();
  if (now - typingSentAt > TYPING_EVERY) {
    typingSentAt = now;
    sendTyping(chat, true);
  }
  clearTimeout(typingIdle);
  typingIdle = setTimeout(() => typingStop(chat), TYPING_IDLE);
}

export function typingStop(chat) {
  clearTimeout(typingIdle);
  if (!typingSentAt) return;
  typingSentAt = 0;
  sendTyping(chat, false);
}

const typers = new Map(); // name -> timer, for the open conversation

export function typingLine() {
  typers.clear();
  return h("p", { id: "typing", class: "typing", "aria-live": "polite" });
}

function drawTyping() {
  const el = $("#typing");
  if (!el) return;
  const names = [...typers.keys()];
  el.textContent = !names.length ? ""
    : names.length === 1 ? `${names[0]} is typing…` : `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are typing…`;
}

export function onTyping(event) {
  clearTimeout(typers.get(event.sender));
  if (event.kind === "started") typers.set(event.sender, setTimeout(() => typingGone(event.sender), TYPING_SHOWN));
  else typers.delete(event.sender);
  drawTyping();
}

// A message from someone ends their typing.
export function typingGone(name) {
  clearTimeout(typers.get(name));
  if (typers.delete(name)) drawTyping();
}

// -- the conversation header ---------------------------------------------------------------

// The header's tools (timer, safety number): in the header row on wide screens; behind one
// "Chat options" button on phones, so that the header stays one compact bar.
export function headOptions(...tools) {
  const box = h("div", { id: "chat-options", class: "head-options" }, ...tools);
  const button = h("button", { type: "button", class: "small head-more", "aria-expanded": "false",
    "aria-controls": "chat-options", "aria-label": "Chat options",
    onclick: () => {
      const open = !box.hasAttribute("data-open");
      box.toggleAttribute("data-open", open);
      button.setAttribute("aria-expanded", String(open));
    } }, "⋯");
  box.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && box.hasAttribute("data-open")) {
      box.removeAttribute("data-open");
      button.setAttribute("aria-expanded", "false");
      button.focus();
    }
  });
  return [button, box];
}

// -- disappearing messages ---------------------------------------------------------------

const TIMERS = [[0, "Off"], [30, "30 seconds"], [300, "5 minutes"], [3600, "1 hour"], [86400, "1 day"], [604800, "1 week"]];

export function timerLabel(seconds) {
  if (!seconds) return "Off";
  const units = [[604800, "week"], [86400, "day"], [3600, "h"], [60, "min"], [1, "s"]];
  for (const [size, unit] of units) {
    if (seconds % size === 0) {
      const n = seconds / size;
      return size >= 86400 ? `${n} ${unit}${n === 1 ? "" : "s"}` : `${n} ${unit}`;
    }
  }
  return `${seconds} s`;
}

// The header pill and a selector; ``chat`` is a 1:1 or group chat id.
export function timerPill() {
  return h("span", { id: "timer-pill", class: "pill timer", hidden: true });
}

export function timerSelect(chat) {
  return h("span", { class: "timer-choice" },
    h("label", { for: "timer-select" }, "Disappearing messages"),
    h("select", { id: "timer-select", onchange: (e) => setTimer(chat, Number(e.currentTarget.value)) },
      ...TIMERS.map(([s, label]) => h("option", { value: String(s) }, label))));
}

export function showTimer(seconds) {
  const pill = $("#timer-pill");
  if (pill) {
    pill.hidden = !seconds;
    pill.textContent = `⏱ ${timerLabel(seconds)}`;
    pill.title = seconds ? `Messages disappear ${timerLabel(seconds)} after they arrive` : "";
  }
  const select = $("#timer-select");
  if (!select) return;
  if (![...select.options].some((o) => Number(o.value) === seconds)) {
    select.append(h("option", { value: String(seconds) }, timerLabel(seconds)));
  }
  select.value = String(seconds);
}

async function setTimer(chat, seconds) {
  clearError();
  try {
    const r = await api(`/api/chats/${encodeURIComponent(chat)}/timer`, { method: "POST", body: { seconds } });
    showTimer(r.timer);
    toast(r.timer ? `New messages disappear ${timerLabel(r.timer)} after they arrive.` : "Disappearing messages are off.");
  } catch (err) {
    showError(err, "timer");
  }
}

export async function loadTimer(chat) {
  try {
    const r = await api(`/api/chats/${encodeURIComponent(chat)}/timer`);
    showTimer(r.timer);
  } catch {
    // The header simply shows no timer; the next event reloads it.
  }
}
