// proxmox-lxc-operator web UI: keeps the containers table and a container's page live from
// server-sent events (/ui/events, /ui/containers/NS/NAME/events). The pages work without it;
// it only puts in place HTML the server renders (already escaped there), so nothing
// user-supplied is ever turned into markup here.
"use strict";
(function () {
  function fragment(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html.trim();
    return tpl.content;
  }

  function table() {
    var table = document.getElementById("containers");
    if (!table || !window.EventSource) return;
    var body = table.tBodies[0];
    var status = document.getElementById("live");
    var synced = false;
    var source = new EventSource(table.getAttribute("data-events"));
    function say(text) { if (status) status.textContent = text; }
    function count() {
      var n = body.rows.length;
      say(n + (n === 1 ? " container" : " containers") + (synced ? " · live" : ""));
    }
    source.addEventListener("synced", function () {
      synced = true;
      count();
      table.setAttribute("data-live", "synced");
    });
    source.addEventListener("row", function (ev) {
      var msg = JSON.parse(ev.data);
      var old = document.getElementById(msg.id);
      if (!msg.html) {
        if (old) old.remove();
        count();
        return;
      }
      var row = fragment(msg.html).firstElementChild;
      if (!row || row.tagName !== "TR" || row.id !== msg.id) return;
      if (old) {
        old.replaceWith(row);
      } else {
        // keep the rows sorted by their id (namespace, then name)
        var next = null;
        for (var i = 0; i < body.rows.length; i++) {
          if (body.rows[i].id > row.id) { next = body.rows[i]; break; }
        }
        body.insertBefore(row, next);
      }
      count();
    });
    source.addEventListener("failed", function (ev) {
      say(ev.data);
      table.setAttribute("data-live", "failed");
      source.close();
    });
    source.onerror = function () { say("live updates interrupted; reconnecting…"); };
  }

  function detail() {
    var box = document.getElementById("detail");
    if (!box || !window.EventSource) return;
    var status = document.getElementById("live");
    var source = new EventSource(box.getAttribute("data-events"));
    function say(text) { if (status) status.textContent = text; }
    source.addEventListener("synced", function () {
      box.setAttribute("data-live", "synced");
      say("This page updates live.");
    });
    source.addEventListener("detail", function (ev) {
      var msg = JSON.parse(ev.data);
      // keep the focus on a button that is replaced by its new copy
      var focused = document.activeElement && box.contains(document.activeElement)
        ? document.activeElement.textContent : null;
      box.replaceChildren(fragment(msg.html));
      if (focused) {
        var again = [].slice.call(box.querySelectorAll("button, a")).find(function (e) {
          return e.textContent === focused;
        });
        if (again) again.focus();
      }
      box.setAttribute("data-updates", String(Number(box.getAttribute("data-updates") || 0) + 1));
    });
    source.addEventListener("gone", function () {
      say("This container has been deleted.");
      box.setAttribute("data-live", "gone");
      source.close();
    });
    source.addEventListener("failed", function (ev) {
      say(ev.data);
      box.setAttribute("data-live", "failed");
      source.close();
    });
    source.onerror = function () { say("live updates interrupted; reconnecting…"); };
  }

  document.addEventListener("DOMContentLoaded", function () { table(); detail(); });
})();
