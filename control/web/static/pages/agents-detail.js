import { api, upload } from "../api.js";
import { catalogue, fillChoices, fillProviders } from "../catalogue.js";
import { $, attempt, badge, el, formatTime, itemId, loaded, poll, rowAction, say, show, table } from "../ui.js";

const agentId = itemId();
const form = $("#agent-form");
const SIMPLE_FIELDS = [
  "agent_name", "phone_number", "language", "first_message", "system_prompt", "LLM_model",
  "LLM_base_url", "temperature", "max_tokens", "max_call_duration", "max_duration_message",
  "min_endpointing_delay", "max_endpointing_delay", "idle_warning_after", "idle_warning_message",
  "idle_hangup_after", "voicemail_action", "voicemail_message", "max_handoffs",
];
const NUMBER_FIELDS = new Set([
  "temperature", "max_tokens", "max_call_duration", "min_endpointing_delay",
  "max_endpointing_delay", "idle_warning_after", "idle_hangup_after", "max_handoffs",
]);
const NULLABLE_FIELDS = new Set(["phone_number", "LLM_base_url", "idle_warning_after", "idle_hangup_after"]);
const CHECKBOXES = ["interruptible", "recording_enabled", "voicemail_detection", "allow_web_calls"];

const lines = (text) => text.split("\n").map((line) => line.trim()).filter(Boolean);
// "name: description" -> [name, description]
const split = (line, separator) => {
  const at = line.indexOf(separator);
  return at < 0 ? [line.trim(), ""] : [line.slice(0, at).trim(), line.slice(at + separator.length).trim()];
};

function refreshModels(agent = {}) {
  const llm = catalogue.llm[$("#LLM_provider").value];
  fillChoices($("#LLM_models"), llm ? llm.models : [], null);
  const stt = catalogue.stt[$("#STT_provider").value];
  fillChoices($("#STT_model"), stt ? stt.models : [], agent.STT_model);
  const tts = catalogue.tts[$("#TTS_provider").value];
  fillChoices($("#TTS_model"), tts ? tts.models : [], agent.TTS_model);
  fillChoices($("#TTS_voice"), tts ? tts.voices : [], agent.TTS_voice);
}

const KINDS = ["LLM", "STT", "TTS"];
const MAX_FALLBACKS = 2;

/** One control per setting the chosen provider takes (`<KIND>_settings`); empty means the
 * provider's default, so a boolean or a choice offers "Default" too. */
function settingControl(kind, setting, value) {
  const id = `${kind}_settings-${setting.name}`;
  const label = `${kind} ${setting.name.replaceAll("_", " ")}`;
  let control;
  if (setting.type === "boolean" || setting.type === "choice") {
    const options = setting.type === "boolean" ? [["true", "On"], ["false", "Off"]]
      : setting.choices.map((choice) => [choice, choice]);
    control = el("select", { id, "data-setting": setting.name, "data-type": setting.type },
      el("option", { value: "" }, "Default"),
      options.map(([option, text]) => el("option", { value: option, selected: value !== undefined && String(value) === option }, text)));
  } else {
    control = el("input", {
      id, type: "number", "data-setting": setting.name, "data-type": setting.type,
      min: setting.minimum ?? undefined, max: setting.maximum ?? undefined,
      step: setting.type === "integer" ? 1 : "any", value: value ?? "", placeholder: "Default",
    });
  }
  return el("div", { class: "field" }, el("label", { for: id }, label),
    setting.description ? el("small", {}, setting.description) : null, control);
}

function refreshSettings(kind, values = {}) {
  const info = catalogue[kind.toLowerCase()][$(`#${kind}_provider`).value];
  show($(`#${kind}_settings`), (info?.settings || []).map((setting) => settingControl(kind, setting, values[setting.name])));
}

function readSettings(kind) {
  const settings = {};
  for (const control of $(`#${kind}_settings`).querySelectorAll("[data-setting]")) {
    const value = control.value.trim();
    if (value === "") continue;
    const type = control.dataset.type;
    settings[control.dataset.setting] = type === "boolean" ? value === "true" : type === "choice" ? value : Number(value);
  }
  return settings;
}

