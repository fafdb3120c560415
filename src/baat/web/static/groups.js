// Groups (#/groups, #/group/ID) and this account's devices (#/devices): list and create
// groups, see and change members, leave, talk in a group; list devices, remove one, and
// make a link code for a new device. The app's store stays the source of truth: events
// name what changed and the open screen reloads it.

import { $, api, confirmDialog, dayKey, dayLabel, debounce, h, timeOf, toast } from "./dom.js";
import { app, go, stillOn } from "./app.js";

const REACTION = "👍";
let open = null; // the group on screen: { chat, data }

function paneSection(titleId, title, ...children) {
  return h("section", { class: "privacy", "aria-labelledby": titleId },
    h("header", { class: "pane-head" },
      h("a", { href: "#/", class: "back", "aria-label": "Back to chats" }, "←"),
      h("h2", { id: titleId, tabindex: "-1" }, title)),
    ...children);
}

function loading(text) {
  $("#pane").replaceChildren(h("section", { class: "empty" }, h("p", { role: "status" }, text)));
}

function failed(err) {
  $("#pane").replaceChildren(h("section", { class: "empty" }, h("p", { role: "alert" },
    err.code === "not_connected" ? "Cannot reach the server. Try again when online." : err.message),
    h("a", { href: "#/groups" }, "Back to groups")));
}

// -- the group list ----------------------------------------------------------------------

export async function showGroups() {
  open = null;
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
          h("span", { class: "chat-name" }, g.name, g.member ? "" : " (left)"),
          h("span", { class: "chat-last" }, g.last ? `${g.last.direction === "out" ? "You" : g.last.sender || "?"}: ${g.last.text || ""}`
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
  open = null;
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
    "aria-describedby": "group-composer-hint", disabled: !data.member, onkeydown: composerKey });
  $("#pane").replaceChildren(
    h("section", { class: "chat", "aria-labelledby": "group-title" },
      h("header", { class: "pane-head" },
        h("a", { href: "#/groups", class: "back", "aria-label": "Back to groups" }, "←"),
        h("h2", { id: "group-title", tabindex: "-1" }, data.name),
        h("span", { class: "pill" }, `${data.members.length} member${data.members.length === 1 ? "" : "s"}`)),
      h("details", { class: "group-members", id: "group-details" },
        h("summary", {}, "Members and settings"),
        h("div", { id: "group-manage" })),
      h("div", { id: "messages", class: "messages", role: "log", "aria-live": "polite",
        "aria-label": `Messages in ${data.name}`, tabindex: "0" }),
      h("form", { class: "composer", onsubmit: sendGroup },
        h("label", { for: "group-composer-text", class: "sr-only" }, `Message to ${data.name}`),
        text,
        h("span", { id: "group-composer-hint", class: "sr-only" }, "Enter sends, Shift+Enter starts a new line."),
        h("button", { type: "submit", class: "primary", disabled: !data.member }, "Send"))));
  drawManage();
  await reloadMessages();
  if (open && open.chat === chat) (data.member ? text : $("#group-title")).focus();
}

function drawManage() {
  const d = open.data;
  const box = $("#group-manage");
  if (!box) return;
  box.replaceChildren(
    h("ul", { class: "list", id: "group-member-list", "aria-label": "Members" },
      ...d.members.map((m) => h("li", { class: "row" },
        h("span", { class: "chat-name" }, m.name, m.you ? " (you)" : "", m.admin ? " · admin" : ""),
        d.admin && !m.you ? h("button", { type: "button", class: "small",
          "aria-label": `Remove ${m.name}`, onclick: () => removeMember(m.name) }, "Remove") : null))),
    d.admin ? h("form", { class: "row", id: "add-member-form", novalidate: true, onsubmit: addMembers },
      h("label", { for: "add-member-name", class: "sr-only" }, "Usernames to add"),
      h("input", { id: "add-member-name", placeholder: "username", autocapitalize: "none", spellcheck: "false",
        autocomplete: "off" }),
      h("button", { type: "submit" }, "Add")) : h("p", { class: "hint" }, "Only admins add or remove members."),
    h("p", { id: "group-error", class: "form-error", role: "alert" }),
    d.member ? h("button", { type: "button", class: "danger", onclick: leaveGroup }, "Leave group")
      : h("p", { class: "hint" }, "You are no longer a member of this group."));
}

async function change(path, body, done) {
  const error = $("#group-error");
  error.textContent = "";
  try {
    open.data = await api(`/api/groups/${encodeURIComponent(open.chat)}/${path}`, { method: "POST", body });
    toast(done);
    showGroup(open.chat);
  } catch (err) {
    error.textContent = err.message;
  }
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
  const box = $("#messages");
  if (!open || open.chat !== chat || !box) return;
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const focused = document.activeElement && box.contains(document.activeElement) ? document.activeElement.id : null;
  const nodes = [];
  let day = null;
  for (const m of data.messages) {
    if (dayKey(m.sent_at) !== day) {
      day = dayKey(m.sent_at);
      nodes.push(h("p", { class: "day", role: "separator" }, h("span", {}, dayLabel(m.sent_at))));
    }
    nodes.push(messageNode(m));
  }
  box.replaceChildren(...nodes);
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
  if (nearBottom) box.scrollTop = box.scrollHeight;
  if (data.messages.some((m) => m.status === "new") && document.visibilityState === "visible") {
    api(`/api/groups/${encodeURIComponent(chat)}/seen`, { method: "POST" }).catch(() => {});
  }
}

