// The reports page's version comparison: one agent's versions side by side (calls, answer rate,
// average call, dispositions, latency) over the report's range, e.g. the arms of an A/B split.
import { api } from "./api.js";
import { el, formatDuration, query, show, table } from "./ui.js";

const MAX_VERSIONS = 5;

function percentage(part, whole) {
  return whole ? `${Math.round((100 * part) / whole)}%` : "—";
}

function latency(figures) {
  return figures ? `${Math.round(figures.p50_ms)} / ${Math.round(figures.p95_ms)}` : "—";
}

/** The versions worth comparing: the split's when there is one, else those with calls. */
async function versionsOf(agent, filters) {
  if (agent.traffic_split?.length) return agent.traffic_split.map((entry) => entry.version);
  const summary = await api("GET", `/reports/call-summary${query({ ...filters, group_by: "agent_version" })}`);
  return summary.groups
    .filter((group) => group.key !== null)
    .sort((a, b) => b.calls - a.calls)
    .slice(0, MAX_VERSIONS)
    .map((group) => Number(group.key))
    .sort((a, b) => a - b);
}

/** Fill `container` with the comparison of the versions of the agent `filters.agent_id`. */
export async function compareVersions(container, filters) {
  if (!filters.agent_id) {
    show(container, el("p", { class: "empty" }, "Choose an agent above to compare its versions."));
    return;
  }
  const agent = await api("GET", `/agents/${filters.agent_id}`);
  const numbers = await versionsOf(agent, filters);
  if (!numbers.length) {
    show(container, el("p", { class: "empty" }, "No calls of this agent in the range: nothing to compare yet."));
    return;
  }
  const reports = await Promise.all(numbers.map((number) =>
    api("GET", `/reports/dashboard${query({ ...filters, agent_version: number })}`)));
  const weights = Object.fromEntries((agent.traffic_split || []).map((entry) => [entry.version, entry.weight]));
  const dispositions = [...new Set(reports.flatMap((report) => report.per_disposition.map((row) => row.key || "none")))].sort();
  const rows = [
    ["Share of new calls", (_, number) => (number in weights ? `${weights[number]}%` : "—")],
    ["Calls", (report) => String(report.totals.calls)],
    ["Answer rate", (report) => percentage(report.totals.answered, report.totals.calls)],
    ["Average call", (report) => formatDuration(report.totals.average_duration_seconds)],
    ...dispositions.map((name) => [`Disposition: ${name}`, (report) => {
      const row = report.per_disposition.find((item) => (item.key || "none") === name);
      return row ? `${row.calls} (${percentage(row.calls, report.totals.calls)})` : "0";
    }]),
    ["Turn latency p50 / p95 (ms)", (report) => latency(report.latency[0]?.turn)],
    ["First response p50 / p95 (ms)", (report) => latency(report.latency[0]?.first_response)],
  ];
  show(container, table(
    [["", (row) => row[0]], ...numbers.map((number, index) =>
      [`Version ${number}`, (row) => row[1](reports[index], number)])],
    rows,
    "Nothing to compare.",
    `Versions of ${agent.agent_name} side by side`,
  ));
}
