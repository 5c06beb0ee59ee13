"""Logging for every `voxline` command: one format, the level from VOXLINE_LOG_LEVEL."""

from __future__ import annotations

import logging
import os


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr at VOXLINE_LOG_LEVEL (else `level`), one line a record."""
    logging.basicConfig(
        level=os.environ.get("VOXLINE_LOG_LEVEL", level).upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
