// The privacy dashboard: optional purposes with signed receipts, what the server holds,
// downloads, the policy and what changed in it, and deleting the account.

import { $, api, confirmDialog, dateOfDay, h, toast } from "./dom.js";
import { app, refreshState, stillOn } from "./app.js";

export async function showPrivacy() {
  const pane = $("#pane");
  pane.replaceChildren(h("section", { class: "empty" }, h("p", { role: "status" }, "Loading your privacy settings…")));
  let data;
  try {
    data = await api("/api/privacy");
  } catch (err) {
    if (!stillOn("privacy")) return;
    pane.replaceChildren(h("section", { class: "empty" }, h("p", { role: "alert" },
      err.code === "not_connected" ? "Cannot reach the server: privacy settings live there. Try again when online."
        : err.message)));
    return;
  }
  if (!stillOn("privacy")) return;
  const recipients = new Map((data.policy.recipients || []).map((r) => [r.id, r.name]));
  pane.replaceChildren(
    h("section", { class: "privacy", "aria-labelledby": "privacy-title" },
      h("header", { class: "pane-head" },
        h("a", { href: "#/", class: "back", "aria-label": "Back to chats" }, "←"),
        h("h2", { id: "privacy-title", tabindex: "-1" }, "Privacy")),
      h("div", { class: "scroll" },
        (data.ledger_warnings || []).length ? ledgerBanner(data.ledger_warnings) : null,
        data.changes || data.reconsent.length ? changesBanner(data) : null,
        consentsSection(data, recipients),
        data.sealed ? sealedSection(data.sealed) : null,
        heldSection(),
        downloadSection(),
        policySection(data, recipients),
        deleteSection())));
  $("#privacy-title").focus();
}

// -- sealed sender: who may send without the server learning who sent ----------------------

function sealedSection(s) {
  const toggle = h("input", { type: "checkbox", role: "switch", id: "sealed-anyone", class: "switch",
    "aria-describedby": "sealed-anyone-desc", onchange: setSealedAnyone });
  toggle.checked = Boolean(s.sealed_from_anyone);
  return h("section", { "aria-labelledby": "sealed-title", id: "sealed" },
    h("h3", { id: "sealed-title" }, "Sealed sender"),
    h("p", {}, "Messages to contacts who shared their profile key with you are sent sealed: the server cannot tell they came from you."),
    h("div", { class: "purpose-head" }, h("label", { for: "sealed-anyone" }, "Sealed messages from anyone"), toggle),
    h("p", { id: "sealed-anyone-desc", class: "hint" },
      "Off: only contacts holding your profile key may send you sealed messages. On: anyone may, which also lets strangers write without the server knowing who they are."),
    h("p", { id: "sealed-stats", role: "status" }, sealedStats(s)));
}

function sealedStats(s) {
  const base = `Sent sealed: ${s.sealed}. Sent authenticated instead: ${s.fallback}.`;
  if (!s.last_fallback) return base;
  const when = new Date(s.last_fallback.at * 1000).toISOString().slice(0, 16).replace("T", " ");
  const why = s.last_fallback.reason === "no profile key" ? "the contact has not shared a profile key yet"
    : "the contact's access key changed or was refused";
  return `${base} Last fallback ${when} UTC: ${why}.`;
}

async function setSealedAnyone(event) {
  const toggle = event.currentTarget;
  const on = toggle.checked;
  toggle.disabled = true;
  try {
    const s = await api("/api/privacy/sealed", { method: "POST", body: { anyone: on } });
    $("#sealed-stats").textContent = sealedStats(s);
    toast(on ? "Sealed messages from anyone: on." : "Sealed messages from anyone: off.");
  } catch (err) {
    toggle.checked = !on;
    toast(`Not changed: ${err.message}`, "error");
  } finally {
    toggle.disabled = false;
    toggle.focus();
  }
}

// -- the server's consent ledger no longer shows what this device saw ---------------------

function ledgerBanner(warnings) {
  return h("section", { class: "banner warn", role: "alert", id: "ledger-warnings" },
    h("h3", {}, "The server's consent records changed"),
    h("ul", {}, ...warnings.map((w) => h("li", {}, w))),
    h("p", {}, "Keep your receipts: they prove what you agreed to and when."));
}

// -- what changed in the policy ----------------------------------------------------------

