"""Agent-test benchmark: a text suite and a voice suite on the demo agent, with the local model.

    python tests/bench/bench_agent_tests.py [--text-cases 20] [--voice-cases 5] [--speed 1]

The demo agent (`voxline demo`: Harbor Cafe, the local LLM, whisper and Piper, its knowledge)
gets its starter suite plus rephrasings of it, up to `--text-cases`; the run goes through the
real service (`agent_tests.start_run`, then the job's handler) on a fresh SQLite database in a
temporary data dir, timed end to end. The voice suite speaks `--voice-cases` of them into the
pipeline at `--speed` times real time (1 = real time, whose first-audio figures are real).
Target (issue 22): the 20-case text suite in under 60 s on a 2-core machine. It prints its
figures and asserts nothing; needs `make setup-local` (the local LLM).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
DATA_DIR = tempfile.mkdtemp(prefix="voxline-bench-tests-")
os.environ["VOXLINE_DATA_DIR"] = DATA_DIR  # the knowledge store reads it on import

from tests.bench.samples import require  # noqa: E402

NOT_INSTALLED = 3

#: Rephrasings of the starter suite's four lines, each judged by that case's rules.
REPHRASED = {
    "opening hours": (
        "When are you open?", "What time do you open on Saturday?", "Are you open on weekdays?",
        "What time do you close today?", "When do you open in the morning?",
    ),
    "a price": (
        "What does a large coffee cost?", "How much is a big coffee?",
        "What's the price of a large coffee?", "How expensive is a large coffee?",
    ),
    "an unknown question": (
        "Can you fix my bike?", "Do you sell car insurance?", "Do you do bicycle repairs?",
    ),
    "goodbye": (
        "Thanks, bye!", "That's all, thank you. Goodbye.", "Great, thanks. Bye now.",
        "Okay, goodbye.",
    ),
}  # fmt: skip


def suite(size: int) -> list[dict]:
    """The starter suite, then rephrasings of it in turn, `size` cases in all."""
    from control.services.demo import DEMO_TESTS

    by_name = {case["name"]: case for case in DEMO_TESTS}
    cases = [dict(case) for case in DEMO_TESTS]
    rephrasings = [(name, line) for name, lines in REPHRASED.items() for line in lines]
    for name, line in rephrasings:
        [turn] = by_name[name]["turns"]
        cases.append({"name": f"{name}: {line}", "turns": [{**turn, "user": line}]})
    return cases[:size]


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return f"p50 {values[0]:,.0f} ms  p95 {values[0]:,.0f} ms"
    cuts = statistics.quantiles(values, n=20, method="inclusive")
    return f"p50 {statistics.median(values):,.0f} ms  p95 {cuts[18]:,.0f} ms"


async def run_suite(settings, agent, cases: list[dict], mode: str) -> tuple[float, object]:
    from control.models import AgentTestCase
    from control.services import agent_tests

    await AgentTestCase.filter(agent_id=agent.id).delete()
    for case in cases:
        await agent_tests.create_case(agent.workspace_id, agent.id, case)
    run = await agent_tests.start_run(
        agent.workspace_id, agent.id, test_ids=None, mode=mode, repeat=1, judge=None
    )
    started = time.perf_counter()
    await agent_tests.execute_run(settings, run.id)
    seconds = time.perf_counter() - started
    return seconds, await agent_tests.get_run(agent.workspace_id, run.id)


def report(label: str, seconds: float, run, latency_key: str) -> None:
    cases = run.cases
    passed = sum(case["status"] == "passed" for case in cases)
    latencies = [
        turn[latency_key]
        for case in cases
        for attempt in case["attempts"]
        for turn in attempt["latencies"]
        if turn.get(latency_key) is not None
    ]
    require(latencies, f"{label} ({latency_key})")
    print(
        f"{label}: {len(cases)} cases in {seconds:.1f} s end to end "
        f"({seconds / len(cases):.2f} s a case); {passed} passed, {len(cases) - passed} not; "
        f"{latency_key.removesuffix('_ms').replace('_', ' ')} {percentiles(latencies)}; "
        f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    for case in cases:
        if case["status"] != "passed":
            reasons = [
                e["reason"]
                for attempt in case["attempts"]
                for e in attempt["expectations"]
                if e["status"] != "passed"
            ] or [attempt.get("error", "") for attempt in case["attempts"]]
            print(f"  not passed: {case['name']}: {'; '.join(reasons)[:200]}")


async def main(args: argparse.Namespace) -> None:
    from control.config import Settings
    from control.db import apply_migrations, close_db, init_db
    from control.services import demo

    settings = Settings(
        env="test",
        data_dir=Path(DATA_DIR),
        jwt_secret="bench-secret-" + "x" * 40,
        service_token="bench-service-token",
        test_judge_local=False,
        test_voice_speed=args.speed,
        background_workers=False,
    )
    await apply_migrations(settings)
    await init_db(settings)
    try:
        seeded = await demo.seed(settings)
        agent = seeded.agent
        llm = agent.config.get("LLM_provider")
        print(f"agent tests on the demo agent ({llm} LLM), {os.cpu_count()} cores")
        if args.text_cases:
            seconds, run = await run_suite(settings, agent, suite(args.text_cases), "text")
            report("text suite", seconds, run, "llm_ttft_ms")
        if args.voice_cases:
            seconds, run = await run_suite(settings, agent, suite(args.voice_cases), "voice")
            report(f"voice suite at {args.speed:g}x real time", seconds, run, "first_audio_ms")
    finally:
        await close_db()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text-cases", type=int, default=20)
    parser.add_argument("--voice-cases", type=int, default=5)
    parser.add_argument("--speed", type=float, default=1.0, help="voice: times real time")
    options = parser.parse_args()
    if importlib.util.find_spec("llama_cpp") is None:
        print(
            "the local LLM (llama.cpp) is not installed; install it with: make setup-local",
            file=sys.stderr,
        )
        raise SystemExit(NOT_INSTALLED)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(options))
