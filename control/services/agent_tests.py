"""Agent tests: an agent's test cases, and runs of them (scripted or simulated callers, judged).

A case is validated at save against the agent (its functions) and kept as the API took it. A
run is a row and a durable job (`run_agent_tests`): each attempt's result is stored as soon as
it is known, so a run picked up again after a restart goes on from the next attempt and never
counts one twice. Text mode runs the agent's brain as chats do (`chats.conversation`), with
mocked custom functions answered without a request.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import uuid
from collections.abc import Iterable
from typing import Annotated, Any, Literal

import regex
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet

from control.config import Settings
from control.errors import Conflict, DomainError, Invalid, NotFound
from control.jobs import queue
from control.models import (
    FINAL_TEST_RUN_STATUSES,
    Agent,
    AgentTestCase,
    TestRun,
    TestRunStatus,
)
from control.security import utcnow
from control.services import agent_versions, chats, webhooks
from control.services import agents as agent_service
from control.services import providers as provider_service
from control.services.calls import agent_spec
from runtime.spec import AgentSpec, ProviderCredential
from runtime.spec.providers import UnknownProviderError, provider_info, resolve_provider

logger = logging.getLogger(__name__)

JOB_KIND = "run_agent_tests"
COMPLETED_EVENT = "test_run.completed"
#: Functions every agent has besides its custom ones (knowledge lookup, ending the call).
BUILTIN_FUNCTIONS = frozenset({"lookup_knowledge", "end_call"})
#: How long a `reply_matches` pattern may search one reply.
PATTERN_SECONDS = 0.1
LOCAL_JUDGE_WARNING = (
    "Judged by the small local model: its judgements are unreliable; set a judge "
    "(e.g. openai:gpt-4o-mini) for results to trust."
)
NO_JUDGE_WARNING = (
    "No judge is available (no OpenAI key, no local model): judge expectations and simulated "
    "cases are not judged."
)
DEFAULT_OPENAI_JUDGE = "gpt-4o-mini"
ACTIVE = (TestRunStatus.QUEUED, TestRunStatus.RUNNING)

# -- the schema of a case -----------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolCalled(_Strict):
    type: Literal["tool_called"]
    name: str = Field(min_length=1, max_length=64)
    arguments: dict[str, Any] | None = None


class NoToolCalled(_Strict):
    type: Literal["no_tool_called"]


class ReplyContains(_Strict):
    type: Literal["reply_contains", "reply_not_contains"]
    text: str = Field(min_length=1, max_length=500)


class ReplyMatches(_Strict):
    type: Literal["reply_matches"]
    pattern: str = Field(min_length=1, max_length=500)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            regex.compile(pattern)
        except regex.error as error:
            raise ValueError(f"not a valid regular expression: {error}") from error
        return pattern


class JudgeCriterion(_Strict):
    type: Literal["judge"]
    criterion: str = Field(min_length=1, max_length=1000)


class EndsCall(_Strict):
    type: Literal["ends_call"]


class MaxLatency(_Strict):
    type: Literal["max_latency_ms"]
    value: int = Field(ge=1, le=120_000)


Expectation = Annotated[
    ToolCalled
    | NoToolCalled
    | ReplyContains
    | ReplyMatches
    | JudgeCriterion
    | EndsCall
    | MaxLatency,
    Field(discriminator="type"),
]
EXPECTATION_TYPES = frozenset(
    {
        "tool_called",
        "no_tool_called",
        "reply_contains",
        "reply_not_contains",
        "reply_matches",
        "judge",
        "ends_call",
        "max_latency_ms",
    }
)


class Turn(_Strict):
    user: str = Field(min_length=1, max_length=2000)
    expect: list[Expectation] = Field(default_factory=list, max_length=20)


class Mock(_Strict):
    response: Any = None
    error: str | None = Field(default=None, min_length=1, max_length=500)


class TestCaseDefinition(_Strict):
    """A test case as the API and the YAML file take it."""

    __test__ = False

    name: str = Field(min_length=1, max_length=200)
    kind: Literal["scripted", "simulated"] = "scripted"
    turns: list[Turn] | None = Field(default=None, max_length=50)
    persona: str | None = Field(default=None, min_length=1, max_length=2000)
    goal: str | None = Field(default=None, min_length=1, max_length=2000)
    max_turns: int = Field(default=10, ge=1, le=50)
    success: list[str] = Field(default_factory=list, max_length=20)
    variables: dict[str, str] = Field(default_factory=dict, max_length=50)
    mocks: dict[str, Mock] = Field(default_factory=dict, max_length=50)


def field_path(location: Iterable[int | str]) -> str:
    """A pydantic error location as a field path: `turns[2].expect[0].name` (the tag pydantic
    adds for an expectation's type is left out)."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in EXPECTATION_TYPES and path.endswith("]"):
            continue
        else:
            path += f".{part}" if path else part
    return path or "body"


def _invalid(errors: list[dict[str, str]]) -> Invalid:
    summary = "; ".join(f"{item['field']}: {item['message']}" for item in errors[:5])
    return Invalid("INVALID_TEST_CASE", f"Invalid test case: {summary}", errors=errors)


def validate_case(data: dict[str, Any], function_names: Iterable[str]) -> dict[str, Any]:
    """The case, checked against the schema and the agent's functions; as stored.

    Raises:
        Invalid: `INVALID_TEST_CASE`, each error naming its field path.
    """
    try:
        case = TestCaseDefinition.model_validate(data)
    except ValidationError as error:
        errors = []
        for item in error.errors(include_url=False, include_input=False):
            location = list(item["loc"])
            if item["type"] in ("union_tag_invalid", "union_tag_not_found"):
                location.append("type")
            errors.append({"field": field_path(location), "message": item["msg"]})
        raise _invalid(errors) from None
    known = set(function_names) | BUILTIN_FUNCTIONS
    errors = []
    if case.kind == "scripted":
        if not case.turns:
            errors.append({"field": "turns", "message": "a scripted case needs at least one turn"})
        for index, turn in enumerate(case.turns or []):
            for position, expectation in enumerate(turn.expect):
                if isinstance(expectation, ToolCalled) and expectation.name not in known:
                    errors.append(
                        {
                            "field": f"turns[{index}].expect[{position}].name",
                            "message": f"the agent has no function {expectation.name!r}",
                        }
                    )
    else:
        for name in ("persona", "goal"):
            if not getattr(case, name):
                errors.append({"field": name, "message": "a simulated case needs it"})
        if not case.success:
            errors.append({"field": "success", "message": "a simulated case needs a criterion"})
    for name, mock in case.mocks.items():
        if name not in known - BUILTIN_FUNCTIONS:
            errors.append(
                {"field": f"mocks.{name}", "message": f"the agent has no custom function {name!r}"}
            )
        elif (mock.error is None) == ("response" not in mock.model_fields_set):
            errors.append(
                {"field": f"mocks.{name}", "message": "give exactly one of response or error"}
            )
    if errors:
        raise _invalid(errors)
    return case.model_dump(mode="json", exclude_unset=False, exclude_none=True)


def _function_names(agent: Agent) -> list[str]:
    return [function["name"] for function in agent.config.get("custom_functions") or []]


# -- cases --------------------------------------------------------------------------------------


def cases_of(workspace_id: uuid.UUID, agent_id: uuid.UUID) -> QuerySet[AgentTestCase]:
    return AgentTestCase.filter(workspace_id=workspace_id, agent_id=agent_id).order_by("name", "id")


async def get_case(
    workspace_id: uuid.UUID, agent_id: uuid.UUID, test_id: uuid.UUID
) -> AgentTestCase:
    case = await AgentTestCase.get_or_none(id=test_id, workspace_id=workspace_id, agent_id=agent_id)
    if case is None:
        raise NotFound("TEST_NOT_FOUND", "No test case with that id for this agent.")
    return case


async def _save(case: AgentTestCase) -> AgentTestCase:
    try:
        await case.save()
    except IntegrityError as error:
        raise Conflict(
            "TEST_NAME_TAKEN", f"The agent already has a test case named {case.name!r}."
        ) from error
    return case


async def create_case(
    workspace_id: uuid.UUID, agent_id: uuid.UUID, data: dict[str, Any]
) -> AgentTestCase:
    """Add a test case to the agent (its name unique within the agent)."""
    agent = await agent_service.get_agent(workspace_id, agent_id)
    definition = validate_case(data, _function_names(agent))
    case = AgentTestCase(
        workspace_id=workspace_id,
        agent_id=agent.id,
        name=definition["name"],
        kind=definition["kind"],
        definition=definition,
    )
    return await _save(case)


async def update_case(
    workspace_id: uuid.UUID, agent_id: uuid.UUID, test_id: uuid.UUID, changes: dict[str, Any]
) -> AgentTestCase:
    """Change some fields of a case; the whole case is validated again."""
    agent = await agent_service.get_agent(workspace_id, agent_id)
    case = await get_case(workspace_id, agent_id, test_id)
    definition = validate_case({**case.definition, **changes}, _function_names(agent))
    case.name, case.kind, case.definition = definition["name"], definition["kind"], definition
    return await _save(case)


async def delete_case(workspace_id: uuid.UUID, agent_id: uuid.UUID, test_id: uuid.UUID) -> None:
    case = await get_case(workspace_id, agent_id, test_id)
    await case.delete()


# -- runs ---------------------------------------------------------------------------------------


def runs_of(workspace_id: uuid.UUID, agent_id: uuid.UUID) -> QuerySet[TestRun]:
    return TestRun.filter(workspace_id=workspace_id, agent_id=agent_id).order_by(
        "-created_at", "-id"
    )


async def get_run(workspace_id: uuid.UUID, run_id: uuid.UUID) -> TestRun:
    run = await TestRun.get_or_none(id=run_id, workspace_id=workspace_id)
    if run is None:
        raise NotFound("TEST_RUN_NOT_FOUND", "No test run with that id.")
    return run


def check_judge(judge: dict[str, Any] | None) -> dict[str, str] | None:
    """The run's judge `{provider, model}` resolved against the provider catalogue.

    Raises:
        Invalid: an unknown LLM provider or model (`judge.provider`, `judge.model`).
    """
    if judge is None:
        return None
    try:
        resolved = resolve_provider("llm", judge["provider"], judge.get("model") or None)
    except UnknownProviderError as error:
        raise Invalid("INVALID_JUDGE", str(error), field=f"judge.{error.field}") from error
    return {"provider": resolved.name, "model": resolved.model}


async def start_run(
    workspace_id: uuid.UUID,
    agent_id: uuid.UUID,
    *,
    test_ids: list[uuid.UUID] | None,
    mode: str,
    repeat: int,
    judge: dict[str, Any] | None,
    version: int | None = None,
) -> TestRun:
    """Queue a run of the agent's cases (all of them, or `test_ids`), as a durable job, against
    agent version `version` (the latest by default); the run records the version it tests.

    Raises:
        Invalid: no cases to run, an id that is not the agent's, a judge the catalogue lacks.
        NotFound: `VERSION_NOT_FOUND`.
        Conflict: `TEST_RUN_IN_PROGRESS`, the agent already has a run queued or running.
    """
    agent = await agent_service.get_agent(workspace_id, agent_id)
    tested = await agent_versions.chosen(agent, version)
    resolved_judge = check_judge(judge)
    cases = await cases_of(workspace_id, agent.id)
    if test_ids is not None:
        by_id = {case.id: case for case in cases}
        missing = [str(test_id) for test_id in test_ids if test_id not in by_id]
        if missing:
            raise Invalid(
                "TEST_NOT_FOUND",
                f"Not test cases of this agent: {', '.join(missing)}.",
                field="test_ids",
            )
        cases = [by_id[test_id] for test_id in dict.fromkeys(test_ids)]
    if not cases:
        raise Invalid("NO_TESTS", "The agent has no test cases to run.", field="test_ids")
    if await TestRun.filter(agent_id=agent.id, status__in=ACTIVE).exists():
        raise Conflict(
            "TEST_RUN_IN_PROGRESS", "The agent already has a test run queued or running."
        )
    run = await TestRun.create(
        workspace_id=workspace_id,
        agent_id=agent.id,
        agent_version=tested.number if tested else None,
        mode=mode,
        repeat=repeat,
        judge=resolved_judge,
        cases=[
            {
                "test_id": str(case.id),
                "name": case.name,
                "kind": case.kind,
                "definition": case.definition,
                "attempts": [],
            }
            for case in cases
        ],
    )
    await queue.enqueue(JOB_KIND, {"run_id": str(run.id)}, key=f"{JOB_KIND}:{run.id}")
    return run


async def cancel_run(workspace_id: uuid.UUID, run_id: uuid.UUID) -> TestRun:
    """Cancel a queued or running run; what it found so far stays.

    Raises:
        Conflict: `TEST_RUN_FINISHED`, the run has already finished.
    """
    run = await get_run(workspace_id, run_id)
    cancelled = await TestRun.filter(id=run.id, status__in=ACTIVE).update(
        status=TestRunStatus.CANCELLED, finished_at=utcnow()
    )
    if not cancelled:
        raise Conflict("TEST_RUN_FINISHED", f"The run has already finished ({run.status}).")
    run = await TestRun.get(id=run.id)
    await _announce(run)
    return run


def counts(run: TestRun) -> dict[str, int]:
    """How many of the run's cases passed, failed, were not judged or errored."""
    statuses = [case.get("status") for case in run.cases]
    return {
        "passed": statuses.count("passed"),
        "failed": statuses.count("failed"),
        "not_judged": statuses.count("not_judged"),
        "errored": statuses.count("error"),
    }


def summary(run: TestRun) -> dict[str, Any]:
    """The run without its transcripts: what lists and the webhook show."""
    return {
        "id": str(run.id),
        "agent_id": str(run.agent_id),
        "agent_version": run.agent_version,
        "status": run.status.value,
        "mode": run.mode,
        "repeat": run.repeat,
        "judge": run.judge,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "created_at": run.created_at.isoformat(),
        "total": len(run.cases),
        **counts(run),
        "warnings": run.warnings,
        "error": run.error,
    }


async def _announce(run: TestRun) -> None:
    await webhooks.emit(
        run.workspace_id,
        COMPLETED_EVENT,
        {"test_run_id": str(run.id), **summary(run)},
        event_key=f"{run.id}:{COMPLETED_EVENT}",
    )


# -- judging ------------------------------------------------------------------------------------

JUDGE_PROMPT = (
    "You judge conversations between a caller and a voice agent. Answer with one JSON object "
    'and nothing else: {"passed": true or false, "reason": "one short sentence"}.'
)
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"passed": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["passed", "reason"],
}


