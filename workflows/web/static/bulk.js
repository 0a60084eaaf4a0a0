// The case list's bulk bar (templates/_bulk_bar.html): count the ticked cases, tick a whole
// page, show only the chosen action's fields, and say in the confirmation what will happen.
// Rows that arrive live carry the same box (templates/_case_row.html), so every count is
// read from the page as it is now. Without this script the form works as it is.
"use strict";

(function () {
  const form = document.getElementById("bulk");
  if (!form) return;
  const all = document.getElementById("pick-all");
  const action = document.getElementById("bulk-action");
  const code = document.getElementById("bulk-code");
  const count = document.getElementById("picked-count");
  const confirmText = document.getElementById("bulk-confirm-text");
  const everything = document.getElementById("bulk-all");
  const picked = form.querySelector("input[name=scope][value=picked]");
  const verbs = {
    recheck: "re-check", confirm_removed: "confirm removed", confirm_present: "confirm present",
    hold: "hold", release: "release", close: "close",
  };

  function boxes() {
    return Array.from(document.querySelectorAll("input[type=checkbox][name=ids][form=bulk]"));
  }

  function selected() {
    if (everything && everything.checked) return Number(everything.dataset.total || 0);
    return boxes().filter(function (box) { return box.checked; }).length;
  }

  function update() {
    const list = boxes();
    const ticked = list.filter(function (box) { return box.checked; }).length;
    count.textContent = "(" + ticked + " ticked)";
    if (all) {
      all.checked = list.length > 0 && ticked === list.length;
      all.indeterminate = ticked > 0 && ticked < list.length;
    }
    for (const row of document.querySelectorAll("#cases tbody tr[data-id]")) {
      const box = row.querySelector("input[name=ids]");
      row.classList.toggle("picked", Boolean(box && box.checked));
    }
    const chosen = action.value;
    for (const field of form.querySelectorAll("[data-for]")) {
      field.hidden = !chosen || field.dataset.for.split(" ").indexOf(chosen) < 0;
    }
    if (code) code.required = chosen === "close";
    const note = document.getElementById("bulk-reason-note");
    if (note) note.hidden = chosen !== "close";
    const n = selected();
    const what = verbs[chosen] ? verbs[chosen] + " " : "apply to ";
    confirmText.textContent = "I confirm: " + what + n + " case" + (n === 1 ? "" : "s");
    form.classList.toggle("idle", n === 0);
  }

  // The list's live refresh (cases.js) says how many match now: "all N" follows it.
  const table = document.getElementById("cases");
  if (table && everything) {
    table.addEventListener("cases:live", function (event) {
      const total = event.detail && event.detail.total;
      if (typeof total !== "number") return;
      everything.dataset.total = String(total);
      document.getElementById("bulk-total").textContent = String(total);
      const tooMany = total > Number(everything.dataset.max);
      document.getElementById("bulk-too-many").hidden = !tooMany;
      everything.disabled = tooMany || total === 0;
      if (everything.disabled && everything.checked && picked) picked.checked = true;
      update();
    });
  }
  if (all) {
    all.hidden = false;
    all.addEventListener("change", function () {
      for (const box of boxes()) box.checked = all.checked;
      if (picked) picked.checked = true;
      update();
    });
  }
  document.addEventListener("change", function (event) {
    const target = event.target;
    if (target instanceof HTMLInputElement && target.name === "ids" && picked) picked.checked = true;
    update();
  });
  form.addEventListener("submit", function (event) {
    if (picked && picked.checked && !boxes().some(function (box) { return box.checked; })) {
      event.preventDefault();
      count.textContent = "(tick at least one case, or choose all matching)";
    }
  });
  // Live rows come and go: keep the count and the page box true to what is shown.
  const body = document.querySelector("#cases tbody");
  if (body) new MutationObserver(update).observe(body, { childList: true });
  update();
})();
