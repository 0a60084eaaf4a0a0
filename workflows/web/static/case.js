// The case page: copy the URL as text; tell when the case changes while the page is open.
"use strict";

(function () {
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", async function () {
      const text = document.getElementById(button.dataset.copy).textContent;
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch (error) {
        button.textContent = "Copy failed";
      }
      window.setTimeout(function () { button.textContent = "Copy"; }, 1500);
    });
  }
  const badge = document.getElementById("case-state");
  const id = window.location.pathname.split("/").pop();
  if (!badge || !/^\d+$/.test(id)) return;
  takedown.poll("/api/cases/" + id, 4000, function (c) {
    const state = (c.case || c).state;
    if (!state || badge.classList.contains(state)) return;
    badge.className = "state " + state;
    const words = JSON.parse(badge.dataset.words || "{}"); // web/words.py, as the server says them
    badge.textContent = Object.prototype.hasOwnProperty.call(words, state) ? words[state] : state;
    const note = document.getElementById("case-changed");
    if (note) note.hidden = false;
  }, function () {});
})();
