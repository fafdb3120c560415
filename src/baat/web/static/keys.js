// Keyboard shortcuts for the whole app, and the dialog that lists them ("?").
//
// Chosen not to clash with the browser or with typing: single keys ("/", "?") act only
// when no text field has the focus; the others carry Ctrl+Alt or Alt, as WhatsApp Web's do.

import { $, h } from "./dom.js";
import { go } from "./app.js";

export const SHORTCUTS = [
  ["/ or Ctrl+Alt+/", "Search chats and messages"],
  ["Ctrl+Alt+N", "Start a new chat"],
  ["Alt+↓ / Alt+↑", "Next / previous chat in the list"],
  ["?", "This list of shortcuts"],
  ["Escape", "Cancel a reply or an edit; close a dialog or a menu; clear the search"],
  ["↑ in an empty message field", "Edit your last message"],
  ["↑ ↓ Home End in the conversation", "Move between messages (Tab then reaches the message's buttons)"],
  ["Enter / Shift+Enter", "Send / new line"],
];

function typing(target) {
  return target instanceof HTMLElement
    && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

// The chat list's next or previous chat from the one open (or the first).
function stepChat(delta) {
  const links = [...document.querySelectorAll("#chat-list a.chat-item")];
  if (!links.length) return;
  const at = links.findIndex((a) => a.hasAttribute("aria-current"));
  const next = links[at < 0 ? 0 : Math.min(links.length - 1, Math.max(0, at + delta))];
  go(next.getAttribute("href"));
}

function showSidebar() {
  // On a phone the list is hidden while a screen is open: go back to it first.
  if (getComputedStyle($("#sidebar")).display === "none") go("#/");
}

export function showHelp() {
  if (document.getElementById("shortcuts-dialog")) return;
  const back = document.activeElement;
  const dialog = h("dialog", { id: "shortcuts-dialog", class: "dialog", "aria-labelledby": "shortcuts-title" },
    h("form", { method: "dialog" },
      h("h2", { id: "shortcuts-title" }, "Keyboard shortcuts"),
      h("table", { class: "info-table" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Keys"), h("th", { scope: "col" }, "What they do"))),
        h("tbody", {}, ...SHORTCUTS.map(([keys, what]) => h("tr", {}, h("td", {}, h("kbd", {}, keys)), h("td", {}, what))))),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Close"))));
  document.body.append(dialog);
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (back && back.isConnected) back.focus();
  });
  dialog.showModal();
}

export function init(ready) {
  document.addEventListener("keydown", (e) => {
    if (!ready() || e.defaultPrevented || document.querySelector("dialog[open]")) return;
    const inField = typing(e.target);
    const ctrlAlt = e.ctrlKey && e.altKey && !e.metaKey;
    if ((e.key === "/" && !inField && !e.ctrlKey && !e.altKey) || (ctrlAlt && (e.key === "/" || e.code === "Slash"))) {
      e.preventDefault();
      showSidebar();
      $("#search").focus();
    } else if (ctrlAlt && e.code === "KeyN") {
      e.preventDefault();
      showSidebar();
      $("#new-chat-name").focus();
    } else if (e.altKey && !e.ctrlKey && !e.metaKey && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
      e.preventDefault();
      stepChat(e.key === "ArrowDown" ? 1 : -1);
    } else if (e.key === "?" && !inField) {
      e.preventDefault();
      showHelp();
    }
  });
}
