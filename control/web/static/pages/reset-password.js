import { api } from "../api.js";
import { $, attempt, formValues, say } from "../ui.js";

const token = new URLSearchParams(location.search).get("token");
if (token) $("#token").value = token;

$("#reset-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(async () => {
    await api("POST", "/auth/reset-password", formValues(event.target));
    say("Your password is changed. Log in with it now.");
    setTimeout(() => location.assign("/app/login"), 1500);
  }, { busy: event.submitter });
});
