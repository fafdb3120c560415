// This account's devices (#/devices): the list as the server has it, removing one, and
// linking a new one: a one-time code (text and QR), then, once the new device has used it,
// the 6-digit code both screens must show before this device signs it into the list.
// The app watches the server and sends a "devices" event when something changed.

import { $, api, confirmDialog, h, toast } from "./dom.js";
import { stillOn } from "./app.js";
import { failed, loading, paneSection } from "./groups.js";

export async function showDevices() {
  loading("Loading your devices…");
  let data;
  try {
    data = await api("/api/devices");
  } catch (err) {
    if (stillOn("devices")) failed(err, ["#/", "Back to chats"]);
    return;
  }
  if (!stillOn("devices")) return;
  $("#pane").replaceChildren(paneSection("devices-title", "Devices",
    h("div", { class: "scroll" },
      h("section", { "aria-labelledby": "device-list-title" },
        h("h3", { id: "device-list-title" }, "This account's devices"),
        h("ul", { class: "list", id: "device-list", "aria-label": "Devices" }),
        data.this_is_primary ? null : h("p", { class: "hint" }, "Only the primary device removes devices or links new ones.")),
      data.this_is_primary ? h("section", { "aria-labelledby": "link-title" },
        h("h3", { id: "link-title" }, "Link a new device"),
        h("p", {}, "Make a one-time code, then on the new device run ", h("code", {}, "baat register --link CODE"),
          " or scan the QR code."),
        h("button", { type: "button", id: "link-button", onclick: makeLinkCode }, "Create link code"),
        h("div", { id: "link-code", role: "status", "aria-live": "polite" }),
        h("div", { id: "link-joined", role: "alert" })) : null)));
  drawList(data);
  $("#devices-title").focus();
}

function drawList(data) {
  const list = $("#device-list");
  if (!list) return;
  list.replaceChildren(...data.devices.map((d) => h("li", { class: "row device", dataset: { device: String(d.device_id) } },
    h("span", { class: "chat-name" }, `Device ${d.device_id}`,
      d.primary ? h("span", { class: "pill" }, "Primary") : null,
      d.current ? h("span", { class: "pill" }, "This device") : null,
      d.listed ? null : h("span", { class: "hint" }, " (not yet in the signed list)")),
    data.this_is_primary && !d.current ? h("button", { type: "button", class: "small danger",
      "aria-label": `Remove device ${d.device_id}`, onclick: () => removeDevice(d.device_id) }, "Remove") : null)));
  drawJoined(data.joined);
}

// A device used the code: both screens show the same 6 digits unless someone in between
// swapped a key. Only then is it signed into the list.
function drawJoined(joined) {
  const box = $("#link-joined");
  if (!box) return;
  if (!joined) return box.replaceChildren();
  $("#link-code")?.replaceChildren();
  box.replaceChildren(h("div", { class: "banner info" },
    h("p", {}, `Device ${joined.device_id} joined with the code. The new device shows a 6-digit code; this one is:`),
    h("p", { class: "sas", id: "link-sas" }, joined.sas),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "primary", onclick: () => approve(joined.device_id) }, "They match: add the device"),
      h("button", { type: "button", class: "danger", onclick: () => reject(joined.device_id) }, "They differ: remove it"))));
}

async function refresh() {
  try {
    const data = await api("/api/devices");
    if (stillOn("devices")) drawList(data);
  } catch {
    // The next event or visit shows it.
  }
}

async function makeLinkCode(event) {
  const button = event.currentTarget;
  button.disabled = true;
  try {
    const r = await api("/api/devices/link-code", { method: "POST" });
    const command = `baat register --link ${r.code}`;
    $("#link-joined").replaceChildren();
    $("#link-code").replaceChildren(
      h("label", { for: "link-code-text" }, "Run this on the new device"),
      h("textarea", { id: "link-code-text", readonly: true, rows: "3", class: "jws" }, command),
      h("p", { class: "qr" }, h("img", { id: "link-qr", src: `/api/devices/link-code/qr.svg?t=${Date.now()}`,
        alt: "QR code of the link code", width: "180", height: "180" })),
      h("p", { class: "hint" }, `The code works once, until ${new Date(r.expires_at * 1000).toLocaleTimeString()}. `,
        "When the new device has used it, this screen asks you to compare a 6-digit code."));
  } catch (err) {
    $("#link-code").replaceChildren(h("p", { class: "form-error", role: "alert" }, err.message));
  } finally {
    button.disabled = false;
  }
}

async function approve(id) {
  try {
    await api(`/api/devices/${id}/approve`, { method: "POST" });
    toast(`Device ${id} added to this account.`);
    refresh();
  } catch (err) {
    toast(`Not added: ${err.message}`, "error");
  }
}

async function reject(id) {
  try {
    await api(`/api/devices/${id}/remove`, { method: "POST" });
    toast(`The codes differed: device ${id} was removed.`);
    refresh();
  } catch (err) {
    toast(`Not removed: ${err.message}`, "error");
  }
}

async function removeDevice(id) {
  const yes = await confirmDialog({ title: `Remove device ${id}?`, body: "It stops receiving messages at once.",
    confirm: "Remove", danger: true });
  if (!yes) return;
  try {
    await api(`/api/devices/${id}/remove`, { method: "POST" });
    toast(`Device ${id} removed.`);
    refresh();
  } catch (err) {
    toast(`Not removed: ${err.message}`, "error");
  }
}

// A "devices" event: a device joined, was added or removed, or the code expired.
export function onEvent(event) {
  if (event.type !== "devices" || !stillOn("devices")) return;
  if (event.expired) $("#link-code")?.replaceChildren(h("p", { class: "hint" }, "The link code expired unused."));
  refresh();
}
