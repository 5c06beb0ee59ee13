"""Database wiring: the tortoise configuration, start-up, shut-down and versioned migrations."""

from __future__ import annotations

import logging
from typing import Any

from tortoise import Tortoise
from tortoise.migrations.api import migrate

from control.config import Settings, get_settings

logger = logging.getLogger(__name__)

MODEL_MODULES = ["control.models"]


def tortoise_config(settings: Settings) -> dict[str, Any]:
    return {
        "connections": {"default": settings.resolved_database_url},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "control.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def __getattr__(name: str) -> Any:
    # `tortoise -c control.db.TORTOISE_ORM makemigrations` reads the config from here.
    if name == "TORTOISE_ORM":
        return tortoise_config(get_settings())
    raise AttributeError(name)


async def init_db(settings: Settings) -> None:
    # Quart serves each request in its own task; without the global fallback tortoise
    # raises "No TortoiseContext is currently active" (see DESIGN.md, library facts).
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)


async def close_db() -> None:
    await Tortoise.close_connections()


async def apply_migrations(settings: Settings, progress=None) -> None:
    """Apply every pending migration to the configured database."""
    await migrate(config=tortoise_config(settings), progress=progress)
    await Tortoise.close_connections()
