"""Prometheus metrics of the worker; job subprocesses write them to PROMETHEUS_MULTIPROC_DIR.

The worker's own `/metrics` endpoint (`serve_metrics`) adds them up across processes, and serves
whether or not LiveKit is reachable. Series with known labels (each stage by each provider of the
catalogue) are there from the start, at zero, so dashboards and alerts have something to read.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from functools import partial

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

from runtime.spec import PROVIDERS, AgentSpec, CallReport, normalise_provider
from voxline.common.metrics_http import serve_metrics as serve_metrics_endpoint

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
# Per-turn latency fields of a call report and the stage each one measures.
STAGES = {
    "end_of_utterance_ms": "end_of_utterance",
    "llm_ttft_ms": "llm_ttft",
    "tts_ttfb_ms": "tts_ttfb",
    "end_to_end_ms": "end_to_end",
}
# The provider a stage is labelled with: end of utterance by the STT, end of speech to first
# audio by the LLM (it dominates that figure), the others by their own service.
STAGE_PROVIDER_KIND = {
    "end_of_utterance": "stt",
    "llm_ttft": "llm",
    "tts_ttfb": "tts",
    "end_to_end": "llm",
}
OTHER_PROVIDER = "other"  # keeps the label bounded to the catalogue

active_sessions = Gauge(
    "voxline_active_sessions",
    "Agent sessions running in this worker",
    multiprocess_mode="livesum",
)
stage_latency = Histogram(
    "voxline_turn_latency_seconds",
    "Per-turn latency of each pipeline stage, by the provider of that stage",
    ["stage", "provider"],
    buckets=LATENCY_BUCKETS,
)
tool_calls = Counter("voxline_tool_calls_total", "Tool calls made by agents", ["tool", "outcome"])
calls_finished = Counter(
    "voxline_calls_total", "Calls finished by this worker", ["status", "end_reason"]
)
LOOP_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
event_loop_lag = Histogram(
    "voxline_event_loop_lag_seconds",
    "How late the worker's event loops wake up: time a callback waits behind other work",
    buckets=LOOP_LAG_BUCKETS,
)
turn_predictions_late = Counter(
    "voxline_turn_predictions_late_total",
    "End-of-turn predictions not ready by their deadline (the turn fell back to VAD endpointing)",
)


def provider_label(kind: str, name: str | None) -> str:
    """The catalogue's name of a provider, or `other` (never free text in a label)."""
    normalised = normalise_provider(name or "")
    return normalised if normalised in PROVIDERS[kind] else OTHER_PROVIDER


def stage_providers(agent: AgentSpec | None) -> dict[str, str]:
    """Each stage's provider label for calls of `agent` (`other` when unknown)."""
    names = {
        "stt": agent.stt_provider if agent else None,
        "llm": agent.llm_provider if agent else None,
        "tts": agent.tts_provider if agent else None,
    }
    return {stage: provider_label(kind, names[kind]) for stage, kind in STAGE_PROVIDER_KIND.items()}


def observe_report(report: CallReport, agent: AgentSpec | None = None) -> None:
    """Record a finished call's latencies (by provider), tool calls and outcome."""
    providers = stage_providers(agent)
    for turn in report.latencies:
        for field, stage in STAGES.items():
            value = turn.get(field)
            if isinstance(value, int | float) and value >= 0:
                stage_latency.labels(stage, providers[stage]).observe(value / 1000)
    for entry in report.transcript:
        if entry.get("role") == "tool_result":
            outcome = "error" if entry.get("is_error") else "ok"
            tool_calls.labels(str(entry.get("tool_name", "unknown")), outcome).inc()
    calls_finished.labels(
        report.status.value, report.end_reason.value if report.end_reason else "unknown"
    ).inc()


def _precreated_labels() -> list[dict[str, str]]:
    return [
        {"stage": stage, "provider": provider}
        for stage, kind in STAGE_PROVIDER_KIND.items()
        for provider in (*sorted(PROVIDERS[kind]), OTHER_PROVIDER)
    ]


