"""Call recordings: streamed in by workers, served with ranges, kept per workspace's retention.

Storage runs twice: on the data dir (the default) and on an S3-compatible server (moto's, in a
thread, through the same obstore client production uses). The spoken test runs a simulated
call in real time, as `voxline simulate` does, and checks through the API that each voice is on
its own channel.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import boto3
import httpx
import numpy as np
import pytest
from moto.server import ThreadedMotoServer

from control import jobs
from control.config import Settings
from control.errors import TooLarge
from control.models import Call, Role, Workspace
from control.services import recordings
from control.services.agents import create_agent
from runtime.config import RuntimeSettings
from runtime.control_client import ControlPlane
from runtime.recording import FILE_SUFFIX
from tests.conftest import auth_headers, make_user, offline_spoken_agent
from tests.recordings import decode_stereo, loud_spans
from tests.servers import SERVICE_TOKEN

BUCKET = "voxline-recordings"
PREFIX = "calls/eu"
SERVICE = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
# Bytes that begin like an Ogg file; the store checks the start and the size, not the codec.
OGG = b"OggS" + bytes(range(256)) * 40
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A local S3-compatible server (moto) with the recordings bucket."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    _s3(endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def _s3(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )


class Storage:
    """One place recordings go, and a way to look there without Voxline's code."""

    def __init__(self, settings: Settings, endpoint: str | None) -> None:
        self.endpoint = endpoint
        self.settings = settings
        if endpoint is not None:
            url = f"s3://{BUCKET}/{PREFIX}?endpoint={endpoint}&region=us-east-1"
            self.settings = settings.model_copy(update={"recordings_url": url})

    def holds(self, key: str) -> bool:
        if self.endpoint is None:
            return (self.settings.data_dir / "recordings" / key).exists()
        listed = _s3(self.endpoint).list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/{key}")
        return listed.get("KeyCount", 0) > 0


@pytest.fixture(params=["data dir", "s3"])
def storage(request, settings, app, monkeypatch) -> Storage:
    """The app's recordings store: its data dir, or (through its settings) the S3 server."""
    endpoint = None
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    chosen = Storage(settings, endpoint)
    monkeypatch.setitem(app.app.config, "SETTINGS", chosen.settings)
    return chosen


@pytest.fixture
async def world(db, settings):
    """A workspace with a member, a developer, an admin and a call; another workspace."""
    member, workspace = await make_user("member@example.com", role=Role.MEMBER)
    developer, _ = await make_user("dev@example.com", role=Role.DEVELOPER, workspace=workspace)
    admin, _ = await make_user("admin@example.com", role=Role.ADMIN, workspace=workspace)
    outsider, elsewhere = await make_user("outsider@example.com", role=Role.ADMIN)
    agent = await create_agent(settings, workspace.id, {"agent_name": "Sales"})
    call = await _new_call(workspace, agent)
    return {
        "workspace": workspace,
        "elsewhere": elsewhere,
        "agent": agent,
        "call": call,
        "member": auth_headers(settings, member),
        "developer": auth_headers(settings, developer),
        "admin": auth_headers(settings, admin),
        "outsider": auth_headers(settings, outsider),
    }


async def _upload(client, call_id, body: bytes, content_type: str = "audio/ogg"):
    return await client.put(
        f"/internal/calls/{call_id}/recording",
        data=body,
        headers={**SERVICE, "Content-Type": content_type},
    )


