// proxmox-lxc-operator web UI: a container's console. xterm.js (vendored, MIT) draws the
// terminal; a websocket to the UI carries its bytes, which the operator joins to Proxmox's
// termproxy. Messages to the server are JSON: {"csrf"} first, then {"in"} and {"cols","rows"}.
"use strict";
(function () {
  var el = document.getElementById("terminal");
  var status = document.getElementById("console-status");
  function say(text, state) {
    if (status) status.textContent = text;
    if (el) el.setAttribute("data-state", state);
  }
  if (!el) return;
  if (!window.Terminal || !window.WebSocket) {
    say("This browser cannot show the console (no websocket or script support).", "unsupported");
    return;
  }

  // xterm.js writes its theme and sizes into <style> elements, which the page's
  // Content-Security-Policy (style-src 'self', nothing inline) refuses. It only sets their
  // textContent and removes them, so it gets inert elements whose text goes into constructed
  // stylesheets instead (CSSOM, which the policy allows).
  if (document.adoptedStyleSheets !== undefined && window.CSSStyleSheet) {
    var create = document.createElement.bind(document);
    document.createElement = function (name, options) {
      if (String(name).toLowerCase() !== "style") return create(name, options);
      var node = create("template");
      var sheet = new CSSStyleSheet();
      var text = "";
      document.adoptedStyleSheets = document.adoptedStyleSheets.concat([sheet]);
      Object.defineProperty(node, "textContent", {
        get: function () { return text; },
        set: function (t) { text = String(t); sheet.replaceSync(text); }
      });
      var remove = node.remove.bind(node);
      node.remove = function () {
        document.adoptedStyleSheets = document.adoptedStyleSheets.filter(function (s) { return s !== sheet; });
        remove();
      };
      return node;
    };
  }

  var term = new window.Terminal({ cursorBlink: true, convertEol: false, scrollback: 2000, screenReaderMode: true });
  term.open(el);
  var proto = location.protocol === "https:" ? "wss://" : "ws://";
  var ws = new WebSocket(proto + location.host + el.getAttribute("data-ws"));
  ws.binaryType = "arraybuffer";
  function send(obj) { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj)); }
  function fit() {
    // the cell size xterm measured; the terminal fills the element's width
    var core = el.querySelector(".xterm-screen");
    var cols = term.cols, rows = term.rows;
    if (core && core.clientWidth > 0) {
      var cell = core.clientWidth / term.cols;
      cols = Math.max(20, Math.floor(el.clientWidth / cell));
    }
    if (cols !== term.cols) term.resize(cols, rows);
    send({ cols: term.cols, rows: term.rows });
  }
  ws.onopen = function () {
    send({ csrf: el.getAttribute("data-csrf") });
    say("Connected.", "open");
    fit();
    term.focus();
  };
  ws.onmessage = function (ev) {
    if (typeof ev.data === "string") {
      var m = {};
      try { m = JSON.parse(ev.data); } catch (e) { /* ignored */ }
      if (m.closed) say("Closed: " + m.closed, "closed");
      return;
    }
    term.write(new Uint8Array(ev.data));
  };
  ws.onclose = function () {
    if (el.getAttribute("data-state") !== "closed") say("Closed.", "closed");
  };
  term.onData(function (data) { send({ in: data }); });
  window.addEventListener("resize", fit);
})();