/** Up to two fallbacks per kind: a provider (or none), its model, and for TTS its voice. */
function fallbackRow(kind, index, fallback = {}) {
  const id = (part) => `${kind}_fallbacks-${index}-${part}`;
  const label = `${kind} fallback ${index + 1}`;
  const providers = catalogue[kind.toLowerCase()] || {};
  const provider = el("select", { id: id("provider"), "data-key": "provider" },
    el("option", { value: "" }, "None"),
    Object.entries(providers).map(([name, info]) => el("option", { value: name, selected: name === fallback.provider }, info.label)));
  const text = (part, title) => {
    const list = el("datalist", { id: id(`${part}s`) });
    const input = el("input", { id: id(part), "data-key": part, list: id(`${part}s`), value: fallback[part] ?? "", placeholder: "Default" });
    return [el("div", { class: "field" }, el("label", { for: id(part) }, `${label} ${title}`), input, list), list];
  };
  const [model, models] = text("model", "model");
  const [voice, voices] = kind === "TTS" ? text("voice", "voice") : [null, null];
  const refresh = () => {
    const info = providers[provider.value];
    fillChoices(models, info ? info.models : [], null);
    if (voices) fillChoices(voices, info ? info.voices : [], null);
  };
  provider.addEventListener("change", refresh);
  refresh();
  return el("div", { class: "grid fallback", "data-fallback": kind },
    el("div", { class: "field" }, el("label", { for: id("provider") }, `${label} provider`), provider), model, voice);
}

function showFallbacks(kind, fallbacks = []) {
  const rows = [];
  for (let index = 0; index < MAX_FALLBACKS; index++) rows.push(fallbackRow(kind, index, fallbacks[index]));
  show($(`#${kind}_fallbacks`), rows);
}

function readFallbacks(kind) {
  return [...$(`#${kind}_fallbacks`).querySelectorAll("[data-fallback]")].map((row) => {
    const fallback = {};
    for (const input of row.querySelectorAll("[data-key]")) {
      const value = input.value.trim();
      if (value) fallback[input.dataset.key] = value;
    }
    return fallback;
  }).filter((fallback) => fallback.provider);
}

let functionCount = 0;

function functionFieldset(fn = {}) {
  const index = functionCount++;
  const id = (name) => `fn-${index}-${name}`;
  const input = (name, label, attributes = {}) =>
    el("div", { class: "field" }, el("label", { for: id(name) }, label),
      el("input", { id: id(name), "data-key": name, value: fn[name] ?? "", ...attributes }));
  const area = (name, label, value) =>
    el("div", { class: "field" }, el("label", { for: id(name) }, label),
      el("textarea", { id: id(name), "data-key": name, rows: 3 }, value));
  const fieldset = el("fieldset", { class: "function" },
    el("legend", {}, fn.name ? `Function ${fn.name}` : "New function"),
    el("div", { class: "grid" },
      input("name", "Name", { required: true }),
      input("url", "URL", { type: "url", required: true }),
      el("div", { class: "field" }, el("label", { for: id("method") }, "Method"),
        el("select", { id: id("method"), "data-key": "method" },
          ["GET", "POST", "PUT", "PATCH", "DELETE"].map((method) =>
            el("option", { selected: (fn.method || "POST") === method }, method)))),
      input("timeout", "Timeout (s)", { type: "number", min: 1, max: 30, step: "0.5" }),
      input("speak_during", "Say while it runs"),
      input("speak_after", "Say when it is done"),
    ),
    input("description", "Description (tells the model when to call it)"),
    area("parameters", "Parameters (JSON Schema)", JSON.stringify(fn.parameters || {}, null, 2)),
    area("headers", "Headers (JSON object; secrets stay masked)", JSON.stringify(fn.headers || {}, null, 2)),
    area("sample", "Sample arguments for a test (JSON)", "{}"),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "secondary", onclick: () => tryFunction(fieldset) }, "Test this function"),
      el("button", { type: "button", class: "secondary", onclick: () => fieldset.remove() }, "Remove this function"),
    ),
    el("p", { class: "function-result", "aria-live": "polite" }),
  );
  return fieldset;
}

