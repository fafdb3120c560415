// Settings (#/settings): the two switches of everyday messaging, kept on this device
// (client.features): read receipts and typing indicators. Off means neither sent nor,
// for typing, shown; delivery receipts always go out (the SDK does not switch them).

import { $, api, h, toast } from "./dom.js";
import { stillOn } from "./app.js";
import { failed, loading, paneSection } from "./groups.js";
import * as notify from "./notify.js";
import { showHelp } from "./keys.js";

const SWITCHES = [
  ["read_receipts", "Read receipts",
    "When a message has been on your screen, the person who wrote it sees “Read ✓✓”. Off: they see “Delivered” only. "
    + "Others' read receipts still reach you."],
  ["typing", "Typing indicators",
    "Others see “you are typing…” while you write, and you see theirs. Off: neither sent nor shown."],
];

export async function showSettings() {
  loading("Loading settings…");
  let data;
  try {
    data = await api("/api/settings");
  } catch (err) {
    if (stillOn("settings")) failed(err, ["#/", "Back to chats"]);
    return;
  }
  if (!stillOn("settings")) return;
  $("#pane").replaceChildren(paneSection("settings-title", "Settings",
    h("div", { class: "scroll" },
      h("ul", { class: "purposes" }, ...SWITCHES.map(([key, title, text]) => {
        const id = `setting-${key}`;
        const toggle = h("input", { type: "checkbox", role: "switch", id, class: "switch",
          "aria-describedby": `${id}-desc`, onchange: (e) => change(e.currentTarget, key) });
        toggle.checked = Boolean(data[key]);
        return h("li", { class: "purpose" },
          h("div", { class: "purpose-head" }, h("label", { for: id }, title), toggle),
          h("p", { id: `${id}-desc` }, text));
      })),
      notificationSettings(),
      h("p", {}, h("button", { type: "button", id: "shortcuts-button", onclick: () => showHelp() }, "Keyboard shortcuts"),
        " (or press ", h("kbd", {}, "?"), " anywhere outside a text field)"),
      h("p", { class: "hint" }, `Your own messages can be edited for ${Math.round(data.edit_window_ms / 60000)} minutes `
        + `and deleted for everyone for ${Math.round(data.delete_window_ms / 3600000)} hours after sending.`))));
  $("#settings-title").focus();
}

async function change(toggle, key) {
  toggle.disabled = true;
  try {
    const r = await api("/api/settings", { method: "POST", body: { [key]: toggle.checked } });
    toggle.checked = Boolean(r[key]);
  } catch (err) {
    toggle.checked = !toggle.checked;
    toast(err.message, "error");
  } finally {
    toggle.disabled = false;
  }
}

// Another tab changed a switch.
export function onEvent(event) {
  if (event.type === "settings" && stillOn("settings")) showSettings();
}

// Desktop notifications: this browser's permission (asked on this click only) and whether
// a notification may show who wrote and what.
function notificationSettings() {
  const state = h("p", { id: "notify-state", class: "hint", role: "status" });
  const describe = () => {
    const p = notify.permission();
    state.textContent = p === "granted" ? (notify.enabled() ? "On: new messages show while this tab is hidden." : "Off.")
      : p === "denied" ? "Blocked in this browser's site settings."
      : p === "unsupported" ? "This browser has no desktop notifications." : "Not asked yet.";
  };
  const turnOn = h("button", { id: "notify-turn-on", type: "button", class: "small",
    onclick: async () => {
      if (notify.permission() === "granted") notify.setWanted(!notify.enabled());
      else await notify.ask();
      describe();
      turnOn.textContent = notify.enabled() ? "Turn off" : "Turn on";
    } }, notify.enabled() ? "Turn off" : "Turn on");
  const quiet = h("input", { type: "checkbox", role: "switch", id: "setting-notify-private", class: "switch",
    "aria-describedby": "setting-notify-private-desc", onchange: (e) => notify.setPrivate(e.currentTarget.checked) });
  quiet.checked = notify.isPrivate();
  describe();
  return h("ul", { class: "purposes" },
    h("li", { class: "purpose" },
      h("div", { class: "purpose-head" }, h("span", { id: "notify-title" }, "Desktop notifications"), turnOn),
      state),
    h("li", { class: "purpose" },
      h("div", { class: "purpose-head" }, h("label", { for: "setting-notify-private" }, "Hide sender and text"), quiet),
      h("p", { id: "setting-notify-private-desc" }, "Notifications say only “New message”: nobody passing your screen sees who wrote or what.")));
}
