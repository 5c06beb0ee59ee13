import { api } from "../api.js";
import { transcriptItems } from "../conversation.js";
import { recordingPlayer } from "../player.js";
import { $, attempt, badge, el, formatDuration, formatTime, itemId, show, table } from "../ui.js";

const callId = itemId();
const LATENCY_PARTS = [
  ["end_of_utterance_ms", "End of speech", "#8a93a3"],
  ["llm_ttft_ms", "Model first token", "#1d4ed8"],
  ["tts_ttfb_ms", "Voice first audio", "#b45309"],
];

function facts(call) {
  const rows = [
    ["Status", badge(call.status)],
    ["Type", `${call.call_type} · ${call.call_direction}`],
    ["From", call.from_number || "—"],
    ["To", call.to_number || "—"],
    ["Agent", call.agent_id ? el("a", { href: `/app/agents/${call.agent_id}` }, "Open the agent") : "—"],
    ["Started", formatTime(call.started_at)],
    ["Answered", formatTime(call.answered_at)],
    ["Ended", formatTime(call.ended_at)],
    ["Duration", formatDuration(call.duration_seconds)],
    ["End reason", call.end_reason || "—"],
    ["Batch", call.batch_id ? el("a", { href: `/app/batches/${call.batch_id}` }, "Open the batch") : "—"],
    ["Campaign", call.campaign_id ? el("a", { href: `/app/campaign?slug=${encodeURIComponent(call.campaign || "")}` }, call.campaign || "Open the campaign") : "—"],
    ["Transfers", (call.transfers || []).length
      ? el("ul", {}, call.transfers.map((t) =>
        el("li", {}, `${t.destination_name} (${t.destination || "?"}): ${t.outcome}${t.error ? ` — ${t.error}` : ""}`)))
      : "—"],
    ["Error", call.error || "—"],
  ];
  show($("#facts"), rows.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

function analysis(call) {
  const extracted = Object.entries(call.extracted_data || {});
  const rows = [
    ["Summary", call.summary],
    ["Sentiment", call.sentiment],
    ["Disposition", call.disposition],
    ...extracted.map(([name, value]) => [name, typeof value === "object" ? JSON.stringify(value) : String(value)]),
  ].filter(([, value]) => value !== null && value !== undefined && value !== "");
  show(
    $("#analysis"),
    rows.length
      ? el("dl", { class: "facts" }, rows.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]))
      : el("p", { class: "empty" }, "No analysis yet. It is written after the call ends; set what to extract under the agent's post-call analysis."),
  );
}

function latency(call) {
  const turns = call.latencies || [];
  if (!turns.length) {
    show($("#latency-table"), el("p", { class: "empty" }, "No latency was measured on this call."));
    $("#latency-chart").parentElement.hidden = true;
    return;
  }
  new window.Chart($("#latency-chart"), {
    type: "bar",
    data: {
      labels: turns.map((turn) => `Turn ${turn.turn}`),
      datasets: LATENCY_PARTS.map(([key, label, color]) => ({ label, data: turns.map((turn) => turn[key] ?? 0), backgroundColor: color })),
    },
    options: {
      maintainAspectRatio: false,
      animation: false,
      scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: "ms" } } },
    },
  });
  show($("#latency-table"), table(
    [["Turn", (turn) => String(turn.turn)], ...LATENCY_PARTS.map(([key, label]) => [`${label} (ms)`, (turn) => turn[key] === undefined || turn[key] === null ? "—" : String(Math.round(turn[key]))]),
      ["End to end (ms)", (turn) => turn.end_to_end_ms === undefined || turn.end_to_end_ms === null ? "—" : String(Math.round(turn.end_to_end_ms))]],
    turns, "", "Latency per turn (ms)"));
}

async function webhookEvents() {
  let page;
  try {
    page = await api("GET", `/webhook/deliveries?call_id=${encodeURIComponent(callId)}&page_size=100`);
  } catch (error) {
    if (error.status === 403) {
      show($("#webhook-events"), el("p", { class: "empty" }, "Only a workspace admin can see the webhook deliveries."));
      return;
    }
    throw error;
  }
  show($("#webhook-events"), table(
    [
      ["Event", (delivery) => delivery.event_type],
      ["Status", (delivery) => badge(delivery.status)],
      ["Attempts", (delivery) => String(delivery.attempts)],
      ["Response", (delivery) => delivery.last_status_code ? String(delivery.last_status_code) : (delivery.last_error || "—")],
      ["Sent", (delivery) => formatTime(delivery.delivered_at || delivery.created_at)],
    ],
    page.items,
    "No webhook events were sent for this call. Set a webhook endpoint under Webhooks to receive them.",
  ));
}

attempt(async () => {
  const call = await api("GET", `/calls/${callId}`);
  $("#call-when").textContent = formatTime(call.created_at);
  facts(call);
  analysis(call);
  const transcript = transcriptItems(call.transcript);
  show($("#transcript"), transcript.length ? transcript : [el("li", { class: "empty" }, "No one spoke on this call.")]);
  latency(call);
  if (call.recording_url) await recordingPlayer($("#recording"), call.recording_url);
  else show($("#recording"), el("p", { class: "empty" }, "This call has no recording. Turn on recording in the agent's settings to keep the next calls."));
  await webhookEvents();
});
