"""The platform's workload as Prometheus gauges: capacity, live sessions, queues, failures.

Public by design (`/reports/workload`), so it names no workspace and no person: agents appear by
id only, everything else as platform-wide counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from redis.asyncio import Redis
from tortoise.functions import Count

from control import jobs, models
from control.models import Call, DeliveryStatus, WebhookDelivery
from control.security import utcnow
from control.services import capacity
from control.services.calls import LIVE_STATUSES

# A session exists from dispatch (the worker joins) to the final state.
SESSION_STATUSES = tuple(status for status in LIVE_STATUSES if status != "queued")
# Dialer items still to dial (the batch dialer's queue).
QUEUED_ITEM_STATUSES = ("pending", "retrying")


class _Snapshot:
    """A collector that serves metric families read beforehand (collection is synchronous)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


async def _batch_items_due() -> int | None:
    """Batch items due to be dialed now, or None when this build has no batches."""
    batch_item = getattr(models, "BatchItem", None)
    if batch_item is None:
        return None
    now = utcnow()
    due = batch_item.filter(status__in=QUEUED_ITEM_STATUSES, batch__status="running")
    return (
        await due.filter(next_attempt_at__lte=now).count()
        + await due.filter(next_attempt_at__isnull=True).count()
    )


async def registry(redis: Redis, platform_size: int) -> CollectorRegistry:
    """Read the workload now and return it as a registry ready for `generate_latest`."""
    families: list[Metric] = [
        _gauge(
            "voxline_active_calls", "Calls holding a capacity slot", await capacity.in_use(redis)
        ),
        _gauge(
            "voxline_call_capacity", "Agent sessions the platform allows at once", platform_size
        ),
    ]
    sessions = GaugeMetricFamily(
        "voxline_agent_active_sessions", "Live calls per agent (by agent id)", labels=["agent_id"]
    )
    rows = (
        await Call.filter(status__in=SESSION_STATUSES, agent_id__isnull=False)
        .annotate(sessions=Count("id"))
        .group_by("agent_id")
        .values_list("agent_id", "sessions")
    )
    for agent_id, count in sorted(rows, key=lambda row: str(row[0])):
        sessions.add_metric([str(agent_id)], count)
    families.append(sessions)

    queues = GaugeMetricFamily(
        "voxline_dialer_queue_depth", "Dialer items due to be dialed now", labels=["queue"]
    )
    batch_items = await _batch_items_due()
    if batch_items is not None:
        queues.add_metric(["batch_items"], batch_items)
    families.append(queues)

    job_queue = GaugeMetricFamily(
        "voxline_background_jobs", "Background jobs by state", labels=["state"]
    )
    for state, count in (await jobs.queue_state()).items():
        job_queue.add_metric([state], count)
    families.append(job_queue)

    deliveries = GaugeMetricFamily(
        "voxline_webhook_deliveries", "Customer webhook deliveries by state", labels=["state"]
    )
    for state in (DeliveryStatus.PENDING, DeliveryStatus.FAILED):
        deliveries.add_metric([state.value], await WebhookDelivery.filter(status=state).count())
    families.append(deliveries)

    collected = CollectorRegistry(auto_describe=False)
    collected.register(_Snapshot(families))
    return collected
