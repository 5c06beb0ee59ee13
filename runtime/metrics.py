"""Prometheus metrics of the worker; job subprocesses write them to PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from runtime.spec import CallReport

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
# Per-turn latency fields of a call report and the stage each one measures.
STAGES = {
    "end_of_utterance_ms": "end_of_utterance",
    "llm_ttft_ms": "llm_ttft",
    "tts_ttfb_ms": "tts_ttfb",
    "end_to_end_ms": "end_to_end",
}

active_sessions = Gauge(
    "voxline_active_sessions",
    "Agent sessions running in this worker",
    multiprocess_mode="livesum",
)
stage_latency = Histogram(
    "voxline_turn_latency_seconds",
    "Per-turn latency of each pipeline stage",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
tool_calls = Counter("voxline_tool_calls_total", "Tool calls made by agents", ["tool", "outcome"])
calls_finished = Counter(
    "voxline_calls_total", "Calls finished by this worker", ["status", "end_reason"]
)


def observe_report(report: CallReport) -> None:
    """Record a finished call's latencies, tool calls and outcome."""
    for turn in report.latencies:
        for field, stage in STAGES.items():
            value = turn.get(field)
            if isinstance(value, int | float) and value >= 0:
                stage_latency.labels(stage).observe(value / 1000)
    for entry in report.transcript:
        if entry.get("role") == "tool_result":
            outcome = "error" if entry.get("is_error") else "ok"
            tool_calls.labels(str(entry.get("tool_name", "unknown")), outcome).inc()
    calls_finished.labels(
        report.status.value, report.end_reason.value if report.end_reason else "unknown"
    ).inc()
