// The flow builder in the page: whether there are unsaved changes (said beside "Save draft" and
// asked about before leaving), rows added without asking the server, and the cursor in a new row.
// Removing and moving rows, "+ Add button" and the card preview are htmx and the server; without
// JavaScript every button posts the whole form and the server does the same.
(() => {
  const form = () => document.getElementById("flow-form");
  const editable = () => Boolean(form()?.querySelector(".unsaved-note"));

  // What the builder held when the page opened: the saved draft, unless the server sent the page
  // back unsaved (a refused save, or a row edit without JavaScript), when there is no saved state.
  const fieldsOf = (element) => {
    const data = new FormData(element);
    data.delete("csrfmiddlewaretoken");
    return new URLSearchParams(data).toString();
  };
  const opened = form();
  let saved = opened && document.getElementById("builder").dataset.unsaved !== "true" ? fieldsOf(opened) : null;
  let leaving = false; // saving, or the member chose to leave: no more asking

  const hasUnsavedChanges = () => editable() && (saved === null || fieldsOf(form()) !== saved);

  function showState() {
    const note = form()?.querySelector(".unsaved-note");
    if (note) note.hidden = !hasUnsavedChanges();
  }

  document.addEventListener("input", (event) => { if (event.target.closest("#flow-form")) showState(); });
  document.addEventListener("change", (event) => { if (event.target.closest("#flow-form")) showState(); });

  // Saving (and, without htmx, any row button) posts the whole builder: nothing is lost.
  document.addEventListener("submit", (event) => { if (event.target === form()) leaving = true; });

  // Closing the tab, reloading, typing an address, switching environment: the browser asks.
  window.addEventListener("beforeunload", (event) => {
    if (leaving || !hasUnsavedChanges()) return;
    event.preventDefault();
    event.returnValue = "";
  });

  // A link in the Workbench ("← Flows", a tab, the side navigation): the Workbench's own dialog
  // asks (workbench.js opens it for a form[data-confirm]); on "Leave without saving" we go.
  function leaveForm() {
    let leave = document.getElementById("leave-builder");
    if (!leave) {
      leave = document.createElement("form");
      leave.id = "leave-builder";
      leave.method = "get";
      leave.hidden = true;
      leave.dataset.confirmTitle = "Leave without saving?";
      leave.dataset.confirm = "Your changes to this flow are not saved. If you leave now, they are lost.";
      leave.dataset.confirmLabel = "Leave without saving";
      leave.dataset.confirmDanger = "";
      document.body.append(leave);
    }
    return leave;
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[href]");
    if (!link || leaving || event.defaultPrevented || !hasUnsavedChanges()) return;
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    if ((link.target && link.target !== "_self") || link.hasAttribute("download") || link.closest("dialog")) return;
    const url = new URL(link.href, window.location.href);
    if (url.origin !== window.location.origin) return; // beforeunload asks
    if (url.pathname === window.location.pathname && url.search === window.location.search) return;
    if (!document.getElementById("confirm-dialog")) return; // no dialog on this page: beforeunload asks
    event.preventDefault();
    event.stopImmediatePropagation();
    const leave = leaveForm();
    leave.action = url.href;
    leave.dataset.href = url.href;
    leave.requestSubmit();
  }, true);

  // workbench.js lets the leave form submit once the member confirmed: go where the link pointed.
  document.addEventListener("submit", (event) => {
    if (event.target.id !== "leave-builder") return;
    event.preventDefault();
    leaving = true;
    window.location.assign(event.target.dataset.href);
  });

  // "+ Add variable", "+ Send a card", "+ Wait": copy the row's <template> (rendered by the
  // server from the same partial as every other row) into the list, with its index and number.
  const NEW_ROWS = {
    "add-variable": { template: "new-variable-row", list: "variable-rows", first: "name" },
    "add-card": { template: "new-card-step", list: "step-list", first: "title" },
    "add-wait": { template: "new-wait-step", list: "step-list", first: "amount" },
  };

  document.addEventListener("click", (event) => {
    const button = event.target.closest("#flow-form button[name=op]");
    const kind = button && NEW_ROWS[button.value];
    const template = kind && document.getElementById(kind.template);
    const list = kind && document.getElementById(kind.list);
    if (!template || !list) return;
    const rows = list.children.length;
    if (rows >= Number(list.dataset.max)) return; // the server explains the limit
    event.preventDefault();
    event.stopImmediatePropagation();
    // The next free index (the server numbers rows 0, 1, 2…; a gap would not matter).
    const indices = [...list.querySelectorAll("[name^=variables-], [name^=steps-]")]
      .map((field) => Number(field.name.split("-")[1]))
      .filter(Number.isInteger);
    const index = indices.length ? Math.max(...indices) + 1 : 0;
    list.insertAdjacentHTML("beforeend", template.innerHTML.replaceAll("__i__", index).replaceAll("__n__", rows + 1));
    const row = list.lastElementChild;
    window.htmx?.process(row);
    row.querySelector(`[name$="-${kind.first}"]`)?.focus();
    showState();
    window.htmx?.trigger(form(), "builder-changed");
  }, true);

  // After the server redrew the builder (a row moved or removed): the state, and the cursor in
  // the first field of a row just added (the server names it in data-focus).
  document.addEventListener("htmx:afterSettle", (event) => {
    const builder = document.getElementById("builder");
    if (!builder || !builder.contains(event.target)) return;
    showState();
    // Only once: the preview inside the builder is redrawn as the member types.
    const focus = builder.dataset.focus;
    delete builder.dataset.focus;
    if (focus) builder.querySelector(`[name="${CSS.escape(focus)}"]`)?.focus();
  });
})();