function changesBanner(data) {
  const d = data.changes;
  const titles = new Map(data.purposes.map((p) => [p.purpose, p.title]));
  const named = (ids) => ids.map((id) => titles.get(id) || id).join(", ");
  const counts = (kind) => (d ? d.changes.filter((c) => c.kind === kind).length : 0);
  return h("section", { class: "banner info", "aria-labelledby": "changes-title", id: "policy-changes" },
    d ? h("h3", { id: "changes-title" }, `The privacy policy changed (version ${d.old_version} → ${d.new_version})`)
      : h("h3", { id: "changes-title" }, "Your consent is asked again"),
    d ? h("p", {}, `${counts("expansion")} change(s) let Baat do more with data, ${counts("reduction")} do less, `,
      `${counts("changed")} reword or change something else. Messaging works the same whatever you decide.`) : null,
    d && d.changes.length ? h("ul", { class: "changes" }, ...d.changes.map((c) => h("li", {},
      h("span", { class: `kind ${c.kind}` }, c.kind), " ", describeChange(c, data.policy)))) : null,
    data.review.length ? h("p", { class: "review" }, h("strong", {}, "Please review: "),
      `you allowed ${named(data.review)}, and the new policy widens it. Keep it on or turn it off below.`) : null,
    data.reconsent.length ? h("p", { class: "reconsent" }, h("strong", {}, "Asked again: "),
      `your earlier consent to ${named(data.reconsent)} no longer counts under the current policy. `,
      "Turn it on again below only if you still agree; messaging works either way.") : null,
    d ? h("button", { type: "button", onclick: (e) => acknowledge(e, data.policy.sha256) }, "I have read the changes") : null);
}

// "data[blob.id].purposes: new purpose market" reads as "Attachment id: new purpose market".
function describeChange(c, policy) {
  const m = /^(data|purposes|recipients)\[([^\]]+)\]/.exec(c.path);
  const items = m ? policy[m[1]] || [] : [];
  const item = m ? items.find((x) => x.id === m[2]) : null;
  const name = item ? item.title || item.name : null;
  return name ? [h("strong", {}, name), `: ${c.what}`] : [c.what, " ", h("code", {}, c.path)];
}

async function acknowledge(event, sha256) {
  const banner = event.currentTarget.closest("section");
  try {
    await api("/api/privacy/policy/seen", { method: "POST", body: { sha256 } });
    banner.remove();
    $("#privacy-title").focus();
    toast("Noted. The current policy is the one you have seen.");
  } catch (err) {
    toast(err.message, "error");
  }
}

// -- optional purposes -------------------------------------------------------------------

function consentsSection(data, recipients) {
  return h("section", { "aria-labelledby": "consents-title" },
    h("h3", { id: "consents-title" }, "Optional uses of your data"),
    h("p", { class: "hint" }, "Each is off until you turn it on, and Baat works fully with all of them off. ",
      "Every change gives you a receipt signed by the server."),
    h("ul", { class: "purposes" }, ...data.purposes.map((p) => purposeItem(p, recipients))));
}

function purposeItem(p, recipients) {
  const id = `consent-${p.purpose}`;
  const toggle = h("input", { type: "checkbox", role: "switch", id, class: "switch",
    "aria-describedby": `${id}-desc ${id}-state`, onchange: (e) => setConsent(e, p) });
  toggle.checked = Boolean(p.effective);
  const shared = (p.recipients || []).map((r) => recipients.get(r) || r).join(", ");
  return h("li", { class: "purpose", id: `purpose-${p.purpose}` },
    h("div", { class: "purpose-head" }, h("label", { for: id }, p.title), toggle),
    h("p", { id: `${id}-desc` }, p.description, shared ? ` Who receives it: ${shared}.` : ""),
    h("p", { id: `${id}-state`, class: "hint" }, stateText(p)),
    h("div", { class: "receipt-slot" }));
}

function stateText(p) {
  if (p.needs_reconsent) return "Off since the policy changed: turn it on again if you still agree.";
  if (p.effective) return `On since ${p.at.replace("T", " ").replace("Z", " UTC")}.`;
  return p.state === "withdrawn" ? `Off (withdrawn ${p.at.replace("T", " ").replace("Z", " UTC")}).` : "Off.";
}

