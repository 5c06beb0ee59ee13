"""Retrying: which HTTP statuses are worth another try, and how long to wait before it."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

#: Statuses below 500 that mean "not now" rather than "never": Request Timeout, Too Many Requests.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})


def retryable_status(status: int, *, also: Collection[int] = ()) -> bool:
    """Whether a request an HTTP server answered with `status` may succeed if sent again later.

    A 5xx, 408 or 429 may; any other status will not change by itself.

    Args:
        status: the HTTP status of the answer.
        also: further statuses the caller retries for its own reasons (say why where it passes
            them).
    """
    return status >= 500 or status in RETRYABLE_CLIENT_STATUSES or status in also


@dataclass(frozen=True)
class Backoff:
    """The pause after each failed attempt: the listed `delays`, then growing by `factor`.

    After the listed delays run out, each pause is the previous one times `factor`, at most
    `cap`; with the default `factor` of 1 the last listed delay repeats.

    Attributes:
        delays: the pauses after the first, second, ... failed attempt (at least one).
        factor: what each pause past the listed ones is multiplied by.
        cap: the longest pause past the listed ones.
    """

    delays: tuple[float, ...]
    factor: float = 1.0
    cap: float = math.inf

    def __post_init__(self) -> None:
        if not self.delays:
            raise ValueError("a backoff needs at least one delay")

    @classmethod
    def exponential(cls, first: float, *, factor: float = 2.0, cap: float = math.inf) -> Backoff:
        """`first`, then `first * factor`, `first * factor**2`, ..., each at most `cap`."""
        return cls((first,), factor=factor, cap=cap)

    def delay(self, failures: int) -> float:
        """The pause after `failures` failed attempts (1 after the first), in seconds."""
        listed = len(self.delays)
        if failures <= listed:
            return self.delays[max(failures, 1) - 1]
        last = self.delays[-1]
        try:
            grown = last * self.factor ** (failures - listed)
        except OverflowError:  # a caller retrying forever gets there after ~1,000 failures
            grown = math.inf if last > 0 else 0.0
        return min(grown, self.cap)
