import { api } from "../api.js";
import { fillProviders } from "../catalogue.js";
import { $, attempt, el, formValues, formatTime, say, show, table } from "../ui.js";

fillProviders($("#LLM_provider"), "llm", "openai");
fillProviders($("#STT_provider"), "stt", "deepgram");
fillProviders($("#TTS_provider"), "tts", "openai");

async function load() {
  const page = await api("GET", "/agents?page_size=100");
  show(
    $("#agents-list"),
    table(
      [
        ["Name", (agent) => el("a", { href: `/app/agents/${agent.id}` }, agent.agent_name)],
        ["Phone number", (agent) => agent.phone_number || "—"],
        ["Language model", (agent) => `${agent.LLM_provider} · ${agent.LLM_model}`],
        ["Voice", (agent) => `${agent.STT_provider} / ${agent.TTS_provider}`],
        ["Updated", (agent) => formatTime(agent.updated_at)],
        ["", (agent) => el("a", { href: `/app/chat?agent=${agent.id}` }, "Chat")],
      ],
      page.items,
      "No agents yet. Create your first agent with the form below.",
    ),
  );
}

$("#create-agent-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(async () => {
    const agent = await api("POST", "/agents", formValues(event.target));
    say(`Created ${agent.agent_name}.`);
    location.assign(`/app/agents/${agent.id}`);
  }, { busy: event.submitter });
});

attempt(load);
