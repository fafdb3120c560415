// The disclosure card of a chat with a business account (docs/BUSINESS.md §3): who can read
// the chat (the business and every host or processor it names, with their country), for
// what and for how long, and whether the operator verified it. Nothing can be written
// before the card is accepted (a consent with a signed receipt); after a withdrawal the
// chat is read-only; when the business changes who can read it, what is written waits
// ("held") until the new card is accepted. chats.js calls businessCard() for each chat.

import { $, api, confirmDialog, h, toast } from "./dom.js";

const sheet = h("link", { rel: "stylesheet", href: "/static/business.css" });
document.head.append(sheet);

const STATE = {
  new: "Accept this disclosure to start the chat.",
  accepted: "You accepted this disclosure.",
  changed: "The business changed who can read this chat. What you write now is held until you accept the new disclosure.",
  withdrawn: "You withdrew your consent: this chat is read-only.",
};

function stillOpen(username) {
  const box = $("#messages");
  return box && box.getAttribute("aria-label") === `Messages with ${username}`;
}

export async function businessCard(chat, username) {
  let card;
  try {
    card = await api(`/api/business/${encodeURIComponent(chat)}?to=${encodeURIComponent(username)}`);
  } catch {
    return; // offline or not a contact yet: the send itself says what is missing
  }
  if (card.business && stillOpen(username)) render(chat, username, card);
}

function readerItem(r) {
  const devices = r.devices.length === 1 ? `device ${r.devices[0]}` : `devices ${r.devices.join(", ")}`;
  return h("li", {}, h("strong", {}, r.name), ` · ${r.role} · ${r.country} · ${devices}`);
}

function render(chat, username, card) {
  const accepting = card.state !== "accepted";
  const button = accepting
    ? h("button", { type: "button", class: "primary", id: "business-accept", onclick: () => decide(chat, username, "accept") },
      card.state === "new" ? "Accept and chat" : "Accept the new disclosure")
    : h("button", { type: "button", class: "small danger", id: "business-withdraw", onclick: () => decide(chat, username, "withdraw") },
      "Withdraw consent");
  const node = h("section", { id: "business-card", class: `business-card ${card.state}`, "aria-label": `Disclosure of ${card.display_name}` },
    h("h3", {}, card.display_name, " ",
      h("span", { class: card.verified ? "pill verified" : "pill unverified", id: "business-badge" },
        card.verified ? "✓ Verified business" : "Unverified business")),
    h("p", { class: "entity" }, `${card.entity} · ${card.country} · ${card.contact}`),
    h("p", { class: "lead" }, "Who can read this chat:"),
    h("ul", { class: "readers", id: "business-readers" }, ...card.readers.map(readerItem)),
    card.readers.length === 1 ? h("p", { class: "hint" }, "No host or processor: the business runs its own devices.") : null,
    h("p", {}, h("strong", {}, "For: "), card.purposes.join("; ")),
    h("p", {}, h("strong", {}, "Kept: "), card.retention),
    h("p", { id: "business-state", class: "state", role: "status" }, STATE[card.state] || card.state),
    h("div", { class: "business-actions" }, button));
  const old = $("#business-card");
  if (old) old.replaceWith(node);
  else $("#messages").before(node);
  const form = $(".composer");
  if (form) form.hidden = card.state === "new" || card.state === "withdrawn";
}

async function decide(chat, username, what) {
  if (what === "withdraw") {
    const yes = await confirmDialog({ title: "Withdraw your consent?", body: "The chat becomes read-only.",
      confirm: "Withdraw", danger: true });
    if (!yes) return;
  }
  try {
    const card = await api(`/api/business/${encodeURIComponent(chat)}/${what}`, { method: "POST", body: { to: username } });
    if (stillOpen(username)) render(chat, username, card);
    toast(what === "accept" ? "Accepted: your consent receipt is signed." : "Consent withdrawn: the chat is read-only.");
  } catch (err) {
    toast(`Not done: ${err.message}`, "error");
  }
}
