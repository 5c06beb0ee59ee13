"""Cleans extracted text and cuts it into overlapping chunks that keep their origin."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from knowledge.loaders import Section

logger = logging.getLogger(__name__)

PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
SENTENCE_END = re.compile(r"(?<=[.!?])(\s+)(?=\S)")
HEADING = re.compile(r"^#{1,6} ")
STRUCTURED_LINE = re.compile(r"^(?:[-*•+] |\d{1,3}[.)] |#{1,6} |>)")
HYPHENATED_BREAK = re.compile(r"(?<=[a-z])-\n(?=[a-z])")
SPACES = re.compile(r"[ \t\u00a0]+")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a file as stored in the vector store."""

    file_name: str
    position: int
    page: int | None
    text: str


def clean_text(text: str) -> str:
    """Normalises extracted text: Unicode forms, control characters, hyphenation, spacing."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
    text = "".join(
        ch if ch == "\n" or unicodedata.category(ch) != "Cc" else " "
        for ch in text
        if unicodedata.category(ch) != "Cf"
    )
    # PDFs break words at line ends ("exam-\nple"); rejoin lower-case halves only.
    text = HYPHENATED_BREAK.sub("", text)
    lines = (SPACES.sub(" ", line).strip() for line in text.split("\n"))
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def chunk_sections(
    file_name: str, sections: Iterable[Section], chunk_size: int, overlap: int
) -> list[Chunk]:
    """Cleans and chunks a file's sections.

    Chunks never cross a section (so a PDF chunk has one page). Cuts fall between paragraphs,
    then lines, then sentences, and only inside a sentence that is longer than a chunk. Each
    chunk starts with the last sentences of the one before, up to ``overlap`` characters.

    Args:
        file_name: stored with every chunk.
        sections: the loader's output.
        chunk_size: the largest chunk, in characters.
        overlap: how many characters of context to repeat from the previous chunk.

    Returns:
        The chunks, numbered by ``position`` from 0 across the whole file.
    """
    chunks: list[Chunk] = []
    for section in sections:
        for text in split_text(clean_text(section.text), chunk_size, overlap):
            chunks.append(Chunk(file_name, len(chunks), section.page, text))
    return chunks


def split_text(text: str, chunk_size: int, overlap: int) -> list[str]:
    """Cuts cleaned text into chunks of at most ``chunk_size`` characters, with overlap.

    A chunk that starts inside a section repeats the section's heading first, so that it
    still says what it is about ("## Returns" above "You have 30 days...").
    """
    chunks: list[str] = []
    current: list[tuple[str, str]] = []  # (separator before the piece, piece)
    heading: tuple[str, str] | None = None
    for separator, piece in _pieces(text, chunk_size):
        candidate = [*current, (separator, piece)]
        if current and len(_join(candidate)) > chunk_size:
            # A heading belongs with the text under it, not at the end of the chunk before.
            carried: list[tuple[str, str]] = []
            while len(current) > 1 and _is_heading(current[-1][1]):
                carried.insert(0, current.pop())
            chunks.append(_join(current))
            current = carried or _tail(current, overlap)
            if heading is not None and not carried and heading not in current:
                current.insert(0, heading)
            while current and len(_join([*current, (separator, piece)])) > chunk_size:
                current.pop(0)
            candidate = [*current, (separator, piece)]
        current = candidate
        if _is_heading(piece):
            heading = ("\n\n", piece)
    if current:
        chunks.append(_join(current))
    return chunks


def _is_heading(piece: str) -> bool:
    return HEADING.match(piece) is not None


def _pieces(text: str, chunk_size: int) -> Iterator[tuple[str, str]]:
    """Sentences (or slices of over-long ones), each with the separator that preceded it."""
    for paragraph in PARAGRAPH_BREAK.split(text):
        separator = "\n\n"
        for line in _logical_lines(paragraph):
            parts = SENTENCE_END.split(line)
            # re.split with a group alternates sentence, whitespace, sentence...
            for index in range(0, len(parts), 2):
                if index:
                    separator = "\n" if "\n" in parts[index - 1] else " "
                for piece in _slice_long(parts[index].strip(), chunk_size):
                    yield separator, piece
                    separator = " "
            separator = "\n"


def _logical_lines(paragraph: str) -> list[str]:
    """Joins hard-wrapped prose lines, keeping list items and table rows on their own."""
    lines: list[str] = []
    for line in paragraph.split("\n"):
        if not line:
            continue
        if lines and not _is_structured(line) and not _is_structured(lines[-1]):
            lines[-1] = f"{lines[-1]}\n{line}"
        else:
            lines.append(line)
    return lines


def _is_structured(line: str) -> bool:
    return bool(STRUCTURED_LINE.match(line)) or " | " in line


def _slice_long(sentence: str, chunk_size: int) -> Iterator[str]:
    if len(sentence) <= chunk_size:
        yield sentence
        return
    words = sentence.split(" ")
    piece = ""
    for word in words:
        while len(word) > chunk_size:  # a "word" longer than a chunk: cut it blindly
            if piece:
                yield piece
                piece = ""
            yield word[:chunk_size]
            word = word[chunk_size:]
        candidate = f"{piece} {word}" if piece else word
        if len(candidate) > chunk_size:
            yield piece
            piece = word
        else:
            piece = candidate
    if piece:
        yield piece


def _tail(pieces: list[tuple[str, str]], overlap: int) -> list[tuple[str, str]]:
    """The last whole pieces of a chunk that fit in ``overlap`` characters."""
    tail: list[tuple[str, str]] = []
    for item in reversed(pieces):
        if len(_join([item, *tail])) > overlap:
            break
        tail.insert(0, item)
    return tail


def _join(pieces: list[tuple[str, str]]) -> str:
    parts = []
    for index, (separator, piece) in enumerate(pieces):
        if index:
            parts.append("\n\n" if _is_heading(pieces[index - 1][1]) else separator)
        parts.append(piece)
    return "".join(parts)
