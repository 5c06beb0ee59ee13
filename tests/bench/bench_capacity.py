"""Benchmark: how many real-time calls one worker process holds (`voxline capacity`'s code).

Run by hand (no LiveKit server, database or provider keys needed):

    .venv/bin/python tests/bench/bench_capacity.py [--calls 1,10,20,30,40] [--duration 30]

Simulated callers speak in real time through the worker's own session builder and process model
(each call on its own event loop in a thread of this process, as livekit-agents' thread executor
runs them), with Silero VAD and the shared end-of-turn model on real speech and instant stand-ins
for STT, LLM and TTS (`runtime/capacity.py`). It prints one row per step (p50/p95 reply latency,
missed turns, CPU and private memory per call, setup CPU per call) and, last,
`capacity calls_per_core=<x> p95_ms=<y> rss_mb_per_call=<z>`. Nothing is asserted; the figures
depend on what else the machine is doing, so the load average is printed with them. A step in
which no turn completed (too short for one) measured nothing: the bench says so and exits 1
instead of printing its summary.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from runtime import capacity  # noqa: E402
from tests.bench.samples import require  # noqa: E402


class StepRows(io.TextIOBase):
    """Passes `capacity.measure`'s rows through to stdout as each step ends, stops at a step
    that measured nothing, and holds back the summary line until every step has measured."""

    P50 = [column.strip() for column in capacity.HEADER.split("|")].index("p50 ms")

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.pending = ""
        self.summary: str | None = None

    def write(self, text: str) -> int:
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self.line(line)
        return len(text)

    def line(self, line: str) -> None:
        if line.startswith("capacity "):
            self.summary = line
            return
        columns = [column.strip() for column in line.split("|")]
        if len(columns) > self.P50 and columns[0].isdigit() and columns[self.P50] in ("nan", "-"):
            # A turn is a caller's utterance, the end of turn and the reply: a step shorter
            # than one has no latency to report (its row prints "-").
            require(
                0,
                f"the {columns[0]}-call step of {self.duration:g} s",
                "no turn completed: give each step more time (--duration 20 or more)",
            )
        print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default=",".join(map(str, capacity.DEFAULT_STEPS)))
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per step")
    parser.add_argument("--wav", type=Path, default=None, help="the callers' speech (16 kHz)")
    args = parser.parse_args()
    steps = [int(calls) for calls in args.calls.split(",") if calls.strip()]
    if args.wav is not None and not args.wav.is_file():
        print(f"error: no caller audio at {args.wav} (a 16-bit mono WAV)", file=sys.stderr)
        return 2
    logging.getLogger("livekit").setLevel(logging.ERROR)
    rows = StepRows(args.duration)
    capacity.measure(steps, args.duration, wav=args.wav, out=rows)
    print(rows.summary, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
