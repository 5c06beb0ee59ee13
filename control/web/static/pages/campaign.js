import { api, upload } from "../api.js";
import { fillAgentsAndNumbers, liveCalls, optionFields, optionValues } from "../campaigns.js";
import { $, attempt, badge, el, formatTime, loaded, poll, say, show, table } from "../ui.js";

const slug = new URLSearchParams(location.search).get("slug") || "";
const path = `/api/v/campaign/${encodeURIComponent(slug)}/`;
const form = $("#settings-form");
let uploadsPending = false;

function dispositionsText(dispositions) {
  return dispositions.map((item) => [`${item.name}${item.description ? `: ${item.description}` : ""}`, item.callback ? "[callback]" : "", item.dnc ? "[dnc]" : ""].filter(Boolean).join(" ")).join("; ");
}

function parseDispositions(text) {
  return text.split(";").map((part) => part.trim()).filter(Boolean).map((part) => {
    const callback = part.includes("[callback]");
    const dnc = part.includes("[dnc]");
    const clean = part.replace("[callback]", "").replace("[dnc]", "").trim();
    const at = clean.indexOf(":");
    return at < 0
      ? { name: clean, description: "", callback, dnc }
      : { name: clean.slice(0, at).trim(), description: clean.slice(at + 1).trim(), callback, dnc };
  });
}

function showUploads(campaign) {
  uploadsPending = campaign.uploads.some((item) => ["pending", "processing"].includes(item.status));
  show($("#uploads"), table(
    [
      ["List", (item) => item.list_name],
      ["Status", (item) => el("span", {}, badge(item.status), item.error ? ` ${item.error}` : "")],
      ["Rows", (item) => String(item.total_rows)],
      ["Added", (item) => String(item.added_count)],
      ["Rejected", (item) => (item.rejected_count ? el("button", { type: "button", class: "secondary", onclick: () => attempt(() => showRejects(item.uuid)) }, `${item.rejected_count}: show why`) : "0")],
      ["Priority", (item) => String(item.priority)],
      ["", (item) => (item.status === "failed" ? el("button", { type: "button", onclick: () => attempt(async () => { await api("POST", `/api/v/upload/${item.uuid}/retry/`); await refresh(); }) }, "Retry") : null)],
    ],
    campaign.uploads,
    "No prospect lists yet. Upload a CSV of phone numbers below.",
    "Prospect lists",
  ));
}

async function showRejects(uploadId) {
  const detail = await api("GET", `/api/v/upload/${uploadId}/`);
  show($("#upload-rejects"), table([["Line", (row) => String(row.line)], ["Why it was rejected", (row) => row.reason]], detail.rejects, "No rejected rows.", `Rejected rows of ${detail.list_name}`));
}

async function refresh() {
  const [campaign, status] = await Promise.all([api("GET", path), api("GET", `${path}status/`)]);
  $("#campaign-name").textContent = campaign.name;
  document.title = `${campaign.name} · Voxline`;
  show($("#campaign-status"), [
    ["State", badge(status.active ? "active" : "paused")],
    ["Prospects", String(status.total_prospects)],
    [`Calls today (${status.timezone})`, String(status.calls_today)],
    ["Answered today", String(status.answered_today)],
    ["In progress", String(status.active_now)],
    ["As of", formatTime(status.as_of)],
  ].flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
  const counts = Object.entries(status.prospects).filter(([, count]) => count > 0).map(([name, count]) => ({ name, count }));
  show($("#prospect-counts"), table([["Prospect status", (row) => row.name], ["Prospects", (row) => String(row.count)]], counts, "No prospects yet.", "Prospects by status"));
  showUploads(campaign);
  await liveCalls($("#live-calls"), slug);
  return campaign;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const body = {
    name: form.elements.name.value,
    agent_id: form.elements.agent_id.value,
    agent_phone_number: form.elements.agent_phone_number.value,
    active: form.elements.active.checked,
    public_status: form.elements.public_status.checked,
    dispositions: parseDispositions(form.elements.dispositions.value),
    ...optionValues($("#campaign-options")),
  };
  attempt(async () => {
    await api("PATCH", path, body);
    say("Saved.");
    await refresh();
  }, { busy: event.submitter });
});

$("#delete-campaign").addEventListener("click", () => {
  if (!confirm("Delete this campaign and its prospect lists?")) return;
  attempt(async () => {
    await api("DELETE", path);
    location.assign("/app/campaigns");
  });
});

$("#prospect-upload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const data = new FormData();
  data.append("list_name", $("#list_name").value);
  if ($("#priority").value) data.append("priority", $("#priority").value);
  data.append("file", $("#prospect-file").files[0]);
  const progress = $("#prospect-upload-progress");
  attempt(async () => {
    await upload(`/api/v/upload/${encodeURIComponent(slug)}/`, data, (percent) => { progress.value = percent; });
    progress.value = 100;
    say("Uploaded; the list is being read.");
    event.target.reset();
    uploadsPending = true;
    poll(() => attempt(refresh), 1.5, () => uploadsPending);
  }, { busy: event.submitter });
});

attempt(async () => {
  const campaign = await refresh();
  form.elements.name.value = campaign.name;
  form.elements.active.checked = campaign.active;
  form.elements.public_status.checked = campaign.public_status;
  form.elements.dispositions.value = dispositionsText(campaign.dispositions);
  await fillAgentsAndNumbers(form, campaign);
  await optionFields($("#campaign-options"), campaign);
  loaded();
});
poll(() => attempt(() => liveCalls($("#live-calls"), slug)), 3);
