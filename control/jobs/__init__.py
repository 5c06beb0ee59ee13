"""Durable background work: the job queue, the kinds of job, and the loop that runs them."""

from control.jobs.queue import (
    JobContext,
    claim_due,
    drain,
    enqueue,
    prune_finished,
    queue_state,
    run_due,
    run_forever,
)

__all__ = [
    "JobContext",
    "claim_due",
    "drain",
    "enqueue",
    "prune_finished",
    "queue_state",
    "run_due",
    "run_forever",
]