def default_judge(settings: Settings) -> tuple[dict[str, str] | None, str | None]:
    """The judge when the run names none, and a warning to show with the results."""
    if os.environ.get("OPENAI_API_KEY"):
        return {"provider": "openai", "model": DEFAULT_OPENAI_JUDGE}, None
    if settings.test_judge_local and importlib.util.find_spec("llama_cpp") is not None:
        return {"provider": "local", "model": provider_info("llm", "local").models[0]}, (
            LOCAL_JUDGE_WARNING
        )
    return None, NO_JUDGE_WARNING


def _transcript_text(transcript: list[dict[str, Any]]) -> str:
    names = {"user": "Caller", "assistant": "Agent"}
    lines = []
    for entry in transcript:
        if entry["role"] in names:
            lines.append(f"{names[entry['role']]}: {entry['text']}")
        elif entry["role"] == "tool_call":
            lines.append(
                f"(the agent called {entry['name']} with {json.dumps(entry['arguments'])})"
            )
    return "\n".join(lines)


def _verdict(text: str) -> tuple[bool, str] | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        parsed = json.loads(text[start : end + 1])
    except ValueError:
        return None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("passed"), bool):
        return None
    return parsed["passed"], str(parsed.get("reason") or "")


class Judge:
    """An LLM asked whether a conversation meets a criterion."""

    def __init__(
        self,
        settings: Settings,
        workspace_id: uuid.UUID,
        choice: dict[str, str],
        *,
        credentials: dict[str, ProviderCredential] | None = None,
    ):
        self.settings = settings
        self.workspace_id = workspace_id
        self.spec = AgentSpec(
            agent_id="judge",
            name="judge",
            llm_provider=choice["provider"],
            llm_model=choice["model"],
            temperature=0.0,
            system_prompt=JUDGE_PROMPT,
            reply_schema=JUDGE_SCHEMA,
            credentials=credentials or {},
        )

    async def decide(
        self, criterion: str, transcript: list[dict[str, Any]], reply: str | None
    ) -> dict[str, str]:
        """`{status, reason}`: passed or failed with the judge's reason."""
        message = f"Judge this conversation.\n\n{_transcript_text(transcript)}\n\n"
        if reply is not None:
            message += f"Judge the agent's last reply: {reply}\n"
        message += f"Criterion: {criterion}"
        answer = await chats.run_turn(
            self.settings,
            message,
            agent=self.spec,
            session_id=f"judge-{uuid.uuid4().hex}",
            workspace_id=str(self.workspace_id),
        )
        verdict = _verdict(answer.reply)
        if verdict is None:
            return {
                "status": "failed",
                "reason": f"the judge's answer was unreadable: {answer.reply!r}"[:500],
            }
        passed, reason = verdict
        return {"status": "passed" if passed else "failed", "reason": reason}


