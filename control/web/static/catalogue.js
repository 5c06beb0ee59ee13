// The runtime's provider catalogue, rendered into the page by the server (runtime.spec.PROVIDERS).

import { el } from "./ui.js";

export const catalogue = JSON.parse(document.getElementById("catalogue").textContent || "{}");

/** Fill a <select> with the providers of one kind ("llm", "stt", "tts"). */
export function fillProviders(select, kind, chosen) {
  select.replaceChildren(
    ...Object.entries(catalogue[kind] || {}).map(([name, info]) =>
      el("option", { value: name, selected: name === chosen }, info.label),
    ),
  );
}

/** Fill a <select> (or <datalist>) with a list of values, keeping `chosen` even if unknown. */
export function fillChoices(target, values, chosen) {
  const all = chosen && !values.includes(chosen) ? [chosen, ...values] : values;
  target.replaceChildren(...all.map((value) => el("option", { value, selected: value === chosen }, value)));
}
