import { api } from "../api.js";
import { $, attempt, formValues, say } from "../ui.js";

$("#forgot-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(async () => {
    const answer = await api("POST", "/auth/forgot-password", formValues(event.target));
    say(answer.detail || "If that email has an account, a reset link is on its way.");
  }, { busy: event.submitter });
});
