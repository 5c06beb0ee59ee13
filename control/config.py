"""Typed settings of the control plane, read from `VOXLINE_*` environment variables."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator

from voxline.common.settings import DEVELOPMENT_SECRET, VoxlineSettings, is_placeholder

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _split(items: str) -> list[str]:
    return [item.strip() for item in items.replace(" ", ",").split(",") if item.strip()]


@lru_cache(maxsize=16)
def _networks(items: str) -> tuple[IPNetwork, ...]:
    """Parsed once: the rate limiter asks on every request."""
    return tuple(ipaddress.ip_network(item, strict=False) for item in _split(items))


@dataclass(frozen=True)
class RecordingsLocation:
    """Where recordings are stored, as `VOXLINE_RECORDINGS_URL` says (see `Settings`)."""

    scheme: Literal["file", "s3"]
    path: str  # the directory (file), or the bucket (s3)
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None


RECORDINGS_URL_OPTIONS = frozenset({"endpoint", "region"})


def parse_recordings_url(url: str) -> RecordingsLocation:
    """`file:///dir` or `s3://bucket[/prefix][?endpoint=URL&region=NAME]`; ValueError if not."""
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    unknown = set(options) - RECORDINGS_URL_OPTIONS
    if parts.scheme == "file" and parts.path and not parts.netloc and not options:
        return RecordingsLocation("file", parts.path)
    if parts.scheme == "s3" and parts.netloc and not unknown:
        endpoint = options.get("endpoint")
        if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
            raise ValueError("VOXLINE_RECORDINGS_URL: `endpoint` must be an http(s) URL")
        return RecordingsLocation(
            "s3", parts.netloc, parts.path.strip("/"), endpoint, options.get("region")
        )
    raise ValueError(
        f"VOXLINE_RECORDINGS_URL {url!r} is not `file:///directory` or "
        "`s3://bucket[/prefix][?endpoint=URL&region=NAME]`"
    )


class Settings(VoxlineSettings):
    """Every knob of the control plane; defaults run the embedded, single-machine setup."""

    database_url: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    public_url: str = "http://127.0.0.1:8000"

    jwt_secret: str = DEVELOPMENT_SECRET
    encryption_key: str = DEVELOPMENT_SECRET
    #: Comma-separated, newest first: secrets are written with the first and read with any
    #: (`voxline rotate-keys` re-encrypts them with the first). Overrides `encryption_key`.
    encryption_keys: str | None = None
    service_token: str = DEVELOPMENT_SECRET
    access_token_ttl_seconds: int = 15 * 60
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    reset_token_ttl_seconds: int = 3600

    max_json_bytes: int = 1024 * 1024
    max_upload_request_bytes: int = 50 * 1024 * 1024

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_timeout_seconds: float = 10.0
    mail_from: str = "Voxline <no-reply@voxline.local>"

    google_client_id: str | None = None
    google_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"

    allow_private_urls: bool = False
    # The proxies in front of the app (comma-separated addresses or CIDRs). Only a request from
    # one of them has its `X-Forwarded-For`/`Forwarded` believed; empty: no header is believed.
    trusted_proxies: str = ""

    # Customer webhooks: the delay before each attempt (PARITY.md), then the delivery fails.
    webhook_retry_delays: tuple[float, ...] = (0, 5, 25, 125, 625)
    webhook_timeout_seconds: float = 10.0
    webhook_poll_seconds: float = 1.0
    # Run the background jobs (ingestion, analysis, webhooks, the reaper) inside `serve`.
    background_workers: bool = True
    jobs_poll_seconds: float = 1.0
    # A claimed job's lease, renewed every third of it while the job runs: a replica killed
    # mid-job leaves the job to the others within this long.
    jobs_lease_seconds: float = Field(default=60.0, gt=0)
    # The call lifecycle: a dispatched call no worker took within the join timeout, a call whose
    # worker stopped its heartbeat, or a closed room with no report, is finished as `lost`.
    join_timeout_seconds: float = Field(
        default=120.0,
        validation_alias=AliasChoices("VOXLINE_JOIN_TIMEOUT", "VOXLINE_JOIN_TIMEOUT_SECONDS"),
    )
    heartbeat_timeout_seconds: float = 60.0
    reaper_period_seconds: float = 15.0
    reaper_grace_seconds: float = 60.0
    # Batch dialing: how often the dialer ticks, and how long a claimed item is held before a
    # replica that died while dialing it gives it up (then it is looked up on LiveKit first).
    dialer_tick_seconds: float = Field(default=1.0, gt=0)
    dialer_claim_seconds: float = Field(default=60.0, gt=0)
    batch_progress_seconds: float = Field(default=5.0, ge=0)
    max_agent_sessions: int = Field(
        default=10,
        validation_alias=AliasChoices("VOXLINE_MAX_AGENT_SESSIONS", "MAX_AGENT_SESSIONS"),
    )
    # Reports read the hourly rollups (`services.report_rollups`) for hours whose calls have not
    # changed since they were computed, and the calls table for the rest; off: the calls table.
    report_rollups: bool = True
    # How often the job that recomputes the changed hours' rollups runs.
    report_rollup_seconds: float = Field(default=5.0, gt=0)

    # Call recordings (`services.recordings`): unset, files under `<data_dir>/recordings`;
    # `file:///path` a directory; `s3://bucket[/prefix][?endpoint=URL&region=NAME]` any
    # S3-compatible store, with the credentials of the standard `AWS_*` variables.
    recordings_url: str | None = None
    # How often the job that deletes recordings past their workspace's retention runs.
    recording_cleanup_seconds: float = Field(default=3600.0, gt=0)
    # Agent tests with no judge named: the platform's OpenAI when OPENAI_API_KEY is set, else
    # the local model (when installed and this is on), else none (results say `not_judged`).
    test_judge_local: bool = True
    # Agent tests in voice mode feed the caller's speech at this multiple of real time: 1 is a
    # real call's pace (latency expectations are real figures); tests and quick checks go faster.
    test_voice_speed: float = Field(default=1.0, gt=0, le=8)

    # Scrapes of `/metrics` and `/reports/workload` must carry this bearer token when it is set.
    metrics_token: str | None = None

    # The LiveKit address browsers use for web calls (LIVEKIT_URL is often internal).
    livekit_public_url: str | None = None
    # Web calls take no login: each workspace may hold this many at once, and start this many
    # an hour (0: no limit), beside its `max_concurrent_calls`.
    web_calls_max_concurrent: int = Field(default=5, ge=0)
    web_calls_per_hour: int = Field(default=60, ge=0)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        for item in _split(value):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as error:
                raise ValueError(
                    f"VOXLINE_TRUSTED_PROXIES: {item!r} is not an IP address or CIDR"
                ) from error
        return value

    @field_validator("recordings_url")
    @classmethod
    def _recordings_url_is_a_store(cls, value: str | None) -> str | None:
        if value:
            parse_recordings_url(value)
        return value or None

    @property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        return _networks(self.trusted_proxies)

    @model_validator(mode="after")
    def _refuse_the_default_service_token(self) -> Settings:
        self.refuse_development_service_token(self.service_token)
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets_in_production(self) -> Settings:
        if self.env != "production":
            return self
        secrets = {
            "VOXLINE_JWT_SECRET": [self.jwt_secret],
            "VOXLINE_SERVICE_TOKEN": [self.service_token],
        }
        if self.encryption_keys:
            secrets["VOXLINE_ENCRYPTION_KEYS"] = self.encryption_key_list
        else:
            secrets["VOXLINE_ENCRYPTION_KEY"] = [self.encryption_key]
        weak = [
            name
            for name, values in secrets.items()
            if any(is_placeholder(value) or len(value) < 32 for value in values)
        ]
        if weak:
            raise ValueError(
                "VOXLINE_ENV=production needs real secrets: set "
                + ", ".join(weak)
                + " to random values of at least 32 characters "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)."
            )
        if not self.database_url:
            raise ValueError("VOXLINE_ENV=production needs VOXLINE_DATABASE_URL (PostgreSQL).")
        return self

    @property
    def cookie_secure(self) -> bool:
        return self.env == "production"

    @property
    def resolved_database_url(self) -> str:
        """The tortoise connection URL: the configured one, or a SQLite file in the data dir."""
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://"):
                url = "postgres://" + url.removeprefix("postgresql://")
            return url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite://{(self.data_dir / 'voxline.db').resolve()}"

    @property
    def encryption_key_list(self) -> list[str]:
        """The encryption keys, newest first: `encryption_keys` when set, else `encryption_key`."""
        if self.encryption_keys:
            keys = [key.strip() for key in self.encryption_keys.split(",") if key.strip()]
            if keys:
                return keys
        return [self.encryption_key]

    @property
    def fernet_keys(self) -> list[bytes]:
        """Fernet keys derived from the encryption keys, newest first (any strong string works)."""
        return [
            base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest())
            for key in self.encryption_key_list
        ]


@lru_cache
def get_settings() -> Settings:
    return Settings()
