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
      sortable(box);
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

  // Sortable tables: each column header becomes a button; a click sorts by that column
  // (numbers by value, the rest as text), again for the other direction; aria-sort says which.
  function sortable(root) {
    [].forEach.call(root.querySelectorAll("table:not(.sr-only)"), function (t) {
      if (!t.tHead || !t.tBodies[0] || t.getAttribute("data-sortable")) return;
      t.setAttribute("data-sortable", "yes");
      [].forEach.call(t.tHead.rows[0].cells, function (th, col) {
        if (!th.textContent.trim() || th.textContent.trim() === "Actions" || th.textContent.trim() === "Action") return;
        var b = document.createElement("button");
        b.type = "button";
        b.className = "sort";
        while (th.firstChild) b.appendChild(th.firstChild);
        th.appendChild(b);
        b.addEventListener("click", function () {
          var up = th.getAttribute("aria-sort") !== "ascending";
          [].forEach.call(t.tHead.rows[0].cells, function (c) { c.removeAttribute("aria-sort"); });
          th.setAttribute("aria-sort", up ? "ascending" : "descending");
          var body = t.tBodies[0];
          var rows = [].slice.call(body.rows);
          function key(r) {
            var text = r.cells[col] ? r.cells[col].textContent.trim() : "";
            var n = parseFloat(text);
            return isNaN(n) || !/^-?[0-9.]/.test(text) ? text.toLowerCase() : n;
          }
          rows.sort(function (a, b) {
            var x = key(a), y = key(b);
            var c = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
            return up ? c : -c;
          });
          rows.forEach(function (r) { body.appendChild(r); });
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { table(); detail(); sortable(document); });
})();