async def _chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_a_recording_is_stored_then_served_whole_and_by_range(client, world, storage):
    call = world["call"]
    key = f"{call.workspace_id}/{call.id}.ogg"
    stored = await _upload(client, call.id, OGG)
    assert stored.status_code == 200, await stored.get_json()
    assert (await stored.get_json())["recording_url"] == f"/calls/{call.id}/recording"
    assert storage.holds(key)
    detail = await (await client.get(f"/calls/{call.id}", headers=world["member"])).get_json()
    assert detail["recording_url"] == f"/calls/{call.id}/recording"

    whole = await client.get(f"/calls/{call.id}/recording", headers=world["member"])
    assert whole.status_code == 200
    assert await whole.get_data() == OGG
    assert whole.headers["Content-Type"] == "audio/ogg"
    assert whole.headers["Cache-Control"] == "private, no-store"
    assert whole.headers["Accept-Ranges"] == "bytes"

    size = len(OGG)
    for header, start, end in [
        ("bytes=10-19", 10, 20),
        ("bytes=1000-", 1000, size),
        ("bytes=-7", size - 7, size),
        (f"bytes=5-{size + 100}", 5, size),  # an end past the recording is cut to it
    ]:
        part = await client.get(
            f"/calls/{call.id}/recording", headers={**world["member"], "Range": header}
        )
        assert part.status_code == 206, header
        assert await part.get_data() == OGG[start:end], header
        assert part.headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}", header
        assert part.headers["Cache-Control"] == "private, no-store"

    for header in (f"bytes={size}-", "bytes=9-3", "bytes=-0", "bytes=abc"):
        refused = await client.get(
            f"/calls/{call.id}/recording", headers={**world["member"], "Range": header}
        )
        assert refused.status_code == 416, header
        assert refused.headers["Content-Range"] == f"bytes */{size}", header
        assert (await refused.get_json())["code"] == "RANGE_NOT_SATISFIABLE"


async def test_a_new_recording_replaces_the_old_one_in_another_format(client, world, storage):
    call = world["call"]
    assert (await _upload(client, call.id, OGG)).status_code == 200
    wav = b"RIFF" + bytes(100)
    assert (await _upload(client, call.id, wav, "audio/wav")).status_code == 200
    assert storage.holds(f"{call.workspace_id}/{call.id}.wav")
    assert not storage.holds(f"{call.workspace_id}/{call.id}.ogg")
    served = await client.get(f"/calls/{call.id}/recording", headers=world["member"])
    assert served.headers["Content-Type"] == "audio/wav"
    assert await served.get_data() == wav


async def test_only_the_calls_workspace_hears_it(client, world, storage):
    call = world["call"]
    assert (await _upload(client, call.id, OGG)).status_code == 200
    for role in ("member", "developer", "admin"):
        response = await client.get(f"/calls/{call.id}/recording", headers=world[role])
        assert response.status_code == 200, role
    foreign = await client.get(f"/calls/{call.id}/recording", headers=world["outsider"])
    assert foreign.status_code == 404
    assert await foreign.get_data() != OGG
    anonymous = await client.get(f"/calls/{call.id}/recording")
    assert anonymous.status_code == 401


async def test_uploads_are_checked_and_leave_nothing_when_refused(client, world, storage):
    call = world["call"]
    key = f"{call.workspace_id}/{call.id}.ogg"
    no_token = await client.put(
        f"/internal/calls/{call.id}/recording", data=OGG, headers={"Content-Type": "audio/ogg"}
    )
    assert no_token.status_code == 401
    assert (await _upload(client, call.id, OGG, "text/plain")).status_code == 415
    not_ogg = await _upload(client, call.id, b"RIFF" + bytes(100), "audio/ogg")
    assert not_ogg.status_code == 400
    assert (await not_ogg.get_json())["code"] == "INVALID_RECORDING"
    assert (await _upload(client, call.id, b"", "audio/ogg")).status_code == 400
    assert (await _upload(client, uuid.uuid4(), OGG)).status_code == 404

    # Too large, found only while streaming: the partial object is dropped.
    with pytest.raises(TooLarge) as refused:
        await recordings.store_recording(
            storage.settings, call, "audio/ogg", _chunks(OGG), limit=len(OGG) - 1
        )
    assert refused.value.code == "PAYLOAD_TOO_LARGE"
    await call.refresh_from_db()
    assert call.recording_url is None and not storage.holds(key)
    missing = await client.get(f"/calls/{call.id}/recording", headers=world["member"])
    assert missing.status_code == 404
    assert (await missing.get_json())["code"] == "NO_RECORDING"


