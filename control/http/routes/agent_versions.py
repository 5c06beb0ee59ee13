"""`/agents/{id}/versions` and `/agents/{id}/publish`: an agent's versions, restoring and
publishing them."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, current_app
from quart_schema import validate_querystring, validate_request, validate_response

from control.http.pagination import Page, PageQuery, paginate
from control.http.principal import current_principal, require_role
from control.http.routes.agents import AgentOut, agent_out
from control.http.schemas import IsoTime
from control.models import Agent, AgentVersion, Role
from control.services import agent_versions
from control.services import agents as agent_service

blueprint = Blueprint("agent_versions", __name__)


def _settings():
    return current_app.config["SETTINGS"]


class AgentVersionOut(BaseModel):
    """A version of an agent: who saved it, when, with which note, and how calls use it."""

    version: int
    version_note: str | None
    created_by: str | None
    created_at: IsoTime
    published: bool = Field(description="calls run this version (unless a split says otherwise)")
    latest: bool = Field(description="the newest version: chats and test runs run it by default")
    split_weight: int | None = Field(description="its percent of new calls in the traffic split")


class AgentVersionDetailOut(AgentVersionOut):
    """A version with its configuration as it was saved (secrets masked)."""

    config: dict[str, Any] = Field(
        description="every versioned setting (not the name, number or version settings)"
    )
    unreadable_secrets: list[str]


def version_out(agent: Agent, version: AgentVersion) -> dict[str, Any]:
    weights = {entry["version"]: entry["weight"] for entry in agent.traffic_split or []}
    return {
        "version": version.number,
        "version_note": version.version_note,
        "created_by": version.created_by,
        "created_at": version.created_at.isoformat(),
        "published": version.number == agent.published_version,
        "latest": version.number == agent.latest_version,
        "split_weight": weights.get(version.number),
    }


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=agent_versions.MAX_VERSION)


@blueprint.get("/agents/<uuid:agent_id>/versions")
@require_role(Role.MEMBER)
@validate_querystring(PageQuery)
@validate_response(Page[AgentVersionOut])
async def list_agent_versions(agent_id: uuid.UUID, query_args: PageQuery) -> dict:
    """List the agent's versions.

    Newest first, paginated; each says whether it is the published one.
    """
    workspace_id = current_principal().workspace_id
    agent = await agent_service.get_agent(workspace_id, agent_id)
    versions = agent_versions.versions_of(workspace_id, agent.id)
    page = await paginate(versions, query_args, lambda version: version_out(agent, version))
    return page.model_dump(mode="json")


@blueprint.get("/agents/<uuid:agent_id>/versions/<int:number>")
@require_role(Role.MEMBER)
@validate_response(AgentVersionDetailOut)
async def get_agent_version(agent_id: uuid.UUID, number: int) -> dict:
    """Get one version of the agent.

    Its whole configuration as it was saved; secrets are masked as everywhere.
    """
    agent = await agent_service.get_agent(current_principal().workspace_id, agent_id)
    version = await agent_versions.get_version(agent, number)
    shown = agent_service.public_config(_settings(), agent, version)
    return {
        **version_out(agent, version),
        "config": agent_versions.versioned(shown),
        "unreadable_secrets": shown.get("unreadable_secrets", []),
    }


@blueprint.post("/agents/<uuid:agent_id>/versions/<int:number>/restore")
@require_role(Role.DEVELOPER)
@validate_response(AgentVersionOut, 201)
async def restore_agent_version(agent_id: uuid.UUID, number: int) -> tuple[dict, int]:
    """Restore a version: a new version equal to it.

    Published at once when the agent auto-publishes (and requires no passing tests).
    """
    principal = current_principal()
    agent, version = await agent_service.restore_version(
        _settings(), principal.workspace_id, agent_id, number, author=principal.label
    )
    return version_out(agent, version), 201


@blueprint.post("/agents/<uuid:agent_id>/publish")
@require_role(Role.DEVELOPER)
@validate_request(PublishIn)
@validate_response(AgentOut)
async def publish_agent_version(agent_id: uuid.UUID, data: PublishIn) -> dict:
    """Publish a version: the one calls run.

    Publishing an older version rolls back. 409 `TESTS_NOT_PASSED` when the agent requires a
    passing test run of the version and its latest completed run did not pass.
    """
    agent = await agent_service.get_agent(current_principal().workspace_id, agent_id)
    await agent_versions.publish(agent, data.version)
    return agent_out(agent)
