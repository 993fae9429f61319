"""JSON Lines in the exchange format (optionally .gz/.xz/.bz2 compressed)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from postloc.data.readers.base import (
    MAX_COLUMNS,
    MAX_RECORD_BYTES,
    STREAM_ERRORS,
    RawRecord,
    bounded_lines,
    check_mapping,
    json_problem,
    open_binary,
    renamer,
    too_many,
)
from postloc.errors import BadInputError


class _RepeatedKey(Exception):
    """An object of the line names one key twice."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json``'s ``object_pairs_hook``: the object, refused when a key appears twice in it."""
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return record


#: ``json.loads`` keeps the last value of a repeated key, so ``{"text": "caption", "text": "x"}``
#: would silently lose the caption; this decoder refuses it. The hook costs about 10 % of the JSON
#: decoding of a flat record and 20 % of one with a nested object (cheaper than any pre-check tried:
#: counting the line's ``":`` pairs against the parsed keys cost more than the hook itself).
_decode = json.JSONDecoder(object_pairs_hook=_unique_object).decode


def iter_jsonl(
    path: Path,
    max_line_bytes: int = MAX_RECORD_BYTES,
    *,
    columns: Mapping[str, str] | None = None,
    max_keys: int = MAX_COLUMNS,
) -> Iterator[RawRecord]:
    """One record per non-blank line; each line is decoded on its own so one bad byte costs one line.

    A line longer than ``max_line_bytes`` is one bad record (skipped without being held in memory).
    ``columns`` maps exchange keys to the input's keys, as for CSV (``{"lon": "lng"}``); a line
    without a mapped key simply lacks that field (JSON has no header to check up front). An object
    with more than ``max_keys`` keys, or one naming a key twice, is a bad record.
    """
    source, base_dir = str(path), str(path.resolve().parent)
    name = None
    if columns:
        check_mapping(path, columns)
        name = renamer(columns)
    with open_binary(path) as handle:
        try:
            for number, raw in bounded_lines(handle, max_line_bytes):
                if raw is None:
                    yield RawRecord(
                        source,
                        number,
                        error=BadInputError(
                            source,
                            number,
                            None,
                            f"line is longer than {max_line_bytes:,} bytes; a post record is a "
                            f"few kB, so this is not one (limit: max_record_bytes)",
                        ),
                    )
                    continue
                if not raw.strip():
                    continue
                try:
                    # A byte-order mark (Windows editors write one) is no part of the first record.
                    text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as error:
                    yield RawRecord(
                        source,
                        number,
                        error=BadInputError(
                            source, number, None, f"is not valid UTF-8 ({error.reason} at byte {error.start})"
                        ),
                    )
                    continue
                try:
                    record = _decode(text)
                except _RepeatedKey as repeated:
                    problem = f'key "{repeated.key}" appears twice in one object'
                    yield RawRecord(source, number, error=BadInputError(source, number, None, problem))
                    continue
                except json.JSONDecodeError as error:
                    yield RawRecord(
                        source,
                        number,
                        error=BadInputError(source, number, None, f"invalid JSON: {error.msg} (column {error.colno})"),
                    )
                    continue
                except (ValueError, RecursionError) as error:  # nesting too deep, integer too long
                    yield RawRecord(source, number, error=BadInputError(source, number, None, json_problem(error)))
                    continue
                if isinstance(record, dict) and len(record) > max_keys:
                    problem = f"has {too_many(len(record), max_keys, 'keys')}"
                    yield RawRecord(source, number, error=BadInputError(source, number, None, problem))
                    continue
                if name is not None and isinstance(record, dict):
                    renamed = {name(key): value for key, value in record.items()}
                    if len(renamed) != len(record):
                        problem = _renamed_twice(record, name)
                        yield RawRecord(source, number, error=BadInputError(source, number, None, problem))
                        continue
                    record = renamed
                # text decoded as strict UTF-8 can hold a lone surrogate only through a \u escape
                yield RawRecord(source, number, record=record, base_dir=base_dir, no_surrogates="\\u" not in text)
        except STREAM_ERRORS as error:  # truncated or corrupt compressed stream
            raise BadInputError(source, None, None, f"cannot be read: {error}") from None


def _renamed_twice(record: dict, name) -> str:
    """Why renaming ``record``'s keys under the column mapping made two of them one."""
    first: dict[str, str] = {}
    for key in record:
        new = name(key)
        if new in first:
            renamed = ", ".join(f'"{k}"' for k in (first[new], key) if k != new)
            return f'key "{new}" appears twice once the column mapping renames {renamed} to "{new}"'
        first[new] = key
    raise AssertionError("no two keys share a name")  # the caller saw fewer keys after renaming
