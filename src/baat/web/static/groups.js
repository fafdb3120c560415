// Groups (#/groups, #/group/ID): list and create groups, see and change members and
// admins, rename, leave, and talk in a group (messages are drawn by convo.js, as in 1:1
// chats). The app's store stays the source of truth: events name what changed and the
// open screen reloads it.

import { $, api, confirmDialog, debounce, h, toast } from "./dom.js";
import { go, stillOn } from "./app.js";
import * as convo from "./convo.js";
import { acceptFiles, composerAttach, uploadsList } from "./attachments.js";
import { Timeline } from "./timeline.js";

let open = null; // the group on screen: { chat, data, timeline }

export function paneSection(titleId, title, ...children) {
  return h("section", { class: "privacy", "aria-labelledby": titleId },
    h("header", { class: "pane-head" },
      h("a", { href: "#/", class: "back", "aria-label": "Back to chats" }, "←"),
      h("h2", { id: titleId, tabindex: "-1" }, title)),
    ...children);
}

export function loading(text) {
  $("#pane").replaceChildren(h("section", { class: "empty" }, h("p", { role: "status" }, text)));
}

// A screen that could not load: why, and a way back that fits the screen (a Devices or
// Settings screen has nothing to do with groups).
export function failed(err, back = ["#/groups", "Back to groups"]) {
  $("#pane").replaceChildren(h("section", { class: "empty" }, h("p", { role: "alert" },
    err.code === "not_connected" ? "Cannot reach the server. Try again when online." : err.message),
    h("a", { href: back[0] }, back[1])));
}

// -- the group list ----------------------------------------------------------------------

export async function showGroups() {
  leave();
  loading("Loading your groups…");
  let data;
  try {
    data = await api("/api/groups");
  } catch (err) {
    if (stillOn("groups")) failed(err);
    return;
  }
  if (!stillOn("groups")) return;
  const list = h("ul", { class: "list", id: "group-list", "aria-label": "Groups" },
    ...data.groups.map((g) => h("li", {},
      h("a", { href: `#/group/${encodeURIComponent(g.id)}`, class: "chat-item" },
        h("span", { class: "avatar", "aria-hidden": "true" }, (g.name || "?").slice(0, 1).toUpperCase()),
        h("span", { class: "chat-main" },
          h("span", { class: "chat-name", dir: "auto" }, g.name, g.member ? "" : " (left)"),
          h("span", { class: "chat-last", dir: "auto" }, g.last ? `${g.last.direction === "out" ? "You" : g.last.sender || "?"}: ${g.last.text || ""}`
            : `${g.members.length} member${g.members.length === 1 ? "" : "s"}`)),
        h("span", { class: "chat-side" }, g.unread ? h("span", { class: "badge" }, String(g.unread),
          h("span", { class: "sr-only" }, " unread")) : null)))));
  $("#pane").replaceChildren(paneSection("groups-title", "Groups",
    h("div", { class: "scroll" },
      h("section", { "aria-labelledby": "new-group-title" },
        h("h3", { id: "new-group-title" }, "New group"),
        h("form", { id: "new-group-form", novalidate: true, onsubmit: createGroup },
          h("label", { for: "group-name" }, "Group name"),
          h("input", { id: "group-name", required: true, maxlength: "100", autocomplete: "off" }),
          h("label", { for: "group-members" }, "Members"),
          h("input", { id: "group-members", autocapitalize: "none", spellcheck: "false", autocomplete: "off",
            "aria-describedby": "group-members-hint" }),
          h("p", { id: "group-members-hint", class: "hint" }, "Usernames separated by commas or spaces. You are its admin."),
          h("p", { id: "new-group-error", class: "form-error", role: "alert" }),
          h("button", { type: "submit", class: "primary" }, "Create group"))),
      h("section", { "aria-labelledby": "your-groups-title" },
        h("h3", { id: "your-groups-title" }, "Your groups"),
        data.groups.length ? list : h("p", { class: "hint" }, "No groups yet.")))));
  $("#groups-title").focus();
}

async function createGroup(event) {
  event.preventDefault();
  const error = $("#new-group-error");
  error.textContent = "";
  const name = $("#group-name").value.trim();
  if (!name) {
    error.textContent = "Give the group a name.";
    $("#group-name").focus();
    return;
  }
  const button = event.currentTarget.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const g = await api("/api/groups", { method: "POST", body: { name, members: $("#group-members").value } });
    toast(`Group ${g.name} created.`);
    go(`#/group/${encodeURIComponent(g.id)}`);
  } catch (err) {
    error.textContent = err.code === "unknown_contact" ? `Not created: ${err.message}` : err.message;
    $("#group-members").focus();
  } finally {
    button.disabled = false;
  }
}

// -- one group ---------------------------------------------------------------------------