# -- running ------------------------------------------------------------------------------------


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and _subset(value, actual[key]) for key, value in expected.items()
        )
    return bool(expected == actual)


def check_rule(expectation: dict[str, Any], reply: Any) -> dict[str, str]:
    """`{status, reason}` of an expectation that needs no judge, on one turn's reply."""
    kind = expectation["type"]
    called = [call for call in reply.tool_calls if call["name"] != "end_call"]
    text = reply.reply or ""
    if kind == "tool_called":
        matching = [call for call in called if call["name"] == expectation["name"]]
        if not matching:
            names = ", ".join(call["name"] for call in called) or "none"
            return {
                "status": "failed",
                "reason": f"{expectation['name']} was not called (called: {names})",
            }
        wanted = expectation.get("arguments")
        if wanted and not any(_subset(wanted, call["arguments"]) for call in matching):
            got = json.dumps(matching[0]["arguments"])
            return {
                "status": "failed",
                "reason": f"{expectation['name']} was called with {got}, not {json.dumps(wanted)}",
            }
        return {"status": "passed", "reason": f"{expectation['name']} was called"}
    if kind == "no_tool_called":
        if called:
            names = ", ".join(call["name"] for call in called)
            return {"status": "failed", "reason": f"functions were called: {names}"}
        return {"status": "passed", "reason": "no function was called"}
    if kind in ("reply_contains", "reply_not_contains"):
        found = expectation["text"].casefold() in text.casefold()
        if found == (kind == "reply_contains"):
            return {"status": "passed", "reason": f"the reply {'has' if found else 'lacks'} it"}
        what = "does not contain" if kind == "reply_contains" else "contains"
        return {"status": "failed", "reason": f"the reply {what} {expectation['text']!r}: {text!r}"}
    if kind == "reply_matches":
        try:
            matched = regex.search(expectation["pattern"], text, timeout=PATTERN_SECONDS)
        except TimeoutError:
            return {"status": "failed", "reason": "the pattern took too long to match"}
        if matched:
            return {"status": "passed", "reason": f"matched {matched.group(0)!r}"}
        return {"status": "failed", "reason": f"the pattern does not match the reply: {text!r}"}
    if kind == "ends_call":
        if reply.ended:
            return {"status": "passed", "reason": "the agent ended the call"}
        return {"status": "failed", "reason": "the agent did not end the call"}
    if kind == "max_latency_ms":
        # first audio in voice mode (a spoken reply has `heard`), LLM first token in text mode
        latency = reply.first_audio_ms if reply.heard is not None else reply.llm_ttft_ms
        if latency is None:
            return {"status": "failed", "reason": "no latency was measured this turn"}
        if latency <= expectation["value"]:
            return {"status": "passed", "reason": f"{latency:g} ms"}
        return {"status": "failed", "reason": f"{latency:g} ms, over {expectation['value']} ms"}
    raise ValueError(f"unknown expectation type {kind!r}")  # validated at save


