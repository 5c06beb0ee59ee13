"""Text cleaning and chunking with overlap and metadata."""

from __future__ import annotations

import re

from knowledge.chunking import chunk_sections, clean_text, split_text
from knowledge.loaders import Section

SENTENCES = [f"Sentence number {i} talks about topic {i} in some detail." for i in range(40)]


def test_clean_text_normalises_pdf_artefacts() -> None:
    raw = "The ﬁlter is re-\nplaced   every\tnine months.\x00\x07\r\n\n\n\nNext\u200b paragraph."

    assert clean_text(raw) == "The filter is replaced every nine months.\n\nNext paragraph."


def test_clean_text_keeps_hyphens_that_are_not_line_breaks() -> None:
    assert clean_text("Wi-Fi on the 2.4 GHz band, self-\nservice") == (
        "Wi-Fi on the 2.4 GHz band, selfservice"
    )


def test_chunks_respect_the_size_and_overlap() -> None:
    text = " ".join(SENTENCES)

    chunks = split_text(text, chunk_size=200, overlap=60)

    assert len(chunks) > 5
    assert all(len(chunk) <= 200 for chunk in chunks)
    for before, after in zip(chunks, chunks[1:], strict=False):
        first_sentence = re.match(r"[^.]*\.", after).group(0)
        assert first_sentence in before, "each chunk starts with the end of the one before"


def test_every_sentence_is_kept_whole_in_some_chunk() -> None:
    chunks = split_text(" ".join(SENTENCES), chunk_size=150, overlap=40)

    for sentence in SENTENCES:
        assert any(sentence in chunk for chunk in chunks), sentence


def test_over_long_words_and_sentences_are_cut() -> None:
    text = "x" * 450 + " " + "word " * 100

    chunks = split_text(text, chunk_size=100, overlap=20)

    assert all(0 < len(chunk) <= 100 for chunk in chunks)
    assert "".join(chunks).count("x") == 450


def test_a_chunk_inside_a_section_repeats_its_heading() -> None:
    text = "## Returns\n\n" + " ".join(SENTENCES[:10]) + "\n\n## Shipping\n\nWe ship fast."

    chunks = split_text(text, chunk_size=200, overlap=0)

    assert len(chunks) > 2
    assert all(chunk.startswith("## Returns\n\nSentence number") for chunk in chunks)
    assert chunks[-1].endswith("\n\n## Shipping\n\nWe ship fast.")


def test_table_rows_and_list_items_stay_on_their_own_lines() -> None:
    text = "Day | Hours\nMonday | 9 to 5\nSunday | Closed\n- first item\n- second item"

    assert split_text(text, chunk_size=1000, overlap=0) == [text]


def test_chunk_sections_numbers_positions_across_pages() -> None:
    sections = [
        Section(" ".join(SENTENCES[:8]), page=1),
        Section("", page=2),
        Section(" ".join(SENTENCES[8:16]), page=3),
    ]

    chunks = chunk_sections("guide.pdf", sections, chunk_size=200, overlap=40)

    assert [chunk.position for chunk in chunks] == list(range(len(chunks)))
    assert {chunk.page for chunk in chunks} == {1, 3}
    assert all(chunk.file_name == "guide.pdf" for chunk in chunks)
    page_of = {
        sentence: chunk.page for chunk in chunks for sentence in SENTENCES if sentence in chunk.text
    }
    assert page_of[SENTENCES[0]] == 1
    assert page_of[SENTENCES[15]] == 3


def test_a_heading_is_never_left_at_the_end_of_a_chunk() -> None:
    text = " ".join(SENTENCES[:3]) + "\n\n## Shipping\n\n" + " ".join(SENTENCES[3:6])

    chunks = split_text(text, chunk_size=200, overlap=0)

    assert not any(chunk.endswith("## Shipping") for chunk in chunks)
    assert any(chunk.startswith("## Shipping\n\nSentence number 3") for chunk in chunks)
