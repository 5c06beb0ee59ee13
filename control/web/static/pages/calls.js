import { api } from "../api.js";
import { $, attempt, badge, el, formatDuration, formatTime, query, show, table } from "../ui.js";

const form = $("#filters");
const FILTERS = ["call_type", "call_direction", "agent_id", "disposition", "start_datetime", "end_datetime", "batch_id"];
let pageNumber = 1;

function filters() {
  const values = {};
  for (const name of FILTERS) {
    const value = form.elements[name].value.trim();
    if (!value) continue;
    // datetime-local is the browser's local time; the API takes ISO 8601 with an offset
    values[name] = name.endsWith("_datetime") ? new Date(value).toISOString() : value;
  }
  return values;
}

async function load() {
  const page = await api("GET", `/calls${query({ ...filters(), page: pageNumber, page_size: 25 })}`);
  $("#total").textContent = `(${page.total})`;
  $("#previous-page").disabled = !page.has_prev;
  $("#next-page").disabled = !page.has_next;
  $("#export").href = `/calls/export${query(filters())}`;
  show(
    $("#calls-list"),
    table(
      [
        ["When", (call) => el("a", { href: `/app/calls/${call.id}` }, formatTime(call.created_at))],
        ["Type", (call) => `${call.call_type} · ${call.call_direction}`],
        ["From", (call) => call.from_number || "—"],
        ["To", (call) => call.to_number || "—"],
        ["Status", (call) => badge(call.status)],
        ["Duration", (call) => formatDuration(call.duration_seconds)],
        ["Disposition", (call) => call.disposition || "—"],
      ],
      page.items,
      Object.keys(filters()).length
        ? "No calls match these filters. Clear some of them to see more."
        : "No calls yet. Chat with an agent, start a batch, or call one of your numbers, and the calls will appear here.",
      "Calls",
    ),
  );
}

async function loadAgents() {
  const agents = (await api("GET", "/agents?page_size=100")).items;
  const wanted = new URLSearchParams(location.search).get("agent_id");
  form.elements.agent_id.append(...agents.map((agent) =>
    el("option", { value: agent.id, selected: agent.id === wanted }, agent.agent_name)));
}

const batch = new URLSearchParams(location.search).get("batch_id");
if (batch) form.elements.batch_id.value = batch;

form.addEventListener("submit", (event) => {
  event.preventDefault();
  pageNumber = 1;
  attempt(load, { busy: event.submitter });
});
$("#previous-page").addEventListener("click", () => { pageNumber -= 1; attempt(load); });
$("#next-page").addEventListener("click", () => { pageNumber += 1; attempt(load); });

attempt(async () => {
  await loadAgents();
  await load();
});
