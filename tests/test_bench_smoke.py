"""`make bench-smoke` fails when a bench crashes, measures nothing or stops printing its figures.

The smoke checker (`tests/bench/smoke.py`) runs here on small bench scripts written for each
case, as it runs the real ones in CI; and every real bench must have a smoke size.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest

from tests.bench import smoke
from tests.bench.samples import NOTHING_MEASURED

FIGURE = rf"figure: {smoke.F} ms"
SMOKES = {
    "bench_good.py": smoke.Smoke(("--size", "3"), (FIGURE,), timeout=60),
    "bench_crash.py": smoke.Smoke((), (FIGURE,), timeout=60),
    "bench_silent.py": smoke.Smoke((), (FIGURE,), timeout=60),
    "bench_empty.py": smoke.Smoke((), (FIGURE,), timeout=60),
    "bench_hang.py": smoke.Smoke((), (FIGURE,), timeout=2),
    smoke.EVAL: smoke.Smoke((), (FIGURE,), timeout=60, local=True),
}

GOOD = """
import sys
assert sys.argv[1:] == ["--size", "3"], sys.argv
print("figure: 12.5 ms")
"""
CRASH = """
print("filling the tables")
raise RuntimeError("null value in column 'transfers' violates not-null constraint")
"""
SILENT = """
print("figure: nan ms")  # a figure computed from nothing
"""
EMPTY = """
from tests.bench.samples import require
require([], "the 1-call step of 5 s", "give each step more time")
print("figure: 0.0 ms")
"""
HANG = """
import time
print("figure: 12.5 ms", flush=True)
time.sleep(120)  # a server that never answers, say
"""
EVAL_NOT_INSTALLED = """
import sys
print("eval_local_llm: not installed: llama-cpp-python: install it with: make setup-local",
      file=sys.stderr)
sys.exit(3)
"""


def write_benches(directory: Path, **scripts: str) -> Path:
    for name, source in scripts.items():
        (directory / f"{name}.py").write_text(textwrap.dedent(source))
    return directory


def test_a_bench_printing_its_figures_passes(tmp_path, capsys):
    directory = write_benches(tmp_path, bench_good=GOOD)

    assert smoke.run_smoke(directory, SMOKES) == 0
    output = capsys.readouterr().out
    assert "ok bench_good.py" in output
    assert "bench-smoke: every bench ran and printed its figure lines" in output


def test_a_bench_that_crashes_fails_the_smoke_run(tmp_path, capsys):
    directory = write_benches(tmp_path, bench_good=GOOD, bench_crash=CRASH)

    assert smoke.run_smoke(directory, SMOKES) == 1
    output = capsys.readouterr().out
    assert "FAIL bench_crash.py" in output and "exited 1" in output
    assert "violates not-null constraint" in output  # the bench's own error is shown
    assert "ok bench_good.py" in output  # the others still run
    assert "bench-smoke: FAILED (bench_crash.py)" in output


def test_a_bench_that_stops_printing_its_figure_fails(tmp_path, capsys):
    directory = write_benches(tmp_path, bench_silent=SILENT)

    assert smoke.run_smoke(directory, SMOKES) == 1
    output = capsys.readouterr().out
    assert "FAIL bench_silent.py" in output and "no longer prints" in output


def test_a_step_that_measured_nothing_fails_saying_so(tmp_path, capsys):
    directory = write_benches(tmp_path, bench_empty=EMPTY)

    assert smoke.run_smoke(directory, SMOKES) == 1
    output = capsys.readouterr().out
    assert "FAIL bench_empty.py" in output and "exited 1" in output
    assert f"{NOTHING_MEASURED}: the 1-call step of 5 s produced no samples" in output
    assert "figure: 0.0 ms" not in output


def test_a_bench_that_hangs_fails_and_is_stopped(tmp_path, capsys):
    directory = write_benches(tmp_path, bench_hang=HANG)

    assert smoke.run_smoke(directory, SMOKES) == 1
    output = capsys.readouterr().out
    assert "FAIL bench_hang.py" in output and "still running after 2 s" in output


def test_a_bench_without_a_smoke_size_fails(tmp_path, capsys):
    directory = write_benches(tmp_path, bench_good=GOOD, bench_new=GOOD)

    assert smoke.run_smoke(directory, SMOKES) == 1
    assert "FAIL bench_new.py: no smoke size" in capsys.readouterr().out


def test_the_eval_without_the_local_llm_is_not_run_unless_required(tmp_path, capsys):
    directory = write_benches(tmp_path, eval_local_llm=EVAL_NOT_INSTALLED)

    assert smoke.run_smoke(directory, SMOKES) == 0
    assert "not run: the local LLM is not installed" in capsys.readouterr().out

    # after `make setup-local` it must run
    assert smoke.run_smoke(directory, SMOKES, require_local=True) == 1
    assert "FAIL eval_local_llm.py" in capsys.readouterr().out


def test_the_eval_must_name_the_command_that_installs_what_it_lacks(tmp_path, capsys):
    directory = write_benches(tmp_path, eval_local_llm="import sys\nsys.exit(3)\n")

    assert smoke.run_smoke(directory, SMOKES) == 1
    assert "without saying 'install it with: make setup-local'" in capsys.readouterr().out


def test_every_bench_has_a_smoke_size():
    names = smoke.benches(smoke.BENCH_DIR)
    assert smoke.EVAL in names and "bench_reports.py" in names
    assert set(names) == set(smoke.SMOKES)


def test_the_capacity_bench_stops_at_a_step_without_a_turn(capsys):
    from runtime import capacity
    from tests.bench.bench_capacity import StepRows

    rows = StepRows(duration=5.0)
    rows.write(capacity.HEADER + "\n")
    measured_nothing = capacity.StepResult(
        calls=1, turns=1, missed=1, p50_ms=math.nan, p95_ms=math.nan, cpu_per_call=0.05,
        cores_used=0.05, rss_mb_per_call=0.0, setup_cpu_ms=0.0,
    )  # fmt: skip
    with pytest.raises(SystemExit) as stopped:
        rows.write(capacity.format_row(measured_nothing, holds=False) + "\n")
    assert stopped.value.code == 1
    output = capsys.readouterr().out
    assert "nothing measured: the 1-call step of 5 s produced no samples" in output
    assert "nan" not in output