// Calls the saved function once, as a call would, and shows what the model would have seen.
function tryFunction(fieldset) {
  const name = fieldset.querySelector('[data-key="name"]').value.trim();
  const result = fieldset.querySelector(".function-result");
  attempt(async () => {
    let args;
    try {
      args = JSON.parse(fieldset.querySelector('[data-key="sample"]').value || "{}");
    } catch {
      throw new Error("The sample arguments are not valid JSON.");
    }
    const tried = await api("POST", `/agents/${agentId}/functions/${encodeURIComponent(name)}/test`, { arguments: args });
    result.textContent = tried.ok
      ? `Answered in ${Math.round(tried.elapsed_ms)} ms: ${tried.response}`
      : `Failed after ${Math.round(tried.elapsed_ms)} ms: ${tried.error}`;
    result.className = `function-result ${tried.ok ? "ok" : "error"}`;
  });
}

function readFunctions() {
  return [...document.querySelectorAll("fieldset.function")].map((fieldset) => {
    const fn = {};
    for (const field of fieldset.querySelectorAll("[data-key]")) {
      const key = field.dataset.key;
      if (key === "sample") continue;
      if (key === "parameters" || key === "headers") {
        try {
          fn[key] = JSON.parse(field.value || "{}");
        } catch {
          throw new Error(`The ${key} of function "${fn.name || "?"}" are not valid JSON.`);
        }
      } else if (key === "timeout") {
        if (field.value) fn.timeout = Number(field.value);
      } else if (field.value !== "" || key === "name" || key === "url") {
        fn[key] = field.value;
      }
    }
    return fn;
  });
}

let rowCount = 0;

// One row of a list setting: labelled inputs whose `data-key` names the field they hold.
function settingRow(kind, legend, item, inputs) {
  const index = rowCount++;
  const id = (name) => `${kind}-${index}-${name}`;
  const control = ([name, label, options]) => {
    const value = item[name] ?? "";
    const input = Array.isArray(options)
      ? el("select", { id: id(name), "data-key": name }, options.map(([choice, text]) =>
        el("option", { value: choice, selected: String(value) === choice }, text)))
      : options === "checkbox"
        ? el("input", { id: id(name), "data-key": name, type: "checkbox", checked: Boolean(value) })
        : el("input", { id: id(name), "data-key": name, value, ...(options || {}) });
    return el("div", { class: "field" }, el("label", { for: id(name) }, label), input);
  };
  const row = el("fieldset", { class: kind },
    el("legend", {}, legend),
    el("div", { class: "grid" }, inputs.map(control)),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "secondary", onclick: () => row.remove() }, "Remove")));
  return row;
}

const transferRow = (destination = {}) => settingRow("transfer",
  destination.name ? `Transfer to ${destination.name}` : "New transfer destination", destination, [
    ["name", "Name"],
    ["destination", "Number or sip: address", { required: true }],
    ["description", "What it is for"],
    ["type", "Type", [["cold", "Cold (handed straight over)"], ["warm", "Warm (briefed first)"]]],
    ["ring_timeout", "Warm: seconds to answer", { type: "number", min: 5, max: 120 }],
    ["briefing_instructions", "Warm: what the briefing says"],
    ["hold_audio_url", "Warm: hold audio (WAV URL)", { type: "url" }],
    ["fallback_message", "Warm: said when nobody takes the call"],
  ]);

let workspaceAgents = [];

const handoffRow = (handoff = {}) => settingRow("handoff",
  handoff.name ? `Hand-off to ${handoff.name}` : "New hand-off", handoff, [
    ["agent_id", "Agent", workspaceAgents.filter((other) => other.id !== agentId)
      .map((other) => [other.id, other.agent_name])],
    ["name", "Name"],
    ["description", "When to hand over"],
    ["carry", "Carries", [["transcript", "The conversation"], ["summary", "A summary"]]],
    ["greet_on_handoff", "Greets with its first message", "checkbox"],
  ]);

function readRows(kind) {
  return [...document.querySelectorAll(`fieldset.${kind}`)].map((row) => {
    const item = {};
    for (const input of row.querySelectorAll("[data-key]")) {
      const key = input.dataset.key;
      if (input.type === "checkbox") item[key] = input.checked;
      else if (input.value.trim() !== "") item[key] = input.type === "number" ? Number(input.value) : input.value.trim();
    }
    return item;
  });
}

