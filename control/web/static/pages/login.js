import { api, SESSION_ENDED } from "../api.js";
import { $, attempt, formValues, say } from "../ui.js";
import { startSession } from "./_session.js";

if (new URLSearchParams(location.search).get("session") === "ended") say(SESSION_ENDED);

$("#login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(async () => startSession(await api("POST", "/auth/login", formValues(event.target))), {
    busy: event.submitter,
  });
});
