// Progressive enhancement: update delivery status boxes in place while they can still change.
// Without JavaScript the "Refresh the status" link does the same. No inline script: CSP script-src 'self'.
(function () {
  "use strict";
  function poll(box) {
    if (box.getAttribute("data-final") === "true") { return; }
    fetch(box.getAttribute("data-status-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) { return; }
        var label = box.querySelector(".label");
        var reason = box.querySelector(".reason");
        if (label.textContent !== s.label) { label.textContent = s.label; }
        reason.textContent = s.reason || "";
        reason.hidden = !s.reason;
        box.className = "status tone-" + (s.active ? s.tone : "stopped");
        var lock = document.querySelector(".lock-text");
        var sig = document.querySelector(".signature-text");
        if (lock && s.encrypted) { lock.textContent = "Encrypted: only the recipient can open it."; }
        if (sig && s.signed) { sig.textContent = "Signed: the recipient can check it came from us and was not changed."; }
        if (s.final) { box.setAttribute("data-final", "true"); return; }
        window.setTimeout(function () { poll(box); }, 1500);
      })
      .catch(function () { window.setTimeout(function () { poll(box); }, 5000); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var boxes = document.querySelectorAll(".status[data-status-url]");
    for (var i = 0; i < boxes.length; i++) { window.setTimeout(poll.bind(null, boxes[i]), 1000); }
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }
  });
})();
