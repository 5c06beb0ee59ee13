"""Agent tests: an agent's test cases (scripted or simulated callers) and the runs of them."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:  # relations name their models by string; these are for type hints
    from control.models.accounts import Workspace
    from control.models.agents import Agent


class AgentTestCase(Model):
    """One test case; `definition` holds the case as the API takes it (turns or persona and
    goal, variables, mocks), validated at save."""

    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="agent_tests", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    agent: fields.ForeignKeyRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="tests", on_delete=fields.CASCADE
    )
    agent_id: uuid.UUID
    name = fields.CharField(max_length=200)
    kind = fields.CharField(max_length=16)
    definition: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "agent_tests"
        unique_together = (("agent", "name"),)


class TestRunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    CANCELLED = "cancelled"


FINAL_TEST_RUN_STATUSES = (
    TestRunStatus.PASSED,
    TestRunStatus.FAILED,
    TestRunStatus.ERROR,
    TestRunStatus.CANCELLED,
)


class TestRun(Model):
    """A run of some of an agent's test cases; `cases` holds each case's definition as it was
    when the run was asked for and, as attempts finish, their results."""

    __test__ = False  # not a pytest class, whatever its name

    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="test_runs", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    agent: fields.ForeignKeyRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="test_runs", on_delete=fields.CASCADE
    )
    agent_id: uuid.UUID
    status = fields.CharEnumField(TestRunStatus, max_length=16, default=TestRunStatus.QUEUED)
    mode = fields.CharField(max_length=8, default="text")
    repeat = fields.IntField(default=1)
    judge: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    cases: fields.JSONField[list[dict[str, Any]]] = fields.JSONField(default=list)
    warnings: fields.JSONField[list[str]] = fields.JSONField(default=list)
    error: str | None = fields.TextField(null=True)
    agent_version = fields.IntField(null=True)  # the version it tested
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "test_runs"
        indexes = (("workspace_id", "agent_id", "created_at"),)
