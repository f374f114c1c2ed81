// keydesk progressive enhancement. Every flow works without this file;
// it adds keyboard-operable menus, modal focus handling, copy buttons and
// the "I have stored the secret key" gate.
(function () {
  "use strict";

  var FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';
  var lastTrigger = null;

  // ---- Menus: <details data-menu> holding role="menu" ----
  function menuItems(menu) {
    return Array.prototype.slice.call(menu.querySelectorAll('[role="menuitem"]:not([aria-disabled="true"])'));
  }
  function closeMenu(menu, focusSummary) {
    if (!menu.open) return;
    menu.open = false;
    if (focusSummary) menu.querySelector("summary").focus();
  }
  function closeAllMenus(except) {
    document.querySelectorAll("details[data-menu][open]").forEach(function (m) {
      if (m !== except) closeMenu(m, false);
    });
  }
  document.addEventListener("toggle", function (e) {
    var menu = e.target;
    if (!(menu instanceof HTMLDetailsElement) || !menu.hasAttribute("data-menu")) return;
    var summary = menu.querySelector("summary");
    summary.setAttribute("aria-expanded", menu.open ? "true" : "false");
    if (menu.open) {
      closeAllMenus(menu);
      var first = menuItems(menu)[0];
      if (first) first.focus();
    }
  }, true);
  document.addEventListener("keydown", function (e) {
    var menu = e.target.closest && e.target.closest("details[data-menu]");
    if (!menu) return;
    var items = menuItems(menu);
    var i = items.indexOf(document.activeElement);
    switch (e.key) {
      case "ArrowDown":
        e.preventDefault();
        if (!menu.open) { menu.open = true; return; }
        items[(i + 1) % items.length].focus();
        break;
      case "ArrowUp":
        e.preventDefault();
        if (!menu.open) { menu.open = true; return; }
        items[(i - 1 + items.length) % items.length].focus();
        break;
      case "Home":
        if (menu.open) { e.preventDefault(); items[0].focus(); }
        break;
      case "End":
        if (menu.open) { e.preventDefault(); items[items.length - 1].focus(); }
        break;
      case "Escape":
        if (menu.open) { e.preventDefault(); e.stopPropagation(); closeMenu(menu, true); }
        break;
      case "Tab":
        closeMenu(menu, false);
        break;
      case " ":
        // Space on a link-type menu item activates it, as on a button.
        if (e.target.getAttribute("role") === "menuitem" && e.target.tagName === "A") { e.preventDefault(); e.target.click(); }
        break;
    }
  });
  document.addEventListener("click", function (e) {
    var menu = e.target.closest("details[data-menu]");
    var item = e.target.closest('[role="menuitem"]');
    if (item && menu) {
      lastTrigger = menu.querySelector("summary");
      if (item.hasAttribute("hx-get")) closeMenu(menu, false);
    }
    closeAllMenus(menu);
  });

  // ---- Copy buttons ----
  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }
  document.addEventListener("click", function (e) {
    var btn = e.target.closest("[data-copy]");
    if (!btn) return;
    var src = document.querySelector(btn.getAttribute("data-copy"));
    if (!src) return;
    var text = src.textContent.trim();
    var label = btn.querySelector("[data-copy-label]") || btn;
    // The texts come from the page (the catalog, in the reader's language).
    function says(name, d) { return label.getAttribute("data-text-" + name) || d; }
    function done(msg, state) {
      label.textContent = msg;
      btn.setAttribute("data-copied", state);
      setTimeout(function () { label.textContent = says("copy", "Copy"); }, 2500);
    }
    // Always select, so Ctrl+C works where the clipboard API is refused.
    selectText(src);
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(says("copied", "Copied"), "clipboard"); },
        function () { done(says("selected", "Selected: press Ctrl+C"), "selected"); });
    } else {
      done(says("selected", "Selected: press Ctrl+C"), "selected");
    }
  });

  // ---- Dialogs in #dialog-slot ----
  function slot() { return document.getElementById("dialog-slot"); }
  function currentDialog() { var s = slot(); return s && s.querySelector("[data-dialog]"); }

  function openDialog() {
    var d = currentDialog();
    if (!d) return;
    document.documentElement.classList.add("overflow-hidden");
    // The first invalid field first: a refused form is answered with its
    // errors, and the person starts where the first one is.
    var target = d.querySelector("[aria-invalid=true]") || d.querySelector("[autofocus]") ||
      d.querySelector("input:not([type=hidden]):not([type=radio])") ||
      d.querySelector("input[type=radio]:checked") || d.querySelector(FOCUSABLE);
    if (target) target.focus();
    var box = d.querySelector("[data-stored]");
    var doneBtn = d.querySelector("[data-done]");
    if (box && doneBtn) {
      doneBtn.disabled = !box.checked;
      box.addEventListener("change", function () {
        doneBtn.disabled = !box.checked;
        if (box.checked) d.querySelector("[data-reveal-hint]").classList.add("hidden");
      });
    }
  }
  function closeDialog() {
    var s = slot();
    s.innerHTML = "";
    document.documentElement.classList.remove("overflow-hidden");
    if (/^\/keys\/\d+\//.test(location.pathname)) history.replaceState(null, "", "/keys");
    if (lastTrigger && document.body.contains(lastTrigger)) lastTrigger.focus();
  }
  function refuseDismiss(d) {
    var hint = d.querySelector("[data-reveal-hint]");
    if (hint) hint.classList.remove("hidden");
    var box = d.querySelector("[data-stored]");
    if (box) box.focus();
  }
  function dismiss() {
    var d = currentDialog();
    if (!d) return;
    if (d.getAttribute("data-dialog") === "reveal") refuseDismiss(d); else closeDialog();
  }

  document.addEventListener("keydown", function (e) {
    var d = currentDialog();
    if (!d) return;
    if (e.key === "Escape") {
      e.preventDefault();
      dismiss();
      return;
    }
    if (e.key !== "Tab") return;
    // Keep focus inside the open dialog.
    var f = Array.prototype.slice.call(d.querySelectorAll(FOCUSABLE)).filter(function (el) { return el.offsetParent !== null; });
    if (!f.length) return;
    var first = f[0], last = f[f.length - 1];
    if (!d.contains(document.activeElement)) { e.preventDefault(); first.focus(); }
    else if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
    else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
  });
  document.addEventListener("click", function (e) {
    var d = currentDialog();
    if (!d) return;
    if (e.target.closest("[data-close]")) { e.preventDefault(); closeDialog(); return; }
    if (e.target === d) dismiss(); // a click on the backdrop
  });
  document.addEventListener("submit", function (e) {
    var form = e.target.closest("[data-reveal-form]");
    if (!form) return;
    var box = form.querySelector("[data-stored]");
    if (box && !box.checked) { e.preventDefault(); refuseDismiss(currentDialog()); return; }
    // Done replaces the reveal in the history: Back never returns to the
    // POST that showed the secret ("Confirm Form Resubmission").
    e.preventDefault();
    var q = new URLSearchParams(new FormData(form)).toString();
    location.replace(form.getAttribute("action") + (q ? "?" + q : ""));
  });
  // GET filter forms leave empty fields out of the URL (the server
  // redirects such URLs too; this saves the round trip).
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form || (form.getAttribute("method") || "get").toLowerCase() !== "get" || form.hasAttribute("data-reveal-form")) return;
    var emptied = [];
    Array.prototype.forEach.call(form.elements, function (el) {
      if (el.name && !el.disabled && (el.type !== "checkbox" && el.type !== "radio") && el.value === "") {
        el.disabled = true;
        emptied.push(el);
      }
    });
    // Re-enable after the navigation started (Back restores the form).
    setTimeout(function () { emptied.forEach(function (el) { el.disabled = false; }); }, 0);
  });

  // After settle, not after swap: htmx wires hx-* attributes of new content
  // during settle, and a dialog must not be usable before its form is.
  document.addEventListener("htmx:afterSettle", function (e) {
    if (e.detail.target && e.detail.target.id === "dialog-slot") { openDialog(); return; }
    focusFirstInvalid(e.detail.elt && e.detail.elt.isConnected ? e.detail.elt : document);
  });

  // A page answered with form errors (no dialog open) puts focus on the
  // first invalid field, scrolled into view.
  function focusFirstInvalid(root) {
    if (currentDialog()) return;
    var bad = (root || document).querySelector("[aria-invalid=true]") || document.querySelector("main [aria-invalid=true]");
    if (bad) { bad.focus(); if (bad.scrollIntoView) bad.scrollIntoView({ block: "center" }); }
  }
  document.addEventListener("htmx:responseError", function (e) {
    var status = e.detail.xhr ? e.detail.xhr.status : 0;
    var msg = status === 401 ? "Your session has ended. Reload the page to log in again." :
      status === 429 ? "Too many attempts. Wait a little, then try again." :
      status === 404 ? "That item no longer exists. Reload the page." :
      status === 403 ? "That action was refused. Reload the page and try again." :
      "Something went wrong. Reload the page and try again.";
    // The page carries these texts in the reader's language (the catalog).
    var known = { 401: 1, 429: 1, 404: 1, 403: 1 };
    msg = document.body.getAttribute("data-text-error-" + (known[status] ? status : "other")) || msg;
    var box = document.createElement("div");
    box.setAttribute("role", "alert");
    box.className = "alert-error fixed bottom-4 left-1/2 z-50 -translate-x-1/2 shadow-lg";
    box.textContent = msg;
    document.body.appendChild(box);
    setTimeout(function () { box.remove(); }, 6000);
  });
  document.addEventListener("htmx:sendError", function () {
    var e = new CustomEvent("htmx:responseError", { detail: {} });
    document.dispatchEvent(e);
  });

  function onLoad() { openDialog(); focusFirstInvalid(document); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", onLoad);
  else onLoad();
})();
