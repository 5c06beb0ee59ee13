// The agent page's Versions section: the draft banner, the version history (publish, restore),
// a field-by-field diff of any two versions, the version settings and the A/B traffic split.
import { api } from "./api.js";
import { $, $$, attempt, badge, el, formatTime, itemId, rowAction, say, show, table } from "./ui.js";

const agentId = itemId();
const MAX_SPLIT = 5;
let agent = null;
let versions = [];
let splitCount = 0;

function banner() {
  const draft = agent.draft && agent.latest_version !== null;
  $("#draft-banner").hidden = !draft;
  if (!draft) return;
  const running = agent.published_version
    ? `calls run version ${agent.published_version}`
    : "no version is published yet";
  $("#draft-text").textContent = `Draft: the latest version (${agent.latest_version}) is not published; ${running}.`;
}

function state(version) {
  const marks = [];
  if (version.published) marks.push(badge("published"));
  if (version.latest && !version.published) marks.push(badge("draft"));
  if (version.split_weight !== null && version.split_weight !== undefined) {
    marks.push(` ${version.split_weight}% of new calls`);
  }
  return el("span", {}, marks.length ? marks : "—");
}

function renderList() {
  show($("#version-list"), table([
    ["Version", (version) => String(version.version)],
    ["State", state],
    ["Saved", (version) => formatTime(version.created_at)],
    ["By", (version) => version.created_by || "—"],
    ["Note", (version) => version.version_note || "—"],
    ["", (version) => el("span", { class: "actions" },
      version.published ? null : rowAction("Publish", `Publish version ${version.version}`, () => publish(version.version)),
      version.latest ? null : rowAction("Restore", `Restore version ${version.version}`, () => restore(version.version),
        `Make a new version equal to version ${version.version}?`))],
  ], versions, "No versions yet: save the agent to make its first.", "Versions"));
}

function fillVersionChoices(select, chosen) {
  select.replaceChildren(...versions.map((version) =>
    el("option", { value: version.version, selected: version.version === chosen }, `Version ${version.version}`)));
}

function splitRow(entry = {}) {
  const index = splitCount++;
  const versionId = `split-${index}-version`;
  const weightId = `split-${index}-weight`;
  const choice = el("select", { id: versionId, "data-key": "version" });
  fillVersionChoices(choice, entry.version ?? versions[0]?.version);
  const row = el("div", { class: "grid split-row" },
    el("div", { class: "field" }, el("label", { for: versionId }, "Version"), choice),
    el("div", { class: "field" }, el("label", { for: weightId }, "Share of new calls (%)"),
      el("input", { id: weightId, "data-key": "weight", type: "number", min: 0, max: 100, step: 1, required: true, value: entry.weight ?? "" })),
    el("div", {}, el("button", { type: "button", class: "secondary", onclick: () => row.remove() }, "Remove from the split")),
  );
  return row;
}

function renderSettings() {
  const settings = $("#version-settings");
  settings.elements.auto_publish.checked = agent.auto_publish;
  settings.elements.require_passing_tests.checked = agent.require_passing_tests;
  splitCount = 0;
  show($("#split-rows"), (agent.traffic_split || []).map(splitRow));
  const newest = versions[0]?.version;
  fillVersionChoices($("#diff_from"), versions[1]?.version ?? newest);
  fillVersionChoices($("#diff_to"), newest);
  $("#compare-link").href = `/app/reports?agent_id=${agentId}`;
}

async function load() {
  [agent, versions] = await Promise.all([
    api("GET", `/agents/${agentId}`),
    api("GET", `/agents/${agentId}/versions?page_size=100`).then((page) => page.items),
  ]);
  banner();
  renderList();
  renderSettings();
  for (const button of $$('#versions button[data-ready="versions"], #draft-banner button')) button.disabled = false;
}

async function publish(number) {
  await api("POST", `/agents/${agentId}/publish`, { version: number });
  say(`Version ${number} is published: new calls run it.`);
  await load();
}

async function restore(number) {
  const made = await api("POST", `/agents/${agentId}/versions/${number}/restore`);
  say(made.published
    ? `Restored version ${number} as version ${made.version}; it is published.`
    : `Restored version ${number} as version ${made.version}, a draft: publish it to make calls run it.`);
  document.dispatchEvent(new CustomEvent("agent-restored")); // the form shows the restored settings
  await load();
}

// JSON with sorted keys, so that two equal settings always read the same.
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((key) => `${JSON.stringify(key)}:${canonical(value[key])}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

function shown(value) {
  if (value === undefined || value === null || value === "") return "—";
  return typeof value === "object" ? JSON.stringify(value, null, 1) : String(value);
}

async function compare(from, to) {
  const [older, newer] = await Promise.all([
    api("GET", `/agents/${agentId}/versions/${from}`),
    api("GET", `/agents/${agentId}/versions/${to}`),
  ]);
  const fields = [...new Set([...Object.keys(older.config), ...Object.keys(newer.config)])].sort();
  const changed = fields.filter((field) => canonical(older.config[field]) !== canonical(newer.config[field]));
  show($("#version-diff"), table([
    ["Setting", (field) => field],
    [`Version ${from}`, (field) => el("pre", {}, shown(older.config[field]))],
    [`Version ${to}`, (field) => el("pre", { class: "diff-changed" }, shown(newer.config[field]))],
  ], changed, `Versions ${from} and ${to} are the same.`, `Changes from version ${from} to version ${to}`));
}

$("#diff-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(() => compare(Number($("#diff_from").value), Number($("#diff_to").value)), { busy: event.submitter });
});

$("#version-settings").addEventListener("submit", (event) => {
  event.preventDefault();
  const settings = event.target.elements;
  attempt(async () => {
    await api("PUT", `/agents/${agentId}`, {
      auto_publish: settings.auto_publish.checked,
      require_passing_tests: settings.require_passing_tests.checked,
    });
    say("Saved the version settings.");
    await load();
  }, { busy: event.submitter });
});

$("#add-split-row").addEventListener("click", () => {
  if ($$("#split-rows .split-row").length >= MAX_SPLIT) {
    say(`A split has at most ${MAX_SPLIT} versions.`, "error");
    return;
  }
  const row = splitRow();
  $("#split-rows").append(row);
  row.querySelector("select").focus();
});

$("#split-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const split = $$("#split-rows .split-row").map((row) => ({
    version: Number(row.querySelector('[data-key="version"]').value),
    weight: Number(row.querySelector('[data-key="weight"]').value),
  }));
  attempt(async () => {
    await api("PUT", `/agents/${agentId}`, { traffic_split: split.length ? split : null });
    say(split.length
      ? `New calls are split: ${split.map((entry) => `version ${entry.version} ${entry.weight}%`).join(", ")}.`
      : "No split: new calls run the published version.");
    await load();
  }, { busy: event.submitter });
});

$("#clear-split").addEventListener("click", () =>
  attempt(async () => {
    await api("PUT", `/agents/${agentId}`, { traffic_split: null });
    say("No split: new calls run the published version.");
    await load();
  }));

$("#publish-latest").addEventListener("click", () => attempt(() => publish(agent.latest_version)));

document.addEventListener("agent-saved", () => attempt(load));

attempt(load);
