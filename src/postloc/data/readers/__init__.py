"""Streaming readers: JSONL, CSV, Parquet and Instaloader folders, all yielding :class:`Post`.

Each format module turns its input into :class:`RawRecord` items one at a time; this module
validates them with the shared schema, so every format fails with the same messages and
``skip_bad`` works the same everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

from postloc.data.readers.base import MAX_COLUMNS, MAX_RECORD_BYTES, RawRecord, SkipReport
from postloc.data.schema import Post
from postloc.errors import BadInputError
from postloc.io.inputs import check_regular_file

FORMATS = ("jsonl", "csv", "parquet", "instaloader")
#: the input name that means standard input (``postloc predict RUN -``)
STDIN = "-"

_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def detect_format(path: str | Path) -> str:
    """Guess the format from the path: a folder is an Instaloader download."""
    p = Path(path)
    if p.is_dir():
        return "instaloader"
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".xz", ".bz2"):
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _SUFFIXES:
        return _SUFFIXES[suffixes[-1]]
    raise BadInputError(p, None, None, f"cannot tell the format from the name; pass one of {', '.join(FORMATS)}")


def read_posts(
    path: str | Path,
    *,
    format: str | None = None,
    columns: Mapping[str, str] | None = None,
    list_sep: str = ";",
    skip_bad: bool = False,
    report: SkipReport | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
    max_columns: int = MAX_COLUMNS,
) -> Iterator[Post]:
    """Yield validated posts from ``path`` without holding the file in memory.

    ``columns`` maps exchange-format keys to the input's column names (CSV, JSONL and Parquet;
    an Instaloader folder has its own fixed layout),
    e.g. ``{"lon": "lng", "user": "user_guid"}``. With ``skip_bad`` a bad record is counted
    in ``report`` and skipped; without it the first bad record raises :class:`BadInputError`.
    ``max_record_bytes`` bounds one JSONL line, one CSV line, one Parquet row (uncompressed) or one
    Instaloader structure file (decompressed) or caption: a larger one is a bad record, never held as
    Python objects. ``max_columns`` bounds the columns of a CSV header or Parquet schema (a wider file
    is refused) and the keys of one JSONL object or Parquet row (a wider record is a bad record).
    """
    path = Path(path)
    check_regular_file(path, folders=True)  # never a device or FIFO: unbounded, or readable only once
    fmt = format or detect_format(path)
    folders: dict[tuple[str, str], str] = {}  # image folders resolved during this pass
    if fmt == "jsonl":
        from postloc.data.readers.jsonl import iter_jsonl as source

        raw = source(path, max_record_bytes, columns=columns, max_keys=max_columns)
    elif fmt == "csv":
        from postloc.data.readers.csv import iter_csv

        raw = iter_csv(
            path, columns=columns or {}, list_sep=list_sep, max_line_chars=max_record_bytes, max_columns=max_columns
        )
    elif fmt == "parquet":
        from postloc.data.readers.parquet import iter_parquet

        raw = iter_parquet(
            path, columns=columns or {}, folders=folders, max_record_bytes=max_record_bytes, max_columns=max_columns
        )
    elif fmt == "instaloader":
        from postloc.data.readers.instaloader import iter_instaloader

        raw = iter_instaloader(path, max_record_bytes)
    else:
        raise BadInputError(path, None, None, f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return _validated(raw, skip_bad=skip_bad, report=report if report is not None else SkipReport(), folders=folders)


def read_stdin(
    *,
    skip_bad: bool = False,
    report: SkipReport | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> Iterator[Post]:
    """Yield validated posts from standard input, read as JSONL, once and streaming.

    :func:`read_posts` refuses pipes because some formats read their input twice; JSON Lines are
    read once, line by line, each line bounded by ``max_record_bytes`` as in a file. Errors name
    ``/dev/stdin`` and the line; a relative image path is relative to the working folder (in a
    file, to the file's folder).
    """
    from postloc.data.readers.jsonl import iter_jsonl

    here = os.getcwd()
    raw = (
        item if item.base_dir is None else replace(item, base_dir=here)
        for item in iter_jsonl(Path("/dev/stdin"), max_record_bytes)
    )
    return _validated(raw, skip_bad=skip_bad, report=report if report is not None else SkipReport(), folders={})


def _validated(
    raw: Iterator[RawRecord], *, skip_bad: bool, report: SkipReport, folders: dict[tuple[str, str], str]
) -> Iterator[Post]:
    seen_ids: dict[str, tuple[str, int | None]] = {}
    for item in raw:
        warnings: list[BadInputError] = []  # counted only once the post is kept
        if item.warning is not None:
            report.warn(item.warning)
            continue
        try:
            if item.error is not None:
                raise item.error
            if item.post is not None:
                post = item.post
            else:
                assert item.record is not None  # a RawRecord holds a record, a post or an error
                post = Post.from_record(
                    item.record,
                    source=item.source,
                    line=item.line,
                    base_dir=item.base_dir,
                    folders=folders,
                    warn=warnings.append,
                    no_surrogates=item.no_surrogates,
                )
            first = seen_ids.get(post.id)
            if first is not None:
                where = first[0] if first[1] is None else f"{first[0]}:{first[1]}"
                raise BadInputError(item.source, item.line, "id", f'"{post.id}" was already used at {where}')
            seen_ids[post.id] = (item.source, item.line)
        except BadInputError as error:
            if not skip_bad:
                raise
            report.add(error)
            continue
        report.read += 1
        for warning in warnings:
            report.warn(warning)
        yield post


__all__ = [
    "FORMATS",
    "MAX_COLUMNS",
    "MAX_RECORD_BYTES",
    "STDIN",
    "RawRecord",
    "SkipReport",
    "detect_format",
    "read_posts",
    "read_stdin",
]
