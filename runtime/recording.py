"""A call's recording: both sides, time-aligned, in a stereo Ogg/Opus file written as it goes.

livekit-agents' own `RecorderIO` does the recording: it wraps the session's audio input (the
caller) and output (the agent), places each on one timeline (the caller's audio where it arrived,
the agent's where the output reports it played, silence in between), and encodes it to disk
every few seconds on a thread, caller on the left channel and agent on the right. Here it only
ever writes a local file (never LiveKit Cloud); when the call ends the file is streamed to the
control plane and deleted.

Its clock is the wall clock, so a recording is true only when the call runs in real time
(simulated calls at `speed` 1).

A recording whose upload failed (the control plane down at the call's end, or the process killed
first) stays on disk; the worker's main process uploads such left-behind files later
(`upload_left_behind`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

from livekit.agents import AgentSession
from livekit.agents.voice.recorder_io import RecorderIO

from runtime.config import RuntimeSettings
from runtime.control_client import ControlPlane, ControlPlaneError
from runtime.report_spool import refused_for_good

logger = logging.getLogger(__name__)

CONTENT_TYPE = "audio/ogg"
FILE_SUFFIX = ".ogg"
#: A recording being written is touched every few seconds; one untouched this long is left behind.
LEFT_BEHIND_SECONDS = 120.0
#: How often the main process looks for recordings left behind.
SWEEP_SECONDS = 30.0
_CALL_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class CallRecording:
    """Records one session's two sides into `path`; `start` it, then `upload` (or `stop`) it."""

    def __init__(self, recorder: RecorderIO, path: Path) -> None:
        self._recorder = recorder
        self.path = path

    @classmethod
    async def start(cls, session: AgentSession, path: str | Path) -> CallRecording | None:
        """Wrap `session`'s audio input and output and start writing `path`.

        Call it once the session has its audio input and output (a room session has them once
        started); what the agent says before this is not on the recording. Returns None when
        the session has no audio (a text-only session): there is nothing to record.
        """
        if session.input.audio is None or session.output.audio is None:
            logger.warning("recording asked for a session without audio in and out; skipped")
            return None
        recorder = RecorderIO(agent_session=session, loop=asyncio.get_running_loop())
        session.input.audio = recorder.record_input(session.input.audio)
        session.output.audio = recorder.record_output(session.output.audio)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        await recorder.start(output_path=path)
        return cls(recorder, path)

    async def stop(self) -> Path | None:
        """Finish the file (the encoder writes what it holds); None when nothing was written."""
        await self._recorder.aclose()
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        return self.path

    async def upload(self, control: ControlPlane, call_id: str) -> str | None:
        """Stop, stream the file to the control plane, then delete it; returns its API path.

        Never raises: a recording that cannot be uploaded is logged and left on disk, and the
        call's report goes out all the same.
        """
        try:
            path = await self.stop()
            if path is None:
                logger.warning("call %s: the recording is empty; nothing uploaded", call_id)
                return None
            url = await control.upload_recording(call_id, path, content_type=CONTENT_TYPE)
        except (ControlPlaneError, OSError) as error:
            logger.error("call %s: recording not uploaded (kept at %s): %s", call_id, path, error)
            return None
        self.path.unlink(missing_ok=True)
        return url


def recordings_dir(settings: RuntimeSettings) -> Path:
    """Where the worker writes its calls' recordings until they are uploaded."""
    return settings.data_dir / "recordings"


async def upload_left_behind(
    control: ControlPlane,
    directory: Path,
    *,
    sweep_seconds: float = SWEEP_SECONDS,
    left_behind_seconds: float = LEFT_BEHIND_SECONDS,
) -> None:
    """Upload, until cancelled, the recordings calls left in `directory`, then delete them.

    A file is left behind once nothing has written it for `left_behind_seconds` (a live call's
    recorder writes every few seconds). One the control plane refuses for good (its call is
    gone) is deleted; other failures leave it for the next sweep.
    """
    while True:
        for path in await asyncio.to_thread(_left_behind, Path(directory), left_behind_seconds):
            await _upload_left(control, path)
        await asyncio.sleep(sweep_seconds)


def _left_behind(directory: Path, left_behind_seconds: float) -> list[Path]:
    if not directory.is_dir():
        return []
    now = time.time()
    found = []
    for path in directory.glob(f"*{FILE_SUFFIX}"):
        try:
            untouched = now - path.stat().st_mtime
        except FileNotFoundError:
            continue  # uploaded meanwhile
        if _CALL_ID.match(path.stem) and untouched >= left_behind_seconds:
            found.append(path)
    return sorted(found)


async def _upload_left(control: ControlPlane, path: Path) -> None:
    call_id = path.stem
    try:
        url = await control.upload_recording(call_id, path, content_type=CONTENT_TYPE)
    except ControlPlaneError as error:
        if refused_for_good(error):
            logger.error("call %s: recording %s refused for good: %s", call_id, path, error)
            await asyncio.to_thread(path.unlink, missing_ok=True)
        else:
            logger.warning("call %s: recording %s still not uploaded: %s", call_id, path, error)
        return
    except OSError as error:
        logger.warning("call %s: recording %s unreadable: %s", call_id, path, error)
        return
    await asyncio.to_thread(path.unlink, missing_ok=True)
    logger.info("call %s: recording left at %s uploaded as %s", call_id, path, url)
