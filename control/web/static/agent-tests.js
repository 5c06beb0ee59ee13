// The agent page's Tests section: its test cases (expectations as form rows), a Run button and
// the run history. A run's results are on its own page (/app/test-runs/<id>).
import { api } from "./api.js";
import { $, attempt, badge, el, formatTime, itemId, poll, rowAction, say, show, table } from "./ui.js";

const agentId = itemId();
const ACTIVE = new Set(["queued", "running"]);
// Expectation type -> the field its value goes in (none: the type alone says it all).
const EXPECTATIONS = {
  reply_contains: "text",
  reply_not_contains: "text",
  reply_matches: "pattern",
  tool_called: "name",
  no_tool_called: null,
  judge: "criterion",
  ends_call: null,
  max_latency_ms: "value",
};
let editing = null; // the id of the case being edited, or null for a new one
let rowCount = 0;

function expectationRow(expectation = { type: "reply_contains" }) {
  const index = rowCount++;
  const id = (name) => `expect-${index}-${name}`;
  const key = EXPECTATIONS[expectation.type];
  const type = el("select", { id: id("type"), "data-key": "type" },
    Object.keys(EXPECTATIONS).map((name) => el("option", { value: name, selected: name === expectation.type }, name)));
  const value = el("input", { id: id("value"), "data-key": "value", value: key ? expectation[key] ?? "" : "" });
  const args = el("input", {
    id: id("arguments"), "data-key": "arguments",
    value: expectation.arguments ? JSON.stringify(expectation.arguments) : "",
  });
  const row = el("div", { class: "grid expectation" },
    el("div", { class: "field" }, el("label", { for: id("type") }, "Expect"), type),
    el("div", { class: "field" }, el("label", { for: id("value") }, "Value"), value),
    el("div", { class: "field" }, el("label", { for: id("arguments") }, "Arguments (JSON, optional)"), args),
    el("div", {}, el("button", { type: "button", class: "secondary", onclick: () => row.remove() }, "Remove expectation")),
  );
  const refresh = () => {
    value.disabled = !EXPECTATIONS[type.value];
    args.closest(".field").hidden = type.value !== "tool_called";
  };
  type.addEventListener("change", refresh);
  refresh();
  return row;
}

function turnFieldset(turn = { user: "", expect: [] }) {
  const index = rowCount++;
  const expectations = el("div", { class: "expectations" }, (turn.expect || []).map(expectationRow));
  const fieldset = el("fieldset", { class: "turn" },
    el("legend", {}, "Caller line"),
    el("div", { class: "field" }, el("label", { for: `turn-${index}` }, "The caller says"),
      el("input", { id: `turn-${index}`, "data-key": "user", value: turn.user, required: true })),
    expectations,
    el("div", { class: "actions" },
      el("button", { type: "button", class: "secondary", onclick: () => expectations.append(expectationRow()) }, "Add an expectation"),
      el("button", { type: "button", class: "secondary", onclick: () => fieldset.remove() }, "Remove this line")),
  );
  return fieldset;
}

function readExpectation(row) {
  const type = row.querySelector('[data-key="type"]').value;
  const expectation = { type };
  const key = EXPECTATIONS[type];
  const value = row.querySelector('[data-key="value"]').value.trim();
  if (key) expectation[key] = key === "value" ? Number(value) : value;
  const args = row.querySelector('[data-key="arguments"]').value.trim();
  if (type === "tool_called" && args) expectation.arguments = parseJson(args, "arguments");
  return expectation;
}

function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`The ${what} are not valid JSON.`);
  }
}

function readCase() {
  const kind = $("#test_kind").value;
  const body = {
    name: $("#test_name").value.trim(),
    kind,
    mocks: $("#test_mocks").value.trim() ? parseJson($("#test_mocks").value, "mocked functions") : {},
    variables: $("#test_variables").value.trim() ? parseJson($("#test_variables").value, "variables") : {},
  };
  if (kind === "scripted") {
    body.turns = [...$("#test-turns").querySelectorAll("fieldset.turn")].map((turn) => ({
      user: turn.querySelector('[data-key="user"]').value,
      expect: [...turn.querySelectorAll(".expectation")].map(readExpectation),
    }));
  } else {
    body.persona = $("#test_persona").value;
    body.goal = $("#test_goal").value;
    body.max_turns = Number($("#test_max_turns").value || 10);
    body.success = $("#test_success").value.split("\n").map((line) => line.trim()).filter(Boolean);
  }
  return body;
}

