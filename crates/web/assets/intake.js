// Live intake dashboard (Intake). The page is rendered by the server and
// complete without this script. With it, the page follows the
// Server-Sent Events stream named by data-stream on #lead-feed: each `lead`
// event carries one lead's freshly rendered row and the organization's
// counts. The row moves to the top (new leads glow green, changed ones
// blue), unless the page's filters exclude it; the counts and the stacked
// bar follow. `resync` (the stream fell behind) reloads the page.
//
// Nothing moves under a person at work (decision 0034). While they are
// "in" the table — a row's ⋯ menu is open, focus is inside the feed, the
// pointer is over the feed, or the page is scrolled down — rows that would
// be inserted, moved to the top or removed wait in a buffer, and a bar in
// the toolbar says "3 new — show"; clicking it applies them. A row already
// on screen is still updated where it stands (every row has the same
// height, so that moves nothing). A row being worked in (its menu open,
// focus in it, a Won / Lost waiting for its undo window) is left alone and
// gets its latest version once the work is over. When the person is idle
// at the top, the next arrival applies everything live, as before.
//
// Won and Lost are undoable for UNDO_MS: the click marks the row and shows
// a toast "Marked won · Undo"; the request is only sent when the window
// ends (or, flushed with keepalive, when the page is left), so until then
// nothing has happened on the server: no enrollment stopped, no timeline
// entry. Without this script the plain form posts at once.
const feed = document.querySelector("#lead-feed[data-stream]");
const digits = new Intl.NumberFormat("en-US");
const MAX_ROWS = 100;
const UNDO_MS = 6000;
const STATES = ["new", "engaged", "ghosting", "converted", "lost"];
const SVG = "http://www.w3.org/2000/svg";

/** Arrivals waiting for "show", by lead id, in arrival order. */
const waiting = new Map();
/** The latest message for a row being worked in, applied when it is free. */
const later = new Map();
/** Won / Lost inside their undo window, by lead id. */
const pending = new Map();

function setLive(on, text) {
  const el = document.getElementById("live-status");
  if (!el) return;
  el.classList.toggle("on", on);
  el.querySelector(".small").textContent = text;
}

