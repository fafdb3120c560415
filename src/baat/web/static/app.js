// Entry point: the app's state (onboarding, locked, ready), the live event socket, and
// the hash routes (#/, #/chat/ID, #/contact/ID, #/groups, #/group/ID, #/devices,
// #/settings, #/privacy) that pick what the pane shows.

import { $, api, debounce, toast } from "./dom.js";
import * as chats from "./chats.js";
import { onProgress } from "./attachments.js";
import { showContact } from "./contact.js";
import { showImport } from "./import.js";
import { showPrivacy } from "./privacy.js";
import * as groups from "./groups.js";
import * as devices from "./devices.js";
import * as settings from "./settings.js";
import * as notify from "./notify.js";
import * as keys from "./keys.js";

export const app = { state: null, info: null };

// -- state: which screen -----------------------------------------------------------------

function applyState(info) {
  const previous = app.state;
  app.info = info;
  app.state = info.state;
  setConnection(info.connection, info.reason);
  $("#gate").hidden = info.state === "ready";
  $("#shell").hidden = info.state !== "ready";
  $("#onboarding").hidden = info.state !== "onboarding";
  $("#unlock").hidden = info.state !== "locked";
  if (info.state === previous) return;
  if (info.state === "onboarding") showOnboarding(info);
  else if (info.state === "locked") showUnlock(info);
  else {
    $("#me").textContent = info.username ? `Signed in as ${info.username}` : "";
    chats.reset();
    chats.refreshList();
    route();
    // After sign-up or unlock the focus was on a form that is gone: give it a place.
    if (!$("#shell").contains(document.activeElement) || document.activeElement === document.body) {
      const composer = document.querySelector(".composer textarea");
      (composer && !composer.disabled ? composer : $("#new-chat-name")).focus();
    }
  }
}

function showOnboarding(info) {
  const server = $("#reg-server");
  if (!server.value) server.value = info.server_url;
  updatePolicyLink();
  $("#reg-passphrase-fields").hidden = info.passphrase_from_env;
  $("#reg-env-note").hidden = !info.passphrase_from_env;
  $("#reg-username").focus();
}

function showUnlock(info) {
  // The account's name, not a path on disk: the path means nothing to most people.
  $("#unlock-profile").textContent = info.profile_name || "your Baat profile";
  $("#unlock-passphrase").focus();
}

function updatePolicyLink() {
  const url = $("#reg-server").value.replace(/\/+$/, "");
  $("#reg-policy-link").href = /^https?:\/\//.test(url) ? `${url}/privacy` : "#";
}

const REGISTER_ERRORS = {
  username_taken: ["reg-username", "That username is taken. Try another one."],
  invalid_username: ["reg-username", null],
  not_connected: ["reg-server", "Cannot reach the server. Check the address and that it is running."],
  invalid_server_url: ["reg-server", null],
  passphrase_too_short: ["reg-passphrase", null],
};

async function register(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $("#reg-error");
  error.textContent = "";
  for (const input of form.querySelectorAll("input")) input.removeAttribute("aria-invalid");
  const body = { server_url: $("#reg-server").value.trim(), username: $("#reg-username").value.trim() };
  if (!app.info.passphrase_from_env) {
    body.passphrase = $("#reg-passphrase").value;
    if (body.passphrase !== $("#reg-passphrase2").value) {
      return fail(error, "reg-passphrase2", "The two passphrases differ.");
    }
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  button.textContent = "Creating account…";
  try {
    applyState(await api("/api/register", { method: "POST", body }));
    toast(`Welcome, ${app.info.username}.`);
  } catch (err) {
    const [field, text] = REGISTER_ERRORS[err.code] || ["reg-username", null];
    fail(error, field, text || err.message);
  } finally {
    button.disabled = false;
    button.textContent = "Create account";
  }
}

async function unlock(event) {
  event.preventDefault();
  const error = $("#unlock-error");
  error.textContent = "";
  const field = $("#unlock-passphrase");
  const button = event.currentTarget.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    applyState(await api("/api/unlock", { method: "POST", body: { passphrase: field.value } }));
    field.value = "";
  } catch (err) {
    fail(error, "unlock-passphrase", err.code === "wrong_passphrase" ? "Wrong passphrase." : err.message);
  } finally {
    button.disabled = false;
  }
}

function fail(errorEl, fieldId, text) {
  errorEl.textContent = text;
  const field = document.getElementById(fieldId);
  if (field) {
    field.setAttribute("aria-invalid", "true");
    field.focus();
  }
}

// -- connection to the server ------------------------------------------------------------

const CONNECTION_TEXT = {
  online: "Online",
  connecting: "Connecting…",
  offline: "Offline: messages are kept and sent when the server is back",
};

function setConnection(value, reason = "") {
  const el = $("#connection");
  el.textContent = CONNECTION_TEXT[value] || value;
  el.dataset.state = value;
  el.title = value === "offline" && reason ? `Last attempt: ${reason}` : "";
  $("#retry").hidden = value !== "offline";
}

// -- live events from the app ------------------------------------------------------------

let socketDelay = 500;
let socketFailures = 0;

function connectEvents() {
  const socket = new WebSocket(`ws://${location.host}/ws`);
  socket.onopen = () => {
    const back = socketFailures > 0;
    socketDelay = 500;
    socketFailures = 0;
    // The app restarted (or the network came back): what happened meanwhile is reloaded.
    if (back && app.state === "ready") {
      chats.refreshList();
      route();
    }
  };
  socket.onmessage = (msg) => handle(JSON.parse(msg.data));
  socket.onclose = () => {
    socketFailures += 1;
    setConnection("offline");
    if (socketFailures >= 3) stopped();
    socketDelay = Math.min(socketDelay * 2, 8000);
    setTimeout(connectEvents, socketDelay);
  };
}

