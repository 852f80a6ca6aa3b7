// Unified Inbox (the Inbox tab). The page is rendered by the server and
// complete without this script: links open conversations, forms assign,
// resolve and reply. With it, the page follows the Server-Sent Events
// stream named by data-stream on #inbox: each `conversation` event carries
// one conversation's freshly rendered list row (empty when the page's
// filters leave it out) and, for the conversation open here, its messages.
// The row moves to the top and the open thread grows without a reload.
// `resync` (the stream fell behind) reloads the page. Keyboard: j/k move
// through the list, Enter or o opens, r replies, e resolves, / searches.
const inbox = document.getElementById("inbox");
const MAX_ROWS = 200;
// Set once this page submits a form or unloads: live re-reads must not
// race the navigation it started.
let leaving = false;
document.addEventListener("submit", () => { leaving = true; }, true);
window.addEventListener("beforeunload", () => { leaving = true; });

function setLive(on, text) {
  const el = document.getElementById("live-status");
  if (!el) return;
  el.classList.toggle("on", on);
  el.querySelector(".small").textContent = text;
}

function fromHtml(html) {
  const t = document.createElement("template");
  t.innerHTML = html.trim();
  return t.content;
}

function scrollThread() {
  const box = document.getElementById("thread-messages");
  if (box) box.scrollTop = box.scrollHeight;
}

function showRow(m) {
  const list = document.getElementById("threads");
  if (!list) return; // search results are not live
  const old = document.getElementById(`thread-${m.id}`);
  const wasCursor = old?.classList.contains("cursor");
  if (!m.row) {
    old?.remove();
  } else {
    const row = fromHtml(m.row).firstElementChild;
    if (!row) return;
    if (wasCursor) row.classList.add("cursor");
    // A later page keeps its place: rows change in place, none are pulled in.
    if (new URLSearchParams(window.location.search).has("cursor")) {
      if (old) old.replaceWith(row);
    } else {
      old?.remove();
      list.prepend(row);
      while (list.children.length > MAX_ROWS) list.lastElementChild.remove();
    }
    row.classList.add("flash");
  }
  document.getElementById("threads-empty")?.toggleAttribute("hidden", list.children.length > 0);
}

function showThread(m) {
  if (typeof m.thread !== "string" || inbox.dataset.open !== m.id) return;
  const box = document.getElementById("thread-messages");
  if (!box) return;
  const seen = new Set([...box.querySelectorAll("[data-message]")].map((e) => e.dataset.message));
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  box.replaceChildren(fromHtml(m.thread));
  for (const el of box.querySelectorAll("[data-message]")) {
    if (!seen.has(el.dataset.message)) el.classList.add("fresh");
  }
  if (nearBottom) scrollThread();
  const status = document.getElementById("conv-status");
  if (status && m.resolved !== (status.textContent.trim() === "Resolved")) {
    // Resolved or reopened elsewhere: the buttons must follow, so re-read
    // (without the last action's notice), unless this page is already
    // on its way somewhere (its own form did it) or a reply is being typed.
    if (leaving || document.querySelector("#composer textarea")?.value) return;
    const url = new URL(window.location.href);
    url.searchParams.delete("done");
    window.location.replace(url);
  }
}

if (inbox && "EventSource" in window) {
  const source = new EventSource(inbox.dataset.stream);
  source.addEventListener("ready", () => setLive(true, "live"));
  source.addEventListener("error", () => setLive(false, "reconnecting"));
  source.addEventListener("resync", () => {
    source.close();
    window.location.reload();
  });
  source.addEventListener("conversation", (e) => {
    const m = JSON.parse(e.data);
    showRow(m);
    showThread(m);
  });
}

// Keyboard.
function rows() {
  return [...document.querySelectorAll(".threads .thread-row")];
}

function moveCursor(step) {
  const all = rows();
  if (all.length === 0) return;
  let at = all.findIndex((r) => r.classList.contains("cursor"));
  if (at < 0) at = all.findIndex((r) => r.classList.contains("selected"));
  const next = at < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, at + step));
  for (const r of all) r.classList.remove("cursor");
  all[next].classList.add("cursor");
  all[next].scrollIntoView({ block: "nearest" });
}

function typing(el) {
  return el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
}

if (inbox) {
  scrollThread();
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (typing(document.activeElement)) {
      if (e.key === "Escape") document.activeElement.blur();
      return;
    }
    switch (e.key) {
      case "j":
        moveCursor(1);
        break;
      case "k":
        moveCursor(-1);
        break;
      case "Enter":
      case "o": {
        const link = document.querySelector(".threads .thread-row.cursor .thread-link");
        if (!link) return;
        link.click();
        break;
      }
      case "r": {
        const box = document.querySelector("#composer textarea");
        if (!box) return;
        box.focus();
        break;
      }
      case "e": {
        const form = document.getElementById("resolve-form");
        if (!form) return;
        form.requestSubmit();
        break;
      }
      case "/": {
        const q = document.getElementById("inbox-q");
        if (!q) return;
        q.focus();
        q.select();
        break;
      }
      default:
        return;
    }
    e.preventDefault();
  });
}
