import { api, upload } from "../api.js";
import { $, attempt, badge, el, formatTime, loaded, say, show, table } from "../ui.js";

const form = $("#batch-form");

async function load() {
  const page = await api("GET", "/batch?page_size=100");
  show($("#batches-list"), table(
    [
      ["Name", (batch) => el("a", { href: `/app/batches/${batch.id}` }, batch.name)],
      ["Status", (batch) => badge(batch.status)],
      ["Numbers", (batch) => String(batch.total_items)],
      ["Rejected rows", (batch) => String(batch.rejected_count)],
      ["From", (batch) => batch.agent_phone_number],
      ["Created", (batch) => formatTime(batch.created_at)],
    ],
    page.items,
    "No batches yet. Upload a CSV of phone numbers below to call them all with an agent.",
    "Batches",
  ));
}

async function loadChoices() {
  const [agents, numbers] = await Promise.all([api("GET", "/agents?page_size=100"), api("GET", "/phonenumbers?page_size=100")]);
  form.elements.agent_id.replaceChildren(...agents.items.map((agent) => el("option", { value: agent.id }, agent.agent_name)));
  form.elements.agent_phone_number.replaceChildren(...numbers.items.map((number) =>
    el("option", { value: number.phone_number }, number.label ? `${number.phone_number} (${number.label})` : number.phone_number)));
  if (!agents.items.length || !numbers.items.length) {
    say("To upload a batch you need an agent and a phone number: create them under Agents and Numbers first.");
  }
}

function uploadResult(result) {
  const rejected = result.rejected || [];
  show($("#upload-result"),
    el("p", {}, `Accepted ${result.accepted} numbers; rejected ${rejected.length} rows. `,
      el("a", { href: `/app/batches/${result.id}` }, "Watch the batch's progress")),
    rejected.length ? table([["Line", (row) => String(row.line)], ["Why it was rejected", (row) => row.reason]], rejected, "", "Rejected rows") : null);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = new FormData();
  for (const field of form.elements) {
    if (!field.name || field.type === "submit") continue;
    if (field.type === "file") {
      if (field.files[0]) data.append(field.name, field.files[0]);
    } else if (field.value.trim() !== "") {
      data.append(field.name, field.type === "datetime-local" ? new Date(field.value).toISOString() : field.value.trim());
    }
  }
  const progress = $("#batch-upload-progress");
  attempt(async () => {
    const result = await upload("/batch/upload", data, (percent) => { progress.value = percent; });
    progress.value = 100;
    say(`Created the batch ${result.name}.`);
    uploadResult(result);
    await load();
  }, { busy: event.submitter });
});

attempt(async () => {
  await loadChoices();
  loaded();
  await load();
});