function fill(agent) {
  $("#agent-title").textContent = agent.agent_name;
  document.title = `${agent.agent_name} · Voxline`;
  $("#chat-link").href = `/app/chat?agent=${agent.id}`;
  $("#calls-link").href = `/app/calls?agent_id=${agent.id}`;
  fillProviders($("#LLM_provider"), "llm", agent.LLM_provider);
  fillProviders($("#STT_provider"), "stt", agent.STT_provider);
  fillProviders($("#TTS_provider"), "tts", agent.TTS_provider);
  refreshModels(agent);
  for (const kind of KINDS) {
    refreshSettings(kind, agent[`${kind}_settings`] || {});
    showFallbacks(kind, agent[`${kind}_fallbacks`] || []);
  }
  for (const name of SIMPLE_FIELDS) form.elements[name].value = agent[name] ?? "";
  for (const name of CHECKBOXES) form.elements[name].checked = Boolean(agent[name]);
  $("#LLM_api_key").placeholder = agent.LLM_api_key || "";
  form.elements.end_call_phrases.value = (agent.end_call_phrases || []).join("\n");
  show($("#transfers"), (agent.transfer_destinations || []).map(transferRow));
  show($("#handoffs"), (agent.handoff_destinations || []).map(handoffRow));
  form.elements.dtmf_menu.value = Object.entries(agent.dtmf_menu || {})
    .map(([key, meaning]) => `${key}: ${meaning}`).join("\n");
  form.elements.web_call_origins.value = (agent.web_call_origins || []).join("\n");
  const analysis = agent.post_call_analysis || {};
  form.elements.analysis_summary.checked = analysis.summary !== false;
  form.elements.analysis_sentiment.checked = analysis.sentiment !== false;
  form.elements.analysis_dispositions.value = (analysis.dispositions || [])
    .map((item) => (item.description ? `${item.name}: ${item.description}` : item.name)).join("\n");
  form.elements.analysis_data_points.value = (analysis.data_points || [])
    .map((item) => `${item.name} (${item.type})${item.description ? `: ${item.description}` : ""}`).join("\n");
  form.elements.analysis_success.value = analysis.success_evaluation || "";
  $("#web-call-key").textContent = agent.web_call_public_key || "—";
  functionCount = 0;
  show($("#functions"), (agent.custom_functions || []).map(functionFieldset));
}

function readForm() {
  const body = {};
  for (const name of SIMPLE_FIELDS) {
    const value = form.elements[name].value.trim();
    if (value === "") {
      if (NULLABLE_FIELDS.has(name)) body[name] = null;
      continue;
    }
    body[name] = NUMBER_FIELDS.has(name) ? Number(value) : value;
  }
  for (const name of ["LLM_provider", "STT_provider", "STT_model", "TTS_provider", "TTS_model", "TTS_voice"]) {
    body[name] = form.elements[name].value;
  }
  for (const name of CHECKBOXES) body[name] = form.elements[name].checked;
  for (const kind of KINDS) {
    body[`${kind}_settings`] = readSettings(kind);
    body[`${kind}_fallbacks`] = readFallbacks(kind);
  }
  if (form.elements.LLM_api_key.value) body.LLM_api_key = form.elements.LLM_api_key.value;
  body.end_call_phrases = lines(form.elements.end_call_phrases.value);
  body.transfer_destinations = readRows("transfer"); // a destination without a name is named by the server
  body.handoff_destinations = readRows("handoff");
  body.dtmf_menu = Object.fromEntries(lines(form.elements.dtmf_menu.value).map((line) => split(line, ":")));
  body.web_call_origins = lines(form.elements.web_call_origins.value);
  body.post_call_analysis = {
    summary: form.elements.analysis_summary.checked,
    sentiment: form.elements.analysis_sentiment.checked,
    dispositions: lines(form.elements.analysis_dispositions.value).map((line) => {
      const [name, description] = split(line, ":");
      return { name, description };
    }),
    data_points: lines(form.elements.analysis_data_points.value).map((line) => {
      const [head, description] = split(line, ":");
      const match = head.match(/^(\S+)\s*(?:\((\w+)\))?$/);
      return { name: match ? match[1] : head, type: (match && match[2]) || "string", description };
    }),
    success_evaluation: form.elements.analysis_success.value.trim() || null,
  };
  body.custom_functions = readFunctions();
  const note = form.elements.version_note.value.trim();
  if (note) body.version_note = note;
  return body;
}

async function loadAgent() {
  const [agent, others] = await Promise.all([
    api("GET", `/agents/${agentId}`), api("GET", "/agents?page_size=100"),
  ]);
  workspaceAgents = others.items;
  fill(agent);
}

