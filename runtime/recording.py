"""A call's recording: both sides, time-aligned, in a stereo Ogg/Opus file written as it goes.

livekit-agents' own `RecorderIO` does the recording: it wraps the session's audio input (the
caller) and output (the agent), places each on one timeline (the caller's audio where it arrived,
the agent's where the output reports it played, silence in between), and encodes it to disk
every few seconds on a thread, caller on the left channel and agent on the right. Here it only
ever writes a local file (never LiveKit Cloud); when the call ends the file is streamed to the
control plane and deleted.

Its clock is the wall clock, so a recording is true only when the call runs in real time
(simulated calls at `speed` 1).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from livekit.agents import AgentSession
from livekit.agents.voice.recorder_io import RecorderIO

from runtime.control_client import ControlPlane, ControlPlaneError

logger = logging.getLogger(__name__)

CONTENT_TYPE = "audio/ogg"
FILE_SUFFIX = ".ogg"


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
