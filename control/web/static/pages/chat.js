import { api } from "../api.js";
import { messageItem, toolCallItem } from "../conversation.js";
import { $, attempt, el, loaded, say } from "../ui.js";
import { startVoiceCall } from "../voice.js";

const CHAT_SPEAKERS = { user: "You", assistant: "Agent" };
let sessionId = null;
let agents = [];

function newConversation() {
  sessionId = null;
  $("#conversation").replaceChildren();
  $("#chat-empty").hidden = false;
}

function selectedAgent() {
  return agents.find((agent) => agent.id === $("#agent").value);
}

function showVoiceButton() {
  const agent = selectedAgent();
  $("#voice-call").hidden = !(agent && agent.allow_web_calls && agent.web_call_public_key);
}

async function loadAgents() {
  agents = (await api("GET", "/agents?page_size=100")).items;
  const wanted = new URLSearchParams(location.search).get("agent");
  $("#agent").replaceChildren(...agents.map((agent) =>
    el("option", { value: agent.id, selected: agent.id === wanted }, agent.agent_name)));
  if (!agents.length) {
    $("#chat-empty").replaceChildren("No agents yet. ", el("a", { href: "/app/agents" }, "Create an agent"), " first, then talk to it here.");
    $("#chat-form").hidden = true;
  }
  showVoiceButton();
}

$("#agent").addEventListener("change", () => {
  newConversation();
  showVoiceButton();
});
$("#new-chat").addEventListener("click", newConversation);
$("#voice-call").addEventListener("click", () => attempt(() => startVoiceCall(selectedAgent(), $("#voice-state"), $("#conversation"))));

$("#chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("#message");
  const message = input.value.trim();
  if (!message) return;
  attempt(async () => {
    $("#chat-empty").hidden = true;
    $("#conversation").append(messageItem("user", message, { speakers: CHAT_SPEAKERS }));
    input.value = "";
    say("The agent is answering…");
    const answer = await api("POST", "/chats", { agent_id: $("#agent").value, message, session_id: sessionId });
    sessionId = answer.session_id;
    for (const call of answer.tool_calls || []) $("#conversation").append(toolCallItem(call));
    $("#conversation").append(messageItem("assistant", answer.reply, { speakers: CHAT_SPEAKERS, sources: answer.sources }));
    say("");
    input.focus();
  }, { busy: event.submitter });
});

attempt(async () => {
  await loadAgents();
  loaded();
});
