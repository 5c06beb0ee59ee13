"""`/agents`: agent configuration, knowledge files and knowledge queries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, current_app, request
from quart_schema import DataSource, tag, validate_querystring, validate_request, validate_response

from control.http.pagination import Page, PageQuery, paginate
from control.http.principal import current_principal, require_role
from control.http.ratelimit import per_minute
from control.http.request import takes_upload
from control.http.schemas import FileParts, IsoTime, file_fields_required
from control.models import Agent, KnowledgeFile, Role
from control.services import agents as agent_service
from control.services import chats, knowledge_files
from control.services.agent_config import AgentConfig, AgentUpdate, SplitEntry

blueprint = Blueprint("agents", __name__, url_prefix="/agents")

UPLOAD_FIELDS = ("files", "file")


def _settings():
    return current_app.config["SETTINGS"]


class AgentOut(BaseModel):
    """An agent: its identity, and every `AgentConfig` field as stored, secrets masked.

    `phone_number_warning` (a string) is present only when the named number routes no calls.
    """

    model_config = ConfigDict(extra="allow")  # the AgentConfig fields, and that warning

    id: str
    workspace_id: str
    agent_name: str
    phone_number: str | None
    phone_number_status: str | None = Field(description="`active`, `not_registered` or null")
    unreadable_secrets: list[str]
    auto_publish: bool
    require_passing_tests: bool
    traffic_split: list[SplitEntry] | None
    published_version: int | None = Field(description="the version calls run")
    latest_version: int | None = Field(description="the newest version (chats run it)")
    draft: bool = Field(description="the newest version is not the published one")
    created_at: IsoTime
    updated_at: IsoTime


def agent_out(agent: Agent) -> dict[str, Any]:
    return {
        "id": str(agent.id),
        "workspace_id": str(agent.workspace_id),
        "agent_name": agent.agent_name,
        "phone_number": agent.phone_number,
        **agent_service.public_config(_settings(), agent),
        **agent_service.phone_number_status(agent),
        "auto_publish": agent.auto_publish,
        "require_passing_tests": agent.require_passing_tests,
        "traffic_split": agent.traffic_split,
        "published_version": agent.published_version,
        "latest_version": agent.latest_version,
        "draft": agent.latest_version != agent.published_version,
        "created_at": agent.created_at.isoformat(),
        "updated_at": agent.updated_at.isoformat(),
    }


class KnowledgeFileOut(BaseModel):
    filename: str
    kind: str
    size_bytes: int
    status: str
    error: str | None
    chunk_count: int
    page_count: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, file: KnowledgeFile) -> KnowledgeFileOut:
        return cls(
            filename=file.filename,
            kind=file.kind,
            size_bytes=file.size_bytes,
            status=file.status.value,
            error=file.error,
            chunk_count=file.chunk_count,
            page_count=file.page_count,
            created_at=file.created_at,
            updated_at=file.updated_at,
        )


class UploadForm(BaseModel):
    """Multipart form: one or more `files` fields (PDF, DOCX, TXT, MD, CSV or HTML)."""

    model_config = ConfigDict(extra="allow", json_schema_extra=file_fields_required("files"))

    files: FileParts = None


class QueryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(default=5, ge=1, le=20)


class PassageOut(BaseModel):
    file_name: str
    position: int
    page: int | None
    score: float
    text: str


class UploadedOut(BaseModel):
    files: list[KnowledgeFileOut]


class QueryOut(BaseModel):
    query: str
    results: list[PassageOut]


@blueprint.get("")
@require_role(Role.MEMBER)
@validate_querystring(PageQuery)
@validate_response(Page[AgentOut])
async def list_agents(query_args: PageQuery) -> dict:
    """List the workspace's agents.

    Newest first, paginated.
    """
    agents = agent_service.agents_of(current_principal().workspace_id)
    return (await paginate(agents, query_args, agent_out)).model_dump(mode="json")


@blueprint.post("")
@require_role(Role.DEVELOPER)
@validate_request(AgentConfig)
@validate_response(AgentOut, 201)
async def create_agent(data: AgentConfig) -> tuple[dict, int]:
    """Create an agent.

    Providers and models are checked against the runtime's catalogue.
    """
    principal = current_principal()
    agent = await agent_service.create_agent(
        _settings(), principal.workspace_id, data.model_dump(), author=principal.label
    )
    return agent_out(agent), 201


@blueprint.get("/<uuid:agent_id>")
@require_role(Role.MEMBER)
@validate_response(AgentOut)
async def get_agent(agent_id: uuid.UUID) -> dict:
    """Get an agent.

    Custom-function header values are masked.
    """
    return agent_out(await agent_service.get_agent(current_principal().workspace_id, agent_id))


@blueprint.put("/<uuid:agent_id>")
@require_role(Role.DEVELOPER)
@validate_request(AgentUpdate)
@validate_response(AgentOut)
async def update_agent(agent_id: uuid.UUID, data: AgentUpdate) -> dict:
    """Update an agent.

    Merges: fields left out keep their values; masked header values keep their secrets.
    """
    principal = current_principal()
    agent = await agent_service.update_agent(
        _settings(),
        principal.workspace_id,
        agent_id,
        data.model_dump(exclude_unset=True),
        author=principal.label,
    )
    return agent_out(agent)


@blueprint.delete("/<uuid:agent_id>")
@require_role(Role.DEVELOPER)
async def delete_agent(agent_id: uuid.UUID) -> tuple[str, int]:
    """Delete an agent.

    Its knowledge files and their chunks go with it.
    """
    await agent_service.delete_agent(_settings(), current_principal().workspace_id, agent_id)
    return "", 204


@blueprint.post("/<uuid:agent_id>/web-call-key/rotate")
@require_role(Role.DEVELOPER)
@validate_response(AgentOut)
async def rotate_web_call_key(agent_id: uuid.UUID) -> dict:
    """Give the agent a new web-call public key.

    The old key stops working at once; pages that embed it need the new one.
    """
    agent = await agent_service.rotate_web_call_key(current_principal().workspace_id, agent_id)
    return agent_out(agent)


@blueprint.post("/<uuid:agent_id>/upload")
@takes_upload
@require_role(Role.DEVELOPER)
@validate_request(UploadForm, source=DataSource.FORM_MULTIPART)
@validate_response(UploadedOut, 202)
@tag(["knowledge"])
async def upload_files(agent_id: uuid.UUID, data: UploadForm) -> tuple[dict, int]:
    """Upload knowledge files (multipart field `files`, several allowed).

    Answers 202 at once; each file is then indexed in the background (see `/files`).
    """
    workspace_id = current_principal().workspace_id
    agent = await agent_service.get_agent(workspace_id, agent_id)
    form_files = await request.files
    uploads = [
        knowledge_files.Upload(filename=storage.filename or "", data=storage.read())
        for field in UPLOAD_FIELDS
        for storage in form_files.getlist(field)
    ]
    stored = await knowledge_files.store_uploads(_settings(), workspace_id, agent, uploads)
    return {"files": [KnowledgeFileOut.of(file).model_dump(mode="json") for file in stored]}, 202


@blueprint.get("/<uuid:agent_id>/files")
@require_role(Role.MEMBER)
@validate_querystring(PageQuery)
@validate_response(Page[KnowledgeFileOut])
@tag(["knowledge"])
async def list_files(agent_id: uuid.UUID, query_args: PageQuery) -> dict:
    """List the agent's knowledge files.

    Each with its size, status (processing, ready, failed with the reason) and chunk count.
    """
    workspace_id = current_principal().workspace_id
    await agent_service.get_agent(workspace_id, agent_id)
    files = knowledge_files.files_of(workspace_id, agent_id)
    return (await paginate(files, query_args, KnowledgeFileOut.of)).model_dump(mode="json")


@blueprint.delete("/<uuid:agent_id>/files/<path:filename>")
@require_role(Role.DEVELOPER)
@tag(["knowledge"])
async def delete_file(agent_id: uuid.UUID, filename: str) -> tuple[str, int]:
    """Delete a knowledge file.

    Its chunks are removed from the index.
    """
    workspace_id = current_principal().workspace_id
    await agent_service.get_agent(workspace_id, agent_id)
    await knowledge_files.delete_file(_settings(), workspace_id, agent_id, filename)
    return "", 204


@blueprint.post("/<uuid:agent_id>/query")
@require_role(Role.MEMBER)
@validate_request(QueryIn)
@validate_response(QueryOut)
@tag(["knowledge"])
async def query_knowledge(agent_id: uuid.UUID, data: QueryIn) -> dict:
    """Query the agent's knowledge base.

    Returns the best passages with file name, position and score.
    """
    workspace_id = current_principal().workspace_id
    await agent_service.get_agent(workspace_id, agent_id)
    passages = await knowledge_files.query(workspace_id, agent_id, data.query, data.top_k)
    results = [
        PassageOut(
            file_name=p.file_name, position=p.position, page=p.page, score=p.score, text=p.text
        ).model_dump()
        for p in passages
    ]
    return {"query": data.query, "results": results}


class FunctionTestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arguments: dict[str, Any] = Field(
        default_factory=dict, description="Sample arguments, as the LLM would pass them"
    )


class FunctionTestOut(BaseModel):
    ok: bool
    response: str | None = Field(description="The answer the LLM would see (trimmed)")
    error: str | None = Field(description="What the LLM would be told instead, on a failure")
    elapsed_ms: float


@blueprint.post("/<uuid:agent_id>/functions/<name>/test")
@require_role(Role.DEVELOPER)
@per_minute(30)
@validate_request(FunctionTestIn)
@validate_response(FunctionTestOut)
async def try_custom_function(agent_id: uuid.UUID, name: str, data: FunctionTestIn) -> dict:
    """Call one custom function once with sample arguments, as a call would.

    Same URL checks and headers as on a call; answers `ok`, the response or the error the LLM
    would see, and the time it took. A failing endpoint is a 200 with `ok: false`.
    """
    workspace_id = current_principal().workspace_id
    return await chats.try_function(_settings(), workspace_id, agent_id, name, data.arguments)
