// The dashboard's one way to call the Voxline API: same-origin fetch with the session cookie.
//
// Cookies are HttpOnly and SameSite=Lax, so another site cannot send them with a write; the
// pages send JSON bodies (or multipart uploads) like any API client. A 401 tries the refresh
// cookie once, then sends the person to the login page.

const WORKSPACE_KEY = "voxline.workspace";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `Request failed (${status})`);
    this.status = status;
    this.code = body && body.code;
    this.errors = (body && body.errors) || [];
  }
}

async function send(method, path, body, headers) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers } };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  return fetch(path, init);
}

let refreshing = null;

async function refreshSession() {
  refreshing ??= send("POST", "/auth/refresh").then((response) => response.ok).finally(() => {
    refreshing = null;
  });
  return refreshing;
}

export const SESSION_ENDED = "Your session has ended; log in again.";

/** To the login page, back here after; it says the session ended (the server sends a visitor
 * who never logged in straight to the login page, so only someone who had a session gets here). */
export function goToLogin() {
  const next = encodeURIComponent(location.pathname + location.search + location.hash);
  location.assign(`/app/login?next=${next}&session=ended`);
}

/** Call the API; resolves to the parsed JSON body (or text), rejects with ApiError. */
export async function api(method, path, body, { headers = {}, raw = false } = {}) {
  let response = await send(method, path, body, headers);
  if (response.status === 401 && !path.startsWith("/auth/")) {
    if (await refreshSession()) {
      response = await send(method, path, body, headers);
    }
    if (response.status === 401) {
      goToLogin();
      throw new ApiError(401, { detail: SESSION_ENDED });
    }
  }
  if (raw) return response;
  const type = response.headers.get("Content-Type") || "";
  const payload = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, typeof payload === "object" ? payload : { detail: payload });
  return payload;
}

/** Upload a FormData with progress (fetch has no upload progress); same error handling. */
export function upload(path, formData, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", path);
    request.withCredentials = true;
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(Math.round((100 * event.loaded) / event.total));
    });
    request.addEventListener("load", () => {
      let payload = {};
      try {
        payload = JSON.parse(request.responseText);
      } catch {
        payload = { detail: request.responseText };
      }
      if (request.status === 401) goToLogin();
      if (request.status >= 200 && request.status < 300) resolve(payload);
      else reject(new ApiError(request.status, payload));
    });
    request.addEventListener("error", () => reject(new ApiError(0, { detail: "The upload failed: network error." })));
    request.send(formData);
  });
}

export function currentWorkspaceId() {
  return localStorage.getItem(WORKSPACE_KEY);
}

export function rememberWorkspace(workspaceId) {
  if (workspaceId) localStorage.setItem(WORKSPACE_KEY, workspaceId);
  else localStorage.removeItem(WORKSPACE_KEY);
}

/** The workspace the API acts in: the remembered one if the user still belongs to it. */
export async function currentWorkspace() {
  const page = await api("GET", "/workspaces?page_size=100");
  const remembered = currentWorkspaceId();
  const workspace = page.items.find((item) => item.id === remembered) || page.items[0] || null;
  return { workspace, workspaces: page.items };
}
