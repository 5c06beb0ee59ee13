import { api } from "../api.js";
import { $, attempt, formValues, say } from "../ui.js";

// The emailed link carries the token in its fragment, which never reaches a server.
const token = new URLSearchParams(location.hash.slice(1)).get("token");
if (token) $("#token").value = token;

$("#reset-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(async () => {
    await api("POST", "/auth/reset-password", formValues(event.target));
    say("Your password is changed. Log in with it now.");
    setTimeout(() => location.assign("/app/login"), 1500);
  }, { busy: event.submitter });
});