def _tool_entries(reply: Any, mocks: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "role": "tool_call",
            "name": call["name"],
            "arguments": call["arguments"],
            "result": call.get("result"),
            "is_error": bool(call.get("is_error")),
            "mocked": call["name"] in mocks,
        }
        for call in reply.tool_calls
    ]


def attempt_status(expectations: list[dict[str, Any]]) -> str:
    statuses = {expectation["status"] for expectation in expectations}
    if "failed" in statuses:
        return "failed"
    if "not_judged" in statuses:
        return "not_judged"
    return "passed"


class CaseRunner:
    """Runs one attempt of one case against the agent: in text mode as a chat, in voice mode
    as a spoken call (the caller's lines synthesised into the agent's real STT, its replies
    through its TTS)."""

    def __init__(
        self, settings: Settings, run: TestRun, spec: AgentSpec, judge: Judge | None
    ) -> None:
        self.settings = settings
        self.run = run
        self.spec = spec
        self.judge = judge

    async def _judged(
        self, criterion: str, transcript: list[dict[str, Any]], reply: str | None
    ) -> dict[str, str]:
        if self.judge is None:
            return {"status": "not_judged", "reason": "no judge is available"}
        return await self.judge.decide(criterion, transcript, reply)

    def _conversation(self, definition: dict[str, Any], session_id: str):
        return chats.conversation(
            self.settings,
            agent=self.spec,
            session_id=session_id,
            workspace_id=str(self.run.workspace_id),
            variables=definition.get("variables") or {},
            function_mocks=definition.get("mocks") or {},
            **self._mode,
        )

    @property
    def _mode(self) -> dict[str, Any]:
        """The conversation's options by the run's mode: a spoken call paces its caller's
        speech and ends as a call does; a text one is told the agent may end it."""
        if self.run.mode != "voice":
            return {"end_call": True}
        return {"spoken": True, "speed": self.settings.test_voice_speed}

    async def attempt(self, case: dict[str, Any], number: int) -> dict[str, Any]:
        """The attempt's transcript, expectation results and latencies, and its status."""
        definition = case["definition"]
        transcript: list[dict[str, Any]] = []
        expectations: list[dict[str, Any]] = []
        latencies: list[dict[str, Any]] = []
        session_id = f"test-{self.run.id}-{case['test_id']}-{number}"
        try:
            async with self._conversation(definition, session_id) as conversation:
                if getattr(conversation, "greeting", None):
                    transcript.append({"role": "assistant", "text": conversation.greeting})
                if case["kind"] == "scripted":
                    await self._scripted(
                        conversation, definition, transcript, expectations, latencies
                    )
                else:
                    await self._simulated(conversation, definition, transcript, latencies)
            if case["kind"] == "simulated":
                for criterion in definition.get("success") or []:
                    verdict = await self._judged(criterion, transcript, None)
                    expectations.append(
                        {"turn": None, "type": "judge", "criterion": criterion, **verdict}
                    )
        except DomainError as error:
            return self._errored(number, transcript, expectations, latencies, error.detail)
        except Exception as error:  # the agent's failure is this attempt's result, not the run's
            logger.exception("test attempt %s failed", session_id)
            return self._errored(number, transcript, expectations, latencies, repr(error))
        return {
            "attempt": number,
            "status": attempt_status(expectations),
            "transcript": transcript,
            "expectations": expectations,
            "latencies": latencies,
        }

    @staticmethod
    def _errored(number, transcript, expectations, latencies, error: str) -> dict[str, Any]:
        return {
            "attempt": number,
            "status": "error",
            "error": error[:2000],
            "transcript": transcript,
            "expectations": expectations,
            "latencies": latencies,
        }

    async def _send(self, conversation, line, turn, definition, transcript, latencies):
        said: dict[str, Any] = {"role": "user", "text": line}
        transcript.append(said)
        reply = await conversation.send(line)
        latency = {"turn": turn, "llm_ttft_ms": reply.llm_ttft_ms}
        if reply.heard is not None:  # spoken: what the agent heard, and its first audio
            said["heard"] = reply.heard
            latency["first_audio_ms"] = reply.first_audio_ms
        transcript.extend(_tool_entries(reply, definition.get("mocks") or {}))
        transcript.append({"role": "assistant", "text": reply.reply})
        latencies.append(latency)
        return reply

    async def _scripted(self, conversation, definition, transcript, expectations, latencies):
        for index, turn in enumerate(definition["turns"]):
            reply = await self._send(
                conversation, turn["user"], index, definition, transcript, latencies
            )
            for expectation in turn.get("expect") or []:
                if expectation["type"] == "judge":
                    verdict = await self._judged(expectation["criterion"], transcript, reply.reply)
                else:
                    verdict = check_rule(expectation, reply)
                expectations.append({"turn": index, **expectation, **verdict})
            if reply.ended:
                break

    async def _simulated(self, conversation, definition, transcript, latencies):
        if self.judge is None:
            return  # no LLM to play the caller: the success criteria are not judged
        caller = Caller(self.settings, self.run.workspace_id, self.judge.spec, definition)
        for index in range(definition.get("max_turns", 10)):
            line, done = await caller.next_line(transcript)
            if line:
                reply = await self._send(
                    conversation, line, index, definition, transcript, latencies
                )
                if reply.ended:
                    break
            if done:
                break


