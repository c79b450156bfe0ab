// The customers dashboard's send form (templates/triggers/dashboard.html).
// - Rules or a saved segment: shows the chosen panel and asks for the count again.
// - The review ("Send…") answers into the Workbench's dialog: open it once htmx has put it there.
// - Leaving through the dialog's "Send" is no loss of unsaved rules (the builder would ask).
(() => {
  "use strict";
  const form = document.getElementById("send-form");
  if (!form) return;
  const changed = () => form.dispatchEvent(new CustomEvent("audience-changed", { bubbles: true }));

  function showSource() {
    const source = form.querySelector("[data-audience-source]:checked")?.value || "rules";
    form.querySelectorAll("[data-source-panel]").forEach((panel) => {
      panel.hidden = panel.dataset.sourcePanel !== source;
    });
  }

  form.addEventListener("change", (event) => {
    if (event.target.matches("[data-audience-source]")) {
      showSource();
      changed();
    } else if (event.target.matches("[data-audience-segment]")) {
      changed();
    }
  });

  // Ticking a customer means "only the ones I tick"; choosing "everyone" clears the ticks.
  document.addEventListener("change", (event) => {
    if (event.target.matches("[data-pick-user]") && event.target.checked) {
      const some = document.querySelector('[data-pick][value="some"]');
      if (some) some.checked = true;
    } else if (event.target.matches('[data-pick][value="all"]')) {
      document.querySelectorAll("[data-pick-user]").forEach((box) => { box.checked = false; });
    }
  });

  document.addEventListener("htmx:afterSwap", (event) => {
    const body = event.detail.target;
    if (!body.matches?.("[data-dialog-page-body]")) return;
    const box = body.closest("dialog");
    box.dataset.mode = "page";
    box.querySelector("[data-dialog-confirm-part]").hidden = true;
    box.querySelector("[data-dialog-page]").hidden = false;
    const heading = body.querySelector("h1, h2");
    if (heading) {
      heading.id ||= "send-review-title";
      box.setAttribute("aria-labelledby", heading.id);
    }
    if (!box.open) box.showModal();
    (body.querySelector("button.primary") || box).focus();
  });

  document.addEventListener("submit", (event) => {
    if (event.target.id === "send-confirm-form") {
      form.dispatchEvent(new Event("submit", { cancelable: true })); // the builder stops guarding
    }
  });

  showSource();
})();
