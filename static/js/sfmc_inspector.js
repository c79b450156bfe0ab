// The Journey Builder configuration inspector of a Marketing Cloud trigger
// (templates/triggers/sfmc_inspector.html).
//
// Journey Builder talks to the activity's frame with Postmonger: window.postMessage of a JSON
// text {"e": "<event>", "a1": <first argument>, "a2": ...}, sent to the parent window. The small
// session below speaks exactly that, so no vendored library is needed:
//   out: ready, requestSchema, updateActivity, requestInspectorClose
//   in:  initActivity (the activity's payload), requestedSchema, clickedNext, clickedDone
// On Done the payload goes back with arguments.execute.inArguments set to the rows and
// metaData.isConfigured = true.
(function () {
  "use strict";

  function Session(target) {
    const handlers = {};
    window.addEventListener("message", function (event) {
      if (event.source !== target || typeof event.data !== "string") {
        return;
      }
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      if (!data || typeof data !== "object" || !data.e) {
        return;
      }
      const args = Object.keys(data)
        .filter(function (key) { return key !== "e"; })
        .map(function (key) { return data[key]; });
      (handlers[data.e] || []).forEach(function (handler) { handler.apply(null, args); });
    });
    this.on = function (name, handler) {
      (handlers[name] = handlers[name] || []).push(handler);
    };
    this.trigger = function (name) {
      const message = { e: name };
      for (let index = 1; index < arguments.length; index += 1) {
        message["a" + index] = arguments[index];
      }
      target.postMessage(JSON.stringify(message), "*");
    };
  }

  const framed = window.parent && window.parent !== window;
  const connection = framed ? new Session(window.parent) : null;
  let activity = {};

  const body = document.querySelector("#in-arguments tbody");
  const template = document.getElementById("row-template");
  const status = document.getElementById("status");
  const problems = document.getElementById("problems");
  const bindings = document.getElementById("bindings");
  const defaults = JSON.parse(document.getElementById("default-in-arguments").textContent);

  function addRow(name, binding) {
    const row = template.content.firstElementChild.cloneNode(true);
    row.querySelector(".arg-name").value = name || "";
    row.querySelector(".arg-binding").value = binding || "";
    row.querySelector(".remove").addEventListener("click", function () {
      row.remove();
      if (!body.children.length) {
        addRow("", "");
      }
    });
    body.appendChild(row);
    return row;
  }

  function showRows(inArguments) {
    body.replaceChildren();
    (Array.isArray(inArguments) ? inArguments : []).forEach(function (item) {
      if (item && typeof item === "object") {
        Object.keys(item).forEach(function (key) { addRow(key, String(item[key])); });
      }
    });
    if (!body.children.length) {
      addRow("userId", "{{Contact.Key}}");
    }
  }

  function rows() {
    return Array.from(body.children).map(function (row) {
      return {
        name: row.querySelector(".arg-name").value.trim(),
        binding: row.querySelector(".arg-binding").value.trim(),
      };
    }).filter(function (row) { return row.name || row.binding; });
  }

  function check(list) {
    const seen = {};
    const found = [];
    if (!list.length) {
      found.push("Add at least one in-argument (userId: {{Contact.Key}} sends the contact key).");
    }
    list.forEach(function (row, index) {
      if (!row.name) {
        found.push("Row " + (index + 1) + " needs a name.");
      } else if (seen[row.name]) {
        found.push("The name " + row.name + " is used twice.");
      }
      seen[row.name] = true;
    });
    return found;
  }

  function done() {
    const list = rows();
    const found = check(list);
    problems.hidden = !found.length;
    problems.textContent = found.join(" ");
    if (found.length) {
      return false;
    }
    const payload = activity && typeof activity === "object" ? activity : {};
    payload.arguments = payload.arguments || {};
    payload.arguments.execute = payload.arguments.execute || {};
    payload.arguments.execute.inArguments = list.map(function (row) {
      const item = {};
      item[row.name] = row.binding;
      return item;
    });
    payload.metaData = payload.metaData || {};
    payload.metaData.isConfigured = true;
    if (connection) {
      connection.trigger("updateActivity", payload);
    }
    status.textContent = "Saved in the journey. Publish the journey in Journey Builder to start using it.";
    status.className = "status ok";
    return true;
  }

  function initActivity(data) {
    activity = data && typeof data === "object" ? data : {};
    const saved = ((activity.arguments || {}).execute || {}).inArguments;
    showRows(Array.isArray(saved) && saved.length ? saved : defaults);
    status.textContent = "Set what Journey Builder sends for each contact, then choose Done.";
    status.className = "status";
  }

  function requestedSchema(data) {
    const schema = (data && data.schema) || [];
    schema.forEach(function (field) {
      if (field && typeof field.key === "string") {
        const option = document.createElement("option");
        option.value = "{{" + field.key + "}}";
        bindings.appendChild(option);
      }
    });
  }

  document.getElementById("add-row").addEventListener("click", function () {
    addRow("", "").querySelector(".arg-name").focus();
  });
  document.getElementById("done").addEventListener("click", function () {
    if (done() && connection) {
      connection.trigger("requestInspectorClose");
    }
  });

  showRows(defaults);
  if (connection) {
    connection.on("initActivity", initActivity);
    connection.on("requestedSchema", requestedSchema);
    connection.on("clickedNext", done);
    connection.on("clickedDone", done);
    connection.trigger("ready");
    connection.trigger("requestSchema");
  } else {
    status.textContent = "Open this page from Journey Builder: it is the activity's settings panel.";
    status.className = "status warn";
  }
})();
