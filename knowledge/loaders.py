"""Turns the bytes of an uploaded file into text sections, one loader per file kind."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser

from knowledge.errors import IngestError
from knowledge.sniffing import decode_text

__all__ = ["IngestError", "Section", "load"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Section:
    """A run of text from a file; ``page`` is 1-based where the format has pages."""

    text: str
    page: int | None = None


def load(kind: str, data: bytes, *, max_pages: int | None = None) -> list[Section]:
    """Extracts the text of a file.

    Args:
        kind: one of pdf, docx, txt, md, csv, html (as told by ``check_upload``).
        data: the file's bytes.
        max_pages: a PDF with more pages is refused before any text is extracted.

    Returns:
        The file's sections in reading order; PDFs give one section per page, blank pages
        included.

    Raises:
        IngestError: the file is damaged, protected, or holds no text.
    """
    loader = LOADERS.get(kind)
    if loader is None:
        raise IngestError(f"unsupported file type: {kind}")
    sections = load_pdf(data, max_pages) if kind == "pdf" else loader(data)
    if not any(section.text.strip() for section in sections):
        raise IngestError(_NO_TEXT.get(kind, "the file holds no text"))
    return sections


_NO_TEXT = {"pdf": "the PDF has no extractable text (is it a scan without OCR?)"}


def load_pdf(data: bytes, max_pages: int | None = None) -> list[Section]:
    """One section per page, extracted with pypdf (none if it has over ``max_pages`` pages)."""
    with _reading_pdf():
        reader = _open_pdf(data)
        pages = len(reader.pages)
        if max_pages is not None and pages > max_pages:
            raise IngestError(
                f"the PDF has {pages} pages, over the limit of {max_pages} pages per file"
            )
        return [
            Section(text=page.extract_text() or "", page=number)
            for number, page in enumerate(reader.pages, start=1)
        ]


def pdf_page_count(data: bytes) -> int:
    """How many pages a PDF has, read from its page tree without extracting any text.

    Raises:
        IngestError: the PDF is damaged or password-protected.
    """
    with _reading_pdf():
        return len(_open_pdf(data).pages)


def _open_pdf(data: bytes):
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):
        raise IngestError("the PDF is password-protected")
    return reader


@contextmanager
def _reading_pdf() -> Iterator[None]:
    """Turns pypdf's failures into an `IngestError` with a reason fit to show."""
    from pypdf.errors import FileNotDecryptedError

    # pypdf raises many exception types on hostile or damaged input, not only PdfReadError.
    try:
        yield
    except IngestError:
        raise
    except FileNotDecryptedError as e:
        raise IngestError("the PDF is password-protected") from e
    except Exception as e:  # noqa: BLE001 - any parser failure means a damaged file
        raise IngestError(f"the PDF is damaged: {_describe(e)}") from e


def load_docx(data: bytes) -> list[Section]:
    """Paragraphs and tables of a Word document, in reading order."""
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        blocks: list[str] = []
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                blocks.append(_docx_table_text(item))
            else:
                blocks.append(_docx_paragraph_text(item))
    except Exception as e:  # noqa: BLE001 - python-docx and lxml raise many types
        raise IngestError(f"the DOCX is damaged: {_describe(e)}") from e
    return [Section(text="\n\n".join(block for block in blocks if block.strip()))]


def _docx_paragraph_text(paragraph) -> str:
    style = paragraph.style.name if paragraph.style is not None else ""
    match = DOCX_HEADING_STYLE.match(style or "")
    if match and paragraph.text.strip():
        return "#" * min(int(match.group(1) or 1), 6) + " " + paragraph.text
    return paragraph.text


def _docx_table_text(table) -> str:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            # Merged cells repeat the same cell object along the row.
            if not cells or cells[-1] != text:
                cells.append(text)
        rows.append(" | ".join(cells))
    return "\n".join(rows)


def load_text(data: bytes) -> list[Section]:
    """A plain text file as one section."""
    return [Section(text=_decode(data))]


DOCX_HEADING_STYLE = re.compile(r"^(?:Heading (\d)|Title)$")
MARKDOWN_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def load_markdown(data: bytes) -> list[Section]:
    """A Markdown file as one section, with link targets and image URLs dropped."""
    text = _decode(data)
    text = HTML_COMMENT.sub("", text)
    text = MARKDOWN_IMAGE.sub(r"\1", text)
    text = MARKDOWN_LINK.sub(r"\1", text)
    return [Section(text=text)]


def load_csv(data: bytes) -> list[Section]:
    """A CSV file with one paragraph per row, each cell labelled with its column name."""
    text = _decode(data)
    try:
        dialect = csv.Sniffer().sniff(text[:16384], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [
            row for row in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in row)
        ]
    except csv.Error as e:
        raise IngestError(f"the CSV is malformed: {e}") from e
    if not rows:
        return []
    # "unit_price" reads as "unit price" to an embedding model, which matches "price" queries.
    header = [
        " ".join(name.replace("_", " ").split()) or f"column {i}"
        for i, name in enumerate(rows[0], start=1)
    ]
    paragraphs = []
    for row in rows[1:] if len(rows) > 1 else rows:
        cells = [
            f"{header[i] if i < len(header) else f'column {i + 1}'}: {value.strip()}"
            for i, value in enumerate(row)
            if value.strip()
        ]
        paragraphs.append("; ".join(cells))
    return [Section(text="\n\n".join(paragraphs))]


def load_html(data: bytes) -> list[Section]:
    """The visible text of an HTML page; scripts, styles and navigation are skipped."""
    parser = _HTMLText()
    try:
        parser.feed(_decode(data))
        parser.close()
    except Exception as e:  # noqa: BLE001 - html.parser gives up on some broken markup
        raise IngestError(f"the HTML page could not be read: {_describe(e)}") from e
    return [Section(text=parser.text())]


class _HTMLText(HTMLParser):
    SKIPPED = frozenset({"script", "style", "noscript", "template", "svg", "head", "nav"})
    HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
    BLOCKS = frozenset(
        {
            "p", "div", "section", "article", "main", "header", "footer", "aside", "table",
            "ul", "ol", "dl", "dd", "dt", "blockquote", "pre", "form", "fieldset", "figure",
            "figcaption", "address", "details", "summary", "h1", "h2", "h3", "h4", "h5", "h6",
            "hr", "body", "html",
        }
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._skip_depth = 0
        self._cells_in_row = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self.SKIPPED:
            self._skip_depth += 1
        elif tag in self.HEADINGS:
            # Mark headings as Markdown does, so the chunker treats both formats alike.
            self._parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in self.BLOCKS:
            self._parts.append("\n\n")
        elif tag == "tr":
            self._parts.append("\n")
            self._cells_in_row = 0
        elif tag in ("td", "th"):
            if self._cells_in_row:
                self._parts.append(" | ")
            self._cells_in_row += 1
        elif tag == "li":
            self._parts.append("\n- ")
        elif tag == "br":
            self._parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in self.BLOCKS:
            self._parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self._parts.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = (line.strip() for line in "".join(self._parts).split("\n"))
        return "\n".join(lines)


def _decode(data: bytes) -> str:
    try:
        return decode_text(data)
    except ValueError as e:
        raise IngestError(str(e)) from e


def _describe(error: Exception) -> str:
    message = " ".join(str(error).split())[:200]
    return message or type(error).__name__


LOADERS: dict[str, Callable[[bytes], list[Section]]] = {
    "pdf": load_pdf,
    "docx": load_docx,
    "txt": load_text,
    "md": load_markdown,
    "csv": load_csv,
    "html": load_html,
}