async function setConsent(event, p) {
  const toggle = event.currentTarget;
  const on = toggle.checked;
  const item = toggle.closest(".purpose");
  toggle.disabled = true;
  try {
    const receipt = await api(`/api/privacy/consents/${encodeURIComponent(p.purpose)}`, { method: on ? "POST" : "DELETE" });
    Object.assign(p, { effective: on, needs_reconsent: false, state: on ? "given" : "withdrawn", at: receipt.record.event_time });
    item.querySelector(`#consent-${p.purpose}-state`).textContent = stateText(p);
    item.querySelector(".receipt-slot").replaceChildren(receiptView(receipt));
    toast(on ? `Allowed: ${p.title}.` : `Withdrawn: ${p.title}.`);
  } catch (err) {
    toggle.checked = !on;
    toast(`Not changed: ${err.message}`, "error");
  } finally {
    toggle.disabled = false;
    toggle.focus();
  }
}

function receiptView(r) {
  const state = r.record.state.split("#").pop().replace(/([a-z])([A-Z])/g, "$1 $2");
  const field = `jws-${r.record_id}`;
  return h("details", { class: "receipt", open: true },
    h("summary", {}, `Signed receipt: ${state.toLowerCase()}, ${r.record.event_time.replace("T", " ").replace("Z", " UTC")}`),
    h("dl", {},
      h("dt", {}, "Purpose"), h("dd", {}, r.record.purpose.title),
      h("dt", {}, "Policy version"), h("dd", {}, String(r.record.notice.version)),
      h("dt", {}, "Record"), h("dd", {}, h("code", {}, r.record_id)),
      h("dt", {}, "Signed by key"), h("dd", {}, h("code", {}, r.kid))),
    h("label", { for: field }, "The signed receipt; check it any time with ", h("code", {}, "baat consent verify")),
    h("textarea", { id: field, readonly: true, rows: "3", class: "jws" }, r.receipt));
}

// -- what the server holds ---------------------------------------------------------------

function heldSection() {
  const body = h("div", { id: "export-view" });
  return h("section", { "aria-labelledby": "held-title" },
    h("h3", { id: "held-title" }, "What the server holds about me"),
    h("p", { class: "hint" }, "The server's own answer to an access request: every stored row that names you, ",
      "what it leaves out and why, your consent history and every transfer."),
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: (e) => loadExport(e, body) }, "Show what the server holds"),
      h("a", { href: "/api/privacy/export?download=1", download: "baat-server-export.json", class: "button" }, "Download as JSON")),
    body);
}

async function loadExport(event, body) {
  const button = event.currentTarget;
  button.disabled = true;
  try {
    body.replaceChildren(...exportView(await api("/api/privacy/export")));
    button.textContent = "Refresh";
  } catch (err) {
    body.replaceChildren(h("p", { class: "form-error", role: "alert" }, err.message));
  } finally {
    button.disabled = false;
  }
}

function exportView(x) {
  const out = [h("p", {}, `Generated ${x.generated_at.replace("T", " ").replace("Z", " UTC")} under policy version ${x.policy.version}.`)];
  out.push(h("h4", {}, "Stored about you"));
  for (const [table, rows] of Object.entries(x.data || {})) {
    const list = rows.map((row) => h("dl", { class: "row-data" },
      ...Object.entries(row).flatMap(([k, v]) => [h("dt", {}, k.replace(/_/g, " ")), h("dd", {}, shown(k, v))])));
    const title = `${table.replace(/_/g, " ")} (${rows.length} row${rows.length === 1 ? "" : "s"})`;
    out.push(rows.length > 3 ? h("details", {}, h("summary", {}, title), ...list) : h("div", { class: "table" }, h("h5", {}, title), ...list));
  }
  out.push(h("h4", {}, "Left out, and why"),
    h("ul", {}, ...(x.not_included || []).map((n) => h("li", {}, h("code", {}, n.field), ": ", n.reason))));
  const history = (x.consents && x.consents.history) || [];
  out.push(h("h4", {}, "Consent history"), history.length
    ? h("ul", {}, ...history.map((e) => h("li", {}, `${e.record.event_time.replace("T", " ").replace("Z", " UTC")}: `,
      `${e.record.purpose.title}, ${e.record.state.split("#").pop().replace("Consent", "").toLowerCase()}`)))
    : h("p", { class: "hint" }, "No consent given or withdrawn yet."));
  out.push(h("h4", {}, "Shared with others"), x.transfers && x.transfers.length
    ? h("p", {}, `${x.transfers.length} transfer(s), to: ${x.shared_with.join(", ")}.`)
    : h("p", { class: "hint" }, "Nothing about you has been shared with anyone."));
  return out;
}

