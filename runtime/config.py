"""Runtime settings (the worker's side): where the control plane is and provider endpoints."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import AliasChoices, Field, model_validator

from voxline.common.settings import DEVELOPMENT_SECRET, VoxlineSettings

logger = logging.getLogger(__name__)


class RuntimeSettings(VoxlineSettings):
    """Settings read from `VOXLINE_*` environment variables.

    Provider API keys keep their own names (`OPENAI_API_KEY`, `DEEPGRAM_API_KEY`), and so does
    `OPENAI_BASE_URL`, which the OpenAI client reads itself (it points TTS at a compatible
    server; an agent's `llm_base_url` overrides it for the LLM).
    """

    api_url: str = "http://127.0.0.1:8000"
    # The development default matches the control plane's; anywhere else it is refused.
    service_token: str = DEVELOPMENT_SECRET
    agent_name: str = "voxline-agent"
    deepgram_url: str = "https://api.deepgram.com/v1/listen"
    #: Lets custom functions reach private addresses even when a call spec does not say so.
    allow_private_urls: bool = False
    #: Where call reports wait until the control plane has taken them (`<data_dir>/outbox`).
    outbox_dir: Path | None = None
    #: How often a live call tells the control plane it is alive (its reaper waits 60 s).
    heartbeat_seconds: float = 15.0
    #: The worker's Prometheus endpoint (`/metrics`), served whether or not LiveKit is reachable.
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9100
    #: When set, scrapes of `/metrics` must carry it as a bearer token (as on the control plane).
    metrics_token: str | None = None
    #: The platform's call capacity (the control plane's variable): a worker never holds more.
    max_agent_sessions: int = Field(
        default=10,
        validation_alias=AliasChoices("VOXLINE_MAX_AGENT_SESSIONS", "MAX_AGENT_SESSIONS"),
    )

    @model_validator(mode="after")
    def _refuse_the_default_service_token(self) -> RuntimeSettings:
        self.refuse_development_service_token(self.service_token)
        return self

    @property
    def report_outbox(self) -> Path:
        return self.outbox_dir or self.data_dir / "outbox"
