"""CSV (or TSV) with a column mapping: the way most scraped or exported post tables arrive.

List-valued keys (``hashtags``, ``image``) are split on ``list_sep`` (the Dresden sample uses
``;``). Line numbers are physical lines, header included, so quoted multi-line cells still
point at the right place.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from postloc.data.readers.base import (
    MAX_COLUMNS,
    MAX_RECORD_BYTES,
    STREAM_ERRORS,
    RawRecord,
    check_mapping,
    check_unique_columns,
    open_binary,
    renamer,
    too_many,
)
from postloc.errors import BadInputError

_HEADER_ERRORS: tuple[type[BaseException], ...] = (csv.Error, *STREAM_ERRORS)

_LIST_KEYS = ("hashtags", "image")
#: Largest cell read (the csv module's default of 128 KiB refuses long captions, which are valid).
MAX_FIELD_CHARS = 64 * 1024 * 1024
# Bytes that are not UTF-8 come through as lone surrogates (``surrogateescape``), so the row
# that holds them is reported with its own line number and the rows after it still read.
_UNDECODABLE = re.compile("[\udc80-\udcff]")


class _LineTooLong(Exception):
    pass


def _bounded_lines(handle: io.TextIOWrapper, max_chars: int) -> Iterator[str]:
    """The physical lines the csv module parses, none longer than ``max_chars`` (else :class:`_LineTooLong`).

    A file without newlines (or one 2 GiB line in a small ``.csv.gz``) would otherwise be read whole
    into memory before the csv module sees a single field.
    """
    while line := handle.readline(max_chars + 1):
        if len(line) > max_chars and not line.endswith("\n"):
            raise _LineTooLong
        yield line


def iter_csv(
    path: Path,
    *,
    columns: Mapping[str, str],
    list_sep: str = ";",
    max_line_chars: int = MAX_RECORD_BYTES,
    max_columns: int = MAX_COLUMNS,
) -> Iterator[RawRecord]:
    """Records of a CSV file; a physical line longer than ``max_line_chars`` stops the read with a
    ``file:line`` error (the csv reader cannot resume after a line it did not see whole), and so
    does a header of more than ``max_columns`` columns."""
    source, base_dir = str(path), str(path.resolve().parent)
    check_mapping(path, columns)
    delimiter = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
    if csv.field_size_limit() < MAX_FIELD_CHARS:
        csv.field_size_limit(MAX_FIELD_CHARS)  # process-wide, but only ever raised
    with open_binary(path) as raw_handle:
        # utf-8-sig: a byte-order mark (Excel writes one) must not become part of the first column's name
        handle = io.TextIOWrapper(raw_handle, encoding="utf-8-sig", errors="surrogateescape", newline="")
        reader = csv.reader(_bounded_lines(handle, max_line_chars), delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        except _LineTooLong:
            raise BadInputError(path, 1, None, f"line is longer than {max_line_chars:,} characters") from None
        except _HEADER_ERRORS as error:
            raise BadInputError(path, 1, None, f"cannot read the header: {error}") from None
        if len(header) > max_columns:
            raise BadInputError(path, 1, None, f"the header has {too_many(len(header), max_columns, 'columns')}")
        if any(_UNDECODABLE.search(name) for name in header):
            raise BadInputError(path, 1, None, "cannot read the header: it is not valid UTF-8")
        missing = [f"{key}<-{col}" for key, col in columns.items() if col not in header]
        if missing:
            raise BadInputError(
                path, 1, None, f"mapped columns not in the header: {', '.join(missing)} (header: {', '.join(header)})"
            )
        check_unique_columns(path, 1, header, columns)
        names = [renamer(columns)(h) for h in header]
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield RawRecord(source, start, error=BadInputError(path, start, None, f"malformed CSV: {error}"))
                continue
            except _LineTooLong:
                raise BadInputError(
                    path,
                    reader.line_num + 1,
                    None,
                    f"line is longer than {max_line_chars:,} characters; a post "
                    f"record is a few kB, so this is not one (limit: max_record_bytes)",
                ) from None
            except STREAM_ERRORS as error:
                raise BadInputError(path, None, None, f"cannot be read: {error}") from None
            line = start
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            bad_cell = next((i for i, cell in enumerate(row) if _UNDECODABLE.search(cell)), None)
            if bad_cell is not None:
                column = header[bad_cell] if bad_cell < len(header) else None
                yield RawRecord(source, line, error=BadInputError(path, line, column, "is not valid UTF-8"))
                continue
            if len(row) != len(header):
                yield RawRecord(
                    source,
                    line,
                    error=BadInputError(path, line, None, f"has {len(row)} fields, the header has {len(header)}"),
                )
                continue
            record: dict[str, object] = {}
            for name, cell in zip(names, row, strict=True):
                if name in _LIST_KEYS:
                    record[name] = [part.strip() for part in cell.split(list_sep) if part.strip()]
                else:
                    record[name] = cell
            yield RawRecord(source, line, record=record, base_dir=base_dir)
