// proxmox-lxc-operator web UI: keeps the containers table live from /ui/events (server-sent
// events). The pages work without it; it only replaces table rows with the HTML the server
// renders (already escaped there), so nothing user-supplied is ever turned into markup here.
"use strict";
(function () {
  function live() {
    var table = document.getElementById("containers");
    if (!table || !window.EventSource) return;
    var body = table.tBodies[0];
    var status = document.getElementById("live");
    var source = new EventSource(table.getAttribute("data-events"));
    function say(text) { if (status) status.textContent = text; }
    source.addEventListener("synced", function () {
      say(body.rows.length + " containers · live");
      table.setAttribute("data-live", "synced");
    });
    source.addEventListener("row", function (ev) {
      var msg = JSON.parse(ev.data);
      var old = document.getElementById(msg.id);
      if (!msg.html) {
        if (old) old.remove();
        return;
      }
      var tpl = document.createElement("template");
      tpl.innerHTML = msg.html.trim();
      var row = tpl.content.firstElementChild;
      if (!row || row.tagName !== "TR" || row.id !== msg.id) return;
      if (old) old.replaceWith(row); else body.appendChild(row);
    });
    source.addEventListener("failed", function (ev) {
      say(ev.data);
      table.setAttribute("data-live", "failed");
      source.close();
    });
    source.onerror = function () { say("live updates interrupted; reconnecting…"); };
  }
  document.addEventListener("DOMContentLoaded", live);
})();
