import { api, currentWorkspace } from "../api.js";
import { $, attempt, copyButton, el, formatTime, rowAction, say, show, table } from "../ui.js";

let workspace = null;

async function load() {
  ({ workspace } = await currentWorkspace());
  const keys = await api("GET", `/workspaces/${workspace.id}/api-keys?page_size=100`);
  show($("#keys"), table(
    [
      ["Name", (key) => key.name],
      ["Key", (key) => `${key.prefix}…`],
      ["Role", (key) => key.role],
      ["Created", (key) => formatTime(key.created_at)],
      ["Last used", (key) => formatTime(key.last_used_at)],
      ["", (key) => rowAction("Revoke", `Revoke ${key.name}`, async () => {
        await api("DELETE", `/workspaces/${workspace.id}/api-keys/${key.id}`);
        say(`Revoked ${key.name}.`);
        await load();
      }, `Revoke ${key.name}? Programs using it stop working at once.`)],
    ],
    keys.items,
    "No API keys yet. Create one below to call the API from your own programs.",
    "API keys",
  ));
}

$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(async () => {
    const created = await api("POST", `/workspaces/${workspace.id}/api-keys`, { name: $("#key_name").value, role: $("#key_role").value });
    show($("#new-key"),
      el("p", {}, el("strong", {}, "Copy this key now: it is shown only once.")),
      el("p", { class: "secret", id: "new-key-secret" }, created.key),
      copyButton(created.key, "Copy the key"));
    event.target.reset();
    await load();
  }, { busy: event.submitter });
});

attempt(load);
