// A conversation as a person reads it: who said what, tool calls inline, knowledge sources.

import { el } from "./ui.js";

const SPEAKERS = { user: "Caller", assistant: "Agent" };

function toolText(name, argumentsValue, result) {
  const args = typeof argumentsValue === "string" ? argumentsValue : JSON.stringify(argumentsValue ?? {});
  const shown = result === undefined || result === null ? "" : ` → ${typeof result === "string" ? result : JSON.stringify(result)}`;
  return `${name}(${args})${shown}`;
}

export function toolCallItem(call) {
  return el("li", { class: "turn turn-tool" },
    el("span", { class: "who" }, call.is_error ? "Tool call failed" : "Tool call"),
    toolText(call.name || call.tool_name, call.arguments, call.result));
}

export function sourcesNote(sources) {
  if (!sources || !sources.length) return null;
  const files = [...new Set(sources.map((source) => source.file_name))];
  return el("p", { class: "sources" }, `Sources: ${files.join(", ")}`);
}

/** One message bubble; `speakers` names the two sides (a chat's user is "You"). */
export function messageItem(role, text, { speakers = SPEAKERS, sources } = {}) {
  return el("li", { class: `turn turn-${role}` },
    el("span", { class: "who" }, speakers[role] || role), text, sourcesNote(sources));
}

/** A call's transcript items (`{role, text, tool_name, arguments, result}`) as list items. */
export function transcriptItems(transcript) {
  const items = [];
  for (const turn of transcript || []) {
    if (turn.role === "tool_call") {
      items.push(toolCallItem({ name: turn.tool_name, arguments: turn.arguments }));
    } else if (turn.role === "tool_result") {
      items.push(el("li", { class: "turn turn-tool" }, el("span", { class: "who" }, "Tool result"),
        `${turn.tool_name}: ${typeof turn.result === "string" ? turn.result : JSON.stringify(turn.result)}`));
    } else if (turn.text) {
      items.push(messageItem(turn.role, turn.text));
    }
  }
  return items;
}
