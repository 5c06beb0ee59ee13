"""The LiveKit agent worker: one job per call, whether outbound, inbound SIP or a web room."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from livekit import api as lk
from livekit.agents import AgentServer, JobContext, JobProcess, WorkerOptions

from runtime import metrics
from runtime.agent import CallGuard, CallRecorder, CallState, VoxlineAgent, create_session
from runtime.config import RuntimeSettings
from runtime.control_client import ControlPlane
from runtime.providers import build_pipeline, build_vad
from runtime.spec import CallSpec, EndReason, call_status_for_sip, mask_phone

logger = logging.getLogger(__name__)

METRICS_PORT = 9100
RETRY_SECONDS = 10.0
# SIP attributes LiveKit sets on the caller of an inbound call.
DIALLED_NUMBER_ATTRIBUTE = "sip.trunkPhoneNumber"
CALLER_NUMBER_ATTRIBUTE = "sip.phoneNumber"


def prewarm(process: JobProcess) -> None:
    """Load the VAD once per job process, before a call arrives."""
    process.userdata["vad"] = build_vad()


async def _load_spec(ctx: JobContext, control: ControlPlane) -> CallSpec:
    metadata = json.loads(ctx.job.metadata or "{}")
    if metadata.get("call_id"):
        return await control.call_spec(str(metadata["call_id"]))
    # No call id: a dispatch rule started this job for an inbound SIP call.
    caller = await ctx.wait_for_participant()
    dialled = caller.attributes.get(DIALLED_NUMBER_ATTRIBUTE)
    if not dialled:
        raise RuntimeError("a job without a call id and without a SIP caller; nothing to run")
    return await control.open_inbound_call(
        dialled, caller.attributes.get(CALLER_NUMBER_ATTRIBUTE), ctx.room.name
    )


async def _dial(ctx: JobContext, call: CallSpec) -> int | None:
    """Dial the callee and wait for the answer; returns the SIP status when it fails."""
    if not call.sip_trunk_id or not call.to_number:
        logger.error("call %s has no outbound trunk or number to dial", call.call_id)
        return 0
    logger.info("call %s: dialling %s", call.call_id, mask_phone(call.to_number))
    try:
        await ctx.api.sip.create_sip_participant(
            lk.CreateSIPParticipantRequest(
                room_name=ctx.room.name,
                sip_trunk_id=call.sip_trunk_id,
                sip_call_to=call.to_number,
                sip_number=call.from_number or "",
                participant_identity=f"sip-{call.call_id}",
                participant_name="Callee",
                wait_until_answered=True,
                krisp_enabled=True,
            )
        )
    except lk.TwirpError as error:
        status = getattr(error, "sip_status_code", None)
        logger.info("call %s: dial failed (%s, SIP %s)", call.call_id, error.code, status)
        return status or 0
    return None


async def entrypoint(ctx: JobContext) -> None:
    """Run one call: load its spec, start the session, dial if outbound, report at the end."""
    settings = RuntimeSettings()
    control = ControlPlane(settings)
    await ctx.connect()
    call = await _load_spec(ctx, control)
    state = CallState(call=call)
    pipeline = build_pipeline(call.agent, settings=settings)
    session = create_session(call, pipeline, state)
    recorder = CallRecorder(session, state)
    guard = CallGuard(session, state)
    dial_status: dict[str, int | None] = {"sip": None}
    metrics.active_sessions.inc()

    async def send_report(*_: object) -> None:
        # However the call ends (hang-up, error, worker shutdown), the report goes out once.
        metrics.active_sessions.dec()
        if dial_status["sip"] is not None:
            report = recorder.report(
                status=call_status_for_sip(dial_status["sip"]),
                end_reason=EndReason.DIAL_FAILED,
                sip_status=dial_status["sip"] or None,
            )
        else:
            report = recorder.report()
        metrics.observe_report(report)
        try:
            await control.report(report)
        except Exception:
            logger.exception("call %s: the report could not be delivered", call.call_id)
        await control.aclose()

    ctx.add_shutdown_callback(send_report)
    outbound = call.direction == "outbound"
    agent = VoxlineAgent(call, state=state, greet_on_enter=not outbound)
    await session.start(agent=agent, room=ctx.room)
    if outbound:
        failure = await _dial(ctx, call)
        if failure is not None:
            dial_status["sip"] = failure
            state.end(EndReason.DIAL_FAILED)
            ctx.shutdown(reason=f"dial failed: {call_status_for_sip(failure).value}")
            return
        agent.greet()
    state.answered_at = time.time()
    guard.start()


def worker_options(settings: RuntimeSettings) -> WorkerOptions:
    return WorkerOptions(
        entrypoint_fnc=entrypoint,
        prewarm_fnc=prewarm,
        agent_name=settings.agent_name,
        prometheus_port=METRICS_PORT,
        prometheus_multiproc_dir=str(Path(tempfile.gettempdir()) / "voxline-worker-metrics"),
    )


async def run_worker(settings: RuntimeSettings | None = None) -> None:
    """Register with LiveKit and take calls; when LiveKit is unreachable, say so and retry."""
    settings = settings or RuntimeSettings()
    options = worker_options(settings)
    warned = False
    while True:
        if not os.environ.get("LIVEKIT_URL"):
            if not warned:  # said once; the worker keeps checking quietly
                logger.warning(
                    "LIVEKIT_URL is not set: the worker cannot take phone or web calls. The "
                    "API, chats and `voxline simulate` work without it. Waiting for it ..."
                )
                warned = True
            await asyncio.sleep(RETRY_SECONDS)
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
                RETRY_SECONDS,
            )
        finally:
            try:
                await server.aclose()
            except Exception:
                pass
        await asyncio.sleep(RETRY_SECONDS)
