"""`/agents/{id}/tests`, `/agents/{id}/test-runs` and `/test-runs`: agent tests and their runs."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, request
from quart_schema import document_request, validate_querystring, validate_request, validate_response

from control import models
from control.errors import Invalid
from control.http.pagination import Page, PageQuery, paginate
from control.http.principal import current_principal, require_role
from control.http.schemas import IsoTime
from control.models import Role
from control.services import agent_tests as test_service
from control.services import agents as agent_service
from control.services.agent_tests import TestCaseDefinition

blueprint = Blueprint("agent_tests", __name__)


class AgentTestCase(BaseModel):
    """A test case: the case as it was saved, with its id."""

    model_config = ConfigDict(extra="allow")  # the case's own fields (turns, persona, mocks …)

    id: str
    agent_id: str
    name: str
    kind: str = Field(description="`scripted` or `simulated`")
    created_at: IsoTime
    updated_at: IsoTime


def case_out(case: models.AgentTestCase) -> dict[str, Any]:
    return {
        **case.definition,
        "id": str(case.id),
        "agent_id": str(case.agent_id),
        "name": case.name,
        "kind": case.kind,
        "created_at": case.created_at.isoformat(),
        "updated_at": case.updated_at.isoformat(),
    }


class TestCaseUpdate(BaseModel):
    """Any fields of a test case; the whole case is validated again."""

    model_config = ConfigDict(extra="allow")


async def _body() -> dict[str, Any]:
    body = await request.get_json()
    if not isinstance(body, dict):
        raise Invalid("INVALID_TEST_CASE", "The body must be a JSON object.", field="body")
    return body


class JudgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: str = Field(min_length=1, max_length=40, description="An LLM provider, e.g. openai")
    model: str | None = Field(default=None, max_length=100)


class TestRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    test_ids: list[uuid.UUID] | None = Field(default=None, max_length=500)
    mode: Literal["text", "voice"] = "text"
    repeat: int = Field(default=1, ge=1, le=10)
    judge: JudgeIn | None = None
    version: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="the agent version to test (latest)"
    )


class TestRunQueued(BaseModel):
    id: str
    status: str


class TestRunSummary(BaseModel):
    """A run's state and counts of cases passed, failed, not judged and errored."""

    id: str
    agent_id: str
    agent_version: int | None = Field(description="the agent version the run tests")
    status: str = Field(description="queued, running, passed, failed, error or cancelled")
    mode: str
    repeat: int
    judge: dict[str, str] | None
    started_at: str | None
    finished_at: str | None
    created_at: str
    total: int
    passed: int
    failed: int
    not_judged: int
    errored: int
    warnings: list[str]
    error: str | None


class TestAttempt(BaseModel):
    """One attempt at a case: its transcript (with tool calls and their mocked or real
    results), each expectation's status and reason, and each turn's latency."""

    attempt: int
    status: str = Field(description="passed, failed, not_judged or error")
    error: str | None = None
    transcript: list[dict[str, Any]]
    expectations: list[dict[str, Any]]
    latencies: list[dict[str, Any]]


class TestCaseResult(BaseModel):
    test_id: str
    name: str
    kind: str
    status: str | None = Field(default=None, description="None until its attempts have run")
    pass_rate: float | None = None
    attempts: list[TestAttempt]


class TestRun(TestRunSummary):
    """A run's results, per case and attempt."""

    cases: list[TestCaseResult]


def run_out(run: models.TestRun) -> dict[str, Any]:
    cases = [
        {key: case.get(key) for key in ("test_id", "name", "kind", "status", "pass_rate")}
        | {"attempts": case["attempts"]}
        for case in run.cases
    ]
    return {**test_service.summary(run), "cases": cases}


@blueprint.get("/agents/<uuid:agent_id>/tests")
@require_role(Role.MEMBER)
@validate_querystring(PageQuery)
@validate_response(Page[AgentTestCase])
async def list_agent_tests(agent_id: uuid.UUID, query_args: PageQuery) -> dict:
    """List the agent's test cases.

    By name, paginated.
    """
    workspace_id = current_principal().workspace_id
    await agent_service.get_agent(workspace_id, agent_id)
    cases = test_service.cases_of(workspace_id, agent_id)
    return (await paginate(cases, query_args, case_out)).model_dump(mode="json")


