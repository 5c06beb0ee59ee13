"""Checks on uploaded files: safe names, size limits and content that matches the extension."""

from __future__ import annotations

import io
import logging
import re
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from knowledge.config import KnowledgeSettings, get_knowledge_settings
from knowledge.errors import IngestError, UploadRejected, UploadTooLarge
from knowledge.loaders import pdf_page_count
from knowledge.sniffing import decode_text, describe_binary, is_pdf

__all__ = ["CheckedUpload", "FileKind", "UploadRejected", "check_upload", "check_uploads"]

logger = logging.getLogger(__name__)

FileKind = Literal["pdf", "docx", "txt", "md", "csv", "html"]
FILE_KINDS: tuple[str, ...] = get_args(FileKind)
TEXT_KINDS = frozenset({"txt", "md", "csv", "html"})
EXTENSION_KINDS: dict[str, FileKind] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".csv": "csv",
    ".html": "html",
    ".htm": "html",
}
KIND_LABELS = {
    "pdf": "a PDF",
    "docx": "a DOCX document",
    "txt": "a text file",
    "md": "a Markdown file",
    "csv": "a CSV file",
    "html": "an HTML page",
}

MAX_NAME_CHARS = 150
MAX_DOCX_ENTRIES = 2000
WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
UNSAFE_NAME_CHARS = re.compile(r"[^\w .,()\[\]+&@'-]")


@dataclass(frozen=True, slots=True)
class CheckedUpload:
    """An upload that passed every check, under a name safe to store and show."""

    safe_name: str
    kind: FileKind
    size: int
    pages: int | None = None  # a PDF's page count, when it could be read


def check_upload(
    filename: str, data: bytes, settings: KnowledgeSettings | None = None
) -> CheckedUpload:
    """Checks one uploaded file before it is stored or ingested.

    Args:
        filename: the name the client sent.
        data: the file's bytes.
        settings: limits to apply; the process settings when omitted.

    Returns:
        The sanitised name, the kind told from the content, and the size.

    Raises:
        UploadRejected: with a reason fit for a 400 answer.
    """
    settings = settings or get_knowledge_settings()
    safe_name = sanitize_filename(filename)
    extension = safe_name[safe_name.rfind(".") :].lower() if "." in safe_name else ""
    kind = EXTENSION_KINDS.get(extension)
    if kind is None:
        allowed = ", ".join(sorted({k.upper() for k in EXTENSION_KINDS.values()}))
        raise UploadRejected(
            f"{safe_name}: unsupported file type {extension or '(no extension)'}; "
            f"allowed types are {allowed}"
        )
    size = len(data)
    if size == 0:
        raise UploadRejected(f"{safe_name}: the file is empty")
    if size > settings.max_file_bytes:
        raise UploadRejected(
            f"{safe_name}: the file is {_mib(size)}, over the {_mib(settings.max_file_bytes)} "
            "limit per file"
        )
    _check_content(safe_name, kind, data, settings)
    pages = _pdf_pages(safe_name, data, settings) if kind == "pdf" else None
    return CheckedUpload(safe_name=safe_name, kind=kind, size=size, pages=pages)


def check_uploads(
    files: Iterable[tuple[str, bytes]], settings: KnowledgeSettings | None = None
) -> list[CheckedUpload]:
    """Checks all the files of one upload request, including the limit per request.

    Raises:
        UploadRejected: for the first file that fails, or when the files are too big together.
    """
    settings = settings or get_knowledge_settings()
    files = list(files)
    total = sum(len(data) for _, data in files)
    if total > settings.max_request_bytes:
        raise UploadRejected(
            f"the upload is {_mib(total)}, over the {_mib(settings.max_request_bytes)} "
            "limit per request"
        )
    return [check_upload(name, data, settings) for name, data in files]


def sanitize_filename(filename: str) -> str:
    """Turns a client-sent name into a bare file name that is safe to store and show.

    Directory parts that clients send for folder uploads (``docs/faq.pdf``) are dropped, but
    names that try to climb (``..``), start at a root, or hold control characters are refused.

    Raises:
        UploadRejected: the name is empty, a path trick, or holds control characters.
    """
    if not filename or not filename.strip():
        raise UploadRejected("the file has no name")
    if any(unicodedata.category(ch) == "Cc" for ch in filename):
        raise UploadRejected("the file name contains control characters (such as NUL)")
    name = unicodedata.normalize("NFC", filename).strip()
    parts = re.split(r"[\\/]+", name)
    if name.startswith(("/", "\\")) or WINDOWS_DRIVE.match(name):
        raise UploadRejected("the file name must not be an absolute path")
    if any(part.strip() == ".." for part in parts):
        raise UploadRejected("the file name must not contain '..'")
    name = parts[-1]
    # Unicode format characters (bidi overrides, zero-width) can disguise an extension.
    name = "".join(ch for ch in name if unicodedata.category(ch) != "Cf")
    name = UNSAFE_NAME_CHARS.sub("_", name)
    name = re.sub(r"\s+", " ", name).strip(" .")
    if not name:
        raise UploadRejected("the file name is empty once sanitised")
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    stem = stem.rstrip(" .") or "file"
    extension = extension.lower()
    stem = stem[: MAX_NAME_CHARS - len(extension) - 1].rstrip(" .") or "file"
    return f"{stem}.{extension}" if extension else stem


def _check_content(name: str, kind: FileKind, data: bytes, settings: KnowledgeSettings) -> None:
    expected = KIND_LABELS[kind]
    if kind == "pdf":
        if not is_pdf(data):
            found = describe_binary(data) or "not a PDF"
            raise UploadRejected(f"{name}: the content is {found}, not {expected}")
        return
    if kind == "docx":
        _check_docx(name, data, settings)
        return
    binary_kind = describe_binary(data)
    if binary_kind is not None:
        raise UploadRejected(f"{name}: the content is {binary_kind}, not {expected}")
    try:
        decode_text(data)
    except ValueError as e:
        raise UploadRejected(f"{name}: {e}") from e


def _pdf_pages(name: str, data: bytes, settings: KnowledgeSettings) -> int | None:
    """The PDF's page count, refused over the limit before any text is extracted."""
    try:
        pages = pdf_page_count(data)
    except IngestError:
        return None  # damaged or protected: ingestion fails it with the reason
    if pages > settings.max_pdf_pages:
        raise UploadTooLarge(
            f"{name}: the PDF has {pages} pages, over the limit of {settings.max_pdf_pages} "
            "pages per file"
        )
    return pages


def _check_docx(name: str, data: bytes, settings: KnowledgeSettings) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        found = describe_binary(data) or "not a DOCX document"
        raise UploadRejected(f"{name}: the content is {found}, not a DOCX document") from e
    with archive:
        entries = archive.infolist()
        if len(entries) > MAX_DOCX_ENTRIES:
            raise UploadRejected(f"{name}: the DOCX holds too many parts ({len(entries)})")
        if "word/document.xml" not in archive.namelist():
            raise UploadRejected(f"{name}: the content is a zip archive, not a DOCX document")
        declared = sum(entry.file_size for entry in entries)
        compressed = sum(entry.compress_size for entry in entries)
        if declared > settings.max_docx_uncompressed_bytes:
            raise UploadRejected(
                f"{name}: the DOCX would expand to {_mib(declared)}, over the "
                f"{_mib(settings.max_docx_uncompressed_bytes)} limit (zip bomb?)"
            )
        ratio = declared / max(compressed, 1)
        if ratio > settings.max_docx_compression_ratio:
            raise UploadRejected(
                f"{name}: the DOCX is compressed {ratio:.0f} to 1, which only zip bombs are"
            )


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
