// Desktop notifications and the unread count in the page title.
//
// The browser's permission is asked only from a click (the "Notify me" button in the chat
// list or the switch in Settings): browsers ignore or penalise a prompt nobody asked for.
// A notification is shown for a message that arrives while the tab is hidden; with
// "private" on it says only that something arrived, never who wrote or what (a lock
// screen or a shared desk shows notifications to anyone passing by). Both choices are kept
// in this browser's localStorage: they are about this screen, not the account.

import { $ } from "./dom.js";

const WANT = "baat.notify";
const PRIVATE = "baat.notify.private";
const TITLE = "Baat";

export function supported() {
  return typeof Notification !== "undefined";
}

export function permission() {
  return supported() ? Notification.permission : "unsupported";
}

export function enabled() {
  return permission() === "granted" && localStorage.getItem(WANT) !== "off";
}

export function isPrivate() {
  return localStorage.getItem(PRIVATE) === "on";
}

export function setPrivate(on) {
  localStorage.setItem(PRIVATE, on ? "on" : "off");
}

export function setWanted(on) {
  localStorage.setItem(WANT, on ? "on" : "off");
}

// Must run inside a click handler: requestPermission needs the user's gesture.
export async function ask() {
  if (!supported()) return "unsupported";
  const result = await Notification.requestPermission();
  if (result === "granted") setWanted(true);
  updateButton();
  return result;
}

export function updateButton() {
  const button = $("#notify-enable");
  if (!button) return;
  button.hidden = permission() !== "default";
}

export function init() {
  const button = $("#notify-enable");
  if (button) button.addEventListener("click", () => ask());
  updateButton();
}

// A message event from the app: notify if it came in while nobody looks at the tab.
export function onMessage(m) {
  if (m.direction !== "in" || m.notice || document.visibilityState === "visible" || !enabled()) return;
  const quiet = isPrivate();
  const title = quiet ? TITLE : `${m.sender || m.peer || "Someone"}`;
  const body = quiet ? "New message" : (m.text || (m.attachment ? `📎 ${m.attachment.file_name || "file"}` : "New message"));
  const note = new Notification(title, { body, tag: quiet ? "baat" : m.chat, silent: false });
  note.onclick = () => {
    window.focus();
    location.hash = `#/chat/${encodeURIComponent(m.chat)}`;
    note.close();
  };
}

// The total of unread messages, in the title: "(3) Baat".
export function setUnread(total) {
  document.title = total > 0 ? `(${total}) ${TITLE}` : TITLE;
}
