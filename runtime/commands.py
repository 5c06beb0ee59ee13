"""The runtime's `voxline` subcommands: worker, simulate and capacity."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from runtime.config import RuntimeSettings
from runtime.control_client import ControlPlane, ControlPlaneError
from runtime.providers import MissingExtraError, ModelProviderError
from runtime.spec import CallReport, CallStatus

METRICS_DIR = Path(tempfile.gettempdir()) / "voxline-worker-metrics"

logger = logging.getLogger(__name__)

FAST_SPEED = 4.0
LOCAL_LLM_HINT = (
    "The offline LLM (llama.cpp) is built in the background by the first `make run`; "
    "see .voxline/llm-build.log, or run `make setup-local` and try again."
)


LATENCY_FIELDS = ("end_of_utterance_ms", "llm_ttft_ms", "tts_ttfb_ms", "end_to_end_ms")


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank `q` percentile (0 < q <= 1) of `values`, None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def _latency_cells(cells: list[Any]) -> str:
    return " | ".join(
        f"{cell:>8.0f}" if isinstance(cell, int | float) else "       -" for cell in cells
    )


def print_turn_latencies(latencies: list[dict[str, Any]], *, fast: bool = False) -> None:
    """The per-turn latency table (scripts read its `turn  N:` rows), then p50 and p95."""
    if not latencies:
        return
    print("\nPer-turn latency (ms):  end of utterance | LLM first token | TTS first byte | reply")
    for turn in latencies:
        shown = _latency_cells([turn.get(field) for field in LATENCY_FIELDS])
        print(f"  turn {turn.get('turn', '?'):>2}: {shown}")
    for name, q in (("p50", 0.5), ("p95", 0.95)):
        columns = [
            [t[field] for t in latencies if isinstance(t.get(field), int | float)]
            for field in LATENCY_FIELDS
        ]
        print(f"  {name}    : {_latency_cells([percentile(column, q) for column in columns])}")
    if fast:
        print(
            f"  (--fast fed and played the audio {FAST_SPEED:g}x faster than real time: these "
            "figures are not real time; run without --fast to measure)"
        )


async def simulate(
    agent_id: str | None, lines: list[str], fast: bool, *, voicemail_greeting: str | None = None
) -> int:
    """A whole voice call against an agent with no LiveKit server; returns the exit code.

    With `voicemail_greeting`, the call is outbound and an answering machine takes it: the
    greeting, then a beep (the agent's voicemail settings decide what follows).
    """
    from runtime.recording import CONTENT_TYPE, FILE_SUFFIX
    from runtime.simulate import DEFAULT_CALLER_LINES, simulate_call

    settings = RuntimeSettings()
    async with ControlPlane(settings) as control:
        try:
            agent_id = agent_id or await control.demo_agent_id()
            direction = "web" if voicemail_greeting is None else "outbound"
            call = await control.open_call(agent_id, direction=direction)
        except ControlPlaneError as error:
            print(f"error: {error}", file=sys.stderr)
            print(
                "Is the control plane running (`make run` or `voxline serve`) and is "
                "VOXLINE_SERVICE_TOKEN the same on both sides?",
                file=sys.stderr,
            )
            return 2
        print(f"Simulated call {call.call_id} with agent {call.agent.name!r}")
        heartbeat = control.start_heartbeat(call.call_id)
        spec = call.agent
        print(f"  (LLM {spec.llm_provider}, STT {spec.stt_provider}, TTS {spec.tts_provider})\n")
        with tempfile.TemporaryDirectory() as folder:
            # a recording is true to time only at real-time pace (`runtime.recording`)
            recording = None if fast else Path(folder) / f"call{FILE_SUFFIX}"
            try:
                result = await simulate_call(
                    call,
                    tuple(lines) or DEFAULT_CALLER_LINES,
                    speed=FAST_SPEED if fast else 1.0,
                    recording_path=recording,
                    on_line=lambda text: print(f"caller: {text}", flush=True),
                    on_agent_text=lambda text: print(f"agent:  {text}", flush=True),
                    voicemail_greeting=voicemail_greeting,
                )
            except ModelProviderError as error:
                heartbeat.cancel()
                await control.report(
                    CallReport(
                        call_id=call.call_id,
                        status=CallStatus.FAILED,
                        end_reason=error.end_reason,
                        error=str(error),
                    )
                )
                print(f"error: {error}", file=sys.stderr)
                if isinstance(error, MissingExtraError):
                    print(LOCAL_LLM_HINT, file=sys.stderr)
                return 2
            report = result.report
            recording_url = None
            if result.recording_path is not None:
                recording_url = await control.upload_recording(
                    call.call_id, result.recording_path, content_type=CONTENT_TYPE
                )
        heartbeat.cancel()
        await control.report(report)
    print_turn_latencies(report.latencies, fast=fast)
    reason = report.end_reason.value if report.end_reason else "-"
    print(f"\nCall {call.call_id}: {report.status.value} ({reason})")
    if recording_url:
        print(f"Recording: {settings.api_url.rstrip('/')}{recording_url}")
    elif fast:
        print("Recording: none with --fast (recordings are made in real time)")
    print(f"Call log:  {settings.api_url.rstrip('/')}/calls/{call.call_id}")
    print(call.call_id)
    return 0 if report.status == CallStatus.COMPLETED else 1


def worker() -> int:
    # Set before any metric exists: job processes write their samples to files here, and the
    # worker's metrics endpoint (:9100) adds them up across processes.
    metrics_dir = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(METRICS_DIR)))
    metrics_dir.mkdir(parents=True, exist_ok=True)
    from runtime.worker import run_worker

    try:
        asyncio.run(run_worker())
    except KeyboardInterrupt:
        pass
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    return worker()


def cmd_simulate(args: argparse.Namespace) -> int:
    return asyncio.run(
        simulate(args.agent, args.line or [], args.fast, voicemail_greeting=args.voicemail_greeting)
    )


def cmd_capacity(args: argparse.Namespace) -> int:
    from runtime.capacity import main

    return main(args.calls, args.duration, args.wav)


def _call_steps(text: str) -> list[int]:
    try:
        steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of call counts: {text!r}") from None
    if not steps or min(steps) < 1:
        raise argparse.ArgumentTypeError("call counts are whole numbers of at least 1")
    return steps


def add_commands(commands: argparse._SubParsersAction) -> None:
    """The runtime's subcommands: worker, simulate, capacity."""
    worker = commands.add_parser("worker", help="run the LiveKit agent worker")
    worker.set_defaults(handler=cmd_worker)

    simulate = commands.add_parser(
        "simulate", help="an offline voice call against an agent (no LiveKit server needed)"
    )
    simulate.add_argument("--agent", help="agent id (default: the demo agent)")
    simulate.add_argument(
        "--line", action="append", help="what the caller says; repeat for several turns"
    )
    simulate.add_argument("--fast", action="store_true", help="feed audio faster than real time")
    simulate.add_argument(
        "--voicemail-greeting",
        metavar="TEXT",
        help="an answering machine picks up an outbound call: says TEXT, then beeps",
    )
    simulate.set_defaults(handler=cmd_simulate)

    capacity = commands.add_parser(
        "capacity", help="measure how many real-time calls this machine holds"
    )
    capacity.add_argument(
        "--calls",
        type=_call_steps,
        default=[1, 10, 20, 30, 40],
        help="simulated calls at once, per step (comma-separated; default 1,10,20,30,40)",
    )
    capacity.add_argument(
        "--duration", type=float, default=30.0, help="seconds each step runs (default 30)"
    )
    capacity.add_argument("--wav", type=Path, help="the caller's speech (16-bit mono WAV)")
    capacity.set_defaults(handler=cmd_capacity)
