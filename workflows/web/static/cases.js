// The case list: states refresh from the API without a reload; ages tick every second.
"use strict";

(function () {
  const table = document.getElementById("cases");
  const live = document.getElementById("live");
  if (!table) return;
  const LONG = 24 * 3600;

  function label(state) { return state.replace("_", " "); }

  function age(row, now) {
    const state = row.dataset.state;
    if (state === "removed" && row.dataset.removed) {
      return "removed in " + takedown.span(takedown.seconds(row.dataset.opened, row.dataset.removed));
    }
    if (state === "closed") return "closed";
    return takedown.span((now - Date.parse(row.dataset.opened)) / 1000);
  }

  function tick() {
    const now = Date.now();
    for (const row of table.tBodies[0].rows) {
      if (!row.dataset.id) continue;
      const cell = row.querySelector("td.age");
      cell.textContent = age(row, now);
      const open = (now - Date.parse(row.dataset.opened)) / 1000;
      cell.classList.toggle("long", row.dataset.state === "active" && open > LONG);
    }
  }

  function bump(state, by) {
    const count = document.querySelector('[data-count="' + state + '"]');
    if (count) count.textContent = String(Math.max(0, Number(count.textContent) + by));
  }

  function update(found) {
    const cases = Array.isArray(found) ? found : (found.cases || found.items || []);
    for (const c of cases) {
      const row = table.querySelector('tr[data-id="' + c.id + '"]');
      if (!row) continue;
      const notices = row.querySelector("td.notices");
      if (notices && Array.isArray(c.notices)) notices.textContent = String(c.notices.length);
      row.querySelector("td.route").textContent = c.route || "–";
      row.querySelector("td.cc").textContent = c.country || "–";
      row.querySelector(".provider").textContent = c.provider ? "· " + c.provider : "";
      if (row.dataset.state === c.state) continue;
      bump(row.dataset.state, -1);
      bump(c.state, +1);
      row.dataset.state = c.state;
      row.dataset.removed = c.removed_at || "";
      row.dataset.closed = c.closed_at || "";
      const badge = row.querySelector(".state");
      badge.className = "state " + c.state;
      badge.textContent = label(c.state);
      row.classList.remove("changed");
      void row.offsetWidth; // restart the highlight
      row.classList.add("changed");
    }
    tick();
  }

  function status(ok) {
    live.classList.toggle("stale", !ok);
    live.textContent = ok ? "live · updated " + takedown.clock() : "live · cannot reach the server, retrying";
  }

  tick();
  window.setInterval(tick, 1000);
  if (table.dataset.poll) takedown.poll(table.dataset.poll, 2500, update, status);
})();
