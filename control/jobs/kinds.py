"""Every kind of background job, in one list: its name, what it runs and how it retries.

A new kind is one `JobKind` here; the services it calls know nothing of the queue.
"""

from __future__ import annotations

import uuid
from typing import Any

from control.dialing import campaign_dialer, dialer, prospects
from control.jobs import queue
from control.jobs.queue import JobContext, JobKind
from control.services import (
    agent_tests,
    analysis,
    calls,
    idempotency,
    knowledge_files,
    recordings,
    report_rollups,
)
from telephony.config import get_settings as get_telephony_settings


async def ingest_file(context: JobContext, payload: dict[str, Any]) -> None:
    await knowledge_files.ingest_file(
        context.settings, uuid.UUID(payload["file_id"]), payload["version"]
    )


async def analyse_call(context: JobContext, payload: dict[str, Any]) -> None:
    await analysis.analyse_call(context.settings, uuid.UUID(payload["call_id"]), context.redis)


async def process_prospect_upload(context: JobContext, payload: dict[str, Any]) -> None:
    await prospects.process_upload(uuid.UUID(payload["upload_id"]))


async def run_agent_tests(context: JobContext, payload: dict[str, Any]) -> None:
    await agent_tests.execute_run(context.settings, uuid.UUID(payload["run_id"]))


async def reap_calls(context: JobContext, _: dict[str, Any]) -> None:
    await calls.reap_lost_calls(context.settings, context.redis)
    await queue.prune_finished()
    await idempotency.prune_expired()


async def dial_batches(context: JobContext, _: dict[str, Any]) -> None:
    await dialer.tick(context.settings, get_telephony_settings(), context.redis)


async def dial_campaigns(context: JobContext, _: dict[str, Any]) -> None:
    await campaign_dialer.tick(context.settings, get_telephony_settings(), context.redis)


async def expire_recordings(context: JobContext, _: dict[str, Any]) -> None:
    await recordings.expire_recordings(context.settings)


async def refresh_report_rollups(context: JobContext, _: dict[str, Any]) -> None:
    await report_rollups.refresh()


KINDS: tuple[JobKind, ...] = (
    JobKind("ingest_file", ingest_file, max_attempts=3, lease_seconds=1800),
    JobKind("analyse_call", analyse_call, max_attempts=3, lease_seconds=600),
    JobKind(prospects.JOB_KIND, process_prospect_upload, max_attempts=3, lease_seconds=1800),
    JobKind(agent_tests.JOB_KIND, run_agent_tests, max_attempts=3, lease_seconds=1800),
    JobKind(
        "reap_calls",
        reap_calls,
        max_attempts=1,
        lease_seconds=60,
        every_seconds=lambda settings: settings.reaper_period_seconds,
    ),
    JobKind(
        "dial_batches",
        dial_batches,
        max_attempts=1,
        lease_seconds=120,
        every_seconds=lambda settings: settings.dialer_tick_seconds,
    ),
    JobKind(
        "dial_campaigns",
        dial_campaigns,
        max_attempts=1,
        lease_seconds=120,
        every_seconds=lambda settings: settings.dialer_tick_seconds,
    ),
    JobKind(
        "expire_recordings",
        expire_recordings,
        max_attempts=1,
        lease_seconds=600,
        every_seconds=lambda settings: settings.recording_cleanup_seconds,
    ),
    JobKind(
        "refresh_report_rollups",
        refresh_report_rollups,
        max_attempts=1,
        lease_seconds=300,
        every_seconds=lambda settings: settings.report_rollup_seconds,
    ),
)
