"""JSON Lines in the exchange format (optionally .gz/.xz/.bz2 compressed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from postloc.data.readers.base import RawRecord, open_binary
from postloc.errors import BadInputError


def iter_jsonl(path: Path) -> Iterator[RawRecord]:
    """One record per non-blank line; each line is decoded on its own so one bad byte costs one line."""
    source, base_dir = str(path), str(path.resolve().parent)
    with open_binary(path) as handle:
        try:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    yield RawRecord(source, number, error=BadInputError(source, number, None, f"is not valid UTF-8 ({error.reason} at byte {error.start})"))
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as error:
                    yield RawRecord(source, number, error=BadInputError(source, number, None, f"invalid JSON: {error.msg} (column {error.colno})"))
                    continue
                yield RawRecord(source, number, record=record, base_dir=base_dir)
        except (OSError, EOFError) as error:  # truncated or corrupt compressed stream
            raise BadInputError(source, None, None, f"cannot be read: {error}") from None
