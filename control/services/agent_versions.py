"""Agent versions: immutable snapshots of what an agent's calls do, publishing, and A/B splits.

An agent's `config` is always its latest settings; each save that changes what a call would do
also writes an `AgentVersion` (1, 2, 3 ...). Calls run the published version, or the version a
`traffic_split` picks for them from their call id; chats and test runs run the latest unless
told otherwise.

What a version holds is computed, not listed: every stored setting except the agent's own
(`NON_VERSIONED_FIELDS`), so a setting added to `AgentConfig` is versioned without more work.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

from tortoise.queryset import QuerySet

from control.errors import Conflict, Invalid, NotFound
from control.models import Agent, AgentVersion, TestRun, TestRunStatus
from control.security import utcnow
from control.services import webhooks

logger = logging.getLogger(__name__)

#: The agent's version settings: they belong to the agent, and changing them makes no version.
VERSION_SETTINGS = ("auto_publish", "require_passing_tests", "traffic_split")
#: Settings of the agent itself, not of what its calls do: its name, how it is reached (number,
#: web-call access), its version settings, and the note a save may carry for its version.
NON_VERSIONED_FIELDS = frozenset(
    {
        "id",
        "workspace_id",
        "created_at",
        "updated_at",
        "agent_name",
        "phone_number",
        "allow_web_calls",
        "web_call_origins",
        "web_call_public_key",
        "published_version",
        "version_note",
        *VERSION_SETTINGS,
    }
)
MAX_SPLIT_ENTRIES = 5
VERSION_PUBLISHED = "agent.version_published"
# Tests that say anything about a version: a cancelled run says nothing.
COMPLETED_RUN_STATUSES = (TestRunStatus.PASSED, TestRunStatus.FAILED, TestRunStatus.ERROR)


def versioned(config: dict[str, Any]) -> dict[str, Any]:
    """The part of an agent's stored settings that a version holds."""
    return {key: value for key, value in config.items() if key not in NON_VERSIONED_FIELDS}


def runs_with(agent: Agent, version: AgentVersion | None) -> dict[str, Any]:
    """The agent's stored settings as `version` runs them (None: the latest, as saved).

    The agent's own settings (number, web-call access) are today's; the rest are the version's.
    """
    if version is None:
        return dict(agent.config)
    own = {key: value for key, value in agent.config.items() if key in NON_VERSIONED_FIELDS}
    return {**own, **version.config}


def versions_of(workspace_id: uuid.UUID, agent_id: uuid.UUID) -> QuerySet[AgentVersion]:
    """The agent's versions, newest first."""
    return AgentVersion.filter(workspace_id=workspace_id, agent_id=agent_id).order_by("-number")


async def latest(agent: Agent) -> AgentVersion | None:
    """The agent's newest version (None for an agent saved before versions existed)."""
    return await AgentVersion.filter(agent_id=agent.id).order_by("-number").first()


MAX_VERSION = 2**31 - 1  # the column's bound


async def get_version(agent: Agent, number: int) -> AgentVersion:
    """Version `number` of `agent` (a workspace-scoped agent: the caller looked it up).

    Raises:
        NotFound: `VERSION_NOT_FOUND`.
    """
    version = (
        await AgentVersion.get_or_none(agent_id=agent.id, number=number)
        if 1 <= number <= MAX_VERSION
        else None
    )
    if version is None:
        raise NotFound("VERSION_NOT_FOUND", f"The agent has no version {number}.")
    return version


async def chosen(agent: Agent, number: int | None) -> AgentVersion | None:
    """The version a chat or test run asked for, or the latest when it named none."""
    return await latest(agent) if number is None else await get_version(agent, number)


async def recorded(agent: Agent, number: int | None) -> AgentVersion | None:
    """The version a call or test run recorded (None: one that recorded none runs the latest
    settings)."""
    if number is None:
        return None
    return await AgentVersion.get_or_none(agent_id=agent.id, number=number)


