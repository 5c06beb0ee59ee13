// What every signed-in page shares: the workspace switcher and the logout button.

import { api, currentWorkspace, rememberWorkspace } from "./api.js";
import { $, attempt, el, say } from "./ui.js";

async function fillSwitcher() {
  const switcher = $("#workspace-switcher");
  if (!switcher) return;
  const { workspace, workspaces } = await currentWorkspace();
  if (workspace) rememberWorkspace(workspace.id);
  switcher.replaceChildren(
    ...workspaces.map((item) => el("option", { value: item.id, selected: workspace && item.id === workspace.id }, item.name)),
  );
  switcher.addEventListener("change", () =>
    attempt(async () => {
      await api("POST", "/workspaces/switch", { workspace_id: switcher.value });
      rememberWorkspace(switcher.value);
      say("Switched workspace.");
      location.reload();
    }),
  );
}

$("#logout")?.addEventListener("click", () =>
  attempt(async () => {
    await api("POST", "/auth/logout");
    rememberWorkspace(null);
    location.assign("/app/login");
  }),
);

attempt(fillSwitcher);
