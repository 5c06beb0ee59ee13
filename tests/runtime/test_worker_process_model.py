"""The worker's process model: several calls at once in one process, one crashing, all reported.

The calls run the way the worker runs them: livekit-agents' own job pool (`ipc.proc_pool`) with
the worker's executor type (THREAD: a thread and an event loop per call), its idle-thread count
and its `prewarm`, each call handed over as a `RunningJobInfo` built from the dispatch the
control plane gave the LiveKit stand-in. There is no LiveKit server to connect a room to, so the
jobs are the framework's room-less ("fake") jobs and their entrypoint is `Switchboard.entrypoint`
below: `runtime.worker.entrypoint` with the session run room-less (`session_room=None`) on text,
and the job shut down when the session closes (on a real call the session's close deletes the
room, `runtime.worker.ROOM_OPTIONS`, and the room's going ends the job).

The control plane is the real app on the test's event loop; the job threads reach it through
`LoopBridge` (their requests are served on the test's loop, as a real control plane serves
them on its own). One call's LLM (the scripted OpenAI server) fails every turn until that
session gives up; the other calls carry on and end normally.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from livekit import api as lk
from livekit.agents import JobContext
from livekit.agents.ipc.proc_pool import ProcPool
from livekit.agents.job import JobAcceptArguments, RunningJobInfo
from livekit.protocol import agent as lk_agent
from livekit.protocol import models as lk_models

from control.models import Call
from control.services.calls import LIVE_STATUSES
from runtime.config import RuntimeSettings
from runtime.control_client import ControlPlane
from runtime.providers import build_vad, preload_models
from runtime.worker import JOB_EXECUTOR, CallRunner, worker_options
from tests.control_plane import ControlPlaneTransport
from tests.fakes.livekit_server import FakeLiveKit, no_caller
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.runtime.test_worker import (
    Job,
    said_by_agent,
    scripted_line,
    web_job,
)

#: Every wait in this file: long enough for a slow shared machine, never reached when it works.
TIMEOUT = 60.0
HOURS = "We are open nine to five."
GOODBYE = "Goodbye, have a nice day!"
NORMAL_CALLER = ["What are your hours?", "Thanks, bye."]
#: The crashing caller keeps talking; every answer fails (HTTP 400, not retried) until the
#: session gives up (after livekit's `max_unrecoverable_errors`, 3, it closes with the error).
CRASHING_CALLER = ["crash"] * 8


class LoopBridge(httpx.AsyncBaseTransport):
    """A job thread's requests, served by `transport` on the test's event loop.

    The app's database and Redis connections belong to the test's loop, as a real control
    plane's belong to its own process: each request is read whole, handed over, and its response
    read whole before it goes back to the job's loop. When a call's report has been taken,
    `reported[call_id]` is set.
    """

    def __init__(self, transport: ControlPlaneTransport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self.reported: dict[str, asyncio.Event] = {}

    def report_landed(self, call_id: str) -> asyncio.Event:
        return self.reported.setdefault(call_id, asyncio.Event())

    async def _serve(self, method: str, url: httpx.URL, headers: Any, body: bytes):
        request = httpx.Request(method, url, headers=headers, content=body)
        response = await self._transport.handle_async_request(request)
        content = b"".join([chunk async for chunk in response.aiter_raw()])
        if response.is_success and url.path.endswith("/report"):
            self.report_landed(url.path.split("/")[-2]).set()
        return response.status_code, response.headers, content

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        served = asyncio.run_coroutine_threadsafe(
            self._serve(request.method, request.url, request.headers, body), self._loop
        )
        status, headers, content = await asyncio.wrap_future(served)
        return httpx.Response(status, headers=headers, content=content)


@dataclass
class JobSeen:
    """What one job saw of where it ran."""

    thread: int
    loop: int
    pid: int
    vad: Any


@dataclass
class Switchboard:
    """What the test shares with the job threads: the callers' lines and when they may talk."""

    bridge: LoopBridge
    settings: RuntimeSettings
    livekit: FakeLiveKit
    loop: asyncio.AbstractEventLoop
    lines: dict[str, list[str]] = field(default_factory=dict)
    talk: dict[str, threading.Event] = field(default_factory=dict)
    started: dict[str, asyncio.Event] = field(default_factory=dict)
    seen: dict[str, JobSeen] = field(default_factory=dict)

    def add(self, call_id: str, lines: list[str]) -> None:
        self.lines[call_id] = lines
        self.talk[call_id] = threading.Event()
        self.started[call_id] = asyncio.Event()

    def greeted(self, call_id: str, seen: JobSeen) -> None:
        """From a job thread: the call is up and greeted."""
        self.seen[call_id] = seen
        self.loop.call_soon_threadsafe(self.started[call_id].set)

    async def entrypoint(self, ctx: JobContext) -> None:
        """`runtime.worker.entrypoint`, room-less and on text (see the module's docstring)."""
        call_id = json.loads(ctx.job.metadata)["call_id"]
        runner = CallRunner(
            ControlPlane(self.settings, transport=self.bridge), settings=self.settings, audio=False
        )
        ctx.add_shutdown_callback(runner.finish)
        api = lk.LiveKitAPI(self.livekit.url, self.livekit.api_key, self.livekit.api_secret)

        async def close_api(_: str) -> None:
            await api.aclose()

        ctx.add_shutdown_callback(close_api)
        ended = await runner.run(ctx.job.metadata, ctx.job.room.name, api, no_caller, None)
        assert ended is None
        # a real call's job ends when its room goes; this one's, when its session closes
        runner.session.on("close", lambda _: ctx.shutdown(reason="call ended"))
        await runner.agent.greeting
        self.greeted(
            call_id,
            JobSeen(
                threading.get_ident(),
                id(asyncio.get_running_loop()),
                os.getpid(),
                ctx.proc.userdata.get("vad"),
            ),
        )
        await asyncio.to_thread(self.talk[call_id].wait, TIMEOUT)
        for line in self.lines[call_id]:
            try:
                handle = runner.session.generate_reply(user_input=line)
            except RuntimeError:  # the session has closed
                return
            await handle


