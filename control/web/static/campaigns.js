// What the campaign pages share: the options form built from `/api/v/options/`, choices, live calls.

import { api } from "./api.js";
import { el, formatDuration, show, table } from "./ui.js";

const LABELS = {
  call_ratio: "Calls per free agent",
  dialer_interval: "Dialer interval (s)",
  max_active_calls: "Max active calls",
  max_number_calls: "Max calls per number",
  min_time_between_calls: "Minutes between calls to a number",
  dupe_days: "Skip duplicates for (days)",
  expire_days: "Prospects expire after (days)",
  earliest_prospect_time: "Call no earlier than",
  latest_prospect_time: "Call no later than",
};

/** Number and time inputs for every option, with the server's ranges and defaults. */
export async function optionFields(container, campaign = null) {
  const options = await api("GET", "/api/v/options/");
  const fields = [];
  for (const [name, range] of Object.entries(options.numeric)) {
    const id = `option-${name}`;
    fields.push(el("div", { class: "field" },
      el("label", { for: id }, LABELS[name] || name),
      el("small", { id: `${id}-hint` }, `${range.min}–${range.max}; ${range.description}`),
      el("input", {
        id, name, type: "number", min: range.min, max: range.max,
        step: range.type === "integer" ? 1 : "any", value: campaign ? campaign[name] : range.default,
        "aria-describedby": `${id}-hint`, "data-option": "number",
      })));
  }
  for (const [name, clock] of Object.entries(options.times)) {
    const id = `option-${name}`;
    fields.push(el("div", { class: "field" },
      el("label", { for: id }, LABELS[name] || name),
      el("small", { id: `${id}-hint` }, clock.description),
      el("input", { id, name, type: "time", value: campaign ? campaign[name] : clock.default, "aria-describedby": `${id}-hint`, "data-option": "time" })));
  }
  show(container, fields);
  return options;
}

export function optionValues(container) {
  const values = {};
  for (const input of container.querySelectorAll("[data-option]")) {
    if (input.value === "") continue;
    values[input.name] = input.dataset.option === "number" ? Number(input.value) : input.value;
  }
  return values;
}

export async function fillAgentsAndNumbers(form, campaign = null) {
  const [agents, numbers] = await Promise.all([api("GET", "/agents?page_size=100"), api("GET", "/phonenumbers?page_size=100")]);
  form.elements.agent_id.replaceChildren(...agents.items.map((agent) =>
    el("option", { value: agent.id, selected: campaign && campaign.agent_id === agent.id }, agent.agent_name)));
  form.elements.agent_phone_number.replaceChildren(...numbers.items.map((number) =>
    el("option", { value: number.phone_number, selected: campaign && campaign.agent_phone_number === number.phone_number }, number.phone_number)));
  return agents.items.length && numbers.items.length;
}

export async function liveCalls(container, slug = null) {
  const page = await api("GET", `/api/v/live/?page_size=100${slug ? `&campaign=${encodeURIComponent(slug)}` : ""}`);
  show(container, table(
    [
      ["Campaign", (call) => (call.campaign ? el("a", { href: `/app/campaign?slug=${encodeURIComponent(call.campaign)}` }, call.campaign) : "—")],
      ["To", (call) => call.to_number],
      ["Status", (call) => call.status],
      ["For", (call) => formatDuration(call.duration_seconds)],
      ["", (call) => el("a", { href: `/app/calls/${call.call_id}` }, "Open the call")],
    ],
    page.items,
    "No calls in progress. Active campaigns with prospects to call show their calls here.",
    "Live calls",
  ));
}
