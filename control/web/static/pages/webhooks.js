import { api } from "../api.js";
import { $, attempt, badge, copyButton, el, formatTime, say, show, table } from "../ui.js";

let pageNumber = 1;

function showSecret(endpoint) {
  $("#secret-hint").textContent = endpoint ? `Signing secret: ${endpoint.secret_hint}${endpoint.secret_readable === false ? " (unreadable: rotate it)" : ""}` : "";
  if (endpoint && endpoint.secret) {
    show($("#new-secret"),
      el("p", {}, el("strong", {}, "Copy the signing secret now: it is shown only once.")),
      el("p", { class: "secret" }, endpoint.secret),
      copyButton(endpoint.secret, "Copy the secret"));
  }
}

async function loadEndpoint() {
  try {
    const endpoint = await api("GET", "/webhook/endpoint");
    $("#url").value = endpoint.url;
    showSecret(endpoint);
  } catch (error) {
    if (error.status !== 404) throw error;
    $("#secret-hint").textContent = "No endpoint yet: enter the URL that should receive call events.";
  }
}

async function loadDeliveries() {
  const page = await api("GET", `/webhook/deliveries?page=${pageNumber}&page_size=25`);
  $("#previous-page").disabled = !page.has_prev;
  $("#next-page").disabled = !page.has_next;
  show($("#deliveries"), table(
    [
      ["Event", (delivery) => delivery.event_type],
      ["Status", (delivery) => badge(delivery.status)],
      ["Attempts", (delivery) => String(delivery.attempts)],
      ["Last response", (delivery) => (delivery.last_status_code ? String(delivery.last_status_code) : delivery.last_error || "—")],
      ["Created", (delivery) => formatTime(delivery.created_at)],
      ["Delivered", (delivery) => formatTime(delivery.delivered_at)],
      ["Call", (delivery) => {
        const callId = delivery.payload && (delivery.payload.call_id || (delivery.payload.data && delivery.payload.data.call_id));
        return callId ? el("a", { href: `/app/calls/${callId}` }, "Open the call") : "—";
      }],
    ],
    page.items,
    "No deliveries yet. Events are sent here once an endpoint is set and calls happen.",
    "Deliveries",
  ));
}

$("#endpoint-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(async () => {
    showSecret(await api("PUT", "/webhook/endpoint", { url: $("#url").value }));
    say("Saved the endpoint.");
  }, { busy: event.submitter });
});
$("#rotate-secret").addEventListener("click", () => attempt(async () => {
  showSecret(await api("POST", "/webhook/endpoint/rotate-secret"));
  say("Rotated: update the secret in your receiver.");
}));
$("#delete-endpoint").addEventListener("click", () => {
  if (!confirm("Remove the endpoint? No more events will be sent.")) return;
  attempt(async () => {
    await api("DELETE", "/webhook/endpoint");
    $("#url").value = "";
    $("#new-secret").replaceChildren();
    $("#secret-hint").textContent = "No endpoint yet: enter the URL that should receive call events.";
    say("Removed the endpoint.");
  });
});
$("#previous-page").addEventListener("click", () => { pageNumber -= 1; attempt(loadDeliveries); });
$("#next-page").addEventListener("click", () => { pageNumber += 1; attempt(loadDeliveries); });

attempt(async () => {
  await loadEndpoint();
  await loadDeliveries();
});
