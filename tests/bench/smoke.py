"""`make bench-smoke`: every bench at a size that finishes in seconds, checked for its figures.

    .venv/bin/python -m tests.bench.smoke [--only bench_calls.py ...] [--require-local]

Each `tests/bench/bench_*.py` and `eval_local_llm.py` runs once at its smoke size (a few
thousand rows, one short call, a two-second HTTP run, three eval turns), one after another so
that none slows another. A bench fails the smoke run when it exits non-zero, runs past its time
limit, or no longer prints one of the figure lines that scripts and the README read (each is a
pattern below; a figure of `nan` matches none). A bench file without a smoke size here fails
too, so a new bench is smoke-tested from its first commit.

The eval needs the local LLM (llama.cpp, `make setup-local`, a ten-minute build), which
`make setup` and CI do not install: without it the eval must say so, name that command and exit
3, and is reported as not run. With `--require-local` (what `make bench-smoke` passes once
`make setup-local` has run) it must run. Sizes are for correctness, not figures: nothing here
is a measurement.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / "tests" / "bench"
EVAL = "eval_local_llm.py"
#: what the eval exits with when the local LLM is not installed (`eval_local_llm.NOT_INSTALLED`)
EVAL_NOT_INSTALLED = 3
LOCAL_ADVICE = "install it with: make setup-local"

N = r"[\d,]+"  # a count, with thousands separators
F = r"\d[\d,]*(?:\.\d+)?"  # a figure: digits, never nan or inf
MS = rf"p50 +{F} ms +p95 +{F} ms"


@dataclass(frozen=True)
class Smoke:
    """A bench's smoke size and the figure lines it must print.

    Attributes:
        args: the command-line arguments of the smoke size.
        lines: patterns (`re.fullmatch`) each matching at least one line of its output.
        timeout: seconds before it counts as hung.
        local: needs the local LLM (see the module).
    """

    args: tuple[str, ...]
    lines: tuple[str, ...]
    timeout: float = 150.0
    local: bool = False


def _labelled(labels: tuple[str, ...], width: int) -> tuple[str, ...]:
    return tuple(rf"  {re.escape(label.ljust(width))} {MS}" for label in labels)


CALL_FILTERS = (
    "no filter", "call_type=web", "call_direction=inbound", "agent_id", "disposition",
    "date range (30 days)", "batch_id", "page 40 of 100",
)  # fmt: skip
REPORTS = (
    "dashboard (UTC)", "dashboard (Europe/Paris)", "call-summary by day",
    "call-summary by agent", "call-summary by status", "call-summary, one agent",
    "disposition-summary", "disposition, campaign", "workload (public)",
)  # fmt: skip
TICK_STATES = (
    "steady state (2 calls end a second)", "capacity full (no call ends)",
    "burst (every call ends before each tick)",
)  # fmt: skip
HTTP_ROW = (
    rf" +{F} req/s  p50 +{F} ms  p99 +{F} ms  non-2xx \d+  socket errors: .+  load {F} {F} {F}"
)
CPU = r"(?:\d+ us|n/a)"  # CPU time a request, where /proc tells it
RUNTIME_ROW = rf" +{{sessions}} \| +\d+(?: \| +{F} +{F}){{{{4}}}} \| +{F} \| +{F}"

SMOKES: dict[str, Smoke] = {
    "bench_agent_tests.py": Smoke(
        ("--text-cases", "2", "--voice-cases", "1", "--speed", "4"),
        (
            r"agent tests on the demo agent \(local LLM\), \d+ cores",
            rf"text suite: \d+ cases in {F} s end to end \({F} s a case\); \d+ passed, \d+ not; "
            rf"llm ttft {MS}; load {F} {F} {F}",
            rf"voice suite at 4x real time: \d+ cases in {F} s end to end \({F} s a case\); "
            rf"\d+ passed, \d+ not; first audio {MS}; load {F} {F} {F}",
        ),
        timeout=300,
        local=True,
    ),
    "bench_batch.py": Smoke(
        ("--rows", "2000", "--due", "20"),
        (
            r"CSV reader alone \(tracemalloc peak\):",
            rf" +{N} rows: +{F} KiB",
            rf"E\.164 check: {F} us a number \(fast path\), {F} us by phonenumbers alone "
            rf"\({F}x\); load {F} {F} {F}",
            rf" +{N} rows \({F} MB\): +{F} s = {N} rows/s; accepted {N}; peak RSS now {F} MiB",
            rf"dialer: {N} calls dispatched from {N} due items in \d+ ticks "
            r"\(600 a minute: 10 a tick\)",
            rf"  control-plane CPU {F} ms per call \(wall {F} ms per call, LiveKit stand-in "
            rf"included\); LiveKit saw {N} dispatches",
        ),
    ),
    "bench_calls.py": Smoke(
        ("--rows", "3000", "--repeat", "3", "--events", "200"),
        (
            rf"filled {N} call logs in \d+ s",
            rf"GET /calls on {N} rows, one workspace of \d+ \(\d+ requests each\):",
            *_labelled(CALL_FILTERS, 24),
            rf"GET /calls/export: {N} rows in {F} s = {N} rows/s; peak RSS {F} -> {F} MiB",
            rf"POST /webhook/livekit: \d+ events in {F} s = {N} events/s",
        ),
    ),
    "bench_campaigns.py": Smoke(
        ("--prospects", "5000", "--campaigns", "10", "--ticks", "3"),
        (
            rf"loaded {N} prospects in \d+ campaigns \({N} each\) in {F} s "
            r"\(COPY, then VACUUM ANALYZE\)",
            r"  table .+, due-prospect index .+",
            *(
                rf"  {re.escape(state)}: \d+ ticks; time per tick median {F} ms, p95 {F} ms, "
                rf"max {F} ms; queries per tick median \d+, max \d+; dials per tick median \d+"
                for state in TICK_STATES
            ),
            rf"    control-plane CPU per tick median {F} ms",
            r"EXPLAIN \(ANALYZE, BUFFERS\) of the due-prospect query \(pending; one of three\):",
        ),
    ),
    "bench_capacity.py": Smoke(
        ("--calls", "1", "--duration", "15"),
        (
            r"calls \| turns \| missed \| p50 ms \| p95 ms \| CPU/call % core \| cores used \| "
            r"MB/call \(private\) \| setup CPU ms/call \| holds",
            rf" +1 \| +\d+ \| +\d+ \| +{F} \| +{F} \| +{F} \| +{F} \| +{F} \| +{F} \| (yes|no)",
            rf"capacity calls_per_core={F} p95_ms={F} rss_mb_per_call={F}",
        ),
    ),
    "bench_dialer_throughput.py": Smoke(
        ("--prospects", "2000", "--seconds", "6", "--warmup", "2", "--capacity", "20"),
        (
            rf"prospects loaded: {N} in \d+ campaigns \(COPY, then VACUUM ANALYZE, in {F} s\)",
            r"processes: 2 \(voxline serve, background jobs on\)",
            r"capacity: 20 agent sessions \(VOXLINE_MAX_AGENT_SESSIONS\)",
            rf"dispatches per second sustained: median {F}, min {F} \(\d+ windows? of \d+ s\); "
            rf"mean {F}",
            r"peak concurrent calls: \d+ \(capacity 20: held\)",
            r"numbers dialed twice: 0 \(.+\)",
            r"attempts past max_number_calls \(\d+\): 0",
            r"campaign tick \(dial_campaigns job, every process, the whole run\): \d+ ticks, "
            rf"mean {F} ms, p50 ~{F} ms p95 ~{F} ms .+",
            rf"CPU a dispatched call, control plane 1 \(pid \d+\): {F} ms \({F} cores\)",
            rf"CPU a dispatched call, control plane 2 \(pid \d+\): {F} ms \({F} cores\)",
            rf"load average after: {F} {F} {F}",
            r"bounded by: .+",
        ),
    ),
    "bench_http.py": Smoke(
        ("--workers", "1", "--seconds", "2", "--events", "5000"),
        (
            r"wrk -t1 -c\d+ -d2s; \d+ cores",
            rf"workers=1 GET /health {HTTP_ROW}",
            rf"workers=1 POST /webhook/livekit {HTTP_ROW}",
            r" +events sent \d+, answered 200 \d+, refused 0, answered as duplicates 0; "
            r"room count in Redis \d+: each counted once",
            rf"GET empty Quart route {HTTP_ROW}",
            rf"workers=1 GET /health +{F} of the empty route's req/s  "
            rf"\(empty {F} req/s, load {F} {F} {F}\); server CPU a request {CPU} "
            rf"\(empty {CPU}\)",
            rf"workers=1 POST /webhook/livekit +{F} of the empty route's req/s  "
            rf"\(empty {F} req/s, load {F} {F} {F}\); server CPU a request {CPU} "
            rf"\(empty {CPU}\)",
        ),
    ),
    "bench_knowledge.py": Smoke(
        ("--pages", "5", "--chunks", "500", "--queries", "20"),
        (
            rf"  ingest \(load \+ chunk \+ embed \+ upsert\): {F} s for \d+ pages = {F} pages/s, "
            rf"\d+ chunks \({F} chunks/s\); CPU time {F} s",
            rf"  retrieve\(top_k=5\) over \d+ chunks, \d+ queries: p50 {F} ms, p95 {F} ms, "
            rf"max {F} ms",
            rf"  of which query embedding: p50 {F} ms, p95 {F} ms",
            rf"peak RSS of the whole run: {F} MiB",
        ),
    ),
    "bench_reports.py": Smoke(
        ("--rows", "3000", "--repeat", "3"),
        (
            rf"filled {N} call logs in \d+ s",
            rf"/reports on {N} calls; one workspace of \d+ with {N} calls in the 30-day default "
            r"range \(\d+ requests each\):",
            *_labelled(REPORTS, 28),
            rf"rollups rebuilt in {F} s: {N} workspace-days, {N} rollup rows, {N} latency bin "
            rf"rows; load {F} {F} {F}",
            rf"    calls table alone: {MS}; rollups/calls p95 {F}",
            r"Plans \(EXPLAIN ANALYZE\) of the statements one dashboard request runs:",
            r"Indexes on calls:",
        ),
    ),
    "bench_runtime.py": Smoke(
        ("--sessions", "1,5", "--turns", "2", "--gap", "0.2"),
        (
            r"sessions \| turns \| input->LLM p50/p95 ms \| LLM->TTS p50/p95 ms \| "
            r"TTS->output p50/p95 ms \| total p50/p95 ms \| RSS/session KiB \| turns/s",
            RUNTIME_ROW.format(sessions=1),
            RUNTIME_ROW.format(sessions=5),
        ),
    ),
    "bench_offline_call.py": Smoke(
        ("--turns", "2"),
        (
            r"Per-turn latency \(ms\):  end of utterance \| LLM first token \| TTS first byte "
            r"\| reply",
            rf"reply p50 {F} ms  p95 {F} ms  over \d+ turns  \(load {F} {F} {F}, \d+ cores\)",
        ),
        timeout=300.0,
        local=True,
    ),
    EVAL: Smoke(
        ("--turns", "3", "--mode", "grounded"),
        (
            r"== SmolLM2-135M-Instruct \(grounded\)",
            r"\| Model \| Mode \| Right fact \| No invented fact \| Polite goodbye \| "
            r"≤ 2 sentences \| Turns the LLM wrote \| LLM TTFT p50 / p95 \| LLM tokens/s "
            r"\| Whole turn p50 \|",
            r"\| SmolLM2-135M-Instruct \| grounded \| \d+/\d+ \| \d+/\d+ \| \d+/\d+ \| \d+/\d+ "
            rf"\| \d+/\d+ \| (?:{F} / {F} ms|no LLM turn) \| (?:{F}|no LLM turn) \| {F} ms \|",
        ),
        local=True,
    ),
}


@dataclass
class Outcome:
    name: str
    ok: bool
    seconds: float
    note: str = ""
    output: str = ""


def benches(directory: Path) -> list[str]:
    """The bench files the smoke run must cover: every bench_*.py, and the eval if present."""
    names = sorted(path.name for path in directory.glob("bench_*.py"))
    return names + ([EVAL] if (directory / EVAL).exists() else [])


def missing_lines(smoke: Smoke, output: str) -> list[str]:
    """The figure-line patterns no line of `output` matches."""
    lines = output.splitlines()
    return [
        pattern for pattern in smoke.lines if not any(re.fullmatch(pattern, line) for line in lines)
    ]


def run_one(path: Path, smoke: Smoke, require_local: bool) -> Outcome:
    """Runs one bench at its smoke size and judges it (see the module)."""
    paths = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    started = time.perf_counter()
    # Its own process group: a bench's servers and wrk go with it when it hangs.
    with subprocess.Popen(
        [sys.executable, str(path), *smoke.args],
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=smoke.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            seconds = time.perf_counter() - started
            note = f"still running after {smoke.timeout:.0f} s"
            return Outcome(path.name, False, seconds, note, stdout + stderr)
    seconds = time.perf_counter() - started
    output = stdout + stderr
    if smoke.local and process.returncode == EVAL_NOT_INSTALLED and not require_local:
        if LOCAL_ADVICE in stderr:
            return Outcome(path.name, True, seconds, "not run: the local LLM is not installed "
                           f"(`make setup-local` builds it); it said: {LOCAL_ADVICE}")  # fmt: skip
        return Outcome(path.name, False, seconds, f"exited {EVAL_NOT_INSTALLED} without saying "
                       f"'{LOCAL_ADVICE}'", output)  # fmt: skip
    if process.returncode != 0:
        return Outcome(path.name, False, seconds, f"exited {process.returncode}", output)
    absent = missing_lines(smoke, stdout)
    if absent:
        note = "no longer prints " + "; ".join(f"/{pattern}/" for pattern in absent)
        return Outcome(path.name, False, seconds, note, output)
    return Outcome(path.name, True, seconds)


def run_smoke(
    directory: Path,
    smokes: dict[str, Smoke],
    *,
    only: list[str] | None = None,
    require_local: bool = False,
) -> int:
    """Runs every bench of `directory` at its size in `smokes`; prints each outcome.

    Returns:
        0 when every bench passed (the eval may be "not run", see the module), else 1.
    """
    names = benches(directory)
    failures: list[Outcome] = []
    uncovered = [name for name in names if name not in smokes]
    for name in uncovered:
        print(f"FAIL {name}: no smoke size (add it to SMOKES in tests/bench/smoke.py)", flush=True)
        failures.append(Outcome(name, False, 0.0))
    started = time.perf_counter()
    for name in names:
        if name in uncovered or (only and name not in only):
            continue
        print(f"== {name} {' '.join(smokes[name].args)}", flush=True)
        outcome = run_one(directory / name, smokes[name], require_local)
        verdict = "ok" if outcome.ok else "FAIL"
        note = f": {outcome.note}" if outcome.note else ""
        print(f"{verdict} {name} in {outcome.seconds:.0f} s{note}", flush=True)
        if not outcome.ok:
            tail = outcome.output.rstrip().splitlines()[-25:]
            print("\n".join(f"  | {line}" for line in tail), flush=True)
            failures.append(outcome)
    elapsed = time.perf_counter() - started
    if failures:
        failed = ", ".join(outcome.name for outcome in failures)
        print(f"bench-smoke: FAILED ({failed}) after {elapsed:.0f} s", flush=True)
        return 1
    print(
        f"bench-smoke: every bench ran and printed its figure lines, in {elapsed:.0f} s", flush=True
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="FILE", help="run only these benches")
    parser.add_argument(
        "--require-local", action="store_true", help="the eval must run (after make setup-local)"
    )
    args = parser.parse_args(argv)
    unknown = set(args.only or ()) - set(SMOKES)
    if unknown:
        parser.error(f"no bench {', '.join(sorted(unknown))}; choose from {', '.join(SMOKES)}")
    return run_smoke(BENCH_DIR, SMOKES, only=args.only, require_local=args.require_local)


if __name__ == "__main__":
    sys.exit(main())
