// Live progress of one import (Customers → Import → an import's page).
// The page is rendered by the server and is complete without this script
// (it then refreshes itself while the import runs). With it, the page
// follows the import's Server-Sent Events stream, named by the
// data-import-events attribute: each `progress` event moves the bar and the
// counts; the last one (`final: true`) reloads the page, so the server
// renders the summary with the rejected rows and the customers.
const panel = document.querySelector("[data-import-events]");

const digits = new Intl.NumberFormat("en-US");

function show(p) {
  const bar = panel.querySelector("progress");
  if (bar) {
    bar.max = Math.max(p.total, 1);
    bar.value = p.processed;
    bar.textContent = `${p.percent}%`;
  }
  for (const el of panel.querySelectorAll("[data-field]")) {
    const v = p[el.dataset.field];
    if (typeof v === "number" && el.dataset.field !== "percent") {
      // The same thousands separators as the server's.
      el.textContent = digits.format(v);
    } else if (v !== undefined) {
      el.textContent = String(v);
    }
  }
  // Nouns follow their count: "absorbed 1 customer", "absorbed 2 customers".
  for (const el of panel.querySelectorAll("[data-noun-of]")) {
    const v = p[el.dataset.nounOf];
    if (typeof v === "number") {
      el.textContent = v === 1 ? el.dataset.one : el.dataset.many;
    }
  }
  const dot = panel.querySelector("#import-status .dot");
  if (dot && p.dot) dot.className = `dot ${p.dot}`;
  panel.dataset.status = p.status;
}

if (panel && "EventSource" in window) {
  const source = new EventSource(panel.dataset.importEvents);
  source.addEventListener("progress", (e) => {
    const p = JSON.parse(e.data);
    show(p);
    if (p.final) {
      // Close first: a closed stream would otherwise be reopened.
      source.close();
      window.location.reload();
    }
  });
}
