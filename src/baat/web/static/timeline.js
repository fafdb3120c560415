// The conversation log that 1:1 chats (chats.js) and groups (groups.js) share:
//
// 1. Append, never rebuild: messages are keyed ("in:ID" / "out:ID"); a reload adds the new
//    ones at the end and refills only bubbles whose data changed, so a screen reader's log
//    announces each message once. Only an out-of-order list (rare) redraws everything.
// 2. Read means seen: an incoming "new" message is reported seen only once at least half
//    of it (or half the log's height, for a tall one) has been inside the scrolled log
//    while the page is visible and has the focus (IntersectionObserver, Page Visibility,
//    document.hasFocus). Scrolled away, on another screen or in a background window, it
//    stays "delivered" for its sender.
// 3. Catch-up: on opening, an "N unread messages" divider sits above the first unread
//    message, which is scrolled into view; a message arriving while the person reads
//    further up shows a "new messages" button instead of pulling the log down.
// 4. One tab stop: the log is one stop; ArrowUp/ArrowDown/Home/End move between messages,
//    and only the focused message's own buttons join the tab order.

import { dayKey, dayLabel, debounce, h } from "./dom.js";

const NEAR_BOTTOM = 80; // px: closer than this to the end counts as "at the end"
let active = null; // the timeline on screen; window focus and visibility wake it

function keyOf(m) {
  return `${m.direction}:${m.id}`;
}

// Group notices ("X added Y") arrive unread too: they count and are seen like messages.
function isUnread(m) {
  return m.direction === "in" && m.status === "new";
}

function pageAttentive() {
  return document.visibilityState === "visible" && document.hasFocus();
}

export class Timeline {
  // box: the role="log" element; draw(m) -> node; seen(ids) reports messages seen.
  constructor(box, { draw, seen }) {
    this.box = box;
    this.draw = draw;
    this.seen = seen;
    this.nodes = new Map(); // key -> node
    this.order = [];
    this.loaded = false;
    this.visible = new Set(); // ids of unread messages now on screen
    this.unseen = new Map(); // id -> node, unread and not yet reported
    this.reported = new Set();
    this.newCount = 0;
    this.jump = h("button", { type: "button", class: "jump-new small", hidden: true,
      onclick: () => this.toBottom(true) });
    box.after(this.jump);
    this.observer = new IntersectionObserver((entries) => this.onIntersect(entries),
      { root: box, threshold: [0, 0.25, 0.5, 0.75, 1] });
    box.addEventListener("scroll", () => {
      if (this.atBottom()) this.hideJump();
    });
    box.addEventListener("keydown", (e) => this.onKey(e));
    box.addEventListener("focusin", (e) => this.onFocus(e));
    this.flushSoon = debounce(() => this.flush(), 50);
    active = this;
  }

  destroy() {
    this.observer.disconnect();
    if (active === this) active = null;
  }

  atBottom() {
    const b = this.box;
    return b.scrollHeight - b.scrollTop - b.clientHeight < NEAR_BOTTOM;
  }

  toBottom(focus = false) {
    this.box.scrollTop = this.box.scrollHeight;
    this.hideJump();
    if (focus) this.box.focus();
  }

  hideJump() {
    this.newCount = 0;
    this.jump.hidden = true;
  }

  // -- 1. merging what the store says ---------------------------------------------------

  merge(list) {
    const keys = list.map(keyOf);
    const wanted = new Set(keys);
    // Gone (expired, or deleted on another device): remove just those bubbles.
    for (const key of this.order.filter((k) => !wanted.has(k))) this.removeKey(key);
    if (!this.order.every((k, i) => keys[i] === k)) this.clear();
    const atBottom = this.atBottom();
    const firstLoad = !this.loaded;
    const added = [];
    for (const m of list) {
      const key = keyOf(m);
      let node = this.nodes.get(key) || this.adopt(m);
      if (node) {
        this.refill(node, m);
        continue;
      }
      node = this.append(m);
      added.push(m);
    }
    this.loaded = true;
    if (firstLoad) this.catchUp(list);
    else if (added.length) {
      const mine = added.some((m) => m.direction === "out");
      const incoming = added.filter((m) => m.direction === "in" && !m.notice).length;
      if (atBottom || mine) this.toBottom();
      else if (incoming) this.showJump(incoming);
    }
    this.dropEmptyDays();
    this.flushSoon();
    return added;
  }

