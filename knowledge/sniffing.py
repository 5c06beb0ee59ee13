"""What an uploaded file really is, told from its bytes rather than its name."""

from __future__ import annotations

import io
import logging
import zipfile

logger = logging.getLogger(__name__)

# Signatures of binary formats people upload by mistake (or on purpose with a lying extension).
BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "a zip archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office (OLE) or encrypted Office document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"RIFF", "a RIFF media file"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "a program (ELF)"),
    (b"MZ", "a Windows program"),
    (b"ID3", "an MP3 file"),
    (b"OggS", "an Ogg media file"),
    (b"fLaC", "a FLAC file"),
)

# Acrobat accepts a PDF header anywhere in the first kilobyte.
PDF_HEADER_WINDOW = 1024
TEXT_SAMPLE_BYTES = 64 * 1024
ALLOWED_CONTROL_CHARS = frozenset("\t\n\r\f\v\x1b")
MAX_CONTROL_CHAR_RATIO = 0.02


def is_pdf(data: bytes) -> bool:
    """Whether the bytes carry a PDF header."""
    return b"%PDF-" in data[:PDF_HEADER_WINDOW]


def describe_binary(data: bytes) -> str | None:
    """Names the binary format the bytes start with, or None when no signature matches."""
    if is_pdf(data):
        return "a PDF document"
    for signature, description in BINARY_SIGNATURES:
        if data.startswith(signature):
            if description == "a zip archive" and is_docx_zip(data):
                return "a DOCX document"
            return description
    return None


def is_docx_zip(data: bytes) -> bool:
    """Whether the bytes are a zip archive holding a Word document body."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def decode_text(data: bytes) -> str:
    """Decodes a text file: UTF-8 (or UTF-16 with a BOM), else Windows-1252 or Latin-1.

    Raises:
        ValueError: the bytes are binary rather than text.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as e:
            raise ValueError("the file is not valid UTF-16 text") from e
    else:
        if b"\x00" in data[:TEXT_SAMPLE_BYTES]:
            raise ValueError("the file contains binary data (NUL bytes), not text")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            # Windows-1252 is what "Latin-1" files from Office usually are; true Latin-1 is
            # the last resort, since it decodes any byte sequence.
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
    sample = text[:TEXT_SAMPLE_BYTES]
    control_chars = sum(1 for ch in sample if ch < " " and ch not in ALLOWED_CONTROL_CHARS)
    if sample and control_chars / len(sample) > MAX_CONTROL_CHAR_RATIO:
        raise ValueError("the file contains binary data, not text")
    return text