export async function showGroup(chat) {
  // Redrawn after a change made in its panel: the panel stays open.
  const panelOpen = Boolean(open && open.chat === chat && $("#group-details")?.open);
  leave();
  loading("Loading the group…");
  let data;
  try {
    data = await api(`/api/groups/${encodeURIComponent(chat)}`);
  } catch (err) {
    if (stillOn("group", chat)) failed(err);
    return;
  }
  if (!stillOn("group", chat)) return;
  open = { chat, data };
  const text = h("textarea", { id: "group-composer-text", rows: "1", maxlength: "16000", placeholder: "Message",
    "aria-describedby": "group-composer-hint", disabled: !data.member, dir: "auto",
    onkeydown: (e) => convo.composerKey(e, context(chat)),
    oninput: () => { if (open) convo.typingInput(open.chat); } });
  $("#pane").replaceChildren(
    h("section", { class: "chat", "aria-labelledby": "group-title" },
      h("header", { class: "pane-head" },
        h("a", { href: "#/groups", class: "back", "aria-label": "Back to groups" }, "←"),
        h("h2", { id: "group-title", tabindex: "-1", dir: "auto" }, data.name),
        h("span", { class: "pill", id: "group-count" }, `${data.members.length} member${data.members.length === 1 ? "" : "s"}`),
        convo.timerPill()),
      h("details", { class: "group-members", id: "group-details", open: panelOpen },
        h("summary", {}, "Members and settings"),
        h("div", { id: "group-manage" })),
      h("div", { id: "messages", class: "messages", role: "log", "aria-live": "polite",
        "aria-label": `Messages in ${data.name}`, tabindex: "0" }),
      convo.typingLine(),
      data.member ? uploadsList() : null,
      ...convo.composerContext(chat),
      h("form", { class: "composer", onsubmit: sendGroup },
        ...(data.member ? composerAttach(() => open && open.chat === chat && { chat, username: "" }, () => reloadSoon()) : []),
        h("label", { for: "group-composer-text", class: "sr-only" }, `Message to ${data.name}`),
        text,
        h("span", { id: "group-composer-hint", class: "sr-only" }, "Enter sends, Shift+Enter starts a new line, Escape cancels a reply or an edit, Up edits your last message."),
        h("button", { type: "submit", class: "primary", disabled: !data.member }, "Send"))));
  open.timeline = new Timeline($("#messages"), { draw: (m) => messageNode(m, context(chat)),
    seen: (ids) => api(`/api/groups/${encodeURIComponent(chat)}/seen`, { method: "POST", body: { ids } }).catch(() => {}) });
  if (data.member) acceptFiles($("#pane > section.chat"), text, () => open && open.chat === chat && { chat, username: "" }, () => reloadSoon());
  drawManage();
  convo.showTimer(data.timer || 0);
  await reloadMessages();
  if (open && open.chat === chat) (data.member ? text : $("#group-title")).focus();
}

function drawHeader() {
  const d = open.data;
  const title = $("#group-title");
  if (title && title.textContent !== d.name) title.textContent = d.name;
  const count = $("#group-count");
  if (count) count.textContent = `${d.members.length} member${d.members.length === 1 ? "" : "s"}`;
  convo.showTimer(d.timer || 0);
}

function drawManage() {
  const d = open.data;
  const box = $("#group-manage");
  if (!box) return;
  drawHeader();
  // A change from elsewhere must not take away what the person is typing or their focus.
  const focused = box.contains(document.activeElement) ? document.activeElement.id : null;
  const typed = Object.fromEntries(["rename-name", "add-member-name"]
    .map((id) => [id, document.getElementById(id)])
    .filter(([, el]) => el && el === document.activeElement).map(([id, el]) => [id, el.value]));
  const refused = $("#group-error")?.textContent || "";
  // replaceChildren would write a null as the text "null": only real nodes go in.
  box.replaceChildren(...[
    h("ul", { class: "list", id: "group-member-list", "aria-label": "Members" },
      ...d.members.map((m) => h("li", { class: "row" },
        h("span", { class: "chat-name", dir: "auto" }, m.name, m.you ? " (you)" : "", m.admin ? " · admin" : ""),
        d.admin && !m.admin ? h("button", { type: "button", class: "small",
          "aria-label": `Make admin: ${m.name}`, onclick: () => promote(m.name) }, "Make admin") : null,
        d.admin && !m.you ? h("button", { type: "button", class: "small",
          "aria-label": `Remove ${m.name}`, onclick: () => removeMember(m.name) }, "Remove") : null))),
    // Shown to every member: the SDK decides, and a non-admin learns why it was refused.
    d.member ? h("form", { class: "row", id: "rename-form", novalidate: true, onsubmit: renameGroup },
      h("label", { for: "rename-name" }, "Group name"),
      h("input", { id: "rename-name", value: d.name, maxlength: "100", autocomplete: "off" }),
      h("button", { type: "submit" }, "Rename")) : null,
    d.member ? convo.timerSelect(open.chat) : null,
    d.admin ? h("form", { class: "row", id: "add-member-form", novalidate: true, onsubmit: addMembers },
      h("label", { for: "add-member-name", class: "sr-only" }, "Usernames to add"),
      h("input", { id: "add-member-name", placeholder: "username", autocapitalize: "none", spellcheck: "false",
        autocomplete: "off" }),
      h("button", { type: "submit" }, "Add")) : h("p", { class: "hint" }, "Only admins add or remove members."),
    h("p", { id: "group-error", class: "form-error", role: "alert" }),
    d.member ? h("button", { type: "button", class: "danger", onclick: leaveGroup }, "Leave group")
      : h("p", { class: "hint" }, "You are no longer a member of this group.")].filter(Boolean));
  for (const [id, value] of Object.entries(typed)) document.getElementById(id).value = value;
  $("#group-error").textContent = refused;
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
}

