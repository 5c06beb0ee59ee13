"""Schema fuzzing: schemathesis drives every operation of `/openapi.json` against `voxline serve`.

The server runs in a child process (as in production) with no Twilio, Vonage or LiveKit
credentials. Logged in as a workspace admin, each operation gets a bounded number of generated
requests, valid and invalid, from a fixed seed. No request may answer 500; a 503 is allowed only
when its `code` says a provider is not configured. Responses whose status the schema documents
(the `validate_response` models, and the shared `Error` of every 4xx and 5xx) must match it.

CI runs the fixed seed only, so it cannot flake. `make fuzz SEEDS=N` runs N random seeds (each
printed, and a run per seed), `make fuzz SEED=S` one given seed again
(`VOXLINE_FUZZ_SEEDS` / `VOXLINE_FUZZ_SEED`).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from control.http.principal import ACCESS_COOKIE
from control.models import Membership, Role
from tests.conftest import auth_headers, make_user
from tests.servers import SERVICE_TOKEN, ControlPlaneProcess

# Fixed and small: the whole run takes a few minutes on two busy cores (see the marker below).
SEED = 20240611


def fuzz_seeds() -> list[int]:
    """The seeds to run: `VOXLINE_FUZZ_SEED` (comma-separated), else `VOXLINE_FUZZ_SEEDS` random
    ones, else the fixed `SEED`."""
    given = os.environ.get("VOXLINE_FUZZ_SEED", "").strip()
    if given:
        return [int(part) for part in given.split(",") if part.strip()]
    count = int(os.environ.get("VOXLINE_FUZZ_SEEDS", "0") or "0")
    if count > 0:
        return [random.SystemRandom().randrange(2**32) for _ in range(count)]
    return [SEED]


EXAMPLES_PER_MODE = 20
# The 503s a fuzzer may meet here, because the child has no provider credentials.
NOT_CONFIGURED_CODES = frozenset({"TELEPHONY_NOT_CONFIGURED", "PROVIDER_NOT_CONFIGURED"})
# Providers' variables cleared for the child, so a developer's shell cannot configure them.
PROVIDER_VARIABLES = (
    "LIVEKIT_URL",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "VONAGE_API_KEY",
    "VONAGE_API_SECRET",
    "OPENAI_API_KEY",
    "DEEPGRAM_API_KEY",
)
# Run last: it deletes the (throwaway) workspace it is pointed at. Other path ids are random
# (404s) except `workspace_id` and `agent_id`, pinned to the admin's workspace and a seeded agent.
LAST = ("DELETE", "/workspaces/{workspace_id}")


def allowed_503(response: Any) -> bool:
    """A 503 is fine only when it names a provider that is not configured."""
    try:
        code = response.json().get("code")
    except ValueError:
        return False
    return code in NOT_CONFIGURED_CODES


def check_response(case: schemathesis.Case, response: Any) -> list[str]:
    """The failures of one response: a server error, or a body its documented schema refuses."""
    failures = []
    if response.status_code == 503 and allowed_503(response):
        return failures
    for check in (not_a_server_error, response_schema_conformance):
        try:
            case.validate_response(response, checks=[check])
        except (Failure, FailureGroup) as error:
            failures.append(f"{check.__name__}: {error}"[:1500])
    return failures


@pytest.fixture
async def fuzz_target(settings, db, mailbox, tmp_path) -> AsyncIterator[dict[str, Any]]:
    """`voxline serve` on the test database, an admin and their workspace, and a throwaway one."""
    admin, workspace = await make_user("fuzz-admin@example.com", role=Role.ADMIN)
    _, throwaway = await make_user("fuzz-other@example.com", role=Role.ADMIN)
    await Membership.create(user=admin, workspace=throwaway, role=Role.ADMIN)
    server = ControlPlaneProcess(
        settings,
        tmp_path / "serve.log",
        VOXLINE_JWT_SECRET=settings.jwt_secret,
        VOXLINE_ENCRYPTION_KEY=settings.encryption_key,
        VOXLINE_SMTP_PORT=str(mailbox.port),
        **{name: "" for name in PROVIDER_VARIABLES},
    )
    server.start()
    try:
        await server.wait_until_up()
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            headers = auth_headers(settings, admin, workspace)
            created = await http.post("/agents", json=AGENT_BODY, headers=headers)
            assert created.status_code == 201, created.text
        yield {
            "server": server,
            "headers": headers,
            "workspace_id": str(workspace.id),
            "throwaway_id": str(throwaway.id),
            "agent_id": created.json()["id"],
        }
    finally:
        server.stop()


AGENT_BODY = {
    "agent_name": "Fuzz Agent",
    "phone_number": "+16505550100",
    "LLM_provider": "open ai",
    "LLM_model": "gpt-4o",
    "STT_provider": "deepgram",
    "TTS_provider": "openai",
    "system_prompt": "You are a test agent.",
    "first_message": "Hello.",
}


def fuzz_operation(operation, target, session: requests.Session, fuzz_seed: int) -> list[str]:
    """Run one operation's examples in both modes; the distinct failures found."""
    pinned = {
        "workspace_id": target["throwaway_id"]
        if (operation.method.upper(), operation.path) == LAST
        else target["workspace_id"],
        "agent_id": target["agent_id"],
    }
    path_parameters = {
        name: value
        for name, value in pinned.items()
        if any(p.name == name for p in operation.path_parameters)
    }
    headers = target["headers"]
    if operation.path.startswith("/internal/"):
        headers = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    failures: dict[str, str] = {}
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

        @seed(fuzz_seed)
        @settings(
            max_examples=EXAMPLES_PER_MODE,
            deadline=None,
            derandomize=False,
            database=None,  # the same examples each run: nothing replayed from earlier runs
            phases=[Phase.explicit, Phase.generate],  # report every failure; don't shrink
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: schemathesis.Case) -> None:
            # The schema's security schemes make schemathesis invent credentials; ours replace
            # them, or a third of the requests would stop at a 401 before reaching a handler.
            for name in ("X-API-Key", "Authorization"):
                (case.headers or {}).pop(name, None)
            (case.cookies or {}).pop(ACCESS_COOKIE, None)
            response = case.call(
                base_url=target["server"].url, session=session, headers=headers, timeout=30
            )
            for failure in check_response(case, response):
                key = f"{response.status_code} {failure.splitlines()[0][:200]}"
                failures.setdefault(key, f"{failure}\n  reproduce: {case.as_curl_command(headers)}")

        try:
            run()
        except Unsatisfiable:
            # Some seeds find no request of this mode for the operation (e.g. no way to make its
            # only parameter invalid): nothing was sent, so nothing failed.
            print(f"  {operation.method.upper()} {operation.path}: no {mode.value} example")
    return [f"{operation.method.upper()} {operation.path}: {text}" for text in failures.values()]


@pytest.mark.parametrize("fuzz_seed", fuzz_seeds(), ids=lambda value: f"seed={value}")
async def test_no_operation_answers_500(fuzz_target, capsys, fuzz_seed):
    with capsys.disabled():
        print(f"\nfuzzing with seed {fuzz_seed} (again: make fuzz SEED={fuzz_seed})")
    schema = schemathesis.openapi.from_url(f"{fuzz_target['server'].url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    # Deletes last (the seeded agent must outlive the routes that use it), the workspace's last.
    operations.sort(
        key=lambda op: ((op.method.upper(), op.path) == LAST, op.method.upper() == "DELETE")
    )
    assert len(operations) > 50, "the schema lost its operations"
    started = time.monotonic()
    failures: list[str] = []
    with requests.Session() as session:
        for operation in operations:
            failures += fuzz_operation(operation, fuzz_target, session, fuzz_seed)
    with capsys.disabled():
        print(
            f"\nfuzzed {len(operations)} operations with seed {fuzz_seed} "
            f"in {time.monotonic() - started:.0f}s"
        )
    assert not failures, (
        f"seed {fuzz_seed}:\n\n" + "\n\n".join(failures) + "\n\n" + fuzz_target["server"].log_tail()
    )