function showKind() {
  const scripted = $("#test_kind").value === "scripted";
  $("#scripted-fields").hidden = !scripted;
  $("#simulated-fields").hidden = scripted;
}

function editCase(testCase = null) {
  editing = testCase ? testCase.id : null;
  $("#test-form-legend").textContent = testCase ? `Edit ${testCase.name}` : "New test case";
  $("#test_name").value = testCase ? testCase.name : "";
  $("#test_kind").value = testCase ? testCase.kind : "scripted";
  show($("#test-turns"), (testCase && testCase.turns ? testCase.turns : [{ user: "", expect: [] }]).map(turnFieldset));
  $("#test_persona").value = testCase?.persona ?? "";
  $("#test_goal").value = testCase?.goal ?? "";
  $("#test_max_turns").value = testCase?.max_turns ?? 10;
  $("#test_success").value = (testCase?.success ?? []).join("\n");
  $("#test_mocks").value = testCase && Object.keys(testCase.mocks || {}).length ? JSON.stringify(testCase.mocks) : "";
  $("#test_variables").value = testCase && Object.keys(testCase.variables || {}).length ? JSON.stringify(testCase.variables) : "";
  showKind();
}

async function loadCases() {
  const page = await api("GET", `/agents/${agentId}/tests?page_size=100`);
  show($("#test-cases"), table([
    ["Case", (c) => c.name],
    ["Kind", (c) => c.kind],
    ["Lines", (c) => (c.kind === "scripted" ? String(c.turns.length) : `up to ${c.max_turns}`)],
    ["", (c) => el("span", {},
      el("button", { type: "button", class: "secondary", "aria-label": `Edit ${c.name}`, onclick: () => editCase(c) }, "Edit"), " ",
      rowAction("Delete", `Delete ${c.name}`, async () => {
        await api("DELETE", `/agents/${agentId}/tests/${c.id}`);
        say(`Deleted ${c.name}.`);
        await loadCases();
      }, `Delete the test case ${c.name}?`))],
  ], page.items, "No test cases yet: write one below, or sync a YAML suite with voxline test.", "Test cases"));
}

let runsActive = false;

async function loadRuns() {
  const page = await api("GET", `/agents/${agentId}/test-runs?page_size=20`);
  runsActive = page.items.some((run) => ACTIVE.has(run.status));
  show($("#test-runs"), table([
    ["Started", (run) => el("a", { href: `/app/test-runs/${run.id}` }, formatTime(run.created_at))],
    ["Status", (run) => badge(run.status)],
    ["Mode", (run) => run.mode],
    ["Passed", (run) => `${run.passed} of ${run.total}`],
    ["Failed", (run) => String(run.failed)],
    ["Not judged", (run) => String(run.not_judged)],
  ], page.items, "No runs yet: run the tests above.", "Test runs"));
}

$("#test_kind").addEventListener("change", showKind);
$("#add-turn").addEventListener("click", () => $("#test-turns").append(turnFieldset()));
$("#new-test").addEventListener("click", () => editCase(null));
$("#test-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(async () => {
    const body = readCase();
    if (editing) await api("PATCH", `/agents/${agentId}/tests/${editing}`, body);
    else await api("POST", `/agents/${agentId}/tests`, body);
    say(`Saved the test case ${body.name}.`);
    editCase(null);
    await loadCases();
  }, { busy: event.submitter });
});
$("#run-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(async () => {
    const run = await api("POST", `/agents/${agentId}/test-runs`, {
      mode: $("#run_mode").value,
      repeat: Number($("#run_repeat").value || 1),
    });
    say("The tests are running.");
    await loadRuns();
    if (!runsActive) return;
    poll(loadRuns, 2, () => runsActive);
    return run;
  }, { busy: event.submitter });
});

editCase(null);
attempt(loadCases);
attempt(loadRuns);
