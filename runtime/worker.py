"""The LiveKit agent worker: one job per call, whether outbound, inbound SIP or a web room.

Calls share the process (a thread and an event loop each) and the process's models.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from livekit import api as lk
from livekit import rtc
from livekit.agents import (
    NOT_GIVEN,
    AgentServer,
    AgentSession,
    JobContext,
    JobExecutorType,
    JobProcess,
    WorkerOptions,
    io,
    room_io,
)

from runtime import metrics
from runtime.agent import CallGuard, CallRecorder, CallState, VoxlineAgent, create_session
from runtime.call_control import CallControl
from runtime.config import RuntimeSettings
from runtime.control_client import ControlPlane, ControlPlaneError
from runtime.latency import warm_models
from runtime.providers import (
    ModelProviderError,
    build_pipeline,
    build_tts,
    build_vad,
    preload_models,
    turn_predictor,
)
from runtime.recording import FILE_SUFFIX, CallRecording, recordings_dir, upload_left_behind
from runtime.report_spool import ReportSpool
from runtime.spec import (
    AgentSpec,
    CallReport,
    CallSpec,
    CallStatus,
    EndReason,
    call_status_for_sip,
    mask_phone,
)

logger = logging.getLogger(__name__)

METRICS_DIR = Path(tempfile.gettempdir()) / "voxline-worker-metrics"
RETRY_SECONDS = 10.0
# SIP attributes LiveKit sets on the caller of an inbound call.
DIALLED_NUMBER_ATTRIBUTE = "sip.trunkPhoneNumber"
CALLER_NUMBER_ATTRIBUTE = "sip.phoneNumber"
BUSY_MESSAGE = "Sorry, all our agents are busy right now. Please call again later."
AT_CAPACITY = "at capacity"
#: How long a web call's busy message waits for the browser to join, and may take to say.
BUSY_WAIT_SECONDS = 10.0
BUSY_SAY_SECONDS = 15.0


#: A call's room: deleted when its session closes, whoever ended the call. Without it, a call
#: the agent ended kept the line open (the caller heard silence) and its job, and so its
#: report, waited until the far end hung up.
ROOM_OPTIONS = room_io.RoomOptions(delete_room_on_close=True)

#: Calls share a process (one event loop per call, in its own thread): LiveKit's thread
#: executor. A job process per call cost 49-83 MB private and about 1 s of CPU to set up each.
JOB_EXECUTOR = JobExecutorType.THREAD
#: Job threads kept started and warmed, ready for the next calls.
IDLE_JOB_THREADS = 2
#: The share of one core this worker's calls may use before it says it is full: a worker is
#: one Python process (one GIL), so it is run once per core.
CPU_TARGET = 0.8
#: Garbage collection for long-lived sessions: young collections rarer than the default 700
#: allocations, and full collections (which walk every session's objects) rarer still.
GC_THRESHOLDS = (10_000, 20, 50)

_warm_lock = threading.Lock()
_warm = False


def warm_up(*, local: bool = False) -> None:
    """Get this process ready for calls; the first call pays nothing. Idempotent.

    Loads every shared model and imports the provider plugins (`preload_models`; on the main
    thread, as livekit requires of plugins), then sets the GC thresholds and freezes what
    exists now: the modules and models stay out of every later collection, so a full
    collection only walks the calls' own objects.
    """
    global _warm
    with _warm_lock:
        if _warm:
            return
        preload_models(local=local)
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        _warm = True


def prewarm(process: JobProcess) -> None:
    """Ready a job thread before a call arrives: the models are the process's, loaded once
    (`warm_up` at the worker's start); a job thread may load models, not import plugins."""
    process.userdata["vad"] = build_vad()
    turn_predictor()


class WorkerLoad:
    """The worker's load for LiveKit's admission (`load_fnc`): measured, and capped.

    The larger of this process's CPU use over `CPU_TARGET` (a moving average) and its calls
    over `max_sessions` (MAX_AGENT_SESSIONS, a hard cap). At 1.0 the worker is full and
    LiveKit sends calls elsewhere.
    """

    SAMPLE_SECONDS = 0.5

    def __init__(self, max_sessions: int, cpu_target: float = CPU_TARGET) -> None:
        import psutil

        self.max_sessions = max_sessions
        self.cpu_target = cpu_target
        self._process = psutil.Process()
        self._process.cpu_percent(None)
        self._sampled_at = time.monotonic()
        self._samples: list[float] = []

    def cpu(self) -> float:
        """Cores this process used recently (moving average of about 2.5 s)."""
        now = time.monotonic()
        if now - self._sampled_at >= self.SAMPLE_SECONDS or not self._samples:
            self._samples = [*self._samples[-4:], self._process.cpu_percent(None) / 100]
            self._sampled_at = now
        return sum(self._samples) / len(self._samples)

    def load(self, active_calls: int) -> float:
        cap = active_calls / self.max_sessions if self.max_sessions > 0 else 1.0
        return max(self.cpu() / self.cpu_target, cap)

    def __call__(self, server: AgentServer) -> float:
        return self.load(len(server.active_jobs))


class CallRunner:
    """One call, from job metadata to its report, with the LiveKit side passed in.

    `entrypoint` adapts a `JobContext` to it. Construct it, register `finish` as the job's
    shutdown callback, then `run` the call; however the job ends, `finish` reports once,
    through the report spool (kept on disk until the control plane has taken it).
    """

    def __init__(
        self,
        control: ControlPlane,
        *,
        settings: RuntimeSettings | None = None,
        audio: bool = True,
        spool: ReportSpool | None = None,
    ) -> None:
        """`audio=False` runs the agent on text only (no STT, TTS or VAD), as tests do.

        `spool` defaults to the settings' outbox (`<data_dir>/outbox`).
        """
        self.control = control
        self.settings = settings or control.settings
        self.audio = audio
        self.spool = spool or ReportSpool(self.settings.report_outbox)
        self.call: CallSpec | None = None
        self.session: AgentSession[CallState] | None = None
        self.agent: VoxlineAgent | None = None
        self._recorder: CallRecorder | None = None
        self._recording: CallRecording | None = None
        self._dial_status: int | None = None
        self._error: str | None = None
        self._end_reason = EndReason.ERROR
        self._finished = False
        self._heartbeat: asyncio.Task | None = None
        #: ends the job once a warm transfer has left the room to caller and human
        self.on_leave: Callable[[], None] | None = None

    async def run(
        self,
        job_metadata: str | None,
        room_name: str,
        api: lk.LiveKitAPI,
        wait_for_caller: Callable[[], Awaitable[rtc.RemoteParticipant]],
        session_room: rtc.Room | None,
    ) -> str | None:
        """Load the spec, start the session, dial if outbound, then let the call go on.

        Args:
            job_metadata: the dispatch's metadata, `{"call_id": ...}`; empty for inbound SIP.
            room_name: the job's room (the callee is dialled into it).
            api: the LiveKit server API the callee is dialled through.
            wait_for_caller: waits for the SIP caller of an inbound call.
            session_room: the room the session joins; None runs it room-less (tests).

        Returns:
            Why the job should end now (the dial failed, or the platform is at capacity), or
            None while the call goes on.
        """
        try:
            call = await self._load_spec(job_metadata, room_name, wait_for_caller)
        except ControlPlaneError as error:
            if not error.at_capacity:
                raise
            # The control plane has already ended the call log ("at_capacity"): no report.
            await self._turn_away(job_metadata, room_name, api, wait_for_caller, session_room)
            return AT_CAPACITY
        self.call = call
        self._heartbeat = self.control.start_heartbeat(call.call_id)
        state = CallState(call=call)
        try:
            pipeline = build_pipeline(
                call.agent,
                audio=self.audio,
                settings=self.settings,
                allow_private_urls=call.allow_private_urls or self.settings.allow_private_urls,
            )
            await warm_models(pipeline)  # local models: once per process (`runtime.latency`)
            session = self.session = create_session(call, pipeline, state)
            self._recorder = CallRecorder(session, state)
            metrics.active_sessions.inc()
            guard = CallGuard(session, state)
            outbound = call.direction == "outbound"
            # transfers, keypad and voicemail act on the room and LiveKit's API
            control = CallControl(
                call,
                state,
                session,
                api=api,
                room=session_room,
                room_name=room_name,
                on_transfers=functools.partial(self.control.report_transfers, call.call_id),
                on_bridged=(
                    functools.partial(self._leave_room_to_them, session)
                    if session_room is not None
                    else None
                ),
            )
            # a recorded call greets once the recorder is on, so the greeting is on it too
            recorded = call.agent.recording_enabled and self.audio
            agent = self.agent = VoxlineAgent(
                call, state=state, greet_on_enter=not outbound and not recorded, control=control
            )
            # room-less (NOT_GIVEN) when there is no room: `room=None` would still open room I/O
            await session.start(
                agent=agent,
                room=session_room or NOT_GIVEN,
                # when the session ends (the agent hangs up, a transfer, voicemail, an error),
                # the room goes: the phone line is hung up and the job ends and reports
                room_options=ROOM_OPTIONS if session_room is not None else NOT_GIVEN,
            )
            if outbound:
                failure = await self._dial(api, room_name, call)
                if failure is not None:
                    self._dial_status = failure
                    state.end(EndReason.DIAL_FAILED)
                    return f"dial failed: {call_status_for_sip(failure).value}"
                control.answered()
            if recorded:  # both sides, from the answer on (`runtime.recording`)
                path = recordings_dir(self.settings) / f"{call.call_id}{FILE_SUFFIX}"
                self._recording = await CallRecording.start(session, path)
            if outbound or recorded:
                agent.greet()
        except Exception as error:
            # the job's shutdown reports the call; say what broke it
            self._error = f"{type(error).__name__}: {error}"
            # a provider without credentials: `provider_not_configured`, before anyone is dialled
            self._end_reason = getattr(error, "end_reason", EndReason.ERROR)
            state.end(self._end_reason)
            raise
        state.answered_at = time.time()
        guard.start()
        return None

    def _leave_room_to_them(self, session: AgentSession) -> None:
        """A warm transfer joined caller and human: the room outlives the agent's session,
        and the job ends (`on_leave`) once the session has closed."""
        # livekit-agents has no public switch for this once the session has started
        session.room_io._options.delete_room_on_close = False
        if self.on_leave is not None:
            on_leave = self.on_leave
            session.on("close", lambda _: on_leave())

    async def finish(self, *_: object) -> None:
        """Report the call to the control plane, once, however it ended.

        Registered as the job's shutdown callback: it runs after a hang-up, an error or a
        worker shutdown alike. A job that never loaded its spec has no call to report.
        """
        if self._finished:
            return
        self._finished = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self._recording is not None and self.call is not None:
            # before the report, so that the analysed call's webhook carries the recording
            await self._recording.upload(self.control, self.call.call_id)
        try:
            report = self._report()
            if report is not None:
                metrics.observe_report(report, self.call.agent if self.call else None)
                # retried until taken; if the process dies first, the file is sent on restart
                await self.spool.deliver(self.control, report)
        except Exception:
            logger.exception("call %s: the report could not be delivered", self._call_id())
        finally:
            await self.control.aclose()

    def _call_id(self) -> str | None:
        return self.call.call_id if self.call else None

    def _report(self) -> CallReport | None:
        if self._recorder is None:
            if self.call is None:
                return None
            # the session never existed (a provider could not be built): the call still ends
            return CallReport(
                call_id=self.call.call_id,
                status=CallStatus.FAILED,
                end_reason=self._end_reason,
                ended_at=datetime.now(UTC).isoformat(),
                error=self._error,
            )
        metrics.active_sessions.dec()
        if self._dial_status is not None:
            return self._recorder.report(
                status=call_status_for_sip(self._dial_status),
                end_reason=EndReason.DIAL_FAILED,
                sip_status=self._dial_status or None,
            )
        return self._recorder.report(error=self._error)

    async def _load_spec(
        self,
        job_metadata: str | None,
        room_name: str,
        wait_for_caller: Callable[[], Awaitable[rtc.RemoteParticipant]],
    ) -> CallSpec:
        metadata = json.loads(job_metadata or "{}")
        if metadata.get("call_id"):
            return await self.control.call_spec(str(metadata["call_id"]))
        # No call id: a dispatch rule started this job for an inbound SIP call.
        caller = await wait_for_caller()
        dialled = caller.attributes.get(DIALLED_NUMBER_ATTRIBUTE)
        if not dialled:
            raise RuntimeError("a job without a call id and without a SIP caller; nothing to run")
        return await self.control.open_inbound_call(
            dialled, caller.attributes.get(CALLER_NUMBER_ATTRIBUTE), room_name
        )

    async def _turn_away(
        self,
        job_metadata: str | None,
        room_name: str,
        api: lk.LiveKitAPI,
        wait_for_caller: Callable[[], Awaitable[rtc.RemoteParticipant]],
        session_room: rtc.Room | None,
    ) -> None:
        """No capacity for this call: tell an inbound or web caller so, then close the room.

        An outbound call is simply not dialled.
        """
        metadata = json.loads(job_metadata or "{}")
        direction = metadata.get("direction") or ("web" if metadata.get("call_id") else "inbound")
        logger.warning(
            "call %s (%s): the platform is at capacity; turning the call away",
            metadata.get("call_id") or "-",
            direction,
        )
        if direction != "outbound" and session_room is not None:
            await say_busy(session_room, self.settings, wait_for_caller, direction=direction)
        try:
            await api.room.delete_room(lk.DeleteRoomRequest(room=room_name))
        except Exception as error:  # an empty room closes on its own anyway
            logger.warning("could not delete room %s (call turned away): %s", room_name, error)

    @staticmethod
    async def _dial(api: lk.LiveKitAPI, room_name: str, call: CallSpec) -> int | None:
        """Dial the callee and wait for the answer; returns the SIP status when it fails."""
        if not call.sip_trunk_id or not call.to_number:
            logger.error("call %s has no outbound trunk or number to dial", call.call_id)
            return 0
        logger.info("call %s: dialling %s", call.call_id, mask_phone(call.to_number))
        try:
            await api.sip.create_sip_participant(
                lk.CreateSIPParticipantRequest(
                    room_name=room_name,
                    sip_trunk_id=call.sip_trunk_id,
                    sip_call_to=call.to_number,
                    sip_number=call.from_number or "",
                    participant_identity=f"sip-{call.call_id}",
                    participant_name="Callee",
                    wait_until_answered=True,
                    krisp_enabled=call.krisp_enabled,
                )
            )
        except lk.TwirpError as error:
            status = getattr(error, "sip_status_code", None)
            logger.info("call %s: dial failed (%s, SIP %s)", call.call_id, error.code, status)
            return status or 0
        return None


def _busy_tts(settings: RuntimeSettings):
    """The platform's default TTS, else the local one (Piper); None when neither can be built."""
    for provider in (AgentSpec(agent_id="").tts_provider, "local"):
        try:
            return build_tts(AgentSpec(agent_id="", tts_provider=provider), settings)
        except (ModelProviderError, ImportError, ValueError) as error:
            logger.info("busy message: no %s TTS (%s)", provider, error)
    return None


async def say_busy(
    room: rtc.Room | None,
    settings: RuntimeSettings,
    wait_for_caller: Callable[[], Awaitable[rtc.RemoteParticipant]],
    *,
    direction: str,
    audio_output: io.AudioOutput | None = None,
) -> bool:
    """Say `BUSY_MESSAGE` in the room; returns whether it was said. Never raises.

    Best effort: the call is turned away either way. An inbound caller is in the room already;
    a web caller is given a moment to join. Without a room, the message plays to
    `audio_output` (tests).
    """
    from livekit.agents import Agent, room_io

    tts = _busy_tts(settings)
    if tts is None:
        return False
    session: AgentSession | None = None
    try:
        if direction == "web":
            await asyncio.wait_for(wait_for_caller(), BUSY_WAIT_SECONDS)
        session = AgentSession(tts=tts, turn_handling={"turn_detection": None})
        if room is None:
            session.output.audio = audio_output
            await session.start(Agent(instructions=""))
        else:
            options = room_io.RoomOptions(
                audio_input=False, text_input=False, close_on_disconnect=False
            )
            await session.start(Agent(instructions=""), room=room, room_options=options)
        handle = session.say(BUSY_MESSAGE, allow_interruptions=False, add_to_chat_ctx=False)
        await asyncio.wait_for(handle.wait_for_playout(), BUSY_SAY_SECONDS)
        return True
    except Exception as error:
        logger.warning("could not say the busy message: %s", error)
        return False
    finally:
        if session is not None:
            with contextlib.suppress(Exception):
                await session.aclose()


async def entrypoint(ctx: JobContext) -> None:
    """Run one call: load its spec, start the session, dial if outbound, report at the end."""
    settings = RuntimeSettings()
    runner = CallRunner(ControlPlane(settings), settings=settings)
    runner.on_leave = functools.partial(ctx.shutdown, reason="transferred")
    ctx.add_shutdown_callback(runner.finish)
    lag = metrics.LoopLagMonitor().start()  # this call's event loop

    async def stop_lag_monitor(_: str) -> None:
        lag.stop()

    ctx.add_shutdown_callback(stop_lag_monitor)
    await ctx.connect()
    ended = await runner.run(
        ctx.job.metadata, ctx.room.name, ctx.api, ctx.wait_for_participant, ctx.room
    )
    if ended is not None:
        ctx.shutdown(reason=ended)


def worker_options(settings: RuntimeSettings) -> WorkerOptions:
    return WorkerOptions(
        entrypoint_fnc=entrypoint,
        prewarm_fnc=prewarm,
        agent_name=settings.agent_name,
        job_executor_type=JOB_EXECUTOR,
        num_idle_processes=IDLE_JOB_THREADS,
        load_fnc=WorkerLoad(settings.max_agent_sessions),
        load_threshold=1.0,
        # `/metrics` is the worker's own (`metrics.serve_metrics`), up even without LiveKit.
        prometheus_multiproc_dir=os.environ.get("PROMETHEUS_MULTIPROC_DIR", str(METRICS_DIR)),
    )


async def run_worker(
    settings: RuntimeSettings | None = None,
    *,
    options: WorkerOptions | None = None,
    retry_seconds: float = RETRY_SECONDS,
) -> None:
    """Register with LiveKit and take calls; when LiveKit is unreachable, say so and retry.

    Meanwhile, reports left in the spool by earlier processes are sent again, and recordings
    whose upload failed are uploaded.

    Args:
        settings: the runtime settings (read from the environment when None).
        options: the worker's options (`worker_options(settings)` when None).
        retry_seconds: the pause before checking for, or connecting to, LiveKit again.
    """
    settings = settings or RuntimeSettings()
    options = options or worker_options(settings)
    # Models and plugins before anything else: nothing waits on this loop yet, and livekit
    # plugins may only be imported on the main thread.
    warm_up()
    metrics_server = await _serve_metrics(settings, options)
    lag = metrics.LoopLagMonitor().start()
    try:
        # Reports and recordings earlier calls could not deliver go out while the worker waits
        # and works.
        async with ControlPlane(settings) as control:
            catch_up = [
                asyncio.create_task(
                    ReportSpool(settings.report_outbox).resend_forever(control),
                    name="report-resend",
                ),
                asyncio.create_task(
                    upload_left_behind(control, recordings_dir(settings)),
                    name="recording-upload",
                ),
            ]
            try:
                await _serve(options, retry_seconds)
            finally:
                for task in catch_up:
                    task.cancel()
                await asyncio.gather(*catch_up, return_exceptions=True)
    finally:
        lag.stop()
        if metrics_server is not None:
            await metrics_server.cleanup()


async def _serve_metrics(settings: RuntimeSettings, options: WorkerOptions):
    """The worker's `/metrics`, before and whatever LiveKit does; calls go on without it."""
    directory = options.prometheus_multiproc_dir or str(METRICS_DIR)
    os.makedirs(directory, exist_ok=True)
    try:
        return await metrics.serve_metrics(
            settings.metrics_host,
            settings.metrics_port,
            token=settings.metrics_token,
            directory=directory,
        )
    except OSError as error:
        logger.warning(
            "worker metrics not served on %s:%s: %s",
            settings.metrics_host,
            settings.metrics_port,
            error,
        )
        return None


async def _serve(options: WorkerOptions, retry_seconds: float) -> None:
    warned = False
    while True:
        if not os.environ.get("LIVEKIT_URL"):
            if not warned:  # said once; the worker keeps checking quietly
                logger.warning(
                    "LIVEKIT_URL is not set: the worker cannot take phone or web calls. The "
                    "API, chats and `voxline simulate` work without it. Waiting for it ..."
                )
                warned = True
            await asyncio.sleep(retry_seconds)
            continue
        server = AgentServer.from_server_options(options)
        try:
            await server.run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.warning(
                "cannot work with LiveKit at %s (%s); retrying in %.0f s",
                os.environ.get("LIVEKIT_URL"),
                error,
                retry_seconds,
            )
        finally:
            try:
                await server.aclose()
            except Exception:
                pass
        await asyncio.sleep(retry_seconds)
