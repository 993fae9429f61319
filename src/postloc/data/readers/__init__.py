"""Streaming readers: JSONL, CSV, Parquet and Instaloader folders, all yielding :class:`Post`.

Each format module turns its input into :class:`RawRecord` items one at a time; this module
validates them with the shared schema, so every format fails with the same messages and
``skip_bad`` works the same everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from postloc.data.readers.base import MAX_RECORD_BYTES, RawRecord, SkipReport
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
    raw = read_records(path, format=format, columns=columns, list_sep=list_sep, max_record_bytes=max_record_bytes)
    return _validated(raw, PostLedger(skip_bad, report if report is not None else SkipReport()))


def read_records(
    path: str | Path,
    *,
    format: str | None = None,
    columns: Mapping[str, str] | None = None,
    list_sep: str = ";",
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> Iterator[RawRecord]:
    """The unvalidated records of ``path`` (what :func:`read_posts` validates), for callers that
    validate elsewhere: ``prepare --workers`` checks records in its worker processes
    (:func:`check_record`) and decides on them in input order (:class:`PostLedger`)."""
    path = Path(path)
    check_regular_file(path, folders=True)  # never a device or FIFO: unbounded, or readable only once
    fmt = format or detect_format(path)
    if fmt == "jsonl":
        from postloc.data.readers.jsonl import iter_jsonl as source

        return source(path, max_record_bytes, columns=columns)
    if fmt == "csv":
        from postloc.data.readers.csv import iter_csv

        return iter_csv(path, columns=columns or {}, list_sep=list_sep, max_line_chars=max_record_bytes)
    if fmt == "parquet":
        from postloc.data.readers.parquet import iter_parquet

        return iter_parquet(path, columns=columns or {})
    if fmt == "instaloader":
        from postloc.data.readers.instaloader import iter_instaloader

        return iter_instaloader(path, max_record_bytes)
    raise BadInputError(path, None, None, f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


@dataclass(slots=True)
class Checked:
    """One raw record after validation: its post, or the error that makes it no post.

    ``warnings`` are counted only if the post is kept; ``notice`` marks input that is no post at
    all (counted whatever ``skip_bad`` says). ``post_id`` stays when ``post`` is dropped to send
    the outcome between processes.
    """

    source: str
    line: int | None
    post: Post | None = None
    post_id: str | None = None
    error: BadInputError | None = None
    warnings: list[BadInputError] = field(default_factory=list)
    notice: BadInputError | None = None


def check_record(item: RawRecord, folders: dict[tuple[str, str], str] | None = None) -> Checked:
    """Validate one raw record; no state but ``folders`` (image folders resolved so far), so any process may."""
    checked = Checked(item.source, item.line)
    if item.warning is not None:
        checked.notice = item.warning
    elif item.error is not None:
        checked.error = item.error
    else:
        assert item.record is not None  # a RawRecord holds either a record or an error
        try:
            checked.post = Post.from_record(
                item.record,
                source=item.source,
                line=item.line,
                base_dir=item.base_dir,
                folders=folders,
                warn=checked.warnings.append,
            )
            checked.post_id = checked.post.id
        except BadInputError as error:
            checked.error = error
    return checked


class PostLedger:
    """The decisions that need every earlier record: repeated ids, and the tally in ``report``.

    Fed in input order; :meth:`accept` says whether a checked record is kept. Without
    ``skip_bad`` the first bad record raises, as :func:`read_posts` does.
    """

    def __init__(self, skip_bad: bool, report: SkipReport):
        self.skip_bad = skip_bad
        self.report = report
        self.seen_ids: dict[str, tuple[str, int | None]] = {}

    def accept(self, checked: Checked) -> bool:
        if checked.notice is not None:
            self.report.warn(checked.notice)
            return False
        try:
            if checked.error is not None:
                raise checked.error
            assert checked.post_id is not None
            first = self.seen_ids.get(checked.post_id)
            if first is not None:
                where = first[0] if first[1] is None else f"{first[0]}:{first[1]}"
                raise BadInputError(
                    checked.source, checked.line, "id", f'"{checked.post_id}" was already used at {where}'
                )
            self.seen_ids[checked.post_id] = (checked.source, checked.line)
        except BadInputError as error:
            if not self.skip_bad:
                raise
            self.report.add(error)
            return False
        self.report.read += 1
        for warning in checked.warnings:
            self.report.warn(warning)
        return True


def _validated(raw: Iterator[RawRecord], ledger: PostLedger) -> Iterator[Post]:
    folders: dict[tuple[str, str], str] = {}  # image folders resolved during this pass
    for item in raw:
        checked = check_record(item, folders)
        if ledger.accept(checked):
            assert checked.post is not None
            yield checked.post


__all__ = [
    "FORMATS",
    "MAX_RECORD_BYTES",
    "Checked",
    "PostLedger",
    "RawRecord",
    "SkipReport",
    "check_record",
    "detect_format",
    "read_posts",
    "read_records",
]
