// After logging in or signing up: remember the workspace and go where the person was headed.

import { rememberWorkspace } from "../api.js";

export function startSession(tokens) {
  rememberWorkspace(tokens.user.current_workspace_id);
  const next = new URLSearchParams(location.search).get("next");
  // Only a path on this site: never an open redirect.
  location.assign(next && next.startsWith("/app/") ? next : "/app/agents");
}
