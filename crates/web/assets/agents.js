// The Command Center, live. The page is rendered by the server and
// complete without this script. With it, the page follows the stream named
// by data-stream on #command-center: each `agent` event carries re-rendered
// cards and the strip, replaced where they stand (a card whose ⋯ menu is
// open keeps it open: its new version waits until the menu closes);
// `snippets` replaces the live transcripts; `resync` reloads. A live call's
// clock and bar count every second from the call's start, on the server's
// clock (data-now) so a browser whose clock is off still counts right.
const root = document.getElementById("command-center") || document.getElementById("agent-detail");
const offset = root ? Number(root.dataset.now) - Date.now() : 0;
const FULL_MS = 20 * 60 * 1000;
/** The latest card for one whose menu is open, applied when it closes. */
const later = new Map();

function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const two = (n) => String(n).padStart(2, "0");
  if (s >= 3600) return `${Math.floor(s / 3600)}:${two(Math.floor(s / 60) % 60)}:${two(s % 60)}`;
  return `${Math.floor(s / 60)}:${two(s % 60)}`;
}

function tick() {
  const now = Date.now() + offset;
  for (const el of document.querySelectorAll(".ac-clock[data-call-start]")) {
    el.textContent = clock(now - Number(el.dataset.callStart));
  }
  for (const el of document.querySelectorAll(".ac-bar-fill[data-call-start]")) {
    const w = Math.min(100, Math.max(1, ((now - Number(el.dataset.callStart)) * 100) / FULL_MS));
    el.style.width = `${w}%`;
  }
}

function setLive(on, text) {
  const el = document.getElementById("live-status");
  if (!el) return;
  el.classList.toggle("on", on);
  el.querySelector(".small").textContent = text;
}

function busy(card) {
  return Boolean(card && (card.querySelector("details[open]") || card.contains(document.activeElement)));
}

function place(id, html) {
  const t = document.createElement("template");
  t.innerHTML = html.trim();
  const card = t.content.firstElementChild;
  if (!card) return;
  const old = document.getElementById(`agent-${id}`);
  if (busy(old)) {
    later.set(id, html);
    return;
  }
  const list = document.getElementById("agent-cards");
  if (old) old.replaceWith(card);
  else if (list && !root.dataset.one) {
    list.appendChild(card);
    document.getElementById("agents-empty")?.remove();
  } else return;
  card.classList.add("flash");
}

if (root) {
  window.setInterval(tick, 1000);
  tick();
  // A menu closed: its card may take the version it missed.
  root.addEventListener(
    "toggle",
    () => {
      for (const [id, html] of [...later]) {
        if (busy(document.getElementById(`agent-${id}`))) continue;
        later.delete(id);
        place(id, html);
      }
    },
    true,
  );
}

if (root && root.dataset.stream && "EventSource" in window) {
  const source = new EventSource(root.dataset.stream);
  source.addEventListener("ready", () => setLive(true, "live"));
  source.addEventListener("error", () => setLive(false, "reconnecting"));
  source.addEventListener("resync", () => {
    source.close();
    window.location.reload();
  });
  source.addEventListener("agent", (e) => {
    const m = JSON.parse(e.data);
    for (const c of m.cards) place(c.id, c.card);
    const strip = document.getElementById("agent-strip");
    if (strip && m.strip) strip.outerHTML = m.strip;
    const online = document.getElementById("agents-online");
    if (online) online.textContent = String(m.online);
    const total = document.getElementById("agents-total");
    if (total) total.textContent = String(m.total);
    tick();
  });
  source.addEventListener("snippets", (e) => {
    const m = JSON.parse(e.data);
    const box = document.getElementById("snippets");
    if (box) box.innerHTML = m.html;
  });
}