  // A bubble drawn when Send was pressed turns into the stored message (chats.js).
  adopt(m) {
    if (m.direction !== "out") return null;
    const pending = [...this.box.querySelectorAll(".msg[data-pending]")].find((n) => n.dataset.text === m.text);
    if (!pending) return null;
    pending.removeAttribute("data-pending");
    pending.dataset.key = keyOf(m);
    this.nodes.set(keyOf(m), pending);
    this.order.push(keyOf(m));
    return pending;
  }

  refill(node, m) {
    const json = JSON.stringify(m);
    if (node.baatJson === json) return;
    const fresh = this.prepare(this.draw(m), m);
    node.replaceChildren(...fresh.childNodes);
    node.className = fresh.className;
    for (const [k, v] of Object.entries(fresh.dataset)) node.dataset[k] = v;
    node.baatMessage = m;
    node.baatJson = json;
    this.track(node, m);
  }

  prepare(node, m) {
    node.dataset.key = keyOf(m);
    node.dataset.day = dayKey(m.sent_at);
    node.tabIndex = -1;
    for (const el of node.querySelectorAll("button, select, a[href], audio, video, input")) el.tabIndex = -1;
    return node;
  }

  append(m) {
    const key = keyOf(m);
    const lastKey = this.order[this.order.length - 1];
    const lastDay = lastKey ? this.nodes.get(lastKey).dataset.day : null;
    const before = this.box.querySelector(".msg[data-pending]");
    if (dayKey(m.sent_at) !== lastDay) {
      this.box.insertBefore(h("p", { class: "day", role: "separator", dataset: { day: dayKey(m.sent_at) } },
        h("span", {}, dayLabel(m.sent_at))), before);
    }
    const node = this.prepare(this.draw(m), m);
    node.baatMessage = m;
    node.baatJson = JSON.stringify(m);
    this.box.insertBefore(node, before);
    this.nodes.set(key, node);
    this.order.push(key);
    this.track(node, m);
    return node;
  }

  // Draw a bubble at once when Send is pressed (chats.js), before the store has it.
  appendPending(m) {
    const lastKey = this.order[this.order.length - 1];
    if (!lastKey || this.nodes.get(lastKey).dataset.day !== dayKey(m.sent_at)) {
      this.box.append(h("p", { class: "day", role: "separator", dataset: { day: dayKey(m.sent_at) } },
        h("span", {}, dayLabel(m.sent_at))));
    }
    const node = this.prepare(this.draw(m), m);
    node.dataset.pending = "";
    node.dataset.text = m.text;
    this.box.append(node);
    this.toBottom();
    return node;
  }

  removeKey(key) {
    const node = this.nodes.get(key);
    if (node) {
      this.observer.unobserve(node);
      node.remove();
    }
    this.nodes.delete(key);
    this.order = this.order.filter((k) => k !== key);
  }

  clear() {
    for (const key of [...this.order]) this.removeKey(key);
    for (const sep of this.box.querySelectorAll(".day")) sep.remove();
  }

  dropEmptyDays() {
    for (const sep of this.box.querySelectorAll(".day")) {
      const next = sep.nextElementSibling;
      if (!next || next.classList.contains("day")) sep.remove();
    }
  }

  node(id) {
    return this.nodes.get(`in:${id}`) || this.nodes.get(`out:${id}`) || null;
  }

  lastOwn() {
    for (let i = this.order.length - 1; i >= 0; i -= 1) {
      const m = this.nodes.get(this.order[i]).baatMessage;
      if (m && m.direction === "out" && !m.deleted && !m.notice && m.text) return m;
    }
    return null;
  }

  // -- 3. catch-up --------------------------------------------------------------------------

