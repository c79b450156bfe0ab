// The flow builder: say that there are unsaved changes as soon as a field changes.
// Everything else (adding, removing and moving rows, the card preview) is htmx and the server.
document.addEventListener("input", (event) => {
  const form = event.target.closest("#flow-form");
  if (!form) return;
  const note = form.querySelector(".unsaved-note");
  if (note) note.hidden = false;
});
