"""Loaders of the six file kinds, and their clean failures on damaged files."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfWriter

from knowledge import IngestError
from knowledge.loaders import Section, load
from tests.knowledge.builders import make_docx
from tests.knowledge.pdfgen import make_pdf


def test_pdf_gives_one_section_per_page_with_its_number() -> None:
    pdf = make_pdf([["Opening hours", "Monday to Friday"], [], ["Returns within 30 days."]])

    sections = load("pdf", pdf)

    assert [section.page for section in sections] == [1, 2, 3]
    assert "Monday to Friday" in sections[0].text
    assert sections[1].text.strip() == ""
    assert "Returns within 30 days." in sections[2].text


def test_docx_keeps_headings_paragraphs_and_tables_in_order() -> None:
    docx = make_docx(
        ["The warranty lasts two years."],
        heading="Warranty",
        table=[["Model", "Price"], ["Mini", "129 dollars"]],
    )

    [section] = load("docx", docx)

    assert section.page is None
    assert section.text.index("# Warranty") < section.text.index("two years")
    assert "Model | Price" in section.text
    assert "Mini | 129 dollars" in section.text


def test_txt_decodes_utf8_and_windows_1252() -> None:
    assert load("txt", "Smart “quotes” and café".encode()) == [Section("Smart “quotes” and café")]
    assert load("txt", "Smart “quotes” and café".encode("cp1252"))[0].text == (
        "Smart “quotes” and café"
    )


def test_markdown_drops_link_targets_and_comments() -> None:
    md = b"# Help\n\nSee [our guide](https://example.com/guide) ![diagram](x.png)<!-- hidden -->"

    [section] = load("md", md)

    assert "our guide" in section.text
    assert "diagram" in section.text
    assert "https://" not in section.text
    assert "hidden" not in section.text


def test_csv_rows_become_labelled_paragraphs() -> None:
    csv_bytes = b"product;unit_price;notes\nMini;129;small rooms\nPro;449;\n"

    [section] = load("csv", csv_bytes)

    assert section.text.split("\n\n") == [
        "product: Mini; unit price: 129; notes: small rooms",
        "product: Pro; unit price: 449",
    ]


def test_html_keeps_visible_text_only() -> None:
    html = b"""<html><head><title>T</title><style>p {color: red}</style></head>
    <body><nav>Home | Shop</nav><h2>Hours</h2><script>var secret = 1;</script>
    <table><tr><th>Day</th><th>Open</th></tr><tr><td>Sunday</td><td>Closed</td></tr></table>
    <p>Call&nbsp;us &amp; ask.</p></body></html>"""

    [section] = load("html", html)

    assert "## Hours" in section.text
    assert "Sunday | Closed" in section.text
    assert "Call us & ask." in section.text
    for hidden in ("color: red", "secret", "Home | Shop"):
        assert hidden not in section.text


def test_corrupt_pdf_raises_a_clean_ingest_error() -> None:
    truncated = make_pdf([["Some text"]])[:60]

    with pytest.raises(IngestError) as error:
        load("pdf", truncated)

    assert error.value.reason.startswith("the PDF is damaged")
    assert "Traceback" not in error.value.reason


def test_pdf_with_garbage_body_raises_ingest_error() -> None:
    with pytest.raises(IngestError, match="damaged|no extractable text"):
        load("pdf", b"%PDF-1.7\n" + bytes(range(256)) * 20)


def test_pdf_without_text_is_refused() -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    blank = io.BytesIO()
    writer.write(blank)

    with pytest.raises(IngestError, match="no extractable text"):
        load("pdf", blank.getvalue())


def test_password_protected_pdf_is_refused() -> None:
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf([["Secret plans"]])))
    writer.encrypt(user_password="hunter2", algorithm="AES-128")
    locked = io.BytesIO()
    writer.write(locked)

    with pytest.raises(IngestError, match="password"):
        load("pdf", locked.getvalue())


def test_corrupt_docx_raises_ingest_error() -> None:
    docx = bytearray(make_docx(["Hello"]))
    broken = bytes(docx[: len(docx) // 2])

    with pytest.raises(IngestError, match="the DOCX is damaged"):
        load("docx", broken)


def test_empty_text_file_is_refused() -> None:
    with pytest.raises(IngestError, match="no text"):
        load("txt", b"  \n\n ")


def test_binary_text_file_is_refused() -> None:
    with pytest.raises(IngestError, match="binary"):
        load("txt", b"abc\x00def")