function shown(key, value) {
  if (value === null || value === undefined) return "–";
  if (key.endsWith("_day") && Number.isInteger(value)) return dateOfDay(value);
  const text = typeof value === "object" ? JSON.stringify(value) : String(value);
  return text.length > 48 ? h("span", { title: text }, `${text.slice(0, 44)}…`) : text;
}

function downloadSection() {
  return h("section", { "aria-labelledby": "download-title" },
    h("h3", { id: "download-title" }, "Download all my data"),
    h("p", { class: "hint" }, "One JSON file: what the server holds, plus this device's contacts and decrypted ",
      "message history. Keep it safe: it is not encrypted."),
    h("a", { href: "/api/privacy/download", download: "baat-my-data.json", class: "button" }, "Download all my data"));
}

// -- the policy --------------------------------------------------------------------------

function retention(r) {
  const m = /^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?$/.exec(r.duration || "");
  if (!m || r.duration === "P0D") return `until ${r.trigger}`;
  const parts = [[m[1], "year"], [m[2], "month"], [m[3], "day"]].filter(([n]) => n)
    .map(([n, unit]) => `${n} ${unit}${n === "1" ? "" : "s"}`);
  return `${parts.join(" ")} after ${r.trigger}`;
}

function policySection(data, recipients) {
  const p = data.policy;
  const essential = (p.purposes || []).filter((x) => !x.optional);
  const stored = (p.data || []).filter((d) => d.side === "server" && d.subjects && d.subjects.length);
  return h("section", { "aria-labelledby": "policy-title" },
    h("h3", { id: "policy-title" }, "The server's privacy policy"),
    h("p", {}, `Version ${p.version}, effective ${p.effective}, from ${p.controller.name} (`,
      h("a", { href: `mailto:${p.controller.email}` }, p.controller.email), "). ", p.same_rules_everywhere),
    h("h4", {}, "Always, without asking"),
    h("ul", {}, ...essential.map((x) => h("li", {}, h("strong", {}, x.title), `: ${x.description}`))),
    h("details", {}, h("summary", {}, `What the server stores (${stored.length} kinds of data) and for how long`),
      h("ul", {}, ...stored.map((d) => h("li", {}, h("strong", {}, d.title), `: ${d.description} Kept ${retention(d.retention)}.`)))),
    h("h4", {}, "Your rights"),
    h("ul", {}, ...(p.rights || []).map((r) => h("li", {}, h("strong", {}, r.right), ` (${r.cites}): ${r.how}`))),
    h("p", {}, p.legal_process ? p.legal_process.statement : ""),
    h("p", {}, h("a", { href: data.notice_url, target: "_blank", rel: "noopener noreferrer" }, "Read the full notice on the server")),
    recipients.size ? h("p", { class: "hint" }, `Recipients named in the policy: ${[...recipients.values()].join("; ")}.`) : null);
}

// -- leaving -----------------------------------------------------------------------------

function deleteSection() {
  return h("section", { class: "danger-zone", "aria-labelledby": "delete-title" },
    h("h3", { id: "delete-title" }, "Delete my account"),
    h("p", {}, "Deletes your account and everything the server holds about it, withdraws your consents, ",
      "and erases this device's keys and messages. It cannot be undone; download your data first if you want a copy."),
    h("button", { type: "button", class: "danger", onclick: deleteAccount }, "Delete my account…"));
}

async function deleteAccount() {
  const username = app.info.username;
  const typed = await confirmDialog({
    title: "Delete your account?",
    body: ["Your account, your consents and this device's messages will be gone for good."],
    confirm: "Delete my account",
    danger: true,
    input: { label: `Type your username (${username}) to confirm` },
  });
  if (typed === null) return;
  if (typed.trim() !== username) {
    toast("The username did not match; nothing was deleted.", "error");
    return;
  }
  // While the account goes, no view or list refresh may start: it would ask for a profile
  // that is being deleted (route() and the list refresh run only in the "ready" state).
  app.state = "leaving";
  try {
    await api("/api/account/delete", { method: "POST", body: { confirm: username } });
    await refreshState();
    location.hash = "#/";
    toast("Your account was deleted. Baat forgot everything on this device too.");
  } catch (err) {
    app.state = "ready";
    toast(`Not deleted: ${err.message}`, "error");
  }
}
