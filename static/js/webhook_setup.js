// The webhook trigger setup page: the sample's picker fills a mapping row, the pickers follow
// the mappable properties when a captured sample replaces them (htmx out-of-band swap), and the
// signature form and its JSON ("Advanced") stay the same settings whichever one is edited.
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
    const properties = Array.from(list.options, (option) => [option.value, option.label]);
    document.querySelectorAll("select[data-pick-into]").forEach((picker) => {
      if (picker.options.length - 1 === properties.length) return;
      const first = picker.options[0];
      first.textContent = properties.length ? "Pick from sample…" : "No sample yet";
      const options = properties.map(([path, value]) => new Option(value ? `${path}  ·  ${value}` : path, path));
      picker.replaceChildren(first, ...options);
      picker.disabled = properties.length === 0;
    });
  };
  document.addEventListener("htmx:afterSettle", refreshPickers);
  document.addEventListener("htmx:oobAfterSwap", refreshPickers);

  // --- The signature: form fields <-> JSON --------------------------------------------------
  // The server validates whichever one `signature_source` names; this keeps the other in step
  // and names the one the member edited last.
  const field = (name) => document.querySelector(`#security-form [name="${name}"]`);
  const value = (name) => field(name)?.value ?? "";
  const setSource = (source) => {
    const radio = document.querySelector(`#security-form input[name="signature_source"][value="${source}"]`);
    if (radio) radio.checked = true;
  };

  const location = (header, prefix) => {
    const found = { header: value(header).trim() };
    if (value(prefix)) found.parsePrefix = value(prefix);
    return found;
  };

  // The same configuration SecurityForm.signature_config builds on the server.
  const configFromForm = () => {
    if (["", "none"].includes(value("signature_preset"))) return null;
    const fields = document.getElementById("signature-fields");
    const secretSaved = fields?.dataset.secretSaved === "true";
    // The secret stays write-only: the JSON shows a typed one masked, as it shows a saved one.
    const config = {
      secret: (value("signature_secret") || secretSaved) ? fields.dataset.mask : "",
      algorithm: value("algorithm"),
      digest: value("digest"),
      data: { signature: location("signature_header", "signature_prefix") },
      template: value("template").trim(),
      secretEncoding: value("secret_encoding") || "utf8",
    };
    for (const name of ["timestamp", "id"]) {
      if (value(`${name}_header`).trim()) config.data[name] = location(`${name}_header`, `${name}_prefix`);
    }
    if (value("secret_prefix")) config.secretPrefix = value("secret_prefix");
    const tolerance = value("tolerance_seconds").trim();
    if (tolerance && config.data.timestamp) config.toleranceSeconds = /^\d+$/.test(tolerance) ? Number(tolerance) : tolerance;
    return config;
  };

  const fillForm = (config) => {
    const set = (name, text) => { if (field(name)) field(name).value = text ?? ""; };
    const data = config.data || {};
    for (const name of ["signature", "timestamp", "id"]) {
      set(`${name}_header`, data[name]?.header);
      set(`${name}_prefix`, data[name]?.parsePrefix);
    }
    set("template", config.template);
    set("algorithm", config.algorithm || "sha256");
    set("digest", config.digest || "hex");
    set("secret_encoding", config.secretEncoding || "utf8");
    set("secret_prefix", config.secretPrefix);
    set("tolerance_seconds", config.toleranceSeconds === undefined ? "" : String(config.toleranceSeconds));
    const preset = field("signature_preset");
    if (preset && ["", "none"].includes(preset.value)) preset.value = "custom";
    document.getElementById("signature-fields")?.removeAttribute("hidden");
  };

  document.addEventListener("input", (event) => {
    const form = event.target.closest("#security-form");
    if (!form || event.target.name === "allowed_ips") return;
    const json = field("signature");
    if (event.target === json) {
      setSource("json");
      try {
        const parsed = JSON.parse(json.value);
        if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) fillForm(parsed);
      } catch {
        // Not JSON yet: the member is typing; saving says where it breaks.
      }
      return;
    }
    if (event.target.closest("#signature-fields")) {
      setSource("form");
      const config = configFromForm();
      if (json) json.value = config ? JSON.stringify(config, null, 2) : "";
    }
  });
})();
