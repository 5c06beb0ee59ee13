import { api } from "../api.js";
import { $, attempt, el, formatDuration, query, show, table } from "../ui.js";
import { compareVersions } from "../version-compare.js";

const form = $("#range-form");
const charts = {};
const COLORS = ["#1d4ed8", "#b45309", "#166534", "#a4161a", "#6b21a8", "#0e7490", "#4a5160", "#be185d"];

/** The UTC instant of midnight starting `day` (YYYY-MM-DD) in the IANA time zone `zone`. */
function midnight(day, zone) {
  const [year, month, date] = day.split("-").map(Number);
  const guess = Date.UTC(year, month - 1, date);
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(guess)).map((part) => [part.type, part.value]));
  const wall = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second));
  return new Date(guess - (wall - guess));
}

function addDays(day, days) {
  const date = new Date(`${day}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + days);
  return date.toISOString().slice(0, 10);
}

/** Today's date (YYYY-MM-DD) in the IANA time zone `zone`; the browser's when `zone` is unknown. */
function todayIn(zone) {
  const format = (timeZone) => new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date());
  try {
    return format(zone);
  } catch {
    return format(undefined);
  }
}

// The last 30 days up to today in the report's time zone, until the person picks dates.
let datesPicked = false;
function defaultDates() {
  if (datesPicked) return;
  const today = todayIn(form.elements.timezone.value.trim() || "UTC");
  form.elements.from.value = addDays(today, -29);
  form.elements.until.value = today;
}

function draw(name, config) {
  charts[name]?.destroy();
  charts[name] = new window.Chart($(`#${name}-chart`), {
    ...config,
    options: { maintainAspectRatio: false, animation: false, ...config.options },
  });
}

function render(report) {
  const totals = report.totals;
  const answerRate = totals.calls ? Math.round((100 * totals.answered) / totals.calls) : 0;
  show($("#totals"), [
    ["Calls", String(totals.calls)],
    ["Answered", `${totals.answered} (${answerRate}%)`],
    ["Talk time", formatDuration(totals.total_duration_seconds)],
    ["Average call", formatDuration(totals.average_duration_seconds)],
    ["Active now", `${report.active_calls.workspace.active}${report.active_calls.workspace.capacity ? ` of ${report.active_calls.workspace.capacity}` : ""}`],
  ].flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));

  const days = report.per_day;
  draw("per-day", {
    type: "bar",
    data: { labels: days.map((day) => day.key), datasets: [
      { label: "Calls", data: days.map((day) => day.calls), backgroundColor: COLORS[0] },
      { label: "Answered", data: days.map((day) => day.answered), backgroundColor: COLORS[2] },
    ] },
    options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
  draw("answer-rate", {
    type: "line",
    data: { labels: days.map((day) => day.key), datasets: [
      { label: "Answered (%)", data: days.map((day) => (day.calls ? (100 * day.answered) / day.calls : null)), borderColor: COLORS[0], spanGaps: true },
    ] },
    options: { scales: { y: { min: 0, max: 100 } } },
  });
  const dispositions = report.per_disposition;
  draw("dispositions", {
    type: "doughnut",
    data: { labels: dispositions.map((row) => row.key || "none"), datasets: [
      { data: dispositions.map((row) => row.calls), backgroundColor: dispositions.map((_, index) => COLORS[index % COLORS.length]) },
    ] },
  });
  const latency = report.latency;
  draw("latency", {
    type: "bar",
    data: { labels: latency.map((row) => row.agent_name || "Unknown agent"), datasets: [
      { label: "Turn p50 (ms)", data: latency.map((row) => row.turn?.p50_ms ?? null), backgroundColor: COLORS[0] },
      { label: "Turn p95 (ms)", data: latency.map((row) => row.turn?.p95_ms ?? null), backgroundColor: COLORS[1] },
      { label: "First response p50 (ms)", data: latency.map((row) => row.first_response?.p50_ms ?? null), backgroundColor: COLORS[2] },
    ] },
  });

  const noCalls = "No calls in this range. Widen the range, or make some calls first.";
  show($("#tables"),
    table([["Day", (row) => row.key], ["Calls", (row) => String(row.calls)], ["Answered", (row) => String(row.answered)]],
      days.filter((row) => row.calls > 0), noCalls, "Calls per day"),
    table([["Disposition", (row) => row.key || "none"], ["Calls", (row) => String(row.calls)]], dispositions, "No dispositions yet: the post-call analysis sets them.", "Dispositions"),
    table([["Agent", (row) => row.agent_name || "—"], ["Calls", (row) => String(row.calls)], ["Answered", (row) => String(row.answered)]], report.per_agent, noCalls, "Calls per agent"),
    table([
      ["Agent", (row) => row.agent_name || "—"],
      ["Turn p50 / p95 (ms)", (row) => (row.turn ? `${Math.round(row.turn.p50_ms)} / ${Math.round(row.turn.p95_ms)}` : "—")],
      ["First response p50 / p95 (ms)", (row) => (row.first_response ? `${Math.round(row.first_response.p50_ms)} / ${Math.round(row.first_response.p95_ms)}` : "—")],
    ], latency, "No latency measured in this range.", "Latency per agent"),
  );
}

async function load() {
  const zone = form.elements.timezone.value.trim() || "UTC";
  const filters = {
    start_datetime: midnight(form.elements.from.value, zone).toISOString(),
    end_datetime: midnight(addDays(form.elements.until.value, 1), zone).toISOString(),
    timezone: zone,
    agent_id: form.elements.agent_id.value,
  };
  render(await api("GET", `/reports/dashboard${query(filters)}`));
  await compareVersions($("#versions"), filters);
}

function defaults() {
  form.elements.timezone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  defaultDates();
  const zones = Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : [];
  $("#time-zones").replaceChildren(...["UTC", ...zones].map((zone) => el("option", { value: zone })));
}

for (const name of ["from", "until"]) form.elements[name].addEventListener("input", () => { datesPicked = true; });
form.elements.timezone.addEventListener("input", defaultDates);

form.addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(load, { busy: event.submitter });
});

defaults();
attempt(async () => {
  const agents = (await api("GET", "/agents?page_size=100")).items;
  form.elements.agent_id.append(...agents.map((agent) => el("option", { value: agent.id }, agent.agent_name)));
  // the agent page's "compare the versions" link names its agent
  const named = new URLSearchParams(location.search).get("agent_id");
  if (named && agents.some((agent) => agent.id === named)) form.elements.agent_id.value = named;
  await load();
});