// The socket keeps failing: the app is not running, or it runs with a new secret (the
// secret is kept in the profile, so that happens only after 'baat app --new-secret').
async function stopped() {
  const el = $("#connection");
  let text = "The Baat app stopped: this page reconnects when 'baat app' runs again";
  try {
    const r = await fetch("/api/state", { headers: { accept: "application/json" } });
    if (r.status === 403) text = "The Baat app has a new address: open the one 'baat app' printed";
  } catch {
    // Not running: the first text is right.
  }
  if (socketFailures < 3) return; // reconnected meanwhile
  el.textContent = text;
  el.dataset.state = "stopped";
  $("#retry").hidden = true;
}

// Events can arrive just before the account is deleted or the profile locked: a refresh
// that fires after that would only meet a refusal.
const refreshList = debounce(() => {
  if (app.state === "ready") chats.refreshList();
});

function handle(event) {
  groups.onEvent(event);
  devices.onEvent(event);
  settings.onEvent(event);
  switch (event.type) {
    case "state":
      applyState(event);
      break;
    case "connection":
      setConnection(event.connection, event.reason);
      break;
    case "message":
      notify.onMessage(event.message);
      chats.onMessage(event.message);
      refreshList();
      break;
    case "status":
      chats.onStatus(event.id, event.status);
      refreshList();
      break;
    case "incident":
      toast(event.detail, "error");
      chats.onIncident(event);
      refreshList();
      break;
    case "contact":
      chats.onContact(event.chat);
      refreshList();
      break;
    case "changed":
      chats.onChanged(event.chat);
      refreshList();
      break;
    case "typing":
      chats.onTyping(event);
      break;
    case "expired":
      chats.onExpired();
      refreshList();
      break;
    case "upload":
    case "download":
      onProgress(event);
      break;
    default:
      break;
  }
}

// -- routes ------------------------------------------------------------------------------

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function parseHash() {
  const [, view, id] = (location.hash || "#/").split("/");
  return { view: view || "", target: id ? decodeURIComponent(id) : null };
}

// Screens load asynchronously: one that finishes after the person moved on must not draw.
export function stillOn(view, target = null) {
  const now = parseHash();
  return now.view === view && now.target === target;
}

function route() {
  if (app.state !== "ready") return;
  const { view, target } = parseHash();
  if (view === "chat" && target && target.startsWith("g:")) {
    // A group in the chat list opens the group's own view.
    location.replace(`#/group/${encodeURIComponent(target)}`);
    return;
  }
  document.body.dataset.view = view && view !== "" ? "detail" : "list";
  const groupView = view === "groups" || view === "group";
  $("#nav-chats").toggleAttribute("aria-current", !["privacy", "import", "groups", "group", "devices", "settings"].includes(view));
  $("#nav-groups").toggleAttribute("aria-current", groupView);
  $("#nav-devices").toggleAttribute("aria-current", view === "devices");
  $("#nav-settings").toggleAttribute("aria-current", view === "settings");
  if (!groupView) groups.leave();
  $("#nav-privacy").toggleAttribute("aria-current", view === "privacy");
  $("#nav-import").toggleAttribute("aria-current", view === "import");
  if (view === "chat" && target) chats.showChat(target);
  else if (view === "contact" && target) {
    chats.leave();
    showContact(target);
  } else if (view === "groups") {
    chats.leave();
    groups.showGroups();
  } else if (view === "group" && target) {
    chats.leave();
    groups.showGroup(target);
  } else if (view === "devices") {
    chats.leave();
    devices.showDevices();
  } else if (view === "settings") {
    chats.leave();
    settings.showSettings();
  } else if (view === "import") {
    chats.leave();
    showImport();
  } else if (view === "privacy") {
    chats.leave();
    showPrivacy();
  } else chats.showNothing();
}

// Phones: the six screens sit behind one "Menu" button, so the top bar stays one row.
function initMenu() {
  const toggle = $("#nav-toggle");
  const nav = $("#main-nav");
  const close = (focus) => {
    nav.removeAttribute("data-open");
    toggle.setAttribute("aria-expanded", "false");
    if (focus) toggle.focus();
  };
  toggle.addEventListener("click", () => {
    const open = !nav.hasAttribute("data-open");
    nav.toggleAttribute("data-open", open);
    toggle.setAttribute("aria-expanded", String(open));
    if (open) nav.querySelector("a").focus();
  });
  nav.addEventListener("click", (e) => { if (e.target.closest("a")) close(false); });
  nav.addEventListener("keydown", (e) => { if (e.key === "Escape" && nav.hasAttribute("data-open")) close(true); });
}

export async function refreshState() {
  applyState(await api("/api/state"));
}

// -- start -------------------------------------------------------------------------------

async function boot() {
  $("#register-form").addEventListener("submit", register);
  $("#reg-server").addEventListener("input", updatePolicyLink);
  $("#unlock-form").addEventListener("submit", unlock);
  $("#retry").addEventListener("click", () => api("/api/reconnect", { method: "POST" }).catch(() => {}));
  window.addEventListener("hashchange", route);
  initMenu();
  keys.init(() => app.state === "ready");
  document.addEventListener("visibilitychange", () => chats.onVisible());
  chats.init();
  notify.init();
  try {
    applyState(await api("/api/state"));
  } catch (err) {
    toast(err.message, "error");
  }
  connectEvents();
}

boot();
