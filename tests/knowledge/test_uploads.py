"""Upload checks: names, sizes, and content that must match the extension."""

from __future__ import annotations

import os

import pytest

from knowledge import KnowledgeSettings, UploadRejected, check_upload, check_uploads
from knowledge.errors import IngestError, UploadTooLarge
from knowledge.loaders import load
from tests.knowledge.builders import make_docx, make_zip, make_zip_bomb
from tests.knowledge.pdfgen import make_pdf

PDF = make_pdf([["A real PDF page."]])
DOCX = make_docx(["A real Word paragraph."])
PNG = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + os.urandom(64)
ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 64


@pytest.fixture(scope="module")
def limits() -> KnowledgeSettings:
    return KnowledgeSettings(max_file_bytes=1000, max_request_bytes=1500)


@pytest.mark.parametrize(
    ("filename", "data", "kind"),
    [
        ("manual.pdf", PDF, "pdf"),
        ("Policy.DOCX", DOCX, "docx"),
        ("notes.txt", b"plain text\n", "txt"),
        ("readme.md", "# Titre\n\nÉté, café.".encode(), "md"),
        ("prices.csv", b"sku,price\nA1,10\n", "csv"),
        ("page.htm", b"<html><body><p>Hello</p></body></html>", "html"),
        ("legacy.txt", "naïve café, 10 €".encode("cp1252"), "txt"),
    ],
)
def test_accepts_each_supported_kind(filename: str, data: bytes, kind: str) -> None:
    checked = check_upload(filename, data)

    assert checked.kind == kind
    assert checked.size == len(data)
    assert checked.safe_name.lower() == filename.lower()


def test_extension_is_lowercased_and_name_kept() -> None:
    assert check_upload("Policy.DOCX", DOCX).safe_name == "Policy.docx"


@pytest.mark.parametrize(
    ("filename", "data", "found"),
    [
        ("report.pdf", DOCX, "DOCX document"),
        ("report.pdf", b"just some text pretending", "not a PDF"),
        ("report.pdf", PNG, "PNG image"),
        ("letter.docx", PDF, "PDF document"),
        ("letter.docx", b"plain text in disguise", "not a DOCX"),
        ("letter.docx", make_zip({"hello.txt": b"hi"}), "zip archive, not a DOCX"),
        ("notes.txt", PDF, "PDF document"),
        ("notes.md", DOCX, "DOCX document"),
        ("table.csv", ELF, "program"),
        ("page.html", PNG, "PNG image"),
    ],
)
def test_refuses_content_that_lies_about_its_type(filename: str, data: bytes, found: str) -> None:
    with pytest.raises(UploadRejected) as rejected:
        check_upload(filename, data)

    assert found in rejected.value.reason
    assert filename in rejected.value.reason


def test_refuses_binary_data_named_as_text() -> None:
    noise = bytes(range(256)) * 8

    with pytest.raises(UploadRejected, match="binary"):
        check_upload("data.csv", noise)


def test_refuses_empty_file() -> None:
    with pytest.raises(UploadRejected, match="empty"):
        check_upload("empty.txt", b"")


def test_refuses_file_over_the_limit(limits: KnowledgeSettings) -> None:
    check_upload("ok.txt", b"x" * 1000, limits)

    with pytest.raises(UploadRejected, match="limit per file"):
        check_upload("big.txt", b"x" * 1001, limits)


def test_counts_pdf_pages_and_refuses_too_many_before_extracting() -> None:
    three_pages = make_pdf([["one"], ["two"], ["three"]])
    assert check_upload("ok.pdf", three_pages, KnowledgeSettings(max_pdf_pages=3)).pages == 3
    with pytest.raises(UploadTooLarge, match="3 pages, over the limit of 2"):
        check_upload("long.pdf", three_pages, KnowledgeSettings(max_pdf_pages=2))
    with pytest.raises(IngestError, match="3 pages"):
        load("pdf", three_pages, max_pages=2)


def test_refuses_request_over_the_limit(limits: KnowledgeSettings) -> None:
    with pytest.raises(UploadRejected, match="limit per request"):
        check_uploads([("a.txt", b"a" * 800), ("b.txt", b"b" * 800)], limits)


def test_checks_every_file_of_a_request(limits: KnowledgeSettings) -> None:
    checked = check_uploads([("a.txt", b"alpha"), ("b.md", b"# beta")], limits)

    assert [(c.safe_name, c.kind) for c in checked] == [("a.txt", "txt"), ("b.md", "md")]
    with pytest.raises(UploadRejected, match="empty"):
        check_uploads([("a.txt", b"alpha"), ("b.md", b"")], limits)


@pytest.mark.parametrize("filename", ["virus.exe", "archive.zip", "image.png", "noextension"])
def test_refuses_unsupported_extensions(filename: str) -> None:
    with pytest.raises(UploadRejected, match="unsupported file type"):
        check_upload(filename, b"some content")


def test_refuses_docx_zip_bomb_by_ratio() -> None:
    bomb = make_zip_bomb(30 * 1024 * 1024)
    assert len(bomb) < 200_000

    with pytest.raises(UploadRejected, match="zip bomb|compressed"):
        check_upload("bomb.docx", bomb)


def test_refuses_docx_whose_declared_size_is_over_the_limit() -> None:
    settings = KnowledgeSettings(max_docx_uncompressed_bytes=10_000)

    with pytest.raises(UploadRejected, match="expand"):
        check_upload("big.docx", make_docx(["x " * 20_000]), settings)


@pytest.mark.parametrize(
    ("filename", "reason"),
    [
        ("../../etc/passwd.txt", "'..'"),
        ("..\\..\\windows\\win.ini.txt", "'..'"),
        ("/etc/passwd.txt", "absolute path"),
        ("\\\\server\\share\\x.txt", "absolute path"),
        ("C:\\Users\\me\\notes.txt", "absolute path"),
        ("notes\x00.pdf.txt", "control characters"),
        ("evil.pdf\x00.txt", "control characters"),
        ("line\nbreak.txt", "control characters"),
        ("", "no name"),
        ("   ", "no name"),
        ("...", "empty once sanitised"),
    ],
)
def test_refuses_path_tricks_in_names(filename: str, reason: str) -> None:
    with pytest.raises(UploadRejected) as rejected:
        check_upload(filename, b"hello")

    assert reason in rejected.value.reason


@pytest.mark.parametrize(
    ("filename", "safe_name"),
    [
        ("folder/sub/faq.md", "faq.md"),
        ("  spaced   name .txt", "spaced name.txt"),
        ("report<script>.txt", "report_script_.txt"),
        ("invoice\u202etxt.md", "invoicetxt.md"),
        (".hidden.txt", "hidden.txt"),
        ("Liste des prix é.csv", "Liste des prix é.csv"),
    ],
)
def test_sanitises_names(filename: str, safe_name: str) -> None:
    assert check_upload(filename, b"a,b\n1,2\n").safe_name == safe_name


def test_caps_long_names_and_keeps_the_extension() -> None:
    safe_name = check_upload("a" * 500 + ".md", b"# hi").safe_name

    assert len(safe_name) <= 150
    assert safe_name.endswith(".md")
