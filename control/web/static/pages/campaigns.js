import { api, currentWorkspace } from "../api.js";
import { fillAgentsAndNumbers, liveCalls, optionFields, optionValues } from "../campaigns.js";
import { $, attempt, badge, el, formatTime, formValues, loaded, poll, rowAction, say, show, table } from "../ui.js";

const form = $("#campaign-form");

async function loadCampaigns() {
  const { workspace } = await currentWorkspace();
  const page = await api("GET", `/api/v/campaign/?page_size=100&workspace=${workspace.id}`);
  show($("#campaigns-list"), table(
    [
      ["Name", (campaign) => el("a", { href: `/app/campaign?slug=${encodeURIComponent(campaign.slug)}` }, campaign.name)],
      ["State", (campaign) => badge(campaign.active ? "active" : "paused")],
      ["Calls from", (campaign) => campaign.agent_phone_number],
      ["Locale", (campaign) => campaign.locale_name],
      ["Created", (campaign) => formatTime(campaign.created_at)],
    ],
    page.items,
    "No campaigns yet. Create one below, then upload a prospect list to it.",
    "Campaigns",
  ));
}

async function loadDnc() {
  const page = await api("GET", "/api/v/dnc/?page_size=100");
  show($("#dnc-list"), table(
    [
      ["Number", (entry) => entry.phone_number],
      ["Reason", (entry) => entry.reason || "—"],
      ["Source", (entry) => entry.source],
      ["Added", (entry) => formatTime(entry.created_at)],
      ["", (entry) => rowAction("Remove", `Remove ${entry.phone_number} from the list`, async () => {
        await api("DELETE", `/api/v/dnc/${encodeURIComponent(entry.phone_number)}/`);
        say(`${entry.phone_number} may be called again.`);
        await loadDnc();
      })],
    ],
    page.items,
    "No numbers on the do-not-call list. Numbers added here are never dialled by any campaign.",
    "Do-not-call list",
  ));
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const body = { ...formValues(form), ...optionValues($("#campaign-options")) };
  attempt(async () => {
    const campaign = await api("POST", "/api/v/campaign/", body);
    location.assign(`/app/campaign?slug=${encodeURIComponent(campaign.slug)}`);
  }, { busy: event.submitter });
});

$("#dnc-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(async () => {
    const reason = $("#dnc_reason").value.trim();
    await api("POST", "/api/v/dnc/", { phone_number: $("#dnc_number").value.trim(), ...(reason ? { reason } : {}) });
    event.target.reset();
    say("Added to the do-not-call list.");
    await loadDnc();
  }, { busy: event.submitter });
});

attempt(async () => {
  const options = await optionFields($("#campaign-options"));
  form.elements.locale_name.replaceChildren(...options.locales.map((locale) =>
    el("option", { value: locale.code, selected: locale.code === options.default_locale }, `${locale.name} (${locale.default_timezone})`)));
  if (!(await fillAgentsAndNumbers(form))) say("A campaign needs an agent and a phone number: create them under Agents and Numbers first.");
  loaded();
  await loadCampaigns();
  await loadDnc();
});
poll(() => attempt(() => liveCalls($("#live-calls"))), 3);
