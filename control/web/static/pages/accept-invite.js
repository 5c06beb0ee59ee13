import { api, rememberWorkspace } from "../api.js";
import { $, attempt, formValues, say } from "../ui.js";

// The emailed link carries the token in its fragment, which never reaches a server.
const token = new URLSearchParams(location.hash.slice(1)).get("token");
if (token) $("#token").value = token;

$("#accept-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(async () => {
    const accepted = await api("POST", "/auth/accept-invite", formValues(event.target));
    const workspaceId = accepted.workspace_id || (accepted.workspace && accepted.workspace.id);
    if (workspaceId) {
      await api("POST", "/workspaces/switch", { workspace_id: workspaceId });
      rememberWorkspace(workspaceId);
    }
    say("You joined the workspace.");
    location.assign("/app/agents");
  }, { busy: event.submitter });
});
