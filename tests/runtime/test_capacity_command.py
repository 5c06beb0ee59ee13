"""`voxline capacity`: a tiny run prints a row per step and a machine-readable last line.

Only the output's shape is checked, never the figures: they depend on the machine and its load.
"""

from __future__ import annotations

import re
import subprocess
import sys

ROW = re.compile(
    r"^\s*(?P<calls>\d+) \|\s*(?P<turns>\d+) \|\s*(?P<missed>\d+) \|\s*(?:\d+|-) \|"
    r"\s*(?:\d+|-) \|\s*[\d.]+ \|\s*[\d.]+ \|\s*[\d.]+ \|\s*[\d.]+ \| (?:yes|no)$"
)
LAST = re.compile(
    r"^capacity calls_per_core=(?P<per_core>\d+\.\d) p95_ms=(?P<p95>\d+) "
    r"rss_mb_per_call=(?P<mb>\d+\.\d)$"
)


def voxline(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxline", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_capacity_prints_each_step_and_a_parsable_last_line():
    result = voxline("capacity", "--calls", "2", "--duration", "3")
    lines = result.stdout.strip().splitlines()
    if lines[2].split("|")[4].strip() == "-":
        # a loaded machine answered no turn in the 1-call step: said so, never a "nan" figure
        assert result.returncode == 1 and "nothing measured" in result.stderr, result.stderr
        assert lines[-1] == "capacity: nothing measured (one call answered no turn)"
        assert "nan" not in result.stdout
        return
    assert result.returncode == 0, result.stderr[-2000:]
    assert lines[1].startswith("calls | turns | missed | p50 ms | p95 ms")
    rows = [ROW.match(line) for line in lines[2:-1]]
    assert all(rows), lines
    # every step is judged against one call, so a run always starts with it
    assert [int(row["calls"]) for row in rows] == [1, 2]
    # both calls of the second step took their turns (answered or missed, each is counted)
    assert int(rows[1]["turns"]) >= 2
    last = LAST.match(lines[-1])
    assert last is not None, lines[-1]
    float(last["per_core"]), int(last["p95"]), float(last["mb"])
    # progress goes to stderr while it runs
    assert "running 2 calls" in result.stderr


def test_capacity_refuses_a_step_of_no_calls():
    result = voxline("capacity", "--calls", "0,5", timeout=60)
    assert result.returncode == 2
    assert "at least 1" in result.stderr