const GROUP_REFUSED = {
  not_admin: "Only an admin of this group can do that.",
  not_member: "You are not a member of this group any more.",
};

async function change(path, body, done) {
  const error = $("#group-error");
  error.textContent = "";
  try {
    open.data = await api(`/api/groups/${encodeURIComponent(open.chat)}/${path}`, { method: "POST", body });
    toast(done);
    showGroup(open.chat);
  } catch (err) {
    error.textContent = GROUP_REFUSED[err.code] ? `${GROUP_REFUSED[err.code]} (${err.message})` : err.message;
  }
}

function renameGroup(event) {
  event.preventDefault();
  const name = $("#rename-name").value.trim();
  if (name && name !== open.data.name) change("rename", { name }, `Renamed to ${name}.`);
}

function promote(name) {
  change("promote", { member: name }, `${name} is now an admin.`);
}

function addMembers(event) {
  event.preventDefault();
  const names = $("#add-member-name").value.trim();
  if (names) change("add", { members: names }, `Added ${names}.`);
}

function removeMember(name) {
  change("remove", { member: name }, `Removed ${name}.`);
}

async function leaveGroup() {
  const yes = await confirmDialog({ title: `Leave ${open.data.name}?`, body: "You stop receiving its messages.",
    confirm: "Leave", danger: true });
  if (yes) change("leave", {}, `You left ${open.data.name}.`);
}

const reloadSoon = debounce(() => reloadMessages());

async function reloadMessages() {
  if (!open) return;
  const chat = open.chat;
  let data;
  try {
    data = await api(`/api/groups/${encodeURIComponent(chat)}/messages`);
  } catch (err) {
    toast(err.message, "error");
    return;
  }
  if (!open || open.chat !== chat || !$("#messages")) return;
  open.timeline.merge(data.messages);
}

function context(chat) {
  return {
    chat,
    group: true,
    peer: null,
    reload: reloadSoon,
    jump: (id) => {
      const node = open && open.timeline.node(id);
      if (!node) return;
      node.scrollIntoView({ block: "center" });
      node.focus();
    },
    lastOwn: () => open && open.timeline.lastOwn(),
    held: () => ["Held: compare the sender's safety number to show it."],
  };
}

function messageNode(m, ctx) {
  const node = h("div", { class: `msg ${m.direction}${m.notice ? " notice" : ""}${m.deleted ? " deleted" : ""}`,
    id: `gm-${m.id}`, dataset: { id: m.id, status: m.status } },
  ...convo.messageParts(m, ctx));
  node.baatMessage = m;
  return node;
}

async function sendGroup(event) {
  event.preventDefault();
  const area = $("#group-composer-text");
  const text = area.value;
  if (!text.trim() || !open) return;
  if (await convo.submitMode(text, context(open.chat))) return;
  convo.typingStop(open.chat);
  area.value = "";
  try {
    await api(`/api/groups/${encodeURIComponent(open.chat)}/send`, { method: "POST", body: { text } });
    reloadSoon();
  } catch (err) {
    area.value = text;
    toast(`Not sent: ${err.message}`, "error");
  }
}

// Live events from app.js: anything in the open group reloads it.
export function onEvent(event) {
  if (!open) return;
  const here = event.chat === open.chat;
  if (event.type === "typing") {
    if (here) convo.onTyping(event);
  } else if ((event.type === "group" && here) || (event.type === "changed" && here && event.kind === "timer")
    || (event.type === "message" && event.message.chat === open.chat && event.message.notice)) {
    // The group itself changed (members, admins, name, timer): redraw its header and panel.
    showGroupQuietly();
  } else if (event.type === "message" && event.message.chat === open.chat) {
    convo.typingGone(event.message.sender);
    reloadSoon();
  } else if (event.type === "status" || event.type === "incident" || event.type === "group"
    || event.type === "expired" || (event.type === "changed" && here)
    || (event.type === "contact" && here)) reloadSoon();
}

async function showGroupQuietly() {
  const chat = open.chat;
  try {
    const data = await api(`/api/groups/${encodeURIComponent(chat)}`);
    if (!open || open.chat !== chat) return;
    open.data = data;
    drawManage();
    reloadSoon();
  } catch {
    // The next event or visit reloads it.
  }
}

export function leave() {
  if (open) {
    convo.typingStop(open.chat);
    if (open.timeline) open.timeline.destroy();
  }
  open = null;
}
