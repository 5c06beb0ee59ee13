"""Counting the SQL statements tortoise sends: its `tortoise.db_client` logger logs each at DEBUG
(a statement run for many rows at once, as `bulk_create` runs one, is logged once)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

QUERY_LOG = "tortoise.db_client"


class QueryCounter(logging.Handler):
    """Counts the statements tortoise sends, once added to its query log at DEBUG."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


@contextmanager
def counting_statements() -> Iterator[QueryCounter]:
    """The statements sent inside the block, counted (the query log's level is put back after)."""
    log = logging.getLogger(QUERY_LOG)
    counter, level = QueryCounter(), log.level
    log.addHandler(counter)
    log.setLevel(logging.DEBUG)
    try:
        yield counter
    finally:
        log.removeHandler(counter)
        log.setLevel(level)
