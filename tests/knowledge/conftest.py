"""Fixtures of the knowledge tests: settings for both Chroma modes, a real Chroma server."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from knowledge import KnowledgeSettings
from tests.conftest import free_port
from tests.servers import stop_process

CHROMA_START_TIMEOUT = 60


def chroma_executable() -> str:
    beside_python = Path(sys.executable).parent / "chroma"
    found = str(beside_python) if beside_python.exists() else shutil.which("chroma")
    if not found:
        pytest.fail("the chromadb package's `chroma` command is not installed")
    return found


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Chroma server (`chroma run`) on a free local port, for the whole session."""
    path = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    log = (path / "server.log").open("wb")
    process = subprocess.Popen(
        [
            chroma_executable(),
            "run",
            "--path",
            str(path / "db"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + CHROMA_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"chroma run exited: {(path / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the Chroma server did not answer in time")
            time.sleep(0.2)
        yield url
    finally:
        stop_process(process)
        log.close()


@pytest.fixture(scope="session")
def embedded_settings(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeSettings:
    """Embedded Chroma under a temporary data dir, local embeddings."""
    return KnowledgeSettings(
        data_dir=tmp_path_factory.mktemp("voxline-data"), chroma_url=None, embeddings="local"
    )


@pytest.fixture(scope="session")
def server_settings(chroma_server: str, tmp_path_factory: pytest.TempPathFactory):
    """The Chroma server of this session, local embeddings."""
    return KnowledgeSettings(
        data_dir=tmp_path_factory.mktemp("voxline-data-unused"),
        chroma_url=chroma_server,
        embeddings="local",
    )


@pytest.fixture(params=["embedded", "server"])
def settings(request: pytest.FixtureRequest) -> KnowledgeSettings:
    """Each test that takes it runs once per Chroma mode."""
    return request.getfixturevalue(f"{request.param}_settings")


@pytest.fixture
def agent_id() -> str:
    """A fresh agent id, so tests sharing a Chroma database never see each other's chunks."""
    return uuid.uuid4().hex
