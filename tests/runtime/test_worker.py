"""The worker's call flow up to the LiveKit boundary: specs in, dials out, one report back.

The control plane is the real app (reached over ASGI, on the test database) and the LiveKit
server API is the Twirp stand-in; the agent session runs room-less, on text, with the scripted
LLM. Jobs start from the dispatch metadata the control plane itself gave LiveKit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from livekit import api as lk
from livekit.agents import NOT_GIVEN

from control.models import Agent, Call, PhoneNumber, Role
from control.services.agents import create_agent
from runtime.config import RuntimeSettings
from runtime.worker import run_worker, worker_options
from tests.conftest import auth_headers, free_port, make_user, scripted_agent_config
from tests.fakes.livekit_server import FakeLiveKit, SipCaller, no_caller
from tests.fakes.openai_server import FakeOpenAI

AGENT_NUMBER = "+16505551234"
CALLEE = "+14155559876"
CALLER = "+14155550000"
TRUNK_BODY = {"sip_address": "sip.example.com", "phone_number": AGENT_NUMBER, "provider": "vonage"}
GREETING = "Hello {{customer_name}}, this is Acme."


@dataclass
class Job:
    """What LiveKit hands the worker: the dispatch's metadata and room."""

    call_id: str
    metadata: str
    room_name: str


async def scripted_line(
    client: Any, settings: Any, scripted_llm: FakeOpenAI, *, role: Role = Role.ADMIN, **agent: Any
) -> dict:
    """A user's number with an outbound trunk (in the stand-in) and its agent on the scripted
    LLM, "Acme", with `agent`'s fields: {headers, workspace, agent}."""
    user, workspace = await make_user("dev@example.com", role=role)
    headers = auth_headers(settings, user)
    trunk = await client.post("/phonenumbers/sip_trunk", json=TRUNK_BODY, headers=headers)
    assert trunk.status_code == 201, await trunk.get_json()
    created = await create_agent(
        settings.model_copy(update={"allow_private_urls": True}),  # the LLM is on loopback
        workspace.id,
        scripted_agent_config(scripted_llm, agent_name="Acme", phone_number=AGENT_NUMBER, **agent),
    )
    return {"headers": headers, "workspace": workspace, "agent": created}


@pytest.fixture
async def line(client: Any, settings: Any, livekit: FakeLiveKit, scripted_llm: FakeOpenAI) -> dict:
    """A developer's number with an outbound trunk (in the stand-in) and its agent."""
    return await scripted_line(
        client,
        settings,
        scripted_llm,
        role=Role.DEVELOPER,
        first_message=GREETING,
        allow_web_calls=True,
    )


def dispatched_job(livekit: FakeLiveKit, call_id: str) -> Job:
    [dispatch] = [
        dispatch
        for dispatch in livekit.dispatches.values()
        if json.loads(dispatch.metadata).get("call_id") == call_id
    ]
    return Job(call_id, dispatch.metadata, dispatch.room)


async def outbound_job(client: Any, line: dict, livekit: FakeLiveKit) -> Job:
    body = {
        "agent_phone_number": AGENT_NUMBER,
        "phone_number_to_dial": CALLEE,
        "dynamic_variables": {"customer_name": "John"},
    }
    response = await client.post("/calls/outbound_call", json=body, headers=line["headers"])
    assert response.status_code == 201, await response.get_json()
    return dispatched_job(livekit, (await response.get_json())["call_id"])


async def web_job(client: Any, livekit: FakeLiveKit, phone: str = AGENT_NUMBER) -> Job:
    [agent] = [agent for agent in await Agent.all() if agent.config["phone_number"] == phone]
    key = agent.config["web_call_public_key"]
    response = await client.get(
        "/calls/generate-token", query_string={"phone": phone, "public_key": key}
    )
    assert response.status_code == 200, await response.get_json()
    return dispatched_job(livekit, (await response.get_json())["call_id"])


def said_by_agent(call: Call) -> list[str]:
    return [turn["text"] for turn in call.transcript if turn["role"] == "assistant"]


# ------------------------------------------------------------------------------------------
# Outbound
# ------------------------------------------------------------------------------------------


