"""What every bench does before it prints a figure: make sure the step measured something.

A step too short for one turn, or a server that answered no request, has no samples; a figure
computed from none (0 requests/s, a p95 of nan) would read as a result. Such a step says so and
the bench exits 1 instead.
"""

from __future__ import annotations

import argparse
from collections.abc import Sized

NOTHING_MEASURED = "nothing measured"


def require(samples: Sized | int, step: str, hint: str = "") -> None:
    """Exits 1, saying which step measured nothing, when `samples` is empty (or 0).

    Args:
        samples: the step's samples, or their count.
        step: what the step was, as the bench's figure line would name it.
        hint: what to change so that it measures something (a longer step, say).
    """
    count = samples if isinstance(samples, int) else len(samples)
    if count > 0:
        return
    advice = f"; {hint}" if hint else ""
    print(f"{NOTHING_MEASURED}: {step} produced no samples, so no figure{advice}", flush=True)
    raise SystemExit(1)


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a bench of 0 requests measures nothing)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: at least 1")
    return value