async def _new_call(workspace: Workspace, agent) -> Call:
    return await Call.create(
        workspace_id=workspace.id,
        agent=agent,
        call_type="web",
        call_direction="inbound",
        status="completed",
    )


async def _recorded_call(settings: Settings, storage: Storage, workspace, agent, age: timedelta):
    call = await _new_call(workspace, agent)
    await Call.filter(id=call.id).update(created_at=NOW - age)
    await recordings.store_recording(storage.settings, call, "audio/ogg", _chunks(OGG))
    return call


async def test_retention_deletes_only_expired_recordings_of_that_workspace(
    client, world, storage, settings
):
    workspace, agent = world["workspace"], world["agent"]
    other_agent = await create_agent(settings, world["elsewhere"].id, {"agent_name": "Theirs"})
    patched = await client.patch(
        f"/workspaces/{workspace.id}",
        json={"recording_retention_days": 30},
        headers=world["admin"],
    )
    assert patched.status_code == 200, await patched.get_json()
    assert (await patched.get_json())["recording_retention_days"] == 30

    old = await _recorded_call(settings, storage, workspace, agent, timedelta(days=31))
    recent = await _recorded_call(settings, storage, workspace, agent, timedelta(days=29))
    # the other workspace keeps recordings forever (no retention set)
    theirs = await _recorded_call(
        settings, storage, world["elsewhere"], other_agent, timedelta(days=400)
    )

    assert await recordings.expire_recordings(storage.settings, now=NOW) == 1
    for call, kept in ((old, False), (recent, True), (theirs, True)):
        await call.refresh_from_db()
        assert (call.recording_url is not None) is kept, call.id
        assert storage.holds(f"{call.workspace_id}/{call.id}.ogg") is kept, call.id
    gone = await client.get(f"/calls/{old.id}/recording", headers=world["member"])
    assert gone.status_code == 404
    # nothing more has expired: the job is idempotent
    assert await recordings.expire_recordings(storage.settings, now=NOW) == 0


async def test_the_retention_job_runs_on_the_job_queue(world, storage, settings, redis):
    workspace = world["workspace"]
    await Workspace.filter(id=workspace.id).update(recording_retention_days=1)
    # created years ago: the job runs on the real clock
    call = await _recorded_call(settings, storage, workspace, world["agent"], timedelta(days=999))
    context = jobs.JobContext(storage.settings, redis)
    await jobs.drain(context)
    await call.refresh_from_db()
    assert call.recording_url is None and call.recording_key is None
    assert not storage.holds(f"{workspace.id}/{call.id}.ogg")


async def test_deleting_a_workspace_deletes_its_recordings_only(client, world, storage, settings):
    theirs_agent = await create_agent(settings, world["elsewhere"].id, {"agent_name": "Theirs"})
    ours = await _recorded_call(settings, storage, world["workspace"], world["agent"], timedelta())
    theirs = await _recorded_call(settings, storage, world["elsewhere"], theirs_agent, timedelta())
    deleted = await client.delete(f"/workspaces/{world['workspace'].id}", headers=world["admin"])
    assert deleted.status_code == 204, await deleted.get_data()
    assert not storage.holds(f"{ours.workspace_id}/{ours.id}.ogg")
    assert storage.holds(f"{theirs.workspace_id}/{theirs.id}.ogg")


async def test_retention_is_set_by_admins_only_and_may_be_cleared(client, world):
    path = f"/workspaces/{world['workspace'].id}"
    by_developer = await client.patch(
        path, json={"recording_retention_days": 7}, headers=world["developer"]
    )
    assert by_developer.status_code == 403
    for bad in (0, -1, 100_000, "soon"):
        response = await client.patch(
            path, json={"recording_retention_days": bad}, headers=world["admin"]
        )
        assert response.status_code == 400, bad
    assert (await Workspace.get(id=world["workspace"].id)).recording_retention_days is None
    await client.patch(path, json={"recording_retention_days": 7}, headers=world["admin"])
    cleared = await client.patch(
        path, json={"recording_retention_days": None}, headers=world["admin"]
    )
    assert (await cleared.get_json())["recording_retention_days"] is None
    assert (await Workspace.get(id=world["workspace"].id)).recording_retention_days is None


