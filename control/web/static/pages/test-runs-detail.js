// One test run: its counts, and per case (failed ones first) each attempt's expectation results
// (failed ones first) and transcript with tool calls.
import { api } from "../api.js";
import { $, attempt, badge, el, formatTime, itemId, poll, say, show, table } from "../ui.js";

const runId = itemId();
const ACTIVE = new Set(["queued", "running"]);
const ORDER = { error: 0, failed: 1, not_judged: 2, passed: 3 };
const rank = (item) => ORDER[item.status] ?? 4;
let active = true;

function transcript(entries, number) {
  return el("ol", { class: "transcript", "aria-label": `Transcript of attempt ${number}` }, entries.map((entry) => {
    if (entry.role === "tool_call") {
      const how = entry.mocked ? "mocked" : "called";
      return el("li", { class: "tool" }, `${entry.name}(${JSON.stringify(entry.arguments)}) ${how} → ${entry.result ?? ""}`);
    }
    // voice mode: what the caller said, and what the agent's speech recognition heard
    const heard = entry.heard === undefined ? null : el("span", { class: "muted" }, ` (heard: “${entry.heard}”)`);
    return el("li", { class: entry.role }, el("strong", {}, entry.role === "user" ? "Caller: " : "Agent: "), entry.text, heard);
  }));
}

function attemptSection(result) {
  const expectations = [...result.expectations].sort((a, b) => rank(a) - rank(b));
  const spoken = result.latencies.some((turn) => "first_audio_ms" in turn);
  const key = spoken ? "first_audio_ms" : "llm_ttft_ms";
  const latency = result.latencies.map((turn) => `${turn[key] ?? "—"} ms`).join(", ");
  return el("section", { class: "attempt" },
    el("h4", {}, `Attempt ${result.attempt} `, badge(result.status)),
    result.error ? el("p", { class: "error" }, result.error) : null,
    table([
      ["Turn", (e) => (e.turn === null || e.turn === undefined ? "whole call" : String(e.turn + 1))],
      ["Expectation", (e) => e.type],
      ["Status", (e) => badge(e.status)],
      ["Reason", (e) => e.reason],
    ], expectations, "No expectations.", `Expectations of attempt ${result.attempt}`),
    latency ? el("p", { class: "muted" }, `${spoken ? "First audio" : "First-token latency"} per turn: ${latency}`) : null,
    transcript(result.transcript, result.attempt),
  );
}

async function loadRun() {
  const run = await api("GET", `/test-runs/${runId}`);
  active = ACTIVE.has(run.status);
  show($("#run-status"), badge(run.status));
  $("#agent-link").href = `/app/agents/${run.agent_id}#tests`;
  $("#cancel-run").hidden = !active;
  const facts = [
    ["Mode", run.mode],
    ["Passed", `${run.passed} of ${run.total}`],
    ["Failed", String(run.failed)],
    ["Not judged", String(run.not_judged)],
    ["Errored", String(run.errored)],
    ["Started", formatTime(run.started_at)],
    ["Finished", formatTime(run.finished_at)],
  ];
  show($("#run-facts"), facts.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
  show($("#run-warnings"), [...run.warnings, ...(run.error ? [run.error] : [])].map((text) => el("p", { class: "warning" }, text)));
  const cases = [...run.cases].sort((a, b) => rank(a) - rank(b));
  show($("#run-cases"), cases.map((result) => el("article", { class: "test-case" },
    el("h3", {}, `${result.name} `, badge(result.status || "pending"),
      result.pass_rate === null ? "" : ` ${Math.round(result.pass_rate * 100)}% passed`),
    result.attempts.map(attemptSection),
  )));
}

$("#cancel-run").addEventListener("click", (event) => {
  if (!confirm("Cancel this run?")) return;
  attempt(async () => {
    await api("DELETE", `/test-runs/${runId}`);
    say("The run was cancelled.");
    await loadRun();
  }, { busy: event.currentTarget });
});

poll(() => attempt(loadRun), 2, () => active);