CALLER_PROMPT = (
    "You play a caller phoning a business's voice agent, to test it. Stay in character.\n"
    "Who you are: {persona}\nWhat you want: {goal}\n"
    "Each message you get is what the agent said. Answer with your next line only, short and "
    "natural. When your goal is reached, or the agent cannot help, say goodbye and end your "
    "line with [END]."
)
CALLER_OPENING = "(The call has connected. Say your first line.)"
END_MARKER = "[END]"


class Caller:
    """The simulated caller: an LLM playing the case's persona towards its goal."""

    def __init__(
        self,
        settings: Settings,
        workspace_id: uuid.UUID,
        model: AgentSpec,
        definition: dict[str, Any],
    ) -> None:
        self.settings = settings
        self.workspace_id = workspace_id
        self.spec = model.replace(
            agent_id="caller",
            name="caller",
            temperature=0.7,
            reply_schema=None,
            system_prompt=CALLER_PROMPT.format(
                persona=definition["persona"], goal=definition["goal"]
            ),
        )
        self.session_id = f"caller-{uuid.uuid4().hex}"

    async def next_line(self, transcript: list[dict[str, Any]]) -> tuple[str, bool]:
        """The caller's next line, and whether the caller ends the call with it."""
        # The caller's view: its own lines are the assistant's, the agent's are the user's.
        history = [
            {"role": "assistant" if entry["role"] == "user" else "user", "text": entry["text"]}
            for entry in transcript
            if entry["role"] in ("user", "assistant") and entry["text"]
        ]
        last_agent = history.pop()["text"] if history and history[-1]["role"] == "user" else ""
        answer = await chats.run_turn(
            self.settings,
            last_agent or CALLER_OPENING,
            agent=self.spec,
            session_id=self.session_id,
            workspace_id=str(self.workspace_id),
            history=history,
        )
        text = answer.reply.strip()
        done = END_MARKER in text or not text
        return text.replace(END_MARKER, "").strip(), done


