import { api } from "../api.js";
import { $, attempt, el, formValues, loaded, query, rowAction, say, show, table } from "../ui.js";

let agents = [];

async function load() {
  const [numbers, agentPage] = await Promise.all([api("GET", "/phonenumbers?page_size=100"), api("GET", "/agents?page_size=100")]);
  agents = agentPage.items;
  show($("#numbers-list"), table(
    [
      ["Number", (number) => number.phone_number],
      ["Label", (number) => number.label || "—"],
      ["Provider", (number) => `${number.provider} (${number.source})`],
      ["Agent", (number) => (number.agent_id ? el("a", { href: `/app/agents/${number.agent_id}` }, number.agent_name) : "none")],
      ["", (number) => rowAction("Delete", `Delete ${number.phone_number}`, async () => {
        await api("DELETE", `/phonenumbers/delete_sip/${encodeURIComponent(number.phone_number)}`);
        say(`Deleted ${number.phone_number}.`);
        await load();
      }, `Delete ${number.phone_number}? Calls to it will no longer reach an agent.`)],
    ],
    numbers.items,
    "No phone numbers yet. Buy one or register a SIP trunk below, then map it to an agent.",
    "Phone numbers",
  ));
  $("#map_number").replaceChildren(...numbers.items.map((number) => el("option", { value: number.phone_number }, number.phone_number)));
  $("#map_agent").replaceChildren(...agents.map((agent) => el("option", { value: agent.id }, agent.agent_name)));
}

$("#map-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(async () => {
    await api("PUT", "/phonenumbers/map_agent", { phone_number: $("#map_number").value, agent_id: $("#map_agent").value });
    say("Mapped: calls to the number now reach the agent.");
    await load();
  }, { busy: event.submitter });
});

$("#search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const criteria = formValues(event.target);
  attempt(async () => {
    const found = await api("GET", `/phonenumbers/search${query(criteria)}`);
    show($("#search-results"), table(
      [
        ["Number", (number) => number.phone_number],
        ["Where", (number) => [number.locality, number.region].filter(Boolean).join(", ") || number.country_code],
        ["Monthly", (number) => (number.monthly_price ? `${number.monthly_price} ${number.currency || ""}` : "—")],
        ["", (number) => el("button", {
          type: "button", "aria-label": `Buy ${number.phone_number}`,
          onclick: (click) => attempt(async () => {
            await api("POST", "/phonenumbers/purchase", { phone_number: number.phone_number, provider: number.provider, country_code: number.country_code });
            say(`Bought ${number.phone_number}.`);
            await load();
          }, { busy: click.currentTarget }),
        }, "Buy")],
      ],
      found.items,
      "No numbers available with these criteria. Try another area code.",
      "Available numbers",
    ));
  }, { busy: event.submitter });
});

$("#trunk-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const values = formValues(event.target);
  if (values.trunk_provider) values.provider = values.trunk_provider;
  delete values.trunk_provider;
  attempt(async () => {
    await api("POST", "/phonenumbers/sip_trunk", values);
    say(`Registered ${values.phone_number}.`);
    event.target.reset();
    await load();
  }, { busy: event.submitter });
});

attempt(async () => {
  await load();
  loaded();
});