  catchUp(list) {
    const unread = list.filter(isUnread);
    const first = unread.length ? this.nodes.get(keyOf(unread[0])) : null;
    if (!first) {
      this.toBottom();
      return;
    }
    const divider = h("p", { class: "unread-divider", id: "unread-divider", role: "separator" },
      h("span", {}, unread.length === 1 ? "1 unread message" : `${unread.length} unread messages`));
    const prev = first.previousElementSibling;
    // Above the day separator when the first unread message opens a new day.
    this.box.insertBefore(divider, prev && prev.classList.contains("day") ? prev : first);
    this.box.scrollTop = Math.max(0, divider.offsetTop - this.box.offsetTop - 8);
  }

  showJump(count) {
    this.newCount += count;
    this.jump.textContent = `${this.newCount} new message${this.newCount === 1 ? "" : "s"} ↓`;
    this.jump.hidden = false;
  }

  // -- 2. read means seen -----------------------------------------------------------------

  track(node, m) {
    if (isUnread(m) && !this.reported.has(m.id)) {
      if (!this.unseen.has(m.id)) this.observer.observe(node);
      this.unseen.set(m.id, node);
    } else if (this.unseen.has(m.id)) {
      this.observer.unobserve(this.unseen.get(m.id));
      this.unseen.delete(m.id);
      this.visible.delete(m.id);
    }
  }

  onIntersect(entries) {
    const half = this.box.clientHeight / 2;
    for (const entry of entries) {
      const m = entry.target.baatMessage;
      if (!m) continue;
      const shown = entry.isIntersecting
        && (entry.intersectionRatio >= 0.5 || entry.intersectionRect.height >= half);
      if (shown) this.visible.add(m.id);
      else this.visible.delete(m.id);
    }
    this.flush();
  }

  flush() {
    if (!pageAttentive() || !this.box.isConnected) return;
    const ids = [...this.visible].filter((id) => this.unseen.has(id));
    if (!ids.length) return;
    for (const id of ids) {
      this.observer.unobserve(this.unseen.get(id));
      this.unseen.delete(id);
      this.visible.delete(id);
      this.reported.add(id);
    }
    this.seen(ids);
  }

  // -- 4. keyboard ----------------------------------------------------------------------------

  messages() {
    return [...this.box.querySelectorAll(".msg")];
  }

  onKey(e) {
    const list = this.messages();
    if (!list.length) return;
    const current = e.target.closest(".msg");
    const at = current ? list.indexOf(current) : -1;
    let to = null;
    if (e.key === "ArrowDown") to = list[Math.min(list.length - 1, at + 1)];
    else if (e.key === "ArrowUp") to = list[at < 0 ? list.length - 1 : Math.max(0, at - 1)];
    else if (e.key === "Home") to = list[0];
    else if (e.key === "End") to = list[list.length - 1];
    else if (e.key === "Escape") {
      // Ends a selection (a search hit, a quoted message shown): back to writing.
      for (const hit of this.box.querySelectorAll(".msg.hit")) hit.classList.remove("hit");
      const composer = document.querySelector(".composer textarea:not([disabled])");
      if (composer) {
        e.preventDefault();
        composer.focus();
      }
      return;
    }
    if (!to || (e.target.matches("select") && e.key.startsWith("Arrow"))) return;
    e.preventDefault();
    to.focus();
  }

  // Only the message in focus lends its buttons to the tab order.
  onFocus(e) {
    const msg = e.target.closest(".msg");
    for (const el of this.box.querySelectorAll("[data-roving]")) {
      if (!msg || !msg.contains(el)) {
        el.tabIndex = -1;
        el.removeAttribute("data-roving");
      }
    }
    if (!msg) return;
    for (const el of msg.querySelectorAll("button, select, a[href], audio, video, input")) {
      el.tabIndex = 0;
      el.dataset.roving = "";
    }
  }
}

// Coming back to the window or the tab: what is on screen now counts as seen.
window.addEventListener("focus", () => active && active.flush());
document.addEventListener("visibilitychange", () => active && active.flush());