def case_status(case: dict[str, Any]) -> str:
    statuses = [attempt["status"] for attempt in case["attempts"]]
    for status in ("error", "failed", "not_judged"):
        if status in statuses:
            return status
    return "passed"


def pass_rate(case: dict[str, Any]) -> float:
    attempts = case["attempts"]
    if not attempts:
        return 0.0
    return round(sum(a["status"] == "passed" for a in attempts) / len(attempts), 4)


async def _still_running(run_id: uuid.UUID, **changes: Any) -> bool:
    """Store `changes` unless the run stopped running (cancelled); whether it still runs."""
    return bool(await TestRun.filter(id=run_id, status=TestRunStatus.RUNNING).update(**changes))


async def execute_run(settings: Settings, run_id: uuid.UUID) -> None:
    """Run (or go on running) a test run: the job's handler.

    Each attempt is stored when it finishes; attempts already stored are not run again.
    """
    run = await TestRun.get_or_none(id=run_id)
    if run is None or run.status in FINAL_TEST_RUN_STATUSES:
        return
    started = await TestRun.filter(id=run_id, status__in=ACTIVE).update(
        status=TestRunStatus.RUNNING, started_at=run.started_at or utcnow()
    )
    if not started:
        return
    run = await TestRun.get(id=run_id)
    warnings: list[str] = []
    choice = run.judge
    if choice is None:
        choice, warning = default_judge(settings)
        if warning:
            warnings.append(warning)
    agent = await Agent.get_or_none(id=run.agent_id)
    try:
        if agent is None:
            raise NotFound("AGENT_NOT_FOUND", "The agent was deleted.")
        spec = await agent_spec(
            settings, agent, await agent_versions.recorded(agent, run.agent_version)
        )
    except DomainError as error:
        await _finish(run, TestRunStatus.ERROR, warnings, error=error.detail)
        return
    judge = None
    if choice:  # the workspace's key for the judge's vendor, else the platform's
        keys = await provider_service.credentials_for(
            settings, run.workspace_id, [choice["provider"]]
        )
        judge = Judge(settings, run.workspace_id, choice, credentials=keys)
    runner = CaseRunner(settings, run, spec, judge)
    if not await _still_running(run.id, warnings=warnings):
        return
    for case in run.cases:
        for number in range(len(case["attempts"]) + 1, run.repeat + 1):
            case["attempts"].append(await runner.attempt(case, number))
            case["status"], case["pass_rate"] = case_status(case), pass_rate(case)
            if not await _still_running(run.id, cases=run.cases):
                return  # cancelled meanwhile: the cancellation stands
        case["status"], case["pass_rate"] = case_status(case), pass_rate(case)
    statuses = {case["status"] for case in run.cases}
    if "error" in statuses:
        final = TestRunStatus.ERROR
    elif statuses == {"passed"}:
        final = TestRunStatus.PASSED
    else:
        final = TestRunStatus.FAILED
    await _finish(run, final, warnings)


async def _finish(
    run: TestRun, status: TestRunStatus, warnings: list[str], *, error: str | None = None
) -> None:
    finished = await TestRun.filter(id=run.id, status=TestRunStatus.RUNNING).update(
        status=status, finished_at=utcnow(), warnings=warnings, error=error, cases=run.cases
    )
    if finished:
        await _announce(await TestRun.get(id=run.id))