async def test_outbound_call_dials_the_callee_and_greets_once_answered(
    client, line, livekit, livekit_api, control_plane, new_runner
):
    job = await outbound_job(client, line, livekit)
    runner = new_runner()

    ended = await runner.run(job.metadata, job.room_name, livekit_api, no_caller, None)

    assert ended is None
    [dial] = livekit.calls("CreateSIPParticipant")
    number = await PhoneNumber.get(phone_number=AGENT_NUMBER)
    assert dial.error is None
    assert dial.request["sip_trunk_id"] == number.outbound_trunk_id
    assert dial.request["sip_call_to"] == CALLEE
    assert dial.request["sip_number"] == AGENT_NUMBER
    assert dial.request["room_name"] == job.room_name
    assert dial.request["participant_identity"] == f"sip-{job.call_id}"
    assert dial.request["wait_until_answered"] is True
    assert f"sip-{job.call_id}" in livekit.participants[job.room_name]
    assert runner.agent.greeting is not None
    await runner.agent.greeting

    await runner.session.aclose()  # the call ends, then the job shuts down
    await runner.finish("room closed")

    assert control_plane.requests == [
        ("GET", f"/internal/calls/{job.call_id}/spec"),
        ("POST", f"/internal/calls/{job.call_id}/report"),
    ]
    call = await Call.get(id=job.call_id)
    assert call.status == "completed" and call.sip_status is None
    assert call.answered_at is not None
    assert said_by_agent(call) == ["Hello John, this is Acme."]


@pytest.mark.parametrize(
    ("sip_status", "call_status"), [(486, "busy"), (480, "no_answer"), (603, "rejected")]
)
async def test_a_failed_dial_reports_the_sip_status(
    client, line, livekit, livekit_api, control_plane, new_runner, sip_status, call_status
):
    job = await outbound_job(client, line, livekit)
    livekit.fail_dial(sip_status)
    runner = new_runner()

    ended = await runner.run(job.metadata, job.room_name, livekit_api, no_caller, None)

    assert ended == f"dial failed: {call_status}"
    [dial] = livekit.calls("CreateSIPParticipant")
    assert dial.error is not None and dial.request["wait_until_answered"] is True
    assert runner.agent.greeting is None  # nobody answered: nothing is said
    await runner.finish(ended)  # what `ctx.shutdown(reason=ended)` runs

    assert control_plane.reports() == [("POST", f"/internal/calls/{job.call_id}/report")]
    call = await Call.get(id=job.call_id)
    assert (call.status, call.end_reason, call.sip_status) == (
        call_status,
        "dial_failed",
        sip_status,
    )
    assert call.answered_at is None and said_by_agent(call) == []
    assert livekit.participants.get(job.room_name, {}) == {}


# ------------------------------------------------------------------------------------------
# Inbound and web
# ------------------------------------------------------------------------------------------


async def test_inbound_call_opens_a_call_log_for_the_dialled_number(
    line, livekit, livekit_api, control_plane, new_runner
):
    caller = SipCaller({"sip.trunkPhoneNumber": AGENT_NUMBER, "sip.phoneNumber": CALLER})
    runner = new_runner()

    ended = await runner.run("", "inbound-room-7", livekit_api, caller.join, None)

    assert ended is None and caller.joined == 1
    assert control_plane.requests == [("POST", f"/internal/numbers/{AGENT_NUMBER}/calls")]
    [call] = await Call.all()
    assert (call.call_type, call.call_direction) == ("phone", "inbound")
    assert (call.from_number, call.to_number, call.room_name) == (
        CALLER,
        AGENT_NUMBER,
        "inbound-room-7",
    )
    assert call.agent_id == line["agent"].id
    assert livekit.calls("CreateSIPParticipant") == []
    assert runner.agent.greeting is not None  # the caller is greeted at once


async def test_a_job_without_call_id_or_sip_caller_opens_no_call(
    line, livekit_api, control_plane, new_runner
):
    runner = new_runner()

    with pytest.raises(RuntimeError, match="without a SIP caller"):
        await runner.run("", "some-room", livekit_api, SipCaller({}).join, None)
    await runner.finish("error")

    assert control_plane.requests == []
    assert await Call.all().count() == 0


async def test_web_call_greets_on_enter_without_dialling(
    client, line, livekit, livekit_api, control_plane, new_runner
):
    job = await web_job(client, livekit)
    runner = new_runner()

    ended = await runner.run(job.metadata, job.room_name, livekit_api, no_caller, None)

    assert ended is None
    assert control_plane.requests == [("GET", f"/internal/calls/{job.call_id}/spec")]
    assert livekit.calls("CreateSIPParticipant") == []
    assert runner.agent.greeting is not None
    await runner.agent.greeting
    await runner.session.aclose()
    await runner.finish("room closed")

    call = await Call.get(id=job.call_id)
    assert (call.call_type, call.status) == ("web", "completed")
    [greeting] = said_by_agent(call)
    assert greeting.endswith("this is Acme.")


# ------------------------------------------------------------------------------------------
# However the job ends, one report
# ------------------------------------------------------------------------------------------