@pytest.mark.parametrize(
    "url",
    [
        "ftp://bucket/x",
        "s3://",
        "s3://bucket?endpoint=localhost:9000",
        "s3://bucket?acl=public",
        "file://relative/dir",
    ],
)
def test_a_recordings_url_of_no_known_form_stops_start_up(url):
    with pytest.raises(ValueError, match="VOXLINE_RECORDINGS_URL"):
        Settings(recordings_url=url)


# -- the spoken test: both voices of a simulated call, each on its own channel ---------------


def _loudness(samples: np.ndarray, rate: int, start: float, seconds: float) -> np.ndarray:
    """RMS of each channel over `seconds` from `start`."""
    window = samples[:, max(int(start * rate), 0) : int((start + seconds) * rate)]
    return np.sqrt((window**2).mean(axis=1)) if window.size else np.zeros(2)


async def test_a_simulated_call_has_each_voice_on_its_own_channel(
    app, client, settings, scripted_llm, tmp_path, monkeypatch
):
    pytest.importorskip("faster_whisper", reason="offline speech (faster-whisper) is not installed")
    pytest.importorskip("piper", reason="offline speech (Piper) is not installed")
    from runtime.simulate import simulate_call

    # the scripted LLM listens on loopback: private URLs allowed
    settings = settings.model_copy(update={"allow_private_urls": True})
    monkeypatch.setitem(app.app.config, "SETTINGS", settings)
    user, agent = await offline_spoken_agent(
        settings,
        scripted_llm,
        agent_name="Cafe",
        first_message="Hello, Harbor Cafe.",
        recording_enabled=True,
    )
    scripted_llm.on(r"bye|thank|good", "Goodbye, and have a lovely day!", times=1)
    scripted_llm.on(r".", "We open at seven every weekday.", times=1)
    # What `voxline simulate` does, with the control plane reached over ASGI: open the call,
    # run it in real time, stream the recording up, report.
    runtime_settings = RuntimeSettings(
        api_url="http://control-plane.test",
        service_token=settings.service_token,
        allow_private_urls=True,
    )
    transport = httpx.ASGITransport(app=app.app)
    async with ControlPlane(runtime_settings, transport=transport) as control:
        call_spec = await control.open_call(str(agent.id), direction="web")
        result = await simulate_call(
            call_spec,
            ["What are your opening hours?", "Thank you, goodbye."],
            recording_path=tmp_path / f"call{FILE_SUFFIX}",
        )
        url = await control.upload_recording(call_spec.call_id, result.recording_path)
        await control.report(result.report)
    call_id = call_spec.call_id
    assert url == f"/calls/{call_id}/recording"

    response = await client.get(f"/calls/{call_id}/recording", headers=auth_headers(settings, user))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/ogg"
    samples, rate = decode_stereo(await response.get_data())

    # The recording's clock starts before the greeting: the greeting's first loud 20 ms on the
    # agent's channel places the transcript's timeline on the recording's.
    greeting_at = loud_spans(samples[1], rate, 0.01)[0][0]
    call = await Call.get(id=call_id)
    turns = [
        turn
        for turn in call.transcript
        if turn["role"] in ("user", "assistant") and turn["text"] and not turn.get("interrupted")
    ]
    assert turns[0]["role"] == "assistant", turns
    origin = datetime.fromisoformat(turns[0]["started_at"])
    checked = {"user": 0, "assistant": 0}
    for turn in turns:
        at = greeting_at + (datetime.fromisoformat(turn["started_at"]) - origin).total_seconds()
        # half a second well inside the turn: the speaker's channel is loud, the other quiet
        caller, agent_side = _loudness(samples, rate, at + 0.15, 0.5)
        loud, quiet = (caller, agent_side) if turn["role"] == "user" else (agent_side, caller)
        assert loud > 0.01 and loud > 5 * quiet, (turn, caller, agent_side)
        checked[turn["role"]] += 1
    assert checked["user"] >= 2 and checked["assistant"] >= 2, turns
