"""Benchmark: how many real-time calls one worker process holds (`voxline capacity`'s code).

Run by hand (no LiveKit server, database or provider keys needed):

    .venv/bin/python tests/bench/bench_capacity.py [--calls 1,10,20,30,40] [--duration 30]

Simulated callers speak in real time through the worker's own session builder and process model
(each call on its own event loop in a thread of this process, as livekit-agents' thread executor
runs them), with Silero VAD and the shared end-of-turn model on real speech and instant stand-ins
for STT, LLM and TTS (`runtime/capacity.py`). It prints one row per step (p50/p95 reply latency,
missed turns, CPU and private memory per call, setup CPU per call) and, last,
`capacity calls_per_core=<x> p95_ms=<y> rss_mb_per_call=<z>`. Nothing is asserted; the figures
depend on what else the machine is doing, so the load average is printed with them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from runtime import capacity  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default=",".join(map(str, capacity.DEFAULT_STEPS)))
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per step")
    parser.add_argument("--wav", type=Path, default=None, help="the callers' speech (16 kHz)")
    args = parser.parse_args()
    steps = [int(calls) for calls in args.calls.split(",") if calls.strip()]
    return capacity.main(steps, args.duration, args.wav)


if __name__ == "__main__":
    sys.exit(main())
