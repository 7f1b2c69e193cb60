// Live numbers on workspace pages: a WebSocket pushes fresh meters and connection changes
// (workspaces/consumers.py); without one, usage.json is polled every 30 s instead.
(function () {
  "use strict";

  var root = document.getElementById("live");
  if (!root) return;
  var POLL_MS = 30000;
  var pollTimer = null;
  var retryMs = 2000;
  var list = document.getElementById("connections-list");
  var statuses = document.querySelectorAll("[data-live-status]");

  function lookup(data, path) {
    return path.split(".").reduce(function (value, key) { return value == null ? value : value[key]; }, data);
  }

  function show(value) {
    return typeof value === "number" ? value.toLocaleString("en-US") : String(value);
  }

  function setStatus(on) {
    statuses.forEach(function (node) {
      node.classList.toggle("on", on);
      node.textContent = on ? "Live" : "Updates every 30 s";
    });
  }

  function apply(data) {
    document.querySelectorAll("[data-live]").forEach(function (node) {
      var value = lookup(data, node.getAttribute("data-live"));
      if (value !== undefined && value !== null) node.textContent = show(value);
    });
    document.querySelectorAll("progress[data-live-progress]").forEach(function (bar) {
      var meter = data[bar.getAttribute("data-live-progress")];
      if (!meter) return;
      bar.max = meter.limit;
      bar.value = meter.used;
      bar.textContent = meter.percent + "%";
      bar.classList.remove("ok", "high", "full");
      bar.classList.add(meter.level);
    });
  }

  // The connections table is re-read from the page itself, so revoke buttons and CSRF tokens
  // come from the server exactly as on a reload.
  function refreshConnections() {
    if (!list) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("connections-list");
        if (fresh) {
          list.innerHTML = fresh.innerHTML;
          list.setAttribute("data-connections", fresh.getAttribute("data-connections"));
        }
      });
  }

  function receive(kind, data) {
    apply(data);
    var shown = list ? Number(list.getAttribute("data-connections")) : data.connections;
    if (kind === "connections" || shown !== data.connections) refreshConnections();
  }

  function poll() {
    fetch(root.getAttribute("data-json"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) { if (data) receive("usage", data); })
      .catch(function () { /* offline for now: the next poll tries again */ });
  }

  function startPolling() {
    setStatus(false);
    if (!pollTimer) pollTimer = setInterval(poll, POLL_MS);
  }

  function stopPolling() {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = null;
  }

  function connect() {
    if (!("WebSocket" in window)) return startPolling();
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket;
    try {
      socket = new WebSocket(scheme + window.location.host + root.getAttribute("data-ws"));
    } catch (e) {
      return startPolling();
    }
    socket.addEventListener("open", function () {
      retryMs = 2000;
      stopPolling();
      setStatus(true);
      poll(); // catch up on anything that changed while the page loaded
    });
    socket.addEventListener("message", function (event) {
      var message = JSON.parse(event.data);
      receive(message.kind, message.data);
    });
    socket.addEventListener("close", function () {
      startPolling();
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 60000);
    });
  }

  connect();
})();
