import { api } from "../api.js";
import { $, attempt, formValues } from "../ui.js";
import { startSession } from "./_session.js";

$("#signup-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(async () => startSession(await api("POST", "/auth/signup", formValues(event.target))), {
    busy: event.submitter,
  });
});
