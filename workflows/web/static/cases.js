// The case list, live: cases that come to match the filter (reported by anyone, or newly
// in the filtered state) appear in their place, newest first; rows, counters and the
// still-online panel refresh from GET /cases/rows (web/live.py). Their markup is rendered
// and escaped by the server; this script never builds markup from case data. Ages tick
// every second. Keys: j/k move a highlight, Enter opens its case, / goes to the search.
"use strict";

(function () {
  const table = document.getElementById("cases");
  const live = document.getElementById("live");
  if (!table) return;
  const body = table.tBodies[0];
  const LONG = 24 * 3600;
  const EVERY = 2500; // ms between polls while the page is visible
  const MAX_SHOWN = 500; // the server refreshes at most this many shown rows per poll
  let cursor = null; // the row the keyboard highlight is on

  function rows() {
    return Array.prototype.filter.call(body.rows, function (row) { return row.dataset.id; });
  }

  function age(row, now) {
    const state = row.dataset.state;
    if (row.dataset.removed) {
      return "removed in " + takedown.span(takedown.seconds(row.dataset.opened, row.dataset.removed));
    }
    if (state === "closed") return "closed";
    return takedown.span((now - Date.parse(row.dataset.opened)) / 1000);
  }

  function tick() {
    const now = Date.now();
    for (const row of rows()) {
      const cell = row.querySelector("td.age");
      if (!cell) continue;
      cell.textContent = age(row, now);
      const open = (now - Date.parse(row.dataset.opened)) / 1000;
      cell.classList.toggle("long", row.dataset.state === "active" && open > LONG);
    }
  }

  // The server's <tr>, parsed inert (a <template> runs and loads nothing).
  function parsed(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function flash(row, name) {
    row.classList.remove(name);
    void row.offsetWidth; // restart the highlight
    row.classList.add(name);
  }

  // Bring a shown row up to date, keeping what the page owns in it: the selection box
  // (td.pick), the ticking age and the keyboard highlight.
  function merge(row, fresh) {
    const changed = row.dataset.state !== fresh.dataset.state;
    for (const name of Object.keys(fresh.dataset)) row.dataset[name] = fresh.dataset[name];
    const cells = Array.from(fresh.cells);
    cells.forEach(function (cell, index) {
      const old = row.cells[index];
      if (!old) { row.appendChild(cell); return; }
      if (old.classList.contains("pick") || old.classList.contains("age")) return;
      if (old.className !== cell.className || old.innerHTML !== cell.innerHTML) old.replaceWith(cell);
    });
    if (changed) flash(row, "changed");
  }

  // Put each new row before the first shown row with a lower case id (newest first).
  function add(found) {
    if (!found.length) return 0;
    const empty = body.querySelector("tr.empty");
    if (empty) empty.remove();
    let added = 0;
    for (const item of found) {
      const id = Number(item.id);
      if (body.querySelector('tr[data-id="' + id + '"]')) continue;
      const row = parsed(item.html);
      if (!row || row.tagName !== "TR") continue;
      const before = rows().find(function (shown) { return Number(shown.dataset.id) < id; });
      body.insertBefore(row, before || null);
      flash(row, "arrived");
      added += 1;
    }
    return added;
  }

  function replaceInner(id, html) {
    const box = document.getElementById(id);
    if (box && typeof html === "string" && box.innerHTML.trim() !== html.trim()) box.innerHTML = html;
  }

  function url() {
    const shown = rows().map(function (row) { return Number(row.dataset.id); });
    const address = new URL(table.dataset.live, window.location.href);
    address.searchParams.set("shown", shown.slice(0, MAX_SHOWN).join(","));
    return address.pathname + address.search;
  }

  let note = "";
  function update(answer) {
    for (const item of answer.updated || []) {
      const row = body.querySelector('tr[data-id="' + Number(item.id) + '"]');
      const fresh = parsed(item.html);
      if (row && fresh) merge(row, fresh);
    }
    const added = add(answer.rows || []);
    if (added) note = added + " more case" + (added === 1 ? "" : "s") + " at " + clock();
    if (answer.more) note = "a whole page of cases came in: reload to see them in order";
    replaceInner("counts", answer.counts);
    replaceInner("online", answer.online);
    const total = document.getElementById("total-count");
    if (total && typeof answer.total === "number") total.textContent = String(answer.total);
    const count = document.getElementById("shown-count");
    if (count) count.textContent = String(rows().length);
    tick();
    // For the other scripts of the page (the bulk bar's "all matching" count).
    table.dispatchEvent(new CustomEvent("cases:live", { detail: { total: answer.total, added: added } }));
  }

  function clock() {
    return new Date().toISOString().slice(11, 19) + " UTC";
  }

  function status(ok) {
    live.classList.toggle("stale", !ok);
    const said = ok ? "live · updated " + clock() : "live · cannot reach the server, retrying";
    live.textContent = note ? said + " · " + note : said;
  }

  // Keyboard: never while the analyst types in a field.
  function typing(target) {
    if (!(target instanceof Element)) return false;
    if (target.isContentEditable || target.tagName === "TEXTAREA" || target.tagName === "SELECT") return true;
    const buttons = ["checkbox", "radio", "button", "submit", "reset"];
    return target.tagName === "INPUT" && buttons.indexOf(target.type) < 0;
  }

  function highlight(row) {
    if (cursor) {
      cursor.classList.remove("cursor");
      cursor.removeAttribute("aria-current");
    }
    cursor = row;
    row.classList.add("cursor");
    row.setAttribute("aria-current", "true");
    const link = row.querySelector("td.id a");
    if (link) link.focus({ preventScroll: true }); // a screen reader reads the case number
    row.scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    if (typing(event.target)) {
      if (event.key === "Escape" && event.target.id === "q") event.target.blur();
      return;
    }
    if (event.key === "/") {
      const search = document.getElementById("q");
      if (!search) return;
      event.preventDefault();
      search.focus();
      search.select();
    } else if (event.key === "j" || event.key === "k") {
      const list = rows();
      if (!list.length) return;
      event.preventDefault();
      const at = cursor && cursor.isConnected ? list.indexOf(cursor) : -1;
      const next = event.key === "j" ? Math.min(list.length - 1, at + 1) : Math.max(0, at - 1);
      highlight(list[next]);
    } else if (event.key === "Enter" && cursor && cursor.isConnected) {
      if (event.target instanceof Element && event.target.closest("a, button")) return; // it opens itself
      event.preventDefault();
      window.location.assign("/cases/" + Number(cursor.dataset.id));
    }
  });

  tick();
  window.setInterval(tick, 1000);
  if (table.dataset.live) takedown.poll(url, EVERY, update, status);
})();
