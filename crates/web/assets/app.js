// BOS UI behaviour: small, plain, and optional — every page works without it.
// Behaviour hangs off data-* attributes:
//   data-autosubmit  on a <form>: submit when one of its <select>s changes
//   data-confirm     on a <form>: ask before submitting (destructive actions)
//   data-copy="#id"  on a <button>: copy the text of the element to the clipboard
//   data-rule-rows   on the intent rules <form>: add and remove rule rows in
//                    place (without a script they post and the page comes back)
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
      // No clipboard API (a page served over plain http, or permission
      // refused): select the text so Ctrl+C copies it, and try the old way.
      const range = document.createRange();
      range.selectNodeContents(el);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      let copied = false;
      try { copied = document.execCommand("copy"); } catch { copied = false; }
      button.textContent = copied ? "Copied" : "Selected: press Ctrl+C";
    }
  });
}

// The intent rules form. Rows are named r{i}_…; the server reads whatever
// indices are posted, so a new row takes one past the highest and a removed
// row just leaves a gap.
for (const form of document.querySelectorAll("form[data-rule-rows]")) {
  const body = form.querySelector("tbody");
  const tpl = form.querySelector("#rule-template");
  const fit = (row) => {
    const kind = row.querySelector("select[name$='_kind']");
    if (!kind) return;
    const value = row.querySelector(".cond-value");
    const equals = row.querySelector(".cond-equals");
    const sync = () => {
      const k = kind.value;
      equals.hidden = k !== "form_field";
      value.hidden = k === "ad_click";
      if (k === "event_type") value.setAttribute("list", "event-types");
      else value.removeAttribute("list");
      const opt = kind.selectedOptions[0];
      if (opt && opt.dataset.hint) value.placeholder = opt.dataset.hint;
    };
    kind.addEventListener("change", sync);
    sync();
  };
  body.querySelectorAll("tr.rule-row").forEach(fit);
  form.addEventListener("click", (e) => {
    const button = e.target.closest("button[name='op']");
    if (!button) return;
    if (button.value.startsWith("remove-")) {
      e.preventDefault();
      button.closest("tr").remove();
    } else if (button.value === "add" && tpl) {
      e.preventDefault();
      let next = 0;
      for (const el of form.querySelectorAll("[name$='_kind']")) {
        const m = /^r(\d+)_kind$/.exec(el.name);
        if (m) next = Math.max(next, Number(m[1]) + 1);
      }
      const html = tpl.innerHTML.replaceAll("__i__", String(next));
      body.insertAdjacentHTML("beforeend", html);
      const row = body.lastElementChild;
      fit(row);
      row.querySelector("input[type='text']").focus();
    }
  });
}
