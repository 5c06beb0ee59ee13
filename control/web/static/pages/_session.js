// After logging in or signing up: remember the workspace and go where the person was headed.

import { rememberWorkspace } from "../api.js";

export function startSession(tokens) {
  rememberWorkspace(tokens.user.current_workspace_id);
  const next = new URLSearchParams(location.search).get("next");
  // Only a path on this site: never an open redirect. When the server sent the browser here,
  // the page's fragment (an emailed link's token) rode along the redirect: it goes back too.
  const fragment = next && !next.includes("#") ? location.hash : "";
  location.assign(next && next.startsWith("/app/") ? next + fragment : "/app/agents");
}
