"""What the format modules hand to the validator, and the tally of skipped records."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from postloc.errors import BadInputError
from postloc.io.inputs import read_at_most

if TYPE_CHECKING:
    from postloc.data.schema import Post


@dataclass(slots=True)
class RawRecord:
    """One unvalidated record, or the error met while decoding it (so the caller may skip it),
    or a warning about input that is no post at all (skipped and counted whatever ``skip_bad`` says),
    or a post a reader has already validated in bulk (``post``; :mod:`postloc.data.columnar`)."""

    source: str
    line: int | None
    record: Mapping[str, Any] | None = None
    error: BadInputError | None = None
    base_dir: str | None = None
    warning: BadInputError | None = None
    post: Post | None = None
    #: the record's text came from strict UTF-8 with no ``\u`` escape: it holds no lone surrogate
    no_surrogates: bool = False


@dataclass
class SkipReport:
    """Counts of what ``--skip-bad`` skipped and why, with the first few messages verbatim.

    ``warned`` counts, whatever ``--skip-bad`` says, posts that were kept without a field no
    model needs (an unreadable ``created``) and input files passed over because they are no
    posts at all (a stray ``notes.json`` in an Instaloader folder).
    """

    read: int = 0
    skipped: int = 0
    reasons: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    max_examples: int = 10
    warned: int = 0
    warnings: Counter = field(default_factory=Counter)
    warning_examples: list[str] = field(default_factory=list)

    @staticmethod
    def _reason(error: BadInputError) -> str:
        return f'"{error.key}" {error.problem.split(",")[0]}' if error.key else error.problem.split(":")[0]

    def add(self, error: BadInputError) -> None:
        self.skipped += 1
        self.reasons[self._reason(error)] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(str(error))

    def warn(self, error: BadInputError) -> None:
        """A post kept without the field ``error`` names, or a file that is no post."""
        self.warned += 1
        self.warnings[self._reason(error)] += 1
        if len(self.warning_examples) < self.max_examples:
            self.warning_examples.append(str(error))

    def summary(self) -> str:
        if not self.skipped:
            lines = [f"read {self.read} posts, skipped none"]
        else:
            lines = [f"read {self.read} posts, skipped {self.skipped} bad records:"]
            lines += [f"  {count:>8}  {reason}" for reason, count in self.reasons.most_common()]
            lines += ["first skipped:"] + [f"  {example}" for example in self.examples]
        if self.warned:
            lines.append(
                f"{self.warned} warnings (posts kept without a field no model needs, files that are no posts):"
            )
            lines += [f"  {count:>8}  {reason}" for reason, count in self.warnings.most_common()]
            lines += ["first warnings:"] + [f"  {example}" for example in self.warning_examples]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        record = {"read": self.read, "skipped": self.skipped, "reasons": dict(self.reasons), "examples": self.examples}
        if self.warned:  # absent when nothing was warned about, so earlier manifests stay as they were
            record.update(warned=self.warned, warnings=dict(self.warnings), warning_examples=self.warning_examples)
        return record


def check_mapping(path: str | Path, columns: Mapping[str, str]) -> None:
    """``--columns`` may only name exchange-format keys (``lon=lng``, not ``place=lng``)."""
    from postloc.data.schema import KNOWN_KEYS

    unknown = set(columns) - set(KNOWN_KEYS)
    if unknown:
        raise BadInputError(
            path, None, None, f"column mapping names unknown keys {sorted(unknown)}; known: {', '.join(KNOWN_KEYS)}"
        )
    keys_of: dict[str, str] = {}
    for key, column in columns.items():
        if column in keys_of:  # a column becomes one key: the other would silently stay empty
            raise BadInputError(
                path, None, None, f'column mapping maps column "{column}" to both "{keys_of[column]}" and "{key}"'
            )
        keys_of[column] = key


def repeated(names: list[str]) -> tuple[str, int, int] | None:
    """The first name that ``names`` holds twice, with both places (1-based), or None."""
    first: dict[str, int] = {}
    for place, name in enumerate(names, 1):
        if name in first:
            return name, first[name], place
        first[name] = place
    return None


def check_unique_columns(
    path: str | Path, line: int | None, header: list[str], columns: Mapping[str, str] | None
) -> None:
    """Refuse a header that names one column twice, before or after the ``columns`` mapping renames it.

    Two columns of one name become one record key, and the later one would silently replace the
    earlier (a second ``text`` column replaced the caption), so the file is refused, naming both.
    """
    twice = repeated(header)
    if twice is not None:
        name, first, second = twice
        raise BadInputError(path, line, None, f'column "{name}" appears twice (columns {first} and {second})')
    if not columns:
        return
    twice = repeated([renamer(columns)(name) for name in header])
    if twice is not None:
        name, first, second = twice
        renamed = ", ".join(f'column {k} "{header[k - 1]}"' for k in (first, second) if header[k - 1] != name)
        raise BadInputError(
            path,
            line,
            None,
            f'column "{name}" appears twice (columns {first} and {second}) once the column mapping '
            f'renames {renamed} to "{name}"',
        )


def renamer(columns: Mapping[str, str]) -> Callable[[str], str]:
    """Input column name -> record key under ``columns`` (exchange key -> input column).

    A column named like an exchange key that the mapping fills from another column keeps its
    data as ``<name>_raw`` (an extra), so nothing is lost and nothing is read twice.
    """
    rename = {column: key for key, column in columns.items()}

    def name(column: str) -> str:
        return rename.get(column, f"{column}_raw" if column in columns else column)

    return name


#: What reading a damaged (compressed) stream raises: zlib and lzma have their own error classes.
STREAM_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, lzma.LZMAError, zlib.error)


def json_problem(error: ValueError | RecursionError) -> str:
    """The message for a JSON text that ``json.loads`` refused, whatever the reason.

    Besides syntax errors (:class:`json.JSONDecodeError`), ``json.loads`` raises
    :class:`RecursionError` for nesting deeper than the interpreter's limit and a plain
    :class:`ValueError` for integers longer than ``sys.get_int_max_str_digits()``; both are bad
    input, not crashes.
    """
    if isinstance(error, json.JSONDecodeError):
        return f"invalid JSON: {error.msg} (line {error.lineno} column {error.colno})"
    if isinstance(error, RecursionError):
        return "invalid JSON: nested too deeply"
    return f"invalid JSON: {str(error).split(';')[0]}"


#: Largest record (a JSONL line, an Instaloader JSON file after decompression) read by default: a
#: real post is a few kB, so 10 MiB leaves room for any caption while a decompression bomb or a
#: file without newlines fails fast at its first record instead of filling memory.
MAX_RECORD_BYTES = 10 * 2**20

#: Most columns (CSV header, Parquet schema) or keys (one JSONL object, a Parquet row with its ``extra``
#: JSON) read by default: the exchange format has 9 keys and scraper exports a few hundred at most,
#: while a 24 MB CSV of 500,000 columns took 36 s and 1.1 GB and wrote every column into each post.
MAX_COLUMNS = 1_000


def too_many(count: int, limit: int, noun: str) -> str:
    """The problem text for ``count`` columns or keys (``noun``) over ``limit``."""
    return f"{count:,} {noun}, more than {limit:,}; a post record has a few dozen at most (limit: max_columns)"


#: Bytes read at a time while skipping the rest of an over-long line (memory stays bounded).
_SKIP_CHUNK = 1 << 20


def bounded_lines(handle: IO[bytes], max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, line)`` for each line of ``handle``; ``line`` is None for one longer than ``max_bytes``.

    An over-long line is read through in chunks and dropped, so memory never holds more than
    ``max_bytes`` of it, and the following lines keep their numbers.
    """
    number = 0
    while True:
        line = handle.readline(max_bytes + 1)
        if not line:
            return
        number += 1
        if len(line) > max_bytes and not line.endswith(b"\n"):  # the newline may be byte max_bytes + 1
            while line and not line.endswith(b"\n"):
                line = handle.readline(_SKIP_CHUNK)
            yield number, None
            continue
        yield number, line


def read_bounded(handle: IO[bytes], max_bytes: int, source: str | Path) -> bytes:
    """The whole content of ``handle``, refused with a :class:`BadInputError` past ``max_bytes``."""
    data = read_at_most(handle, max_bytes)
    if data is None:
        raise BadInputError(
            source,
            None,
            None,
            f"is larger than {max_bytes:,} bytes (uncompressed); a post record "
            f"is a few kB, so this is not one (limit: max_record_bytes)",
        )
    return data


def open_binary(path: Path) -> IO[bytes]:
    """Open a possibly compressed file for reading bytes, with a clear error when it cannot be read."""
    openers: dict[str, Callable[..., IO[Any]]] = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}
    opener = openers.get(path.suffix.lower(), open)
    try:
        return opener(path, "rb")
    except OSError as error:
        raise BadInputError(path, None, None, f"cannot be read: {error.strerror or error}") from None
