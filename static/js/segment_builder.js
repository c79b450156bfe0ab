// The segment rule builder. The form's state is the rules JSON in a hidden field (the very shape
// the API takes, SPEC section 5); this script draws the conditions from it and writes every edit
// back into it. After each edit it fires "rules-changed" on the form, which htmx turns (debounced)
// into a request for the live count; the answer carries the validator's errors by path
// ("rules.conditions[2].op"), and this script shows each next to the condition it concerns.
(() => {
  "use strict";

  const root = document.getElementById("rule-builder");
  if (!root) return;
  const form = root.closest("form");
  const input = document.getElementById(root.dataset.input);
  const readJson = (id, fallback) => {
    const block = document.getElementById(id);
    return block ? JSON.parse(block.textContent) : fallback;
  };
  const config = readJson(root.dataset.config, { fields: [], segments: [] });
  let rules;
  try {
    rules = JSON.parse(input.value || "null");
  } catch {
    rules = null;
  }
  if (!rules || typeof rules !== "object" || !Array.isArray(rules.conditions)) rules = { match: "all", conditions: [] };
  let errors = readJson("rule-errors-initial", {});
  const MAX_DEPTH = 3;

  // --- The vocabulary ---------------------------------------------------------------------

  const OP_LABELS = {
    eq: "is", neq: "is not", contains: "contains", notContains: "does not contain",
    startsWith: "starts with", endsWith: "ends with", in: "is one of", notIn: "is none of",
    exists: "has a value", notExists: "has no value", gt: "is greater than", gte: "is at least",
    lt: "is less than", lte: "is at most", before: "is before", after: "is after",
    withinLastDays: "is in the last", notWithinLastDays: "is not in the last", withinNextDays: "is in the next",
    betweenDaysAgo: "is between",
  };
  const DATE_OPS = ["after", "before", "withinLastDays", "notWithinLastDays", "withinNextDays", "betweenDaysAgo"];
  const OPS_BY_TYPE = {
    text: ["eq", "neq", "contains", "notContains", "startsWith", "endsWith", "in", "notIn", "exists", "notExists"],
    number: ["eq", "neq", "gt", "gte", "lt", "lte", "in", "notIn", "exists", "notExists"],
    boolean: ["eq", "neq", "exists", "notExists"],
    datetime: [...DATE_OPS, "exists", "notExists"],
    date: [...DATE_OPS, "eq", "neq", "exists", "notExists"],
  };
  const TYPE_LABELS = { text: "text", number: "number", boolean: "yes / no", date: "date" };
  const TAG_OPS = {
    has: "has the tag", hasNot: "does not have the tag",
    hasAny: "has any of the tags", hasAll: "has all of the tags", hasNone: "has none of the tags",
  };
  const EVENT_OPS = {
    occurred: "happened", notOccurred: "did not happen",
    countGte: "happened at least", countLte: "happened at most", countEq: "happened exactly",
  };
  const SEGMENT_OPS = { in: "is in the segment", notIn: "is not in the segment" };
  const CUSTOM = "customFields.";
  const fieldInfo = Object.fromEntries(config.fields.map((field) => [field.key, field]));

  // What a value looks like for an operator: no value, a list, days, two day counts, a date, a scalar.
  function valueKind(op) {
    if (op === "exists" || op === "notExists") return "none";
    if (op === "in" || op === "notIn") return "list";
    if (op === "withinLastDays" || op === "notWithinLastDays" || op === "withinNextDays") return "days";
    if (op === "betweenDaysAgo") return "between";
    if (op === "before" || op === "after") return "date";
    return "scalar";
  }

  function kindOf(condition) {
    if (Array.isArray(condition.conditions)) return "group";
    if ("field" in condition) return "field";
    if ("property" in condition) return "property";
    if ("tag" in condition || "tags" in condition) return "tag";
    if ("event" in condition) return "event";
    if ("segment" in condition) return "segment";
    return "unknown";
  }

  // A custom field's or an event property's kind of value is not in the rules: it is guessed from
  // the condition (and kept, hidden, in `_type` while the page lives).
  function guessType(condition) {
    if (DATE_OPS.includes(condition.op)) return "date";
    const sample = Array.isArray(condition.value) ? condition.value[0] : condition.value;
    if (typeof sample === "number") return "number";
    if (typeof sample === "boolean") return "boolean";
    return "text";
  }

  function typeOf(condition) {
    if (condition.field !== undefined && !condition.field.startsWith(CUSTOM)) {
      return fieldInfo[condition.field]?.type || "text";
    }
    condition._type ||= guessType(condition);
    return condition._type;
  }

  function defaultValue(kind, type, previous) {
    if (kind === "list") {
      if (Array.isArray(previous)) return previous;
      return previous === undefined || previous === "" || previous === null ? [] : [previous];
    }
    if (kind === "days") return typeof previous === "number" ? previous : 30;
    if (kind === "between") return [90, 30];
    if (kind === "date") return typeof previous === "string" && /^\d{4}-\d\d-\d\d/.test(previous) ? previous : "";
    if (type === "boolean") return typeof previous === "boolean" ? previous : true;
    if (type === "number") return typeof previous === "number" ? previous : null;
    if (Array.isArray(previous)) return previous.length ? String(previous[0]) : "";
    return typeof previous === "string" ? previous : "";
  }

  function setOp(condition, op) {
    const before = valueKind(condition.op);
    condition.op = op;
    const kind = valueKind(op);
    if (kind === "none") delete condition.value;
    else if (kind !== before || condition.value === undefined) condition.value = defaultValue(kind, typeOf(condition), condition.value);
  }

  function fitOpToType(condition) {
    const ops = OPS_BY_TYPE[typeOf(condition)];
    if (!ops.includes(condition.op)) setOp(condition, ops[0]);
    else if (valueKind(condition.op) === "scalar") condition.value = defaultValue("scalar", typeOf(condition), condition.value);
  }

  const NEW = {
    field: () => ({ field: "country", op: "eq", value: "" }),
    tag: () => ({ tag: "", op: "has" }),
    event: () => ({ event: "", op: "occurred" }),
    segment: () => ({ segment: config.segments[0]?.id, op: "in" }),
    group: () => ({ match: "any", conditions: [{ field: "country", op: "eq", value: "" }] }),
    property: () => ({ property: "", op: "eq", value: "" }),
  };

  // --- Small DOM helpers --------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "text") node.textContent = value;
      else if (key in node && key !== "list") node[key] = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  function select(key, options, value, label) {
    const node = el("select", { dataset: { key }, "aria-label": label });
    for (const [optionValue, text] of options) {
      if (Array.isArray(text)) {
        const group = el("optgroup", { label: optionValue });
        for (const [inner, innerText] of text) group.append(el("option", { value: inner, text: innerText }));
        node.append(group);
      } else {
        node.append(el("option", { value: optionValue, text }));
      }
    }
    node.value = value ?? "";
    return node;
  }

  function textInput(key, value, label, attrs = {}) {
    return el("input", { type: "text", dataset: { key }, value: value ?? "", "aria-label": label, autocomplete: "off", ...attrs });
  }

  function numberInput(key, value, label, attrs = {}) {
    return el("input", {
      type: "number", dataset: { key }, value: value ?? "", "aria-label": label, class: "seg-number", min: "0", step: "1", ...attrs,
    });
  }

  // A list of values as chips: Enter or a comma adds the text typed, × removes a chip.
  function chips(key, values, label, numeric) {
    const box = el("div", { class: "seg-chips", dataset: { key, chips: numeric ? "number" : "text" } });
    (values || []).forEach((value, index) => {
      box.append(el("span", { class: "seg-chip" }, String(value),
        el("button", { type: "button", class: "seg-chip-remove", dataset: { removeChip: String(index) }, "aria-label": `Remove ${value}`, text: "×" })));
    });
    box.append(el("input", {
      type: "text", class: "seg-chip-input", dataset: { chipInput: "" }, "aria-label": label,
      placeholder: values && values.length ? "add another…" : "type a value, then Enter", autocomplete: "off",
    }));
    return box;
  }

  // --- Drawing -------------------------------------------------------------------------------

  function valueInputs(condition, type) {
    const kind = valueKind(condition.op);
    if (kind === "none") return [];
    if (kind === "list") return [chips("value", condition.value, "Values", type === "number")];
    if (kind === "days") return [numberInput("value", condition.value, "Number of days", { min: "1" }), el("span", { class: "seg-word", text: "days" })];
    if (kind === "between") {
      const [from, to] = Array.isArray(condition.value) ? condition.value : ["", ""];
      return [
        numberInput("value.0", from, "From this many days ago"), el("span", { class: "seg-word", text: "and" }),
        numberInput("value.1", to, "To this many days ago"), el("span", { class: "seg-word", text: "days ago" }),
      ];
    }
    if (kind === "date") {
      const value = condition.value ?? "";
      // A date and time written elsewhere (the API) stays as it was written.
      if (typeof value === "string" && value.includes("T")) return [textInput("value", value, "Date and time (ISO)")];
      return [el("input", { type: "date", dataset: { key: "value" }, value, "aria-label": "Date" })];
    }
    if (type === "boolean") return [select("value", [["true", "yes (true)"], ["false", "no (false)"]], String(condition.value ?? true), "Value")];
    if (type === "number") return [numberInput("value", condition.value, "Number", { step: "any", min: null })];
    if (type === "date") return [el("input", { type: "date", dataset: { key: "value" }, value: condition.value ?? "", "aria-label": "Date" })];
    return [textInput("value", condition.value, "Value", { placeholder: "value" })];
  }

  function opSelect(condition, type) {
    const ops = [...OPS_BY_TYPE[type]];
    if (condition.op && !ops.includes(condition.op)) ops.push(condition.op); // written by the API
    return select("op", ops.map((op) => [op, OP_LABELS[op] || op]), condition.op, "Operator");
  }

  function typeSelect(condition) {
    return select("_type", Object.entries(TYPE_LABELS), typeOf(condition), "Kind of value");
  }

  function fieldRow(condition) {
    const custom = condition.field.startsWith(CUSTOM);
    const profile = config.fields.filter((field) => field.type === "text").map((field) => [field.key, field.label]);
    const dates = config.fields.filter((field) => field.type === "datetime").map((field) => [field.key, field.label]);
    const choice = select("field", [["Profile", profile], ["Dates", dates], ["Custom", [[CUSTOM, "Custom field…"]]]], custom ? CUSTOM : condition.field, "Field");
    const type = typeOf(condition);
    return [
      choice,
      custom && textInput("customKey", condition.field.slice(CUSTOM.length), "Custom field name", { placeholder: "field name, e.g. plan", class: "seg-key" }),
      custom && typeSelect(condition),
      opSelect(condition, type),
      ...valueInputs(condition, type),
    ];
  }

  function propertyRow(condition) {
    const type = typeOf(condition);
    return [
      el("span", { class: "seg-word", text: "where" }),
      textInput("property", condition.property, "Event property", { placeholder: "property, e.g. plan", class: "seg-key" }),
      typeSelect(condition),
      opSelect(condition, type),
      ...valueInputs(condition, type),
    ];
  }

  function tagRow(condition) {
    const many = "tags" in condition;
    return [
      el("span", { class: "seg-word", text: "Customer" }),
      select("op", Object.entries(TAG_OPS), condition.op, "Tag test"),
      many ? chips("tags", condition.tags, "Tags") : textInput("tag", condition.tag, "Tag", { placeholder: "tag, e.g. vip" }),
    ];
  }

  function eventRow(condition, path) {
    const counting = condition.op.startsWith("count");
    const windowed = condition.withinLastDays !== undefined;
    const where = condition.where || [];
    return [
      el("div", { class: "seg-row" },
        el("span", { class: "seg-word", text: "Event" }),
        textInput("event", condition.event, "Event name", { placeholder: "event name, e.g. purchase", class: "seg-key" }),
        select("op", Object.entries(EVENT_OPS), condition.op, "How often"),
        counting && numberInput("value", condition.value, "Number of times"),
        counting && el("span", { class: "seg-word", text: "times" }),
        select("window", [["ever", "ever"], ["last", "in the last"]], windowed ? "last" : "ever", "When"),
        windowed && numberInput("withinLastDays", condition.withinLastDays, "Days", { min: "1" }),
        windowed && el("span", { class: "seg-word", text: "days" })),
      el("ul", { class: "seg-where" }, where.map((filter, index) => condition_(filter, `${path}.where[${index}]`, 0, "li"))),
      el("p", { class: "seg-add" }, el("button", { type: "button", class: "small", dataset: { add: "property" }, text: "+ Property filter" })),
    ];
  }

  function segmentRow(condition) {
    const options = config.segments.map((segment) => [String(segment.id), segment.name]);
    if (condition.segment !== undefined && !options.some(([id]) => id === String(condition.segment))) {
      options.push([String(condition.segment), `Segment ${condition.segment}`]);
    }
    return [
      el("span", { class: "seg-word", text: "Customer" }),
      select("op", Object.entries(SEGMENT_OPS), condition.op, "In or not in"),
      options.length ? select("segment", options, String(condition.segment ?? ""), "Segment")
        : el("span", { class: "muted", text: "There are no other segments yet." }),
    ];
  }

  const KIND_LABELS = { field: "Profile", tag: "Tags", event: "Event", segment: "Segment", property: "Property", group: "Group" };

  function addButtons(depth) {
    const kinds = [["field", "+ Profile field"], ["tag", "+ Tag"], ["event", "+ Event"], ["segment", "+ Segment"]];
    if (depth < MAX_DEPTH) kinds.push(["group", "+ Group of conditions"]);
    return el("p", { class: "seg-add" }, kinds.map(([kind, text]) => el("button", {
      type: "button", class: "small", dataset: { add: kind }, text,
      disabled: kind === "segment" && !config.segments.length,
      title: kind === "segment" && !config.segments.length ? "Create another segment first" : null,
    })));
  }

  function groupBody(group, path, depth) {
    const list = el("ol", { class: "seg-conditions" });
    group.conditions.forEach((condition, index) => {
      if (index > 0) list.append(el("li", { class: "seg-joiner", "aria-hidden": "true", text: group.match === "any" ? "or" : "and" }));
      list.append(condition_(condition, `${path}.conditions[${index}]`, depth + 1, "li"));
    });
    return [
      el("div", { class: "seg-match" },
        el("span", { class: "seg-word", text: depth === 0 ? "Customers who match" : "Match" }),
        select("match", [["all", "all"], ["any", "any"]], group.match, "All or any"),
        el("span", { class: "seg-word", text: "of these conditions" })),
      group.conditions.length ? list : el("p", {
        class: "empty seg-empty",
        text: depth > 0 ? "This group is empty: add a condition to it, or remove it."
          : group.match === "any" ? "No conditions yet: nobody matches. Add a condition below."
          : "No conditions yet: every customer matches. Add a condition below.",
      }),
      addButtons(depth),
    ];
  }

  function condition_(condition, path, depth, tag) {
    const kind = kindOf(condition);
    const node = el(tag, { class: `seg-cond seg-cond-${kind}`, dataset: { path, kind } });
    const remove = el("button", { type: "button", class: "seg-remove", dataset: { remove: "" }, "aria-label": "Remove this condition", title: "Remove", text: "×" });
    let body;
    if (kind === "property") {
      // A property filter is one line of its event test, with its remove button at the end.
      remove.setAttribute("aria-label", "Remove this property filter");
      node.append(el("div", { class: "seg-row" }, propertyRow(condition), remove), el("ul", { class: "errorlist seg-errors", dataset: { errorsFor: path } }));
      return node;
    }
    if (kind === "group") body = groupBody(condition, path, depth);
    else if (kind === "field") body = [el("div", { class: "seg-row" }, fieldRow(condition))];
    else if (kind === "tag") body = [el("div", { class: "seg-row" }, tagRow(condition))];
    else if (kind === "event") body = eventRow(condition, path);
    else if (kind === "segment") body = [el("div", { class: "seg-row" }, segmentRow(condition))];
    else body = [el("pre", { text: JSON.stringify(condition) })];
    node.append(
      el("div", { class: "seg-cond-head" }, el("span", { class: "seg-kind", text: KIND_LABELS[kind] || "Condition" }), remove),
      ...body,
      el("ul", { class: "errorlist seg-errors", dataset: { errorsFor: path } }),
    );
    return node;
  }

  function draw() {
    const focused = document.activeElement;
    const focusKey = root.contains(focused) ? [focused.closest("[data-path]")?.dataset.path, focused.dataset.key, focused.dataset.add] : null;
    const top = el("div", { class: "seg-root", dataset: { path: "rules" } },
      el("ul", { class: "errorlist seg-errors", dataset: { errorsFor: "rules" } }),
      ...groupBody(rules, "rules", 0));
    root.replaceChildren(top);
    showErrors();
    if (focusKey) {
      const [path, key, add] = focusKey;
      const scope = root.querySelector(`[data-path="${CSS.escape(path || "rules")}"]`);
      const target = scope && (key ? scope.querySelector(`[data-key="${CSS.escape(key)}"]`) : add ? scope.querySelector(`[data-add="${CSS.escape(add)}"]`) : null);
      target?.focus();
    }
  }

  // --- Errors by path ---------------------------------------------------------------------

  function showErrors() {
    root.querySelectorAll("[data-errors-for]").forEach((list) => list.replaceChildren());
    root.querySelectorAll("[aria-invalid]").forEach((node) => node.removeAttribute("aria-invalid"));
    root.querySelectorAll(".seg-cond.has-errors").forEach((node) => node.classList.remove("has-errors"));
    for (const [key, messages] of Object.entries(errors || {})) {
      // The deepest condition the path names ("rules.conditions[1].where[0]"), then the rest
      // ("op", "value[1]") names the input.
      let path = key;
      let rest = "";
      let scope = null;
      while (path) {
        scope = root.querySelector(`[data-path="${CSS.escape(path)}"]`);
        if (scope) break;
        const cut = Math.max(path.lastIndexOf("."), path.lastIndexOf("["));
        rest = path.slice(cut).replace(/^[.]/, "") + (rest ? `.${rest}` : "");
        path = cut > 0 ? path.slice(0, cut) : "";
      }
      scope ||= root.querySelector('[data-path="rules"]');
      if (!scope) continue;
      const list = scope.querySelector(`:scope > [data-errors-for]`);
      for (const message of [].concat(messages)) list?.append(el("li", { text: typeof message === "string" ? message : JSON.stringify(message) }));
      if (scope.classList.contains("seg-cond")) scope.classList.add("has-errors");
      const name = rest.split(/[.[]/)[0];
      if (name) {
        const own = [...scope.querySelectorAll(`[data-key="${CSS.escape(name)}"], [data-key^="${CSS.escape(name)}."]`)]
          .filter((node) => node.closest("[data-path]") === scope);
        own.forEach((node) => node.setAttribute("aria-invalid", "true"));
      }
    }
  }

  // --- Editing ---------------------------------------------------------------------------

  function at(path) {
    // "rules.conditions[1].where[0]" → the object in `rules`.
    let node = rules;
    for (const [, name, index] of path.replace(/^rules/, "").matchAll(/\.(\w+)\[(\d+)\]/g)) node = node[name][Number(index)];
    return node;
  }

  function parentOf(path) {
    const match = path.match(/^(.*)\.(\w+)\[(\d+)\]$/);
    return match ? { list: at(match[1])[match[2]], index: Number(match[3]), owner: at(match[1]), name: match[2] } : null;
  }

  function clean(value) {
    return JSON.parse(JSON.stringify(value, (key, inner) => (key.startsWith("_") ? undefined : inner)));
  }

  let saved = JSON.stringify(clean(rules));
  let leaving = false;

  function changed(redraw) {
    input.value = JSON.stringify(clean(rules));
    if (redraw) {
      errors = {}; // the paths may have moved; the count's answer brings the errors anew
      draw();
    }
    form.dispatchEvent(new CustomEvent("rules-changed", { bubbles: true }));
  }

  function numberOrNull(text) {
    return text === "" || Number.isNaN(Number(text)) ? null : Number(text);
  }

  function onEdit(event) {
    const field = event.target.closest("[data-key]");
    const scope = event.target.closest("[data-path]");
    if (!field || !scope || !root.contains(scope) || event.target.matches("[data-chip-input]")) return;
    const condition = at(scope.dataset.path);
    const key = field.dataset.key;
    const value = field.value;
    const type = condition.conditions ? null : typeOf(condition);
    let redraw = event.type === "change" && field.tagName === "SELECT";
    if (key === "match") condition.match = value;
    else if (key === "field") {
      if (value === CUSTOM) {
        if (!condition.field.startsWith(CUSTOM)) condition.field = CUSTOM;
      } else condition.field = value;
      delete condition._type;
      fitOpToType(condition);
    } else if (key === "customKey") condition.field = CUSTOM + value.trim();
    else if (key === "_type") {
      condition._type = value;
      fitOpToType(condition);
    } else if (key === "op") {
      if (condition.tag !== undefined || condition.tags !== undefined) {
        const many = ["hasAny", "hasAll", "hasNone"].includes(value);
        if (many && !("tags" in condition)) {
          condition.tags = condition.tag ? [condition.tag] : [];
          delete condition.tag;
        } else if (!many && !("tag" in condition)) {
          condition.tag = condition.tags?.[0] || "";
          delete condition.tags;
        }
        condition.op = value;
      } else if (condition.event !== undefined) {
        condition.op = value;
        if (value.startsWith("count")) condition.value ??= 1;
        else delete condition.value;
      } else if (condition.segment !== undefined) condition.op = value;
      else setOp(condition, value);
    } else if (key === "value") {
      if (condition.event !== undefined) condition.value = numberOrNull(value);
      else if (valueKind(condition.op) === "days" || type === "number") condition.value = numberOrNull(value);
      else if (type === "boolean" && valueKind(condition.op) === "scalar") condition.value = value === "true";
      else condition.value = value;
    } else if (key === "value.0" || key === "value.1") {
      if (!Array.isArray(condition.value)) condition.value = [null, null];
      condition.value[Number(key.slice(-1))] = numberOrNull(value);
    } else if (key === "event" || key === "tag" || key === "property") condition[key] = value;
    else if (key === "segment") condition.segment = Number(value);
    else if (key === "window") {
      if (value === "last") condition.withinLastDays ??= 30;
      else delete condition.withinLastDays;
    } else if (key === "withinLastDays") condition.withinLastDays = numberOrNull(value);
    else return;
    if (key === "match") redraw = true;
    changed(redraw);
  }

  root.addEventListener("input", (event) => { if (event.target.tagName !== "SELECT") onEdit(event); });
  root.addEventListener("change", onEdit);

  function addChip(box, text) {
    const scope = box.closest("[data-path]");
    const condition = at(scope.dataset.path);
    const key = box.dataset.key;
    const values = text.split(",").map((part) => part.trim()).filter(Boolean)
      .map((part) => (box.dataset.chips === "number" && !Number.isNaN(Number(part)) ? Number(part) : part));
    if (!values.length) return false;
    if (!Array.isArray(condition[key])) condition[key] = [];
    for (const value of values) if (!condition[key].includes(value)) condition[key].push(value);
    box.querySelector("[data-chip-input]").value = ""; // taken: the focusout that a redraw may cause adds nothing
    changed(true);
    root.querySelector(`[data-path="${CSS.escape(scope.dataset.path)}"] [data-chip-input]`)?.focus();
    return true;
  }

  root.addEventListener("keydown", (event) => {
    const chip = event.target.closest("[data-chip-input]");
    if (chip && (event.key === "Enter" || event.key === ",")) {
      event.preventDefault();
      addChip(chip.closest(".seg-chips"), chip.value);
    } else if (chip && event.key === "Backspace" && chip.value === "") {
      const box = chip.closest(".seg-chips");
      const condition = at(box.closest("[data-path]").dataset.path);
      if (Array.isArray(condition[box.dataset.key]) && condition[box.dataset.key].length) {
        condition[box.dataset.key].pop();
        changed(true);
        root.querySelector(`[data-path="${CSS.escape(box.closest("[data-path]")?.dataset.path || "")}"] [data-chip-input]`)?.focus();
      }
    }
  });
  // Text typed but not yet turned into a chip is kept when the cursor leaves.
  root.addEventListener("focusout", (event) => {
    const chip = event.target.closest?.("[data-chip-input]");
    if (chip && chip.value.trim()) {
      const box = chip.closest(".seg-chips");
      const condition = at(box.closest("[data-path]").dataset.path);
      const values = chip.value.split(",").map((part) => part.trim()).filter(Boolean);
      if (!Array.isArray(condition[box.dataset.key])) condition[box.dataset.key] = [];
      for (const value of values) {
        const typed = box.dataset.chips === "number" && !Number.isNaN(Number(value)) ? Number(value) : value;
        if (!condition[box.dataset.key].includes(typed)) condition[box.dataset.key].push(typed);
      }
      // Redrawn after the focus moved, so the click that moved it still lands.
      setTimeout(() => changed(true), 0);
    }
  });

  root.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button || !root.contains(button)) return;
    const scope = button.closest("[data-path]");
    if (button.dataset.removeChip !== undefined) {
      const box = button.closest(".seg-chips");
      at(scope.dataset.path)[box.dataset.key].splice(Number(button.dataset.removeChip), 1);
      changed(true);
    } else if (button.dataset.remove !== undefined) {
      const parent = parentOf(scope.dataset.path);
      parent.list.splice(parent.index, 1);
      if (parent.name === "where" && !parent.list.length) delete parent.owner.where;
      changed(true);
    } else if (button.dataset.add) {
      const owner = at(scope.dataset.path);
      if (button.dataset.add === "property") (owner.where ||= []).push(NEW.property());
      else owner.conditions.push(NEW[button.dataset.add]());
      changed(true);
      // The cursor in the first input of what was just added.
      const list = button.dataset.add === "property" ? root.querySelector(`[data-path="${CSS.escape(scope.dataset.path)}"] .seg-where`)
        : root.querySelector(`[data-path="${CSS.escape(scope.dataset.path)}"] .seg-conditions`);
      list?.lastElementChild?.querySelector("input:not([type=hidden]), select")?.focus();
    }
  });

  // The count's answer (htmx swaps #segment-preview) carries the errors by path.
  document.addEventListener("htmx:afterSettle", () => {
    if (!document.getElementById("segment-preview")) return;
    errors = readJson("rule-errors", {});
    showErrors();
  });

  // Leaving with unsaved rules: the browser asks (saving does not).
  form.addEventListener("submit", () => { leaving = true; });
  window.addEventListener("beforeunload", (event) => {
    if (leaving || form.dataset.unsaved !== "true" && JSON.stringify(clean(rules)) === saved) return;
    event.preventDefault();
    event.returnValue = "";
  });
  if (form.dataset.unsaved === "true") saved = null;

  draw();
})();
