"""Prompt templates: `{{variable}}` rendering and the variables every call has."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.spec.calls import CallSpec

logger = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s][^{}]*?)\s*\}\}")


def render_template(text: str | None, variables: Mapping[str, Any] | None) -> str:
    """Fill `{{variable}}` placeholders; missing variables render empty. Never raises."""
    if not text:
        return ""
    try:
        variables = dict(variables or {})
        lowered = {str(key).lower(): value for key, value in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            value = variables.get(name, lowered.get(name.lower()))
            return "" if value is None else str(value)

        return _PLACEHOLDER.sub(substitute, str(text))
    except Exception:  # a prompt must never crash a call
        logger.exception("rendering a template failed; using it unrendered")
        return str(text)


def builtin_variables(call: CallSpec, now: datetime | None = None) -> dict[str, str]:
    """The variables every call has: now, today, caller_number, called_number, call_id, ...

    `caller_number` is the number that placed the call (`from_number`) and `called_number` the
    one that was dialled (`to_number`); `customer_number` is the other party whatever the
    direction. `now` defaults to the current UTC time; a naive `now` is taken as UTC.
    """
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return {
        "now": now.strftime("%Y-%m-%d %H:%M %Z").strip(),
        "today": now.strftime("%Y-%m-%d"),
        "weekday": now.strftime("%A"),
        "caller_number": call.from_number or "",
        "called_number": call.to_number or "",
        "customer_number": call.customer_number or "",
        "call_id": call.call_id,
        "agent_name": call.agent.name,
        "direction": call.direction,
    }


def call_variables(call: CallSpec, now: datetime | None = None) -> dict[str, str]:
    """The dynamic variables of a call overlaid with the built-ins (which win: they are facts)."""
    return {**call.dynamic_variables, **builtin_variables(call, now)}
