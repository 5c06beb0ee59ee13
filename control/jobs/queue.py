"""Durable background jobs: one table, claimed once across replicas, retried with backoff.

Ingestion, post-call analysis, the call reaper and (later) dialer ticks are jobs. A job is a row:
it survives a restart; a replica claims due rows with `SELECT … FOR UPDATE SKIP LOCKED` (SQLite,
the single-process default, serialises writes instead) and holds them under a lease that it
renews while the job runs, so a replica that dies mid-job (even by SIGKILL) leaves the job due
again within one lease (`jobs_lease_seconds`), and a job that hangs past its kind's
`lease_seconds` is cancelled and counts as a failed attempt. A job with a `key`
exists at most once, which makes enqueueing idempotent and periodic work run once per period
however many replicas schedule it. Webhook deliveries keep their own table (it is the delivery
log the API lists) but are claimed by the same `claim_due`.

Why not a library: procrastinate needs PostgreSQL (the embedded default is SQLite); arq, saq and
taskiq keep jobs in Redis, which this platform runs without persistence and treats as a cache.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, TypeVar

from redis.asyncio import Redis
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.functions import Count
from tortoise.models import Model
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from control import metrics
from control.config import Settings
from control.models import Job, JobStatus
from control.outages import outage_of
from control.security import utcnow
from voxline.common.retry import Backoff

logger = logging.getLogger(__name__)

CLAIM_BATCH = 10
ERROR_TEXT_LIMIT = 2000
FINISHED_JOBS_KEPT = timedelta(days=1)

ModelT = TypeVar("ModelT", bound=Model)


@dataclass(frozen=True)
class JobContext:
    """What a job runs with: the settings and the process's Redis client."""

    settings: Settings
    redis: Redis
    #: The period slot each periodic kind was last scheduled for by this runner: a runner tries
    #: to insert a slot's job once, not on every loop iteration.
    scheduled_slots: dict[str, int] = field(default_factory=dict, compare=False)