const STATUS_TEXT = { sending: "Sending…", sent: "Sent ✓", delivered: "Delivered ✓✓", failed: "Not delivered" };

function messageNode(m) {
  const who = m.direction === "out" ? "You" : m.sender || "?";
  const reactions = Object.entries(m.reactions || {});
  const mine = reactions.some(([name, e]) => name === app.info.username && e === REACTION);
  return h("div", { class: `msg ${m.direction}`, dataset: { id: m.id, status: m.status } },
    h("span", { class: m.direction === "out" ? "sr-only" : "chat-name" }, `${who}:`),
    h("p", { class: m.text === null ? "text held" : "text" }, m.text === null ? "Held: compare the sender's safety number to show it." : m.text),
    h("span", { class: "meta" },
      h("time", { datetime: new Date(m.sent_at).toISOString() }, timeOf(m.sent_at)),
      m.direction === "out" ? h("span", { class: "status" }, " · ", STATUS_TEXT[m.status] || m.status) : null,
      reactions.length ? h("span", { class: "reactions" }, " · ",
        reactions.map(([name, e]) => `${e} ${name}`).join(", ")) : null,
      m.text !== null ? h("button", { type: "button", class: "small react", id: `react-${m.id}`,
        "aria-label": `React ${REACTION} to ${who}'s message`, "aria-pressed": mine ? "true" : "false",
        onclick: () => react(m) }, REACTION) : null));
}

export async function react(m) {
  const pressed = document.getElementById(`react-${m.id}`)?.getAttribute("aria-pressed") === "true";
  try {
    await api("/api/react", { method: "POST", body: { id: m.id, emoji: pressed ? "" : REACTION } });
    reloadSoon();
  } catch (err) {
    toast(`No reaction: ${err.message}`, "error");
  }
}

function composerKey(event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    event.currentTarget.form.requestSubmit();
  }
}

async function sendGroup(event) {
  event.preventDefault();
  const area = $("#group-composer-text");
  const text = area.value;
  if (!text.trim() || !open) return;
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
  if (event.type === "group" && event.chat === open.chat) {
    if (!$("#group-details")?.contains(document.activeElement)) showGroupQuietly();
    else reloadSoon();
  } else if (event.type === "status" || event.type === "incident" || event.type === "group"
    || (event.type === "message" && event.message.chat === open.chat)
    || (event.type === "contact" && event.chat === open.chat)) reloadSoon();
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
  open = null;
}

// -- devices -----------------------------------------------------------------------------

export async function showDevices() {
  open = null;
  loading("Loading your devices…");
  let data;
  try {
    data = await api("/api/devices");
  } catch (err) {
    if (stillOn("devices")) failed(err);
    return;
  }
  if (!stillOn("devices")) return;
  const rows = data.devices.map((d) => h("li", { class: "row device", dataset: { device: String(d.device_id) } },
    h("span", { class: "chat-name" }, `Device ${d.device_id}`,
      d.primary ? h("span", { class: "pill" }, "Primary") : null,
      d.current ? h("span", { class: "pill" }, "This device") : null,
      d.listed ? null : h("span", { class: "hint" }, " (not yet in the signed list)")),
    data.this_is_primary && !d.current ? h("button", { type: "button", class: "small danger",
      "aria-label": `Remove device ${d.device_id}`, onclick: () => removeDevice(d.device_id) }, "Remove") : null));
  $("#pane").replaceChildren(paneSection("devices-title", "Devices",
    h("div", { class: "scroll" },
      h("section", { "aria-labelledby": "device-list-title" },
        h("h3", { id: "device-list-title" }, "This account's devices"),
        h("ul", { class: "list", id: "device-list", "aria-label": "Devices" }, ...rows),
        data.this_is_primary ? null : h("p", { class: "hint" }, "Only the primary device removes devices or links new ones.")),
      data.this_is_primary ? h("section", { "aria-labelledby": "link-title" },
        h("h3", { id: "link-title" }, "Link a new device"),
        h("p", {}, "Make a one-time code, then on the new device run ", h("code", {}, "baat register --link CODE"), "."),
        h("button", { type: "button", id: "link-button", onclick: makeLinkCode }, "Create link code"),
        h("div", { id: "link-code", role: "status", "aria-live": "polite" })) : null)));
  $("#devices-title").focus();
}

async function makeLinkCode(event) {
  const button = event.currentTarget;
  button.disabled = true;
  try {
    const r = await api("/api/devices/link-code", { method: "POST" });
    const command = `baat register --link ${r.code}`;
    $("#link-code").replaceChildren(
      h("label", { for: "link-code-text" }, "Run this on the new device"),
      h("textarea", { id: "link-code-text", readonly: true, rows: "3", class: "jws" }, command),
      h("p", { class: "hint" }, `The code works once, until ${new Date(r.expires_at * 1000).toLocaleTimeString()}. `,
        "To compare the 6-digit code and sign the new device into the list, link it with ",
        h("code", {}, "baat device link"), " instead; remove a device here if you do not recognise it."));
  } catch (err) {
    $("#link-code").replaceChildren(h("p", { class: "form-error", role: "alert" }, err.message));
  } finally {
    button.disabled = false;
  }
}

async function removeDevice(id) {
  const yes = await confirmDialog({ title: `Remove device ${id}?`, body: "It stops receiving messages at once.",
    confirm: "Remove", danger: true });
  if (!yes) return;
  try {
    await api(`/api/devices/${id}/remove`, { method: "POST" });
    toast(`Device ${id} removed.`);
    showDevices();
  } catch (err) {
    toast(`Not removed: ${err.message}`, "error");
  }
}