async def test_a_crash_during_the_call_is_reported_once(
    client, line, livekit, control_plane, new_runner
):
    job = await outbound_job(client, line, livekit)
    unreachable = lk.LiveKitAPI(
        f"http://127.0.0.1:{free_port()}", livekit.api_key, livekit.api_secret
    )
    runner = new_runner()

    with pytest.raises(aiohttp.ClientConnectionError):
        await runner.run(job.metadata, job.room_name, unreachable, no_caller, None)
    await unreachable.aclose()
    # the job shuts down after the error; a second shutdown must not report again
    await asyncio.gather(runner.finish("error"), runner.finish("worker shutting down"))

    assert control_plane.reports() == [("POST", f"/internal/calls/{job.call_id}/report")]
    call = await Call.get(id=job.call_id)
    assert (call.status, call.end_reason) == ("failed", "error")
    assert "ClientConnectorError" in call.error


async def test_a_call_whose_llm_cannot_be_built_is_still_reported(
    client, line, settings, livekit, livekit_api, control_plane, new_runner, monkeypatch
):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    await create_agent(
        settings,
        line["workspace"].id,
        {
            "agent_name": "Keyless",
            "phone_number": "+16505550000",
            "LLM_provider": "openai",
            "allow_web_calls": True,
        },
    )
    job = await web_job(client, livekit, phone="+16505550000")
    runner = new_runner()

    with pytest.raises(Exception, match="OPENAI_API_KEY"):
        await runner.run(job.metadata, job.room_name, livekit_api, no_caller, None)
    await runner.finish("error")

    assert control_plane.reports() == [("POST", f"/internal/calls/{job.call_id}/report")]
    call = await Call.get(id=job.call_id)
    assert (call.status, call.end_reason) == ("failed", "provider_not_configured")
    assert "OPENAI_API_KEY" in call.error and call.ended_at is not None


async def test_a_worker_shutdown_mid_call_reports_what_was_said_once(
    client, line, livekit, livekit_api, control_plane, new_runner
):
    job = await web_job(client, livekit)
    runner = new_runner()
    await runner.run(job.metadata, job.room_name, livekit_api, no_caller, None)
    await runner.agent.greeting

    await runner.finish("worker shutting down")  # the session is still running
    await runner.finish("worker shutting down")

    assert control_plane.reports() == [("POST", f"/internal/calls/{job.call_id}/report")]
    call = await Call.get(id=job.call_id)
    assert call.status == "failed" and call.end_reason == "error"
    assert [text.endswith("this is Acme.") for text in said_by_agent(call)] == [True]


# ------------------------------------------------------------------------------------------
# run_worker: waiting for LiveKit
# ------------------------------------------------------------------------------------------


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if text in record.getMessage()]


async def test_run_worker_without_livekit_url_warns_once_and_keeps_waiting(monkeypatch, caplog):
    monkeypatch.delenv("LIVEKIT_URL", raising=False)
    caplog.set_level(logging.WARNING, logger="runtime.worker")

    worker = asyncio.create_task(run_worker(RuntimeSettings(), retry_seconds=0.01))
    for _ in range(600):  # wait for the first warning, however slow the machine is
        if messages(caplog, "LIVEKIT_URL is not set") or worker.done():
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # then some thirty more checks, which must stay quiet

    assert not worker.done()
    assert len(messages(caplog, "LIVEKIT_URL is not set")) == 1
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker


async def test_run_worker_retries_when_livekit_is_unreachable(monkeypatch, caplog):
    url = f"ws://127.0.0.1:{free_port()}"
    monkeypatch.setenv("LIVEKIT_URL", url)
    monkeypatch.setenv("LIVEKIT_API_KEY", "APIvoxlinetest")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "voxline-livekit-test-secret-0123456789abcdef")
    caplog.set_level(logging.WARNING, logger="runtime.worker")
    settings = RuntimeSettings()
    # give up on each connection at once, and start no job processes or fixed ports
    options = dataclasses.replace(
        worker_options(settings),
        max_retry=0,
        num_idle_processes=0,
        port=0,
        prometheus_port=NOT_GIVEN,
        prometheus_multiproc_dir=None,
    )

    worker = asyncio.create_task(run_worker(settings, options=options, retry_seconds=0.05))
    for _ in range(200):
        if len(messages(caplog, "cannot work with LiveKit")) >= 2 or worker.done():
            break
        await asyncio.sleep(0.05)

    assert not worker.done(), worker.exception()
    warnings = messages(caplog, "cannot work with LiveKit")
    assert len(warnings) >= 2 and url in warnings[0]
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
