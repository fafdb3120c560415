// A contact's safety number: the 60 digits and a QR code to compare in person, marking the
// contact verified, and the warning when their identity key changed.

import { $, api, confirmDialog, h, toast } from "./dom.js";
import { go, stillOn } from "./app.js";
import { refreshList } from "./chats.js";

export async function showContact(chat) {
  const pane = $("#pane");
  let c;
  try {
    c = await api(`/api/contacts/${encodeURIComponent(chat)}`);
  } catch (err) {
    if (!stillOn("contact", chat)) return;
    pane.replaceChildren(h("section", { class: "empty" }, h("p", {}, err.message),
      h("a", { href: `#/chat/${encodeURIComponent(chat)}` }, "Back to the chat")));
    return;
  }
  if (!stillOn("contact", chat)) return;
  const groups = c.safety_number.split(" ");
  const chatLink = `#/chat/${encodeURIComponent(chat)}`;
  pane.replaceChildren(
    h("section", { class: "contact", "aria-labelledby": "contact-title" },
      h("header", { class: "pane-head" },
        h("a", { href: chatLink, class: "back", "aria-label": `Back to the chat with ${c.username}` }, "←"),
        h("h2", { id: "contact-title" }, `Safety number with ${c.username}`)),
      h("div", { class: "scroll" },
        c.identity_changed ? h("div", { class: "banner warn", role: "alert" },
          h("strong", {}, `${c.username}'s safety number changed.`), " ",
          "Their identity key is not the one you had. This happens when they reinstall Baat, ",
          "but it is also what an attacker in the middle would cause. ",
          c.held ? `${c.held} message${c.held === 1 ? " is" : "s are"} held until you compare the new number. ` : "",
          "Sending is paused until then.") : null,
        c.name_doubt ? h("div", { class: "banner warn", role: "alert" },
          h("strong", {}, `The name "${c.username}" is not confirmed: `), `${c.name_doubt}. `,
          "This account named itself in its first message. Compare the safety number in person ",
          "before you trust it.") : null,
        h("p", { id: "contact-state", class: c.verified ? "state ok" : "state" },
          c.verified ? `✓ You verified ${c.username}.` : `${c.username} is not verified yet.`),
        h("p", {}, `Compare these 60 digits with ${c.username}, in person or over a call you trust. `,
          "They see the same number on their device. If every digit matches, nobody is reading along."),
        // A named group: a plain paragraph may not carry a label (ARIA 1.2, naming prohibited).
        h("p", { class: "number", role: "group", "aria-label": `Safety number: ${groups.join(", ")}` },
          ...groups.map((g) => h("span", { "aria-hidden": "true" }, g))),
        h("figure", { class: "qr" },
          h("img", { src: `/api/contacts/${encodeURIComponent(chat)}/qr.svg?n=${groups.slice(0, 2).join("")}`,
            alt: `QR code of the safety number with ${c.username}`, width: "196", height: "196" }),
          h("figcaption", { class: "hint" }, `${c.username} can scan this code instead of reading the digits.`)),
        h("div", { class: "actions" },
          h("button", { type: "button", class: "primary", id: "mark-verified",
            onclick: () => markVerified(chat, c) }, c.verified ? "Verify again" : "Mark as verified"),
          h("a", { href: chatLink, class: "button" }, "Back to the chat")),
        h("form", { class: "compare", onsubmit: (e) => compare(e, chat, c) },
          h("label", { for: "compare-number" }, `Or paste the number ${c.username} sent you`),
          h("div", { class: "row" },
            h("input", { id: "compare-number", inputmode: "numeric", autocomplete: "off", spellcheck: "false" }),
            h("button", { type: "submit" }, "Compare")),
          h("p", { id: "compare-result", role: "status", "aria-live": "polite" })))));
  $("#contact-title").setAttribute("tabindex", "-1");
  $("#contact-title").focus();
}

async function markVerified(chat, c) {
  const ok = await confirmDialog({
    title: `Verify ${c.username}?`,
    body: [`Only mark ${c.username} verified if all 60 digits match what they see on their device.`],
    confirm: "They match: mark as verified",
  });
  if (!ok) return;
  await verify(chat, c, c.safety_number);
}

async function compare(event, chat, c) {
  event.preventDefault();
  const value = $("#compare-number").value;
  if (!value.trim()) return;
  await verify(chat, c, value);
}

async function verify(chat, c, number) {
  const result = $("#compare-result");
  try {
    const r = await api(`/api/contacts/${encodeURIComponent(chat)}/verify`, { method: "POST", body: { number } });
    if (r.verified) {
      toast(`${c.username} is verified.`);
      refreshList();
      go(`#/contact/${encodeURIComponent(chat)}`);
    } else {
      result.textContent = "The numbers do not match. Do not trust this contact until you find out why.";
      result.className = "form-error";
    }
  } catch (err) {
    result.textContent = err.message;
    result.className = "form-error";
  }
}
