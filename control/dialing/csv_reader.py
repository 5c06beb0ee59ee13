"""Reading a batch's CSV as a stream: encoding, delimiter, the phone column, E.164, rejects.

Nothing here touches the database: `read_rows` turns a binary stream into rows with a valid
number and rejected rows, one at a time, so a file of any size is read in constant memory
(`services.batches` finds duplicates against the rows already stored). Cells are kept as plain
text: a cell such as `=cmd|' /C calc'!A0` is a variable's value, never evaluated.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from control.errors import DomainError, Gone, Invalid, TooLarge
from runtime.spec import normalise_number

PHONE_ALIASES = ("phone_number", "phone", "mobile", "contact", "contact_number")
DELIMITERS = ",;\t"
MAX_LINE_BYTES = 64 * 1024
MAX_CELL_CHARS = 1000
MAX_COLUMNS = 100
UTF8_BOM = b"\xef\xbb\xbf"
SNIFF_BYTES = 8192


class BatchFileError(DomainError):
    """The file as a whole cannot be used: a code and a message that say why."""


class UnreadableFile(BatchFileError, Invalid):
    """Not a CSV (binary, a line too long, bad quoting), empty, or no phone column."""


class FileTooLarge(BatchFileError, TooLarge):
    """Over the size or the row limit."""


class FileGone(BatchFileError, Gone):
    """The stored copy of an accepted file is no longer there."""


@dataclass(frozen=True)
class Row:
    line: int
    phone_number: str
    variables: dict[str, str]


@dataclass(frozen=True)
class Reject:
    line: int
    reason: str


@dataclass
class Limits:
    max_rows: int
    max_bytes: int


@dataclass
class _Counter:
    bytes_read: int = 0
    lines: list[int] = field(default_factory=list)


def _looks_like_text(head: bytes) -> bool:
    # Control bytes other than tab, newlines and form feed are not in any CSV a person makes.
    controls = sum(1 for byte in head if byte < 32 and byte not in (9, 10, 12, 13))
    return controls <= len(head) // 100


def _decode(raw: bytes) -> str:
    # Per line, so a file mixing UTF-8 and Latin-1 lines (a common spreadsheet mishap) reads.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _text_lines(stream: IO[bytes], limits: Limits, counter: _Counter) -> Iterator[str]:
    first = True
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        counter.bytes_read += len(raw)
        if counter.bytes_read > limits.max_bytes:
            raise FileTooLarge(
                "FILE_TOO_LARGE",
                f"The file is larger than the limit of {limits.max_bytes} bytes "
                f"({limits.max_bytes // (1024 * 1024)} MiB); split it into several batches.",
            )
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise UnreadableFile(
                "NOT_A_CSV", f"A line is longer than {MAX_LINE_BYTES} bytes: not a CSV file."
            )
        if b"\x00" in raw:
            raise UnreadableFile(
                "NOT_A_CSV", "The file holds binary data (NUL bytes): send a CSV text file."
            )
        if first:
            raw = raw.removeprefix(UTF8_BOM)
            first = False
        yield _decode(raw)


def _delimiter(header: str) -> str:
    try:
        return csv.Sniffer().sniff(header, delimiters=DELIMITERS).delimiter
    except csv.Error:
        counts = {delimiter: header.count(delimiter) for delimiter in DELIMITERS}
        best = max(counts, key=counts.__getitem__)
        return best if counts[best] else ","


def _phone_column(names: list[str]) -> int:
    lowered = [name.strip().lower() for name in names]
    for alias in PHONE_ALIASES:
        if alias in lowered:
            return lowered.index(alias)
    raise UnreadableFile(
        "NO_PHONE_COLUMN",
        "The header names no phone column: name one of "
        + ", ".join(PHONE_ALIASES)
        + f" (found: {', '.join(name.strip() for name in names)[:200] or 'nothing'}).",
    )


def read_rows(
    stream: IO[bytes], default_country: str | None, limits: Limits
) -> Iterator[Row | Reject]:
    """The file's data rows in order, each accepted (E.164, variables) or rejected with a reason.

    Raises:
        BatchFileError: the file is empty, binary, too large, has too many rows or no phone
            column.
    """
    head = stream.read(SNIFF_BYTES)
    if b"\x00" in head or (head and not _looks_like_text(head)):
        raise UnreadableFile("NOT_A_CSV", "The file holds binary data: send a CSV text file.")
    stream.seek(0)
    counter = _Counter()
    lines = _text_lines(stream, limits, counter)
    header_line = next(lines, None)
    while header_line is not None and not header_line.strip():
        header_line = next(lines, None)
    if header_line is None:
        raise UnreadableFile("EMPTY_FILE", "The file is empty: send a header and rows.")
    delimiter = _delimiter(header_line)

    def all_lines() -> Iterator[str]:
        yield header_line
        yield from lines

    reader = csv.reader(all_lines(), delimiter=delimiter)
    names = [name.strip() for name in next(reader)]
    if len(names) > MAX_COLUMNS:
        raise UnreadableFile("TOO_MANY_COLUMNS", f"The file has more than {MAX_COLUMNS} columns.")
    phone_index = _phone_column(names)
    names = [name or f"column_{index + 1}" for index, name in enumerate(names)]
    rows = 0
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise UnreadableFile("NOT_A_CSV", f"Line {line}: {error}.") from error
        if not any(cell.strip() for cell in cells):
            continue
        rows += 1
        if rows > limits.max_rows:
            raise FileTooLarge(
                "TOO_MANY_ROWS", f"The file has more than the limit of {limits.max_rows} rows."
            )
        raw_number = cells[phone_index] if phone_index < len(cells) else ""
        try:
            number = normalise_number(raw_number, default_country)
        except ValueError as error:
            yield Reject(line, str(error))
            continue
        variables = {
            name: cell[:MAX_CELL_CHARS]
            for index, (name, cell) in enumerate(zip(names, cells, strict=False))
            if index != phone_index
        }
        yield Row(line, number, variables)