def split_bucket(call_id: uuid.UUID | str) -> int:
    """0-99, fixed by the call id: a call (and a retried dial of it) always lands the same."""
    digest = hashlib.sha256(str(call_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def pick(agent: Agent, call_id: uuid.UUID | str) -> int | None:
    """The version a new call of `agent` runs: by the traffic split's weights, else published."""
    if not agent.traffic_split:
        return agent.published_version
    bucket = split_bucket(call_id)
    for entry in agent.traffic_split:
        bucket -= int(entry["weight"])
        if bucket < 0:
            return int(entry["version"])
    return agent.published_version  # weights sum to 100: not reached


async def record(
    agent: Agent,
    stored: dict[str, Any],
    same: Callable[[dict[str, Any], dict[str, Any]], bool],
    *,
    author: str | None,
    note: str | None,
    always: bool = False,
) -> AgentVersion | None:
    """A new version of `agent` from its stored settings, unless the latest already has them.

    `same` compares two stored configurations (secrets are encrypted anew on every save, so it
    compares what they decrypt to). With `always`, a version is made even then (a restore).
    """
    previous = await latest(agent)
    snapshot = versioned(stored)
    if previous is not None and not always and same(previous.config, snapshot):
        return None
    version = await AgentVersion.create(
        workspace_id=agent.workspace_id,
        agent_id=agent.id,
        number=(previous.number if previous else 0) + 1,
        config=snapshot,
        version_note=note,
        created_by=author,
    )
    agent.latest_version = version.number
    await Agent.filter(id=agent.id).update(latest_version=version.number)
    return version


async def check_split(agent: Agent, split: list[dict[str, Any]] | None) -> None:
    """Every version a traffic split names must exist (its shape is `AgentConfig`'s to check)."""
    if not split:
        return
    wanted = {int(entry["version"]) for entry in split}
    existing = set(
        await AgentVersion.filter(agent_id=agent.id, number__in=wanted).values_list(
            "number", flat=True
        )
    )
    missing = sorted(wanted - existing)
    if missing:
        raise Invalid(
            "VERSION_NOT_FOUND",
            f"traffic_split names versions the agent does not have: {missing}",
            field="traffic_split",
        )


async def tests_passed(agent: Agent, number: int) -> bool:
    """Whether the latest completed test run of version `number` passed."""
    run = (
        await TestRun.filter(
            agent_id=agent.id, agent_version=number, status__in=COMPLETED_RUN_STATUSES
        )
        .order_by("-created_at")
        .first()
    )
    return run is not None and run.status == TestRunStatus.PASSED


async def check_publishable(agent: Agent, number: int) -> None:
    """Raises Conflict `TESTS_NOT_PASSED` when the agent requires a passing run and `number`
    has none as its latest completed run."""
    if agent.require_passing_tests and not await tests_passed(agent, number):
        raise Conflict(
            "TESTS_NOT_PASSED",
            f"Version {number} cannot be published: this agent requires that the latest "
            "completed test run of the version passed (POST /agents/{id}/test-runs with "
            f'"version": {number}).',
            extra={"version": number},
        )


async def mark_published(agent: Agent, number: int) -> None:
    """Make version `number` the one calls run, and tell the workspace's webhook."""
    if agent.published_version == number:
        return
    agent.published_version = number
    await Agent.filter(id=agent.id).update(published_version=number)
    published_at = utcnow()
    logger.info("agent %s: version %s published", agent.id, number)
    await webhooks.emit(
        agent.workspace_id,
        VERSION_PUBLISHED,
        {
            "agent_id": str(agent.id),
            "agent_name": agent.agent_name,
            "version": number,
            "published_at": published_at.isoformat(),
        },
        event_key=f"{agent.id}:{VERSION_PUBLISHED}:{number}:{published_at.isoformat()}",
    )


async def publish(agent: Agent, number: int) -> AgentVersion:
    """Publish version `number` of a workspace-scoped agent (a rollback is publishing an older
    one). Raises NotFound `VERSION_NOT_FOUND`, Conflict `TESTS_NOT_PASSED`."""
    version = await get_version(agent, number)
    await check_publishable(agent, number)
    await mark_published(agent, number)
    return version


async def after_save(agent: Agent, version: AgentVersion | None) -> None:
    """Publish what a save made when it should be: when nothing is published yet (an agent must
    run something), else when `auto_publish` is on and no passing run is required (a version
    just made has none)."""
    if version is None:
        return
    if agent.published_version is None or (agent.auto_publish and not agent.require_passing_tests):
        await mark_published(agent, version.number)
