"""Builders of DOCX and zip test files, made in memory so no binary fixture is committed."""

from __future__ import annotations

import io
import zipfile


def make_docx(
    paragraphs: list[str],
    heading: str | None = None,
    table: list[list[str]] | None = None,
) -> bytes:
    """A real Word document written by python-docx."""
    import docx

    document = docx.Document()
    if heading:
        document.add_heading(heading, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for row, values in zip(grid.rows, table, strict=True):
            for cell, value in zip(row.cells, values, strict=True):
                cell.text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    """A deflated zip archive with the given members."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def make_zip_bomb(inflated_bytes: int) -> bytes:
    """A DOCX-shaped zip whose document part inflates from a few KB to ``inflated_bytes``."""
    return make_zip(
        {
            "[Content_Types].xml": b"<Types/>",
            "word/document.xml": b"<w:document/>" + b"\0" * inflated_bytes,
        }
    )
