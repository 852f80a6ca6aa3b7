// Live intake dashboard (Intake). The page is rendered by the server and
// complete without this script. With it, the page follows the
// Server-Sent Events stream named by data-stream on #lead-feed: each `lead`
// event carries one lead's freshly rendered row and the organization's
// counts. The row moves to the top (new leads glow green, changed ones
// blue), unless the page's filters exclude it; the counts and the stacked
// bar follow. `resync` (the stream fell behind) reloads the page.
const feed = document.querySelector("#lead-feed[data-stream]");
const digits = new Intl.NumberFormat("en-US");
const MAX_ROWS = 100;
const STATES = ["new", "engaged", "ghosting", "converted", "lost"];
const SVG = "http://www.w3.org/2000/svg";

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

// A row someone is working in (menu open, typing) is left alone.
function busy(row) {
  return row && (row.contains(document.activeElement) || row.querySelector("details[open]"));
}

function showLead(m) {
  const body = document.getElementById("lead-rows");
  if (!body) return;
  const old = document.getElementById(`lead-${m.id}`);
  if (m.was !== m.id) document.getElementById(`lead-${m.was}`)?.remove();
  const wanted =
    m.row &&
    (!feed.dataset.state || feed.dataset.state === m.state) &&
    (!feed.dataset.category || feed.dataset.category === m.category);
  if (!wanted) {
    if (!busy(old)) old?.remove();
    return;
  }
  if (busy(old)) return;
  const t = document.createElement("template");
  t.innerHTML = m.row.trim();
  const row = t.content.firstElementChild;
  if (!row) return;
  for (const input of row.querySelectorAll('input[name="back"]')) input.value = feed.dataset.back;
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
