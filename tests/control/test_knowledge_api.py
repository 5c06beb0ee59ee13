"""`/agents/{id}/upload`, `/files`, `/files/{name}` and `/query`: the knowledge base over HTTP."""

import io
import zipfile
from textwrap import wrap

import pytest
from docx import Document

from control import jobs
from control.models import KnowledgeFile, Role
from knowledge import retrieve
from knowledge.config import get_knowledge_settings
from tests.conftest import auth_headers, make_user
from tests.knowledge.pdfgen import make_pdf

RETURNS = (
    "Returns policy.\n\nYou may return any unworn item within 30 days of delivery for a full "
    "refund. Refunds go back to the original payment method within five business days.\n\n"
    "Shipping.\n\nStandard shipping takes three to five business days; express takes one day."
)


def docx_bytes(text: str) -> bytes:
    document = Document()
    for paragraph in text.split("\n\n"):
        document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def pdf_bytes(text: str) -> bytes:
    return make_pdf([[line for paragraph in text.split("\n\n") for line in wrap(paragraph, 80)]])


@pytest.fixture
async def agent(db, settings, redis, client):
    user, workspace = await make_user("dev@example.com", role=Role.DEVELOPER)
    member, _ = await make_user("member@example.com", role=Role.MEMBER, workspace=workspace)
    outsider, _ = await make_user("outsider@example.com", role=Role.ADMIN)
    headers = auth_headers(settings, user)
    created = await client.post("/agents", json={"agent_name": "Helper"}, headers=headers)
    return {
        "id": (await created.get_json())["id"],
        "dev": headers,
        "member": auth_headers(settings, member),
        "outsider": auth_headers(settings, outsider),
        "jobs": jobs.JobContext(settings, redis),
    }


def multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart body with one `files` part per file (the test client keeps one per field)."""
    boundary = "voxline-test-boundary"
    body = b""
    for name, data in files:
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def upload(client, agent, files, headers=None):
    body, content_type = multipart(files)
    return await client.post(
        f"/agents/{agent['id']}/upload",
        data=body,
        headers={**(headers or agent["dev"]), "Content-Type": content_type},
    )


async def wait_until_settled(client, agent):
    """Run the queued ingestion jobs, then list the files (none may still be processing)."""
    await jobs.drain(agent["jobs"])
    listed = await (
        await client.get(f"/agents/{agent['id']}/files", headers=agent["member"])
    ).get_json()
    assert listed["items"] and all(item["status"] != "processing" for item in listed["items"])
    return {item["filename"]: item for item in listed["items"]}


async def test_upload_pdf_and_docx_then_query(client, agent):
    files = [("policy.pdf", pdf_bytes(RETURNS)), ("faq.docx", docx_bytes(RETURNS))]
    response = await upload(client, agent, files)
    assert response.status_code == 202, await response.get_json()
    assert {f["status"] for f in (await response.get_json())["files"]} == {"processing"}
    files = await wait_until_settled(client, agent)
    assert files["policy.pdf"]["status"] == "ready", files
    assert files["faq.docx"]["status"] == "ready", files
    assert files["policy.pdf"]["chunk_count"] > 0 and files["policy.pdf"]["size_bytes"] > 0
    answer = await client.post(
        f"/agents/{agent['id']}/query",
        json={"query": "How long do I have to return an item?", "top_k": 3},
        headers=agent["member"],
    )
    assert answer.status_code == 200
    results = (await answer.get_json())["results"]
    assert results and "30 days" in results[0]["text"]
    assert results[0]["file_name"] in {"policy.pdf", "faq.docx"} and isinstance(
        results[0]["position"], int
    )


@pytest.mark.parametrize(
    "name, data",
    [
        ("evil.pdf", b"MZ\x90\x00 this is an executable"),
        ("empty.txt", b""),
        ("virus.exe", b"hello"),
        ("notes.docx", b"plain text pretending"),
    ],
)
async def test_bad_uploads_are_400_and_store_nothing(client, agent, name, data):
    response = await upload(client, agent, [(name, data)])
    assert response.status_code == 400
    assert (await response.get_json())["code"] == "UPLOAD_REJECTED"
    assert await KnowledgeFile.all().count() == 0


async def test_zip_bomb_docx_is_refused(client, agent):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "0" * (300 * 1024 * 1024))
    response = await upload(client, agent, [("bomb.docx", buffer.getvalue())])
    assert response.status_code == 400


@pytest.mark.parametrize("name", ["../../etc/passwd.txt", "/etc/passwd.txt", "a\x00b.txt"])
async def test_path_tricks_are_refused(client, agent, settings, name):
    response = await upload(client, agent, [(name, b"root:x:0:0")])
    assert response.status_code == 400
    assert await KnowledgeFile.all().count() == 0
    assert not (settings.data_dir.parent / "etc").exists()


async def test_folder_parts_are_dropped_from_names(client, agent):
    response = await upload(client, agent, [("docs/faq.md", b"# FAQ\n\nOpen 9 to 5.")])
    assert response.status_code == 202
    assert (await response.get_json())["files"][0]["filename"] == "faq.md"


async def test_corrupt_pdf_fails_with_a_reason_and_leaves_no_chunks(client, agent):
    await upload(
        client,
        agent,
        [("broken.pdf", b"%PDF-1.7\n garbage that is not a pdf body")],
    )
    files = await wait_until_settled(client, agent)
    assert files["broken.pdf"]["status"] == "failed" and files["broken.pdf"]["error"]
    assert await retrieve(agent["id"], "anything", 5) == []


async def test_replace_delete_and_query_before_ready(client, agent):
    early = await client.post(
        f"/agents/{agent['id']}/query", json={"query": "refund"}, headers=agent["member"]
    )
    assert early.status_code == 409
    await upload(client, agent, [("notes.txt", b"The office cat is called Pixel.")])
    await wait_until_settled(client, agent)
    await upload(client, agent, [("notes.txt", b"The office dog is called Byte.")])
    await wait_until_settled(client, agent)
    passages = await retrieve(agent["id"], "office pet name", 5)
    assert passages and all("Pixel" not in p.text for p in passages)
    assert any("Byte" in p.text for p in passages)
    assert (
        await client.delete(f"/agents/{agent['id']}/files/notes.txt", headers=agent["member"])
    ).status_code == 403
    assert (
        await client.delete(f"/agents/{agent['id']}/files/notes.txt", headers=agent["dev"])
    ).status_code == 204
    assert await retrieve(agent["id"], "office pet name", 5) == []
    assert (
        await client.delete(f"/agents/{agent['id']}/files/notes.txt", headers=agent["dev"])
    ).status_code == 404


async def test_top_k_bounds_and_tenant_isolation(client, agent):
    for top_k in (0, 21):
        response = await client.post(
            f"/agents/{agent['id']}/query",
            json={"query": "x", "top_k": top_k},
            headers=agent["member"],
        )
        assert response.status_code == 400
    for method, path, kwargs in [
        ("GET", "/files", {}),
        ("POST", "/query", {"json": {"query": "x"}}),
        ("DELETE", "/files/notes.txt", {}),
        ("GET", "", {}),
        ("PUT", "", {"json": {"agent_name": "stolen"}}),
        ("DELETE", "", {}),
    ]:
        response = await client.open(
            f"/agents/{agent['id']}{path}", method=method, headers=agent["outsider"], **kwargs
        )
        assert response.status_code == 404, (method, path)
    response = await upload(client, agent, [("x.txt", b"hello")], headers=agent["outsider"])
    assert response.status_code == 404


async def test_deleting_the_agent_drops_its_chunks(client, agent):
    await upload(client, agent, [("notes.txt", b"The office cat is called Pixel.")])
    await wait_until_settled(client, agent)
    assert await retrieve(agent["id"], "cat", 3)
    assert (await client.delete(f"/agents/{agent['id']}", headers=agent["dev"])).status_code == 204
    assert await retrieve(agent["id"], "cat", 3) == []
    assert await KnowledgeFile.all().count() == 0


@pytest.fixture
def small_limits(monkeypatch):
    """Knowledge limits small enough to reach in a test (read from the environment)."""
    limits = {
        "VOXLINE_MAX_PDF_PAGES": "3",
        "VOXLINE_MAX_WORKSPACE_PAGES": "5",
        "VOXLINE_MAX_FILE_CHUNKS": "6",
        "VOXLINE_MAX_WORKSPACE_CHUNKS": "8",
    }
    for name, value in limits.items():
        monkeypatch.setenv(name, value)
    get_knowledge_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_knowledge_settings.cache_clear()


def numbered_pdf(pages: int) -> bytes:
    return make_pdf([[f"Page {number} of the handbook."] for number in range(1, pages + 1)])


def numbered_text(paragraphs: int) -> bytes:
    return "\n\n".join(
        f"Paragraph {number}. " + "Opening hours are nine to five on weekdays. " * 8
        for number in range(paragraphs)
    ).encode()


async def test_pdf_pages_are_capped_per_file_and_per_workspace(client, agent, small_limits):
    too_long = await upload(client, agent, [("long.pdf", numbered_pdf(4))])
    assert too_long.status_code == 413
    error = await too_long.get_json()
    assert error["code"] == "UPLOAD_TOO_LARGE" and "4 pages" in error["detail"]
    assert await KnowledgeFile.all().count() == 0
    assert (await upload(client, agent, [("a.pdf", numbered_pdf(3))])).status_code == 202
    over = await upload(client, agent, [("b.pdf", numbered_pdf(3))])
    assert over.status_code == 413 and "limit of 5" in (await over.get_json())["detail"]
    # Replacing a file frees its own pages first.
    assert (await upload(client, agent, [("a.pdf", numbered_pdf(2))])).status_code == 202
    assert await KnowledgeFile.all().count() == 1


async def test_chunks_are_capped_per_file_and_per_workspace(client, agent, small_limits):
    await upload(client, agent, [("big.txt", numbered_text(20)), ("ok.txt", numbered_text(5))])
    files = await wait_until_settled(client, agent)
    assert files["big.txt"]["status"] == "failed"
    assert "limit of 6 per file" in files["big.txt"]["error"]
    assert files["ok.txt"]["status"] == "ready" and files["ok.txt"]["chunk_count"] == 6
    assert all("Paragraph 19" not in p.text for p in await retrieve(agent["id"], "hours", 20))
    await upload(client, agent, [("more.txt", numbered_text(2))])  # 3 chunks; room for 2
    files = await wait_until_settled(client, agent)
    assert files["more.txt"]["status"] == "failed" and "room" in files["more.txt"]["error"]
    await upload(client, agent, [("one.txt", b"Closed on Sundays."), ("two.txt", b"Cash only.")])
    files = await wait_until_settled(client, agent)
    assert files["one.txt"]["status"] == files["two.txt"]["status"] == "ready"  # 8 of 8
    full = await upload(client, agent, [("late.txt", b"One more line.")])
    assert full.status_code == 413 and "full" in (await full.get_json())["detail"]
