"""Streaming readers: JSONL, CSV, Parquet and Instaloader folders, all yielding :class:`Post`.

Each format module turns its input into :class:`RawRecord` items one at a time; this module
validates them with the shared schema, so every format fails with the same messages and
``skip_bad`` works the same everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from postloc.data.readers.base import MAX_RECORD_BYTES, RawRecord, SkipReport
from postloc.data.readers.seen_ids import SeenIds
from postloc.data.schema import Post
from postloc.errors import BadInputError
from postloc.io.inputs import check_regular_file

FORMATS = ("jsonl", "csv", "parquet", "instaloader")

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
) -> Iterator[Post]:
    """Yield validated posts from ``path`` without holding the file in memory.

    ``columns`` maps exchange-format keys to the input's column names (CSV, JSONL and Parquet;
    an Instaloader folder has its own fixed layout),
    e.g. ``{"lon": "lng", "user": "user_guid"}``. With ``skip_bad`` a bad record is counted
    in ``report`` and skipped; without it the first bad record raises :class:`BadInputError`.
    ``max_record_bytes`` bounds one JSONL line or one Instaloader structure file (decompressed):
    a larger one is a bad record, read through without being held in memory.
    """
    path = Path(path)
    check_regular_file(path, folders=True)  # never a device or FIFO: unbounded, or readable only once
    fmt = format or detect_format(path)
    if fmt == "jsonl":
        from postloc.data.readers.jsonl import iter_jsonl as source

        raw = source(path, max_record_bytes, columns=columns)
    elif fmt == "csv":
        from postloc.data.readers.csv import iter_csv

        raw = iter_csv(path, columns=columns or {}, list_sep=list_sep, max_line_chars=max_record_bytes)
    elif fmt == "parquet":
        from postloc.data.readers.parquet import iter_parquet

        raw = iter_parquet(path, columns=columns or {})
    elif fmt == "instaloader":
        from postloc.data.readers.instaloader import iter_instaloader

        raw = iter_instaloader(path, max_record_bytes)
    else:
        raise BadInputError(path, None, None, f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return _validated(raw, skip_bad=skip_bad, report=report if report is not None else SkipReport())


#: records validated before their ids are checked together (one vectorised lookup per batch)
ID_BATCH = 1024


def _validated(raw: Iterator[RawRecord], *, skip_bad: bool, report: SkipReport) -> Iterator[Post]:
    """Validate, check ids and yield in input order; the first bad record raises once the ones before it are out.

    Records are validated :data:`ID_BATCH` at a time so that their ids are looked up together
    (:class:`SeenIds`); what a consumer sees is the same as one at a time.
    """
    seen_ids = SeenIds()  # ~20 bytes per id rather than ~200 for a dict of strings
    folders: dict[tuple[str, str], str] = {}  # image folders resolved during this pass
    batch: list[tuple[RawRecord, Post | BadInputError | None, list[BadInputError]]] = []
    for item in raw:
        batch.append(_validate(item, folders))
        if len(batch) >= ID_BATCH:
            yield from _checked(batch, seen_ids, skip_bad=skip_bad, report=report)
            batch = []
    yield from _checked(batch, seen_ids, skip_bad=skip_bad, report=report)


def _validate(
    item: RawRecord, folders: dict[tuple[str, str], str]
) -> tuple[RawRecord, Post | BadInputError | None, list[BadInputError]]:
    """The post of one raw record (None for a reader's warning), or its error; and the post's warnings."""
    warnings: list[BadInputError] = []  # counted only once the post is kept
    if item.warning is not None:
        return item, None, warnings
    try:
        if item.error is not None:
            raise item.error
        assert item.record is not None  # a RawRecord holds either a record or an error
        post = Post.from_record(
            item.record,
            source=item.source,
            line=item.line,
            base_dir=item.base_dir,
            folders=folders,
            warn=warnings.append,
        )
    except BadInputError as error:
        return item, error, warnings
    return item, post, warnings


def _checked(batch, seen_ids: SeenIds, *, skip_bad: bool, report: SkipReport) -> Iterator[Post]:
    posts = [result.id for _, result, _ in batch if isinstance(result, Post)]
    earlier = iter(seen_ids.first_seen_many(posts))
    in_batch: dict[str, tuple[str, int | None]] = {}
    for item, result, warnings in batch:
        if result is None:
            report.warn(item.warning)
            continue
        error = result if isinstance(result, BadInputError) else None
        if isinstance(result, Post):
            first = next(earlier) or in_batch.get(result.id)
            if first is not None:
                where = first[0] if first[1] is None else f"{first[0]}:{first[1]}"
                error = BadInputError(item.source, item.line, "id", f'"{result.id}" was already used at {where}')
            else:
                in_batch[result.id] = (str(item.source), item.line)
                seen_ids.add(result.id, str(item.source), item.line)
        if error is not None:
            if not skip_bad:
                raise error
            report.add(error)
            continue
        report.read += 1
        for warning in warnings:
            report.warn(warning)
        yield result


__all__ = ["FORMATS", "MAX_RECORD_BYTES", "RawRecord", "SkipReport", "detect_format", "read_posts"]
