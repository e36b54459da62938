// Xiansuo console: progressive enhancement only; every page works without this script.
(function () {
  "use strict";

  // Copy buttons: data-copy holds the text (set by the server, escaped as an attribute).
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button || !navigator.clipboard) return;
    navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
      var label = button.textContent;
      button.textContent = "已复制";
      setTimeout(function () { button.textContent = label; }, 1200);
    });
  });

  // Buttons that change much (a merge) ask first; the form works without the script too.
  document.addEventListener("submit", function (event) {
    var button = event.submitter || event.target.querySelector("[data-confirm]");
    var question = button && button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // The live inbox: new leads reload the rows (the server applies filters and visibility) and
  // count up on a badge.
  var inbox = document.querySelector("[data-live-inbox]");
  if (!inbox || !window.EventSource) return;
  var rows = document.getElementById("lead-rows");
  var badge = document.getElementById("new-badge");
  var total = document.getElementById("total");
  var fresh = 0;
  var reloading = false;
  var again = false;

  // One reload at a time; an event during a reload asks for one more after it.
  function reloadRows() {
    if (reloading) { again = true; return; }
    reloading = true;
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "rows");
    fetch(url.toString(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        // Signed out meanwhile: the page itself goes to the sign-in form.
        if (response.redirected) { window.location.reload(); return null; }
        if (!response.ok) return null;
        var count = response.headers.get("X-Total-Count");
        if (count !== null && total) total.textContent = count;
        return response.text();
      })
      .then(function (html) { if (html !== null) rows.innerHTML = html; })
      .finally(function () {
        reloading = false;
        if (again) { again = false; reloadRows(); }
      });
  }

  var events = new EventSource("/events");
  var connected = false;
  events.addEventListener("open", function () {
    // After a reconnection, the leads stored while disconnected are fetched at once.
    if (connected) reloadRows();
    connected = true;
    inbox.setAttribute("data-live", "open");
  });
  events.addEventListener("error", function () { inbox.setAttribute("data-live", "closed"); });
  events.addEventListener("lead", function () {
    fresh += 1;
    badge.textContent = fresh + " 条新线索";
    badge.hidden = false;
    reloadRows();
  });
  badge.addEventListener("click", function () { window.location.reload(); });
  // Leads stored by another instance (several behind one database) arrive by polling.
  setInterval(reloadRows, 60000);
})();
