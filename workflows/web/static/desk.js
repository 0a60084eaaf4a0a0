// Shared by the desk's pages: durations as the server writes them, and a polite poller.
"use strict";

window.takedown = (function () {
  // The same units as workflows/stats_cli.span(): 42s, 12.5m, 3.2h, 4.1d.
  function span(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "–";
    seconds = Math.max(0, seconds);
    if (seconds < 90) return Math.round(seconds) + "s";
    if (seconds < 90 * 60) return (seconds / 60).toFixed(1) + "m";
    if (seconds < 48 * 3600) return (seconds / 3600).toFixed(1) + "h";
    return (seconds / 86400).toFixed(1) + "d";
  }

  function seconds(from, to) {
    return (Date.parse(to) - Date.parse(from)) / 1000;
  }

  // Poll URL (or the URL a function returns) every EVERY ms while the page is visible;
  // hand each JSON answer to ONDATA. A session that ended sends the page to sign in.
  function poll(url, every, ondata, onstatus) {
    let timer = null;
    async function once() {
      timer = null;
      try {
        const where = typeof url === "function" ? url() : url;
        const answer = await fetch(where, { credentials: "same-origin", headers: { Accept: "application/json" } });
        const signedOut = answer.redirected && new URL(answer.url).pathname === "/login";
        if (answer.status === 401 || signedOut) { window.location.assign("/login"); return; }
        if (!answer.ok) throw new Error("HTTP " + answer.status);
        ondata(await answer.json());
        onstatus(true);
      } catch (error) {
        onstatus(false, error);
      }
      schedule();
    }
    function schedule() {
      if (timer === null && !document.hidden) timer = window.setTimeout(once, every);
    }
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) schedule();
    });
    schedule();
  }

  function clock() {
    return new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  }

  return { span: span, seconds: seconds, poll: poll, clock: clock };
})();
