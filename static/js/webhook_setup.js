// The webhook trigger setup page: the sample's picker fills a mapping row, and the pickers
// follow the mappable properties when a captured sample replaces them (htmx out-of-band swap).
(() => {
  const rowInput = (prefix) => document.getElementById(`${prefix}-value`);

  document.addEventListener("change", (event) => {
    const picker = event.target.closest("select[data-pick-into]");
    if (!picker || !picker.value) return;
    const prefix = picker.dataset.pickInto;
    const input = rowInput(prefix);
    const kind = document.querySelector(`select[name="${prefix}-kind"]`);
    if (kind) kind.value = "path";
    if (input) {
      input.value = picker.value;
      input.focus();
      // The mapping form previews on input: let it know.
      input.dispatchEvent(new Event("input", { bubbles: true }));
    }
    picker.value = "";
  });

  const refreshPickers = () => {
    const list = document.getElementById("mappable-properties");
    if (!list) return;
    const properties = Array.from(list.options, (option) => option.value);
    document.querySelectorAll("select[data-pick-into]").forEach((picker) => {
      if (picker.options.length - 1 === properties.length) return;
      const first = picker.options[0];
      first.textContent = properties.length ? "Pick from sample…" : "No sample yet";
      picker.replaceChildren(first, ...properties.map((property) => new Option(property, property)));
      picker.disabled = properties.length === 0;
    });
  };
  document.addEventListener("htmx:afterSettle", refreshPickers);
  document.addEventListener("htmx:oobAfterSwap", refreshPickers);
})();
