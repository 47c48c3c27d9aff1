// Fanout dashboard: the few behaviours htmx does not cover. No framework, no eval.
(function () {
  "use strict";

  // Copy buttons: <button data-copy="element-id">. The secret stays in the page only.
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("[data-copy]");
    if (!btn) return;
    var src = document.getElementById(btn.getAttribute("data-copy"));
    if (!src) return;
    var text = (src.value !== undefined ? src.value : src.textContent).trim();
    var done = function () {
      var label = btn.getAttribute("data-copied-label") || "Copied";
      var old = btn.textContent;
      btn.textContent = label;
      btn.classList.add("is-copied");
      setTimeout(function () { btn.textContent = old; btn.classList.remove("is-copied"); }, 1600);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(src, done); });
    } else {
      fallbackCopy(src, done);
    }
  });

  function fallbackCopy(src, done) {
    var range = document.createRange();
    range.selectNodeContents(src);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    try { document.execCommand("copy"); done(); } catch (e) { /* text stays selected */ }
  }

  // Polling regions (data-poll) skip their request while the tab is hidden; the next tick
  // after it becomes visible again catches up.
  document.addEventListener("htmx:beforeRequest", function (ev) {
    var elt = ev.detail && ev.detail.elt;
    if (elt && elt.hasAttribute("data-poll") && document.visibilityState !== "visible") {
      ev.preventDefault();
    }
  });

  // Toasts: the server sends HX-Trigger: {"toast": {"kind": "...", "message": "..."}}.
  document.body.addEventListener("toast", function (ev) {
    showToast(ev.detail || {});
  });
  document.body.addEventListener("htmx:sendError", function () {
    showToast({ kind: "error", message: "Could not reach the server. Check your connection." });
  });

  function showToast(d) {
    var box = document.getElementById("toasts");
    if (!box || !d.message) return;
    var t = document.createElement("div");
    t.className = "toast toast-" + (d.kind === "error" ? "error" : "success");
    t.setAttribute("role", "status");
    t.textContent = d.message;
    box.appendChild(t);
    setTimeout(function () { t.classList.add("toast-out"); }, 4000);
    setTimeout(function () { t.remove(); }, 4600);
  }

  // "Select all" checkboxes: <input type=checkbox data-select-all="name">.
  document.addEventListener("change", function (ev) {
    var all = ev.target.closest("[data-select-all]");
    if (!all) return;
    var name = all.getAttribute("data-select-all");
    document.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (cb) {
      cb.checked = all.checked;
    });
  });

  // Flash messages fade after a while.
  setTimeout(function () {
    document.querySelectorAll(".flash[data-autohide]").forEach(function (f) { f.classList.add("flash-out"); });
  }, 6000);
})();