def job_info(job: Job) -> RunningJobInfo:
    """The job as the worker hands it to its pool (`AgentServer.simulate_job`, room-less)."""
    return RunningJobInfo(
        accept_arguments=JobAcceptArguments(name="", identity=f"agent-{job.call_id}", metadata=""),
        job=lk_agent.Job(
            id=f"job-{job.call_id}",
            room=lk_models.Room(sid=f"RM_{job.call_id[:8]}", name=job.room_name),
            type=lk_agent.JobType.JT_ROOM,
            metadata=job.metadata,
        ),
        url="",
        token="",
        worker_id="worker-test",
        fake_job=True,
    )


@pytest.fixture(scope="module", autouse=True)
def warm_process() -> None:
    """What `runtime.worker.warm_up` does at the worker's start, on the main thread: plugins
    imported and models loaded (without its GC settings, which would outlive this module)."""
    preload_models()


@pytest.fixture
async def switchboard(
    control_plane: ControlPlaneTransport,
    settings: Any,
    livekit: FakeLiveKit,
) -> Switchboard:
    loop = asyncio.get_running_loop()
    runtime_settings = RuntimeSettings(
        api_url="http://control-plane.test",
        service_token=settings.service_token,
        allow_private_urls=True,  # the scripted LLM listens on loopback
    )
    return Switchboard(LoopBridge(control_plane, loop), runtime_settings, livekit, loop)


@pytest.fixture
async def job_pool(switchboard: Switchboard) -> AsyncIterator[ProcPool]:
    """livekit-agents' job pool as the worker configures it (`worker_options`)."""
    options = worker_options(switchboard.settings)
    assert options.job_executor_type == JOB_EXECUTOR
    pool = ProcPool(
        initialize_process_fnc=options.prewarm_fnc,
        job_entrypoint_fnc=switchboard.entrypoint,
        session_end_fnc=None,
        simulation_end_fnc=None,
        num_idle_processes=options.num_idle_processes,
        initialize_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        session_end_timeout=TIMEOUT,
        inference_executor=None,
        job_executor_type=options.job_executor_type,
        mp_ctx=multiprocessing.get_context("spawn"),  # unused by threads
        memory_warn_mb=0,
        memory_limit_mb=0,
        http_proxy=None,
        loop=asyncio.get_running_loop(),
    )
    await pool.start()
    yield pool
    for talk in switchboard.talk.values():  # a failed test leaves no job waiting to talk
        talk.set()
    await asyncio.wait_for(pool.aclose(), TIMEOUT)


