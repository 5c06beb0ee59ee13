// The provider catalogue the agent form offers: GET /providers (models, voices, and whether this
// workspace or the platform has credentials for each), else the copy rendered into the page.

import { api } from "./api.js";
import { el } from "./ui.js";

const byName = (entries) => Object.fromEntries(entries.map((entry) => [entry.name, entry]));

async function load() {
  try {
    const providers = await api("GET", "/providers");
    return { llm: byName(providers.llm), stt: byName(providers.stt), tts: byName(providers.tts) };
  } catch {
    return JSON.parse(document.getElementById("catalogue")?.textContent || "{}");
  }
}

export const catalogue = await load();

/** What a provider's option says: its name, and why it would not run yet. */
function optionLabel(info) {
  if (info.installed === false) return `${info.label} (not installed)`;
  if (info.configured === false) return `${info.label} (no key yet)`;
  return info.label;
}

/** Fill a <select> with the providers of one kind ("llm", "stt", "tts"); those without
 * credentials are marked, those not installed here cannot be chosen. */
export function fillProviders(select, kind, chosen) {
  select.replaceChildren(
    ...Object.entries(catalogue[kind] || {}).map(([name, info]) =>
      el(
        "option",
        {
          value: name,
          selected: name === chosen,
          disabled: info.installed === false && name !== chosen,
          "data-configured": String(info.configured !== false),
        },
        optionLabel(info),
      ),
    ),
  );
}

/** Fill a <select> (or <datalist>) with a list of values, keeping `chosen` even if unknown. */
export function fillChoices(target, values, chosen) {
  const all = chosen && !values.includes(chosen) ? [chosen, ...values] : values;
  target.replaceChildren(...all.map((value) => el("option", { value, selected: value === chosen }, value)));
}
