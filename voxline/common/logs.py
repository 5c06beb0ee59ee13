"""Logging for every `voxline` command: one format, the level from VOXLINE_LOG_LEVEL, and an
access log that never writes a secret carried in a query string."""

from __future__ import annotations

import logging
import os
import re
from urllib.parse import unquote_plus

#: Query parameters whose values the access log leaves out: any name containing one of these.
SECRET_PARAMETER_WORDS = ("token", "key", "secret", "password", "signature")
REDACTED = "[redacted]"
ACCESS_LOGGERS = ("uvicorn.access",)

_PARAMETER = re.compile(r"([^&=]*)(=?)([^&]*)")


def _looks_secret(name: str, value: str) -> bool:
    name, value = unquote_plus(name).lower(), unquote_plus(value).lower()
    return any(
        word in name or f"{word}=" in value  # e.g. `next=/app/accept-invite#token=...`
        for word in SECRET_PARAMETER_WORDS
    )


def redact_query(target: str) -> str:
    """`target` (a path with its query string) with the values of secret-looking parameters
    replaced: `/reset-password?token=abc` -> `/reset-password?token=[redacted]`."""
    path, mark, query = target.partition("?")
    if not mark:
        return target

    def redact(parameter: re.Match[str]) -> str:
        name, equals, value = parameter.groups()
        secret = value and _looks_secret(name, value)
        return f"{name}{equals}{REDACTED}" if secret else parameter.group(0)

    return f"{path}?{_PARAMETER.sub(redact, query)}"


class RedactQuerySecrets(logging.Filter):
    """Rewrites an access-log record's request target with `redact_query` (uvicorn logs
    `'%s - "%s %s HTTP/%s" %d'`: client, method, target, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


_REDACT_QUERY_SECRETS = RedactQuerySecrets()


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr at VOXLINE_LOG_LEVEL (else `level`), one line a record."""
    logging.basicConfig(
        level=os.environ.get("VOXLINE_LOG_LEVEL", level).upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    for name in ACCESS_LOGGERS:
        logging.getLogger(name).addFilter(_REDACT_QUERY_SECRETS)