Handler = Callable[[JobContext, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class JobKind:
    """What a kind of job runs, how often it may fail, and how long one run may take: a run past
    `lease_seconds` is cancelled and counts as a failed attempt."""

    name: str
    handler: Handler
    max_attempts: int = 5
    lease_seconds: float = 300.0
    retry_delays: tuple[float, ...] = (5, 30, 120, 600)
    every_seconds: Callable[[Settings], float] | None = None  # periodic jobs

    def retry_delay(self, attempt: int) -> float:
        """The pause after failed attempt `attempt`; the last delay repeats once they run out."""
        return Backoff(self.retry_delays).delay(attempt)


@cache
def kinds() -> dict[str, JobKind]:
    """Every job kind by name (the list in `control.jobs.kinds`)."""
    from control.jobs.kinds import KINDS  # that list imports the services, which enqueue here

    return {kind.name: kind for kind in KINDS}


async def enqueue(
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    run_at: datetime | None = None,
) -> Job | None:
    """Queue a job; with a `key`, only the first job of that key is kept (returns None after)."""
    spec = kinds()[kind]
    try:
        return await Job.create(
            kind=kind,
            key=key,
            payload=payload or {},
            max_attempts=spec.max_attempts,
            run_at=run_at or utcnow(),
        )
    except IntegrityError:
        return None


async def claim_due(
    query: QuerySet[ModelT],
    due_field: str,
    lease: timedelta,
    limit: int,
    *,
    now: datetime | None = None,
    **claimed: Any,
) -> list[ModelT]:
    """Claim up to `limit` due rows of `query`: lock them (skipping rows another replica holds),
    push their due time out by `lease` and set `claimed` fields, in one transaction.

    The rows are returned as they were before the claim."""
    now = now or utcnow()
    async with in_transaction():
        rows = (
            await query.filter(**{f"{due_field}__lte": now})
            .order_by(due_field)
            .limit(limit)
            .select_for_update(skip_locked=True)
        )
        if rows:
            model = type(rows[0])
            await model.filter(pk__in=[row.pk for row in rows]).update(
                **{due_field: now + lease}, **claimed
            )
    return rows


async def _schedule_periodic(context: JobContext) -> None:
    now = time.time()
    for spec in kinds().values():
        if spec.every_seconds is None:
            continue
        slot = int(now // spec.every_seconds(context.settings))
        if context.scheduled_slots.get(spec.name) == slot:
            continue
        # One job per period slot: whichever replica inserts it first runs it.
        await enqueue(spec.name, key=f"{spec.name}@{slot}")
        context.scheduled_slots[spec.name] = slot


async def _run(context: JobContext, claimed: Job) -> None:
    spec = kinds().get(claimed.kind)
    attempt = claimed.attempts + 1
    started = time.perf_counter()
    try:
        if spec is None:
            raise LookupError(f"no handler for job kind {claimed.kind!r}")
        async with asyncio.timeout(spec.lease_seconds):
            await spec.handler(context, claimed.payload)
    except Exception as error:
        last_error = "".join(traceback.format_exception_only(error)).strip()[-ERROR_TEXT_LIMIT:]
        gave_up = spec is None or attempt >= claimed.max_attempts
        metrics.observe_job(
            claimed.kind if spec else "unknown",
            "failed" if gave_up else "retry",
            time.perf_counter() - started,
        )
        if gave_up or spec is None:  # gave_up covers spec is None; repeated so the checker sees it
            logger.exception("job %s (%s) failed for good", claimed.id, claimed.kind)
            await Job.filter(id=claimed.id).update(
                status=JobStatus.FAILED, attempts=attempt, last_error=last_error
            )
        else:
            delay = spec.retry_delay(attempt)
            logger.warning(
                "job %s (%s) failed (attempt %d of %d), retrying in %.0f s: %s",
                claimed.id, claimed.kind, attempt, claimed.max_attempts, delay, last_error,
            )  # fmt: skip
            await Job.filter(id=claimed.id).update(
                status=JobStatus.PENDING,
                attempts=attempt,
                last_error=last_error,
                run_at=utcnow() + timedelta(seconds=delay),
            )
        return
    await Job.filter(id=claimed.id).update(status=JobStatus.DONE, attempts=attempt)
    metrics.observe_job(claimed.kind, "done", time.perf_counter() - started)
    elapsed_ms = 1000 * (time.perf_counter() - started)
    logger.debug("job %s (%s) done in %.0f ms", claimed.id, claimed.kind, elapsed_ms)


async def _renew_leases(held: set[Any], seconds: float) -> None:
    """Push the leases of the jobs this runner holds (running or waiting their turn) out every
    third of a lease, for as long as it holds them."""
    while True:
        await asyncio.sleep(seconds / 3)
        try:
            await Job.filter(id__in=list(held), status=JobStatus.RUNNING).update(
                run_at=utcnow() + timedelta(seconds=seconds)
            )
        except Exception as error:  # a blip: the next renewal (or the lease) covers it
            logger.warning("could not renew the leases of %d jobs: %s", len(held), error)


async def run_due(context: JobContext, limit: int = CLAIM_BATCH) -> int:
    """Schedule periodic jobs, then run the due ones once; returns how many ran."""
    await _schedule_periodic(context)
    claimed = await claim_due(
        Job.filter(status__in=(JobStatus.PENDING, JobStatus.RUNNING)),
        "run_at",
        timedelta(seconds=context.settings.jobs_lease_seconds),
        limit,
        status=JobStatus.RUNNING,
    )
    held = {row.id for row in claimed}
    renewing = asyncio.create_task(_renew_leases(held, context.settings.jobs_lease_seconds))
    try:
        for row in claimed:
            await _run(context, row)
            held.discard(row.id)
    finally:
        renewing.cancel()
    return len(claimed)


async def drain(context: JobContext, rounds: int = 100) -> None:
    """Run due jobs until none is left (tests, and `voxline jobs --once`)."""
    for _ in range(rounds):
        if not await run_due(context):
            return


async def prune_finished() -> int:
    """Forget jobs that finished more than a day ago (failed ones stay visible)."""
    return await Job.filter(
        status=JobStatus.DONE, updated_at__lt=utcnow() - FINISHED_JOBS_KEPT
    ).delete()


async def queue_state() -> dict[str, int]:
    """Queue depth and failures, for `/health` and operators."""
    now = utcnow()
    # One statement, not four: /health asks on every request.
    counts = (
        await Job.filter(status__in=(JobStatus.PENDING, JobStatus.RUNNING, JobStatus.FAILED))
        .annotate(
            due=Count("id", _filter=Q(status=JobStatus.PENDING, run_at__lte=now)),
            scheduled=Count("id", _filter=Q(status=JobStatus.PENDING, run_at__gt=now)),
            running=Count("id", _filter=Q(status=JobStatus.RUNNING)),
            failed=Count("id", _filter=Q(status=JobStatus.FAILED)),
        )
        .values("due", "scheduled", "running", "failed")
    )
    return {name: int(value or 0) for name, value in counts[0].items()}


async def run_forever(
    context: JobContext,
    stop: asyncio.Event,
    also: Callable[[], Awaitable[int]] | None = None,
) -> None:
    """Run jobs (and `also`, e.g. webhook delivery) until `stop` is set."""
    paused_by: str | None = None
    while not stop.is_set():
        try:
            done = await run_due(context)
            if also is not None:
                done += await also()
            if paused_by is not None:
                logger.info("background jobs resumed: %s is back", paused_by)
                paused_by = None
        except Exception as error:  # the loop must survive a database or Redis outage
            done = 0
            part = outage_of(error)
            if part is None:
                logger.exception("background jobs iteration failed")
            elif part != paused_by:  # once per outage, not once a second
                logger.warning("background jobs paused: %s is unavailable (%s)", part, error)
                paused_by = part
        if not done:
            try:
                await asyncio.wait_for(stop.wait(), context.settings.jobs_poll_seconds)
            except TimeoutError:
                pass
