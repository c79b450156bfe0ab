// The flow builder: say that there are unsaved changes as soon as a field changes.
// Everything else (adding, removing and moving rows, the card preview) is htmx and the server.
document.addEventListener("input", (event) => {
  const form = event.target.closest("#flow-form");
  if (!form) return;
  const note = form.querySelector(".unsaved-note");
  if (note) note.hidden = false;
});

// After adding a row, put the cursor in its first field (the server names it in data-focus).
document.addEventListener("htmx:afterSettle", (event) => {
  const builder = document.getElementById("builder");
  if (!builder || !builder.dataset.focus || !builder.contains(event.target)) return;
  builder.querySelector(`[name="${CSS.escape(builder.dataset.focus)}"]`)?.focus();
});
