// Progressive enhancement: keep the live parts of the page current without
// a full reload. Every few seconds (only while the tab is visible) it polls
// status.json; when the pipeline changed, or on pages that show current
// values, it fetches the page again and swaps the elements marked
// data-live (by id), leaving alone the one that has the keyboard focus.
(function () {
  "use strict";
  var main = document.querySelector("main[data-refresh]");
  if (!main || !window.fetch || !window.DOMParser) return;
  var every = (parseInt(main.dataset.refresh, 10) || 5) * 1000;
  var stamp = main.dataset.stamp;
  var always = main.dataset.always === "true";
  var note = document.getElementById("refreshed");
  var busy = false;

  function swap(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    document.querySelectorAll("[data-live][id]").forEach(function (el) {
      if (el.contains(document.activeElement)) return;
      var fresh = doc.getElementById(el.id);
      if (fresh) el.replaceWith(document.importNode(fresh, true));
    });
  }

  function tick() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(main.dataset.status, { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (s) {
        if (s.stamp === stamp && !always) return null;
        return fetch(location.href, { cache: "no-store", credentials: "same-origin" })
          .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
          .then(function (html) {
            swap(html);
            stamp = s.stamp;
            main.dataset.stamp = s.stamp;
          });
      })
      .then(function () {
        if (note) note.textContent = "";
        main.dataset.updated = String(Date.now());
      })
      .catch(function () {
        if (note) note.textContent = "The agent did not answer; showing the last state.";
      })
      .then(function () { busy = false; });
  }
  setInterval(tick, every);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) tick(); });
})();