@blueprint.post("/agents/<uuid:agent_id>/tests")
@require_role(Role.DEVELOPER)
@document_request(TestCaseDefinition)
@validate_response(AgentTestCase, 201)
async def create_agent_test(agent_id: uuid.UUID) -> tuple[dict, int]:
    """Add a test case to the agent.

    A bad case is a 400 whose `errors` name each field path (e.g. `turns[2].expect[0].name`).
    """
    case = await test_service.create_case(current_principal().workspace_id, agent_id, await _body())
    return case_out(case), 201


@blueprint.get("/agents/<uuid:agent_id>/tests/<uuid:test_id>")
@require_role(Role.MEMBER)
@validate_response(AgentTestCase)
async def get_agent_test(agent_id: uuid.UUID, test_id: uuid.UUID) -> dict:
    """Get one test case."""
    workspace_id = current_principal().workspace_id
    return case_out(await test_service.get_case(workspace_id, agent_id, test_id))


@blueprint.patch("/agents/<uuid:agent_id>/tests/<uuid:test_id>")
@require_role(Role.DEVELOPER)
@document_request(TestCaseUpdate)
@validate_response(AgentTestCase)
async def update_agent_test(agent_id: uuid.UUID, test_id: uuid.UUID) -> dict:
    """Change a test case.

    Fields left out keep their values; the whole case is validated again.
    """
    case = await test_service.update_case(
        current_principal().workspace_id, agent_id, test_id, await _body()
    )
    return case_out(case)


@blueprint.delete("/agents/<uuid:agent_id>/tests/<uuid:test_id>")
@require_role(Role.DEVELOPER)
async def delete_agent_test(agent_id: uuid.UUID, test_id: uuid.UUID) -> tuple[str, int]:
    """Delete a test case.

    Past runs keep their copy of it.
    """
    await test_service.delete_case(current_principal().workspace_id, agent_id, test_id)
    return "", 204


@blueprint.post("/agents/<uuid:agent_id>/test-runs")
@require_role(Role.DEVELOPER)
@validate_request(TestRunIn)
@validate_response(TestRunQueued, 202)
async def create_test_run(agent_id: uuid.UUID, data: TestRunIn) -> tuple[dict, int]:
    """Run the agent's test cases (all, or `test_ids`).

    Answers 202 at once; follow the run at `GET /test-runs/{id}`.
    """
    run = await test_service.start_run(
        current_principal().workspace_id,
        agent_id,
        test_ids=data.test_ids,
        mode=data.mode,
        repeat=data.repeat,
        judge=data.judge.model_dump() if data.judge else None,
        version=data.version,
    )
    return {"id": str(run.id), "status": run.status.value}, 202


@blueprint.get("/agents/<uuid:agent_id>/test-runs")
@require_role(Role.MEMBER)
@validate_querystring(PageQuery)
@validate_response(Page[TestRunSummary])
async def list_test_runs(agent_id: uuid.UUID, query_args: PageQuery) -> dict:
    """List the agent's test runs.

    Newest first, with their counts.
    """
    workspace_id = current_principal().workspace_id
    await agent_service.get_agent(workspace_id, agent_id)
    runs = test_service.runs_of(workspace_id, agent_id)
    return (await paginate(runs, query_args, test_service.summary)).model_dump(mode="json")


@blueprint.get("/test-runs/<uuid:run_id>")
@require_role(Role.MEMBER)
@validate_response(TestRun)
async def get_test_run(run_id: uuid.UUID) -> dict:
    """Get a test run's results.

    Per case its pass rate; per attempt the transcript, each expectation's status and reason.
    """
    return run_out(await test_service.get_run(current_principal().workspace_id, run_id))


@blueprint.delete("/test-runs/<uuid:run_id>")
@require_role(Role.DEVELOPER)
@validate_response(TestRun)
async def cancel_test_run(run_id: uuid.UUID) -> dict:
    """Cancel a queued or running test run.

    What it found so far stays; a finished run is a 409.
    """
    return run_out(await test_service.cancel_run(current_principal().workspace_id, run_id))