def _zero_histogram(
    family: Metric, labels: dict[str, str], buckets: tuple[float, ...] = LATENCY_BUCKETS
) -> None:
    for bound in (*buckets, float("inf")):
        family.add_sample(f"{family.name}_bucket", {**labels, "le": floatToGoString(bound)}, 0.0)
    family.add_sample(f"{family.name}_count", labels, 0.0)
    family.add_sample(f"{family.name}_sum", labels, 0.0)


class WorkerCollector(MultiProcessCollector):
    """Every process's samples, plus the known series no call has touched yet, at zero.

    Zeros are added at collection, not written by this process: livekit-agents empties the
    multiprocess directory each time its server starts, which would drop them.
    """

    def collect(self) -> Iterator[Metric]:
        families = {family.name: family for family in super().collect()}
        latency = families.setdefault(
            stage_latency._name,
            Metric(stage_latency._name, stage_latency._documentation, "histogram"),
        )
        seen = {
            (sample.labels.get("stage"), sample.labels.get("provider"))
            for sample in latency.samples
        }
        for labels in _precreated_labels():
            if (labels["stage"], labels["provider"]) not in seen:
                _zero_histogram(latency, labels)
        sessions = families.setdefault(
            "voxline_active_sessions",
            Metric("voxline_active_sessions", active_sessions._documentation, "gauge"),
        )
        if not sessions.samples:
            sessions.add_sample("voxline_active_sessions", {}, 0.0)
        lag = families.setdefault(
            event_loop_lag._name,
            Metric(event_loop_lag._name, event_loop_lag._documentation, "histogram"),
        )
        if not lag.samples:
            _zero_histogram(lag, {}, LOOP_LAG_BUCKETS)
        late_name = turn_predictions_late._name
        late = families.setdefault(
            late_name, Metric(late_name, turn_predictions_late._documentation, "counter")
        )
        if not late.samples:
            late.add_sample(f"{late_name}_total", {}, 0.0)
        return iter(families.values())


class LoopLagMonitor:
    """Measures how late its event loop wakes up, into `voxline_event_loop_lag_seconds`.

    A task sleeps `interval` seconds at a time; whatever it wakes up later than asked is time
    the loop spent on something else (a blocking call, a long callback, a GC pause). One per
    event loop: the worker's own, and each job thread's.
    """

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        #: the largest lag seen in the last few seconds (the worker's load reads it)
        self.recent_max = 0.0
        self.samples = 0
        self._window: list[float] = []
        self._task: asyncio.Task | None = None
        self._observed: asyncio.Event | None = None

    def start(self) -> LoopLagMonitor:
        self._observed = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="voxline-loop-lag")
        return self

    async def next_sample(self) -> None:
        """Wait for the next measurement (tests)."""
        assert self._observed is not None, "start() the monitor first"
        self._observed.clear()
        await self._observed.wait()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        window = max(int(5.0 / self.interval), 1)
        while True:
            asked = loop.time()
            await asyncio.sleep(self.interval)
            lag = max(loop.time() - asked - self.interval, 0.0)
            event_loop_lag.observe(lag)
            self._window = [*self._window[-(window - 1) :], lag]
            self.recent_max = max(self._window)
            self.samples += 1
            assert self._observed is not None
            self._observed.set()


def exposition(directory: str) -> bytes:
    """The text exposition of every process writing to `directory`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(registry=None, path=directory))
    return generate_latest(registry)


async def serve_metrics(
    host: str, port: int, *, token: str | None = None, directory: str | None = None
) -> web.AppRunner:
    """Serve `/metrics` (all job processes added up) until the returned runner is cleaned up.

    Args:
        host: the address to listen on.
        port: the port (9100 by default, as livekit-agents uses).
        token: when set, a scrape must carry it as `Authorization: Bearer <token>`.
        directory: the multiprocess directory (PROMETHEUS_MULTIPROC_DIR when None).
    """
    path = directory or os.environ["PROMETHEUS_MULTIPROC_DIR"]
    runner = await serve_metrics_endpoint(host, port, partial(exposition, path), token=token)
    logger.info("worker metrics on http://%s:%s/metrics", host, port)
    return runner
