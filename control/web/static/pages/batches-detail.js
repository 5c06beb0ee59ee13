import { api } from "../api.js";
import { $, attempt, badge, el, formatTime, itemId, poll, query, say, show, table } from "../ui.js";

const batchId = itemId();
const FINISHED = new Set(["completed", "cancelled"]);
let status = null;

function breakdown(title, counts, empty) {
  const rows = Object.entries(counts || {}).filter(([, count]) => count > 0).map(([name, count]) => ({ name, count }));
  return table([["", (row) => row.name], ["Numbers", (row) => String(row.count)]], rows, empty, title);
}

async function loadBatch() {
  const batch = await api("GET", `/batch/${batchId}`);
  status = batch.status;
  $("#batch-name").textContent = batch.name;
  show($("#batch-status"), badge(batch.status));
  $("#percent").textContent = `${Math.round(batch.percent_done)}% done`;
  $("#batch-progress").value = batch.percent_done;
  $("#pause").hidden = !["running", "scheduled"].includes(batch.status);
  $("#resume").hidden = batch.status !== "paused";
  $("#cancel").hidden = FINISHED.has(batch.status);
  $("#batch-calls").href = `/app/calls?batch_id=${batch.id}`;
  show($("#counts"), breakdown("Numbers by status", batch.counts, "No numbers in this batch."));
  show($("#outcomes"), breakdown("Outcomes", batch.outcomes, "No outcomes yet: they appear as calls end."));
  const schedule = [
    ["Call from", batch.agent_phone_number],
    ["Pace", `${batch.calls_per_minute} calls a minute`],
    ["Attempts", `up to ${batch.max_attempts}, ${batch.retry_delay_minutes} minutes apart`],
    ["Calling window", batch.earliest_time || batch.latest_time ? `${batch.earliest_time || "any time"} – ${batch.latest_time || "any time"} (${batch.timezone})` : `any time (${batch.timezone})`],
    ["Starts", formatTime(batch.scheduled_time || batch.created_at)],
    ["Finished", formatTime(batch.finished_at)],
    ["Rejected rows", String(batch.rejected_count)],
  ];
  show($("#schedule"), schedule.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

async function loadItems() {
  const page = await api("GET", `/batch/${batchId}/items${query({ page_size: 100, status: $("#item-status").value })}`);
  show($("#items"), table(
    [
      ["Line", (item) => String(item.line)],
      ["Number", (item) => item.phone_number],
      ["Status", (item) => badge(item.status)],
      ["Attempts", (item) => String(item.attempts)],
      ["Outcome", (item) => item.outcome || item.error || "—"],
      ["Call", (item) => item.call_id ? el("a", { href: `/app/calls/${item.call_id}` }, "Open the call") : "—"],
    ],
    page.items,
    "No numbers with this status.",
    "Numbers of the batch",
  ));
}

async function refresh() {
  await attempt(async () => {
    await loadBatch();
    await loadItems();
  });
}

async function act(method, body, message) {
  await attempt(async () => {
    await api(method, `/batch/${batchId}`, body);
    say(message);
    await refresh();
  });
}

$("#pause").addEventListener("click", () => act("PATCH", { action: "pause" }, "Paused: no new calls start until you resume."));
$("#resume").addEventListener("click", () => act("PATCH", { action: "resume" }, "Resumed."));
$("#cancel").addEventListener("click", () => {
  if (confirm("Cancel this batch? Numbers not yet called will not be called.")) act("DELETE", undefined, "Cancelled.");
});
$("#item-status").addEventListener("change", () => attempt(loadItems));

// Live progress: poll while the batch can still change.
poll(refresh, 2, () => !FINISHED.has(status));