let filesPending = true;

async function loadFiles() {
  const page = await api("GET", `/agents/${agentId}/files?page_size=100`);
  filesPending = page.items.some((file) => !["ready", "failed"].includes(file.status));
  show(
    $("#files"),
    table(
      [
        ["File", (file) => file.filename],
        ["Status", (file) => el("span", {}, badge(file.status), file.error ? ` ${file.error}` : "")],
        ["Chunks", (file) => String(file.chunk_count)],
        ["Size", (file) => `${Math.ceil(file.size_bytes / 1024)} KB`],
        ["Updated", (file) => formatTime(file.updated_at)],
        ["", (file) => rowAction("Delete", `Delete ${file.filename}`, async () => {
          await api("DELETE", `/agents/${agentId}/files/${encodeURIComponent(file.filename)}`);
          say(`Deleted ${file.filename}.`);
          await loadFiles();
        })],
      ],
      page.items,
      "No knowledge files yet. Upload a document above and the agent will answer from it.",
      "Knowledge files",
    ),
  );
}

function watchFiles() {
  poll(() => attempt(loadFiles), 1.5, () => filesPending);
}

["#LLM_provider", "#STT_provider", "#TTS_provider"].forEach((selector) =>
  $(selector).addEventListener("change", () => refreshModels()));
// a provider's settings are its own: choosing another shows (and sends) the new one's
KINDS.forEach((kind) => $(`#${kind}_provider`).addEventListener("change", () => refreshSettings(kind)));

$("#add-transfer").addEventListener("click", () => {
  const row = transferRow({ type: "cold" });
  $("#transfers").append(row);
  row.querySelector("input").focus();
});

$("#add-handoff").addEventListener("click", () => {
  const row = handoffRow({ carry: "transcript" });
  $("#handoffs").append(row);
  row.querySelector("select").focus();
});

$("#add-function").addEventListener("click", () => {
  const fieldset = functionFieldset();
  $("#functions").append(fieldset);
  fieldset.querySelector("input").focus();
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(async () => {
    fill(await api("PUT", `/agents/${agentId}`, readForm()));
    form.elements.version_note.value = "";
    document.dispatchEvent(new CustomEvent("agent-saved")); // the Versions section reloads
    say("Saved.");
  }, { busy: event.submitter });
});

$("#delete-agent").addEventListener("click", () => {
  if (!confirm("Delete this agent and its knowledge?")) return;
  attempt(async () => {
    await api("DELETE", `/agents/${agentId}`);
    location.assign("/app/agents");
  });
});

$("#rotate-key").addEventListener("click", () =>
  attempt(async () => {
    const rotated = await api("POST", `/agents/${agentId}/web-call-key/rotate`);
    $("#web-call-key").textContent = rotated.web_call_public_key || "—";
    say("The web-call key is rotated: pages using the old key must be updated.");
  }));

$("#upload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const chosen = $("#knowledge-files").files;
  if (!chosen.length) {
    say("Choose one or more files to upload first.", "error");
    return;
  }
  const data = new FormData();
  for (const file of chosen) data.append("files", file);
  const progress = $("#upload-progress");
  attempt(async () => {
    await upload(`/agents/${agentId}/upload`, data, (percent) => { progress.value = percent; });
    progress.value = 100;
    say("Uploaded; the files are being read. Their status turns to ready when the agent can use them.");
    event.target.reset();
    watchFiles();
  }, { busy: event.submitter });
});

$("#query-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(async () => {
    const answer = await api("POST", `/agents/${agentId}/query`, { query: $("#query").value });
    show(
      $("#query-results"),
      answer.results.length
        ? el("ol", { class: "passages" }, answer.results.map((passage) =>
          el("li", {},
            el("p", { class: "muted" }, `${passage.file_name}${passage.page ? `, page ${passage.page}` : ""} · score ${passage.score.toFixed(2)}`),
            el("blockquote", {}, passage.text))))
        : el("p", { class: "empty" }, "Nothing in the knowledge matches that question."),
    );
  }, { busy: event.submitter });
});

// A version restored in the Versions section is now the agent's latest settings.
document.addEventListener("agent-restored", () => attempt(loadAgent));

attempt(async () => {
  await loadAgent();
  loaded();
});
watchFiles();
