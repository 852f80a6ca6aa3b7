// BOS UI behaviour: small, plain, and optional — every page works without it.
// Behaviour hangs off data-* attributes:
//   data-autosubmit  on a <form>: submit when one of its <select>s changes
//   data-confirm     on a <form>: ask before submitting (destructive actions)
//   data-copy="#id"  on a <button>: copy the text of the element to the clipboard
document.documentElement.classList.add("js");

for (const form of document.querySelectorAll("form[data-autosubmit]")) {
  for (const select of form.querySelectorAll("select")) {
    select.addEventListener("change", () => form.requestSubmit());
  }
}

for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (e) => {
    if (!window.confirm(form.dataset.confirm)) e.preventDefault();
  });
}

for (const button of document.querySelectorAll("button[data-copy]")) {
  button.addEventListener("click", async () => {
    const el = document.querySelector(button.dataset.copy);
    if (!el) return;
    try {
      await navigator.clipboard.writeText(el.textContent.trim());
      button.textContent = "Copied";
    } catch {
      const range = document.createRange();
      range.selectNodeContents(el);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
    }
  });
}
