// The few behaviours every page needs: switching environment, confirming, copying.
document.addEventListener("change", (event) => {
  if (event.target.matches("[data-autosubmit]")) event.target.form.submit();
});

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const text = document.querySelector(button.dataset.copy).textContent;
  navigator.clipboard?.writeText(text).then(() => { button.textContent = "Copied"; });
});

// One confirmation pattern everywhere, in the Workbench's own <dialog> (base.html), never the
// browser's native confirmation box:
// - <form data-confirm="message" [data-confirm-title] [data-confirm-label="Revoke"] [data-confirm-danger]>
//   asks before it submits; the confirm button then submits it as the user's click would have.
// - <a href="…" data-confirm-page> loads the confirmation page's fragment (the view answers a
//   partial to `HX-Request: true`) into the dialog, where its own form submits normally.
//   Without JavaScript the link simply opens that page.
(() => {
  const dialog = () => document.getElementById("confirm-dialog");
  let pendingForm = null;
  let pendingSubmitter = null;
  let opener = null;

  function open(mode) {
    const box = dialog();
    box.dataset.mode = mode;
    box.querySelector("[data-dialog-confirm-part]").hidden = mode !== "confirm";
    box.querySelector("[data-dialog-page]").hidden = mode !== "page";
    opener = document.activeElement;
    if (!box.open) box.showModal();
  }

  function close() {
    const box = dialog();
    if (box?.open) box.close();
  }

  function askBeforeSubmitting(form, submitter) {
    const box = dialog();
    if (!box) return true; // a page without the shell: submit unasked rather than never
    pendingForm = form;
    pendingSubmitter = submitter;
    box.querySelector("[data-dialog-title]").textContent = form.dataset.confirmTitle || "Please confirm";
    box.querySelector("[data-dialog-message]").textContent = form.dataset.confirm;
    box.setAttribute("aria-labelledby", "confirm-dialog-title");
    const accept = box.querySelector("[data-dialog-accept]");
    accept.textContent = form.dataset.confirmLabel || submitter?.textContent.trim() || "Confirm";
    accept.classList.toggle("danger-solid", form.hasAttribute("data-confirm-danger"));
    accept.classList.toggle("primary", !form.hasAttribute("data-confirm-danger"));
    open("confirm");
    // The safe choice has the focus: Enter or Space right away changes nothing.
    box.querySelector("[data-dialog-cancel]").focus();
    return false;
  }

  // Capture phase: this runs before htmx's own submit listener, so an hx-post form waits too.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.matches("form[data-confirm]")) return;
    if (form.dataset.confirmed === "yes") {
      delete form.dataset.confirmed;
      return;
    }
    if (!askBeforeSubmitting(form, event.submitter)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  async function showPage(link) {
    const box = dialog();
    if (!box) return false;
    let html;
    try {
      const response = await fetch(link.href, {
        headers: { "HX-Request": "true", "HX-Current-URL": window.location.href },
        credentials: "same-origin",
      });
      if (response.redirected || !(response.headers.get("Content-Type") || "").startsWith("text/html")) {
        return false;
      }
      html = await response.text();
    } catch {
      return false;
    }
    // A whole page (a view that has no partial yet) does not belong in a dialog: open it instead.
    if (/^\s*(<!doctype|<html)/i.test(html)) return false;
    const page = box.querySelector("[data-dialog-page-body]");
    page.innerHTML = html;
    window.htmx?.process(page);
    const heading = page.querySelector("h1, h2");
    if (heading) {
      heading.id ||= "confirm-dialog-page-title";
      box.setAttribute("aria-labelledby", heading.id);
    }
    open("page");
    const first = page.querySelector("input:not([type=hidden]), select, textarea");
    (first || box).focus();
    return true;
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-confirm-page]");
    if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    showPage(link).then((shown) => { if (!shown) window.location.assign(link.href); });
  });

  document.addEventListener("click", (event) => {
    const box = dialog();
    if (!box?.open || !box.contains(event.target)) return;
    if (event.target.closest("[data-dialog-accept]")) {
      const form = pendingForm;
      const submitter = pendingSubmitter;
      pendingForm = pendingSubmitter = null;
      close();
      if (form) {
        form.dataset.confirmed = "yes";
        if (submitter && submitter.form === form) form.requestSubmit(submitter);
        else form.requestSubmit();
      }
      return;
    }
    // Cancel, the × button, a fragment's [data-dialog-cancel] link, or a link back to this very
    // page (a confirmation page's "Cancel"): close the dialog instead of navigating.
    const link = event.target.closest("a[href]");
    const backHere = link && new URL(link.href, window.location.href).pathname === window.location.pathname;
    if (event.target.closest("[data-dialog-cancel]") || backHere) {
      event.preventDefault();
      close();
    }
  });

  document.addEventListener("close", (event) => {
    if (event.target !== dialog()) return;
    pendingForm = pendingSubmitter = null;
    event.target.querySelector("[data-dialog-page-body]").replaceChildren();
    if (opener && document.contains(opener)) opener.focus();
    opener = null;
  }, true);
})();