@pytest.fixture
async def web_agent(client: Any, settings: Any, livekit: FakeLiveKit, scripted_llm: FakeOpenAI):
    """A developer's agent taking web calls, which hangs up once it has said goodbye."""
    line = await scripted_line(
        client,
        settings,
        scripted_llm,
        first_message="Hello, this is Acme.",
        allow_web_calls=True,
        end_call_phrases=["goodbye"],
    )
    return line["agent"]


def reports_for(transport: ControlPlaneTransport, call_id: str) -> int:
    return transport.reports().count(("POST", f"/internal/calls/{call_id}/report"))


async def test_one_process_holds_several_calls_and_one_crash_ends_only_its_own_call(
    client,
    web_agent,
    livekit,
    scripted_llm,
    control_plane,
    switchboard,
    job_pool,
):
    scripted_llm.on("hours", HOURS)
    scripted_llm.on("bye", GOODBYE)
    scripted_llm.on("crash", Reply(status=400, text="scripted crash"))
    jobs = [await web_job(client, livekit) for _ in range(3)]
    crashing, *normal = jobs
    switchboard.add(crashing.call_id, CRASHING_CALLER)
    for job in normal:
        switchboard.add(job.call_id, NORMAL_CALLER)

    for job in jobs:  # what the worker does with each job LiveKit assigns it
        await job_pool.launch_job(job_info(job))
    executors = {job.call_id: job_pool.get_by_job_id(f"job-{job.call_id}") for job in jobs}
    for job in jobs:
        await asyncio.wait_for(switchboard.started[job.call_id].wait(), TIMEOUT)

    # all three calls are up at once: one process, a thread and an event loop each, one VAD
    seen = [switchboard.seen[job.call_id] for job in jobs]
    assert {entry.pid for entry in seen} == {os.getpid()}
    assert len({entry.thread for entry in seen}) == 3
    assert len({entry.loop for entry in seen}) == 3
    assert all(entry.vad is build_vad() for entry in seen)
    assert all(executor.running_job is not None for executor in executors.values())

    # one call crashes: its report lands and its job ends, while the others are mid-call
    switchboard.talk[crashing.call_id].set()
    await asyncio.wait_for(switchboard.bridge.report_landed(crashing.call_id).wait(), TIMEOUT)
    await asyncio.wait_for(executors[crashing.call_id].join(), TIMEOUT)
    for job in normal:
        call = await Call.get(id=job.call_id)
        assert call.status in LIVE_STATUSES and call.ended_at is None
        assert executors[job.call_id].running_job is not None
        assert not switchboard.bridge.report_landed(job.call_id).is_set()

    # the others carry on and end normally
    for job in normal:
        switchboard.talk[job.call_id].set()
    for job in normal:
        await asyncio.wait_for(switchboard.bridge.report_landed(job.call_id).wait(), TIMEOUT)
        await asyncio.wait_for(executors[job.call_id].join(), TIMEOUT)

    crashed = await Call.get(id=crashing.call_id)
    assert (crashed.status, crashed.end_reason) == ("failed", "error")
    assert "scripted crash" in crashed.error and crashed.ended_at is not None
    for job in normal:
        call = await Call.get(id=job.call_id)
        assert (call.status, call.end_reason, call.error) == ("completed", "agent_hangup", None)
        assert said_by_agent(call) == ["Hello, this is Acme.", HOURS, GOODBYE]
        assert [t["text"] for t in call.transcript if t["role"] == "user"] == NORMAL_CALLER
    # every call reported, exactly once
    assert {job.call_id: reports_for(control_plane, job.call_id) for job in jobs} == {
        job.call_id: 1 for job in jobs
    }