function showCounts(totals) {
  if (!totals) return;
  let total = 0;
  for (const s of STATES) total += totals.states[s] || 0;
  for (const el of document.querySelectorAll("[data-count-state]")) {
    el.querySelector(".mono").textContent = digits.format(totals.states[el.dataset.countState] || 0);
  }
  for (const el of document.querySelectorAll("[data-count-category]")) {
    el.querySelector(".mono").textContent = digits.format(totals.categories[el.dataset.countCategory] || 0);
  }
  const t = document.querySelector(".dist-total .mono");
  if (t) t.textContent = digits.format(total);
  const word = document.querySelector(".dist-total .dist-word");
  if (word) word.textContent = total === 1 ? "lead" : "leads";
  const bar = document.querySelector(".dist-bar");
  if (!bar) return;
  for (const r of bar.querySelectorAll("rect.seg")) r.remove();
  let x = 0;
  for (const s of STATES) {
    const n = totals.states[s] || 0;
    const w = total > 0 ? Math.floor((n * 1000) / total) : 0;
    if (w <= 0) continue;
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("class", `seg seg-${s}`);
    rect.setAttribute("x", String(x));
    rect.setAttribute("y", "0");
    rect.setAttribute("width", String(w));
    rect.setAttribute("height", "10");
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${s}: ${digits.format(n)}`;
    rect.appendChild(title);
    bar.appendChild(rect);
    x += w;
  }
}

function rowOf(id) {
  return document.getElementById(`lead-${id}`);
}

// A row someone is working in (menu open, typing, Won / Lost waiting) is left alone.
function busy(row) {
  return Boolean(
    row && (row.contains(document.activeElement) || row.querySelector("details[open]") || row.dataset.pending),
  );
}

// Someone is at work in the table: inserting or moving rows would shift it
// under them. (The "show" bar is inside the feed, so reaching for it holds too.)
function holding() {
  return Boolean(
    feed.querySelector("details[open]") ||
      (document.activeElement !== document.body && feed.contains(document.activeElement)) ||
      feed.matches(":hover") ||
      window.scrollY > 0,
  );
}

function wanted(m) {
  return (
    m.row &&
    (!feed.dataset.state || feed.dataset.state === m.state) &&
    (!feed.dataset.category || feed.dataset.category === m.category)
  );
}

function render(m) {
  const t = document.createElement("template");
  t.innerHTML = m.row.trim();
  const row = t.content.firstElementChild;
  if (!row) return null;
  for (const input of row.querySelectorAll('input[name="back"]')) input.value = feed.dataset.back;
  return row;
}

// Applies one message: the row moves to the top (or leaves, or is updated
// in place on an older page).
function apply(m) {
  const body = document.getElementById("lead-rows");
  if (!body) return;
  const old = rowOf(m.id);
  if (m.was !== m.id) rowOf(m.was)?.remove();
  if (!wanted(m)) {
    old?.remove();
    return;
  }
  const row = render(m);
  if (!row) return;
  if ("paged" in feed.dataset) {
    // An older page: update rows in place, never pull newer ones in.
    if (old) old.replaceWith(row);
    else return;
  } else {
    old?.remove();
    body.prepend(row);
    while (body.rows.length > MAX_ROWS) body.lastElementChild.remove();
  }
  row.classList.add(m.created && !old ? "fresh" : "flash");
  document.getElementById("leads-empty")?.setAttribute("hidden", "");
}

// While holding: a row on screen that stays in this view is updated where
// it stands; its move to the top, and every insertion or removal, waits.
function hold(m) {
  const old = rowOf(m.id);
  if (old && m.was === m.id && wanted(m)) {
    const row = render(m);
    if (row) {
      old.replaceWith(row);
      row.classList.add("flash");
    }
  }
  waiting.delete(m.id);
  waiting.set(m.id, { m, fresh: !old && wanted(m) });
  showBar();
}

function showBar() {
  const bar = document.getElementById("lead-news");
  if (!bar) return;
  let fresh = 0;
  for (const w of waiting.values()) if (w.fresh) fresh += 1;
  const changed = waiting.size - fresh;
  const parts = [];
  if (fresh > 0) parts.push(`${digits.format(fresh)} new`);
  if (changed > 0) parts.push(`${digits.format(changed)} changed`);
  bar.textContent = `${parts.join(" · ")} — show`;
  bar.hidden = waiting.size === 0;
}

// Applies everything waiting, oldest first (a busy row keeps waiting).
function flush() {
  const all = [...waiting.values()];
  waiting.clear();
  for (const { m } of all) {
    if (busy(rowOf(m.id))) later.set(m.id, m);
    else apply(m);
  }
  showBar();
}

function showLead(m) {
  if (busy(rowOf(m.id))) {
    later.set(m.id, m);
    return;
  }
  if ("paged" in feed.dataset) {
    apply(m);
  } else if (holding()) {
    hold(m);
  } else {
    flush();
    apply(m);
  }
}

// Rows whose work is over get the version they missed.
function settle() {
  for (const [id, m] of [...later]) {
    if (busy(rowOf(id))) continue;
    later.delete(id);
    showLead(m);
  }
}

// --- Won / Lost with an undo window -------------------------------------

function toasts() {
  let box = document.getElementById("toasts");
  if (!box) {
    box = document.createElement("div");
    box.id = "toasts";
    box.className = "toasts";
    document.body.appendChild(box);
  }
  return box;
}

function toast(kind, text, name, undo) {
  const el = document.createElement("div");
  el.className = `toast toast-${kind}`;
  el.setAttribute("role", "status");
  const label = document.createElement("span");
  label.className = "toast-text";
  label.textContent = name ? `${text} · ${name}` : text;
  label.title = label.textContent;
  el.appendChild(label);
  if (undo) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "btn btn-ghost btn-xs toast-undo";
    b.textContent = "Undo";
    b.addEventListener("click", undo);
    el.appendChild(b);
    const timer = document.createElement("span");
    timer.className = "toast-timer";
    el.appendChild(timer);
  } else {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "btn btn-ghost btn-xs";
    b.textContent = "Dismiss";
    b.addEventListener("click", () => el.remove());
    el.appendChild(b);
  }
  toasts().appendChild(el);
  return el;
}

function defer(row, form, action) {
  const id = row.dataset.lead;
  if (pending.has(id)) return;
  const won = action === "mark_converted";
  const name = row.querySelector(".person-name")?.textContent.trim() ?? "";
  row.dataset.pending = won ? "won" : "lost";
  const p = {
    id,
    // Not `form.action`: the form's <input name="action"> shadows it.
    url: form.getAttribute("action"),
    body: new URLSearchParams(new FormData(form)),
    verb: won ? "won" : "lost",
    name,
  };
  p.toast = toast(p.verb, `Marked ${p.verb}`, name, () => undo(id));
  p.timer = window.setTimeout(() => commit(id, false), UNDO_MS);
  pending.set(id, p);
}

function undo(id) {
  const p = pending.get(id);
  if (!p) return;
  pending.delete(id);
  window.clearTimeout(p.timer);
  p.toast.remove();
  const row = rowOf(id);
  if (row) delete row.dataset.pending;
  settle();
}

// The window is over (or the page is being left): send it for real.
function commit(id, leaving) {
  const p = pending.get(id);
  if (!p) return;
  pending.delete(id);
  window.clearTimeout(p.timer);
  p.toast.remove();
  // keepalive lets the request outlive the page; `manual` keeps the
  // redirect back to the feed from being fetched for nothing.
  const sent = fetch(p.url, {
    method: "POST",
    body: p.body,
    credentials: "same-origin",
    redirect: "manual",
    keepalive: true,
  });
  if (leaving) return;
  sent
    .then((res) => {
      if (res.type !== "opaqueredirect" && !res.ok) {
        toast("err", `Could not mark ${p.verb} (${res.status}); nothing changed`, p.name, null);
      }
    })
    .catch(() => toast("err", `Could not mark ${p.verb}: the server did not answer`, p.name, null))
    .finally(() => {
      const row = rowOf(id);
      if (row) delete row.dataset.pending;
      settle();
    });
}

if (feed) {
  feed.addEventListener("submit", (e) => {
    const form = e.target;
    const action = form.querySelector('input[name="action"]')?.value;
    const row = form.closest("tr.lead");
    if (!row || (action !== "mark_converted" && action !== "mark_lost")) return;
    e.preventDefault();
    defer(row, form, action);
  });
  document.getElementById("lead-news")?.addEventListener("click", () => flush());
  // A menu closed or focus left a row: it may take its missed version now.
  feed.addEventListener("toggle", () => settle(), true);
  feed.addEventListener("focusout", () => window.setTimeout(settle, 0));
  // Leaving the page ends every undo window: what was marked is sent.
  window.addEventListener("pagehide", () => {
    for (const id of [...pending.keys()]) commit(id, true);
  });
}

if (feed && "EventSource" in window) {
  const source = new EventSource(feed.dataset.stream);
  source.addEventListener("ready", () => setLive(true, "live"));
  source.addEventListener("error", () => setLive(false, "reconnecting"));
  source.addEventListener("resync", () => {
    source.close();
    window.location.reload();
  });
  source.addEventListener("lead", (e) => {
    const m = JSON.parse(e.data);
    showCounts(m.totals);
    showLead(m);
  });
}
